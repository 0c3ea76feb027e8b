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
//! Bounded at any size: the cache is a directory of sorted segments
//! ([`segment`], [`segments`]) read in step with the listing, which comes
//! in the same key order, so a lookup is a step forward in a file and
//! memory holds a block per segment, not the cache. What a run learns is
//! kept in a sorted buffer that goes to a new segment every
//! [`MEM_ENTRIES`] entries and at the end; an unchanged tree writes
//! nothing. Entries of objects the listing no longer shows are dropped
//! when segments are folded together ([`cache::compaction_due`]). The
//! digests `--checksum` computes for local files are kept the same way
//! ([`digests`]).
//!
//! The cache is only a shortcut: deleting it is always safe (the next run
//! makes the HEAD requests again), and a damaged segment ends where the
//! damage starts.

pub mod cache;
pub mod digests;
pub mod segment;
pub mod segments;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::mtime::Nanos;
#[cfg(test)]
pub use cache::compaction_due;
use cache::Cache;
use segment::Entry;

/// A run's learned entries go to a segment once this many are buffered
/// (about 10 MiB), so a first upload of millions stays bounded.
pub const MEM_ENTRIES: usize = 65_536;
/// More segments than this are folded into one.
pub const MAX_SEGMENTS: usize = 8;

/// What the cache says about an object's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Mtime(Nanos),
    /// No `mtime` metadata: Last-Modified is the object's time.
    NoMetadata,
}

/// The cache for one (endpoint, bucket, prefix): a directory. The
/// single-file cache of earlier versions (`{name}.json`) is removed on the
/// next save.
pub fn cache_path(cache_dir: &Path, endpoint: &str, bucket: &str, prefix: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [endpoint, bucket, prefix] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    cache_dir.join(&hex::encode(h.finalize())[..32])
}

#[derive(Default)]
pub struct KnownMtimes {
    cache: Cache<Entry>,
}

impl std::fmt::Debug for KnownMtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnownMtimes")
    }
}

impl KnownMtimes {
    /// Opens the cache at `path` (a directory); missing or unreadable is
    /// an empty cache. `None`: no cache, nothing remembered.
    pub fn load(path: Option<PathBuf>) -> KnownMtimes {
        Self::load_with(path, MEM_ENTRIES)
    }

    fn load_with(path: Option<PathBuf>, mem_cap: usize) -> KnownMtimes {
        KnownMtimes {
            cache: Cache::load(path, mem_cap),
        }
    }

    /// The listing shows `key`. Called for every listed key, in order, so
    /// that entries of objects no longer listed can be dropped.
    pub fn listed(&self, key: &str) {
        self.cache.mark(key);
    }

    /// The entry for `key` if the listing still shows the object the
    /// cache remembers. Keys are looked up in ascending order (the
    /// listing's); one behind the cursor is a miss, which costs a HEAD.
    fn matching(&self, key: &str, etag: &str, size: u64, lm_secs: i64) -> Option<Entry> {
        let e = self.cache.mark(key)?;
        if e.etag != etag || e.size != size || e.lm.is_some_and(|lm| lm != lm_secs) {
            return None;
        }
        if e.lm.is_none() {
            // Pin the entry to the Last-Modified it was confirmed with.
            self.cache.learn(
                key,
                Entry {
                    lm: Some(lm_secs),
                    ..e.clone()
                },
            );
        }
        Some(e)
    }

    /// The stored time of `key` if the listing still shows the object the
    /// cache remembers.
    pub fn lookup(&self, key: &str, etag: &str, size: u64, lm_secs: i64) -> Option<Known> {
        let e = self.matching(key, etag, size, lm_secs)?;
        Some(match e.mtime {
            Some(ns) => Known::Mtime(ns),
            None => Known::NoMetadata,
        })
    }

    /// The full-object checksum the store keeps for `key` (`NAME=value`),
    /// if a HEAD of this very object showed one.
    pub fn stored_sum(&self, key: &str, etag: &str, size: u64, lm_secs: i64) -> Option<String> {
        self.matching(key, etag, size, lm_secs)?.sum
    }

    pub fn record(
        &self,
        key: &str,
        etag: &str,
        size: u64,
        lm_secs: Option<i64>,
        mtime: Option<Nanos>,
    ) {
        self.record_with_sum(key, etag, size, lm_secs, mtime, None);
    }

    pub fn record_with_sum(
        &self,
        key: &str,
        etag: &str,
        size: u64,
        lm_secs: Option<i64>,
        mtime: Option<Nanos>,
        sum: Option<String>,
    ) {
        if etag.is_empty() {
            return;
        }
        let entry = Entry {
            etag: etag.to_string(),
            size,
            lm: lm_secs,
            mtime,
            sum,
        };
        self.cache.learn(key, entry);
    }

    /// Writes what this run learned as a new segment and folds segments
    /// when due. `listing_whole`: every object under the prefix went
    /// through [`KnownMtimes::listed`], so entries it did not show are of
    /// deleted objects. Failures are ignored: the cache is only a shortcut.
    pub fn save(&self, listing_whole: bool) {
        self.cache.save(listing_whole);
    }
}

#[cfg(test)]
mod tests;
