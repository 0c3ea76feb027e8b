//! A tree copy (`cp -r`, a config job, watch mode): the options they share
//! and the one function that runs them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::args::CpArgs;
use super::setup::{Setup, StoreHandle};
use super::sync_report::SyncReport;
use super::{CliError, Outcome};
use crate::config::jobs::DEFAULT_JOB_MAX_DELETE;
use crate::location::{Location, RemoteUrl};
use crate::sync::backup::{check_local_place, check_store_place, BackupOptions, BackupPlace};
use crate::sync::file_rules::FileRules;
use crate::sync::filter::Filter;
use crate::sync::plan::{Compare, DeleteRules, MaxDelete, PlanOptions};
use crate::sync::walk::WalkOptions;
use crate::sync::{sync_down, sync_up, Summary, SyncOptions, SyncTarget};
use crate::transfer::{check_jobs, MemoryBudget, TransferOptions, MIB};
use crate::watch::{watch, WatchOptions};

#[derive(Debug, Clone, Default)]
pub struct TreeSpec {
    pub update: bool,
    pub delete: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub include_from: Vec<PathBuf>,
    pub exclude_from: Vec<PathBuf>,
    pub files_from: Option<PathBuf>,
    pub follow_symlinks: bool,
    /// What -u compares a present destination by.
    pub compare: Compare,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub min_age: Option<String>,
    pub max_age: Option<String>,
    pub max_delete: Option<MaxDelete>,
    pub allow_empty_source: bool,
    /// `--backup-dir`: a URL or a directory, by the destination's side.
    pub backup_dir: Option<String>,
    pub suffix: Option<String>,
    pub memory_budget: Option<u64>,
    pub json: bool,
    /// Keep following the source after the first pass.
    pub watch: Option<WatchOptions>,
}

impl TreeSpec {
    pub fn from_cp(a: &CpArgs) -> TreeSpec {
        TreeSpec {
            update: a.update,
            delete: a.delete,
            dry_run: a.dry_run,
            jobs: a.jobs,
            include: a.include.clone(),
            exclude: a.exclude.clone(),
            include_from: a.rule_files.include_from.clone(),
            exclude_from: a.rule_files.exclude_from.clone(),
            files_from: a.rule_files.files_from.clone(),
            follow_symlinks: a.follow_symlinks,
            compare: if a.size_only {
                Compare::SizeOnly
            } else if a.checksum {
                Compare::Checksum
            } else if a.ignore_existing {
                Compare::IgnoreExisting
            } else {
                Compare::Time
            },
            min_size: a.min_size,
            max_size: a.max_size,
            min_age: a.min_age.clone(),
            max_age: a.max_age.clone(),
            // Watch mode repeats passes unattended: it gets the jobs' limit.
            max_delete: a.max_delete.or(a.watch.then_some(DEFAULT_JOB_MAX_DELETE)),
            allow_empty_source: a.allow_empty_source,
            backup_dir: a.backup_dir.clone(),
            suffix: a.suffix.clone(),
            memory_budget: a.memory_budget,
            json: a.json,
            watch: a.watch.then(|| WatchOptions {
                debounce: Duration::from_secs(1),
                rescan_interval: Duration::from_secs(300),
            }),
        }
    }

