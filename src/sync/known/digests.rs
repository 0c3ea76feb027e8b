//! What ferry learned about local files' contents: the digests
//! `--checksum` computed, per relative path, together with the file's
//! identity then (device, inode, size, mtime, ctime). Any write to a file
//! moves its ctime, which no user can set back, so when the identity still
//! matches, the digest is the file's and it is not read again.
//!
//! One cache per local root, in the same sorted segments as the known
//! mtimes and read in step with the walk (which comes in key order), so it
//! stays bounded at any tree size. Deleting it is always safe: the next
//! `--checksum` run reads the files once more.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::segment::{md5_bytes, put_bytes, put_varint, unzigzag, zigzag, Cursor, Record};
use super::MEM_ENTRIES;
use crate::mtime::Nanos;
use crate::sync::walk::{FileId, LocalEntry};

/// A digest by the name `--checksum` compares it under (`MD5`,
/// `CRC64NVME`, `SHA256`, `CRC32C of 3 parts/8388608`), and its value in
/// the store's form.
pub type Sum = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSums {
    pub id: FileId,
    pub size: u64,
    pub mtime: Nanos,
    pub sums: Vec<Sum>,
}

const MAGIC: &[u8] = b"ferry-sums-1\n";
const RAW_MD5: u8 = 1;

impl Record for FileSums {
    const MAGIC: &'static [u8] = MAGIC;

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, u128::from(self.id.dev));
        put_varint(out, u128::from(self.id.ino));
        put_varint(out, zigzag(self.id.ctime));
        put_varint(out, u128::from(self.size));
        put_varint(out, zigzag(self.mtime));
        put_varint(out, self.sums.len() as u128);
        for (name, value) in &self.sums {
            put_bytes(out, name.as_bytes());
            match md5_bytes(value) {
                Some(b) => {
                    out.push(RAW_MD5);
                    out.extend_from_slice(&b);
                }
                None => {
                    out.push(0);
                    put_bytes(out, value.as_bytes());
                }
            }
        }
    }

    fn decode(cur: &mut Cursor<'_>) -> Option<FileSums> {
        let id = FileId {
            dev: u64::try_from(cur.varint()?).ok()?,
            ino: u64::try_from(cur.varint()?).ok()?,
            ctime: unzigzag(cur.varint()?),
        };
        let size = u64::try_from(cur.varint()?).ok()?;
        let mtime = unzigzag(cur.varint()?);
        let n = usize::try_from(cur.varint()?).ok()?;
        let mut sums = Vec::with_capacity(n.min(8));
        for _ in 0..n {
            let name = cur.string()?;
            let value = match cur.byte()? {
                RAW_MD5 => hex::encode(cur.take(16)?),
                0 => cur.string()?,
                _ => return None,
            };
            sums.push((name, value));
        }
        Some(FileSums {
            id,
            size,
            mtime,
            sums,
        })
    }
}

/// The cache for the tree at `root` (made absolute by the caller).
pub fn cache_path(cache_dir: &Path, root: &Path) -> PathBuf {
    let mut h = Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    cache_dir.join(&hex::encode(h.finalize())[..32])
}

#[derive(Default)]
pub struct FileDigests {
    cache: Cache<FileSums>,
}

impl std::fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileDigests")
    }
}

impl FileDigests {
    /// Opens the cache at `path`; `None`: no cache.
    pub fn load(path: Option<PathBuf>) -> FileDigests {
        FileDigests {
            cache: Cache::load(path, MEM_ENTRIES),
        }
    }

    /// The walk shows `e` (in key order): the digests known for the file
    /// as it is now, empty when it changed or was never read.
    pub fn lookup(&self, e: &LocalEntry) -> Vec<Sum> {
        match self.cache.mark(&e.key) {
            Some(s) if s.id == e.id && s.size == e.size && s.mtime == e.mtime => s.sums,
            _ => Vec::new(),
        }
    }

    /// `sums` are the digests of `e` as the walk saw it.
    pub fn record(&self, e: &LocalEntry, sums: Vec<Sum>) {
        if !self.cache.is_active() || sums.is_empty() {
            return;
        }
        let entry = FileSums {
            id: e.id,
            size: e.size,
            mtime: e.mtime,
            sums,
        };
        self.cache.learn(&e.key, entry);
    }

    /// `walk_whole`: every file went through [`FileDigests::lookup`], so
    /// entries it did not show are of files that are gone.
    pub fn save(&self, walk_whole: bool) {
        self.cache.save(walk_whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, ctime: Nanos) -> LocalEntry {
        LocalEntry {
            key: key.into(),
            path: key.into(),
            size: 5,
            mtime: 1_700_000_000_000_000_000,
            id: FileId {
                dev: 7,
                ino: 42,
                ctime,
            },
        }
    }

    #[test]
    fn a_digest_stands_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let md5 = (
            "MD5".to_string(),
            "5d41402abc4b2a76b9719d911017c592".to_string(),
        );
        let crc = ("CRC64NVME".to_string(), "ABCDEF==".to_string());
        let d = FileDigests::load(Some(path.clone()));
        d.record(&entry("a", 10), vec![md5.clone(), crc.clone()]);
        d.record(&entry("b", 10), vec![md5.clone()]);
        d.save(true);
        let d = FileDigests::load(Some(path.clone()));
        assert_eq!(d.lookup(&entry("a", 10)), vec![md5.clone(), crc]);
        // Rewritten since (its ctime moved), though size and mtime match.
        assert!(d.lookup(&entry("b", 11)).is_empty());
        let mut moved = entry("c", 10);
        moved.id.ino = 43;
        assert!(d.lookup(&moved).is_empty(), "never recorded");
        d.save(true);
        // A key behind the cursor is a miss, never another key's entry.
        let d = FileDigests::load(Some(path));
        assert!(d.lookup(&entry("b", 10)).len() == 1);
        assert!(d.lookup(&entry("a", 10)).is_empty());
    }

    #[test]
    fn entries_round_trip_through_a_segment() {
        let e = FileSums {
            id: FileId {
                dev: u64::MAX,
                ino: 0,
                ctime: -1,
            },
            size: u64::MAX,
            mtime: i128::MIN,
            sums: vec![
                ("MD5".into(), "00112233445566778899aabbccddeeff".into()),
                ("SHA256 of 3 parts/8388608".into(), "x+/=-3".into()),
            ],
        };
        let mut out = Vec::new();
        e.encode(&mut out);
        let mut cur = Cursor::over(&out);
        assert_eq!(FileSums::decode(&mut cur), Some(e));
        assert!(cur.at_end());
    }
}
