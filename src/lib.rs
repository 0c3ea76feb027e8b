//! ferry: move directory trees to and from object storage (S3 and
//! S3-compatible stores, Alibaba Cloud OSS), resumably.
//!
//! The binary in `main.rs` is a thin shell over these modules; see
//! `docs/DESIGN.md` for the map.

pub mod atomic_file;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod location;
pub mod mount;
pub mod mtime;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod units;
pub mod watch;
