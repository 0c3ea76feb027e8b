//! What a sync reports: one [`Event`] per file (for progress, `--json` and
//! the summary), with failures classified by [`FailKind`] so that callers
//! decide on the kind, never on the wording of a message.
//!
//! Every event names its item by the **relative key**: the path under the
//! local root, which is also the key under the remote prefix. Messages
//! carry the full local path or object key where it helps the reader.

use std::sync::Arc;

use serde::Serialize;

use super::plan::Reason;
use crate::store::StoreError;
use crate::transfer::{DestError, Progress, TransferError};

/// Why one item failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailKind {
    /// The local file changed while it was being read; a later pass may
    /// succeed (watch mode retries it after the debounce).
    SourceChanged,
    /// The walk could not read a file or directory.
    Unreadable,
    /// The object was listed but is gone now.
    Vanished,
    /// The key cannot be a local path (`..`, absolute, a file and a
    /// directory of the same name).
    UnsafeKey,
    /// The server refused or failed the request.
    Store,
    /// The data did not arrive intact.
    Integrity,
    /// A local file-system operation failed.
    Io,
    /// Another process holds this transfer's checkpoint.
    Busy,
}

impl From<&TransferError> for FailKind {
    fn from(e: &TransferError) -> Self {
        match e {
            TransferError::Store(_) => FailKind::Store,
            TransferError::Io { .. } => FailKind::Io,
            TransferError::SourceChanged(_) => FailKind::SourceChanged,
            TransferError::Integrity(_) => FailKind::Integrity,
            TransferError::UnsafeKey(_) => FailKind::UnsafeKey,
            TransferError::Dest(DestError::Io { .. }) => FailKind::Io,
            TransferError::Dest(_) => FailKind::UnsafeKey,
            TransferError::Busy(_) => FailKind::Busy,
            // Never reported as a failure; mapped for completeness.
            TransferError::Interrupted => FailKind::Io,
        }
    }
}

/// One thing that happened, for progress, `--json` and the summary.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Transferred {
        op: &'static str,
        key: String,
        bytes: u64,
        resumed: u64,
        reason: Reason,
    },
    Skipped {
        key: String,
        reason: Reason,
    },
    Deleted {
        key: String,
    },
    /// What was about to be replaced or deleted was put aside first, at
    /// `to` (a key in the backup bucket, or a local path).
    BackedUp {
        key: String,
        to: String,
    },
    /// With --dry-run: what would happen, to an object or file of `size`
    /// bytes (0 where the plan does not know it: deletes, backups).
    Planned {
        action: &'static str,
        key: String,
        reason: Reason,
        size: u64,
    },
    Warning {
        path: String,
        message: String,
    },
    Failed {
        key: String,
        op: &'static str,
        kind: FailKind,
        message: String,
    },
    /// `--delete` named `count` files, and the run deleted none of them.
    DeletesWithheld {
        count: u64,
        reason: String,
    },
}

impl Event {
    pub fn failed(key: &str, op: &'static str, kind: FailKind, message: impl ToString) -> Event {
        Event::Failed {
            key: key.to_string(),
            op,
            kind,
            message: message.to_string(),
        }
    }

    pub fn transfer_failed(key: &str, op: &'static str, e: &TransferError) -> Event {
        Event::failed(key, op, FailKind::from(e), e)
    }

    pub fn store_failed(key: &str, op: &'static str, e: &StoreError) -> Event {
        Event::failed(key, op, FailKind::Store, e)
    }
}

pub trait Observer: Send + Sync {
    fn event(&self, e: &Event);
    /// A progress sink for one file transfer of `size` bytes.
    fn progress(&self, size: u64) -> Arc<dyn Progress>;
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub transferred: u64,
    pub bytes: u64,
    pub resumed_bytes: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub failed: u64,
    pub warnings: u64,
    /// Deletes the run refused to make (see `plan::gate_deletes`).
    pub withheld: u64,
    /// Files and objects put aside before being replaced or deleted
    /// (`--backup-dir`, `--suffix`).
    pub backed_up: u64,
    pub interrupted: bool,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        match e {
            Event::Transferred { bytes, resumed, .. } => {
                self.transferred += 1;
                self.bytes += bytes;
                self.resumed_bytes += resumed;
            }
            Event::Skipped { .. } => self.skipped += 1,
            Event::Deleted { .. } => self.deleted += 1,
            Event::BackedUp { .. } => self.backed_up += 1,
            // A dry run's summary counts what it would send.
            Event::Planned { action, size, .. }
                if matches!(*action, "upload" | "download" | "copy" | "stream") =>
            {
                self.transferred += 1;
                self.bytes += size;
            }
            Event::Planned { .. } => {}
            Event::Warning { .. } => self.warnings += 1,
            Event::Failed { .. } => self.failed += 1,
            Event::DeletesWithheld { count, .. } => self.withheld += count,
        }
    }
}

/// Counts an event and hands it to the observer: the one way events leave
/// a driver.
pub(crate) fn emit(summary: &mut Summary, observer: &dyn Observer, e: Event) {
    summary.add(&e);
    observer.event(&e);
}
