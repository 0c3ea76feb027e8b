//! Uploading a tree: the walk of the local root is the source, the listing
//! of the prefix the destination. Transfers start while both still run.

use std::time::Instant;

use super::events::{Event, FailKind, Observer, Summary};
use super::known::KnownMtimes;
use super::listing::{spawn_listing, spawn_walk, RemoteEntry};
use super::one::local_side;
use super::pipeline::{merge_and_run, Planned, Side};
use super::plan::{decide, Decision, PlanOptions, Reason};
use super::runner::{Job, Runner};
use super::walk::{LocalEntry, WalkItem};
use super::{Seen, SyncError, SyncOptions, SyncTarget};

/// Uploads the tree at `target.root` under `target.prefix`.
pub async fn sync_up(
    target: &SyncTarget,
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> Result<Summary, SyncError> {
    let started = Instant::now();
    super::check_source_root(&target.root)?;
    let (walker, walk_rx) = spawn_walk(target.root.clone(), opts.walk.clone(), false);
    let (lister, list_rx) = spawn_listing(target, &opts.walk.filter, false);
    let known = KnownMtimes::load(opts.known_mtimes.clone());
    let runner = Runner {
        target,
        opts,
        observer,
        known: &known,
    };
    let mut summary = Summary::default();
    let mut seen = Seen::default();
    let deletes = merge_and_run(
        &runner,
        Side {
            feed: walk_rx,
            name: "walk",
        },
        Side {
            feed: list_rx,
            name: "listing",
        },
        |local, remote| plan_up(local, remote, opts.plan, &known, &mut seen),
        &mut summary,
    )
    .await;
    known.save();
    let _ = lister.await;
    let _ = walker.await;
    let deletes = deletes?;
    if !target.cancel.is_cancelled() {
        let deletes = seen.gate(deletes, &mut summary, opts.deletes, observer);
        runner.delete_remote(deletes, &mut summary).await;
    }
    summary.interrupted = target.cancel.is_cancelled();
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "sync up done");
    Ok(summary)
}

/// One key of an upload: what the walk found, what the listing shows.
fn plan_up(
    local: Option<WalkItem>,
    remote: Option<RemoteEntry>,
    plan: PlanOptions,
    known: &KnownMtimes,
    seen: &mut Seen,
) -> Planned<String> {
    if remote.is_some() {
        seen.view.dest_entries += 1;
    }
    // A skipped or unreadable source item is reported, and its
    // destination copy (with all below it) is left alone.
    let local = match local {
        Some(WalkItem::File(e)) => {
            seen.view.source_files += 1;
            Some(e)
        }
        Some(other) => {
            seen.not_a_file(&other);
            return walk_report(other).map_or(Planned::Nothing, Planned::Job);
        }
        None => None,
    };
    match decide(
        local.as_ref().map(local_side),
        remote.as_ref().map(RemoteEntry::side),
        plan,
    ) {
        Decision::Transfer(r) => Planned::Job(Job::Upload(source(local), r)),
        Decision::NeedMetadata => {
            let local = source(local);
            let remote = remote.expect("NeedMetadata has a destination");
            // A remembered mtime decides without a HEAD.
            match remote
                .known_side(known)
                .map(|side| decide(Some(local_side(&local)), Some(side), plan))
            {
                Some(Decision::Transfer(r)) => Planned::Job(Job::Upload(local, r)),
                Some(Decision::Skip(r)) => Planned::Job(Job::Skip(local.key, r)),
                _ => Planned::Job(Job::ResolveUpload(local)),
            }
        }
        Decision::Skip(Reason::NotInSource) => Planned::Nothing,
        Decision::Skip(r) => Planned::Job(Job::Skip(source(local).key, r)),
        Decision::Delete => {
            let rel = remote.expect("Delete has a destination").rel;
            if seen.unseen.covers(&rel) {
                Planned::Nothing
            } else {
                Planned::Delete(rel)
            }
        }
    }
}

fn source(local: Option<LocalEntry>) -> LocalEntry {
    local.expect("the table transfers or skips only what the source has")
}

/// Walk items that are not files become events (files become jobs).
pub(super) fn walk_report(item: WalkItem) -> Option<Job> {
    let rel_or_path = |key: Option<String>, path: &std::path::Path| {
        key.unwrap_or_else(|| path.display().to_string())
    };
    match item {
        WalkItem::File(_) => None,
        WalkItem::Skipped { path, why, .. } => Some(Job::Report(Event::Warning {
            path: path.display().to_string(),
            message: why,
        })),
        WalkItem::Error { path, key, why } => Some(Job::Report(Event::failed(
            &rel_or_path(key, &path),
            "read",
            FailKind::Unreadable,
            format!("{}: {why}", path.display()),
        ))),
    }
}
