//! The streaming merge-join of a sync, as a pure state machine: two
//! key-ordered inputs arrive in batches (the walk, the listing), and each
//! key comes out once with what each side has. Both directions and the
//! watch's path batches go through it; the drivers only move batches in
//! and pairs out, so memory holds at most a batch or two of each side,
//! never a whole listing.
//!
//! Also here: [`PrefixConflicts`], which spots in a key-ordered listing an
//! object that is also the prefix of other objects (`a` and `a/b`): a file
//! system cannot hold both, and the stream learns it without seeing the
//! whole listing.

use std::cmp::Ordering;
use std::collections::VecDeque;

/// An item with its place in key order. `None`: the item has no key (a
/// file whose name is not UTF-8) and is passed through unpaired.
pub trait Keyed {
    fn key(&self) -> Option<&str>;
}

/// What the merge needs or yields next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<S, D> {
    /// Feed a source batch (or [`MergeJoin::end_src`]) before going on.
    NeedSrc,
    /// Feed a destination batch (or [`MergeJoin::end_dst`]).
    NeedDst,
    /// A source item without a key, in its place in the stream.
    Unkeyed(S),
    /// One key, with what each side has for it.
    Pair(Option<S>, Option<D>),
    /// Both sides are exhausted.
    Done,
}

/// Merge-joins two key-sorted streams (byte order, no duplicates: as S3
/// listings and ferry's walker deliver them).
#[derive(Debug)]
pub struct MergeJoin<S, D> {
    src: VecDeque<S>,
    dst: VecDeque<D>,
    src_done: bool,
    dst_done: bool,
}

impl<S, D> Default for MergeJoin<S, D> {
    fn default() -> Self {
        MergeJoin {
            src: VecDeque::new(),
            dst: VecDeque::new(),
            src_done: false,
            dst_done: false,
        }
    }
}

impl<S: Keyed, D: Keyed> MergeJoin<S, D> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_src(&mut self, batch: impl IntoIterator<Item = S>) {
        self.src.extend(batch);
    }

    pub fn push_dst(&mut self, batch: impl IntoIterator<Item = D>) {
        self.dst.extend(batch);
    }

    pub fn end_src(&mut self) {
        self.src_done = true;
    }

    pub fn end_dst(&mut self) {
        self.dst_done = true;
    }

    pub fn step(&mut self) -> Step<S, D> {
        if self.src.front().is_some_and(|s| s.key().is_none()) {
            return Step::Unkeyed(self.src.pop_front().expect("front exists"));
        }
        if self.src.is_empty() && !self.src_done {
            return Step::NeedSrc;
        }
        // Destination items without a key cannot match anything.
        while self.dst.front().is_some_and(|d| d.key().is_none()) {
            self.dst.pop_front();
        }
        if self.dst.is_empty() && !self.dst_done {
            return Step::NeedDst;
        }
        let order = match (
            self.src.front().and_then(Keyed::key),
            self.dst.front().and_then(Keyed::key),
        ) {
            (None, None) => return Step::Done,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(d)) => s.cmp(d),
        };
        match order {
            Ordering::Less => Step::Pair(self.src.pop_front(), None),
            Ordering::Greater => Step::Pair(None, self.dst.pop_front()),
            Ordering::Equal => Step::Pair(self.src.pop_front(), self.dst.pop_front()),
        }
    }
}

/// Marks listed keys that are also the prefix of other keys (`a` when `a/b`
/// exists), keeping the listing's order. A key `k` is held only until a
/// later key reaches `k/` or beyond, so it holds just the keys between `k`
/// and `k/` (`k-1`, `k.txt`): a handful, not the listing.
#[derive(Debug)]
pub struct PrefixConflicts<T> {
    held: VecDeque<(T, bool)>,
}

impl<T> Default for PrefixConflicts<T> {
    fn default() -> Self {
        PrefixConflicts {
            held: VecDeque::new(),
        }
    }
}

impl<T: Keyed> PrefixConflicts<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next item in key order; returns the items now settled,
    /// each with `true` if other keys lie under it.
    pub fn push(&mut self, item: T) -> Vec<(T, bool)> {
        if let Some(k) = item.key() {
            for (h, conflict) in self.held.iter_mut() {
                if let Some(hk) = h.key() {
                    if k.len() > hk.len() && k.starts_with(hk) && k.as_bytes()[hk.len()] == b'/' {
                        *conflict = true;
                    }
                }
            }
        }
        let mut out = Vec::new();
        // The front is settled once `item` sorts at or after `front/`:
        // nothing later can start with `front/`.
        while let Some((front, _)) = self.held.front() {
            let settled = match (front.key(), item.key()) {
                (Some(f), Some(k)) => at_or_after_children(k, f),
                _ => true,
            };
            if !settled {
                break;
            }
            out.push(self.held.pop_front().expect("front exists"));
        }
        self.held.push_back((item, false));
        out
    }

    /// The end of the listing: everything held is settled.
    pub fn finish(&mut self) -> Vec<(T, bool)> {
        self.held.drain(..).collect()
    }
}

