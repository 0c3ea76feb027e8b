//! Carrying out a sync. The walk (a blocking thread with rayon stats) and
//! the remote listing (a task) stream into a merge-join that emits jobs;
//! jobs run `jobs` at a time on tokio, sharing one connection pool and one
//! memory budget. A failed file is reported and the rest carry on.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::known::{Known, KnownMtimes};
use super::plan::{decide, merge_join, Decision, PlanOptions, Reason, Side, Time};
use super::walk::{walk, walk_all, LocalEntry, WalkItem, WalkOptions};
use crate::store::{ListEntry, ListRequest, ObjectMeta, ObjectStore, StoreError, StoreErrorKind};
use crate::transfer::download::download_object;
use crate::transfer::mtime::{from_datetime, parse_mtime, Nanos, MTIME_KEY};
use crate::transfer::paths::safe_relative_path;
use crate::transfer::{upload_file, Cancel, Context, Progress, TransferError, TransferOptions};

const SEC: Nanos = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub plan: PlanOptions,
    pub dry_run: bool,
    /// Files in flight at once.
    pub jobs: usize,
    pub walk: WalkOptions,
    pub transfer: TransferOptions,
    /// Cache of stored mtimes learned on earlier runs (see `known`).
    pub known_mtimes: Option<PathBuf>,
}

/// One thing that happened, for progress, `--json` and the summary.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Transferred {
        op: &'static str,
        key: String,
        bytes: u64,
        resumed: u64,
        reason: Reason,
    },
    Skipped {
        key: String,
        reason: Reason,
    },
    Deleted {
        key: String,
    },
    /// With --dry-run: what would happen.
    Planned {
        action: &'static str,
        key: String,
        reason: Reason,
    },
    Warning {
        path: String,
        message: String,
    },
    Failed {
        key: String,
        op: &'static str,
        message: String,
    },
}

pub trait Observer: Send + Sync {
    fn event(&self, e: &Event);
    /// A progress sink for one file transfer of `size` bytes.
    fn progress(&self, size: u64) -> Arc<dyn Progress>;
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub transferred: u64,
    pub bytes: u64,
    pub resumed_bytes: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub failed: u64,
    pub warnings: u64,
    pub interrupted: bool,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        match e {
            Event::Transferred { bytes, resumed, .. } => {
                self.transferred += 1;
                self.bytes += bytes;
                self.resumed_bytes += resumed;
            }
            Event::Skipped { .. } => self.skipped += 1,
            Event::Deleted { .. } => self.deleted += 1,
            Event::Planned { .. } => {}
            Event::Warning { .. } => self.warnings += 1,
            Event::Failed { .. } => self.failed += 1,
        }
    }
}

/// An object under the prefix, keyed relative to it.
#[derive(Debug, Clone)]
struct RemoteEntry {
    rel: String,
    key: String,
    size: u64,
    etag: String,
    last_modified: Nanos,
}

impl RemoteEntry {
    fn lm_secs(&self) -> i64 {
        self.last_modified.div_euclid(SEC) as i64
    }

    /// The object's side as far as the cache of known mtimes can tell.
    fn known_side(&self, known: &KnownMtimes) -> Option<Side> {
        let time = match known.lookup(&self.key, &self.etag, self.size, self.lm_secs())? {
            Known::Mtime(ns) => Time::stored(ns),
            Known::NoMetadata => Time::server(self.lm_secs() as Nanos * SEC),
        };
        Some(Side {
            size: self.size,
            time,
        })
    }

    fn side(&self) -> Side {
        let secs = self.last_modified.div_euclid(SEC) * SEC;
        Side {
            size: self.size,
            time: Time::Below { upper: secs + SEC },
        }
    }
}

/// The side an object presents once its HEAD is known.
pub fn stored_side(meta: &ObjectMeta) -> Side {
    let time = match meta.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)) {
        Some(ns) => Time::stored(ns),
        None => Time::server(from_datetime(meta.last_modified).div_euclid(SEC) * SEC),
    };
    Side {
        size: meta.size,
        time,
    }
}

