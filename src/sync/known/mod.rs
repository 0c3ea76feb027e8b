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
//! when segments are folded together ([`compaction_due`]).
//!
//! The cache is only a shortcut: deleting it is always safe (the next run
//! makes the HEAD requests again), and a damaged segment ends where the
//! damage starts.

pub mod segment;
pub mod segments;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::mtime::Nanos;
use segment::Entry;
use segments::{Item, Merged, Source};

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

/// Whether to fold the segments into one: too many of them, or (after a
/// listing seen whole) a quarter or more of the entries name objects that
/// are gone.
pub fn compaction_due(segments: usize, entries: u64, dead: u64) -> bool {
    segments > MAX_SEGMENTS || (dead > 0 && dead.saturating_mul(4) >= entries)
}

#[derive(Default)]
pub struct KnownMtimes {
    state: Option<Mutex<State>>,
}

struct State {
    dir: PathBuf,
    /// The segments present at load, oldest first: what lookups read.
    snapshot: Vec<PathBuf>,
    cursor: Merged,
    /// The cursor's current entry and its position in the merged order.
    head: Option<Item>,
    ordinal: u64,
    /// Positions the listing showed (for dropping the others).
    listed: Vec<u64>,
    mem: BTreeMap<String, Entry>,
    mem_cap: usize,
    /// Segments this run wrote.
    written: Vec<PathBuf>,
    next_seq: u64,
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
        let Some(dir) = path else {
            return KnownMtimes::default();
        };
        let found = segments::list(&dir);
        let next_seq = found.last().map_or(1, |(s, _)| s + 1);
        let snapshot: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
        let mut cursor = Merged::new(snapshot.iter().map(|p| segments::open(p)).collect());
        let head = cursor.next();
        KnownMtimes {
            state: Some(Mutex::new(State {
                dir,
                snapshot,
                cursor,
                head,
                ordinal: 0,
                listed: Vec::new(),
                mem: BTreeMap::new(),
                mem_cap,
                written: Vec::new(),
                next_seq,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        let m = self.state.as_ref()?;
        Some(f(&mut m.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// The listing shows `key`. Called for every listed key, in order, so
    /// that entries of objects no longer listed can be dropped.
    pub fn listed(&self, key: &str) {
        self.with(|s| {
            s.mark(key);
        });
    }

    /// The stored time of `key` if the listing still shows the object the
    /// cache remembers. Keys are looked up in ascending order (the
    /// listing's); one behind the cursor is a miss, which costs a HEAD.
    pub fn lookup(&self, key: &str, etag: &str, size: u64, lm_secs: i64) -> Option<Known> {
        self.with(|s| {
            let e = s.mark(key)?.clone();
            if e.etag != etag || e.size != size || e.lm.is_some_and(|lm| lm != lm_secs) {
                return None;
            }
            if e.lm.is_none() {
                // Pin the entry to the Last-Modified it was confirmed with.
                s.learn(
                    key.to_string(),
                    Entry {
                        lm: Some(lm_secs),
                        ..e.clone()
                    },
                );
            }
            Some(match e.mtime {
                Some(ns) => Known::Mtime(ns),
                None => Known::NoMetadata,
            })
        })
        .flatten()
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
        let entry = Entry {
            etag: etag.to_string(),
            size,
            lm: lm_secs,
            mtime,
        };
        self.with(|s| s.learn(key.to_string(), entry));
    }

    /// Writes what this run learned as a new segment and folds segments
    /// when due. `listing_whole`: every object under the prefix went
    /// through [`KnownMtimes::listed`], so entries it did not show are of
    /// deleted objects. Failures are ignored: the cache is only a shortcut.
    pub fn save(&self, listing_whole: bool) {
        self.with(|s| s.save(listing_whole));
    }
}

impl State {
    /// Moves the cursor to `key` and marks it listed; its entry, if any.
    fn mark(&mut self, key: &str) -> Option<&Entry> {
        while self.head.as_ref().is_some_and(|(k, _)| k.as_str() < key) {
            self.step();
        }
        let (k, _) = self.head.as_ref()?;
        if k != key {
            return None;
        }
        let (word, bit) = ((self.ordinal / 64) as usize, self.ordinal % 64);
        if self.listed.len() <= word {
            self.listed.resize(word + 1, 0);
        }
        self.listed[word] |= 1 << bit;
        self.head.as_ref().map(|(_, e)| e)
    }

    fn step(&mut self) {
        self.head = self.cursor.next();
        self.ordinal += 1;
    }

    fn learn(&mut self, key: String, e: Entry) {
        self.mem.insert(key, e);
        if self.mem.len() >= self.mem_cap {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.mem.is_empty() {
            return;
        }
        let mem = std::mem::take(&mut self.mem);
        let seq = self.take_seq();
        if let Ok(path) = segments::write(&self.dir, seq, mem.into_iter()) {
            self.written.push(path);
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn save(&mut self, listing_whole: bool) {
        self.flush();
        let _ = std::fs::remove_file(self.dir.with_extension("json"));
        let listed: u64 = self.listed.iter().map(|w| u64::from(w.count_ones())).sum();
        let dead = if listing_whole {
            while self.head.is_some() {
                self.step();
            }
            self.ordinal - listed
        } else {
            0
        };
        let segments = self.snapshot.len() + self.written.len();
        // `ordinal` counts the snapshot's entries only once it was walked.
        let entries = self.ordinal.max(listed);
        if segments > 0 && compaction_due(segments, entries, dead) {
            self.compact(listing_whole);
        }
    }

    /// Folds every segment into one, leaving out (after a whole listing)
    /// the entries the listing did not show.
    fn compact(&mut self, listing_whole: bool) {
        let old: Source = {
            let listed = std::mem::take(&mut self.listed);
            let merged = Merged::new(self.snapshot.iter().map(|p| segments::open(p)).collect());
            Box::new(merged.enumerate().filter_map(move |(i, item)| {
                let seen = listed.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
                (seen || !listing_whole).then_some(item)
            }))
        };
        let mut sources = vec![old];
        sources.extend(self.written.iter().map(|p| segments::open(p)));
        let seq = self.take_seq();
        if segments::write(&self.dir, seq, Merged::new(sources)).is_ok() {
            for p in self.snapshot.drain(..).chain(self.written.drain(..)) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