    fn sync_options(&self, transfer: TransferOptions) -> Result<SyncOptions, CliError> {
        let jobs = check_jobs(self.jobs)?;
        if self.delete && self.files_from.is_some() {
            // A list names what to copy: a listed file the source lacks is
            // likelier a stale list than a wish to delete it.
            return Err(CliError::Usage(
                "--delete cannot be combined with --files-from (the list names what to copy, not what to delete)".into(),
            ));
        }
        let mut exclude = self.exclude.clone();
        if let (None, Some(suffix)) = (&self.backup_dir, &self.suffix) {
            // Backups beside the files are not part of the tree: never
            // sent, never deleted, never backed up again.
            exclude.push(format!("*{}", globset::escape(suffix)));
        }
        let filter = build_filter(
            &self.include,
            &exclude,
            &self.include_from,
            &self.exclude_from,
            self.files_from.as_deref(),
        )?;
        let rules = FileRules::parse(
            self.min_size,
            self.max_size,
            self.min_age.as_deref(),
            self.max_age.as_deref(),
            crate::mtime::now(),
        )
        .map_err(CliError::Usage)?;
        let mut transfer = transfer;
        let budget = self.memory_budget.unwrap_or(256 * MIB).max(MIB);
        transfer.memory = Some(MemoryBudget::new(budget));
        Ok(SyncOptions {
            plan: PlanOptions {
                // Saying how to compare asks for the comparison.
                update: self.update || self.compare != Compare::Time,
                delete: self.delete,
                compare: self.compare,
            },
            deletes: DeleteRules {
                max: self.max_delete,
                allow_empty_source: self.allow_empty_source,
            },
            dry_run: self.dry_run,
            jobs,
            walk: WalkOptions {
                follow_symlinks: self.follow_symlinks,
                filter,
                temps_seen: None,
            },
            rules,
            transfer,
            known_mtimes: None,
            file_digests: None,
            backup: None,
        })
    }

    /// Where `--backup-dir` / `--suffix` put what a copy into `dest`
    /// replaces or deletes: `None` without either.
    fn backup_for(&self, dest: Dest<'_>) -> Result<Option<BackupOptions>, CliError> {
        let suffix = self.suffix.clone().unwrap_or_default();
        if self.backup_dir.is_none() && self.suffix.as_deref().is_some_and(str::is_empty) {
            return Err(CliError::Usage("--suffix cannot be empty without --backup-dir (backups would replace the files themselves)".into()));
        }
        let place = match (&self.backup_dir, dest) {
            (None, _) if self.suffix.is_none() => return Ok(None),
            (None, Dest::Store { url, prefix }) => BackupPlace::Store {
                bucket: url.bucket.clone(),
                prefix: prefix.to_string(),
            },
            (None, Dest::Local(root)) => BackupPlace::Local(root.to_path_buf()),
            (Some(b), Dest::Store { url, prefix }) => {
                let place = match Location::parse(b)? {
                    Location::Remote(r) if r.dialect == url.dialect => r,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--backup-dir {b}: the destination is {url}, so backups go to a prefix on its store ({}://BUCKET/PREFIX/), copied server-side",
                            url.dialect.name()
                        )))
                    }
                };
                let bprefix = as_prefix(&place.key);
                check_store_place(&place.bucket, &bprefix, &url.bucket, prefix)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                BackupPlace::Store {
                    bucket: place.bucket,
                    prefix: bprefix,
                }
            }
            (Some(b), Dest::Local(root)) => {
                let dir = match Location::parse(b)? {
                    Location::Local(p) => p,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--backup-dir {b}: the destination is the local directory {}, so backups go to a local directory",
                            root.display()
                        )))
                    }
                };
                check_local_place(&dir, root).map_err(|e| CliError::Usage(e.to_string()))?;
                BackupPlace::Local(dir)
            }
        };
        Ok(Some(BackupOptions { place, suffix }))
    }
}

/// The side of a copy that can lose data.
#[derive(Clone, Copy)]
enum Dest<'a> {
    Store { url: &'a RemoteUrl, prefix: &'a str },
    Local(&'a Path),
}

/// The globs, those of the rule files after them, and the `--files-from`
/// list: one filter for the walk, the listing and the plan.
pub fn build_filter(
    include: &[String],
    exclude: &[String],
    include_from: &[PathBuf],
    exclude_from: &[PathBuf],
    files_from: Option<&Path>,
) -> Result<Filter, CliError> {
    let from = |own: &[String], files: &[PathBuf]| -> Result<Vec<String>, CliError> {
        let mut all = own.to_vec();
        for f in files {
            all.extend(crate::sync::filter::read_rules(f).map_err(CliError::Usage)?);
        }
        Ok(all)
    };
    let filter = Filter::new(&from(include, include_from)?, &from(exclude, exclude_from)?)
        .map_err(CliError::Usage)?;
    Ok(match files_from {
        Some(f) => filter.only(crate::sync::filter::read_files_from(f).map_err(CliError::Usage)?),
        None => filter,
    })
}

