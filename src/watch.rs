//! Watch mode: after a full `-u` sync, follow the local source with
//! `notify` and bring changed paths up to date once they have been quiet
//! for the debounce window.
//!
//! Correctness never rests on the event stream alone: an overflowing or
//! failing watcher, a burst larger than [`FULL_PASS_OVER`] paths, a changed
//! directory (rename, untar) or a failed pass all fall back to a full `-u`
//! pass, and a full pass also runs every `rescan_interval`. A failed pass
//! is retried with exponential backoff, so an unreachable server delays
//! changes but loses none. Watching a remote source is not supported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::time::Instant;

use crate::sync::{sync_paths, sync_up, Observer, Summary, SyncOptions, SyncTarget};

/// More changed paths than this at once: one full pass is cheaper than
/// that many HEADs.
pub const FULL_PASS_OVER: usize = 2000;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

struct Inbox {
    dirty: HashMap<String, Instant>,
    rescan: Arc<AtomicBool>,
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })
    .map_err(|e| WatchError::Watcher {
        path: root.clone(),
        message: e.to_string(),
    })?;
    // Watch before the first pass, so nothing changed during it is missed.
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| WatchError::Watcher {
            path: root.clone(),
            message: e.to_string(),
        })?;
    let mut inbox = Inbox {
        dirty: HashMap::new(),
        rescan: Arc::new(AtomicBool::new(true)),
    };
    let mut backoff = Duration::from_secs(1);
    let mut retry_at: Option<Instant> = None;
    let mut next_rescan = Instant::now() + wopts.rescan_interval;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            ev = rx.recv() => {
                match ev {
                    Some(Ok(event)) => {
                        if event.need_rescan() {
                            inbox.rescan.store(true, Ordering::Relaxed);
                        }
                        if !changes_content(&event.kind) {
                            continue;
                        }
                        let now = Instant::now();
                        for p in &event.paths {
                            if let Some(rel) = rel_of(&root, p) {
                                inbox.dirty.insert(rel, now);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        observer.note(&format!("watcher error ({e}); doing a full pass"));
                        inbox.rescan.store(true, Ordering::Relaxed);
                    }
                    None => return Err(WatchError::Watcher { path: root.clone(), message: "the watcher stopped".into() }),
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        if retry_at.is_some_and(|t| now < t) {
            continue;
        }
        if now >= next_rescan {
            inbox.rescan.store(true, Ordering::Relaxed);
        }
        let ready: Vec<String> = inbox
            .dirty
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= wopts.debounce)
            .map(|(k, _)| k.clone())
            .collect();
        let full = inbox.rescan.load(Ordering::Relaxed) || ready.len() > FULL_PASS_OVER;
        if !full && ready.is_empty() {
            continue;
        }
        let ok = if full {
            // Paths that change during the pass are still marked dirty and
            // are looked at again afterwards.
            let started = Instant::now();
            inbox.rescan.store(false, Ordering::Relaxed);
            inbox.dirty.retain(|_, t| *t > started);
            match sync_up(target, opts, observer).await {
                Ok(s) => {
                    observer.pass_done(true, &s);
                    next_rescan = Instant::now() + wopts.rescan_interval;
                    s.failed == 0
                }
                Err(e) => {
                    observer.note(&format!("full pass failed: {e}"));
                    false
                }
            }
        } else {
            for k in &ready {
                inbox.dirty.remove(k);
            }
            let mut sorted = ready;
            sorted.sort();
            let out = sync_paths(target, &sorted, opts, observer).await;
            let retry = Instant::now();
            for rel in out.still_changing {
                inbox.dirty.insert(rel, retry);
            }
            if out.needs_full_pass {
                inbox.rescan.store(true, Ordering::Relaxed);
            }
            observer.pass_done(false, &out.summary);
            out.summary.failed == 0
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
            inbox.rescan.store(true, Ordering::Relaxed);
            observer.note(&format!(
                "some changes could not be sent; trying again in {}s",
                backoff.as_secs()
            ));
            retry_at = Some(Instant::now() + backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
