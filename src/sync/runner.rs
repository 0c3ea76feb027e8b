//! Carrying out what the plan decided, one file at a time: HEAD when the
//! listing could not decide, upload, download, skip, and the `--delete`
//! batches at the end. Jobs run `-j` at a time on tokio, sharing one
//! connection pool and one memory budget; a failed file becomes an event
//! and the rest carry on.

use std::collections::HashSet;
use std::path::PathBuf;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::backup::Backups;
use super::check::local::{digests as file_digest, ReadError};
use super::content::{self, Settled};
use super::delete_list::DeleteList;
use super::events::{emit, Event, FailKind, Observer, Summary};
use super::known::digests::{FileDigests, Sum};
use super::known::KnownMtimes;
use super::listing::RemoteEntry;
use super::one::{local_side, stored_side};
use super::plan::{decide, Compare, Decision, PlanOptions, Reason};
use super::walk::LocalEntry;
use super::{SyncOptions, SyncTarget};
use crate::mtime::{parse_mtime, MTIME_KEY};
use crate::store::{head_if_exists, part_bounds, EtagKind, ObjectMeta, StoreError};
use crate::transfer::download::download_object;
use crate::transfer::paths::safe_relative_path;
use crate::transfer::verify::Check;
use crate::transfer::{upload_file, Context, Destination, Target, TransferError};

/// One unit of work for the runner.
pub(crate) enum Job {
    Upload(LocalEntry, Reason),
    /// Upload if the object's HEAD (its stored mtime) says so.
    ResolveUpload(LocalEntry),
    /// A download to this checked relative path below the root.
    Download(RemoteEntry, PathBuf, Reason),
    /// Download if the object's HEAD says so, against the local file.
    ResolveDownload(RemoteEntry, PathBuf, Option<LocalEntry>),
    /// `--checksum` with equal sizes: the digests the caches could not
    /// settle.
    Content(Box<Pair>),
    Skip(String, Reason),
    Report(Event),
}

/// A file and an object of the same size, for `--checksum`.
pub(crate) struct Pair {
    pub local: LocalEntry,
    pub remote: RemoteEntry,
    /// `None`: an upload; else the checked relative path of a download.
    pub download_to: Option<PathBuf>,
    /// The file's digests the cache holds (for this very file).
    pub sums: Vec<Sum>,
    /// The file's MD5 is not the listed ETag, which has an MD5's form.
    pub md5_differed: bool,
}

pub(crate) struct Runner<'a> {
    pub target: &'a SyncTarget,
    pub opts: &'a SyncOptions,
    pub observer: &'a dyn Observer,
    pub known: &'a KnownMtimes,
    pub digests: &'a FileDigests,
    /// The local root as downloads and local deletes reach it: never
    /// through a link below it.
    pub dest: Destination,
    /// What is replaced or deleted goes here first.
    pub backups: Backups,
}