fn local_side(e: &LocalEntry) -> Side {
    Side {
        size: e.size,
        time: Time::local(e.mtime),
    }
}

enum Job {
    Upload(LocalEntry, Reason),
    ResolveUpload(LocalEntry, RemoteEntry),
    Download(RemoteEntry, PathBuf, Reason),
    ResolveDownload(RemoteEntry, PathBuf, Option<LocalEntry>),
    Skip(String, Reason),
    Report(Event),
}

struct Runner<'a> {
    known: &'a KnownMtimes,
    store: Arc<dyn ObjectStore>,
    cancel: Cancel,
    bucket: &'a str,
    prefix: &'a str,
    opts: &'a SyncOptions,
    observer: &'a dyn Observer,
}

fn failure(key: &str, op: &'static str, e: impl std::fmt::Display) -> Event {
    Event::Failed {
        key: key.to_string(),
        op,
        message: e.to_string(),
    }
}

impl Runner<'_> {
    fn ctx(&self, size: u64) -> Context {
        Context {
            store: self.store.clone(),
            progress: self.observer.progress(size),
            cancel: self.cancel.clone(),
        }
    }

    fn planned(&self, action: &'static str, key: &str, reason: Reason) -> Option<Event> {
        self.opts.dry_run.then(|| Event::Planned {
            action,
            key: key.to_string(),
            reason,
        })
    }

    async fn upload(&self, e: LocalEntry, reason: Reason) -> Option<Event> {
        if let Some(p) = self.planned("upload", &e.key, reason) {
            return Some(p);
        }
        let key = format!("{}{}", self.prefix, e.key);
        match upload_file(
            &self.ctx(e.size),
            &self.opts.transfer,
            &e.path,
            self.bucket,
            &key,
        )
        .await
        {
            Ok(o) => {
                self.known
                    .record(&key, &o.etag, e.size, None, Some(e.mtime));
                Some(Event::Transferred {
                    op: "upload",
                    key: e.key,
                    bytes: o.bytes_sent,
                    resumed: o.bytes_resumed,
                    reason,
                })
            }
            Err(TransferError::Interrupted) => None,
            Err(err) => Some(failure(&e.path.display().to_string(), "upload", err)),
        }
    }

    /// HEAD, remembering the stored mtime it reveals for the next run.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.store.head_object(self.bucket, key).await {
            Ok(m) => {
                self.known.record(
                    key,
                    &m.etag,
                    m.size,
                    Some(m.last_modified.unix_timestamp()),
                    m.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)),
                );
                Ok(Some(m))
            }
            Err(e) if e.kind == StoreErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// HEAD of an object the listing showed; its absence now is a failure.
    async fn head_listed(&self, remote: &RemoteEntry) -> Result<ObjectMeta, Event> {
        match self.head(&remote.key).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(failure(
                &remote.key,
                "download",
                "object vanished during the sync",
            )),
            Err(err) => Err(failure(&remote.key, "stat", err)),
        }
    }

    async fn run(&self, job: Job) -> Option<Event> {
        if self.cancel.is_cancelled() {
            return None;
        }
        match job {
            Job::Report(e) => Some(e),
            Job::Skip(key, reason) => Some(Event::Skipped { key, reason }),
            Job::Upload(e, reason) => self.upload(e, reason).await,
            Job::ResolveUpload(local, remote) => {
                let meta = match self.head(&remote.key).await {
                    Ok(m) => m,
                    Err(err) => return Some(failure(&remote.key, "stat", err)),
                };
                match decide(
                    Some(local_side(&local)),
                    meta.as_ref().map(stored_side),
                    self.opts.plan,
                ) {
                    Decision::Transfer(r) => self.upload(local, r).await,
                    Decision::Skip(r) => Some(Event::Skipped {
                        key: local.key,
                        reason: r,
                    }),
                    other => Some(failure(
                        &local.key,
                        "plan",
                        format!("undecidable: {other:?}"),
                    )),
                }
            }
            Job::Download(remote, dest, reason) => {
                // Below the big-file threshold one GET does it: its headers
                // carry the metadata a HEAD would fetch, and the listing
                // already gave size and ETag. Large objects need the HEAD
                // to plan ranges and resume.
                let meta = if remote.size > 0 && remote.size < self.opts.transfer.bigfile_threshold
                {
                    ObjectMeta {
                        key: remote.key.clone(),
                        size: remote.size,
                        etag: remote.etag.clone(),
                        last_modified: time::OffsetDateTime::from_unix_timestamp_nanos(
                            remote.last_modified,
                        )
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                        metadata: Default::default(),
                        crc64: None,
                    }
                } else {
                    match self.head_listed(&remote).await {
                        Ok(m) => m,
                        Err(ev) => return Some(ev),
                    }
                };
                self.download(remote, dest, reason, meta).await
            }
            Job::ResolveDownload(remote, dest, local) => {
                let meta = match self.head_listed(&remote).await {
                    Ok(m) => m,
                    Err(ev) => return Some(ev),
                };
                match decide(
                    Some(stored_side(&meta)),
                    local.as_ref().map(local_side),
                    self.opts.plan,
                ) {
                    Decision::Transfer(r) => self.download(remote, dest, r, meta).await,
                    Decision::Skip(r) => Some(Event::Skipped {
                        key: remote.rel,
                        reason: r,
                    }),
                    other => Some(failure(
                        &remote.key,
                        "plan",
                        format!("undecidable: {other:?}"),
                    )),
                }
            }
        }
    }

    async fn download(
        &self,
        remote: RemoteEntry,
        dest: PathBuf,
        reason: Reason,
        meta: ObjectMeta,
    ) -> Option<Event> {
        if let Some(p) = self.planned("download", &remote.rel, reason) {
            return Some(p);
        }
        let ctx = self.ctx(meta.size);
        match download_object(
            &ctx,
            &self.opts.transfer,
            self.bucket,
            &remote.key,
            &dest,
            meta,
        )
        .await
        {
            Ok(o) => {
                if let Some(m) = &o.meta {
                    self.known.record(
                        &remote.key,
                        &m.etag,
                        m.size,
                        Some(m.last_modified.unix_timestamp()),
                        m.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)),
                    );
                }
                Some(Event::Transferred {
                    op: "download",
                    key: remote.rel,
                    bytes: o.bytes_received,
                    resumed: o.bytes_resumed,
                    reason,
                })
            }
            Err(TransferError::Interrupted) => None,
            Err(err) => Some(failure(&remote.key, "download", err)),
        }
    }
}

