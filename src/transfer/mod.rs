//! Moving one file or object: single PUT/GET for small data, multipart
//! upload and ranged download for large data, both resumable through a
//! checkpoint file. Pure decisions (part layout, what to resume) live in
//! `parts` and `resume`; the rest does I/O.

pub mod checkpoint;
pub mod dest;
pub mod digests;
pub(crate) mod download;
pub mod leftovers;
pub mod parts;
pub(crate) mod paths;
pub mod resume;
pub(crate) mod stream;
pub(crate) mod upload;
pub mod verify;

#[cfg(test)]
mod download_tests;
#[cfg(test)]
mod upload_tests;

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::StoreError;

pub use dest::{DestError, Destination};
pub use download::{download_file, DownloadOutcome, Target};
pub use upload::{upload_file, UploadOutcome};

pub const MIB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    SourceChanged(String),
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    UnsafeKey(String),
    /// The destination holds a link or a file where the download needs a
    /// directory of its own.
    #[error("{0}")]
    Dest(#[from] DestError),
    #[error("{0}")]
    Busy(String),
    #[error("interrupted")]
    Interrupted,
}

impl TransferError {
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        TransferError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// `map_err` adapter naming the path and what was being done to it.
pub(crate) fn io<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> TransferError + 'a {
    move |e| TransferError::io(path, op, e)
}

/// Knobs shared by uploads and downloads.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// At or above this size, transfers go in parts.
    pub bigfile_threshold: u64,
    /// Requested part size; `None` picks one (see [`parts::choose_part_size`]).
    pub part_size: Option<u64>,
    /// Parts in flight per file.
    pub parallel: usize,
    /// Resume state lives here; `None` disables resume (ossutil's default).
    pub checkpoint_dir: Option<PathBuf>,
    /// Identifies the endpoint in checkpoints so that the same bucket name
    /// on another server is never mistaken for this one.
    pub endpoint_id: String,
    /// Compute CRC-64 while reading (OSS verifies whole objects with it).
    pub crc64: bool,
    /// What upload bodies carry for the server to check.
    pub checksum: crate::checksum::ChecksumChoice,
    /// The Content-Type uploads are given.
    pub content_type: ContentType,
    /// User metadata every upload carries (`--metadata`), beside `mtime`.
    pub metadata: crate::store::Metadata,
    /// Storage class, encryption, ACL, caching headers and tags of uploads.
    pub object: crate::store::ObjectOptions,
    /// Bound on part and file buffers held at once across all transfers
    /// sharing it, so memory stays flat however many run concurrently.
    pub memory: Option<MemoryBudget>,
}

/// The Content-Type of uploads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ContentType {
    /// From the file name's extension (`mime_guess`).
    #[default]
    Guess,
    /// `--content-type`.
    Fixed(String),
    /// `--no-guess-mime-type`: none, the store's default.
    None,
}