/// Whether `k`, which sorts after `f`, sorts at or after `f/`: then no
/// later key can start with `f/`. Compared in place, without building
/// `f/` for every key of a listing.
fn at_or_after_children(k: &str, f: &str) -> bool {
    // A key after `f` that does not start with it differs from `f` (and so
    // from `f/`) within `f`'s length, and is after both.
    !k.starts_with(f) || (k.len() > f.len() && k.as_bytes()[f.len()] >= b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Keyed for &str {
        fn key(&self) -> Option<&str> {
            (!self.starts_with('!')).then_some(*self)
        }
    }

    /// Runs the merge feeding batches of `n` items from each side.
    fn run<'a>(src: &[&'a str], dst: &[&'a str], n: usize) -> Vec<Step<&'a str, &'a str>> {
        let mut m = MergeJoin::new();
        let (mut s, mut d) = (src.chunks(n.max(1)), dst.chunks(n.max(1)));
        let mut out = Vec::new();
        loop {
            match m.step() {
                Step::NeedSrc => match s.next() {
                    Some(b) => m.push_src(b.iter().copied()),
                    None => m.end_src(),
                },
                Step::NeedDst => match d.next() {
                    Some(b) => m.push_dst(b.iter().copied()),
                    None => m.end_dst(),
                },
                Step::Done => return out,
                other => out.push(other),
            }
        }
    }

    #[test]
    fn pairs_each_key_once() {
        let got = run(&["a", "b", "d"], &["b", "c", "d", "e"], 1);
        assert_eq!(
            got,
            vec![
                Step::Pair(Some("a"), None),
                Step::Pair(Some("b"), Some("b")),
                Step::Pair(None, Some("c")),
                Step::Pair(Some("d"), Some("d")),
                Step::Pair(None, Some("e")),
            ]
        );
    }

    #[test]
    fn unkeyed_sources_pass_through_in_place() {
        let got = run(&["a", "!bad", "c"], &["b"], 2);
        assert_eq!(
            got,
            vec![
                Step::Pair(Some("a"), None),
                Step::Unkeyed("!bad"),
                Step::Pair(None, Some("b")),
                Step::Pair(Some("c"), None),
            ]
        );
    }

    #[test]
    fn empty_sides() {
        assert!(run(&[], &[], 3).is_empty());
        assert_eq!(run(&[], &["x"], 3), vec![Step::Pair(None, Some("x"))]);
        assert_eq!(run(&["x"], &[], 3), vec![Step::Pair(Some("x"), None)]);
    }

    fn conflicts(keys: &[&'static str]) -> Vec<(&'static str, bool)> {
        let mut p = PrefixConflicts::new();
        let mut out = Vec::new();
        for k in keys {
            out.extend(p.push(*k));
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn object_that_is_also_a_prefix_is_marked() {
        assert_eq!(
            conflicts(&["a", "a b", "a b/c", "a-1", "a.txt", "a/x", "a0", "b"]),
            vec![
                ("a", true),
                ("a b", true),
                ("a b/c", false),
                ("a-1", false),
                ("a.txt", false),
                ("a/x", false),
                ("a0", false),
                ("b", false),
            ]
        );
    }

    proptest! {
        /// Whatever the batch size, the merge yields every key of either
        /// side once, in order, paired exactly when both sides have it.
        #[test]
        fn merge_matches_a_set_join(
            src in proptest::collection::btree_set("[ab/.-]{1,3}", 0..20),
            dst in proptest::collection::btree_set("[ab/.-]{1,3}", 0..20),
            n in 1usize..5,
        ) {
            let s: Vec<&str> = src.iter().map(String::as_str).collect();
            let d: Vec<&str> = dst.iter().map(String::as_str).collect();
            let got = run(&s, &d, n);
            let all: std::collections::BTreeSet<&str> = s.iter().chain(d.iter()).copied().collect();
            prop_assert_eq!(got.len(), all.len());
            for (step, key) in got.iter().zip(all.iter()) {
                let want = Step::Pair(src.contains(*key).then_some(*key), dst.contains(*key).then_some(*key));
                prop_assert_eq!(step, &want);
            }
        }

        /// Streaming conflict detection agrees with the whole-listing rule
        /// and keeps the order.
        #[test]
        fn conflicts_match_the_whole_listing_rule(
            keys in proptest::collection::btree_set("[ab/ .-]{1,4}", 0..25),
        ) {
            let ks: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut p = PrefixConflicts::new();
            let mut got = Vec::new();
            for k in &ks {
                got.extend(p.push(*k));
            }
            got.extend(p.finish());
            prop_assert_eq!(got.len(), ks.len());
            for ((k, c), want_k) in got.iter().zip(ks.iter()) {
                prop_assert_eq!(k, want_k);
                let want = ks.iter().any(|o| o.starts_with(&format!("{k}/")));
                prop_assert_eq!(*c, want, "{}", k);
            }
        }
    }
}
