//! Credentials the way the AWS SDKs find them, for everything ferry does
//! not read itself: profiles in `~/.aws/config` with `role_arn` and
//! `source_profile` (AssumeRole, `external_id`), `credential_process`, SSO,
//! web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS IRSA),
//! container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` /
//! `_FULL_URI`, ECS and EKS Pod Identity) and EC2 instance metadata
//! (IMDSv2). The SDK's own providers (`aws-config`) do the finding; ferry
//! keeps its signer and client and asks this source before each request.
//!
//! Temporary credentials are kept until five minutes before they expire
//! and then fetched again, one refresh at a time (`refresh`).

use std::path::PathBuf;

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use tokio::sync::OnceCell;

use super::credentials::read_ini_section;
use super::refresh::{Fetch, Fetched};
use super::{ConfigError, Env};
use crate::store::credentials::Credentials;
use crate::store::{StoreError, StoreErrorKind};

pub struct AwsChain {
    profile: Option<String>,
    chain: OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl std::fmt::Debug for AwsChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsChain")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl AwsChain {
    /// `profile`: the `AWS_PROFILE` to read from the shared files.
    pub fn new(profile: Option<String>) -> AwsChain {
        AwsChain {
            profile,
            chain: OnceCell::new(),
        }
    }
}

#[async_trait]
impl Fetch for AwsChain {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        let chain = self
            .chain
            .get_or_init(|| async {
                let mut b =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
                if let Some(p) = &self.profile {
                    b = b.profile_name(p);
                }
                b.build().await
            })
            .await;
        let c = chain.provide_credentials().await.map_err(|e| {
            StoreError::new(
                StoreErrorKind::BadCredentials,
                format!(
                    "no credentials for s3://: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add them to ~/.aws/credentials, or pass --no-sign-request for public buckets; the AWS SDK's chain (profiles in ~/.aws/config, web identity, containers, instance metadata) found none either ({})",
                    error_chain(&e)
                ),
            )
        })?;
        Ok((
            Credentials {
                access_key_id: c.access_key_id().to_string(),
                secret_access_key: c.secret_access_key().to_string(),
                session_token: c.session_token().map(str::to_string),
            },
            c.expiry(),
        ))
    }
}

/// The SDKs' shared config file: `AWS_CONFIG_FILE`, else `~/.aws/config`.
fn shared_config_file(env: &dyn Env) -> Option<PathBuf> {
    env.var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".aws").join("config")))
}

/// A role profile with `mfa_serial` needs a code typed at a prompt, which
/// a cron job, a watch or a mount never has: refused before anything is
/// sent, naming the profile and what to do instead. Followed through
/// `source_profile`, as the SDKs follow it when assuming the role.
pub fn refuse_mfa(env: &dyn Env) -> Result<(), ConfigError> {
    let Some(path) = shared_config_file(env) else {
        return Ok(());
    };
    let mut name = env.var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    // A cycle of source_profiles is the SDK's error to report; stop at it.
    for _ in 0..8 {
        let Some(section) = read_ini_section(&path, &name) else {
            return Ok(());
        };
        if section.contains_key("role_arn") && section.contains_key("mfa_serial") {
            return Err(ConfigError::MissingCredentials(format!(
                "profile {name} in {} assumes its role with an MFA code (mfa_serial), which ferry cannot ask for: \
                 get temporary credentials first (e.g. `aws configure export-credentials --profile {name} --format env`) \
                 and pass them in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
                path.display()
            )));
        }
        match section.get("source_profile") {
            Some(next) if *next != name => name = next.clone(),
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Which of the chain's providers will answer, for `ferry config show`:
/// the SDK tries them in this order and moves on only when one has
/// nothing configured, so the environment and the shared config file
/// decide it (the SDK does not say which answered).
pub fn which(env: &dyn Env) -> String {
    let name = env.var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let path = shared_config_file(env);
    if let Some(section) = path.as_deref().and_then(|p| read_ini_section(p, &name)) {
        let how = if section.contains_key("role_arn") {
            Some(format!("AssumeRole {}", section["role_arn"]))
        } else if section.contains_key("credential_process") {
            Some("credential_process".into())
        } else if section.contains_key("sso_session") || section.contains_key("sso_start_url") {
            Some("SSO".into())
        } else {
            None
        };
        if let (Some(how), Some(p)) = (how, &path) {
            return format!("profile {name} in {} ({how})", p.display());
        }
    }
    if env.var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.var("AWS_ROLE_ARN").is_some() {
        return format!(
            "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, role {})",
            env.var("AWS_ROLE_ARN").unwrap_or_default()
        );
    }
    if env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        return "container credentials (ECS, EKS Pod Identity)".into();
    }
    "EC2 instance metadata (IMDSv2)".into()
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn an_mfa_role_is_refused_through_its_source_profile() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n\
             [profile admin]\nrole_arn = arn:aws:iam::1:role/admin\nsource_profile = default\nmfa_serial = arn:aws:iam::1:mfa/me\n\
             [profile ops]\nrole_arn = arn:aws:iam::1:role/ops\nsource_profile = admin\n\
             [profile plain]\nrole_arn = arn:aws:iam::1:role/plain\nsource_profile = default\n\
             [profile loop]\nrole_arn = r\nsource_profile = loop2\n[profile loop2]\nrole_arn = r\nsource_profile = loop\n",
        )
        .unwrap();
        let path: &'static str = Box::leak(config.to_str().unwrap().to_string().into_boxed_str());
        let with = |profile: &'static str| -> HashMap<&'static str, &'static str> {
            [("AWS_CONFIG_FILE", path), ("AWS_PROFILE", profile)]
                .into_iter()
                .collect()
        };
        for refused in ["admin", "ops"] {
            let e = refuse_mfa(&with(refused)).unwrap_err().to_string();
            assert!(
                e.contains("mfa_serial") && e.contains("AWS_SESSION_TOKEN"),
                "{e}"
            );
        }
        for fine in ["plain", "default", "loop", "missing"] {
            assert!(refuse_mfa(&with(fine)).is_ok(), "{fine}");
        }
    }

    #[test]
    fn config_show_names_the_provider_that_will_answer() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[profile role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n\
             [profile proc]\ncredential_process = /bin/creds\n[profile sso]\nsso_session = corp\n[default]\nregion = eu-west-1\n",
        )
        .unwrap();
        let path: &'static str = Box::leak(config.to_str().unwrap().to_string().into_boxed_str());
        let env = |pairs: &[(&'static str, &'static str)]| -> HashMap<&'static str, &'static str> {
            let mut m: HashMap<&str, &str> = pairs.iter().copied().collect();
            m.insert("AWS_CONFIG_FILE", path);
            m
        };
        assert!(
            which(&env(&[("AWS_PROFILE", "role")])).contains("AssumeRole arn:aws:iam::1:role/r")
        );
        assert!(which(&env(&[("AWS_PROFILE", "proc")])).contains("credential_process"));
        assert!(which(&env(&[("AWS_PROFILE", "sso")])).contains("SSO"));
        // A profile with only a region: the next providers decide.
        let web = env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:r"),
        ]);
        assert!(which(&web).starts_with("web identity"), "{}", which(&web));
        let ecs = env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")]);
        assert!(which(&ecs).starts_with("container"));
        assert!(which(&env(&[])).contains("IMDSv2"));
    }
}
