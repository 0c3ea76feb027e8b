//! Checkpoint files: one per transfer, named from a hash of (source,
//! destination) so unrelated transfers never collide and a rerun of the same
//! command finds its own.
//!
//! Format: two lines. The first is a JSON header
//! `{"format":"ferry-checkpoint","version":1,"kind":"upload","sha256":"…"}`,
//! the second the JSON body; `sha256` covers the body's bytes, so a
//! truncated, edited or half-written file is detected and ignored rather than
//! trusted. Files are written atomically (temp, fsync, rename) with mode 0600
//! because they name paths and upload IDs.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::resume::RecordedPart;
use crate::atomic_file::write_atomic;

pub const FORMAT: &str = "ferry-checkpoint";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCheckpoint {
    #[serde(with = "lossless_path")]
    pub source: PathBuf,
    pub size: u64,
    /// Nanosecond mtime in the `mtime` metadata notation.
    pub mtime: String,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub part_size: u64,
    pub upload_id: String,
    /// The flexible checksum the server agreed to at CreateMultipartUpload
    /// (`CRC64NVME`…); absent for MD5 uploads, and in checkpoints written
    /// before checksums, which resume as MD5 uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    pub parts: Vec<RecordedPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonePart {
    pub number: u32,
    /// The range's CRC in the download's algorithm (`crc` below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCheckpoint {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub size: u64,
    /// Unix seconds of the object's Last-Modified.
    pub last_modified: i64,
    #[serde(with = "lossless_path")]
    pub destination: PathBuf,
    #[serde(with = "lossless_path")]
    pub temp: PathBuf,
    pub part_size: u64,
    /// The CRC the ranges were hashed with (`CRC64NVME`, `CRC-64/ECMA`…).
    /// Checkpoints written before S3 checksums have none and only ever
    /// hashed OSS's CRC-64/ECMA.
    #[serde(default = "legacy_crc")]
    pub crc: Option<String>,
    pub done: Vec<DonePart>,
}

fn legacy_crc() -> Option<String> {
    Some("CRC-64/ECMA".into())
}

/// Paths in JSON without loss: a UTF-8 path is a string, as it always
/// was; any other is `{"bytes": HEX}`, since a Unix path is bytes and a
/// lossy string would name another file.
mod lossless_path {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Raw { bytes: String },
    }

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        match p.to_str() {
            Some(t) => Repr::Text(t.to_string()),
            None => Repr::Raw {
                bytes: hex::encode(p.as_os_str().as_bytes()),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(PathBuf::from(t)),
            Repr::Raw { bytes } => hex::decode(&bytes)
                .map(|b| PathBuf::from(OsString::from_vec(b)))
                .map_err(serde::de::Error::custom),
        }
    }
}

pub trait CheckpointKind: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const EXT: &'static str;
    /// What the checksum cannot vouch for: a file written by hand (or by
    /// a bug) can be well-formed and still describe no possible layout.
    fn check(&self) -> Result<(), String>;
}

/// A part layout every later division and loop can rely on.
fn check_layout(size: u64, part_size: u64) -> Result<(), String> {
    if part_size == 0 {
        return Err("part size 0".into());
    }
    if size.div_ceil(part_size) > super::parts::MAX_PARTS {
        return Err(format!(
            "{size} bytes in parts of {part_size} is more than {} parts",
            super::parts::MAX_PARTS
        ));
    }
    Ok(())
}

impl CheckpointKind for UploadCheckpoint {
    const KIND: &'static str = "upload";
    const EXT: &'static str = "ucp";
    fn check(&self) -> Result<(), String> {
        check_layout(self.size, self.part_size)
    }
}

impl CheckpointKind for DownloadCheckpoint {
    const KIND: &'static str = "download";
    const EXT: &'static str = "dcp";
    fn check(&self) -> Result<(), String> {
        check_layout(self.size, self.part_size)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    kind: String,
    sha256: String,
}

/// Why a checkpoint file was not used. Each prints as the reason in
/// "ignoring checkpoint PATH: REASON".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointProblem {
    #[error("cannot read it: {0}")]
    Unreadable(String),
    #[error("not a ferry checkpoint")]
    Foreign,
    #[error("written by checkpoint format version {0}; this ferry reads version {VERSION}")]
    Version(u32),
    #[error("it is a {0} checkpoint, not a {1} checkpoint")]
    Kind(String, String),
    #[error("it is truncated or was modified (checksum mismatch)")]
    Checksum,
    #[error("its contents are malformed: {0}")]
    Malformed(String),
}

