//! `ferry checkpoint ls|clean`: what is pending in a checkpoint directory.

use std::path::{Path, PathBuf};

use super::args::CheckpointCmd;
use super::escape::visible;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::mtime::{file_mtime, format_mtime};
use crate::transfer::checkpoint::{
    decode, CheckpointFile, DownloadCheckpoint, LockError, UploadCheckpoint,
};
use crate::transfer::leftovers;
use crate::transfer::parts::layout;
use crate::units::human;

enum Entry {
    Upload(UploadCheckpoint),
    Download(DownloadCheckpoint),
    Damaged(String),
}

fn entries(dir: &Path) -> Result<Vec<(PathBuf, Entry)>, CliError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| CliError::Failed(format!("{}: cannot read: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ext != "ucp" && ext != "dcp" {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                out.push((path, Entry::Damaged(e.to_string())));
                continue;
            }
        };
        let entry = if ext == "ucp" {
            decode::<UploadCheckpoint>(&bytes).map(Entry::Upload)
        } else {
            decode::<DownloadCheckpoint>(&bytes).map(Entry::Download)
        };
        out.push((
            path,
            entry.unwrap_or_else(|p| Entry::Damaged(p.to_string())),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Why the entry can no longer be resumed, if it cannot.
fn stale_reason(e: &Entry) -> Option<String> {
    match e {
        Entry::Damaged(why) => Some(format!("damaged: {why}")),
        Entry::Upload(c) => match std::fs::metadata(&c.source) {
            Err(_) => Some(format!("source {} is gone", c.source.display())),
            Ok(m) if m.len() != c.size || format_mtime(file_mtime(&m)) != c.mtime => {
                Some(format!("source {} has changed", c.source.display()))
            }
            Ok(_) => None,
        },
        Entry::Download(c) => {
            (!c.temp.exists()).then(|| format!("temporary file {} is gone", c.temp.display()))
        }
    }
}

pub async fn run(setup: &Setup, cmd: CheckpointCmd) -> Result<Outcome, CliError> {
    let (dir, trees, clean, all) = match cmd {
        CheckpointCmd::Ls {
            checkpoint_dir,
            trees,
        } => (checkpoint_dir, trees, false, false),
        CheckpointCmd::Clean {
            checkpoint_dir,
            trees,
            all,
        } => (checkpoint_dir, trees, true, all),
    };
    if dir.is_none() && trees.is_empty() {
        return Err(CliError::Usage(
            "give --checkpoint-dir DIR, or directories to search for download temporaries, or both"
                .into(),
        ));
    }
    // Temporaries a resumable checkpoint still needs are not leftovers.
    let mut vouched = std::collections::HashSet::new();
    if let Some(dir) = &dir {
        vouched = if clean {
            clean_checkpoints(setup, dir, all)?
        } else {
            list_checkpoints(setup, dir)?
        };
    }
    let mut failed = false;
    for tree in &trees {
        failed |= temps(setup, tree, clean, all, &vouched);
    }
    Ok(if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

/// Lists (or removes) the download temporaries under `tree`; true if some
/// could not be looked at or removed.
fn temps(
    setup: &Setup,
    tree: &Path,
    clean: bool,
    all: bool,
    vouched: &std::collections::HashSet<PathBuf>,
) -> bool {
    let mut failed = false;
    let (mut count, mut bytes, mut removed) = (0u64, 0u64, 0u64);
    for found in leftovers::find(tree) {
        let t = match found {
            Ok(t) => t,
            Err(why) => {
                setup.reporter.say(&format!("ferry: {why}"));
                failed = true;
                continue;
            }
        };
        let canonical = std::fs::canonicalize(&t.path).unwrap_or_else(|_| t.path.clone());
        let kept_for = if t.in_use {
            Some("in use by a running download")
        } else if vouched.contains(&canonical) && !all {
            Some("a resumable checkpoint needs it")
        } else {
            None
        };
        if !clean {
            let state = kept_for.map(|k| format!("  [{k}]")).unwrap_or_default();
            out(&format!(
                "temp     {}  {}{state}",
                t.path.display(),
                human(t.size)
            ));
            if !t.in_use {
                count += 1;
                bytes += t.size;
            }
            continue;
        }
        if kept_for.is_some() {
            continue;
        }
        match leftovers::remove_unused(&t.path) {
            Ok(true) => {
                removed += 1;
                bytes += t.size;
                setup
                    .reporter
                    .say(&format!("removed {} ({})", t.path.display(), human(t.size)));
            }
            Ok(false) => {}
            Err(e) => {
                setup
                    .reporter
                    .say(&format!("ferry: {}: cannot remove: {e}", t.path.display()));
                failed = true;
            }
        }
    }
    if clean {
        setup.reporter.say(&format!(
            "{removed} temporary file(s) removed under {}, {}",
            tree.display(),
            human(bytes)
        ));
    } else {
        setup.reporter.say(&format!(
            "{count} temporary file(s) under {} not in use, {}",
            tree.display(),
            human(bytes)
        ));
    }
    failed
}

/// Prints the checkpoints; returns the temporaries of those that resume.
fn list_checkpoints(
    setup: &Setup,
    checkpoint_dir: &Path,
) -> Result<std::collections::HashSet<PathBuf>, CliError> {
    let all = entries(checkpoint_dir)?;
    for (path, e) in &all {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let running = matches!(CheckpointFile::lock(path.clone()), Err(LockError::Busy(_)));
        let state = if running { " [running]" } else { "" };
        match e {
            Entry::Upload(c) => {
                let total = layout(c.size, c.part_size).len();
                let done: u64 = c
                    .parts
                    .iter()
                    .filter_map(|p| {
                        layout(c.size, c.part_size)
                            .get(p.number as usize - 1)
                            .map(|s| s.len)
                    })
                    .sum();
                out(&format!(
                    "upload   {} -> {}/{}/{}  {}/{} parts, {} of {}{state}  ({name})",
                    c.source.display(),
                    c.endpoint,
                    c.bucket,
                    c.key,
                    c.parts.len(),
                    total,
                    human(done),
                    human(c.size)
                ));
            }
            Entry::Download(c) => {
                let l = layout(c.size, c.part_size);
                let done: u64 = c
                    .done
                    .iter()
                    .filter_map(|d| l.get(d.number as usize - 1).map(|s| s.len))
                    .sum();
                out(&format!(
                    "download {}/{}/{} -> {}  {}/{} ranges, {} of {}{state}  ({name})",
                    c.endpoint,
                    c.bucket,
                    c.key,
                    c.destination.display(),
                    c.done.len(),
                    l.len(),
                    human(done),
                    human(c.size)
                ));
            }
            Entry::Damaged(why) => out(&format!("damaged  {name}: {why}")),
        }
        if let Entry::Download(c) = e {
            out(&format!("         temporary {}", c.temp.display()));
        }
        if let Some(why) = stale_reason(e).filter(|_| !matches!(e, Entry::Damaged(_))) {
            out(&format!("         cannot resume: {why}"));
        }
    }
    setup.reporter.say(&format!("{} checkpoint(s)", all.len()));
    Ok(all
        .iter()
        .filter_map(|(_, e)| match e {
            Entry::Download(c) if stale_reason(e).is_none() => Some(c.temp.clone()),
            _ => None,
        })
        .collect())
}

/// Removes what cannot resume (or everything, with `all`); returns the
/// temporaries of the checkpoints kept.
fn clean_checkpoints(
    setup: &Setup,
    checkpoint_dir: &Path,
    all: bool,
) -> Result<std::collections::HashSet<PathBuf>, CliError> {
    let mut vouched = std::collections::HashSet::new();
    let mut removed = 0;
    for (path, e) in entries(checkpoint_dir)? {
        let reason = if all {
            Some("--all".to_string())
        } else {
            stale_reason(&e)
        };
        let Some(reason) = reason else {
            if let Entry::Download(c) = &e {
                vouched.insert(c.temp.clone());
            }
            continue;
        };
        let lock = match CheckpointFile::lock(path.clone()) {
            Ok(l) => l,
            Err(LockError::Busy(_)) => {
                setup
                    .reporter
                    .say(&format!("ferry: {} is in use; left alone", path.display()));
                continue;
            }
            Err(LockError::Io { path, source }) => {
                return Err(CliError::Failed(format!("{}: {source}", path.display())))
            }
        };
        if let Entry::Download(c) = &e {
            let _ = std::fs::remove_file(&c.temp);
        }
        if let Entry::Upload(c) = &e {
            setup.reporter.say(&format!(
                "ferry: upload {} of {}/{} stays on the server until aborted: ferry uploads abort",
                c.upload_id, c.bucket, c.key
            ));
        }
        lock.finish();
        removed += 1;
        setup
            .reporter
            .say(&format!("removed {} ({reason})", path.display()));
    }
    setup
        .reporter
        .say(&format!("{removed} checkpoint(s) removed"));
    Ok(vouched)
}

/// A line of the listing, on stdout; names in it come from buckets.
fn out(line: &str) {
    println!("{}", visible(line));
}
