//! Credentials for `oss://` as Alibaba's SDKs and tools find them, after
//! ferry's own `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET` /
//! `OSS_SESSION_TOKEN` (the OSS SDK's variables) and a profile's keys:
//!
//! 1. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` / `ALIBABA_CLOUD_SECURITY_TOKEN`
//! 2. RRSA: `ALIBABA_CLOUD_ROLE_ARN`, `_OIDC_PROVIDER_ARN`, `_OIDC_TOKEN_FILE`
//! 3. the aliyun CLI's `~/.aliyun/config.json` (`ALIBABA_CLOUD_PROFILE` or `current`)
//! 4. `~/.alibabacloud/credentials` (`ALIBABA_CLOUD_PROFILE` or `default`)
//! 5. ossutil's `~/.ossutilconfig` (`OSSUTIL_PROFILE`, `[default]`, `[Credentials]`)
//! 6. `ALIBABA_CLOUD_CREDENTIALS_URI`
//! 7. the ECS instance's RAM role (metadata service, IMDSv2)
//!
//! The order is credentials-go's default chain with ossutil's file added
//! after the SDKs' own, and the URI (named explicitly) before the instance
//! (probed). No crate reads these sources; see docs/DESIGN.md.

mod files;
mod providers;
pub mod rpc_sign;
mod spec;

use std::sync::Arc;

pub use files::Found;
pub use spec::Spec;

use super::refresh::Refreshing;
use super::{ConfigError, Env};
use crate::store::credentials::CredentialSource;

/// A credential source and where it was found.
pub type Sourced = (Arc<dyn CredentialSource>, String);

/// The first source in the chain that says anything, as a credential
/// source and the line `ferry config show` prints for it; `None` when
/// nothing does (the metadata service disabled too).
pub fn resolve(env: &dyn Env) -> Result<Option<Sourced>, ConfigError> {
    let Some(found) = find(env)? else {
        return Ok(None);
    };
    Ok(Some((
        source_for(&found.spec, env, found.probed),
        found.origin,
    )))
}

/// Which source applies, without fetching anything.
pub fn find(env: &dyn Env) -> Result<Option<Found>, ConfigError> {
    if let Some(f) = files::from_env(env)? {
        return Ok(Some(f));
    }
    if let Some(f) = files::cli_profile(env)? {
        return Ok(Some(f));
    }
    if let Some(f) = files::credentials_file(env)? {
        return Ok(Some(f));
    }
    if let Some(f) = files::ossutil_config(env)? {
        return Ok(Some(f));
    }
    Ok(files::credentials_uri(env).or_else(|| files::ecs_ram_role(env)))
}

/// The metadata service's address: Alibaba's fixed one, or
/// `FERRY_ECS_METADATA_ENDPOINT` (a relay, or a test's stand-in).
fn metadata_base(env: &dyn Env) -> String {
    env.var("FERRY_ECS_METADATA_ENDPOINT")
        .unwrap_or_else(|| providers::ECS_METADATA.to_string())
}

pub fn source_for(spec: &Spec, env: &dyn Env, probed: bool) -> Arc<dyn CredentialSource> {
    match spec {
        Spec::Static(c) => Arc::new(c.clone()),
        Spec::RamRoleArn {
            source,
            role,
            external_id,
        } => Arc::new(Refreshing::new(providers::AssumeRole::new(
            source_for(source, env, false),
            role.clone(),
            external_id.clone(),
        ))),
        Spec::Oidc {
            role,
            provider_arn,
            token_file,
        } => Arc::new(Refreshing::new(providers::Oidc::new(
            role.clone(),
            provider_arn.clone(),
            token_file.clone(),
        ))),
        Spec::EcsRamRole { role_name } => Arc::new(Refreshing::new(providers::EcsRamRole::new(
            metadata_base(env),
            role_name.clone(),
            files::truthy(env.var("ALIBABA_CLOUD_IMDSV1_DISABLED")),
            probed,
        ))),
        Spec::Process { command } => Arc::new(Refreshing::new(providers::Process {
            command: command.clone(),
        })),
        Spec::Uri(url) => Arc::new(Refreshing::new(providers::Uri::new(url.clone()))),
    }
}
#[cfg(test)]
mod tests;
