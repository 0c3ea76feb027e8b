//! What ferry learned about objects' stored mtimes on earlier runs, so an
//! unchanged tree can be compared from the listing alone.
//!
//! A listing gives key, size, ETag and Last-Modified but not the `mtime`
//! metadata; without it an unchanged file is undecidable and costs a HEAD.
//! This cache remembers, per object, the (ETag, size, Last-Modified) it saw
//! together with the stored mtime. Any write to an object changes its
//! Last-Modified (and almost always its ETag), so when all three still
//! match the listing, the remembered mtime is the object's mtime. Entries
//! recorded right after ferry's own upload have no Last-Modified yet; they
//! match on ETag and size and are completed from the next listing.
//!
//! The file is only a shortcut: deleting it is always safe (the next run
//! makes the HEAD requests again).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::mtime::{format_mtime, parse_mtime, Nanos};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    etag: String,
    size: u64,
    /// Last-Modified in whole seconds, once seen in a listing.
    lm: Option<i64>,
    /// The stored mtime (as in the metadata), or `None` when the object has
    /// no `mtime` metadata and Last-Modified is its time.
    mtime: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    format: String,
    entries: HashMap<String, Entry>,
}

const FORMAT: &str = "ferry-known-mtimes-1";

#[derive(Debug, Default)]
pub struct KnownMtimes {
    path: Option<PathBuf>,
    old: HashMap<String, Entry>,
    new: Mutex<HashMap<String, Entry>>,
}

/// What the cache says about an object's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Mtime(Nanos),
    /// No `mtime` metadata: Last-Modified is the object's time.
    NoMetadata,
}

/// The cache file for one (endpoint, bucket, prefix).
pub fn cache_path(cache_dir: &Path, endpoint: &str, bucket: &str, prefix: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [endpoint, bucket, prefix] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    cache_dir.join(format!("{}.json", &hex::encode(h.finalize())[..32]))
}

impl KnownMtimes {
    /// Loads the cache; a missing, unreadable or foreign file is an empty cache.
    pub fn load(path: Option<PathBuf>) -> KnownMtimes {
        let old = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<File>(&b).ok())
            .filter(|f| f.format == FORMAT)
            .map(|f| f.entries)
            .unwrap_or_default();
        KnownMtimes {
            path,
            old,
            new: Mutex::new(HashMap::new()),
        }
    }

    /// The stored time of `key` if the listing still shows the object the
    /// cache remembers.
    pub fn lookup(&self, key: &str, etag: &str, size: u64, lm_secs: i64) -> Option<Known> {
        let e = self.old.get(key)?;
        if e.etag != etag || e.size != size || e.lm.is_some_and(|lm| lm != lm_secs) {
            return None;
        }
        let known = match &e.mtime {
            Some(m) => Known::Mtime(parse_mtime(m)?),
            None => Known::NoMetadata,
        };
        // Carry the entry into the next file, now with its Last-Modified.
        self.new.lock().unwrap().insert(
            key.to_string(),
            Entry {
                lm: Some(lm_secs),
                ..e.clone()
            },
        );
        Some(known)
    }

    pub fn record(
        &self,
        key: &str,
        etag: &str,
        size: u64,
        lm_secs: Option<i64>,
        mtime: Option<Nanos>,
    ) {
        if etag.is_empty() {
            return;
        }
        self.new.lock().unwrap().insert(
            key.to_string(),
            Entry {
                etag: etag.to_string(),
                size,
                lm: lm_secs,
                mtime: mtime.map(format_mtime),
            },
        );
    }

    /// Writes what this run confirmed or learned (objects not seen this run
    /// are dropped). Failures are ignored: the cache is only a shortcut.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let entries = std::mem::take(&mut *self.new.lock().unwrap());
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&File {
            format: FORMAT.into(),
            entries,
        }) {
            let _ = crate::atomic_file::write_atomic(path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let k = KnownMtimes::load(Some(path.clone()));
        k.record("a", "e1", 5, None, Some(1_700_000_000_000_000_001));
        k.record("b", "e2", 6, Some(100), None);
        k.save();
        let k = KnownMtimes::load(Some(path.clone()));
        assert_eq!(
            k.lookup("a", "e1", 5, 123),
            Some(Known::Mtime(1_700_000_000_000_000_001))
        );
        assert_eq!(k.lookup("a", "e1", 6, 123), None, "size differs");
        assert_eq!(k.lookup("a", "zz", 5, 123), None, "etag differs");
        assert_eq!(k.lookup("b", "e2", 6, 100), Some(Known::NoMetadata));
        assert_eq!(k.lookup("b", "e2", 6, 101), None, "rewritten since");
        k.save();
        // "a" is now pinned to the Last-Modified it was confirmed with.
        let k = KnownMtimes::load(Some(path));
        assert_eq!(k.lookup("a", "e1", 5, 124), None);
        assert!(k.lookup("a", "e1", 5, 123).is_some());
    }

    #[test]
    fn damaged_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(KnownMtimes::load(Some(path)).lookup("a", "e", 1, 1), None);
    }
}
