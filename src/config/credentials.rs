//! The credentials chain. For `s3://`: a profile's references, then
//! AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then the shared
//! credentials file (`~/.aws/credentials`, section AWS_PROFILE or default).
//! For `oss://`: a profile's references, then OSS_ACCESS_KEY_ID /
//! OSS_ACCESS_KEY_SECRET / OSS_SESSION_TOKEN.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::file::Profile;
use super::{ConfigError, Env};
use crate::store::credentials::Credentials;
use crate::store::dialect::Dialect;

/// Reads one section of an INI-style credentials file.
pub fn read_ini_section(path: &Path, section: &str) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut current = String::new();
    let mut found = None::<HashMap<String, String>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().trim_start_matches("profile ").to_string();
            if current == section {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if current == section {
            if let (Some(map), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    found
}

fn from_section(map: &HashMap<String, String>) -> Option<Credentials> {
    let pick = |names: &[&str]| names.iter().find_map(|n| map.get(*n).cloned());
    Some(Credentials {
        access_key_id: pick(&["aws_access_key_id", "accesskeyid", "access_key_id"])?,
        secret_access_key: pick(&[
            "aws_secret_access_key",
            "accesskeysecret",
            "access_key_secret",
        ])?,
        session_token: pick(&["aws_session_token", "ststoken", "session_token"]),
    })
}

fn from_env(env: &dyn Env, id: &str, secret: &str, token: &str) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: env.var(id)?,
        secret_access_key: env.var(secret)?,
        session_token: env.var(token),
    })
}

/// The credentials alone, for tests of the lookup order.
#[cfg(test)]
pub fn resolve_credentials(
    dialect: Dialect,
    profile: &Profile,
    env: &dyn Env,
) -> Result<Credentials, ConfigError> {
    resolve_with_source(dialect, profile, env).map(|(c, _)| c)
}

/// As [`resolve_credentials`], with where the credentials came from, for
/// `ferry config show` (never the secret itself).
pub fn resolve_with_source(
    dialect: Dialect,
    profile: &Profile,
    env: &dyn Env,
) -> Result<(Credentials, String), ConfigError> {
    if let (Some(id_var), Some(secret_var)) =
        (&profile.access_key_id_env, &profile.secret_access_key_env)
    {
        let token_var = profile.session_token_env.as_deref().unwrap_or("");
        return from_env(env, id_var, secret_var, token_var)
            .map(|c| (c, format!("environment variables {id_var} and {secret_var}, named by the profile")))
            .ok_or_else(|| {
                ConfigError::MissingCredentials(format!(
                    "the profile names {id_var} and {secret_var} for credentials, but they are not set"
                ))
            });
    }
    if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
        return Ok((
            Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: None,
            },
            "inline in the config file's profile".into(),
        ));
    }
    if profile.credentials_file.is_some() || profile.credentials_profile.is_some() {
        let path = profile
            .credentials_file
            .clone()
            .or_else(|| default_shared_file(env))
            .unwrap_or_default();
        let section = profile.credentials_profile.as_deref().unwrap_or("default");
        return read_ini_section(&path, section)
            .as_ref()
            .and_then(from_section)
            .map(|c| {
                (
                    c,
                    format!("{} [{section}], named by the profile", path.display()),
                )
            })
            .ok_or_else(|| {
                ConfigError::MissingCredentials(format!(
                    "{}: no credentials in section [{section}]",
                    path.display()
                ))
            });
    }
    match dialect {
        Dialect::S3 => {
            if let Some(c) = from_env(env, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") {
                return Ok((c, "environment (AWS_ACCESS_KEY_ID)".into()));
            }
            let section = env.var("AWS_PROFILE").unwrap_or_else(|| "default".into());
            if let Some(path) = default_shared_file(env) {
                if let Some(c) = read_ini_section(&path, &section)
                    .as_ref()
                    .and_then(from_section)
                {
                    return Ok((c, format!("{} [{section}]", path.display())));
                }
            }
            Err(ConfigError::MissingCredentials(
                "no credentials for s3://: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add them to ~/.aws/credentials, or pass --no-sign-request for public buckets".into(),
            ))
        }
        Dialect::Oss => from_env(env, "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")
            .map(|c| (c, "environment (OSS_ACCESS_KEY_ID)".into()))
            .ok_or_else(|| {
                ConfigError::MissingCredentials(
                    "no credentials for oss://: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (or ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET), configure a profile (aliyun configure, ~/.alibabacloud/credentials, ossutil config), or pass --no-sign-request for public buckets".into(),
                )
            }),
    }
}

fn default_shared_file(env: &dyn Env) -> Option<PathBuf> {
    env.var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".aws").join("credentials")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_then_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token=T\n",
        )
        .unwrap();
        let path = creds.to_str().unwrap().to_string();
        let path: &'static str = Box::leak(path.into_boxed_str());
        let mut env: HashMap<&str, &str> = HashMap::new();
        env.insert("AWS_SHARED_CREDENTIALS_FILE", path);
        let c = resolve_credentials(Dialect::S3, &Profile::default(), &env).unwrap();
        assert_eq!(c.access_key_id, "D");
        env.insert("AWS_PROFILE", "work");
        let c = resolve_credentials(Dialect::S3, &Profile::default(), &env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("W", Some("T"))
        );
        env.insert("AWS_ACCESS_KEY_ID", "E");
        env.insert("AWS_SECRET_ACCESS_KEY", "ES");
        assert_eq!(
            resolve_credentials(Dialect::S3, &Profile::default(), &env)
                .unwrap()
                .access_key_id,
            "E"
        );
    }

    #[test]
    fn oss_env_and_profile_references() {
        let env: HashMap<&str, &str> = [
            ("OSS_ACCESS_KEY_ID", "O"),
            ("OSS_ACCESS_KEY_SECRET", "OS"),
            ("MINE", "M"),
            ("MINE_S", "MS"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            resolve_credentials(Dialect::Oss, &Profile::default(), &env)
                .unwrap()
                .access_key_id,
            "O"
        );
        let p = Profile {
            access_key_id_env: Some("MINE".into()),
            secret_access_key_env: Some("MINE_S".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve_credentials(Dialect::Oss, &p, &env)
                .unwrap()
                .access_key_id,
            "M"
        );
        let p = Profile {
            access_key_id_env: Some("NOPE".into()),
            secret_access_key_env: Some("MINE_S".into()),
            ..Default::default()
        };
        assert!(resolve_credentials(Dialect::Oss, &p, &env)
            .unwrap_err()
            .to_string()
            .contains("NOPE"));
    }

    #[test]
    fn missing_credentials_message_never_leaks_and_guides() {
        let env: HashMap<&str, &str> = HashMap::new();
        let msg = resolve_credentials(Dialect::S3, &Profile::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("AWS_ACCESS_KEY_ID"));
    }
}