impl Runner<'_> {
    fn ctx(&self, size: u64) -> Context {
        Context {
            store: self.target.store.clone(),
            progress: self.observer.progress(size),
            cancel: self.target.cancel.clone(),
        }
    }

    pub(crate) fn planned(
        &self,
        action: &'static str,
        rel: &str,
        reason: Reason,
        size: u64,
    ) -> Option<Event> {
        if self.opts.dry_run && self.backups.enabled() && reason != Reason::New {
            self.observer.event(&Event::Planned {
                action: "back up",
                key: rel.to_string(),
                reason,
                size: 0,
            });
        }
        self.opts.dry_run.then(|| Event::Planned {
            action,
            key: rel.to_string(),
            reason,
            size,
        })
    }

    /// Runs one job; `None` when it produced nothing to report (interrupted).
    pub async fn run(&self, job: Job) -> Option<Event> {
        if self.target.cancel.is_cancelled() {
            return None;
        }
        match job {
            Job::Report(e) => Some(e),
            Job::Skip(key, reason) => Some(Event::Skipped { key, reason }),
            Job::Upload(e, reason) => self.upload(e, reason).await,
            Job::ResolveUpload(local) => {
                let key = self.target.key(&local.key);
                let meta = match self.head(&key).await {
                    Ok(m) => m,
                    Err(err) => return Some(Event::store_failed(&local.key, "stat", &err)),
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
                    Decision::NeedContent => {
                        let meta = meta.expect("NeedContent has a destination");
                        let pair = Pair {
                            remote: RemoteEntry::from_meta(self.target.rel(&key), &meta),
                            sums: Vec::new(),
                            local,
                            download_to: None,
                            md5_differed: false,
                        };
                        self.content(pair, Some(meta)).await
                    }
                    other => Some(undecidable(&local.key, other)),
                }
            }
            Job::Download(remote, dest, reason) => self.fetch(remote, dest, reason, None).await,
            Job::Content(pair) => self.content(*pair, None).await,
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
                    other => Some(undecidable(&remote.rel, other)),
                }
            }
        }
    }

    /// A planned download. Below the big-file threshold one GET does it:
    /// its headers carry the metadata a HEAD would fetch, and the listing
    /// already gave size and ETag. Large objects need the HEAD to plan
    /// ranges and resume.
    async fn fetch(
        &self,
        remote: RemoteEntry,
        dest: PathBuf,
        reason: Reason,
        meta: Option<ObjectMeta>,
    ) -> Option<Event> {
        let meta = match meta {
            Some(m) => m,
            None if remote.size > 0 && remote.size < self.opts.transfer.bigfile_threshold => {
                remote.listed_meta()
            }
            None => match self.head_listed(&remote).await {
                Ok(m) => m,
                Err(ev) => return Some(ev),
            },
        };
        self.download(remote, dest, reason, meta).await
    }

    /// `--checksum`: the file's digest against the object's, by the
    /// listed MD5 where the ETag has its form (a mismatch confirmed with a
    /// HEAD), else by what a HEAD shows the store keeps. Where the store
    /// keeps nothing to compare, the times decide as with -u.
    async fn content(&self, pair: Pair, meta: Option<ObjectMeta>) -> Option<Event> {
        let rel = pair.local.key.clone();
        let by_etag = EtagKind::from_form(&pair.remote.etag) == EtagKind::Md5 && !pair.md5_differed;
        let (check, meta) = if by_etag && meta.is_none() {
            (
                Check::Md5 {
                    etag: pair.remote.etag.clone(),
                },
                None,
            )
        } else {
            let m = match meta {
                Some(m) => m,
                None => match self.head_listed(&pair.remote).await {
                    Ok(m) => m,
                    Err(ev) => return Some(ev),
                },
            };
            if m.size != pair.local.size {
                return self.settled(pair, Some(m), false, Reason::Resized).await;
            }
            let check = Check::choose(&m, true);
            if pair.md5_differed && matches!(check, Check::Md5 { .. }) {
                // The store says the ETag is the MD5 the file did not match.
                return self
                    .settled(pair, Some(m), false, Reason::ContentDiffers)
                    .await;
            }
            (check, Some(m))
        };
        if check == Check::Size {
            let m = meta.expect("only a HEAD leaves nothing but the size");
            return self.by_times(pair, m).await;
        }
        let bounds = match (&check, &meta) {
            (Check::Composite { parts, .. }, Some(m)) => {
                let store = self.target.store.as_ref();
                match part_bounds(store, &self.target.bucket, &pair.remote.key, *parts, m).await {
                    Ok(b) => b.into_iter().map(|p| p.range).collect(),
                    Err(err) => return Some(Event::store_failed(&rel, "stat", &err)),
                }
            }
            _ => Vec::new(),
        };
        let name = content::sum_name(&check, &bounds).expect("a digest check has a name");
        let cached = pair
            .sums
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone());
        let mut pair = pair;
        let (mine, theirs) = match cached {
            Some(v) => (v, remote_value(&check)),
            None => {
                let (path, size) = (pair.local.path.clone(), pair.local.size);
                let c = check.clone();
                let b = bounds.clone();
                let read = tokio::task::spawn_blocking(move || file_digest(&path, size, &c, &b))
                    .await
                    .unwrap_or_else(|e| Err(ReadError::Io(std::io::Error::other(e.to_string()))));
                let d = match read {
                    Ok(Some(d)) => d,
                    Ok(None) => unreachable!("a digest check reads the file"),
                    Err(err) => return Some(read_failed(&pair.local, &err)),
                };
                pair.sums.retain(|(n, _)| *n != name);
                pair.sums.push((name.clone(), d.local.clone()));
                self.digests.record(&pair.local, pair.sums.clone());
                (d.local, d.remote)
            }
        };
        if mine.eq_ignore_ascii_case(&theirs) {
            return self.settled(pair, meta, true, Reason::SameContent).await;
        }
        if matches!(check, Check::Md5 { .. }) && meta.is_none() {
            // Only looks like an MD5, perhaps (SSE-KMS, SSE-C): ask. The
            // file's digests so far go along, so none is read twice.
            let again = Pair {
                md5_differed: true,
                ..pair
            };
            return Box::pin(self.content(again, None)).await;
        }
        self.settled(pair, meta, false, Reason::ContentDiffers)
            .await
    }

    /// The content's verdict carried out: skip, or send the source.
    async fn settled(
        &self,
        pair: Pair,
        meta: Option<ObjectMeta>,
        same: bool,
        reason: Reason,
    ) -> Option<Event> {
        if same {
            return Some(Event::Skipped {
                key: pair.local.key,
                reason,
            });
        }
        match pair.download_to {
            None => self.upload(pair.local, reason).await,
            Some(dest) => self.fetch(pair.remote, dest, reason, meta).await,
        }
    }

    /// No digest both sides have: the -u table by times.
    async fn by_times(&self, pair: Pair, meta: ObjectMeta) -> Option<Event> {
        let by_time = PlanOptions {
            update: true,
            delete: false,
            compare: Compare::Time,
        };
        let (file, object) = (local_side(&pair.local), stored_side(&meta));
        let d = match pair.download_to {
            None => decide(Some(file), Some(object), by_time),
            Some(_) => decide(Some(object), Some(file), by_time),
        };
        match d {
            Decision::Transfer(r) => self.settled(pair, Some(meta), false, r).await,
            Decision::Skip(r) => self.settled(pair, Some(meta), true, r).await,
            other => Some(undecidable(&pair.local.key, other)),
        }
    }

    async fn upload(&self, e: LocalEntry, reason: Reason) -> Option<Event> {
        if let Some(p) = self.planned("upload", &e.key, reason, e.size) {
            return Some(p);
        }
        if reason != Reason::New {
            match self.backups.object(self.target, &e.key, "upload").await {
                Ok(to) => self.backed_up(&e.key, to),
                Err(ev) => return Some(ev),
            }
        }
        let key = self.target.key(&e.key);
        let bucket = &self.target.bucket;
        match upload_file(
            &self.ctx(e.size),
            &self.opts.transfer,
            &e.path,
            bucket,
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
            Err(err) => Some(Event::transfer_failed(&e.key, "upload", &err)),
        }
    }

    /// Says a backup was made (it is counted by the backups, and by the
    /// observer's totals).
    pub(crate) fn backed_up(&self, key: &str, to: Option<String>) {
        if let Some(to) = to {
            self.observer.event(&Event::BackedUp {
                key: key.to_string(),
                to,
            });
        }
    }

    /// HEAD, remembering the stored mtime it reveals for the next run.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let meta = head_if_exists(self.target.store.as_ref(), &self.target.bucket, key).await?;
        if let Some(m) = &meta {
            self.remember(key, m);
        }
        Ok(meta)
    }

    fn remember(&self, key: &str, m: &ObjectMeta) {
        remember(self.known, key, m);
    }

    /// HEAD of an object the listing showed; its absence now is a failure.
    async fn head_listed(&self, remote: &RemoteEntry) -> Result<ObjectMeta, Event> {
        listed_found(remote, "download", "sync", self.head(&remote.key).await)
    }

    async fn download(
        &self,
        remote: RemoteEntry,
        rel: PathBuf,
        reason: Reason,
        meta: ObjectMeta,
    ) -> Option<Event> {
        if let Some(p) = self.planned("download", &remote.rel, reason, meta.size) {
            return Some(p);
        }
        if reason != Reason::New {
            match self.backups.file(&self.dest, &remote.rel, "download") {
                Ok(to) => self.backed_up(&remote.rel, to),
                Err(ev) => return Some(ev),
            }
        }
        let ctx = self.ctx(meta.size);
        let bucket = &self.target.bucket;
        let target = Target {
            dest: &self.dest,
            rel: &rel,
        };
        match download_object(&ctx, &self.opts.transfer, bucket, &remote.key, target, meta).await {
            Ok(o) => {
                if let Some(m) = &o.meta {
                    self.remember(&remote.key, m);
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
            Err(err) => Some(Event::transfer_failed(&remote.rel, "download", &err)),
        }
    }

    /// Runs jobs from `jobs` until it closes, `-j` at a time, reporting
    /// each result.
    pub async fn drive(&self, jobs: mpsc::Receiver<Job>, summary: &mut Summary) {
        let stream =
            futures::stream::unfold(
                jobs,
                |mut rx| async move { rx.recv().await.map(|j| (j, rx)) },
            );
        let results = stream
            .map(|job| self.run(job))
            .buffer_unordered(self.opts.jobs.max(1));
        let mut results = std::pin::pin!(results);
        while let Some(ev) = results.next().await {
            if let Some(ev) = ev {
                emit(summary, self.observer, ev);
            }
        }
    }

    /// Deletes objects (relative keys) in batches of 1000 (or plans to).
    pub async fn delete_remote(&self, rels: DeleteList, summary: &mut Summary) {
        let mut keys = rels.into_keys();
        loop {
            let mut chunk = Vec::with_capacity(1000);
            for k in keys.by_ref().take(1000) {
                match k {
                    Ok(k) => chunk.push(k),
                    Err(e) => emit(summary, self.observer, unreadable_list(&e)),
                }
            }
            if chunk.is_empty() {
                break;
            }
            let mut events: Vec<Event> = Vec::new();
            if self.backups.enabled() && !self.opts.dry_run {
                chunk = self.back_up_objects(chunk, &mut events).await;
            }
            let chunk = &chunk[..];
            if self.opts.dry_run {
                events.extend(
                    chunk
                        .iter()
                        .filter_map(|rel| self.planned("delete", rel, Reason::NotInSource, 0)),
                );
            } else {
                let keys: Vec<String> = chunk.iter().map(|r| self.target.key(r)).collect();
                let store = self.target.store.as_ref();
                match store.delete_objects(&self.target.bucket, &keys).await {
                    Ok(failures) => {
                        let failed: HashSet<&str> =
                            failures.iter().map(|f| f.key.as_str()).collect();
                        for f in &failures {
                            let rel = self.target.rel(&f.key);
                            events.push(Event::failed(
                                rel,
                                "delete",
                                FailKind::Store,
                                format!("{}: {}: {}", f.key, f.code, f.message),
                            ));
                        }
                        events.extend(
                            chunk
                                .iter()
                                .zip(&keys)
                                .filter(|(_, k)| !failed.contains(k.as_str()))
                                .map(|(rel, _)| Event::Deleted { key: rel.clone() }),
                        );
                    }
                    Err(e) => {
                        events.extend(chunk.iter().map(|r| Event::store_failed(r, "delete", &e)))
                    }
                }
            }
            for ev in events {
                emit(summary, self.observer, ev);
            }
        }
    }

    /// Backs up the objects of `rels` before their delete, `-j` at a time;
    /// those whose backup failed are reported and kept.
    async fn back_up_objects(&self, rels: Vec<String>, events: &mut Vec<Event>) -> Vec<String> {
        let results: Vec<(String, Result<Option<String>, Event>)> = futures::stream::iter(rels)
            .map(|rel| async move {
                let r = self.backups.object(self.target, &rel, "delete").await;
                (rel, r)
            })
            .buffered(self.opts.jobs.max(1))
            .collect()
            .await;
        let mut kept = Vec::with_capacity(results.len());
        for (rel, r) in results {
            match r {
                Ok(to) => {
                    self.backed_up(&rel, to);
                    kept.push(rel);
                }
                Err(ev) => events.push(ev),
            }
        }
        kept
    }

    /// Deletes local files (relative keys), or plans to.
    pub fn delete_local(&self, rels: DeleteList, summary: &mut Summary) {
        for key in rels.into_keys() {
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    emit(summary, self.observer, unreadable_list(&e));
                    continue;
                }
            };
            let ev = match self.planned("delete", &key, Reason::NotInSource, 0) {
                Some(p) => p,
                None => self.remove_local(key),
            };
            emit(summary, self.observer, ev);
        }
    }

    /// Deletes one local file, reached the way downloads reach it: a link
    /// on the way is refused, so a delete never leaves the root.
    fn remove_local(&self, key: String) -> Event {
        let path = self.target.root.join(&key);
        let rel = match safe_relative_path(&key) {
            Ok(r) => r,
            Err(why) => {
                return Event::failed(
                    &key,
                    "delete",
                    FailKind::UnsafeKey,
                    format!("{}: not deleted ({why})", path.display()),
                )
            }
        };
        if self.backups.enabled() {
            return match self.backups.file(&self.dest, &key, "delete") {
                Ok(to) => {
                    self.backed_up(&key, to);
                    Event::Deleted { key }
                }
                Err(ev) => ev,
            };
        }
        let removed = match self.dest.dir_for(&rel, false) {
            Ok(Some((dir, name))) => dir.remove(name).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e.to_string()),
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("not deleted: {e}")),
        };
        match removed {
            Ok(()) => Event::Deleted { key },
            Err(why) => Event::failed(
                &key,
                "delete",
                FailKind::Io,
                format!("{}: {why}", path.display()),
            ),
        }
    }
}

