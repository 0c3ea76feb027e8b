//! Watch mode: after a full `-u` sync, follow the local source with
//! `notify` and bring changed paths up to date once they have been quiet
//! for the debounce window.
//!
//! Correctness never rests on the event stream alone: an overflowing or
//! failing watcher, a burst larger than [`FULL_PASS_OVER`] paths, a changed
//! directory (rename, untar), a queue of events the loop could not keep
//! up with, or a failed pass all fall back to a full `-u`
//! pass, and a full pass also runs every `rescan_interval`. A failed pass
//! is retried with exponential backoff, so an unreachable server delays
//! changes but loses none. Watching a remote source is not supported.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod inbox;

use notify::{RecursiveMode, Watcher};
use tokio::time::Instant;

use inbox::{Due, Inbox};

use crate::sync::{sync_paths, sync_up, Observer, Summary, SyncOptions, SyncTarget};

/// More changed paths than this at once: one full pass is cheaper than
/// that many HEADs (and the inbox stops tracking them one by one).
pub const FULL_PASS_OVER: usize = 2000;
/// Watcher events queued for the loop; past this they are counted as lost
/// and a full pass replaces them.
const EVENT_QUEUE: usize = 8192;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// With part of the tree unwatched (the inotify limit), full passes come
/// at least this often, so a change there waits at most this long.
pub const UNWATCHED_PASS: Duration = Duration::from_secs(60);

/// The inotify limit in force and the sysctl that sets it: the system's
/// `fs.inotify.max_user_watches`, or a user namespace's lower
/// `user.max_inotify_watches` (containers).
fn watch_limit() -> Option<(&'static str, u64)> {
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
    let sys =
        read("/proc/sys/fs/inotify/max_user_watches").map(|v| ("fs.inotify.max_user_watches", v));
    let ns = read("/proc/sys/user/max_inotify_watches").map(|v| ("user.max_inotify_watches", v));
    match (sys, ns) {
        (Some(s), Some(n)) if n.1 < s.1 => Some(n),
        (Some(s), _) => Some(s),
        (None, n) => n,
    }
}

/// The one line said when the watch limit is reached: what, how many
/// directories the tree has, the sysctl to raise and to how much, and
/// what happens meanwhile. Pure, for the unit test.
pub fn limit_message(
    root: &Path,
    dirs: u64,
    limit: Option<(&str, u64)>,
    every: Duration,
) -> String {
    let raise = match limit {
        // The limit is per user and shared with other programs: the tree
        // alone needs `dirs` watches on top of what is in use.
        Some((name, now)) => format!(
            "the inotify watch limit ({name} = {now}) is reached; raise it, e.g. `sysctl {name}={}`",
            now + dirs
        ),
        None => "the inotify watch limit is reached; raise fs.inotify.max_user_watches".into(),
    };
    format!(
        "{raise} to watch all {dirs} directories under {}; until then a full pass every {}s finds changes in the unwatched part",
        root.display(),
        every.as_secs()
    )
}

fn is_limit(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
}

fn count_dirs(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .count() as u64
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub debounce: Duration,
    pub rescan_interval: Duration,
}

/// What the loop reports besides transfer events.
pub trait WatchObserver: Observer {
    fn pass_done(&self, _full: bool, _summary: &Summary) {}
    fn note(&self, msg: &str);
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {message}")]
    Watcher { path: PathBuf, message: String },
}

/// Opening and reading (our own walk and uploads among them) must not
/// count as changes, or every pass would trigger the next.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn rel_of(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?;
    let s = rel.to_str()?;
    (!s.is_empty()).then(|| s.to_string())
}

