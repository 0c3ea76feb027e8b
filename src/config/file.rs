//! The config file's shape. Unknown keys are errors, so a typo never turns
//! into a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{ConfigError, Env};
use crate::store::dialect::Addressing;
use crate::store::dialect::Dialect;
use crate::sync::plan::MaxDelete;
use crate::units::parse_size;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Settings every job shares unless it says otherwise.
    pub defaults: Option<JobTable>,
    #[serde(default)]
    pub jobs: BTreeMap<String, toml::Spanned<JobTable>>,
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The file's text, kept to turn spans into line:column in messages.
    #[serde(skip)]
    pub text: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub scheme: Option<Dialect>,
    pub endpoint: Option<String>,
    /// The nodes of one store (a cluster): requests spread over them.
    pub endpoints: Option<Vec<String>>,
    pub region: Option<String>,
    pub addressing_style: Option<Addressing>,
    /// OSS only: "v4" (default) or "v1".
    pub signature_version: Option<String>,
    /// Names of environment variables holding the credentials.
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub session_token_env: Option<String>,
    /// A section of an AWS-style credentials file.
    pub credentials_profile: Option<String>,
    pub credentials_file: Option<PathBuf>,
    /// Inline credentials are accepted but discouraged: the file must then
    /// not be readable by others.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// A request fails after this long with no byte moving either way.
    pub idle_timeout: Option<Dur>,
    /// `crc64nvme` (default where the store keeps it), `crc32c`, `crc32`
    /// or `md5`.
    pub checksum_algorithm: Option<String>,
    /// Requests say the requester pays (requester-pays buckets).
    pub requester_pays: Option<bool>,
    /// Extra CA certificates (PEM) trusted for this profile's endpoint.
    pub ca_bundle: Option<PathBuf>,
}

impl Profile {
    /// Whether the profile says where its credentials are (variables, a
    /// file and section, inline keys): then only those count.
    pub fn names_credentials(&self) -> bool {
        self.access_key_id_env.is_some()
            || self.secret_access_key_env.is_some()
            || self.access_key_id.is_some()
            || self.credentials_file.is_some()
            || self.credentials_profile.is_some()
    }
}

/// A byte size written as `"10M"` or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written as `"1s"`, `"500ms"`, `"5m"`, `"1h"` or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s, "s")
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0.0 => crate::units::duration_from_secs(n)
                .map(Dur)
                .ok_or_else(|| serde::de::Error::custom("too long a duration")),
            Raw::N(_) => Err(serde::de::Error::custom("a duration cannot be negative")),
            Raw::S(s) => parse_duration(&s)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One `[jobs.NAME]` table, or `[defaults]` (which has no source or
/// destination). Every key is optional here; resolution fills the gaps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTable {
    pub source: Option<Spanned<String>>,
    pub destination: Option<Spanned<String>>,
    pub profile: Option<String>,
    pub update: Option<bool>,
    pub delete: Option<bool>,
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    /// Rule files and a `--files-from` list (read at each run).
    pub include_from: Option<Vec<PathBuf>>,
    pub exclude_from: Option<Vec<PathBuf>>,
    pub files_from: Option<PathBuf>,
    pub follow_symlinks: Option<bool>,
    pub checkpoint_dir: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub parallel: Option<usize>,
    pub part_size: Option<Size>,
    pub bigfile_threshold: Option<Size>,
    pub bwlimit: Option<Size>,
    pub debounce: Option<Dur>,
    pub rescan_interval: Option<Dur>,
    /// `--max-delete`: a count (`100`) or a share (`"50%"`).
    pub max_delete: Option<DeleteLimit>,
    pub allow_empty_source: Option<bool>,
    /// `--size-only` / `--ignore-existing`.
    pub size_only: Option<bool>,
    pub ignore_existing: Option<bool>,
    /// `--checksum`.
    pub checksum: Option<bool>,
    /// `--backup-dir` (a URL or a directory) and `--suffix`.
    pub backup_dir: Option<String>,
    pub suffix: Option<String>,
    pub min_size: Option<Size>,
    pub max_size: Option<Size>,
    /// `--min-age` / `--max-age`: `7d` or a date, checked on load.
    pub min_age: Option<Age>,
    pub max_age: Option<Age>,
    /// `[jobs.NAME.object]` / `[defaults.object]`: what uploads store with
    /// each object (the command line's object options).
    pub object: Option<ObjectTable>,
}

/// The object options of a job, key by key as `cp` takes them as flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectTable {
    pub content_type: Option<String>,
    /// `false`: send no guessed Content-Type.
    pub guess_mime_type: Option<bool>,
    pub storage_class: Option<String>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub acl: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub expires: Option<String>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub tags: Option<std::collections::BTreeMap<String, String>>,
}