/// Lists every object under `prefix` that passes the filter, as pages.
async fn list_remote(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    opts: &WalkOptions,
    pages: mpsc::Sender<Vec<RemoteEntry>>,
) -> Result<(), StoreError> {
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_objects(
                bucket,
                &ListRequest {
                    prefix,
                    continuation: token.as_deref(),
                    ..Default::default()
                },
            )
            .await?;
        let entries = page
            .objects
            .into_iter()
            .filter_map(|o: ListEntry| {
                let rel = o.key.strip_prefix(prefix)?.to_string();
                // Directory markers carry no data.
                if rel.is_empty() || rel.ends_with('/') || !opts.filter.file(&rel) {
                    return None;
                }
                Some(RemoteEntry {
                    rel,
                    key: o.key,
                    size: o.size,
                    etag: o.etag,
                    last_modified: from_datetime(o.last_modified),
                })
            })
            .collect();
        if pages.send(entries).await.is_err() {
            // The consumer stopped (interrupted); no point listing further.
            return Ok(());
        }
        match page.next_token {
            Some(t) if Some(&t) != token.as_ref() => token = Some(t),
            _ => return Ok(()),
        }
    }
}

async fn drive(runner: &Runner<'_>, jobs: mpsc::Receiver<Job>, summary: &mut Summary) {
    let stream = futures::stream::unfold(
        jobs,
        |mut rx| async move { rx.recv().await.map(|j| (j, rx)) },
    );
    let results = stream
        .map(|job| runner.run(job))
        .buffer_unordered(runner.opts.jobs.max(1));
    let mut results = std::pin::pin!(results);
    while let Some(ev) = results.next().await {
        if let Some(ev) = ev {
            summary.add(&ev);
            runner.observer.event(&ev);
        }
    }
}

