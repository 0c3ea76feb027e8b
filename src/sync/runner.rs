//! Carrying out what the plan decided, one file at a time: HEAD when the
//! listing could not decide, upload, download, skip, and the `--delete`
//! batches at the end. Jobs run `-j` at a time on tokio, sharing one
//! connection pool and one memory budget; a failed file becomes an event
//! and the rest carry on.

use std::collections::HashSet;
use std::path::PathBuf;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::delete_list::DeleteList;
use super::events::{emit, Event, FailKind, Observer, Summary};
use super::known::KnownMtimes;
use super::listing::RemoteEntry;
use super::one::{local_side, stored_side};
use super::plan::{decide, Decision, Reason};
use super::walk::LocalEntry;
use super::{SyncOptions, SyncTarget};
use crate::mtime::{parse_mtime, MTIME_KEY};
use crate::store::{head_if_exists, ObjectMeta, StoreError};
use crate::transfer::download::download_object;
use crate::transfer::paths::safe_relative_path;
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
    Skip(String, Reason),
    Report(Event),
}

pub(crate) struct Runner<'a> {
    pub target: &'a SyncTarget,
    pub opts: &'a SyncOptions,
    pub observer: &'a dyn Observer,
    pub known: &'a KnownMtimes,
    /// The local root as downloads and local deletes reach it: never
    /// through a link below it.
    pub dest: Destination,
}

impl Runner<'_> {
    fn ctx(&self, size: u64) -> Context {
        Context {
            store: self.target.store.clone(),
            progress: self.observer.progress(size),
            cancel: self.target.cancel.clone(),
        }
    }

    fn planned(&self, action: &'static str, rel: &str, reason: Reason) -> Option<Event> {
        self.opts.dry_run.then(|| Event::Planned {
            action,
            key: rel.to_string(),
            reason,
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
                    other => Some(undecidable(&local.key, other)),
                }
            }
            Job::Download(remote, dest, reason) => {
                // Below the big-file threshold one GET does it: its headers
                // carry the metadata a HEAD would fetch, and the listing
                // already gave size and ETag. Large objects need the HEAD
                // to plan ranges and resume.
                let meta = if remote.size > 0 && remote.size < self.opts.transfer.bigfile_threshold
                {
                    remote.listed_meta()
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
                    other => Some(undecidable(&remote.rel, other)),
                }
            }
        }
    }

    async fn upload(&self, e: LocalEntry, reason: Reason) -> Option<Event> {
        if let Some(p) = self.planned("upload", &e.key, reason) {
            return Some(p);
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

    /// HEAD, remembering the stored mtime it reveals for the next run.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let meta = head_if_exists(self.target.store.as_ref(), &self.target.bucket, key).await?;
        if let Some(m) = &meta {
            self.remember(key, m);
        }
        Ok(meta)
    }

    fn remember(&self, key: &str, m: &ObjectMeta) {
        self.known.record(
            key,
            &m.etag,
            m.size,
            Some(m.last_modified.unix_timestamp()),
            m.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)),
        );
    }

    /// HEAD of an object the listing showed; its absence now is a failure.
    async fn head_listed(&self, remote: &RemoteEntry) -> Result<ObjectMeta, Event> {
        match self.head(&remote.key).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(Event::failed(
                &remote.rel,
                "download",
                FailKind::Vanished,
                format!("{}: object vanished during the sync", remote.key),
            )),
            Err(err) => Err(Event::store_failed(&remote.rel, "stat", &err)),
        }
    }

    async fn download(
        &self,
        remote: RemoteEntry,
        rel: PathBuf,
        reason: Reason,
        meta: ObjectMeta,
    ) -> Option<Event> {
        if let Some(p) = self.planned("download", &remote.rel, reason) {
            return Some(p);
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
            let chunk = &chunk[..];
            let mut events: Vec<Event> = Vec::new();
            if self.opts.dry_run {
                events.extend(chunk.iter().map(|rel| Event::Planned {
                    action: "delete",
                    key: rel.clone(),
                    reason: Reason::NotInSource,
                }));
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
            let ev = if self.opts.dry_run {
                Event::Planned {
                    action: "delete",
                    key,
                    reason: Reason::NotInSource,
                }
            } else {
                self.remove_local(key)
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

fn undecidable(rel: &str, d: Decision) -> Event {
    // The HEAD gave every time the table needs, so this cannot happen; it
    // is reported rather than trusted to stay impossible.
    Event::failed(rel, "plan", FailKind::Store, format!("undecidable: {d:?}"))
}
