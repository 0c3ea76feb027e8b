//! Copying a prefix to a prefix (`cp -r [-u] s3://a/p/ s3://b/q/`): the
//! two listings stream through the same merge as a local tree, each key
//! is decided by the same table, and the runner of the destination side
//! backs up and deletes as for an upload. On one store an object is
//! copied server-side (CopyObject, or UploadPartCopy parts past the
//! single-copy limit): no byte passes through ferry. Between stores (two
//! endpoints, or S3 and OSS) it is streamed through memory, never disk,
//! with its metadata, mtime and Content-Type.
//!
//! Before any time is compared, an equal size and ETag settle a pair as
//! the same content: a server-side copy keeps the ETag, so a rerun after
//! a copy needs nothing but the two listings.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::backup::Backups;
use super::events::{emit, Event, FailKind, Observer, Summary};
use super::file_rules::FileRules;
use super::known::digests::FileDigests;
use super::known::KnownMtimes;
use super::listing::{spawn_listing, RemoteEntry};
use super::one::stored_side;
use super::pipeline::{merge_and_run, Planned, Side};
use super::plan::{decide, Compare, Decision, PlanOptions, Reason};
use super::runner::{listed_found, remember, Runner};
use super::{Seen, SyncError, SyncOptions, SyncTarget};
use crate::mtime::{format_mtime, from_datetime, MTIME_KEY};
use crate::store::{copy_object_any_size, head_if_exists, ObjectMeta, ObjectOptions, PutOptions};
use crate::transfer::stream::{copy_stream, CopyEnds};
use crate::transfer::verify::Check;
use crate::transfer::{Context, Destination, NoProgress, TransferError};

/// One key's work.
pub(crate) enum CopyJob {
    Copy(RemoteEntry, Reason),
    /// Only the two objects' HEADs (stored mtimes, checksums) can decide.
    Resolve(RemoteEntry, RemoteEntry),
    Skip(String, Reason),
}

/// What a copy between prefixes knows beyond [`SyncOptions`].
#[derive(Debug, Clone, Default)]
pub struct BetweenOptions {
    /// The source prefix's cache of known mtimes (`opts.known_mtimes` is
    /// the destination's).
    pub source_known: Option<std::path::PathBuf>,
    /// Both ends speak one dialect (S3 or OSS): storage class and
    /// encryption names carry over.
    pub same_dialect: bool,
}

