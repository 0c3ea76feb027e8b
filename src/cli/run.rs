//! Config-file jobs: `ferry run`, `ferry watch`, `ferry jobs`, `ferry config show`.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::args::{ConfigCmd, JobOverrides, RunArgs, TransferArgs, WatchArgs};
use super::setup::Setup;
use super::tree::{outcome, run_tree_summary, Tree, TreeSpec};
use super::{CliError, Outcome};
use crate::config::dirs::state_dir;
use crate::config::file::{DeleteLimit, JobTable, Size};
use crate::config::jobs::Job;
use crate::config::ProcessEnv;
use crate::location::Location;
use crate::store::dialect::Dialect;
use crate::sync::plan::Compare;
use crate::units::human;
use crate::watch::WatchOptions;

/// The last result of a job, kept in `$XDG_STATE_HOME/ferry/jobs/NAME.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    pub started: u64,
    pub ended: u64,
    pub outcome: String,
    pub transferred: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub failed: u64,
    pub bytes: u64,
    #[serde(default)]
    pub message: Option<String>,
}

fn state_path(name: &str) -> PathBuf {
    state_dir(&ProcessEnv)
        .join("jobs")
        .join(format!("{name}.json"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn save_state(name: &str, state: &JobState) {
    let path = state_path(name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(bytes) = serde_json::to_vec_pretty(state) {
        let _ = crate::atomic_file::write_atomic(&path, &bytes);
    }
}

fn overrides_table(o: &JobOverrides) -> JobTable {
    JobTable {
        jobs: o.jobs,
        parallel: o.parallel,
        part_size: o.part_size.map(Size),
        checkpoint_dir: o.checkpoint_dir.clone(),
        max_delete: o.max_delete.map(DeleteLimit),
        allow_empty_source: o.allow_empty_source.then_some(true),
        ..Default::default()
    }
}

async fn run_job(
    setup: &Setup,
    job: &Job,
    o: &JobOverrides,
    watch: bool,
) -> Result<crate::sync::Summary, CliError> {
    let js = setup.for_job(job.profile.value.clone(), job.bwlimit.value);
    let src = Location::parse(&job.source)?;
    let dst = Location::parse(&job.destination)?;
    let remote = src.as_remote().or(dst.as_remote()).ok_or_else(|| {
        CliError::Usage(format!(
            "job '{}': one side must be s3:// or oss://",
            job.name
        ))
    })?;
    let h = js.store_for(remote)?;
    let transfer = js
        .transfer_options(
            &TransferArgs {
                checkpoint_dir: Some(job.checkpoint_dir.value.clone()),
                bigfile_threshold: job.bigfile_threshold.value,
                part_size: job.part_size.value,
                parallel: job.parallel.value,
                object: object_args(&job.object),
            },
            &h,
        )
        .map_err(|e| match e {
            CliError::Usage(m) => CliError::Usage(format!("job '{}': {m}", job.name)),
            other => other,
        })?;
    let spec = TreeSpec {
        update: job.update.value,
        delete: job.delete.value,
        dry_run: o.dry_run,
        jobs: job.jobs.value,
        include: job.include.value.clone(),
        exclude: job.exclude.value.clone(),
        include_from: job.include_from.value.clone(),
        exclude_from: job.exclude_from.value.clone(),
        files_from: job.files_from.value.clone(),
        follow_symlinks: job.follow_symlinks.value,
        compare: if job.size_only.value {
            Compare::SizeOnly
        } else if job.checksum.value {
            Compare::Checksum
        } else if job.ignore_existing.value {
            Compare::IgnoreExisting
        } else {
            Compare::Time
        },
        min_size: job.min_size.value,
        max_size: job.max_size.value,
        min_age: job.min_age.value.clone(),
        max_age: job.max_age.value.clone(),
        max_delete: Some(job.max_delete.value),
        allow_empty_source: job.allow_empty_source.value,
        backup_dir: job.backup_dir.value.clone(),
        suffix: job.suffix.value.clone(),
        memory_budget: None,
        json: o.json,
        watch: watch.then_some(WatchOptions {
            debounce: job.debounce.value,
            rescan_interval: job.rescan_interval.value,
        }),
    };
    let tree = match (&src, &dst) {
        (Location::Local(root), Location::Remote(r)) => Tree::Up { root, dst: r },
        (Location::Remote(r), Location::Local(root)) => Tree::Down { src: r, root },
        _ => {
            return Err(CliError::Usage(format!(
                "job '{}': one side must be local",
                job.name
            )))
        }
    };
    run_tree_summary(&js, &h, transfer, &spec, tree).await
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    use Outcome::*;
    match (a, b) {
        (Interrupted, _) | (_, Interrupted) => Interrupted,
        (BadInput, _) | (_, BadInput) => BadInput,
        (SomeFailed, _) | (_, SomeFailed) => SomeFailed,
        _ => Success,
    }
}

pub async fn run(setup: &Setup, a: RunArgs) -> Result<Outcome, CliError> {
    let names = if a.all {
        setup.file.job_names()
    } else {
        a.names.clone()
    };
    if names.is_empty() {
        return Err(CliError::Usage(if a.all {
            "the config file defines no jobs".into()
        } else {
            "name the jobs to run, or use --all".into()
        }));
    }
    // Every name is checked before anything runs.
    let flags = overrides_table(&a.overrides);
    let jobs: Vec<Job> = names
        .iter()
        .map(|n| setup.file.resolve_job(n, &flags, &ProcessEnv))
        .collect::<Result<_, _>>()?;
    let mut result = Outcome::Success;
    for job in &jobs {
        if setup.cancel.is_cancelled() {
            break;
        }
        setup.reporter.say(&format!(
            "ferry: job {}: {} -> {}",
            job.name, job.source, job.destination
        ));
        let started = now();
        let (o, state) = match run_job(setup, job, &a.overrides, false).await {
            Ok(s) => {
                let o = outcome(&s);
                let st = JobState {
                    started,
                    ended: now(),
                    outcome: match o {
                        Outcome::Success => "success",
                        Outcome::SomeFailed => "some files failed",
                        Outcome::Interrupted => "interrupted",
                        Outcome::BadInput => "error",
                    }
                    .into(),
                    transferred: s.transferred,
                    skipped: s.skipped,
                    deleted: s.deleted,
                    failed: s.failed,
                    bytes: s.bytes,
                    message: None,
                };
                (o, st)
            }
            Err(CliError::Interrupted) => break,
            Err(e) => {
                setup.reporter.error(&format!("job {}: {e}", job.name));
                // The other jobs still run; the exit code says which kind
                // of trouble this was.
                let o = if matches!(e, CliError::Usage(_)) {
                    Outcome::BadInput
                } else {
                    Outcome::SomeFailed
                };
                let st = JobState {
                    started,
                    ended: now(),
                    outcome: "error".into(),
                    transferred: 0,
                    skipped: 0,
                    deleted: 0,
                    failed: 0,
                    bytes: 0,
                    message: Some(e.to_string()),
                };
                (o, st)
            }
        };
        if !a.overrides.dry_run {
            save_state(&job.name, &state);
        }
        result = worst(result, o);
    }
    Ok(result)
}

pub async fn watch(setup: &Setup, a: WatchArgs) -> Result<Outcome, CliError> {
    let job = setup
        .file
        .resolve_job(&a.name, &overrides_table(&a.overrides), &ProcessEnv)?;
    if Location::parse(&job.source)?.as_remote().is_some() {
        return Err(CliError::Usage(format!(
            "job '{}': watch mode follows a local source; watching a bucket for changes is not supported (use `ferry run` on a schedule instead)",
            job.name
        )));
    }
    run_job(setup, &job, &a.overrides, true).await?;
    Ok(Outcome::Success)
}

pub fn list(setup: &Setup) -> Result<Outcome, CliError> {
    let names = setup.file.job_names();
    if names.is_empty() {
        setup.reporter.say("no jobs defined in the config file");
        return Ok(Outcome::Success);
    }
    for name in names {
        let job = setup
            .file
            .resolve_job(&name, &JobTable::default(), &ProcessEnv)?;
        let last = std::fs::read(state_path(&name))
            .ok()
            .and_then(|b| serde_json::from_slice::<JobState>(&b).ok());
        let last = match last {
            Some(s) => {
                let when = time::OffsetDateTime::from_unix_timestamp(s.ended as i64)
                    .map(super::ls::format_time)
                    .unwrap_or_default();
                format!(
                    "last run {when}: {} ({} sent, {}, {} up to date, {} deleted, {} failed)",
                    s.outcome,
                    s.transferred,
                    human(s.bytes),
                    s.skipped,
                    s.deleted,
                    s.failed
                )
            }
            None => "never run".into(),
        };
        println!("{name}: {} -> {}  [{last}]", job.source, job.destination);
    }
    Ok(Outcome::Success)
}

/// A job's `object` table as the flags `cp` takes, so one check serves both.
fn object_args(t: &crate::config::file::ObjectTable) -> super::args::ObjectArgs {
    let pairs = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    };
    super::args::ObjectArgs {
        content_type: t.content_type.clone(),
        no_guess_mime_type: t.guess_mime_type == Some(false),
        storage_class: t.storage_class.clone(),
        sse: t.sse.clone(),
        sse_kms_key_id: t.sse_kms_key_id.clone(),
        acl: t.acl.clone(),
        metadata: pairs(&t.metadata),
        cache_control: t.cache_control.clone(),
        content_disposition: t.content_disposition.clone(),
        content_encoding: t.content_encoding.clone(),
        expires: t.expires.clone(),
        tag: pairs(&t.tags),
    }
}

/// The first four characters, then stars: never slices inside a
/// multi-byte character.
fn mask(s: &str) -> String {
    if s.chars().count() <= 4 {
        "****".into()
    } else {
        format!("{}****", s.chars().take(4).collect::<String>())
    }
}

pub fn config(setup: &Setup, cmd: ConfigCmd) -> Result<Outcome, CliError> {
    let ConfigCmd::Show { job } = cmd;
    let f = &setup.file;
    println!(
        "config file: {}",
        f.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none)".into())
    );
    if job.is_none() {
        // The credentials this command line would use, per scheme.
        println!("credentials:");
        for d in [Dialect::S3, Dialect::Oss] {
            let line = match setup.credential_source(d) {
                Ok(Some((source, key))) => format!("{source}, key {}", mask(&key)),
                Ok(None) => "none (--no-sign-request)".into(),
                Err(e) => format!("not found: {e}"),
            };
            println!("  {:<22} {}", format!("{}://", d.name()), line);
        }
        for (name, p) in &f.profiles {
            println!("[profiles.{name}]");
            let show = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    println!("  {k:<22} {v}");
                }
            };
            show("scheme", p.scheme.map(|s| s.name().to_string()));
            show("endpoint", p.endpoint.clone());
            show("endpoints", p.endpoints.as_ref().map(|e| e.join(", ")));
            show("region", p.region.clone());
            show(
                "addressing_style",
                p.addressing_style.map(|a| format!("{a:?}").to_lowercase()),
            );
            show("signature_version", p.signature_version.clone());
            show(
                "idle_timeout",
                p.idle_timeout.map(|d| format!("{}s", d.0.as_secs_f64())),
            );
            show("access_key_id_env", p.access_key_id_env.clone());
            show("secret_access_key_env", p.secret_access_key_env.clone());
            show("session_token_env", p.session_token_env.clone());
            show("credentials_profile", p.credentials_profile.clone());
            show(
                "credentials_file",
                p.credentials_file.as_ref().map(|c| c.display().to_string()),
            );
            show("access_key_id", p.access_key_id.as_deref().map(mask));
            show(
                "secret_access_key",
                p.secret_access_key
                    .as_ref()
                    .map(|_| "**** (inline; prefer secret_access_key_env)".to_string()),
            );
        }
    }
    let names = match job {
        Some(j) => vec![j],
        None => f.job_names(),
    };
    for name in names {
        let j = f.resolve_job(&name, &JobTable::default(), &ProcessEnv)?;
        println!("[jobs.{name}]");
        for (k, v, origin) in j.describe() {
            println!("  {k:<22} {v:<40} ({})", origin.name());
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_keeps_four_characters_of_any_script() {
        assert_eq!(super::mask("AKIAXYZ"), "AKIA****");
        assert_eq!(super::mask("ключ-доступа"), "ключ****");
        assert_eq!(super::mask("ab"), "****");
    }
}
