//! The mount layer's error: an errno for the kernel plus, when something
//! actually went wrong (rather than a normal "no such file"), a one-line
//! description naming the object for the log.

use crate::store::{StoreError, StoreErrorKind};
use crate::transfer::TransferError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", detail.as_deref().unwrap_or("error"), errno_name(*errno))]
pub struct FsError {
    pub errno: i32,
    /// Why, for the log; `None` for expected answers (ENOENT on lookup,
    /// ENOTEMPTY, refused operations) that are not worth logging.
    pub detail: Option<String>,
}

impl FsError {
    /// An expected, documented answer: not logged.
    pub fn quiet(errno: i32) -> Self {
        FsError {
            errno,
            detail: None,
        }
    }

    pub fn with(errno: i32, detail: impl Into<String>) -> Self {
        FsError {
            errno,
            detail: Some(detail.into()),
        }
    }

    pub fn from_store(e: &StoreError) -> Self {
        let errno = store_errno(e.kind);
        if errno == libc::ENOENT {
            // Something vanished under us: the answer, not a failure.
            return FsError::quiet(errno);
        }
        FsError::with(errno, e.to_string())
    }

    pub fn from_transfer(e: &TransferError) -> Self {
        match e {
            TransferError::Store(s) => FsError::from_store(s),
            // A full or read-only cache dir reaches the application as itself.
            TransferError::Io { source, .. } => {
                FsError::with(source.raw_os_error().unwrap_or(libc::EIO), e.to_string())
            }
            TransferError::Busy(_) => FsError::with(libc::EBUSY, e.to_string()),
            TransferError::Interrupted => FsError::with(libc::EINTR, e.to_string()),
            TransferError::SourceChanged(_)
            | TransferError::Integrity(_)
            | TransferError::UnsafeKey(_)
            | TransferError::Dest(_) => FsError::with(libc::EIO, e.to_string()),
        }
    }

    pub fn from_io(what: &str, e: &std::io::Error) -> Self {
        FsError::with(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
}

/// NoSuchKey → ENOENT, AccessDenied → EACCES, everything the store layer
/// already retried (network, throttling, 5xx) → EIO.
pub fn store_errno(kind: StoreErrorKind) -> i32 {
    match kind {
        StoreErrorKind::NotFound | StoreErrorKind::NoSuchBucket => libc::ENOENT,
        StoreErrorKind::AccessDenied | StoreErrorKind::BadCredentials => libc::EACCES,
        // The object was replaced while an open handle was reading it.
        StoreErrorKind::Changed => libc::ESTALE,
        // Archived: unreadable until restored, as a file on a tape.
        StoreErrorKind::Archived => libc::EACCES,
        StoreErrorKind::NoSuchUpload
        | StoreErrorKind::Throttled
        | StoreErrorKind::Server
        | StoreErrorKind::Network
        | StoreErrorKind::Truncated
        | StoreErrorKind::Integrity
        | StoreErrorKind::Rejected
        | StoreErrorKind::Protocol => libc::EIO,
    }
}

pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EIO => "EIO",
        libc::ESTALE => "ESTALE",
        libc::EPERM => "EPERM",
        libc::EROFS => "EROFS",
        libc::ENOTSUP => "ENOTSUP",
        libc::EXDEV => "EXDEV",
        libc::EBUSY => "EBUSY",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EEXIST => "EEXIST",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EFBIG => "EFBIG",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EBADF => "EBADF",
        libc::EINTR => "EINTR",
        _ => "errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_errno() {
        let nf = StoreError::new(StoreErrorKind::NotFound, "gone");
        assert_eq!(FsError::from_store(&nf), FsError::quiet(libc::ENOENT));
        let denied = StoreError::new(StoreErrorKind::AccessDenied, "no");
        let e = FsError::from_store(&denied);
        assert_eq!(e.errno, libc::EACCES);
        assert!(e.detail.is_some(), "failures are logged");
        for k in [
            StoreErrorKind::Network,
            StoreErrorKind::Server,
            StoreErrorKind::Throttled,
        ] {
            assert_eq!(
                FsError::from_store(&StoreError::new(k, "x")).errno,
                libc::EIO
            );
        }
        let full = TransferError::io(
            "/cache/x",
            "cannot write",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(FsError::from_transfer(&full).errno, libc::ENOSPC);
    }
}
