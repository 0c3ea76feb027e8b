//! Watch mode's changed paths: each is stat'ed now (the source side) and
//! compared with what the store has for it (the destination side), through
//! the same table as a full pass. A changed file gets one HEAD; a vanished
//! path may have been a file or a directory, so the key itself and
//! everything listed under it are candidates, each filtered and decided
//! like any other key.

use std::path::Path;

use futures::StreamExt;

use super::backup::Backups;
use super::events::{emit, Event, FailKind, Observer, Summary};
use super::known::KnownMtimes;
use super::listing::{list_scope, ListScope, RemoteEntry};
use super::plan::{decide, Decision, Reason, Side, Time};
use super::runner::{Job, Runner};
use super::walk::LocalEntry;
use super::{Seen, SyncOptions, SyncTarget};
use crate::transfer::Destination;

/// What [`sync_paths`] could not settle by itself.
#[derive(Debug, Default)]
pub struct PathsOutcome {
    pub summary: Summary,
    /// Directories among the paths: their subtrees need a full pass.
    pub needs_full_pass: bool,
    /// Files that changed while being read: try again after the debounce.
    pub still_changing: Vec<String>,
}

/// Brings the given relative paths of `target.root` up to date under
/// `target.prefix`: files by the -u rule, vanished paths deleted when the
/// plan allows it (with what was under them, since they may have been
/// directories).
pub async fn sync_paths(
    target: &SyncTarget,
    rels: &[String],
    opts: &SyncOptions,
    observer: &dyn Observer,
) -> PathsOutcome {
    // Changed paths are few; each gets its HEAD rather than the cache.
    let known = KnownMtimes::default();
    let digests = super::known::digests::FileDigests::default();
    let runner = Runner {
        target,
        opts,
        observer,
        known: &known,
        digests: &digests,
        dest: Destination::new(&target.root),
        backups: Backups::new(opts.backup.as_ref()),
    };
    let mut out = PathsOutcome::default();
    if let Err(e) = super::check_source_root(&target.root) {
        // Every path would look vanished: report, send and delete nothing,
        // and let the full pass that follows retry until the root is back.
        emit(
            &mut out.summary,
            observer,
            Event::failed("", "read", FailKind::Unreadable, e),
        );
        out.needs_full_pass = true;
        return out;
    }
    let mut jobs = Vec::new();
    let mut gone = Vec::new();
    for rel in rels {
        let path = target.root.join(rel);
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
                    mtime: crate::mtime::file_mtime(&m),
                    id: super::walk::FileId::of(&m),
                };
                if !opts.rules.takes(entry.size, entry.mtime) {
                    continue;
                }
                jobs.push(if opts.plan.update {
                    Job::ResolveUpload(entry)
                } else {
                    Job::Upload(entry, Reason::NoUpdateCheck)
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(rel.clone()),
            Err(e) => emit(
                &mut out.summary,
                observer,
                Event::failed(
                    rel,
                    "read",
                    FailKind::Unreadable,
                    format!("{}: {e}", path.display()),
                ),
            ),
        }
    }
    if !gone.is_empty() && !jobs.is_empty() && !target.cancel.is_cancelled() {
        jobs = renames_first(&runner, jobs, &gone, &mut out.summary).await;
    }
    let results: Vec<Option<Event>> = futures::stream::iter(jobs)
        .map(|j| runner.run(j))
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    for ev in results.into_iter().flatten() {
        // A file rewritten mid-read is not a failure: it gets another turn.
        if let Event::Failed {
            key,
            kind: FailKind::SourceChanged,
            ..
        } = &ev
        {
            out.still_changing.push(key.clone());
            continue;
        }
        emit(&mut out.summary, observer, ev);
    }
    if opts.plan.delete && !gone.is_empty() && !target.cancel.is_cancelled() {
        let mut deletes = crate::sync::delete_list::DeleteList::default();
        for rel in &gone {
            match vanished(&runner, rel).await {
                Ok(rels) => rels.into_iter().for_each(|r| deletes.push(r)),
                Err(ev) => emit(&mut out.summary, observer, ev),
            }
        }
        // This pass saw only its paths: a share limit needs the whole
        // destination, so only a count limit applies here (full passes
        // apply both). An emptied root counts as an empty source.
        let mut seen = Seen::default();
        seen.view.source_files = u64::from(!root_is_empty(&target.root));
        let deletes = seen.gate(deletes, &mut out.summary, opts.deletes, observer);
        runner.delete_remote(deletes, &mut out.summary).await;
    }
    out.summary.backed_up = runner.backups.made();
    out
}

