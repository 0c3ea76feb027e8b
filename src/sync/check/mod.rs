//! `ferry check`: whether a local tree and a prefix hold the same files,
//! without changing either. The walk and the listing stream through the
//! same merge as a sync (memory does not grow with the tree); each key is
//! decided from sizes first, then from the strongest digest the store
//! keeps, computed here from the file (`compare` decides, `local` reads).
//! An MD5 ETag from the listing needs no request; a mismatch against it is
//! confirmed with a HEAD before it is reported, since under SSE-KMS or
//! SSE-C an ETag only looks like an MD5.

pub mod compare;
pub(crate) mod local;
mod remotes;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

pub use compare::{Depth, Direction, Finding};
pub use remotes::check_between;

use super::events::FailKind;
use super::listing::{spawn_listing, spawn_walk, RemoteEntry};
use super::pipeline::{merge_and_run, Planned, Side};
use super::walk::{LocalEntry, WalkItem, WalkOptions};
use super::{SyncError, SyncTarget};
use crate::store::{head_if_exists, part_bounds, GetRequest};
use crate::transfer::verify::Check;
use compare::{after_head, digests, first, same, First};
use local::{Cursor, ReadError};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub depth: Depth,
    /// Only what the source has is checked; the destination's extras are
    /// not findings.
    pub one_way: bool,
    /// Files compared at once.
    pub jobs: usize,
    pub walk: WalkOptions,
}

/// The counts of one check.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CheckSummary {
    pub same: u64,
    pub differ: u64,
    pub missing: u64,
    pub extra: u64,
    /// Equal in size, nothing kept to compare the content with.
    pub size_only: u64,
    pub failed: u64,
    pub warnings: u64,
    /// Bytes of objects read with `--download`.
    pub bytes_downloaded: u64,
    pub interrupted: bool,
}

impl CheckSummary {
    fn add(&mut self, f: &Finding) {
        match f {
            Finding::Same { .. } => self.same += 1,
            Finding::Differs { .. } => self.differ += 1,
            Finding::Missing { .. } => self.missing += 1,
            Finding::Extra { .. } => self.extra += 1,
            Finding::SizeOnly { .. } => self.size_only += 1,
            Finding::Failed { .. } => self.failed += 1,
            Finding::Warning { .. } => self.warnings += 1,
        }
    }

    /// Whether the two sides were found to hold the same files.
    pub fn all_same(&self) -> bool {
        self.differ + self.missing + self.extra + self.failed == 0 && !self.interrupted
    }
}

pub trait CheckObserver: Send + Sync {
    fn finding(&self, f: &Finding);
}

enum Job {
    Report(Finding),
    Md5(LocalEntry, RemoteEntry, String),
    /// `md5_differed`: the file's MD5 did not match the listed ETag.
    Head(LocalEntry, RemoteEntry, bool),
    Download(LocalEntry, RemoteEntry),
    Times(LocalEntry, RemoteEntry),
}

/// Compares the tree at `target.root` with the objects under
/// `target.prefix`; `direction` says which is the source.
pub async fn check_tree(
    target: &SyncTarget,
    direction: Direction,
    opts: &CheckOptions,
    observer: &dyn CheckObserver,
) -> Result<CheckSummary, SyncError> {
    super::check_source_root(&target.root)?;
    let (walker, walk_rx) = spawn_walk(target.root.clone(), opts.walk.clone(), false);
    let (lister, list_rx) = spawn_listing(target, &opts.walk.filter, false);
    let mut summary = CheckSummary::default();
    let checker = Checker {
        target,
        bytes: Default::default(),
    };
    let (depth, one_way) = (opts.depth, opts.one_way);
    let merged = merge_and_run(
        &target.cancel,
        Side {
            feed: walk_rx,
            name: "walk",
        },
        Side {
            feed: list_rx,
            name: "listing",
        },
        |local, remote| plan(local, remote, direction, depth, one_way),
        |jobs| drive_findings(jobs, opts.jobs, |j| checker.run(j), observer, &mut summary),
    )
    .await;
    let _ = lister.await;
    let _ = walker.await;
    merged?;
    summary.bytes_downloaded = checker.bytes.load(std::sync::atomic::Ordering::Relaxed);
    summary.interrupted = target.cancel.is_cancelled();
    Ok(summary)
}

