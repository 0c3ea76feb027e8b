//! Where Alibaba's tools keep credentials, read the way they read them:
//! the environment (`ALIBABA_CLOUD_*`, RRSA's OIDC variables), the aliyun
//! CLI's `~/.aliyun/config.json`, the SDKs' `~/.alibabacloud/credentials`,
//! ossutil's `~/.ossutilconfig` (2.0 profiles and 1.x `[Credentials]`),
//! and the ECS metadata service and credentials URI variables. Each reader
//! answers what its source says (or nothing); files that exist but say
//! something ferry cannot use are errors naming the file and profile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::spec::{
    default_session_name, RoleRequest, Spec, StsEndpoint, DEFAULT_DURATION, MIN_DURATION,
};
use crate::config::credentials::read_ini_section;
use crate::config::{ConfigError, Env};
use crate::store::credentials::Credentials;

/// A way to sign, and where it was found (for `ferry config show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub spec: Spec,
    pub origin: String,
    /// The last resort, tried because nothing was configured.
    pub probed: bool,
}

/// Alibaba's boolean variables: `true` in any case, or `1`.
pub fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn invalid(path: &Path, profile: &str, what: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("{} (profile {profile}): {what}", path.display()))
}

/// STS settings from the environment, under a file's own.
fn sts_from(
    env: &dyn Env,
    url: Option<String>,
    region: Option<String>,
    vpc: Option<bool>,
) -> StsEndpoint {
    StsEndpoint {
        url: url.or_else(|| env.var("ALIBABA_CLOUD_STS_ENDPOINT")),
        region: region.or_else(|| env.var("ALIBABA_CLOUD_STS_REGION")),
        vpc: vpc.unwrap_or_else(|| truthy(env.var("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"))),
    }
}

fn duration(raw: Option<&str>, path: &Path, profile: &str) -> Result<u32, ConfigError> {
    match raw {
        None | Some("") | Some("0") => Ok(DEFAULT_DURATION),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n >= MIN_DURATION => Ok(n),
            _ => Err(invalid(
                path,
                profile,
                format!("a role session lasts at least {MIN_DURATION} seconds, not {s}"),
            )),
        },
    }
}

fn keys(id: Option<String>, secret: Option<String>, token: Option<String>) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: id.filter(|s| !s.is_empty())?,
        secret_access_key: secret.filter(|s| !s.is_empty())?,
        session_token: token.filter(|s| !s.is_empty()),
    })
}