/// Copies what `src.prefix` holds to `dst.prefix` (the `root` of both
/// targets is unused).
pub async fn sync_between(
    src: &SyncTarget,
    dst: &SyncTarget,
    between: BetweenOptions,
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> Result<Summary, SyncError> {
    let (src_lister, src_rx) = spawn_listing(src, &opts.walk.filter, false);
    let (dst_lister, dst_rx) = spawn_listing(dst, &opts.walk.filter, false);
    let known = KnownMtimes::load(opts.known_mtimes.clone());
    let known_src = KnownMtimes::load(between.source_known.clone());
    let digests = FileDigests::load(None);
    let copier = Copier {
        src,
        known_src: &known_src,
        same_store: Arc::ptr_eq(&src.store, &dst.store),
        same_dialect: between.same_dialect,
        runner: Runner {
            target: dst,
            opts,
            observer,
            known: &known,
            digests: &digests,
            dest: Destination::new(""),
            backups: Backups::new(opts.backup.as_ref()),
        },
    };
    let mut summary = Summary::default();
    let mut seen = Seen::default();
    let deletes = merge_and_run(
        &dst.cancel,
        Side {
            feed: src_rx,
            name: "source listing",
        },
        Side {
            feed: dst_rx,
            name: "destination listing",
        },
        |s, d| plan_between(s, d, opts.plan, opts.rules, (&known_src, &known), &mut seen),
        |jobs| copier.drive(jobs, &mut summary),
    )
    .await;
    let whole = deletes.is_ok() && !dst.cancel.is_cancelled();
    known.save(whole);
    known_src.save(whole);
    let _ = src_lister.await;
    let _ = dst_lister.await;
    let deletes = deletes?;
    if !dst.cancel.is_cancelled() {
        let deletes = seen.gate(deletes, &mut summary, opts.deletes, observer);
        copier.runner.delete_remote(deletes, &mut summary).await;
    }
    summary.backed_up = copier.runner.backups.made();
    summary.interrupted = dst.cancel.is_cancelled();
    Ok(summary)
}

/// One key: the source's object, the destination's.
fn plan_between(
    src: Option<RemoteEntry>,
    dst: Option<RemoteEntry>,
    plan: PlanOptions,
    rules: FileRules,
    (known_src, known_dst): (&KnownMtimes, &KnownMtimes),
    seen: &mut Seen,
) -> Planned<CopyJob> {
    if let Some(d) = &dst {
        known_dst.listed(&d.key);
    }
    let Some(s) = src else {
        return match dst {
            Some(d)
                if rules.takes(d.size, d.last_modified)
                    && decide(None, Some(d.side()), plan) == Decision::Delete =>
            {
                seen.view.dest_entries += 1;
                Planned::Delete(d.rel)
            }
            Some(d) if rules.takes(d.size, d.last_modified) => {
                seen.view.dest_entries += 1;
                Planned::Nothing
            }
            _ => Planned::Nothing,
        };
    };
    known_src.listed(&s.key);
    if !rules.takes(s.size, s.last_modified) {
        return Planned::Nothing;
    }
    seen.view.source_files += 1;
    let Some(d) = dst else {
        return Planned::Job(CopyJob::Copy(s, Reason::New));
    };
    seen.view.dest_entries += 1;
    if same_content(&s, &d, plan) {
        return Planned::Job(CopyJob::Skip(s.rel, Reason::SameContent));
    }
    let side = |e: &RemoteEntry, known: &KnownMtimes| e.known_side(known).unwrap_or(e.side());
    Planned::Job(
        match decide(Some(side(&s, known_src)), Some(side(&d, known_dst)), plan) {
            Decision::Transfer(r) => CopyJob::Copy(s, r),
            Decision::Skip(r) => CopyJob::Skip(s.rel, r),
            Decision::NeedMetadata | Decision::NeedContent => CopyJob::Resolve(s, d),
            // The table deletes only what the source lacks.
            Decision::Delete => return Planned::Nothing,
        },
    )
}

/// Pure: whether the listings alone show the two objects hold the same
/// bytes: equal sizes and equal ETags, where the comparison asks about
/// content or times (`--size-only` and `--ignore-existing` decide alone).
pub(crate) fn same_content(s: &RemoteEntry, d: &RemoteEntry, plan: PlanOptions) -> bool {
    plan.update
        && matches!(plan.compare, Compare::Time | Compare::Checksum)
        && s.size == d.size
        && !s.etag.is_empty()
        && s.etag == d.etag
}

/// Pure: what a copy between stores stores with the new object: the
/// source's metadata with its mtime (its Last-Modified where it carried
/// none, so a later `-u` compares the right time), its Content-Type and
/// caching headers; storage class, encryption, ACL and tags are the
/// command's own (class names differ between S3 and OSS), else the
/// source's where both ends speak the same dialect.
pub(crate) fn carried(src: &ObjectMeta, own: &ObjectOptions, same_dialect: bool) -> PutOptions {
    let mut metadata = src.metadata.clone();
    metadata
        .entry(MTIME_KEY.to_string())
        .or_insert_with(|| format_mtime(from_datetime(src.last_modified)));
    let from = &src.object;
    let pick = |mine: &Option<String>, theirs: &Option<String>, carry: bool| {
        mine.clone().or_else(|| theirs.clone().filter(|_| carry))
    };
    PutOptions {
        metadata,
        content_type: src.content_type.clone(),
        object: ObjectOptions {
            storage_class: pick(&own.storage_class, &from.storage_class, same_dialect),
            encryption: own
                .encryption
                .clone()
                .or_else(|| from.encryption.clone().filter(|_| same_dialect)),
            acl: own.acl.clone(),
            cache_control: pick(&own.cache_control, &from.cache_control, true),
            content_disposition: pick(&own.content_disposition, &from.content_disposition, true),
            content_encoding: pick(&own.content_encoding, &from.content_encoding, true),
            expires: pick(&own.expires, &from.expires, true),
            tagging: own.tagging.clone(),
        },
        checksum: None,
    }
}

struct Copier<'a> {
    src: &'a SyncTarget,
    known_src: &'a KnownMtimes,
    same_store: bool,
    same_dialect: bool,
    /// The destination's runner: its HEADs, backups and deletes.
    runner: Runner<'a>,
}

