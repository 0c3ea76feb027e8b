//! Changed paths waiting for their quiet time: each path once however
//! often it changes, and never more than [`FULL_PASS_OVER`] of them. Past
//! that (or when the watcher dropped events) one full pass covers
//! everything, so a burst of any size costs bounded memory and one pass,
//! not a HEAD per path. Pure: the clock is passed in.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::FULL_PASS_OVER;

/// An overflowed inbox waits for the tree to be quiet for the debounce
/// window, but never longer than this, so a tree that never stops
/// changing is still passed over.
pub const MAX_DEFER: Duration = Duration::from_secs(30);

/// What the watch loop should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// A full `-u` pass over the tree.
    Full,
    /// These paths (sorted), quiet for the debounce window.
    Paths(Vec<String>),
}

#[derive(Debug)]
pub struct Inbox {
    dirty: HashMap<String, Instant>,
    /// Too many changes to track one by one: (first, latest) since.
    overflow: Option<(Instant, Instant)>,
    rescan: bool,
    cap: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::with_cap(FULL_PASS_OVER)
    }
}

impl Inbox {
    /// An inbox that starts with a full pass due (the first sync).
    pub fn with_cap(cap: usize) -> Inbox {
        Inbox {
            dirty: HashMap::new(),
            overflow: None,
            rescan: true,
            cap,
        }
    }

    /// `rel` changed at `now`.
    pub fn touch(&mut self, rel: String, now: Instant) {
        if let Some((_, latest)) = &mut self.overflow {
            *latest = now;
            return;
        }
        self.dirty.insert(rel, now);
        if self.dirty.len() > self.cap {
            self.overflowed(now);
        }
    }

    /// Changes were lost (the watcher's queue overflowed) or are too many:
    /// forget the paths, a full pass will look at everything.
    pub fn overflowed(&mut self, now: Instant) {
        self.dirty = HashMap::new();
        let first = self.overflow.map_or(now, |(first, _)| first);
        self.overflow = Some((first, now));
    }

    /// A full pass is wanted at the next chance (watcher error, timer,
    /// a failed pass).
    pub fn rescan(&mut self) {
        self.rescan = true;
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.dirty.len()
    }

    pub fn due(&self, now: Instant, debounce: Duration) -> Due {
        if self.rescan {
            return Due::Full;
        }
        if let Some((first, latest)) = self.overflow {
            let settled = now.duration_since(latest) >= debounce;
            let waited = now.duration_since(first) >= MAX_DEFER;
            return if settled || waited {
                Due::Full
            } else {
                Due::Nothing
            };
        }
        let mut ready: Vec<String> = self
            .dirty
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= debounce)
            .map(|(k, _)| k.clone())
            .collect();
        if ready.is_empty() {
            return Due::Nothing;
        }
        ready.sort();
        Due::Paths(ready)
    }

    /// A full pass starts at `started`: it covers every change before;
    /// paths that change during it stay for afterwards.
    pub fn full_pass_started(&mut self, started: Instant) {
        self.rescan = false;
        self.overflow = None;
        self.dirty.retain(|_, t| *t > started);
    }

    /// These paths are being synced now.
    pub fn taken(&mut self, paths: &[String]) {
        for p in paths {
            self.dirty.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(200);

    #[test]
    fn a_path_changed_often_is_synced_once_after_its_quiet_time() {
        let t0 = Instant::now();
        let mut inbox = Inbox::with_cap(10);
        inbox.full_pass_started(t0);
        for i in 0..100 {
            inbox.touch("a".into(), t0 + Duration::from_millis(i));
        }
        inbox.touch("b".into(), t0 + Duration::from_millis(150));
        assert_eq!(inbox.tracked(), 2);
        let at = t0 + Duration::from_millis(99) + DEBOUNCE;
        assert_eq!(inbox.due(at, DEBOUNCE), Due::Paths(vec!["a".into()]));
        inbox.taken(&["a".into()]);
        let later = t0 + Duration::from_millis(350);
        assert_eq!(inbox.due(later, DEBOUNCE), Due::Paths(vec!["b".into()]));
    }

    #[test]
    fn a_burst_past_the_cap_is_one_full_pass_after_it_settles_in_bounded_memory() {
        let t0 = Instant::now();
        let mut inbox = Inbox::with_cap(2000);
        inbox.full_pass_started(t0);
        // 10,000 changes in one second.
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_micros(i * 100);
            inbox.touch(format!("burst/d{}/f{i}", i % 100), at);
            assert!(inbox.tracked() <= 2000);
        }
        let end = t0 + Duration::from_secs(1);
        assert_eq!(inbox.tracked(), 0, "the full pass covers them");
        assert_eq!(inbox.due(end, DEBOUNCE), Due::Nothing, "still settling");
        assert_eq!(inbox.due(end + DEBOUNCE, DEBOUNCE), Due::Full);
        let started = end + DEBOUNCE;
        inbox.full_pass_started(started);
        // A change during the pass is kept for afterwards.
        inbox.touch("late".into(), started + Duration::from_millis(10));
        assert_eq!(
            inbox.due(started + Duration::from_secs(1), DEBOUNCE),
            Due::Paths(vec!["late".into()])
        );
    }

    #[test]
    fn a_tree_that_never_settles_is_still_passed_over() {
        let t0 = Instant::now();
        let mut inbox = Inbox::with_cap(1);
        inbox.full_pass_started(t0);
        let mut full_at = None;
        for i in 0..400 {
            let now = t0 + Duration::from_millis(100 * i);
            inbox.touch(format!("f{}", i % 3), now);
            if inbox.due(now, DEBOUNCE) == Due::Full {
                full_at = Some(now);
                break;
            }
        }
        let at = full_at.expect("a full pass comes");
        assert!(
            at.duration_since(t0) >= MAX_DEFER && at.duration_since(t0) < MAX_DEFER + DEBOUNCE,
            "{:?}",
            at.duration_since(t0)
        );
    }

    #[test]
    fn dropped_events_and_rescans_mean_a_full_pass() {
        let t0 = Instant::now();
        let mut inbox = Inbox::default();
        assert_eq!(inbox.due(t0, DEBOUNCE), Due::Full, "the first pass");
        inbox.full_pass_started(t0);
        assert_eq!(inbox.due(t0, DEBOUNCE), Due::Nothing);
        inbox.touch("x".into(), t0);
        inbox.overflowed(t0);
        assert_eq!(inbox.tracked(), 0);
        assert_eq!(inbox.due(t0 + DEBOUNCE, DEBOUNCE), Due::Full);
        inbox.full_pass_started(t0 + DEBOUNCE);
        inbox.rescan();
        assert_eq!(inbox.due(t0 + DEBOUNCE, DEBOUNCE), Due::Full);
    }
}
