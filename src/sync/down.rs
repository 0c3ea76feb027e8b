//! Downloading a prefix: the listing is the source, the walk of the local
//! root the destination. Like uploads, it streams: transfers start with
//! the first listing page, and memory holds batches, not the listing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::backup::Backups;
use super::events::{emit, Event, FailKind, Observer, Summary};
use super::file_rules::FileRules;
use super::known::digests::FileDigests;
use super::known::KnownMtimes;
use super::listing::{spawn_listing, spawn_walk, RemoteEntry};
use super::one::local_side;
use super::pipeline::{merge_and_run, Planned, Side};
use super::plan::{decide, Decision, PlanOptions};
use super::runner::{content_job, Job, Runner};
use super::up::{walk_report, Caches};
use super::walk::{WalkItem, WalkOptions, TEMPS_NOTED};
use super::{Seen, SyncError, SyncOptions, SyncTarget};
use crate::transfer::leftovers::leftover_size;
use crate::transfer::paths::safe_relative_path;
use crate::transfer::Destination;

/// Downloads everything under `target.prefix` into `target.root`.
pub async fn sync_down(
    target: &SyncTarget,
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> Result<Summary, SyncError> {
    let (lister, list_rx) = spawn_listing(target, &opts.walk.filter, true);
    // The destination is walked without following links whatever
    // --follow-symlinks says: that flag is about what an upload reads, and a
    // walk through a link would offer files outside the root to --delete.
    let temps_seen = Arc::new(Mutex::new(Vec::new()));
    let walk = WalkOptions {
        follow_symlinks: false,
        temps_seen: Some(temps_seen.clone()),
        ..opts.walk.clone()
    };
    let (walker, walk_rx) = spawn_walk(target.root.clone(), walk, true);
    let known = KnownMtimes::load(opts.known_mtimes.clone());
    let digests = FileDigests::load(opts.file_digests.clone());
    let runner = Runner {
        target,
        opts,
        observer,
        known: &known,
        digests: &digests,
        dest: Destination::new(&target.root),
        backups: Backups::new(opts.backup.as_ref()),
    };
    let mut summary = Summary::default();
    let mut seen = Seen::default();
    let deletes = merge_and_run(
        &target.cancel,
        Side {
            feed: list_rx,
            name: "listing",
        },
        Side {
            feed: walk_rx,
            name: "walk",
        },
        |remote, local| {
            plan_down(
                &target.root,
                remote,
                local,
                opts.plan,
                opts.rules,
                Caches {
                    known: &known,
                    digests: &digests,
                },
                &mut seen,
            )
        },
        |jobs| runner.drive(jobs, &mut summary),
    )
    .await;
    // Only a listing seen to its end tells which cached objects are gone.
    known.save(deletes.is_ok() && !target.cancel.is_cancelled());
    // Only a walk seen whole tells which files are gone.
    digests.save(deletes.is_ok() && !target.cancel.is_cancelled());
    let _ = lister.await;
    let _ = walker.await;
    let deletes = deletes?;
    if opts.plan.delete && seen.view.source_files == 0 && !opts.deletes.allow_empty_source {
        let url = format!("{}/{}", target.bucket, target.prefix);
        return Err(SyncError::SourceEmpty(url));
    }
    if !target.cancel.is_cancelled() {
        let deletes = seen.gate(deletes, &mut summary, opts.deletes, observer);
        runner.delete_local(deletes, &mut summary);
    }
    summary.backed_up = runner.backups.made();
    summary.interrupted = target.cancel.is_cancelled();
    let seen = std::mem::take(&mut *temps_seen.lock().unwrap_or_else(|p| p.into_inner()));
    note_leftovers(&target.root, &seen, &mut summary, observer);
    Ok(summary)
}

/// Names the temporaries a killed download left in the tree: with a
/// random tag nothing would ever name them again. This run's own are
/// gone (published) or held by now, and are not counted.
fn note_leftovers(root: &Path, seen: &[PathBuf], summary: &mut Summary, observer: &dyn Observer) {
    let left: Vec<u64> = seen.iter().filter_map(|p| leftover_size(p)).collect();
    if left.is_empty() {
        return;
    }
    let more = if seen.len() >= TEMPS_NOTED {
        " or more"
    } else {
        ""
    };
    emit(
        summary,
        observer,
        Event::Warning {
            path: root.display().to_string(),
            message: format!(
                "{}{more} temporary file(s) ({}) left by interrupted downloads; `ferry checkpoint ls {}` lists them, `ferry checkpoint clean` removes them",
                left.len(),
                crate::units::human(left.iter().sum()),
                root.display()
            ),
        },
    );
}

/// One key of a download: what the listing shows, what the walk found.
/// Only regular files count on the local side: what else the walk saw
/// there is neither compared nor deleted, and an unreadable directory
/// protects everything below it.
fn plan_down(
    root: &Path,
    remote: Option<RemoteEntry>,
    local: Option<WalkItem>,
    plan: PlanOptions,
    rules: FileRules,
    caches: Caches,
    seen: &mut Seen,
) -> Planned {
    let known = caches.known;
    let mut sums = Vec::new();
    if let Some(r) = &remote {
        known.listed(&r.key);
        // Outside the size and age rules: neither fetched nor, since the
        // source has it, deleted.
        if !rules.takes(r.size, r.last_modified) {
            return Planned::Nothing;
        }
        seen.view.source_files += 1;
    }
    let mut report = None;
    let local = match local {
        Some(WalkItem::File(e)) => {
            seen.view.dest_entries += 1;
            sums = caches.digests.lookup(&e);
            Some(e)
        }
        Some(other) => {
            seen.not_a_file(&other);
            // Unreadable parts of the destination are failures (a download
            // cannot be sure what it overwrites); skipped ones are not.
            if matches!(other, WalkItem::Error { .. }) {
                report = walk_report(other);
            }
            None
        }
        None => None,
    };
    let Some(r) = remote else {
        return match (local, report) {
            (_, Some(job)) => Planned::Job(job),
            (Some(l), None)
                if decide(None, Some(local_side(&l)), plan) == Decision::Delete
                    && rules.takes(l.size, l.mtime)
                    && !seen.unseen.covers(&l.key) =>
            {
                Planned::Delete(l.key)
            }
            _ => Planned::Nothing,
        };
    };
    if let Some(job) = report {
        // The local item of this key could not be read: leave both alone.
        let _ = r;
        return Planned::Job(job);
    }
    if r.prefix_of_others {
        return Planned::Job(Job::Report(Event::failed(
            &r.rel,
            "download",
            FailKind::UnsafeKey,
            format!(
                "{}: '{}' is both an object and a prefix of other objects; a file and a directory cannot share the name",
                r.key, r.rel
            ),
        )));
    }
    let dest = match safe_relative_path(&r.rel) {
        Ok(p) => p,
        Err(why) => {
            return Planned::Job(Job::Report(Event::failed(
                &r.rel,
                "download",
                FailKind::UnsafeKey,
                format!(
                    "{}: refused: the key would be written outside {} ({why})",
                    r.key,
                    root.display()
                ),
            )))
        }
    };
    let local_side = local.as_ref().map(local_side);
    let job = match decide(Some(r.side()), local_side, plan) {
        Decision::Transfer(reason) => Job::Download(r, dest, reason),
        Decision::NeedMetadata => match r
            .known_side(known)
            .map(|side| decide(Some(side), local_side, plan))
        {
            Some(Decision::Transfer(reason)) => Job::Download(r, dest, reason),
            Some(Decision::Skip(reason)) => Job::Skip(r.rel, reason),
            _ => Job::ResolveDownload(r, dest, local),
        },
        Decision::NeedContent => {
            let local = local.expect("NeedContent has a destination");
            content_job(r, local, sums, known, Some(dest))
        }
        Decision::Skip(reason) => Job::Skip(r.rel, reason),
        // The table deletes only what the source lacks.
        Decision::Delete => return Planned::Nothing,
    };
    Planned::Job(job)
}
