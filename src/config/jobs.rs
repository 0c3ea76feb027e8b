//! Backup jobs in the config file: `[defaults]` shared by every job and
//! `[jobs.NAME]` tables, resolved as flags > job > defaults > built-in.

use std::path::PathBuf;
use std::time::Duration;

use super::file::{line_col, ConfigFile, JobTable, ObjectTable};
use super::{ConfigError, Env};
use crate::location::Location;
use crate::sync::plan::MaxDelete;

/// Where an effective value came from, for `ferry config show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Job,
    Defaults,
    BuiltIn,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Flag => "command line",
            Origin::Job => "job",
            Origin::Defaults => "[defaults]",
            Origin::BuiltIn => "built-in",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Valued<T> {
    pub value: T,
    pub origin: Origin,
}

/// A job with every setting decided.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub source: String,
    pub destination: String,
    pub profile: Valued<Option<String>>,
    pub update: Valued<bool>,
    pub delete: Valued<bool>,
    pub include: Valued<Vec<String>>,
    pub exclude: Valued<Vec<String>>,
    pub include_from: Valued<Vec<PathBuf>>,
    pub exclude_from: Valued<Vec<PathBuf>>,
    pub files_from: Valued<Option<PathBuf>>,
    pub follow_symlinks: Valued<bool>,
    pub checkpoint_dir: Valued<PathBuf>,
    pub jobs: Valued<usize>,
    pub parallel: Valued<usize>,
    pub part_size: Valued<Option<u64>>,
    pub bigfile_threshold: Valued<u64>,
    pub bwlimit: Valued<Option<u64>>,
    pub debounce: Valued<Duration>,
    pub rescan_interval: Valued<Duration>,
    pub max_delete: Valued<MaxDelete>,
    pub allow_empty_source: Valued<bool>,
    pub size_only: Valued<bool>,
    pub ignore_existing: Valued<bool>,
    pub checksum: Valued<bool>,
    pub backup_dir: Valued<Option<String>>,
    pub suffix: Valued<Option<String>>,
    pub min_size: Valued<Option<u64>>,
    pub max_size: Valued<Option<u64>>,
    pub min_age: Valued<Option<String>>,
    pub max_age: Valued<Option<String>>,
    /// The job's object options over `[defaults.object]`, key by key.
    pub object: ObjectTable,
    /// Which keys of `object` the job itself set (the rest are defaults').
    pub object_from_job: Vec<&'static str>,
}

/// A job's delete limit unless it sets one: a pass deletes at most half of
/// a destination of 10 entries or more (see `sync::plan::MaxDelete`).
pub const DEFAULT_JOB_MAX_DELETE: MaxDelete = MaxDelete::Percent(50);

fn pick<T: Clone>(flag: Option<T>, job: Option<T>, defaults: Option<T>, builtin: T) -> Valued<T> {
    match (flag, job, defaults) {
        (Some(v), _, _) => Valued {
            value: v,
            origin: Origin::Flag,
        },
        (None, Some(v), _) => Valued {
            value: v,
            origin: Origin::Job,
        },
        (None, None, Some(v)) => Valued {
            value: v,
            origin: Origin::Defaults,
        },
        _ => Valued {
            value: builtin,
            origin: Origin::BuiltIn,
        },
    }
}

fn pick_opt<T: Clone>(flag: Option<T>, job: Option<T>, defaults: Option<T>) -> Valued<Option<T>> {
    pick(flag.map(Some), job.map(Some), defaults.map(Some), None)
}

impl ConfigFile {
    fn err_at(&self, span: Option<std::ops::Range<usize>>, msg: String) -> ConfigError {
        let path = self.path.clone().unwrap_or_else(|| PathBuf::from("config"));
        let loc = match (span, &self.text) {
            (Some(s), Some(text)) => {
                let (l, c) = line_col(text, s.start);
                format!(":{l}:{c}")
            }
            _ => String::new(),
        };
        ConfigError::File {
            path: PathBuf::from(format!("{}{loc}", path.display())),
            message: msg,
        }
    }