/// A byte budget shared by concurrent transfers, counted in MiB.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    sem: Arc<tokio::sync::Semaphore>,
    total_mib: u32,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let total_mib = bytes.div_ceil(MIB).clamp(1, u32::MAX as u64 >> 4) as u32;
        MemoryBudget {
            sem: Arc::new(tokio::sync::Semaphore::new(total_mib as usize)),
            total_mib,
        }
    }

    /// Waits until `bytes` fit. A request larger than the whole budget takes
    /// all of it rather than waiting forever.
    pub async fn reserve(&self, bytes: u64) -> tokio::sync::OwnedSemaphorePermit {
        let units = bytes.div_ceil(MIB).clamp(1, self.total_mib as u64) as u32;
        self.sem
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

/// Transfer settings as a user gave them (flags, a job, mount options),
/// before [`TransferOptions::checked`] turns them into options.
#[derive(Debug, Clone)]
pub struct Requested {
    pub bigfile_threshold: u64,
    pub part_size: Option<u64>,
    pub parallel: usize,
    pub checkpoint_dir: Option<PathBuf>,
}

/// A setting no transfer can run with; the message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// `-j`: files in flight at once.
pub fn check_jobs(jobs: usize) -> Result<usize, InvalidSetting> {
    if jobs == 0 {
        return Err(InvalidSetting("--jobs must be at least 1".into()));
    }
    Ok(jobs)
}

impl TransferOptions {
    /// The one place transfer settings are checked, for every command and
    /// the mount. `endpoint_id` names the server in checkpoints; `crc64`
    /// asks for CRC-64 while reading (OSS).
    pub fn checked(
        req: Requested,
        endpoint_id: &str,
        crc64: bool,
    ) -> Result<TransferOptions, InvalidSetting> {
        if let Some(ps) = req.part_size {
            if !(parts::MIN_PART_SIZE..=parts::MAX_PART_SIZE).contains(&ps) {
                return Err(InvalidSetting(format!(
                    "--part-size must be between 5M and 5G (S3 and OSS reject other sizes); got {ps} bytes"
                )));
            }
        }
        if req.parallel == 0 {
            return Err(InvalidSetting("--parallel must be at least 1".into()));
        }
        Ok(TransferOptions {
            bigfile_threshold: req.bigfile_threshold,
            part_size: req.part_size,
            parallel: req.parallel,
            checkpoint_dir: req.checkpoint_dir,
            endpoint_id: endpoint_id.to_string(),
            crc64,
            checksum: Default::default(),
            content_type: ContentType::Guess,
            metadata: Default::default(),
            object: Default::default(),
            memory: None,
        })
    }

    pub(crate) async fn reserve(&self, bytes: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match &self.memory {
            Some(m) => Some(m.reserve(bytes).await),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(part_size: Option<u64>, parallel: usize) -> Requested {
        Requested {
            bigfile_threshold: 100 * MIB,
            part_size,
            parallel,
            checkpoint_dir: None,
        }
    }

    #[test]
    fn settings_are_checked_in_one_place() {
        assert!(TransferOptions::checked(req(Some(8 * MIB), 4), "e", false).is_ok());
        let small = TransferOptions::checked(req(Some(MIB), 4), "e", false).unwrap_err();
        assert!(small.0.contains("--part-size"), "{small}");
        let none = TransferOptions::checked(req(None, 0), "e", false).unwrap_err();
        assert!(none.0.contains("--parallel"), "{none}");
        assert!(check_jobs(0).unwrap_err().0.contains("--jobs"));
        assert_eq!(check_jobs(3).unwrap(), 3);
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            bigfile_threshold: 100 * MIB,
            part_size: None,
            parallel: 4,
            checkpoint_dir: None,
            endpoint_id: String::new(),
            crc64: false,
            checksum: Default::default(),
            content_type: ContentType::Guess,
            metadata: Default::default(),
            object: Default::default(),
            memory: None,
        }
    }
}

/// Where transfers report bytes; the CLI draws bars from it, tests count.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes starts, `already` of them done before.
    fn start(&self, _name: &str, _total: u64, _already: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
    /// A one-line notice for the user ("resuming: 12 of 25 parts on the server").
    fn note(&self, msg: &str) {
        tracing::info!("{msg}");
    }
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// Cooperative cancellation (Ctrl-C): transfers stop scheduling work, save
/// their checkpoint and return [`TransferError::Interrupted`].
#[derive(Clone)]
pub struct Cancel(tokio::sync::watch::Receiver<bool>);

impl Cancel {
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Cancel(rx))
    }

    /// A token that never fires.
    pub fn never() -> Cancel {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Keep the sender alive forever so `cancelled` simply pends.
        std::mem::forget(tx);
        Cancel(rx)
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Shared handles a transfer needs besides its options.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn crate::store::ObjectStore>,
    pub progress: Arc<dyn Progress>,
    pub cancel: Cancel,
}