/// `$XDG_CACHE_HOME/ferry/known` (`~/.cache/ferry/known`): mtimes learned
/// from HEAD requests, so unchanged trees compare from listings alone.
fn known_mtimes_path(h: &StoreHandle, bucket: &str, prefix: &str) -> Option<std::path::PathBuf> {
    let base = crate::config::dirs::cache_dir(&crate::config::ProcessEnv);
    Some(crate::sync::known::cache_path(
        &base.join("known"),
        &h.endpoint_id,
        bucket,
        prefix,
    ))
}

/// `$XDG_CACHE_HOME/ferry/digests`: the digests `--checksum` computed,
/// per local root, so an unchanged file is read once.
fn file_digests_path(sync: &SyncOptions, root: &Path) -> Option<PathBuf> {
    if sync.plan.compare != Compare::Checksum {
        return None;
    }
    let base = crate::config::dirs::cache_dir(&crate::config::ProcessEnv);
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    Some(crate::sync::known::digests::cache_path(
        &base.join("digests"),
        &root,
    ))
}

fn target(setup: &Setup, h: &StoreHandle, bucket: &str, prefix: &str, root: &Path) -> SyncTarget {
    SyncTarget {
        store: h.store.clone(),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        root: root.to_path_buf(),
        cancel: setup.cancel.clone(),
    }
}

pub enum Tree<'a> {
    Up {
        root: &'a Path,
        dst: &'a RemoteUrl,
    },
    Down {
        src: &'a RemoteUrl,
        root: &'a Path,
    },
    /// Prefix to prefix; the store handle the tree runs with is the
    /// destination's.
    Between {
        src: &'a RemoteUrl,
        dst: &'a RemoteUrl,
        src_store: &'a StoreHandle,
    },
}

/// `dir` and `dir/` both mean "everything under dir/".
pub fn as_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_string()
    } else {
        format!("{key}/")
    }
}

pub fn outcome(s: &Summary) -> Outcome {
    if s.interrupted {
        Outcome::Interrupted
    } else if s.failed > 0 || s.withheld > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    }
}