/// A HEAD of an object the listing showed: its absence now is a failure
/// of `op`, vanished during the `run` (a sync, a copy).
pub(crate) fn listed_found(
    remote: &RemoteEntry,
    op: &'static str,
    run: &str,
    head: Result<Option<ObjectMeta>, StoreError>,
) -> Result<ObjectMeta, Event> {
    match head {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Event::failed(
            &remote.rel,
            op,
            FailKind::Vanished,
            format!("{}: object vanished during the {run}", remote.key),
        )),
        Err(err) => Err(Event::store_failed(&remote.rel, "stat", &err)),
    }
}

/// What a HEAD of `key` showed, kept for the next run: its stored mtime
/// and the full-object checksum the store keeps.
pub(crate) fn remember(known: &KnownMtimes, key: &str, m: &ObjectMeta) {
    known.record_with_sum(
        key,
        &m.etag,
        m.size,
        Some(m.last_modified.unix_timestamp()),
        m.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)),
        content::stored_sum(&Check::choose(m, true)),
    );
}

/// The spilled delete list could not be read back: what is left of it is
/// not deleted, and the run says so.
fn unreadable_list(e: &std::io::Error) -> Event {
    Event::failed(
        "",
        "delete",
        FailKind::Io,
        format!(
            "the list of files to delete could not be read back ({e}); the rest were not deleted"
        ),
    )
}