    /// Checks what serde cannot: sources, destinations, profile names.
    pub fn validate_jobs(&self) -> Result<(), ConfigError> {
        if let Some(d) = &self.defaults {
            if let Some(s) = d.source.as_ref().or(d.destination.as_ref()) {
                return Err(self.err_at(
                    Some(s.span()),
                    "[defaults] cannot name a source or destination; put them in a [jobs.NAME] table".into(),
                ));
            }
        }
        for (name, table) in &self.jobs {
            let t = table.get_ref();
            let Some(src) = &t.source else {
                return Err(self.err_at(
                    Some(table.span()),
                    format!("job '{name}' has no source; add source = \"/path\" or \"s3://bucket/prefix\""),
                ));
            };
            let Some(dst) = &t.destination else {
                return Err(self.err_at(
                    Some(table.span()),
                    format!("job '{name}' has no destination; add destination = \"s3://bucket/prefix\" or a local path"),
                ));
            };
            let sl = Location::parse(src.get_ref())
                .map_err(|e| self.err_at(Some(src.span()), e.to_string()))?;
            let dl = Location::parse(dst.get_ref())
                .map_err(|e| self.err_at(Some(dst.span()), e.to_string()))?;
            match (&sl, &dl) {
                (Location::Local(_), Location::Local(_)) | (Location::Remote(_), Location::Remote(_)) => {
                    return Err(self.err_at(
                        Some(dst.span()),
                        format!("job '{name}': one side must be local and the other s3:// or oss://"),
                    ))
                }
                (Location::Local(s), Location::Remote(_)) if !s.is_absolute() => {
                    return Err(self.err_at(Some(src.span()), format!("job '{name}': use an absolute source path (jobs run from cron and timers, where the working directory is arbitrary)")))
                }
                (Location::Remote(_), Location::Local(d)) if !d.is_absolute() => {
                    return Err(self.err_at(Some(dst.span()), format!("job '{name}': use an absolute destination path")))
                }
                _ => {}
            }
            if src.get_ref().trim_end_matches('/') == dst.get_ref().trim_end_matches('/') {
                return Err(self.err_at(
                    Some(dst.span()),
                    format!("job '{name}': the destination is the source"),
                ));
            }
            if let (Location::Local(s), Location::Local(d)) = (&sl, &dl) {
                if d.starts_with(s) {
                    return Err(self.err_at(
                        Some(dst.span()),
                        format!("job '{name}': the destination is inside the source"),
                    ));
                }
            }
            if let Some(p) = t
                .profile
                .as_ref()
                .or(self.defaults.as_ref().and_then(|d| d.profile.as_ref()))
            {
                if !self.profiles.contains_key(p) {
                    return Err(self.err_at(Some(table.span()), format!("job '{name}' uses profile '{p}', which is not defined; add [profiles.{p}]")));
                }
            }
        }
        Ok(())
    }

    pub fn job_names(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }

