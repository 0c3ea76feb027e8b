//! Recursive copy and `-u` sync of a tree in either direction. The walk
//! (`walk`) and the listing (`listing`) stream key-ordered batches into one
//! merge state machine (`merge`); each key's decision comes from the pure
//! table in `plan`, the only place a transfer or a delete is decided; the
//! `runner` carries the decisions out. `up`, `down` and `paths` (watch
//! mode's changed paths) are small drivers over these parts, and `one`
//! applies the same table to a single file.

pub mod backup;
pub mod between;
pub mod check;
pub(crate) mod content;
pub mod cost;
pub(crate) mod delete_list;
pub(crate) mod events;
pub(crate) mod file_rules;
pub(crate) mod filter;
pub(crate) mod known;
pub(crate) mod listing;
pub mod merge;
pub(crate) mod one;
pub mod plan;
pub(crate) mod renames;
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

pub use between::{sync_between, BetweenOptions};
pub use down::sync_down;
pub use events::{Event, FailKind, Observer, Summary};
pub use paths::{sync_paths, PathsOutcome};
pub use up::sync_up;

use crate::store::{ObjectStore, StoreError};
use crate::transfer::{Cancel, TransferOptions};

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub plan: plan::PlanOptions,
    /// The guards every `--delete` passes.
    pub deletes: plan::DeleteRules,
    pub dry_run: bool,
    /// Files in flight at once.
    pub jobs: usize,
    pub walk: walk::WalkOptions,
    /// Sizes and ages a file must have to be considered (`--min-size`…).
    pub rules: file_rules::FileRules,
    pub transfer: TransferOptions,
    /// Cache of stored mtimes learned on earlier runs (see `known`).
    pub known_mtimes: Option<PathBuf>,
    /// Cache of the local files' digests (`--checksum`; see
    /// `known::digests`).
    pub file_digests: Option<PathBuf>,
    /// `--backup-dir` / `--suffix`: where replaced and deleted files go.
    pub backup: Option<backup::BackupOptions>,
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
    /// The local source root is missing or not a directory.
    #[error("{path}: {why}; nothing was sent or deleted", path = .0.display(), why = .1)]
    SourceMissing(PathBuf, &'static str),
    /// `--delete` from a prefix that holds nothing: almost always a typo,
    /// and following it would empty the local tree.
    #[error("{0}: no objects under this prefix; with --delete that would empty the destination, so nothing was done")]
    SourceEmpty(String),
}

impl SyncError {
    /// Whether the user's input is at fault (exit 2) rather than the run.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SyncError::SourceMissing(..) | SyncError::SourceEmpty(_)
        )
    }
}

/// The local source root must be a directory before anything is compared:
/// a missing root would look like an empty tree.
pub(crate) fn check_source_root(root: &std::path::Path) -> Result<(), SyncError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SyncError::SourceMissing(
            root.to_path_buf(),
            "not a directory",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SyncError::SourceMissing(
            root.to_path_buf(),
            "the source directory does not exist",
        )),
        Err(_) => Err(SyncError::SourceMissing(
            root.to_path_buf(),
            "the source directory cannot be read",
        )),
    }
}

/// What a driver tracks for the delete gate while the merge runs.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub view: plan::RunView,
    pub unseen: plan::Unseen,
}

impl Seen {
    /// A walk item that is not a file: an error is a read error, and
    /// either way nothing under its key may be deleted.
    pub fn not_a_file(&mut self, item: &walk::WalkItem) {
        match item {
            walk::WalkItem::File(_) => {}
            walk::WalkItem::Skipped { key, .. } => {
                if let Some(k) = key {
                    self.unseen.mark(k);
                }
            }
            walk::WalkItem::Error { key, .. } => {
                self.view.read_errors += 1;
                // Without a key (a name that is not UTF-8) no object can
                // carry it; the error alone withholds every delete.
                if let Some(k) = key {
                    self.unseen.mark(k);
                }
            }
        }
    }

    /// The gate, after the merge: `candidates` go, or none do and the
    /// reason is reported.
    pub fn gate(
        &mut self,
        candidates: delete_list::DeleteList,
        summary: &mut Summary,
        rules: plan::DeleteRules,
        observer: &dyn Observer,
    ) -> delete_list::DeleteList {
        // Every read error was also reported as a failed item.
        self.view.failures = summary.failed.saturating_sub(self.view.read_errors);
        match plan::gate_deletes(candidates.len(), self.view, rules) {
            Ok(()) => candidates,
            Err(w) => {
                events::emit(
                    summary,
                    observer,
                    Event::DeletesWithheld {
                        count: w.candidates(),
                        reason: w.to_string(),
                    },
                );
                delete_list::DeleteList::default()
            }
        }
    }
}