/// File name for the transfer of `source` to `destination` (a URL, or a
/// path's bytes: every byte counts, so two names never share one).
pub fn file_name<K: CheckpointKind>(
    source: impl AsRef<OsStr>,
    destination: impl AsRef<OsStr>,
) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h = Sha256::new();
    h.update(source.as_ref().as_bytes());
    h.update([0]);
    h.update(destination.as_ref().as_bytes());
    format!("{}.{}", &hex::encode(h.finalize())[..40], K::EXT)
}

pub fn encode<K: CheckpointKind>(body: &K) -> Vec<u8> {
    // Strings, numbers and lossless paths: nothing here can fail to serialize.
    let body = serde_json::to_string(body).expect("checkpoint bodies always serialize");
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        kind: K::KIND.into(),
        sha256: hex::encode(Sha256::digest(body.as_bytes())),
    };
    let mut out = serde_json::to_vec(&header).expect("header serializes");
    out.push(b'\n');
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    out
}

pub fn decode<K: CheckpointKind>(bytes: &[u8]) -> Result<K, CheckpointProblem> {
    let text = std::str::from_utf8(bytes).map_err(|_| CheckpointProblem::Foreign)?;
    let (head, rest) = text.split_once('\n').ok_or(CheckpointProblem::Foreign)?;
    let header: Header = serde_json::from_str(head).map_err(|_| CheckpointProblem::Foreign)?;
    if header.format != FORMAT {
        return Err(CheckpointProblem::Foreign);
    }
    if header.version != VERSION {
        return Err(CheckpointProblem::Version(header.version));
    }
    if header.kind != K::KIND {
        return Err(CheckpointProblem::Kind(header.kind, K::KIND.into()));
    }
    let body = rest.strip_suffix('\n').unwrap_or(rest);
    if hex::encode(Sha256::digest(body.as_bytes())) != header.sha256 {
        return Err(CheckpointProblem::Checksum);
    }
    let body: K =
        serde_json::from_str(body).map_err(|e| CheckpointProblem::Malformed(e.to_string()))?;
    body.check().map_err(CheckpointProblem::Malformed)?;
    Ok(body)
}

fn lock_path_of(path: &Path) -> PathBuf {
    let mut lock_name = path.to_path_buf().into_os_string();
    lock_name.push(".lock");
    PathBuf::from(lock_name)
}