/// `--checksum`: the pair settled from the caches (no request, no read),
/// or the job that settles it. `download_to`: the checked path of a
/// download.
/// `sums`: what the digest cache holds for the file.
pub(crate) fn content_job(
    remote: RemoteEntry,
    local: LocalEntry,
    sums: Vec<Sum>,
    known: &KnownMtimes,
    download_to: Option<PathBuf>,
) -> Job {
    let stored = remote.stored_sum(known);
    let rel = local.key.clone();
    let settled = content::settle(&sums, &remote.etag, stored.as_ref());
    let verdict = match settled {
        Settled::Same => return Job::Skip(rel, Reason::SameContent),
        Settled::Differs => Some(Reason::ContentDiffers),
        Settled::Md5Differs | Settled::Open => None,
    };
    match (verdict, download_to) {
        (Some(r), None) => Job::Upload(local, r),
        (Some(r), Some(dest)) => Job::Download(remote, dest, r),
        (None, download_to) => Job::Content(Box::new(Pair {
            md5_differed: settled == Settled::Md5Differs,
            local,
            remote,
            download_to,
            sums,
        })),
    }
}

/// The store's side of a digest check, in the form the file's is made.
fn remote_value(check: &Check) -> String {
    match check {
        Check::Crc { kind, expected } => kind.show(*expected),
        Check::Sha { expected } => expected.to_base64(),
        Check::Composite { expected, parts } => format!("{}-{parts}", expected.to_base64()),
        Check::Md5 { etag } => etag.clone(),
        Check::Size => String::new(),
    }
}

fn read_failed(e: &LocalEntry, err: &ReadError) -> Event {
    let kind = match err {
        ReadError::Changed { .. } => FailKind::SourceChanged,
        ReadError::Io(_) => FailKind::Unreadable,
    };
    Event::failed(&e.key, "read", kind, format!("{}: {err}", e.path.display()))
}

fn undecidable(rel: &str, d: Decision) -> Event {
    // The HEAD gave every time the table needs, so this cannot happen; it
    // is reported rather than trusted to stay impossible.
    Event::failed(rel, "plan", FailKind::Store, format!("undecidable: {d:?}"))
}
