//! `ferry mount`: a bucket prefix as a folder.
//!
//! The file-system model lives in plain Rust so unit tests can drive it
//! against the in-memory store without a kernel:
//!
//! ```text
//!  kernel ◄─► fuse (thin fuser adapter) ─► fs::MountFs ─┬─► tree      inodes, directory cache with a TTL
//!                                                       ├─► reader    ranged GETs, growing read-ahead
//!                                                       ├─► staging   written files + journal in the cache dir
//!                                                       └─► transfer::upload_file (multipart, checkpoints)
//!  session: mounting, signals, flush on unmount, recovery report
//!  control: pid/status files shared with `ferry unmount`, stale mounts
//! ```
//!
//! The semantics (what each operation does to the bucket, what is refused
//! and with which errno) are documented in `docs/SEMANTICS.md`; the tests
//! follow that document.

pub mod control;
pub(crate) mod error;
pub(crate) mod fs;
pub(crate) mod fuse;
pub(crate) mod names;
pub(crate) mod reader;
pub(crate) mod session;
pub(crate) mod staging;
pub(crate) mod tree;

pub use error::FsError;
pub use fs::{Attr, MountConfig, MountFs};
pub use session::{serve, ServeOptions};
pub use tree::{Ino, Kind, ROOT};