fn open_lock(lock_path: &Path) -> Result<File, LockError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(lock_path)
        .map_err(|source| LockError::Io {
            path: lock_path.to_path_buf(),
            source,
        })
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A checkpoint file in a checkpoint directory, held under an exclusive
/// lock for as long as this value lives, so two processes never resume the
/// same transfer at once.
pub struct CheckpointFile {
    pub path: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0}: another ferry process is already running this transfer")]
    Busy(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CheckpointFile {
    pub fn open<K: CheckpointKind>(
        dir: &Path,
        source: impl AsRef<OsStr>,
        destination: impl AsRef<OsStr>,
    ) -> Result<Self, LockError> {
        fs::create_dir_all(dir).map_err(|source| LockError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::lock(dir.join(file_name::<K>(source, destination)))
    }

    /// Locks an existing checkpoint path (for housekeeping commands).
    pub fn lock(path: PathBuf) -> Result<Self, LockError> {
        let lock_path = lock_path_of(&path);
        // A holder that finishes unlinks the lock file while it still holds
        // it; whoever opened that file before the unlink then locks a file
        // no longer under the name, while a newcomer locks a new one. So a
        // lock counts only if the name still leads to the locked file, and
        // is retaken otherwise (a few times: each retry means another
        // process finished in between).
        for _ in 0..8 {
            let file = open_lock(&lock_path)?;
            if let Some(locked) = Self::take(path.clone(), lock_path.clone(), file)? {
                return Ok(locked);
            }
        }
        Err(LockError::Busy(path))
    }

    /// Locks an opened lock file; `None` when the file is no longer the one
    /// under the name.
    fn take(path: PathBuf, lock_path: PathBuf, lock: File) -> Result<Option<Self>, LockError> {
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LockError::Busy(path)),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LockError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        if !same_file(&lock, &lock_path) {
            return Ok(None);
        }
        Ok(Some(CheckpointFile {
            path,
            lock_path,
            _lock: lock,
        }))
    }

    /// The checkpoint if one exists: `Ok(None)` when there is none,
    /// `Err` when there is one that cannot be trusted.
    pub fn load<K: CheckpointKind>(&self) -> Result<Option<K>, CheckpointProblem> {
        match fs::read(&self.path) {
            Ok(bytes) => decode(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CheckpointProblem::Unreadable(e.to_string())),
        }
    }

    pub fn save<K: CheckpointKind>(&self, body: &K) -> std::io::Result<()> {
        write_atomic(&self.path, &encode(body))
    }

    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// Deletes the checkpoint and its lock file (the transfer is finished).
    pub fn finish(self) {
        self.remove();
        let _ = fs::remove_file(&self.lock_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_valid_checkpoint_with_an_impossible_layout_is_refused() {
        for (size, part_size) in [(30, 0), (1 << 40, 1)] {
            let c = UploadCheckpoint {
                size,
                part_size,
                ..sample()
            };
            assert!(
                matches!(
                    decode::<UploadCheckpoint>(&encode(&c)),
                    Err(CheckpointProblem::Malformed(_))
                ),
                "{size} / {part_size}"
            );
        }
    }

    fn sample() -> UploadCheckpoint {
        UploadCheckpoint {
            source: "/data/big.bin".into(),
            size: 30,
            mtime: "1700000000.123456789".into(),
            endpoint: "http://127.0.0.1:3900".into(),
            bucket: "b".into(),
            key: "k".into(),
            part_size: 10,
            upload_id: "u1".into(),
            checksum: None,
            parts: vec![RecordedPart {
                number: 1,
                etag: "e".into(),
                md5: "e".into(),
                crc64: Some(7),
                checksum: None,
            }],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(decode::<UploadCheckpoint>(&encode(&c)).unwrap(), c);
    }

    #[test]
    fn paths_that_are_not_utf8_round_trip_in_both_kinds() {
        use std::os::unix::ffi::OsStringExt;
        let odd = PathBuf::from(std::ffi::OsString::from_vec(
            b"/data/caf\xe9/big.bin".to_vec(),
        ));
        let c = UploadCheckpoint {
            source: odd.clone(),
            ..sample()
        };
        assert_eq!(decode::<UploadCheckpoint>(&encode(&c)).unwrap(), c);
        let d = DownloadCheckpoint {
            endpoint: "http://127.0.0.1:3900".into(),
            bucket: "b".into(),
            key: "k".into(),
            etag: "e".into(),
            size: 30,
            last_modified: 1_700_000_000,
            destination: odd.clone(),
            temp: odd.with_extension("part"),
            part_size: 10,
            crc: None,
            done: vec![],
        };
        assert_eq!(decode::<DownloadCheckpoint>(&encode(&d)).unwrap(), d);
        // UTF-8 paths keep the string form earlier files have.
        assert!(String::from_utf8(encode(&sample()))
            .unwrap()
            .contains(r#""source":"/data/big.bin""#));
    }

    #[test]
    fn detects_damage() {
        let bytes = encode(&sample());
        let truncated = &bytes[..bytes.len() - 10];
        assert_eq!(
            decode::<UploadCheckpoint>(truncated),
            Err(CheckpointProblem::Checksum)
        );
        let mut tampered = bytes.clone();
        let i = bytes.len() - 5;
        tampered[i] = b'9';
        assert_eq!(
            decode::<UploadCheckpoint>(&tampered),
            Err(CheckpointProblem::Checksum)
        );
        assert_eq!(
            decode::<UploadCheckpoint>(b"\x00\xff garbage"),
            Err(CheckpointProblem::Foreign)
        );
        assert_eq!(
            decode::<UploadCheckpoint>(b"{}\n{}"),
            Err(CheckpointProblem::Foreign)
        );
        let other =
            String::from_utf8(bytes.clone())
                .unwrap()
                .replacen("\"version\":1", "\"version\":9", 1);
        assert_eq!(
            decode::<UploadCheckpoint>(other.as_bytes()),
            Err(CheckpointProblem::Version(9))
        );
        assert!(matches!(
            decode::<DownloadCheckpoint>(&bytes),
            Err(CheckpointProblem::Kind(..))
        ));
    }

    #[test]
    fn names_differ_per_transfer_and_are_stable() {
        let a = file_name::<UploadCheckpoint>("/a", "s3://b/k");
        assert_eq!(a, file_name::<UploadCheckpoint>("/a", "s3://b/k"));
        assert_ne!(a, file_name::<UploadCheckpoint>("/a", "s3://b/k2"));
        assert_ne!(a, file_name::<UploadCheckpoint>("/a\0s3://b/", "k"));
        assert!(a.ends_with(".ucp"));
    }

    #[test]
    fn a_lock_file_unlinked_by_its_last_holder_is_not_a_lock() {
        // P1 holds the lock; P2 opens the lock file; P1 finishes (unlinks
        // it, then lets go); P3 creates a new lock file and holds it. P2 can
        // now lock its old file, which no longer has the name: it must not
        // count, or P2 and P3 would both run the transfer.
        let dir = tempfile::tempdir().unwrap();
        let p1 = CheckpointFile::open::<UploadCheckpoint>(dir.path(), "/a", "s3://b/k").unwrap();
        let path = p1.path.clone();
        let early = open_lock(&lock_path_of(&path)).unwrap();
        p1.finish();
        let p3 = CheckpointFile::open::<UploadCheckpoint>(dir.path(), "/a", "s3://b/k").unwrap();
        let p2 = CheckpointFile::take(path.clone(), lock_path_of(&path), early).unwrap();
        assert!(p2.is_none(), "a lock on an unlinked file was taken as held");
        assert!(matches!(
            CheckpointFile::lock(path.clone()),
            Err(LockError::Busy(_))
        ));
        drop(p3);
        assert!(CheckpointFile::lock(path).is_ok());
    }

    #[test]
    fn paths_that_are_not_utf8_round_trip() {
        use std::os::unix::ffi::OsStringExt;
        let odd = PathBuf::from(std::ffi::OsString::from_vec(b"/d/caf\xe9/f".to_vec()));
        let cp = DownloadCheckpoint {
            endpoint: "e".into(),
            bucket: "b".into(),
            key: "k".into(),
            etag: "x".into(),
            size: 10,
            last_modified: 0,
            destination: odd.clone(),
            temp: odd.with_file_name(".f.ferry-1.part"),
            part_size: 5,
            crc: None,
            done: vec![],
        };
        let back = decode::<DownloadCheckpoint>(&encode(&cp)).unwrap();
        assert_eq!(back, cp);
        // Two names that differ only in bytes a lossy string would merge
        // have their own checkpoints.
        let other = PathBuf::from(std::ffi::OsString::from_vec(b"/d/caf\xe8/f".to_vec()));
        assert_ne!(
            file_name::<DownloadCheckpoint>("s", odd.as_os_str()),
            file_name::<DownloadCheckpoint>("s", other.as_os_str())
        );
        // UTF-8 paths are written as before: plain strings.
        let plain = encode(&DownloadCheckpoint {
            destination: "/d/f".into(),
            temp: "/d/.f.part".into(),
            ..cp
        });
        assert!(String::from_utf8(plain)
            .unwrap()
            .contains(r#""destination":"/d/f""#));
    }

    #[test]
    fn lock_excludes_second_holder_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = CheckpointFile::open::<UploadCheckpoint>(dir.path(), "/a", "s3://b/k").unwrap();
        let second = CheckpointFile::open::<UploadCheckpoint>(dir.path(), "/a", "s3://b/k");
        assert!(matches!(second, Err(LockError::Busy(_))));
        first.save(&sample()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(first.load::<UploadCheckpoint>().unwrap(), Some(sample()));
        drop(first);
        let again = CheckpointFile::open::<UploadCheckpoint>(dir.path(), "/a", "s3://b/k").unwrap();
        assert!(again.load::<UploadCheckpoint>().unwrap().is_some());
        again.finish();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
