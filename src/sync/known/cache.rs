//! A sorted cache read in step with a sorted stream of keys (a listing,
//! a walk): the segments present at load, merged, behind a cursor that
//! only moves forward; what a run learns, buffered and written as a new
//! segment; and compaction, which can leave out the keys the stream did
//! not show. The entry type says what is kept per key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::segment::Record;
use super::segments::{self, Item, Merged, Source};

/// Whether to fold the segments into one: too many of them, or (after a
/// stream seen whole) a quarter or more of the entries name keys that are
/// gone.
pub fn compaction_due(segments: usize, entries: u64, dead: u64) -> bool {
    segments > super::MAX_SEGMENTS || (dead > 0 && dead.saturating_mul(4) >= entries)
}

/// One cache directory; `None` inside: no cache, nothing remembered.
pub struct Cache<E: Record> {
    state: Option<Mutex<State<E>>>,
}

impl<E: Record> Default for Cache<E> {
    fn default() -> Self {
        Cache { state: None }
    }
}

struct State<E> {
    dir: PathBuf,
    /// The segments present at load, oldest first: what lookups read.
    snapshot: Vec<PathBuf>,
    cursor: Merged<E>,
    /// The cursor's current entry and its position in the merged order.
    head: Option<Item<E>>,
    ordinal: u64,
    /// Positions the stream showed (for dropping the others).
    listed: Vec<u64>,
    mem: BTreeMap<String, E>,
    mem_cap: usize,
    /// Segments this run wrote.
    written: Vec<PathBuf>,
    next_seq: u64,
}

impl<E: Record> Cache<E> {
    /// Opens the cache at `path` (a directory); missing or unreadable is
    /// an empty cache.
    pub fn load(path: Option<PathBuf>, mem_cap: usize) -> Cache<E> {
        let Some(dir) = path else {
            return Cache::default();
        };
        let found = segments::list(&dir);
        let next_seq = found.last().map_or(1, |(s, _)| s + 1);
        let snapshot: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
        let mut cursor = Merged::new(snapshot.iter().map(|p| segments::open(p)).collect());
        let head = cursor.next();
        Cache {
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

    pub fn is_active(&self) -> bool {
        self.state.is_some()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State<E>) -> T) -> Option<T> {
        let m = self.state.as_ref()?;
        Some(f(&mut m.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// The stream shows `key` (keys come in ascending order); the entry
    /// the cache holds for it, if any. A key behind the cursor is a miss.
    pub fn mark(&self, key: &str) -> Option<E> {
        self.with(|s| s.mark(key).cloned()).flatten()
    }

    pub fn learn(&self, key: &str, e: E) {
        self.with(|s| s.learn(key.to_string(), e));
    }

    /// Writes what this run learned as a new segment and folds segments
    /// when due. `stream_whole`: every key went through [`Cache::mark`],
    /// so entries it did not show are of keys that are gone. Failures are
    /// ignored: a cache is only a shortcut.
    pub fn save(&self, stream_whole: bool) {
        self.with(|s| s.save(stream_whole));
    }
}

impl<E: Record> State<E> {
    fn mark(&mut self, key: &str) -> Option<&E> {
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

    fn learn(&mut self, key: String, e: E) {
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

    fn save(&mut self, stream_whole: bool) {
        self.flush();
        let _ = std::fs::remove_file(self.dir.with_extension("json"));
        let listed: u64 = self.listed.iter().map(|w| u64::from(w.count_ones())).sum();
        let dead = if stream_whole {
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
            self.compact(stream_whole);
        }
    }

    /// Folds every segment into one, leaving out (after a whole stream)
    /// the entries it did not show.
    fn compact(&mut self, stream_whole: bool) {
        let old: Source<E> = {
            let listed = std::mem::take(&mut self.listed);
            let merged = Merged::new(self.snapshot.iter().map(|p| segments::open(p)).collect());
            Box::new(merged.enumerate().filter_map(move |(i, item)| {
                let seen = listed.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
                (seen || !stream_whole).then_some(item)
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