pub async fn watch(
    target: &SyncTarget,
    opts: &SyncOptions,
    wopts: &WatchOptions,
    observer: &dyn WatchObserver,
) -> Result<(), WatchError> {
    // Events name canonical paths; the passes use the same root.
    let root = std::fs::canonicalize(&target.root).map_err(|e| WatchError::Watcher {
        path: target.root.clone(),
        message: e.to_string(),
    })?;
    let target = &SyncTarget {
        root: root.clone(),
        ..target.clone()
    };
    let cancel = &target.cancel;
    // A bounded queue: a burst the loop cannot keep up with (it may be in
    // a long pass) is noted as lost events, which the inbox turns into
    // one full pass, instead of growing without limit.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<notify::Result<notify::Event>>(EVENT_QUEUE);
    let dropped = Arc::new(AtomicBool::new(false));
    let dropped_in = dropped.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Reads are dropped before the queue: every full pass opens each
        // directory, and over 100,000 of them those events alone would
        // fill it and ask for the next pass.
        if let Ok(e) = &ev {
            if !e.need_rescan() && !changes_content(&e.kind) {
                return;
            }
        }
        if tx.try_send(ev).is_err() {
            dropped_in.store(true, Ordering::Relaxed);
        }
    })
    .map_err(|e| WatchError::Watcher {
        path: root.clone(),
        message: e.to_string(),
    })?;
    // Watch before the first pass, so nothing changed during it is missed.
    // At the inotify limit the watches made so far stay, and full passes
    // come often enough to cover the rest.
    let mut unwatched = false;
    let mut rescan_every = wopts.rescan_interval;
    let limit_reached = |unwatched: &mut bool, rescan_every: &mut Duration| {
        if !*unwatched {
            *unwatched = true;
            *rescan_every = (*rescan_every).min(UNWATCHED_PASS);
            let dirs = count_dirs(&root);
            observer.note(&limit_message(&root, dirs, watch_limit(), *rescan_every));
        }
    };
    match watcher.watch(&root, RecursiveMode::Recursive) {
        Ok(()) => {}
        Err(e) if is_limit(&e) => limit_reached(&mut unwatched, &mut rescan_every),
        Err(e) => {
            return Err(WatchError::Watcher {
                path: root.clone(),
                message: e.to_string(),
            })
        }
    }
    let mut inbox = Inbox::default();
    let mut backoff = Duration::from_secs(1);
    let mut retry_at: Option<Instant> = None;
    let mut next_rescan = Instant::now() + rescan_every;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            ev = rx.recv() => {
                match ev {
                    Some(Ok(event)) => {
                        if event.need_rescan() {
                            inbox.rescan();
                        }
                        if !changes_content(&event.kind) {
                            continue;
                        }
                        let now = Instant::now();
                        for p in &event.paths {
                            if let Some(rel) = rel_of(&root, p) {
                                inbox.touch(rel, now);
                            }
                        }
                    }
                    // A new directory past the limit: from now on part of
                    // the tree is unwatched.
                    Some(Err(e)) if is_limit(&e) => {
                        limit_reached(&mut unwatched, &mut rescan_every);
                        next_rescan = next_rescan.min(Instant::now() + rescan_every);
                        inbox.rescan();
                    }
                    Some(Err(e)) => {
                        observer.note(&format!("watcher error ({e}); doing a full pass"));
                        inbox.rescan();
                    }
                    None => return Err(WatchError::Watcher { path: root.clone(), message: "the watcher stopped".into() }),
                }
                if dropped.swap(false, Ordering::Relaxed) {
                    inbox.overflowed(Instant::now());
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        if dropped.swap(false, Ordering::Relaxed) {
            inbox.overflowed(now);
        }
        if retry_at.is_some_and(|t| now < t) {
            continue;
        }
        if now >= next_rescan {
            inbox.rescan();
        }
        let ok = match inbox.due(now, wopts.debounce) {
            Due::Nothing => continue,
            Due::Full => {
                // Paths that change during the pass stay in the inbox and
                // are looked at again afterwards.
                inbox.full_pass_started(Instant::now());
                match sync_up(target, opts, observer).await {
                    Ok(s) => {
                        observer.pass_done(true, &s);
                        next_rescan = Instant::now() + rescan_every;
                        s.failed == 0
                    }
                    Err(e) => {
                        observer.note(&format!("full pass failed: {e}"));
                        false
                    }
                }
            }
            Due::Paths(ready) => {
                inbox.taken(&ready);
                let out = sync_paths(target, &ready, opts, observer).await;
                let retry = Instant::now();
                for rel in out.still_changing {
                    inbox.touch(rel, retry);
                }
                if out.needs_full_pass {
                    inbox.rescan();
                }
                observer.pass_done(false, &out.summary);
                out.summary.failed == 0
            }
        };
        if cancel.is_cancelled() {
            return Ok(());
        }
        if ok {
            backoff = Duration::from_secs(1);
            retry_at = None;
        } else {
            // A full pass after the wait redoes whatever failed, whichever
            // paths it was.
            inbox.rescan();
            observer.note(&format!(
                "some changes could not be sent; trying again in {}s",
                backoff.as_secs()
            ));
            retry_at = Some(Instant::now() + backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_line_names_the_sysctl_and_the_number_needed() {
        let m = limit_message(
            Path::new("/srv/photos"),
            100_000,
            Some(("fs.inotify.max_user_watches", 8192)),
            Duration::from_secs(60),
        );
        assert!(m.contains("fs.inotify.max_user_watches = 8192"), "{m}");
        assert!(
            m.contains("sysctl fs.inotify.max_user_watches=108192"),
            "{m}"
        );
        assert!(m.contains("100000 directories under /srv/photos"), "{m}");
        assert!(m.contains("every 60s"), "{m}");
        assert!(!m.contains('\n'));
        let unknown = limit_message(Path::new("/x"), 3, None, Duration::from_secs(5));
        assert!(unknown.contains("fs.inotify.max_user_watches"), "{unknown}");
    }
}