/// `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` / `ALIBABA_CLOUD_SECURITY_TOKEN`,
/// then RRSA's `ALIBABA_CLOUD_ROLE_ARN` + `_OIDC_PROVIDER_ARN` + `_OIDC_TOKEN_FILE`.
pub fn from_env(env: &dyn Env) -> Result<Option<Found>, ConfigError> {
    let (id, secret) = (
        env.var("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        env.var("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
    );
    match (&id, &secret) {
        (Some(_), Some(_)) => {
            let c = keys(id, secret, env.var("ALIBABA_CLOUD_SECURITY_TOKEN")).expect("both set");
            return Ok(Some(Found {
                probed: false,
                spec: Spec::Static(c),
                origin: "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)".into(),
            }));
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if id.is_none() {
                "ALIBABA_CLOUD_ACCESS_KEY_ID"
            } else {
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
            };
            return Err(ConfigError::MissingCredentials(format!(
                "{missing} is not set, but its partner is: set both, or neither"
            )));
        }
        (None, None) => {}
    }
    let oidc = (
        env.var("ALIBABA_CLOUD_ROLE_ARN"),
        env.var("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
        env.var("ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
    );
    if let (Some(role_arn), Some(provider_arn), Some(token_file)) = oidc {
        let spec = Spec::Oidc {
            role: RoleRequest {
                role_arn,
                session_name: env
                    .var("ALIBABA_CLOUD_ROLE_SESSION_NAME")
                    .unwrap_or_else(default_session_name),
                duration_secs: DEFAULT_DURATION,
                policy: None,
                sts: sts_from(env, None, None, None),
            },
            provider_arn,
            token_file: PathBuf::from(token_file),
        };
        return Ok(Some(Found {
            probed: false,
            spec,
            origin: "environment (ALIBABA_CLOUD_OIDC_TOKEN_FILE, RRSA)".into(),
        }));
    }
    Ok(None)
}

fn home_file(env: &dyn Env, var: &str, rel: &[&str]) -> Option<PathBuf> {
    env.var(var).map(PathBuf::from).or_else(|| {
        let mut p = env.home()?;
        for r in rel {
            p.push(r);
        }
        Some(p)
    })
}

/// The profile the SDKs select: `ALIBABA_CLOUD_PROFILE`, else the file's own.
fn chosen_profile(env: &dyn Env) -> Option<String> {
    env.var("ALIBABA_CLOUD_PROFILE")
}

// --- the aliyun CLI's config.json ------------------------------------------

#[derive(Debug, serde::Deserialize)]
struct CliConfig {
    current: Option<String>,
    #[serde(default)]
    profiles: Vec<CliProfile>,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
struct CliProfile {
    name: String,
    mode: String,
    access_key_id: String,
    access_key_secret: String,
    sts_token: String,
    sts_region: String,
    sts_endpoint: String,
    enable_vpc: bool,
    ram_role_name: String,
    ram_role_arn: String,
    ram_session_name: String,
    external_id: String,
    source_profile: String,
    expired_seconds: serde_json::Value,
    policy: String,
    process_command: String,
    credentials_uri: String,
    oidc_provider_arn: String,
    oidc_token_file: String,
    cloud_sso_sign_in_url: String,
    private_key: String,
    bearer_token: String,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The aliyun CLI's mode, as it infers one when the profile names none.
fn cli_mode(p: &CliProfile) -> String {
    if !p.mode.is_empty() {
        return p.mode.to_ascii_lowercase();
    }
    let has_keys = !p.access_key_id.is_empty() && !p.access_key_secret.is_empty();
    let m = if has_keys && !p.sts_token.is_empty() {
        "ststoken"
    } else if has_keys && !p.ram_role_arn.is_empty() {
        "ramrolearn"
    } else if has_keys {
        "ak"
    } else if !p.ram_role_name.is_empty() {
        "ecsramrole"
    } else if !p.process_command.is_empty() {
        "external"
    } else if !p.oidc_provider_arn.is_empty() && !p.oidc_token_file.is_empty() {
        "oidc"
    } else if !p.cloud_sso_sign_in_url.is_empty() {
        "cloudsso"
    } else {
        ""
    };
    m.into()
}

fn cli_spec(
    all: &[CliProfile],
    p: &CliProfile,
    path: &Path,
    env: &dyn Env,
    depth: usize,
) -> Result<Spec, ConfigError> {
    let name = &p.name;
    let need = |v: &str, field: &str| -> Result<String, ConfigError> {
        some(v).ok_or_else(|| invalid(path, name, format!("mode {} needs {field}", p.mode)))
    };
    let expired = match &p.expired_seconds {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let role = |arn: String| -> Result<RoleRequest, ConfigError> {
        Ok(RoleRequest {
            role_arn: arn,
            session_name: some(&p.ram_session_name)
                .or_else(|| env.var("ALIBABA_CLOUD_ROLE_SESSION_NAME"))
                .unwrap_or_else(default_session_name),
            duration_secs: duration(expired.as_deref(), path, name)?,
            policy: some(&p.policy),
            sts: sts_from(
                env,
                some(&p.sts_endpoint),
                some(&p.sts_region),
                p.enable_vpc.then_some(true),
            ),
        })
    };
    let static_keys = || {
        keys(
            some(&p.access_key_id),
            some(&p.access_key_secret),
            some(&p.sts_token),
        )
        .ok_or_else(|| {
            invalid(
                path,
                name,
                format!("mode {} needs access_key_id and access_key_secret", p.mode),
            )
        })
    };
    Ok(match cli_mode(p).as_str() {
        "ak" => Spec::Static(Credentials {
            session_token: None,
            ..static_keys()?
        }),
        "ststoken" => {
            need(&p.sts_token, "sts_token")?;
            Spec::Static(static_keys()?)
        }
        "ramrolearn" => Spec::RamRoleArn {
            source: Box::new(Spec::Static(static_keys()?)),
            role: role(need(&p.ram_role_arn, "ram_role_arn")?)?,
            external_id: some(&p.external_id),
        },
        "ecsramrole" => Spec::EcsRamRole {
            role_name: some(&p.ram_role_name),
        },
        "ramrolearnwithrolename" => Spec::RamRoleArn {
            source: Box::new(Spec::EcsRamRole {
                role_name: some(&p.ram_role_name),
            }),
            role: role(need(&p.ram_role_arn, "ram_role_arn")?)?,
            external_id: some(&p.external_id),
        },
        "chainableramrolearn" => {
            let source_name = need(&p.source_profile, "source_profile")?;
            let source = all.iter().find(|s| s.name == source_name).ok_or_else(|| {
                invalid(
                    path,
                    name,
                    format!("source_profile {source_name} is not in the file"),
                )
            })?;
            if depth > 8 {
                return Err(invalid(path, name, "source_profile chain is circular"));
            }
            Spec::RamRoleArn {
                source: Box::new(cli_spec(all, source, path, env, depth + 1)?),
                role: role(need(&p.ram_role_arn, "ram_role_arn")?)?,
                external_id: some(&p.external_id),
            }
        }
        "oidc" => Spec::Oidc {
            role: role(need(&p.ram_role_arn, "ram_role_arn")?)?,
            provider_arn: need(&p.oidc_provider_arn, "oidc_provider_arn")?,
            token_file: PathBuf::from(need(&p.oidc_token_file, "oidc_token_file")?),
        },
        "external" => Spec::Process {
            command: need(&p.process_command, "process_command")?,
        },
        "credentialsuri" => Spec::Uri(
            some(&p.credentials_uri)
                .or_else(|| env.var("ALIBABA_CLOUD_CREDENTIALS_URI"))
                .ok_or_else(|| invalid(path, name, "mode CredentialsURI needs credentials_uri"))?,
        ),
        "" => {
            return Err(invalid(
                path,
                name,
                "no mode, and no keys to infer one from",
            ))
        }
        other => {
            return Err(invalid(
                path,
                name,
                format!(
                    "mode {} needs a browser or a private key, which ferry does not handle; \
                     use an AK, StsToken, RamRoleArn, EcsRamRole, OIDC or External profile{}",
                    if p.mode.is_empty() { other } else { &p.mode },
                    if other == "cloudsso" || other == "oauth" {
                        " (an External profile can run `aliyun configure export-credentials`-style tooling that prints keys)"
                    } else {
                        ""
                    }
                ),
            ))
        }
    })
}

/// `ALIBABA_CLOUD_CONFIG_FILE`, else `~/.aliyun/config.json`; the profile
/// `ALIBABA_CLOUD_PROFILE`, else the file's `current`.
pub fn cli_profile(env: &dyn Env) -> Result<Option<Found>, ConfigError> {
    if truthy(env.var("ALIBABA_CLOUD_CLI_PROFILE_DISABLED")) {
        return Ok(None);
    }
    let Some(path) = home_file(
        env,
        "ALIBABA_CLOUD_CONFIG_FILE",
        &[".aliyun", "config.json"],
    ) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::Invalid(format!("{}: {e}", path.display()))),
    };
    let cfg: CliConfig = serde_json::from_str(&text).map_err(|e| {
        ConfigError::Invalid(format!(
            "{}: not the aliyun CLI's JSON: {e}",
            path.display()
        ))
    })?;
    let wanted = chosen_profile(env)
        .or(cfg.current.clone())
        .unwrap_or_else(|| "default".into());
    let Some(p) = cfg.profiles.iter().find(|p| p.name == wanted) else {
        return Ok(None);
    };
    let spec = cli_spec(&cfg.profiles, p, &path, env, 0)?;
    let mode = if p.mode.is_empty() {
        cli_mode(p)
    } else {
        p.mode.clone()
    };
    Ok(Some(Found {
        probed: false,
        origin: format!(
            "{} profile {wanted} (mode {mode}: {})",
            path.display(),
            spec.describe()
        ),
        spec,
    }))
}

// --- the SDKs' credentials file ----------------------------------------------

/// `ALIBABA_CLOUD_CREDENTIALS_FILE`, else `~/.alibabacloud/credentials`;
/// the section `ALIBABA_CLOUD_PROFILE`, else `default`.
pub fn credentials_file(env: &dyn Env) -> Result<Option<Found>, ConfigError> {
    let Some(path) = home_file(
        env,
        "ALIBABA_CLOUD_CREDENTIALS_FILE",
        &[".alibabacloud", "credentials"],
    ) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let section = chosen_profile(env).unwrap_or_else(|| "default".into());
    let Some(map) = read_ini_section(&path, &section) else {
        return Ok(None);
    };
    let get = |k: &str| map.get(k).cloned().filter(|v| !v.is_empty());
    let need = |k: &str| {
        get(k).ok_or_else(|| {
            invalid(
                &path,
                &section,
                format!("type {} needs {k}", get("type").unwrap_or_default()),
            )
        })
    };
    let role = |arn: String| -> Result<RoleRequest, ConfigError> {
        Ok(RoleRequest {
            role_arn: arn,
            session_name: get("role_session_name").unwrap_or_else(default_session_name),
            duration_secs: duration(get("role_session_expiration").as_deref(), &path, &section)?,
            policy: get("policy"),
            sts: sts_from(env, None, get("sts_region"), None),
        })
    };
    let ty = get("type").unwrap_or_default();
    let spec = match ty.as_str() {
        "access_key" => Spec::Static(Credentials {
            access_key_id: need("access_key_id")?,
            secret_access_key: need("access_key_secret")?,
            session_token: None,
        }),
        "sts" => Spec::Static(Credentials {
            access_key_id: need("access_key_id")?,
            secret_access_key: need("access_key_secret")?,
            session_token: Some(need("security_token")?),
        }),
        "ecs_ram_role" => Spec::EcsRamRole {
            role_name: get("role_name"),
        },
        "ram_role_arn" => Spec::RamRoleArn {
            source: Box::new(Spec::Static(Credentials {
                access_key_id: need("access_key_id")?,
                secret_access_key: need("access_key_secret")?,
                session_token: None,
            })),
            role: role(need("role_arn")?)?,
            external_id: get("external_id"),
        },
        "oidc_role_arn" => Spec::Oidc {
            role: role(need("role_arn")?)?,
            provider_arn: need("oidc_provider_arn")?,
            token_file: PathBuf::from(need("oidc_token_file_path")?),
        },
        "" => return Err(invalid(&path, &section, "no type (access_key, ecs_ram_role, ram_role_arn, oidc_role_arn)")),
        other => {
            return Err(invalid(
                &path,
                &section,
                format!("type {other} is not one of access_key, sts, ecs_ram_role, ram_role_arn, oidc_role_arn"),
            ))
        }
    };
    Ok(Some(Found {
        probed: false,
        origin: format!(
            "{} [{section}] (type {ty}: {})",
            path.display(),
            spec.describe()
        ),
        spec,
    }))
}

// --- ossutil's config file ----------------------------------------------------

/// ossutil's keys are case-insensitive and come in camel, kebab and snake
/// case (and 1.x aliases): `accessKeyID`, `access-key-id`, `access_id`...
fn ossutil_key(k: &str) -> String {
    let k: String = k
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    match k.as_str() {
        "accessid" => "accesskeyid".into(),
        "accesskey" => "accesskeysecret".into(),
        "ramrolearn" => "rolearn".into(),
        _ => k,
    }
}

/// The first section of `names` the file has (matched without case).
fn ini_section_nocase(text: &str, names: &[String]) -> Option<(String, HashMap<String, String>)> {
    let mut sections: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.trim().to_ascii_lowercase(), HashMap::new()));
            continue;
        }
        if let (Some((_, map)), Some((k, v))) = (sections.last_mut(), line.split_once('=')) {
            map.insert(ossutil_key(k.trim()), v.trim().to_string());
        }
    }
    names.iter().find_map(|want| {
        let want = want.to_ascii_lowercase();
        sections.iter().find(|(n, _)| *n == want).cloned()
    })
}