fn walk_event(item: WalkItem) -> Option<Event> {
    match item {
        WalkItem::File(_) => None,
        WalkItem::Skipped { path, why, .. } => Some(Event::Warning {
            path: path.display().to_string(),
            message: why,
        }),
        WalkItem::Error { path, why, .. } => {
            Some(failure(&path.display().to_string(), "read", why))
        }
    }
}

/// Uploads the tree at `root` under `prefix` (which is empty or ends with `/`).
pub async fn sync_up(
    store: Arc<dyn ObjectStore>,
    cancel: Cancel,
    root: &Path,
    bucket: &str,
    prefix: &str,
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> Result<Summary, StoreError> {
    let started = Instant::now();
    let (local_tx, mut local_rx) = mpsc::channel::<Vec<WalkItem>>(16);
    let root_owned = root.to_path_buf();
    let walk_opts = opts.walk.clone();
    let walker = tokio::task::spawn_blocking(move || {
        // A closed channel means the sync stopped (interrupted or fatal):
        // stop walking too.
        walk(&root_owned, &walk_opts, |batch| {
            local_tx.blocking_send(batch).is_ok()
        })
    });
    let (remote_tx, mut remote_rx) = mpsc::channel::<Vec<RemoteEntry>>(16);
    let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel::<StoreError>();
    let lister = {
        let store = store.clone();
        let bucket = bucket.to_string();
        let prefix = prefix.to_string();
        let walk_opts = opts.walk.clone();
        tokio::spawn(async move {
            if let Err(e) =
                list_remote(store.as_ref(), &bucket, &prefix, &walk_opts, remote_tx).await
            {
                let _ = failed_tx.send(e);
            }
        })
    };
    let (job_tx, job_rx) = mpsc::channel::<Job>(1024);
    let known = KnownMtimes::load(opts.known_mtimes.clone());
    let known_ref = &known;
    let runner = Runner {
        known: &known,
        store: store.clone(),
        cancel: cancel.clone(),
        bucket,
        prefix,
        opts,
        observer,
    };
    let mut summary = Summary::default();
    let plan = opts.plan;
    // The merge-join: advance whichever side has the smaller key.
    let merger = async move {
        let mut locals: VecDeque<WalkItem> = VecDeque::new();
        let mut remotes: VecDeque<RemoteEntry> = VecDeque::new();
        let (mut local_done, mut remote_done) = (false, false);
        let mut deletes: Vec<String> = Vec::new();
        loop {
            // Walk items without a key are reported in place.
            while locals.front().is_some_and(|i| i.key().is_none()) {
                if let Some(ev) = walk_event(locals.pop_front().expect("front exists")) {
                    let _ = job_tx.send(Job::Report(ev)).await;
                }
            }
            if locals.is_empty() && !local_done {
                match local_rx.recv().await {
                    Some(b) => locals.extend(b),
                    None => local_done = true,
                }
                continue;
            }
            if remotes.is_empty() && !remote_done {
                match remote_rx.recv().await {
                    Some(p) => remotes.extend(p),
                    None => {
                        // Without the whole listing nothing can be compared
                        // (and -u would re-send everything): stop here.
                        if let Ok(e) = failed_rx.try_recv() {
                            return Err(e);
                        }
                        remote_done = true;
                    }
                }
                continue;
            }
            let order = match (locals.front().and_then(WalkItem::key), remotes.front()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(l), Some(r)) => l.cmp(r.rel.as_str()),
            };
            let (local, remote) = match order {
                std::cmp::Ordering::Less => (locals.pop_front(), None),
                std::cmp::Ordering::Greater => (None, remotes.pop_front()),
                std::cmp::Ordering::Equal => (locals.pop_front(), remotes.pop_front()),
            };
            // A skipped or unreadable source item is reported, and its
            // destination copy is left alone (never deleted).
            let local = match local {
                Some(WalkItem::File(e)) => Some(e),
                Some(other) => {
                    if let Some(ev) = walk_event(other) {
                        let _ = job_tx.send(Job::Report(ev)).await;
                    }
                    continue;
                }
                None => None,
            };
            let job = match decide(
                local.as_ref().map(local_side),
                remote.as_ref().map(RemoteEntry::side),
                plan,
            ) {
                Decision::Transfer(r) => Job::Upload(local.expect("transfer has a source"), r),
                Decision::NeedMetadata => {
                    let local = local.expect("source");
                    let remote = remote.expect("destination");
                    // A remembered mtime decides without a HEAD.
                    match remote
                        .known_side(known_ref)
                        .map(|side| decide(Some(local_side(&local)), Some(side), plan))
                    {
                        Some(Decision::Transfer(r)) => Job::Upload(local, r),
                        Some(Decision::Skip(r)) => Job::Skip(local.key, r),
                        _ => Job::ResolveUpload(local, remote),
                    }
                }
                Decision::Skip(Reason::NotInSource) => continue,
                Decision::Skip(r) => Job::Skip(local.map(|l| l.key).unwrap_or_default(), r),
                Decision::Delete => {
                    deletes.push(remote.expect("delete has a destination").key);
                    continue;
                }
            };
            if job_tx.send(job).await.is_err() {
                break;
            }
        }
        Ok(deletes)
    };
    let (deletes, ()) = tokio::join!(merger, drive(&runner, job_rx, &mut summary));
    known.save();
    let _ = lister.await;
    let deletes = deletes?;
    let _ = walker.await;
    if !cancel.is_cancelled() {
        delete_remote(&runner, deletes, &mut summary).await;
    }
    summary.interrupted = cancel.is_cancelled();
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "sync up done");
    Ok(summary)
}

