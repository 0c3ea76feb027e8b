//! Uploading a tree: the walk of the local root is the source, the listing
//! of the prefix the destination. Transfers start while both still run.

use std::time::Instant;

use super::backup::Backups;
use super::events::{Event, FailKind, Observer, Summary};
use super::file_rules::FileRules;
use super::known::digests::FileDigests;
use super::known::KnownMtimes;
use super::listing::{spawn_listing, spawn_walk, RemoteEntry};
use super::one::local_side;
use super::pipeline::{merge_and_run, Planned, Side};
use super::plan::{decide, Decision, PlanOptions, Reason};
use super::runner::{content_job, Job, Runner};
use super::walk::{LocalEntry, WalkItem};
use super::{Seen, SyncError, SyncOptions, SyncTarget};
use crate::transfer::Destination;

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
            feed: walk_rx,
            name: "walk",
        },
        Side {
            feed: list_rx,
            name: "listing",
        },
        |local, remote| {
            let caches = Caches {
                known: &known,
                digests: &digests,
            };
            plan_up(local, remote, opts.plan, opts.rules, caches, &mut seen)
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
    if !target.cancel.is_cancelled() {
        let deletes = seen.gate(deletes, &mut summary, opts.deletes, observer);
        runner.delete_remote(deletes, &mut summary).await;
    }
    summary.backed_up = runner.backups.made();
    summary.interrupted = target.cancel.is_cancelled();
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "sync up done");
    Ok(summary)
}

