//! `ferry check SRC DST`: one line per file that is missing, extra or
//! different (stdout, or JSON with `--json`), a summary on stderr, exit 1
//! unless both sides hold the same files.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::args::CheckArgs;
use super::escape::visible;
use super::progress::Reporter;
use super::setup::Setup;
use super::tree::{as_prefix, build_filter};
use super::{CliError, Outcome};
use crate::location::Location;
use crate::sync::check::{
    check_between, check_tree, CheckObserver, CheckOptions, CheckSummary, Depth, Direction, Finding,
};
use crate::sync::walk::WalkOptions;
use crate::sync::SyncTarget;
use crate::transfer::check_jobs;

pub async fn run(setup: &Setup, a: CheckArgs) -> Result<Outcome, CliError> {
    let src = Location::parse_os(&a.source)?;
    let dst = Location::parse_os(&a.destination)?;
    let between = matches!((&src, &dst), (Location::Remote(_), Location::Remote(_)));
    if !between && (a.source_endpoint.is_some() || a.source_profile.is_some()) {
        return Err(CliError::Usage(
            "--source-endpoint and --source-profile apply to a check of two URLs".into(),
        ));
    }
    let (root, remote, direction) = match (&src, &dst) {
        (Location::Local(p), Location::Remote(r)) => (p, r, Direction::Up),
        (Location::Remote(r), Location::Local(p)) => (p, r, Direction::Down),
        (Location::Remote(s), Location::Remote(d)) => return between_urls(setup, &a, s, d).await,
        _ => {
            return Err(CliError::Usage(
                "check compares a local directory or a URL with s3://… or oss://…; both are local"
                    .into(),
            ))
        }
    };
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(usage(root, "not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage(root, "no such directory"))
        }
        Err(e) => return Err(usage(root, &e.to_string())),
    }
    let h = setup.store_for(remote)?;
    let prefix = as_prefix(&remote.key);
    let target = SyncTarget {
        store: h.store.clone(),
        bucket: remote.bucket.clone(),
        prefix: prefix.clone(),
        root: root.to_path_buf(),
        cancel: setup.cancel.clone(),
    };
    let opts = options(&a)?;
    let dest_name = match direction {
        Direction::Up => remote.with_key(prefix).to_string(),
        Direction::Down => root.display().to_string(),
    };
    let printer = Printer::new(setup, &a, &dest_name);
    let started = Instant::now();
    let s = check_tree(&target, direction, &opts, &printer).await?;
    report(setup, &a, &s, &dest_name, started)
}

/// `check URL URL`: two prefixes, on one store or two.
async fn between_urls(
    setup: &Setup,
    a: &CheckArgs,
    s: &crate::location::RemoteUrl,
    d: &crate::location::RemoteUrl,
) -> Result<Outcome, CliError> {
    let opts = options(a)?;
    let source_setup = setup.for_source(a.source_endpoint.clone(), a.source_profile.clone());
    let sh = source_setup.as_ref().unwrap_or(setup).store_for(s)?;
    let dh = setup.store_for(d)?;
    let target = |h: &super::setup::StoreHandle, r: &crate::location::RemoteUrl| SyncTarget {
        store: h.store.clone(),
        bucket: r.bucket.clone(),
        prefix: as_prefix(&r.key),
        root: Default::default(),
        cancel: setup.cancel.clone(),
    };
    let (src, dst) = (target(&sh, s), target(&dh, d));
    let dest_name = d.with_key(dst.prefix.clone()).to_string();
    let printer = Printer::new(setup, a, &dest_name);
    let started = Instant::now();
    let summary = check_between(&src, &dst, &opts, &printer).await?;
    report(setup, a, &summary, &dest_name, started)
}

/// How deep and wide a check goes, from the flags.
fn options(a: &CheckArgs) -> Result<CheckOptions, CliError> {
    let filter = build_filter(
        &a.include,
        &a.exclude,
        &a.rule_files.include_from,
        &a.rule_files.exclude_from,
        a.rule_files.files_from.as_deref(),
    )?;
    Ok(CheckOptions {
        depth: if a.size_only {
            Depth::SizeOnly
        } else if a.download {
            Depth::Download
        } else if a.fast {
            Depth::Times
        } else {
            Depth::Content
        },
        one_way: a.one_way,
        jobs: check_jobs(a.jobs)?,
        walk: WalkOptions {
            follow_symlinks: a.follow_symlinks,
            filter,
            temps_seen: None,
        },
    })
}

/// The summary (a line, or JSON) and the exit it means.
fn report(
    setup: &Setup,
    a: &CheckArgs,
    s: &CheckSummary,
    dest_name: &str,
    started: Instant,
) -> Result<Outcome, CliError> {
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "event": "summary", "summary": s, "seconds": started.elapsed().as_secs_f64() })
        );
    } else {
        setup
            .reporter
            .say(&summary_line(s, dest_name, started.elapsed().as_secs_f64()));
    }
    Ok(if s.interrupted {
        Outcome::Interrupted
    } else if s.all_same() {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

fn usage(root: &Path, why: &str) -> CliError {
    CliError::Usage(format!("{}: {why}; nothing was checked", root.display()))
}

struct Printer {
    reporter: Arc<Reporter>,
    json: bool,
    matched: bool,
    dest: String,
}

impl Printer {
    fn new(setup: &Setup, a: &CheckArgs, dest: &str) -> Printer {
        Printer {
            reporter: setup.reporter.clone(),
            json: a.json,
            matched: a.matched,
            dest: dest.to_string(),
        }
    }
}

impl CheckObserver for Printer {
    fn finding(&self, f: &Finding) {
        if matches!(f, Finding::Same { .. }) && !self.matched {
            return;
        }
        if self.json {
            if let Ok(line) = serde_json::to_string(f) {
                println!("{line}");
            }
            return;
        }
        let line = |what: &str, key: &str, why: &str| {
            println!("{what:<9} {}  ({})", visible(key), visible(why));
        };
        match f {
            Finding::Same { key, by } => line("same", key, &format!("by {by}")),
            Finding::Differs { key, why } => line("differs", key, why),
            Finding::Missing { key } => line("missing", key, &format!("not in {}", self.dest)),
            Finding::Extra { key } => line("extra", key, &format!("only in {}", self.dest)),
            Finding::SizeOnly { key, why } => line("size-only", key, why),
            Finding::Failed { message, .. } => self.reporter.error(message),
            Finding::Warning { path, message } => {
                self.reporter.say(&format!("warning: {path}: {message}"))
            }
        }
    }
}

fn summary_line(s: &CheckSummary, dest: &str, secs: f64) -> String {
    let mut parts = vec![format!("{} same", s.same)];
    if s.differ > 0 {
        parts.push(format!("{} differ", s.differ));
    }
    if s.missing > 0 {
        parts.push(format!("{} missing from {dest}", s.missing));
    }
    if s.extra > 0 {
        parts.push(format!("{} only in {dest}", s.extra));
    }
    if s.size_only > 0 {
        parts.push(format!(
            "{} equal in size with nothing to compare content by (--download reads them)",
            s.size_only
        ));
    }
    if s.failed > 0 {
        parts.push(format!("{} could not be compared", s.failed));
    }
    if s.bytes_downloaded > 0 {
        parts.push(format!("{} read", crate::units::human(s.bytes_downloaded)));
    }
    let verdict = if s.interrupted {
        "check interrupted"
    } else if s.all_same() {
        "check: the same"
    } else {
        "check: differences"
    };
    format!("{verdict}: {} ({secs:.1} s)", parts.join(", "))
}
