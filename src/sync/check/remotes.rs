//! `ferry check URL URL`: whether two prefixes (one store or two) hold the
//! same objects. The two listings stream through the same merge as a
//! local check; sizes and ETags decide what they can (a server-side copy
//! keeps the ETag), then both HEADs (the checksums each store keeps,
//! `compare::after_heads`), the stored mtimes (`--fast`), or both
//! objects read and hashed side by side (`--download`).

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::compare::{after_heads, first_between, times_between, FirstBetween};
use super::{
    drive_findings, store_failed, vanished, CheckObserver, CheckOptions, CheckSummary, Finding,
};
use crate::store::{head_if_exists, GetRequest, ObjectMeta, ObjectStore};
use crate::sync::listing::{spawn_listing, RemoteEntry};
use crate::sync::pipeline::{merge_and_run, Planned, Side};
use crate::sync::{SyncError, SyncTarget};

enum Job {
    Report(Finding),
    Heads(RemoteEntry, RemoteEntry),
    Times(RemoteEntry, RemoteEntry),
    Download(RemoteEntry, RemoteEntry),
}

/// Compares the objects under `src.prefix` with those under `dst.prefix`
/// (the `root` of both targets is unused).
pub async fn check_between(
    src: &SyncTarget,
    dst: &SyncTarget,
    opts: &CheckOptions,
    observer: &dyn CheckObserver,
) -> Result<CheckSummary, SyncError> {
    let (src_lister, src_rx) = spawn_listing(src, &opts.walk.filter, false);
    let (dst_lister, dst_rx) = spawn_listing(dst, &opts.walk.filter, false);
    let mut summary = CheckSummary::default();
    let checker = Pair {
        src,
        dst,
        bytes: Default::default(),
    };
    let (depth, one_way) = (opts.depth, opts.one_way);
    let merged = merge_and_run(
        &dst.cancel,
        Side {
            feed: src_rx,
            name: "source listing",
        },
        Side {
            feed: dst_rx,
            name: "destination listing",
        },
        |s, d| plan(s, d, depth, one_way),
        |jobs| drive_findings(jobs, opts.jobs, |j| checker.run(j), observer, &mut summary),
    )
    .await;
    let _ = src_lister.await;
    let _ = dst_lister.await;
    merged?;
    summary.bytes_downloaded = checker.bytes.load(std::sync::atomic::Ordering::Relaxed);
    summary.interrupted = dst.cancel.is_cancelled();
    Ok(summary)
}

fn plan(
    s: Option<RemoteEntry>,
    d: Option<RemoteEntry>,
    depth: super::Depth,
    one_way: bool,
) -> Planned<Job> {
    match first_between(s.as_ref(), d.as_ref(), depth, one_way) {
        None => Planned::Nothing,
        Some(FirstBetween::Found(f)) => Planned::Job(Job::Report(f)),
        Some(step) => {
            let (s, d) = (s.expect("both sides"), d.expect("both sides"));
            Planned::Job(match step {
                FirstBetween::Heads => Job::Heads(s, d),
                FirstBetween::Times => Job::Times(s, d),
                _ => Job::Download(s, d),
            })
        }
    }
}

struct Pair<'a> {
    src: &'a SyncTarget,
    dst: &'a SyncTarget,
    bytes: std::sync::atomic::AtomicU64,
}

impl Pair<'_> {
    async fn run(&self, job: Job) -> Option<Finding> {
        if self.dst.cancel.is_cancelled() {
            return None;
        }
        Some(match job {
            Job::Report(f) => f,
            Job::Heads(s, d) => match self.heads(&s, &d).await {
                Ok((a, b)) => after_heads(&s.rel, &a, &b),
                Err(f) => f,
            },
            Job::Times(s, d) => match self.heads(&s, &d).await {
                Ok((a, b)) => times_between(&s.rel, &a, &b),
                Err(f) => f,
            },
            Job::Download(s, d) => self.download(&s, &d).await,
        })
    }

    /// Both HEADs, at once.
    async fn heads(
        &self,
        s: &RemoteEntry,
        d: &RemoteEntry,
    ) -> Result<(ObjectMeta, ObjectMeta), Finding> {
        let (a, b) = tokio::join!(
            head_if_exists(self.src.store.as_ref(), &self.src.bucket, &s.key),
            head_if_exists(self.dst.store.as_ref(), &self.dst.bucket, &d.key),
        );
        let found = |r: Result<Option<ObjectMeta>, _>, e: &RemoteEntry| match r {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(vanished(e)),
            Err(err) => Err(store_failed(&e.rel, &err)),
        };
        Ok((found(a, s)?, found(b, d)?))
    }

    /// Both objects' bytes, each pinned to its listed ETag and hashed as it
    /// arrives (memory: one chunk per side).
    async fn download(&self, s: &RemoteEntry, d: &RemoteEntry) -> Finding {
        let (a, b) = tokio::join!(
            self.sha256(self.src.store.as_ref(), &self.src.bucket, s),
            self.sha256(self.dst.store.as_ref(), &self.dst.bucket, d),
        );
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => super::compare::same(&s.rel, "bytes"),
            (Ok(_), Ok(_)) => Finding::Differs {
                key: s.rel.clone(),
                why: "the bytes differ".into(),
            },
            (Err(f), _) | (_, Err(f)) => f,
        }
    }

    async fn sha256(
        &self,
        store: &dyn ObjectStore,
        bucket: &str,
        e: &RemoteEntry,
    ) -> Result<[u8; 32], Finding> {
        let req = GetRequest::whole().if_match(Some(&e.etag));
        let out = match store.get_object(bucket, &e.key, &req).await {
            Ok(o) => o,
            Err(err) if err.is_not_found() => return Err(vanished(e)),
            Err(err) => return Err(store_failed(&e.rel, &err)),
        };
        let mut body = out.body;
        let mut h = Sha256::new();
        let mut at = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| store_failed(&e.rel, &err))?;
            at += chunk.len() as u64;
            self.bytes
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            h.update(&chunk);
        }
        if at != e.size {
            return Err(store_failed(
                &e.rel,
                &crate::store::StoreError::new(
                    crate::store::StoreErrorKind::Truncated,
                    format!("{}: body ended after {at} of {} bytes", e.key, e.size),
                ),
            ));
        }
        Ok(h.finalize().into())
    }
}