/// One key of an upload: what the walk found, what the listing shows.
fn plan_up(
    local: Option<WalkItem>,
    remote: Option<RemoteEntry>,
    plan: PlanOptions,
    rules: FileRules,
    caches: Caches,
    seen: &mut Seen,
) -> Planned {
    let known = caches.known;
    let mut sums = Vec::new();
    if let Some(r) = &remote {
        seen.view.dest_entries += 1;
        known.listed(&r.key);
    }
    // A skipped or unreadable source item is reported, and its
    // destination copy (with all below it) is left alone.
    let local = match local {
        // Outside the size and age rules: neither sent nor, since the
        // source has it, deleted.
        Some(WalkItem::File(e)) if !rules.takes(e.size, e.mtime) => return Planned::Nothing,
        Some(WalkItem::File(e)) => {
            seen.view.source_files += 1;
            sums = caches.digests.lookup(&e);
            Some(e)
        }
        Some(other) => {
            seen.not_a_file(&other);
            return walk_report(other).map_or(Planned::Nothing, Planned::Job);
        }
        None => match &remote {
            // Only a copy inside the rules is a delete candidate.
            Some(r) if !rules.takes(r.size, r.last_modified) => return Planned::Nothing,
            _ => None,
        },
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
        Decision::NeedContent => {
            let remote = remote.expect("NeedContent has a destination");
            Planned::Job(content_job(remote, source(local), sums, known, None))
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

/// What earlier runs learned, read in step with the merge.
#[derive(Clone, Copy)]
pub(super) struct Caches<'a> {
    pub known: &'a KnownMtimes,
    pub digests: &'a FileDigests,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::events::Summary;
    use crate::sync::merge::{MergeJoin, Step};
    use crate::sync::plan::DeleteRules;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Copy)]
    enum Local {
        File,
        /// Unreadable (a directory: everything below it is unseen).
        Error,
        /// Skipped (a symlink, a FIFO).
        Skipped,
    }

    fn item(key: &str, kind: Local) -> WalkItem {
        let path = std::path::PathBuf::from(key);
        match kind {
            Local::File => WalkItem::File(LocalEntry {
                key: key.into(),
                path,
                size: 1,
                mtime: 0,
                id: Default::default(),
            }),
            Local::Error => WalkItem::Error {
                path,
                key: Some(key.into()),
                why: "permission denied".into(),
            },
            Local::Skipped => WalkItem::Skipped {
                path,
                key: Some(key.into()),
                why: "symbolic link".into(),
            },
        }
    }

    fn remote(rel: &str) -> RemoteEntry {
        RemoteEntry {
            rel: rel.into(),
            key: rel.into(),
            size: 1,
            etag: String::new(),
            last_modified: 0,
            prefix_of_others: false,
        }
    }

    proptest! {
        /// The upload's delete decision, end to end without I/O: whatever
        /// the tree, walk errors, skipped entries and transfer failures,
        /// only keys the walk saw to be absent are deleted, nothing under
        /// an unseen subtree is, and after any error nothing is.
        #[test]
        fn deletes_only_what_was_seen_to_be_gone(
            local in proptest::collection::btree_map(
                "[ab]{1,2}(/[ab]{1,2}){0,2}",
                prop_oneof![6 => Just(Local::File), 1 => Just(Local::Error), 1 => Just(Local::Skipped)],
                0..12,
            ),
            remote_keys in proptest::collection::btree_set("[ab]{1,2}(/[ab]{1,2}){0,2}", 0..16),
            failures in prop_oneof![4 => Just(0u64), 1 => 1u64..3],
        ) {
            // A walk yields no file under a key that is itself a file.
            let mut walked: BTreeMap<String, Local> = BTreeMap::new();
            for (k, v) in &local {
                let shadowed = walked.keys().any(|p| k.starts_with(&format!("{p}/")));
                if !shadowed {
                    walked.insert(k.clone(), *v);
                }
            }
            let known = KnownMtimes::default();
            let digests = FileDigests::default();
            let caches = Caches { known: &known, digests: &digests };
            let plan = PlanOptions {
                update: true,
                delete: true,
                ..Default::default()
            };
            let mut seen = Seen::default();
            let mut m = MergeJoin::new();
            m.push_src(walked.iter().map(|(k, v)| item(k, *v)));
            m.end_src();
            m.push_dst(remote_keys.iter().map(|k| remote(k)));
            m.end_dst();
            let mut candidates = crate::sync::delete_list::DeleteList::with_capacity(3);
            loop {
                let (l, r) = match m.step() {
                    Step::Pair(l, r) => (l, r),
                    Step::Unkeyed(l) => (Some(l), None),
                    Step::Done => break,
                    Step::NeedSrc | Step::NeedDst => unreachable!("both sides ended"),
                };
                if let Planned::Delete(rel) = plan_up(l, r, plan, FileRules::default(), caches, &mut seen) {
                    candidates.push(rel);
                }
            }
            let read_errors = walked.values().filter(|v| matches!(v, Local::Error)).count() as u64;
            let mut summary = Summary {
                failed: read_errors + failures,
                ..Default::default()
            };
            let observer = NoEvents;
            let deleted: Vec<String> = seen
                .gate(candidates, &mut summary, DeleteRules::default(), &observer)
                .into_keys()
                .map(|k| k.unwrap())
                .collect();
            let unseen = |rel: &str| {
                walked.iter().any(|(k, v)| {
                    !matches!(v, Local::File) && (rel == k || rel.starts_with(&format!("{k}/")))
                })
            };
            for rel in &deleted {
                prop_assert!(remote_keys.contains(rel));
                prop_assert!(!walked.contains_key(rel), "{} is in the source", rel);
                prop_assert!(!unseen(rel), "{} lies under an unseen entry", rel);
            }
            if read_errors + failures > 0 {
                prop_assert!(deleted.is_empty(), "deleted {:?} after errors", deleted);
            }
            let files = walked.values().filter(|v| matches!(v, Local::File)).count();
            if files == 0 {
                prop_assert!(deleted.is_empty(), "an empty source deleted {:?}", deleted);
            }
            // And with a clean, non-empty walk everything absent does go.
            if read_errors + failures == 0 && files > 0 {
                let want: Vec<&String> = remote_keys
                    .iter()
                    .filter(|k| !walked.contains_key(*k) && !unseen(k))
                    .collect();
                prop_assert_eq!(deleted.iter().collect::<Vec<_>>(), want);
            }
        }
    }

    struct NoEvents;
    impl Observer for NoEvents {
        fn event(&self, _e: &Event) {}
        fn progress(&self, _size: u64) -> std::sync::Arc<dyn crate::transfer::Progress> {
            std::sync::Arc::new(crate::transfer::NoProgress)
        }
    }
}