impl ObjectTable {
    /// The keys set (`object.KEY`), each with its value as `config show`
    /// prints it.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let map = |m: &Option<std::collections::BTreeMap<String, String>>| {
            m.as_ref().map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        };
        [
            ("object.content_type", self.content_type.clone()),
            (
                "object.guess_mime_type",
                self.guess_mime_type.map(|b| b.to_string()),
            ),
            ("object.storage_class", self.storage_class.clone()),
            ("object.sse", self.sse.clone()),
            ("object.sse_kms_key_id", self.sse_kms_key_id.clone()),
            ("object.acl", self.acl.clone()),
            ("object.cache_control", self.cache_control.clone()),
            (
                "object.content_disposition",
                self.content_disposition.clone(),
            ),
            ("object.content_encoding", self.content_encoding.clone()),
            ("object.expires", self.expires.clone()),
            ("object.metadata", map(&self.metadata)),
            ("object.tags", map(&self.tags)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// Key by key, this table's value where it sets one, else `under`'s.
    pub fn over(&self, under: &ObjectTable) -> ObjectTable {
        fn or<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        ObjectTable {
            content_type: or(&self.content_type, &under.content_type),
            guess_mime_type: or(&self.guess_mime_type, &under.guess_mime_type),
            storage_class: or(&self.storage_class, &under.storage_class),
            sse: or(&self.sse, &under.sse),
            sse_kms_key_id: or(&self.sse_kms_key_id, &under.sse_kms_key_id),
            acl: or(&self.acl, &under.acl),
            cache_control: or(&self.cache_control, &under.cache_control),
            content_disposition: or(&self.content_disposition, &under.content_disposition),
            content_encoding: or(&self.content_encoding, &under.content_encoding),
            expires: or(&self.expires, &under.expires),
            metadata: or(&self.metadata, &under.metadata),
            tags: or(&self.tags, &under.tags),
        }
    }
}

/// A delete limit written as `100` or `"50%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteLimit(pub MaxDelete);

/// An age (`7d`) or a date (`2026-01-31`), as `--min-age` takes it;
/// kept as written, since an age counts back from each run's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age(pub String);

impl<'de> Deserialize<'de> for Age {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::sync::file_rules::moment(&s, 0).map_err(serde::de::Error::custom)?;
        Ok(Age(s))
    }
}

impl<'de> Deserialize<'de> for DeleteLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(DeleteLimit(MaxDelete::Count(n))),
            Raw::S(s) => MaxDelete::parse(&s)
                .map(DeleteLimit)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl ConfigFile {
    /// `--config`, else `FERRY_CONFIG`, else `$XDG_CONFIG_HOME/ferry/config.toml`
    /// (`~/.config/ferry/config.toml`). Only an explicitly named file must exist.
    /// Checks the shape only; [`super::load`] also validates the jobs.
    pub fn read(explicit: Option<&Path>, env: &dyn Env) -> Result<ConfigFile, ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => match env.var("FERRY_CONFIG") {
                Some(p) => (PathBuf::from(p), true),
                None => match super::dirs::config_dir(env) {
                    Some(d) => (d.join("config.toml"), false),
                    None => return Ok(ConfigFile::default()),
                },
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default())
            }
            Err(e) => {
                return Err(ConfigError::File {
                    path,
                    message: format!("cannot read: {e}"),
                })
            }
        };
        let mut cfg = Self::parse(&text, &path)?;
        cfg.check_inline_secrets(&path)?;
        cfg.path = Some(path);
        Ok(cfg)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let mut cfg: ConfigFile = toml::from_str(text).map_err(|e| {
            let loc = e
                .span()
                .map(|s| {
                    let (line, col) = line_col(text, s.start);
                    format!(":{line}:{col}")
                })
                .unwrap_or_default();
            ConfigError::File {
                path: PathBuf::from(format!("{}{}", path.display(), loc)),
                // toml's syntax messages can span lines; a user reads one.
                message: e.message().split_whitespace().collect::<Vec<_>>().join(" "),
            }
        })?;
        cfg.text = Some(text.to_string());
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    fn check_inline_secrets(&self, path: &Path) -> Result<(), ConfigError> {
        let inline = self
            .profiles
            .values()
            .any(|p| p.secret_access_key.is_some());
        if !inline {
            return Ok(());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o004 != 0 {
                    return Err(ConfigError::File {
                        path: path.to_path_buf(),
                        message: "holds a secret key but is readable by every user; run chmod 600 on it, or reference the secret through an environment variable".into(),
                    });
                }
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "{}: holds a secret key; it should be readable by you alone (chmod 600)",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    pub fn profile(&self, name: &str) -> Result<&Profile, ConfigError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProfile(name.to_string()))
    }
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        let c = ConfigFile::parse(
            r#"
[profiles.local]
scheme = "s3"
endpoint = "http://127.0.0.1:3900"
region = "garage"
addressing_style = "path"
access_key_id_env = "MY_KEY"
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        let p = c.profile("local").unwrap();
        assert_eq!(p.scheme, Some(Dialect::S3));
        assert_eq!(p.addressing_style, Some(Addressing::Path));
        assert!(c.profile("nope").is_err());
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let err = ConfigFile::parse(
            "[profiles.a]\nregion = \"x\"\nendpiont = \"y\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.toml:3:1"), "{err}");
        assert!(err.contains("endpiont"), "{err}");
    }

    #[test]
    fn a_duration_no_clock_can_wait_for_is_refused() {
        for value in ["9.3e18", "\"9300000000000000000\""] {
            let text = format!("[defaults]\nrescan_interval = {value}\n");
            let err = ConfigFile::parse(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.toml:2:") && err.contains("too long"),
                "{err}"
            );
        }
    }

    #[test]
    fn wrong_type_reports_location() {
        let err = ConfigFile::parse("[profiles.a]\nregion = 5\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
    }
}

#[cfg(test)]
mod examples {
    use super::*;

    /// Every example in `config/` must parse.
    #[test]
    fn shipped_examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                let cfg = ConfigFile::parse(&text, &p).unwrap_or_else(|e| panic!("{e}"));
                cfg.validate_jobs().unwrap_or_else(|e| panic!("{e}"));
                assert!(!cfg.profiles.is_empty(), "{}", p.display());
                n += 1;
            }
        }
        assert!(
            n >= 4,
            "profiles, nightly backup, watch mirror and download examples"
        );
    }
}