/// `OSSUTIL_CONFIG_FILE`, else `~/.ossutilconfig`; the profile
/// `OSSUTIL_PROFILE` (`[profile NAME]`), else `[default]`, else 1.x's
/// `[Credentials]`.
pub fn ossutil_config(env: &dyn Env) -> Result<Option<Found>, ConfigError> {
    let Some(path) = home_file(env, "OSSUTIL_CONFIG_FILE", &[".ossutilconfig"]) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::Invalid(format!("{}: {e}", path.display()))),
    };
    let names: Vec<String> = match env.var("OSSUTIL_PROFILE") {
        Some(p) => vec![format!("profile {p}"), p],
        None => vec![
            "default".into(),
            "profile default".into(),
            "credentials".into(),
        ],
    };
    let Some((section, map)) = ini_section_nocase(&text, &names) else {
        return Ok(None);
    };
    let get = |k: &str| map.get(k).cloned().filter(|v| !v.is_empty());
    let creds = keys(get("accesskeyid"), get("accesskeysecret"), get("ststoken"));
    let mode = get("mode")
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| {
            if creds.is_some() && get("rolearn").is_some() {
                "ramrolearn".into()
            } else if creds.as_ref().is_some_and(|c| c.session_token.is_some()) {
                "ststoken".into()
            } else if creds.is_some() {
                "ak".into()
            } else if get("ecsrolename").is_some() {
                "ecsramrole".into()
            } else if get("credentialprocess").is_some() {
                "process".into()
            } else {
                String::new()
            }
        });
    let need_keys = || {
        creds.clone().ok_or_else(|| {
            invalid(
                &path,
                &section,
                format!("mode {mode} needs accessKeyID and accessKeySecret"),
            )
        })
    };
    let need = |k: &str, shown: &str| {
        get(k).ok_or_else(|| invalid(&path, &section, format!("mode {mode} needs {shown}")))
    };
    let role = |arn: String| -> Result<RoleRequest, ConfigError> {
        Ok(RoleRequest {
            role_arn: arn,
            session_name: get("rolesessionname").unwrap_or_else(default_session_name),
            duration_secs: duration(get("tokentimeout").as_deref(), &path, &section)?,
            policy: None,
            sts: sts_from(env, None, get("stsregion").or_else(|| get("region")), None),
        })
    };
    let spec = match mode.as_str() {
        "ak" => Spec::Static(Credentials {
            session_token: None,
            ..need_keys()?
        }),
        "ststoken" => {
            need("ststoken", "stsToken")?;
            Spec::Static(need_keys()?)
        }
        "ramrolearn" => Spec::RamRoleArn {
            source: Box::new(Spec::Static(need_keys()?)),
            role: role(need("rolearn", "ramRoleArn")?)?,
            external_id: None,
        },
        "ecsramrole" => Spec::EcsRamRole {
            role_name: get("ecsrolename"),
        },
        "process" => Spec::Process {
            command: need("credentialprocess", "credentialProcess")?,
        },
        "oidcrolearn" => Spec::Oidc {
            role: role(need("rolearn", "roleArn")?)?,
            provider_arn: need("oidcproviderarn", "oidcProviderArn")?,
            token_file: PathBuf::from(need("oidctokenfilepath", "oidcTokenFilePath")?),
        },
        "anonymous" => {
            return Err(invalid(&path, &section, "mode Anonymous: pass --no-sign-request instead"));
        }
        "" => return Ok(None),
        other => {
            return Err(invalid(
                &path,
                &section,
                format!("mode {other} is not one of AK, StsToken, RamRoleArn, EcsRamRole, Process, oidcRoleArn"),
            ))
        }
    };
    Ok(Some(Found {
        probed: false,
        origin: format!(
            "{} [{section}] (ossutil, {})",
            path.display(),
            spec.describe()
        ),
        spec,
    }))
}

// --- the instance and the URI -------------------------------------------------

/// `ALIBABA_CLOUD_CREDENTIALS_URI`.
pub fn credentials_uri(env: &dyn Env) -> Option<Found> {
    let uri = env.var("ALIBABA_CLOUD_CREDENTIALS_URI")?;
    Some(Found {
        probed: false,
        origin: "environment (ALIBABA_CLOUD_CREDENTIALS_URI)".into(),
        spec: Spec::Uri(uri),
    })
}

/// The ECS instance's RAM role, unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED`;
/// `ALIBABA_CLOUD_ECS_METADATA` names the role (else the service lists it).
pub fn ecs_ram_role(env: &dyn Env) -> Option<Found> {
    if truthy(env.var("ALIBABA_CLOUD_ECS_METADATA_DISABLED")) {
        return None;
    }
    let role_name = env.var("ALIBABA_CLOUD_ECS_METADATA");
    let origin = match &role_name {
        Some(_) => "environment (ALIBABA_CLOUD_ECS_METADATA): the ECS metadata service".into(),
        None => "the ECS metadata service (the instance's RAM role)".into(),
    };
    Some(Found {
        probed: role_name.is_none(),
        spec: Spec::EcsRamRole { role_name },
        origin,
    })
}