fn plan(
    local: Option<WalkItem>,
    remote: Option<RemoteEntry>,
    direction: Direction,
    depth: Depth,
    one_way: bool,
) -> Planned<Job> {
    let local = match local {
        Some(WalkItem::File(e)) => Some(e),
        Some(WalkItem::Skipped { path, why, .. }) => {
            return Planned::Job(Job::Report(Finding::Warning {
                path: path.display().to_string(),
                message: format!("{why}; not compared"),
            }))
        }
        Some(WalkItem::Error { path, key, why }) => {
            return Planned::Job(Job::Report(Finding::Failed {
                key: key.unwrap_or_else(|| path.display().to_string()),
                kind: FailKind::Unreadable,
                message: format!("{}: {why}", path.display()),
            }))
        }
        None => None,
    };
    match first(local.as_ref(), remote.as_ref(), direction, depth, one_way) {
        None => Planned::Nothing,
        Some(First::Found(f)) => Planned::Job(Job::Report(f)),
        Some(step) => {
            let (l, r) = (local.expect("both sides"), remote.expect("both sides"));
            Planned::Job(match step {
                First::Md5(etag) => Job::Md5(l, r, etag),
                First::Head => Job::Head(l, r, false),
                First::Times => Job::Times(l, r),
                _ => Job::Download(l, r),
            })
        }
    }
}

struct Checker<'a> {
    target: &'a SyncTarget,
    bytes: std::sync::atomic::AtomicU64,
}

/// Runs `n` jobs at once, each to a finding (none once interrupted),
/// counted and reported as they come.
async fn drive_findings<J, F, Fut>(
    jobs: mpsc::Receiver<J>,
    n: usize,
    run: F,
    observer: &dyn CheckObserver,
    summary: &mut CheckSummary,
) where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = Option<Finding>>,
{
    let stream = futures::stream::unfold(
        jobs,
        |mut rx| async move { rx.recv().await.map(|j| (j, rx)) },
    );
    let results = stream.map(run).buffer_unordered(n.max(1));
    let mut results = std::pin::pin!(results);
    while let Some(f) = results.next().await {
        if let Some(f) = f {
            summary.add(&f);
            observer.finding(&f);
        }
    }
}