async fn delete_remote(runner: &Runner<'_>, keys: Vec<String>, summary: &mut Summary) {
    for chunk in keys.chunks(1000) {
        let mut events: Vec<Event> = Vec::new();
        if runner.opts.dry_run {
            events.extend(chunk.iter().map(|k| Event::Planned {
                action: "delete",
                key: k[runner.prefix.len()..].to_string(),
                reason: Reason::NotInSource,
            }));
        } else {
            match runner.store.delete_objects(runner.bucket, chunk).await {
                Ok(failures) => {
                    let failed: HashSet<&str> = failures.iter().map(|f| f.key.as_str()).collect();
                    for f in &failures {
                        events.push(failure(
                            &f.key,
                            "delete",
                            format!("{}: {}", f.code, f.message),
                        ));
                    }
                    events.extend(
                        chunk
                            .iter()
                            .filter(|k| !failed.contains(k.as_str()))
                            .map(|k| Event::Deleted {
                                key: k[runner.prefix.len()..].to_string(),
                            }),
                    );
                }
                Err(e) => events.extend(chunk.iter().map(|k| failure(k, "delete", &e))),
            }
        }
        for ev in events {
            summary.add(&ev);
            runner.observer.event(&ev);
        }
    }
}

/// Downloads everything under `prefix` into `root`.
pub async fn sync_down(
    store: Arc<dyn ObjectStore>,
    cancel: Cancel,
    bucket: &str,
    prefix: &str,
    root: &Path,
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> Result<Summary, StoreError> {
    let known = KnownMtimes::load(opts.known_mtimes.clone());
    let mut remote: Vec<RemoteEntry> = Vec::new();
    let (tx, mut rx) = mpsc::channel(4);
    let (listed, ()) = tokio::join!(
        list_remote(store.as_ref(), bucket, prefix, &opts.walk, tx),
        async {
            while let Some(p) = rx.recv().await {
                remote.extend(p);
            }
        }
    );
    listed?;
    let root_owned = root.to_path_buf();
    let walk_opts = opts.walk.clone();
    let local_items = tokio::task::spawn_blocking(move || walk_all(&root_owned, &walk_opts))
        .await
        .map_err(|e| StoreError::new(StoreErrorKind::Protocol, e.to_string()))?;
    let local: Vec<LocalEntry> = local_items
        .into_iter()
        .filter_map(|i| match i {
            WalkItem::File(e) => Some(e),
            _ => None,
        })
        .collect();
    // `a` and `a/b` cannot both exist on a file system.
    let dirs: HashSet<&str> = remote
        .iter()
        .flat_map(|e| e.rel.match_indices('/').map(move |(i, _)| &e.rel[..i]))
        .collect();
    let mut jobs = Vec::new();
    let mut deletes = Vec::new();
    for (r, l) in merge_join(&remote, &local, |r| r.rel.as_str(), |l| l.key.as_str()) {
        if let Some(r) = r {
            if dirs.contains(r.rel.as_str()) {
                jobs.push(Job::Report(failure(
                    &r.key,
                    "download",
                    format!("'{}' is both an object and a prefix of other objects; a file and a directory cannot share the name", r.rel),
                )));
                continue;
            }
            let dest = match safe_relative_path(&r.rel) {
                Ok(p) => root.join(p),
                Err(why) => {
                    jobs.push(Job::Report(failure(
                        &r.key,
                        "download",
                        format!(
                            "refused: the key would be written outside {} ({why})",
                            root.display()
                        ),
                    )));
                    continue;
                }
            };
            let job = match decide(Some(r.side()), l.map(local_side), opts.plan) {
                Decision::Transfer(reason) => Job::Download(r.clone(), dest, reason),
                Decision::NeedMetadata => match r
                    .known_side(&known)
                    .map(|side| decide(Some(side), l.map(local_side), opts.plan))
                {
                    Some(Decision::Transfer(reason)) => Job::Download(r.clone(), dest, reason),
                    Some(Decision::Skip(reason)) => Job::Skip(r.rel.clone(), reason),
                    _ => Job::ResolveDownload(r.clone(), dest, l.cloned()),
                },
                Decision::Skip(reason) => Job::Skip(r.rel.clone(), reason),
                Decision::Delete => unreachable!("a source entry is never deleted"),
            };
            jobs.push(job);
        } else if let Some(l) = l {
            if decide(None, Some(local_side(l)), opts.plan) == Decision::Delete {
                deletes.push(l.clone());
            }
        }
    }
    let runner = Runner {
        known: &known,
        store,
        cancel: cancel.clone(),
        bucket,
        prefix,
        opts,
        observer,
    };
    let (tx, rx) = mpsc::channel(1024);
    let feeder = async move {
        for j in jobs {
            if tx.send(j).await.is_err() {
                break;
            }
        }
    };
    let mut summary = Summary::default();
    tokio::join!(feeder, drive(&runner, rx, &mut summary));
    if !cancel.is_cancelled() {
        for l in deletes {
            let ev = if opts.dry_run {
                Event::Planned {
                    action: "delete",
                    key: l.key,
                    reason: Reason::NotInSource,
                }
            } else {
                match std::fs::remove_file(&l.path) {
                    Ok(()) => Event::Deleted { key: l.key },
                    Err(e) => failure(&l.path.display().to_string(), "delete", e),
                }
            };
            summary.add(&ev);
            observer.event(&ev);
        }
    }
    known.save();
    summary.interrupted = cancel.is_cancelled();
    Ok(summary)
}

/// What [`sync_paths`] could not settle by itself.
#[derive(Debug, Default)]
pub struct PathsOutcome {
    pub summary: Summary,
    /// Directories among the paths: their subtrees need a full pass.
    pub needs_full_pass: bool,
    /// Files that changed while being read: try again after the debounce.
    pub still_changing: Vec<String>,
}

/// Brings the given relative paths of `root` up to date under `prefix`:
/// files by the -u rule (one HEAD each), vanished paths deleted when the
/// plan allows it (with everything under them, since they may have been
/// directories). Watch mode feeds changed paths through here.
#[allow(clippy::too_many_arguments)]
pub async fn sync_paths(
    store: Arc<dyn ObjectStore>,
    cancel: Cancel,
    root: &Path,
    bucket: &str,
    prefix: &str,
    rels: &[String],
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> PathsOutcome {
    // Changed paths are few; each gets its HEAD rather than the cache.
    let known = KnownMtimes::default();
    let runner = Runner {
        known: &known,
        store: store.clone(),
        cancel: cancel.clone(),
        bucket,
        prefix,
        opts,
        observer,
    };
    let mut out = PathsOutcome::default();
    let mut jobs = Vec::new();
    let mut gone = Vec::new();
    for rel in rels {
        let path = root.join(rel);
        let meta = if opts.walk.follow_symlinks {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        };
        match meta {
            Ok(m) if m.is_dir() => out.needs_full_pass = true,
            Ok(m) if m.is_file() => {
                if !opts.walk.filter.file(rel) {
                    continue;
                }
                let entry = LocalEntry {
                    key: rel.clone(),
                    path,
                    size: m.len(),
                    mtime: crate::transfer::mtime::file_mtime(&m),
                };
                let remote = RemoteEntry {
                    rel: rel.clone(),
                    key: format!("{prefix}{rel}"),
                    size: 0,
                    etag: String::new(),
                    last_modified: 0,
                };
                jobs.push(if opts.plan.update {
                    Job::ResolveUpload(entry, remote)
                } else {
                    Job::Upload(entry, Reason::NoUpdateCheck)
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if opts.plan.delete && opts.walk.filter.file(rel) {
                    gone.push(rel.clone());
                }
            }
            Err(e) => {
                let ev = failure(&path.display().to_string(), "read", e);
                out.summary.add(&ev);
                observer.event(&ev);
            }
        }
    }
    let results: Vec<Option<Event>> = futures::stream::iter(jobs)
        .map(|j| runner.run(j))
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    for ev in results.into_iter().flatten() {
        // A file rewritten mid-read is not a failure: it gets another turn.
        if let Event::Failed { key, message, .. } = &ev {
            if message.contains("changed while it was being read")
                || message.contains("changed during the upload")
            {
                if let Ok(rel) = Path::new(key).strip_prefix(root) {
                    out.still_changing.push(rel.to_string_lossy().into_owned());
                    continue;
                }
            }
        }
        out.summary.add(&ev);
        observer.event(&ev);
    }
    if !gone.is_empty() && !cancel.is_cancelled() {
        // Only keys that exist are deleted (and reported): the path itself
        // if it was a file, everything under it if it was a directory.
        let mut existing = Vec::new();
        for rel in &gone {
            let key = format!("{prefix}{rel}");
            if matches!(runner.head(&key).await, Ok(Some(_))) {
                existing.push(key);
            }
            let sub = format!("{prefix}{rel}/");
            match crate::store::list_all_objects(store.as_ref(), bucket, &sub).await {
                Ok(objs) => existing.extend(objs.into_iter().map(|o| o.key)),
                Err(e) => {
                    let ev = failure(&sub, "list", e);
                    out.summary.add(&ev);
                    observer.event(&ev);
                }
            }
        }
        delete_remote(&runner, existing, &mut out.summary).await;
    }
    out
}
