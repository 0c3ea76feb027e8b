//! Recursive copy and `-u` sync of a tree in either direction. The walk
//! (`walk`) and the listing (`listing`) stream key-ordered batches into one
//! merge state machine (`merge`); each key's decision comes from the pure
//! table in `plan`, the only place a transfer or a delete is decided; the
//! `runner` carries the decisions out. `up`, `down` and `paths` (watch
//! mode's changed paths) are small drivers over these parts, and `one`
//! applies the same table to a single file.

pub(crate) mod events;
pub(crate) mod filter;
pub(crate) mod known;
pub(crate) mod listing;
pub mod merge;
pub(crate) mod one;
pub mod plan;
pub(crate) mod walk;

mod down;
mod paths;
mod pipeline;
mod runner;
mod up;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

pub use down::sync_down;
pub use events::{Event, FailKind, Observer, Summary};
pub use paths::{sync_paths, PathsOutcome};
pub use up::sync_up;

use crate::store::{ObjectStore, StoreError};
use crate::transfer::{Cancel, TransferOptions};

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub plan: plan::PlanOptions,
    pub dry_run: bool,
    /// Files in flight at once.
    pub jobs: usize,
    pub walk: walk::WalkOptions,
    pub transfer: TransferOptions,
    /// Cache of stored mtimes learned on earlier runs (see `known`).
    pub known_mtimes: Option<PathBuf>,
}

/// The two ends of a sync: a local tree and a prefix in a bucket.
#[derive(Clone)]
pub struct SyncTarget {
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    /// Empty or ending with `/`.
    pub prefix: String,
    pub root: PathBuf,
    pub cancel: Cancel,
}

impl SyncTarget {
    /// The object key of a relative key.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The relative key of an object key under the prefix.
    pub fn rel<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(self.prefix.as_str()).unwrap_or(key)
    }
}

/// Why a whole sync could not go on (per-file failures are events).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Without the whole listing nothing can be compared (and -u would
    /// re-send everything, --delete remove the wrong things).
    #[error("{0}")]
    Listing(#[from] StoreError),
    /// A producer stopped without finishing its side.
    #[error("the {0} stopped before its end")]
    Ended(&'static str),
}