    /// The job with every setting decided; `flags` override the file.
    pub fn resolve_job(
        &self,
        name: &str,
        flags: &JobTable,
        env: &dyn Env,
    ) -> Result<Job, ConfigError> {
        let table = self.jobs.get(name).ok_or_else(|| {
            let known = self.job_names();
            ConfigError::Invalid(if known.is_empty() {
                format!("no job '{name}': the config file defines no jobs")
            } else {
                format!("no job '{name}'; defined jobs: {}", known.join(", "))
            })
        })?;
        let j = table.get_ref();
        let d = self.defaults.clone().unwrap_or_default();
        let f = flags;
        let source = j
            .source
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default();
        let destination = j
            .destination
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default();
        let (jo, dobj) = (
            j.object.clone().unwrap_or_default(),
            d.object.clone().unwrap_or_default(),
        );
        Ok(Job {
            object: jo.over(&dobj),
            object_from_job: jo.entries().into_iter().map(|(k, _)| k).collect(),
            name: name.to_string(),
            profile: pick_opt(f.profile.clone(), j.profile.clone(), d.profile.clone()),
            update: pick(f.update, j.update, d.update, true),
            delete: pick(f.delete, j.delete, d.delete, false),
            include: pick(
                f.include.clone(),
                j.include.clone(),
                d.include.clone(),
                Vec::new(),
            ),
            exclude: pick(
                f.exclude.clone(),
                j.exclude.clone(),
                d.exclude.clone(),
                Vec::new(),
            ),
            include_from: pick(
                f.include_from.clone(),
                j.include_from.clone(),
                d.include_from.clone(),
                Vec::new(),
            ),
            exclude_from: pick(
                f.exclude_from.clone(),
                j.exclude_from.clone(),
                d.exclude_from.clone(),
                Vec::new(),
            ),
            files_from: pick_opt(
                f.files_from.clone(),
                j.files_from.clone(),
                d.files_from.clone(),
            ),
            follow_symlinks: pick(
                f.follow_symlinks,
                j.follow_symlinks,
                d.follow_symlinks,
                false,
            ),
            checkpoint_dir: pick(
                f.checkpoint_dir.clone(),
                j.checkpoint_dir.clone(),
                d.checkpoint_dir.clone().map(|p| p.join(name)),
                super::dirs::state_dir(env).join("checkpoints").join(name),
            ),
            jobs: pick(f.jobs, j.jobs, d.jobs, 8),
            parallel: pick(f.parallel, j.parallel, d.parallel, 4),
            part_size: pick_opt(
                f.part_size.map(|s| s.0),
                j.part_size.map(|s| s.0),
                d.part_size.map(|s| s.0),
            ),
            bigfile_threshold: pick(
                f.bigfile_threshold.map(|s| s.0),
                j.bigfile_threshold.map(|s| s.0),
                d.bigfile_threshold.map(|s| s.0),
                100 * 1024 * 1024,
            ),
            bwlimit: pick_opt(
                f.bwlimit.map(|s| s.0),
                j.bwlimit.map(|s| s.0),
                d.bwlimit.map(|s| s.0),
            ),
            debounce: pick(
                f.debounce.map(|x| x.0),
                j.debounce.map(|x| x.0),
                d.debounce.map(|x| x.0),
                Duration::from_secs(1),
            ),
            rescan_interval: pick(
                f.rescan_interval.map(|x| x.0),
                j.rescan_interval.map(|x| x.0),
                d.rescan_interval.map(|x| x.0),
                Duration::from_secs(300),
            ),
            max_delete: pick(
                f.max_delete.map(|x| x.0),
                j.max_delete.map(|x| x.0),
                d.max_delete.map(|x| x.0),
                DEFAULT_JOB_MAX_DELETE,
            ),
            allow_empty_source: pick(
                f.allow_empty_source,
                j.allow_empty_source,
                d.allow_empty_source,
                false,
            ),
            size_only: pick(f.size_only, j.size_only, d.size_only, false),
            ignore_existing: pick(
                f.ignore_existing,
                j.ignore_existing,
                d.ignore_existing,
                false,
            ),
            checksum: pick(f.checksum, j.checksum, d.checksum, false),
            backup_dir: pick_opt(
                f.backup_dir.clone(),
                j.backup_dir.clone(),
                d.backup_dir.clone(),
            ),
            suffix: pick_opt(f.suffix.clone(), j.suffix.clone(), d.suffix.clone()),
            min_size: pick_opt(
                f.min_size.map(|s| s.0),
                j.min_size.map(|s| s.0),
                d.min_size.map(|s| s.0),
            ),
            max_size: pick_opt(
                f.max_size.map(|s| s.0),
                j.max_size.map(|s| s.0),
                d.max_size.map(|s| s.0),
            ),
            min_age: pick_opt(
                f.min_age.clone().map(|a| a.0),
                j.min_age.clone().map(|a| a.0),
                d.min_age.clone().map(|a| a.0),
            ),
            max_age: pick_opt(
                f.max_age.clone().map(|a| a.0),
                j.max_age.clone().map(|a| a.0),
                d.max_age.clone().map(|a| a.0),
            ),
            source,
            destination,
        })
    }
}