impl Checker<'_> {
    /// One key's finding; `None` once interrupted.
    async fn run(&self, job: Job) -> Option<Finding> {
        if self.target.cancel.is_cancelled() {
            return None;
        }
        Some(match job {
            Job::Report(f) => f,
            Job::Md5(l, r, etag) => {
                let path = l.path.clone();
                match blocking(move || local::md5_hex(&path, l.size).map(|h| (h, l))).await {
                    Ok((h, _)) if h.eq_ignore_ascii_case(&etag) => same(&r.rel, "MD5"),
                    Ok((_, l)) => self.head(l, r, true).await,
                    Err(e) => read_failed(&r.rel, &e),
                }
            }
            Job::Head(l, r, md5_differed) => self.head(l, r, md5_differed).await,
            Job::Download(l, r) => self.download(l, r).await,
            Job::Times(l, r) => {
                let store = self.target.store.as_ref();
                match head_if_exists(store, &self.target.bucket, &r.key).await {
                    Ok(Some(m)) => compare::by_times(&l, &m),
                    Ok(None) => vanished(&r),
                    Err(e) => store_failed(&r.rel, &e),
                }
            }
        })
    }

    async fn head(&self, l: LocalEntry, r: RemoteEntry, md5_differed: bool) -> Finding {
        let store = self.target.store.as_ref();
        let bucket = &self.target.bucket;
        let meta = match head_if_exists(store, bucket, &r.key).await {
            Ok(Some(m)) => m,
            Ok(None) => return vanished(&r),
            Err(e) => return store_failed(&r.rel, &e),
        };
        let check = match after_head(&r.rel, l.size, &meta, md5_differed) {
            Ok(c) => c,
            Err(f) => return f,
        };
        let bounds = match &check {
            Check::Composite { parts, .. } => {
                match part_bounds(store, bucket, &r.key, *parts, &meta).await {
                    Ok(b) => b.into_iter().map(|p| p.range).collect(),
                    Err(e) => return store_failed(&r.rel, &e),
                }
            }
            _ => Vec::new(),
        };
        let path = l.path.clone();
        match blocking(move || local::digests(&path, l.size, &check, &bounds)).await {
            Ok(Some(d)) => digests(&r.rel, &d.name, &d.local, &d.remote),
            Ok(None) => Finding::SizeOnly {
                key: r.rel,
                why: "nothing kept to compare with".into(),
            },
            Err(e) => read_failed(&r.rel, &e),
        }
    }

    /// The object's bytes against the file's, pinned to the listed ETag.
    async fn download(&self, l: LocalEntry, r: RemoteEntry) -> Finding {
        let path = l.path.clone();
        let file = match blocking(move || local::open(&path, l.size)).await {
            Ok(f) => f,
            Err(e) => return read_failed(&r.rel, &e),
        };
        let store = self.target.store.as_ref();
        let req = GetRequest::whole().if_match(Some(&r.etag));
        let out = match store.get_object(&self.target.bucket, &r.key, &req).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return vanished(&r),
            Err(e) => return store_failed(&r.rel, &e),
        };
        let mut body = out.body;
        let mut cursor = Some(Cursor::new(file));
        let mut at = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return store_failed(&r.rel, &e),
            };
            let mut c = cursor.take().expect("put back after each chunk");
            let n = chunk.len() as u64;
            self.bytes
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            let same_bytes = match tokio::task::spawn_blocking(move || {
                let m = c.matches(&chunk);
                (c, m)
            })
            .await
            {
                Ok((c, m)) => {
                    cursor = Some(c);
                    m
                }
                Err(e) => return read_failed(&r.rel, &ReadError::Io(std::io::Error::other(e))),
            };
            match same_bytes {
                Ok(true) => {}
                Ok(false) => {
                    return Finding::Differs {
                        key: r.rel,
                        why: format!("the bytes differ within {at}..{}", at + n),
                    }
                }
                Err(e) => return read_failed(&r.rel, &ReadError::Io(e)),
            }
            at += n;
            if self.target.cancel.is_cancelled() {
                break;
            }
        }
        if at != r.size {
            return store_failed(
                &r.rel,
                &crate::store::StoreError::new(
                    crate::store::StoreErrorKind::Truncated,
                    format!("{}: body ended after {at} of {} bytes", r.key, r.size),
                ),
            );
        }
        same(&r.rel, "bytes")
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ReadError::Io(std::io::Error::other(e))))
}

fn read_failed(key: &str, e: &ReadError) -> Finding {
    let kind = match e {
        ReadError::Changed { .. } => FailKind::SourceChanged,
        ReadError::Io(_) => FailKind::Io,
    };
    Finding::Failed {
        key: key.into(),
        kind,
        message: format!("{key}: cannot read the local file: {e}"),
    }
}

fn store_failed(key: &str, e: &crate::store::StoreError) -> Finding {
    Finding::Failed {
        key: key.into(),
        kind: FailKind::Store,
        message: e.to_string(),
    }
}

fn vanished(r: &RemoteEntry) -> Finding {
    Finding::Failed {
        key: r.rel.clone(),
        kind: FailKind::Vanished,
        message: format!("{}: the object vanished during the check", r.key),
    }
}

#[cfg(test)]
mod tests;
