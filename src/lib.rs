//! ferry: move directory trees to and from object storage (S3 and
//! S3-compatible stores, Alibaba Cloud OSS), resumably.
//!
//! The binary in `main.rs` is a thin shell over these modules; see
//! `docs/DESIGN.md` for the map.

pub(crate) mod atomic_file;
pub mod checksum;
pub mod cli;
pub(crate) mod config;
mod fuzz_tests;
pub(crate) mod location;
pub mod mount;
pub mod mtime;
pub mod store;
pub mod sync;
pub mod transfer;
pub(crate) mod units;
pub(crate) mod watch;