/// Runs one tree copy and prints its summary.
pub async fn run_tree_summary(
    setup: &Setup,
    h: &StoreHandle,
    transfer: TransferOptions,
    spec: &TreeSpec,
    tree: Tree<'_>,
) -> Result<Summary, CliError> {
    let started = Instant::now();
    let mut sync = spec.sync_options(transfer)?;
    let report = SyncReport::new(setup.reporter.clone(), spec.json);
    // A dry run ends with what the real run would send: its planned
    // actions priced, and the LISTs and HEADs it sent itself.
    let stores: Vec<std::sync::Arc<dyn crate::store::ObjectStore>> = match &tree {
        Tree::Between { src_store, .. } if !std::sync::Arc::ptr_eq(&src_store.store, &h.store) => {
            vec![h.store.clone(), src_store.store.clone()]
        }
        _ => vec![h.store.clone()],
    };
    let sent = || {
        stores.iter().fold((0, 0), |(l, hd), s| match s.tally() {
            Some(t) => (l + t.get("LIST"), hd + t.get("HEAD")),
            None => (l, hd),
        })
    };
    let before = sent();
    if spec.dry_run {
        report.price(crate::sync::cost::Rules {
            bigfile_threshold: sync.transfer.bigfile_threshold,
            part_size: sync.transfer.part_size,
            max_single_copy: h.store.copy_limits().max_single,
            deletes_objects: !matches!(tree, Tree::Down { .. }),
        });
    }
    let (verb, summary) = match tree {
        Tree::Up { root, dst } => {
            // A missing source is not an empty tree, whatever the mode.
            crate::sync::check_source_root(root)?;
            let prefix = as_prefix(&dst.key);
            sync.backup = spec.backup_for(Dest::Store {
                url: dst,
                prefix: &prefix,
            })?;
            sync.known_mtimes = known_mtimes_path(h, &dst.bucket, &prefix);
            sync.file_digests = file_digests_path(&sync, root);
            if let Some(w) = &spec.watch {
                setup.reporter.say(&format!(
                    "ferry: watching {} -> {dst} (Ctrl-C to stop)",
                    root.display()
                ));
                watch(
                    &target(setup, h, &dst.bucket, &prefix, root),
                    &sync,
                    w,
                    &report,
                )
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?;
                let s = report.total();
                report.finish("watch sent", &s, started);
                return Ok(Summary {
                    interrupted: true,
                    ..s
                });
            }
            let s = sync_up(
                &target(setup, h, &dst.bucket, &prefix, root),
                &sync,
                &report,
            )
            .await?;
            (
                if spec.dry_run {
                    "would upload"
                } else {
                    "uploaded"
                },
                s,
            )
        }
        Tree::Between {
            src,
            dst,
            src_store,
        } => {
            if spec.watch.is_some() {
                return Err(CliError::Usage(
                    "watch mode follows a local source; a copy between prefixes runs once".into(),
                ));
            }
            let (src_prefix, prefix) = (as_prefix(&src.key), as_prefix(&dst.key));
            let same_store = std::sync::Arc::ptr_eq(&src_store.store, &h.store);
            if same_store
                && src.bucket == dst.bucket
                && crate::sync::backup::prefixes_overlap(&src_prefix, &prefix)
            {
                return Err(CliError::Usage(format!(
                    "{src} and {dst} overlap: a copy into its own source would copy its copies"
                )));
            }
            sync.backup = spec.backup_for(Dest::Store {
                url: dst,
                prefix: &prefix,
            })?;
            if let Some(crate::sync::backup::BackupOptions {
                place: crate::sync::backup::BackupPlace::Store { bucket, prefix: bp },
                ..
            }) = &sync.backup
            {
                if same_store
                    && *bucket == src.bucket
                    && crate::sync::backup::prefixes_overlap(bp, &src_prefix)
                {
                    return Err(CliError::Usage(format!(
                        "--backup-dir {bucket}/{bp} overlaps the source {src}"
                    )));
                }
            }
            sync.known_mtimes = known_mtimes_path(h, &dst.bucket, &prefix);
            let between = crate::sync::BetweenOptions {
                source_known: known_mtimes_path(src_store, &src.bucket, &src_prefix),
                same_dialect: src.dialect == dst.dialect,
            };
            let from = SyncTarget {
                store: src_store.store.clone(),
                ..target(setup, h, &src.bucket, &src_prefix, Path::new(""))
            };
            let s = crate::sync::sync_between(
                &from,
                &target(setup, h, &dst.bucket, &prefix, Path::new("")),
                between,
                &sync,
                &report,
            )
            .await?;
            (if spec.dry_run { "would copy" } else { "copied" }, s)
        }
        Tree::Down { src, root } => {
            if spec.watch.is_some() {
                return Err(CliError::Usage(
                    "watch mode follows a local source; watching a bucket for changes is not supported".into(),
                ));
            }
            sync.backup = spec.backup_for(Dest::Local(root))?;
            if !spec.dry_run {
                std::fs::create_dir_all(root).map_err(|e| {
                    CliError::Failed(format!("{}: cannot create directory: {e}", root.display()))
                })?;
            }
            let prefix = as_prefix(&src.key);
            sync.known_mtimes = known_mtimes_path(h, &src.bucket, &prefix);
            sync.file_digests = file_digests_path(&sync, root);
            let s = sync_down(
                &target(setup, h, &src.bucket, &prefix, root),
                &sync,
                &report,
            )
            .await?;
            (
                if spec.dry_run {
                    "would download"
                } else {
                    "downloaded"
                },
                s,
            )
        }
    };
    let after = sent();
    report.sent_by_preview(after.0 - before.0, after.1 - before.1);
    report.finish(verb, &summary, started);
    Ok(summary)
}

pub async fn run_tree(
    setup: &Setup,
    h: &StoreHandle,
    transfer: TransferOptions,
    spec: &TreeSpec,
    tree: Tree<'_>,
) -> Result<Outcome, CliError> {
    let s = run_tree_summary(setup, h, transfer, spec, tree).await?;
    Ok(outcome(&s))
}