fn root_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none())
}

/// Renamed files, found among the new ones by the vanished objects'
/// sizes and confirmed by content, are copied from their old keys (which
/// the caller then treats as vanished as usual); the other jobs are
/// returned to run as planned.
async fn renames_first(
    runner: &Runner<'_>,
    jobs: Vec<Job>,
    gone: &[String],
    summary: &mut Summary,
) -> Vec<Job> {
    let target = runner.target;
    let mut olds = Vec::new();
    for rel in gone {
        if let Ok(Some(m)) = runner.head(&target.key(rel)).await {
            olds.push((rel.clone(), m));
        }
    }
    if olds.is_empty() {
        return jobs;
    }
    let size = |j: &Job| match j {
        Job::ResolveUpload(e) | Job::Upload(e, _) => e.size,
        _ => 0,
    };
    let new: Vec<u64> = jobs.iter().map(size).collect();
    let old: Vec<u64> = olds.iter().map(|(_, m)| m.size).collect();
    let pairs: std::collections::HashMap<usize, usize> = super::renames::pair_by_size(&new, &old)
        .into_iter()
        .collect();
    let mut rest = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        let (Some(&j), Job::ResolveUpload(e) | Job::Upload(e, _)) = (pairs.get(&i), &job) else {
            rest.push(job);
            continue;
        };
        // The new name must be free, and the bytes the old object's.
        let free = matches!(runner.head(&target.key(&e.key)).await, Ok(None));
        if free && super::renames::same_content(runner, e, &olds[j].1).await {
            let e = match job {
                Job::ResolveUpload(e) | Job::Upload(e, _) => e,
                _ => unreachable!("matched above"),
            };
            let ev = super::renames::copy_moved(runner, &olds[j].0, e).await;
            emit(summary, runner.observer, ev);
        } else {
            rest.push(job);
        }
    }
    rest
}

/// The objects a vanished path leaves to delete: the key itself if it was
/// a file, the keys under it if it was a directory; each through the
/// filter and the plan, and none whose local file exists again.
async fn vanished(runner: &Runner<'_>, rel: &str) -> Result<Vec<String>, Event> {
    let target = runner.target;
    let opts = runner.opts;
    let mut candidates = Vec::new();
    if opts.walk.filter.file(rel) {
        let key = target.key(rel);
        match runner.head(&key).await {
            Ok(Some(m)) => candidates.push((
                rel.to_string(),
                m.size,
                crate::mtime::from_datetime(m.last_modified),
            )),
            Ok(None) => {}
            Err(e) => return Err(Event::store_failed(rel, "stat", &e)),
        }
    }
    let sub = format!("{rel}/");
    let scope = ListScope {
        prefix: &target.prefix,
        under: &sub,
        filter: &opts.walk.filter,
        mark_prefixes: false,
    };
    let under = list_scope(target.store.as_ref(), &target.bucket, scope)
        .await
        .map_err(|e| Event::failed(&sub, "list", FailKind::Store, e))?;
    candidates.extend(
        under
            .into_iter()
            .map(|e: RemoteEntry| (e.rel, e.size, e.last_modified)),
    );
    Ok(candidates
        .into_iter()
        .filter(|(r, size, lm)| {
            let side = Side {
                size: *size,
                time: Time::server(0),
            };
            decide(None, Some(side), opts.plan) == Decision::Delete
                && opts.rules.takes(*size, *lm)
                && !exists(&target.root.join(r))
        })
        .map(|(r, _, _)| r)
        .collect())
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