impl Copier<'_> {
    async fn drive(&self, jobs: mpsc::Receiver<CopyJob>, summary: &mut Summary) {
        let stream =
            futures::stream::unfold(
                jobs,
                |mut rx| async move { rx.recv().await.map(|j| (j, rx)) },
            );
        let results = stream
            .map(|job| self.run(job))
            .buffer_unordered(self.runner.opts.jobs.max(1));
        let mut results = std::pin::pin!(results);
        while let Some(ev) = results.next().await {
            if let Some(ev) = ev {
                emit(summary, self.runner.observer, ev);
            }
        }
    }

    async fn run(&self, job: CopyJob) -> Option<Event> {
        if self.runner.target.cancel.is_cancelled() {
            return None;
        }
        match job {
            CopyJob::Skip(key, reason) => Some(Event::Skipped { key, reason }),
            CopyJob::Copy(s, reason) => self.copy(s, reason, None).await,
            CopyJob::Resolve(s, d) => self.resolve(s, d).await,
        }
    }

    /// Both HEADs, then the table with stored times; with `--checksum`,
    /// the checksums the store keeps for both, where they are comparable.
    async fn resolve(&self, s: RemoteEntry, d: RemoteEntry) -> Option<Event> {
        let src = match self.head_source(&s).await {
            Ok(m) => m,
            Err(ev) => return Some(ev),
        };
        let dst = match self.runner.head(&d.key).await {
            Ok(Some(m)) => m,
            // Gone since the listing: nothing to compare with.
            Ok(None) => return self.copy(s, Reason::New, Some(src)).await,
            Err(err) => return Some(Event::store_failed(&d.rel, "stat", &err)),
        };
        let plan = self.runner.opts.plan;
        let by_times = PlanOptions {
            compare: Compare::Time,
            ..plan
        };
        let mut decision = decide(Some(stored_side(&src)), Some(stored_side(&dst)), plan);
        if decision == Decision::NeedContent {
            let sum = |m: &ObjectMeta| super::content::stored_sum(&Check::choose(m, true));
            decision = match (sum(&src), sum(&dst)) {
                (Some(a), Some(b)) if a == b => Decision::Skip(Reason::SameContent),
                (Some(a), Some(b)) if a.split('=').next() == b.split('=').next() => {
                    Decision::Transfer(Reason::ContentDiffers)
                }
                _ => decide(Some(stored_side(&src)), Some(stored_side(&dst)), by_times),
            };
        }
        match decision {
            Decision::Transfer(r) => self.copy(s, r, Some(src)).await,
            Decision::Skip(r) => Some(Event::Skipped {
                key: s.rel,
                reason: r,
            }),
            other => Some(Event::failed(
                &s.rel,
                "plan",
                FailKind::Store,
                format!("undecidable: {other:?}"),
            )),
        }
    }

    async fn head_source(&self, s: &RemoteEntry) -> Result<ObjectMeta, Event> {
        let head = head_if_exists(self.src.store.as_ref(), &self.src.bucket, &s.key).await;
        if let Ok(Some(m)) = &head {
            remember(self.known_src, &s.key, m);
        }
        listed_found(s, "copy", "copy", head)
    }

    async fn copy(
        &self,
        s: RemoteEntry,
        reason: Reason,
        meta: Option<ObjectMeta>,
    ) -> Option<Event> {
        let r = &self.runner;
        let action = if self.same_store { "copy" } else { "stream" };
        if let Some(p) = r.planned(action, &s.rel, reason, s.size) {
            return Some(p);
        }
        if reason != Reason::New {
            match r.backups.object(r.target, &s.rel, "copy").await {
                Ok(to) => r.backed_up(&s.rel, to),
                Err(ev) => return Some(ev),
            }
        }
        let key = r.target.key(&s.rel);
        let (bucket, dst_store) = (&r.target.bucket, r.target.store.as_ref());
        let sent = if self.same_store {
            let limits = dst_store.copy_limits();
            copy_object_any_size(
                dst_store,
                &self.src.bucket,
                &s.key,
                bucket,
                &key,
                None,
                &limits,
            )
            .await
            .map(|_| 0)
            .map_err(TransferError::from)
        } else {
            let src = match meta {
                Some(m) => m,
                None => match self.head_source(&s).await {
                    Ok(m) => m,
                    Err(ev) => return Some(ev),
                },
            };
            let opts = &r.opts.transfer;
            let put = carried(&src, &opts.object, self.same_dialect);
            let from = Context {
                store: self.src.store.clone(),
                progress: Arc::new(NoProgress),
                cancel: r.target.cancel.clone(),
            };
            let to = Context {
                store: r.target.store.clone(),
                progress: r.observer.progress(src.size),
                cancel: r.target.cancel.clone(),
            };
            let ends = CopyEnds {
                from: &from,
                to: &to,
                src_bucket: &self.src.bucket,
                src,
                version_id: None,
                bucket,
                key: &key,
            };
            copy_stream(ends, opts, put).await.map(|o| o.bytes_sent)
        };
        match sent {
            Ok(bytes) => Some(Event::Transferred {
                op: "copy",
                key: s.rel,
                bytes: if self.same_store { s.size } else { bytes },
                resumed: 0,
                reason,
            }),
            Err(TransferError::Interrupted) => None,
            Err(err) => Some(Event::transfer_failed(&s.rel, "copy", &err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Encryption;

    fn entry(etag: &str, size: u64) -> RemoteEntry {
        RemoteEntry {
            rel: "k".into(),
            key: "p/k".into(),
            size,
            etag: etag.into(),
            last_modified: 0,
            prefix_of_others: false,
        }
    }

    #[test]
    fn equal_etags_and_sizes_are_the_same_content_under_time_and_checksum_rules() {
        let plan = |update, compare| PlanOptions {
            update,
            delete: false,
            compare,
        };
        let (a, b) = (entry("\"x\"", 5), entry("\"x\"", 5));
        assert!(same_content(&a, &b, plan(true, Compare::Time)));
        assert!(same_content(&a, &b, plan(true, Compare::Checksum)));
        assert!(
            !same_content(&a, &b, plan(false, Compare::Time)),
            "without -u all is sent"
        );
        assert!(!same_content(&a, &b, plan(true, Compare::SizeOnly)));
        assert!(!same_content(
            &a,
            &entry("\"y\"", 5),
            plan(true, Compare::Time)
        ));
        assert!(!same_content(
            &a,
            &entry("\"x\"", 6),
            plan(true, Compare::Time)
        ));
        assert!(!same_content(
            &entry("", 5),
            &entry("", 5),
            plan(true, Compare::Time)
        ));
    }

    #[test]
    fn a_copy_between_stores_carries_what_makes_the_object_and_not_the_dialects_names() {
        let mut src = entry("\"x\"", 5).listed_meta();
        src.metadata.insert("owner".into(), "ops".into());
        src.content_type = Some("text/html".into());
        src.object.storage_class = Some("STANDARD_IA".into());
        src.object.encryption = Some(Encryption::Aes256);
        src.object.cache_control = Some("max-age=60".into());
        let none = ObjectOptions::default();
        let across = carried(&src, &none, false);
        assert_eq!(across.metadata["owner"], "ops");
        assert_eq!(
            across.metadata[MTIME_KEY],
            format_mtime(from_datetime(src.last_modified)),
            "the source's time is kept where it had no mtime"
        );
        assert_eq!(across.content_type.as_deref(), Some("text/html"));
        assert_eq!(across.object.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(across.object.storage_class, None);
        assert_eq!(across.object.encryption, None);
        let same = carried(&src, &none, true);
        assert_eq!(same.object.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(same.object.encryption, Some(Encryption::Aes256));
        let own = ObjectOptions {
            storage_class: Some("IA".into()),
            ..Default::default()
        };
        assert_eq!(
            carried(&src, &own, false).object.storage_class.as_deref(),
            Some("IA")
        );
        // A stored mtime is carried as it is.
        src.metadata.insert(MTIME_KEY.into(), "1700000000.5".into());
        assert_eq!(
            carried(&src, &none, false).metadata[MTIME_KEY],
            "1700000000.5"
        );
    }
}