impl Job {
    /// `ferry config show`: each setting, its value and where it came from.
    pub fn describe(&self) -> Vec<(&'static str, String, Origin)> {
        fn fmt_size(v: Option<u64>) -> String {
            v.map(crate::units::human).unwrap_or_else(|| "auto".into())
        }
        vec![
            ("source", self.source.clone(), Origin::Job),
            ("destination", self.destination.clone(), Origin::Job),
            (
                "profile",
                self.profile
                    .value
                    .clone()
                    .unwrap_or_else(|| "(environment)".into()),
                self.profile.origin,
            ),
            ("update", self.update.value.to_string(), self.update.origin),
            ("delete", self.delete.value.to_string(), self.delete.origin),
            (
                "include",
                format!("{:?}", self.include.value),
                self.include.origin,
            ),
            (
                "exclude",
                format!("{:?}", self.exclude.value),
                self.exclude.origin,
            ),
            (
                "include_from",
                format!("{:?}", self.include_from.value),
                self.include_from.origin,
            ),
            (
                "exclude_from",
                format!("{:?}", self.exclude_from.value),
                self.exclude_from.origin,
            ),
            (
                "files_from",
                self.files_from
                    .value
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none".into()),
                self.files_from.origin,
            ),
            (
                "follow_symlinks",
                self.follow_symlinks.value.to_string(),
                self.follow_symlinks.origin,
            ),
            (
                "max_delete",
                self.max_delete.value.to_string(),
                self.max_delete.origin,
            ),
            (
                "allow_empty_source",
                self.allow_empty_source.value.to_string(),
                self.allow_empty_source.origin,
            ),
            (
                "size_only",
                self.size_only.value.to_string(),
                self.size_only.origin,
            ),
            (
                "ignore_existing",
                self.ignore_existing.value.to_string(),
                self.ignore_existing.origin,
            ),
            (
                "checksum",
                self.checksum.value.to_string(),
                self.checksum.origin,
            ),
            (
                "backup_dir",
                self.backup_dir
                    .value
                    .clone()
                    .unwrap_or_else(|| "none".into()),
                self.backup_dir.origin,
            ),
            (
                "suffix",
                self.suffix.value.clone().unwrap_or_else(|| "none".into()),
                self.suffix.origin,
            ),
            (
                "min_size",
                self.min_size
                    .value
                    .map(crate::units::human)
                    .unwrap_or_else(|| "none".into()),
                self.min_size.origin,
            ),
            (
                "max_size",
                self.max_size
                    .value
                    .map(crate::units::human)
                    .unwrap_or_else(|| "none".into()),
                self.max_size.origin,
            ),
            (
                "min_age",
                self.min_age.value.clone().unwrap_or_else(|| "none".into()),
                self.min_age.origin,
            ),
            (
                "max_age",
                self.max_age.value.clone().unwrap_or_else(|| "none".into()),
                self.max_age.origin,
            ),
            (
                "checkpoint_dir",
                self.checkpoint_dir.value.display().to_string(),
                self.checkpoint_dir.origin,
            ),
            ("jobs", self.jobs.value.to_string(), self.jobs.origin),
            (
                "parallel",
                self.parallel.value.to_string(),
                self.parallel.origin,
            ),
            (
                "part_size",
                fmt_size(self.part_size.value),
                self.part_size.origin,
            ),
            (
                "bigfile_threshold",
                crate::units::human(self.bigfile_threshold.value),
                self.bigfile_threshold.origin,
            ),
            (
                "bwlimit",
                self.bwlimit
                    .value
                    .map(|b| format!("{}/s", crate::units::human(b)))
                    .unwrap_or_else(|| "unlimited".into()),
                self.bwlimit.origin,
            ),
            (
                "debounce",
                format!("{:?}", self.debounce.value),
                self.debounce.origin,
            ),
            (
                "rescan_interval",
                format!("{:?}", self.rescan_interval.value),
                self.rescan_interval.origin,
            ),
        ]
        .into_iter()
        .chain(self.object.entries().into_iter().map(|(k, v)| {
            let origin = if self.object_from_job.contains(&k) {
                Origin::Job
            } else {
                Origin::Defaults
            };
            (k, v, origin)
        }))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::parse_duration;
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        let mut c = ConfigFile::parse(text, Path::new("c.toml"))?;
        c.path = Some(PathBuf::from("c.toml"));
        c.validate_jobs()?;
        Ok(c)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn validation_errors_name_line_and_column() {
        assert!(err("[jobs.a]\ndestination = \"s3://bkt/x\"\n")
            .starts_with("c.toml:1:1: job 'a' has no source"));
        let e = err("[jobs.a]\nsource = \"/data\"\ndestination = \"/data\"\n");
        assert!(
            e.starts_with("c.toml:3:15") && e.contains("one side must be local"),
            "{e}"
        );
        let e = err("[jobs.a]\nsource = \"s3://bkt/x\"\ndestination = \"s3://bkt/x\"\n");
        assert!(e.starts_with("c.toml:3:15"), "{e}");
        let e = err("[jobs.a]\nsource = \"/data\"\ndestination = \"s3://Bad_Bucket/x\"\n");
        assert!(
            e.starts_with("c.toml:3:15") && e.contains("invalid bucket"),
            "{e}"
        );
        let e = err("[jobs.a]\nsource = \"/data\"\ndestination = \"s3://bkt/x\"\njobz = 4\n");
        assert!(e.starts_with("c.toml:4:1") && e.contains("jobz"), "{e}");
        let e =
            err("[jobs.a]\nsource = \"/data\"\ndestination = \"s3://bkt/x\"\njobs = \"four\"\n");
        assert!(e.starts_with("c.toml:4:8"), "{e}");
        let e = err("[jobs.a]\nsource = \"data\"\ndestination = \"s3://bkt/x\"\n");
        assert!(e.contains("absolute"), "{e}");
        let e =
            err("[jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\nprofile = \"nope\"\n");
        assert!(e.contains("profile 'nope'"), "{e}");
        let e = err("[defaults]\nsource = \"/d\"\n");
        assert!(
            e.starts_with("c.toml:2:10") && e.contains("[defaults]"),
            "{e}"
        );
        let e = err("[jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\nbwlimit = \"10Q\"\n");
        assert!(
            e.starts_with("c.toml:4:11") && e.contains("unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn backup_keys_come_from_the_job_or_its_defaults() {
        let c = parse(
            "[defaults]\nbackup_dir = \"s3://bkt/old/\"\n[jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\nsuffix = \".bak\"\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("HOME", "/home/u")].into_iter().collect();
        let j = c.resolve_job("a", &JobTable::default(), &env).unwrap();
        assert_eq!(j.backup_dir.value.as_deref(), Some("s3://bkt/old/"));
        assert_eq!(j.backup_dir.origin, Origin::Defaults);
        assert_eq!(j.suffix.value.as_deref(), Some(".bak"));
        assert_eq!(j.suffix.origin, Origin::Job);
        let shown = j.describe();
        assert!(shown.iter().any(|(k, v, _)| *k == "suffix" && v == ".bak"));
    }

    #[test]
    fn object_options_merge_key_by_key_over_the_defaults() {
        let c = parse(
            "[defaults.object]\nstorage_class = \"STANDARD_IA\"\ncache_control = \"max-age=1\"\n[jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\n[jobs.a.object]\ncache_control = \"no-cache\"\nmetadata = { owner = \"ops\" }\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("HOME", "/home/u")].into_iter().collect();
        let j = c.resolve_job("a", &JobTable::default(), &env).unwrap();
        assert_eq!(j.object.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(j.object.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(
            j.object
                .metadata
                .as_ref()
                .and_then(|m| m.get("owner"))
                .map(String::as_str),
            Some("ops")
        );
        let shown: Vec<(&str, String, Origin)> = j
            .describe()
            .into_iter()
            .filter(|(k, _, _)| k.starts_with("object."))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "object.storage_class",
                    "STANDARD_IA".to_string(),
                    Origin::Defaults
                ),
                ("object.cache_control", "no-cache".to_string(), Origin::Job),
                ("object.metadata", "owner=ops".to_string(), Origin::Job),
            ]
        );
        // Unknown keys in the table are errors, as everywhere in the file.
        let e = parse("[defaults.object]\nstorage = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn precedence_flag_job_defaults_builtin() {
        let c = parse(
            "[defaults]\njobs = 3\nparallel = 2\nbwlimit = \"5M\"\n[jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\nparallel = 6\ndebounce = \"250ms\"\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("HOME", "/home/u")].into_iter().collect();
        let flags = JobTable {
            jobs: Some(9),
            ..Default::default()
        };
        let j = c.resolve_job("a", &flags, &env).unwrap();
        assert_eq!((j.jobs.value, j.jobs.origin), (9, Origin::Flag));
        assert_eq!((j.parallel.value, j.parallel.origin), (6, Origin::Job));
        assert_eq!(
            (j.bwlimit.value, j.bwlimit.origin),
            (Some(5 << 20), Origin::Defaults)
        );
        assert_eq!((j.update.value, j.update.origin), (true, Origin::BuiltIn));
        assert_eq!(j.debounce.value, Duration::from_millis(250));
        assert_eq!(
            j.checkpoint_dir.value,
            PathBuf::from("/home/u/.local/state/ferry/checkpoints/a")
        );
        assert!(c
            .resolve_job("b", &flags, &env)
            .unwrap_err()
            .to_string()
            .contains("defined jobs: a"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5y").is_err());
    }
}
