//! Recursive copy and `-u` sync of a tree in either direction: walk and
//! list (both in key order), merge-join into decisions (`plan`, pure), then
//! execute them with bounded concurrency (`execute`).

pub mod execute;
pub mod filter;
pub mod known;
pub mod plan;
pub mod walk;

pub use execute::{sync_down, sync_up, Event, Observer, Summary, SyncOptions};
