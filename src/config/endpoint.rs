//! Which endpoint, region, addressing style and signature a URL's requests
//! use, from flags, the standard environment variables and a profile.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use std::sync::Arc;

use super::credentials::resolve_with_source;

/// The profile these flags select (`--profile`, else `FERRY_PROFILE`), and
/// its name; an empty profile when none is named.
fn selected_profile(
    flags: &EndpointFlags,
    file: &ConfigFile,
    env: &dyn Env,
) -> Result<(Option<String>, Profile), ConfigError> {
    let name = flags.profile.clone().or_else(|| env.var("FERRY_PROFILE"));
    let profile = match &name {
        Some(n) => file.profile(n)?.clone(),
        None => Profile::default(),
    };
    Ok((name, profile))
}

/// Keys ferry finds itself (environment, shared credentials file, the
/// profile's own settings), else for S3 the AWS SDK's chain, unless the
/// profile named its credentials (then their absence is the error); with
/// where they come from, for `config show`.
fn credential_source_for(
    dialect: Dialect,
    profile: &Profile,
    env: &dyn Env,
) -> Result<(Arc<dyn CredentialSource>, String), ConfigError> {
    match resolve_with_source(dialect, profile, env) {
        Ok((c, source)) => Ok((Arc::new(c), source)),
        Err(ConfigError::MissingCredentials(_))
            if dialect == Dialect::S3 && !profile.names_credentials() =>
        {
            super::aws_chain::refuse_mfa(env)?;
            let chain = super::refresh::Refreshing::new(super::aws_chain::AwsChain::new(
                env.var("AWS_PROFILE"),
            ));
            Ok((
                Arc::new(chain),
                format!("the AWS SDK's chain: {}", super::aws_chain::which(env)),
            ))
        }
        Err(ConfigError::MissingCredentials(m))
            if dialect == Dialect::Oss && !profile.names_credentials() =>
        {
            super::alibaba::resolve(env)?.ok_or(ConfigError::MissingCredentials(m))
        }
        Err(e) => Err(e),
    }
}

/// Where the credentials for `dialect` come from with these flags, and the
/// access key id they carry (never the secret); `None` when requests go
/// unsigned. A chain is asked for its keys now, so a source that has none
/// says why.
pub fn credential_source(
    dialect: Dialect,
    flags: &EndpointFlags,
    file: &ConfigFile,
    env: &dyn Env,
) -> Result<Option<(String, String)>, ConfigError> {
    if flags.no_sign_request {
        return Ok(None);
    }
    let (_, profile) = selected_profile(flags, file, env)?;
    let (source, origin) = credential_source_for(dialect, &profile, env)?;
    let handle =
        tokio::runtime::Handle::try_current().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let c = tokio::task::block_in_place(|| handle.block_on(source.credentials()))
        .map_err(|e| ConfigError::MissingCredentials(e.message))?;
    Ok(Some((origin, c.access_key_id)))
}
use super::file::{ConfigFile, Profile};
use super::{ConfigError, Env};
use crate::checksum::ChecksumChoice;
use crate::store::credentials::CredentialSource;
use crate::store::dialect::Addressing;
use crate::store::dialect::Dialect;
use crate::store::http::DEFAULT_IDLE_TIMEOUT;
use crate::store::sign::Scheme;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureVersion {
    V1,
    V4,
}

/// The command-line side of the resolution.
#[derive(Debug, Clone, Default)]
pub struct EndpointFlags {
    pub endpoint: Option<String>,
    /// Further nodes of the same store (`--endpoint` repeated).
    pub more_endpoints: Vec<String>,
    pub region: Option<String>,
    pub addressing: Option<Addressing>,
    pub signature_version: Option<SignatureVersion>,
    pub profile: Option<String>,
    pub no_sign_request: bool,
    pub idle_timeout: Option<Duration>,
    pub checksum_algorithm: Option<ChecksumChoice>,
    pub requester_pays: bool,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub dialect: Dialect,
    pub endpoint: Url,
    /// Further nodes serving the same buckets.
    pub more_endpoints: Vec<Url>,
    /// What names this store in checkpoints and journals: the endpoint's
    /// URL, or for several nodes the profile (or the set of URLs), so a
    /// resume through another node of the store finds its checkpoint.
    pub store_id: String,
    pub region: String,
    pub addressing: Addressing,
    pub scheme: Scheme,
    /// `None` for unsigned requests.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// How long a request may go without a byte moving either way.
    pub idle_timeout: Duration,
    /// What upload bodies are digested with.
    pub checksum: ChecksumChoice,
    /// Requests carry `x-amz-request-payer` / `x-oss-request-payer`.
    pub requester_pays: bool,
    /// Extra CA certificates (PEM) for HTTPS.
    pub ca_bundle: Option<PathBuf>,
}

fn parse_endpoint(raw: &str) -> Result<Url, ConfigError> {
    // OSS documents endpoints without a scheme ("oss-cn-hangzhou.aliyuncs.com").
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| ConfigError::Invalid(format!("invalid endpoint '{raw}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid(format!(
            "invalid endpoint '{raw}': expected http(s)://HOST[:PORT]"
        )));
    }
    Ok(url)
}

/// Path style for IP addresses and localhost (virtual hosts cannot resolve
/// there); virtual style otherwise.
pub fn default_addressing(url: &Url) -> Addressing {
    match url.host() {
        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) => Addressing::Path,
        Some(url::Host::Domain(d)) if d == "localhost" || d.ends_with(".localhost") => {
            Addressing::Path
        }
        _ => Addressing::Virtual,
    }
}

pub fn resolve_endpoint(
    dialect: Dialect,
    flags: &EndpointFlags,
    file: &ConfigFile,
    env: &dyn Env,
) -> Result<EndpointSettings, ConfigError> {
    let (profile_name, profile) = selected_profile(flags, file, env)?;
    let profile = &profile;
    if let Some(s) = profile.scheme {
        if s != dialect {
            return Err(ConfigError::Invalid(format!(
                "profile '{}' is for {}:// but the URL is {}://",
                profile_name.unwrap_or_default(),
                s.name(),
                dialect.name()
            )));
        }
    }
    let (endpoint_env, region_env): (&[&str], &[&str]) = match dialect {
        Dialect::S3 => (
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
        ),
        Dialect::Oss => (&["OSS_ENDPOINT"], &["OSS_REGION"]),
    };
    let first_env = |names: &[&str]| names.iter().find_map(|n| env.var(n));
    let profile_label = profile_name.clone();
    if profile.endpoint.is_some() && profile.endpoints.is_some() {
        return Err(ConfigError::Invalid(format!(
            "profile '{}': set endpoint or endpoints, not both",
            profile_name.unwrap_or_default()
        )));
    }
    let profile_nodes = profile.endpoints.clone().unwrap_or_default();
    let (endpoint_raw, more_raw, from_profile_list) = if let Some(e) = flags.endpoint.clone() {
        (Some(e), flags.more_endpoints.clone(), false)
    } else if let Some(e) = first_env(endpoint_env) {
        (Some(e), Vec::new(), false)
    } else if let Some((first, rest)) = profile_nodes.split_first() {
        (Some(first.clone()), rest.to_vec(), true)
    } else {
        (profile.endpoint.clone(), Vec::new(), false)
    };
    let more_endpoints = more_raw
        .iter()
        .map(|e| parse_endpoint(e))
        .collect::<Result<Vec<_>, _>>()?;
    let region_given = flags
        .region
        .clone()
        .or_else(|| first_env(region_env))
        .or_else(|| profile.region.clone());
    let endpoint_url = endpoint_raw.as_deref().map(parse_endpoint).transpose()?;

    let (endpoint, region) = match dialect {
        Dialect::S3 => {
            let region = region_given.unwrap_or_else(|| "us-east-1".to_string());
            let ep = match endpoint_url {
                Some(u) => u,
                None => parse_endpoint(&format!("https://s3.{region}.amazonaws.com"))?,
            };
            (ep, region)
        }
        Dialect::Oss => {
            let region = region_given.or_else(|| {
                endpoint_url
                    .as_ref()
                    .and_then(|u| u.host_str())
                    .and_then(crate::store::region::oss_region_from_host)
            });
            let Some(region) = region else {
                return Err(ConfigError::Invalid(
                    "oss:// needs a region: pass --region (e.g. cn-hangzhou), set OSS_REGION, or use an endpoint like oss-cn-hangzhou.aliyuncs.com".into(),
                ));
            };
            let ep = match endpoint_url {
                Some(u) => u,
                None => parse_endpoint(&format!("https://oss-{region}.aliyuncs.com"))?,
            };
            (ep, region)
        }
    };
    let addressing = flags
        .addressing
        .or(profile.addressing_style)
        // Path style if any node needs it: one address set serves every node.
        .unwrap_or_else(|| {
            if std::iter::once(&endpoint)
                .chain(&more_endpoints)
                .any(|u| default_addressing(u) == Addressing::Path)
            {
                Addressing::Path
            } else {
                Addressing::Virtual
            }
        });
    let sigver = match flags.signature_version {
        Some(v) => v,
        None => match profile.signature_version.as_deref() {
            None | Some("v4") | Some("V4") => SignatureVersion::V4,
            Some("v1") | Some("V1") => SignatureVersion::V1,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "signature_version '{other}' is not one of v1, v4"
                )))
            }
        },
    };
    let scheme = match (dialect, sigver) {
        (Dialect::S3, SignatureVersion::V4) => Scheme::S3V4 {
            region: region.clone(),
        },
        (Dialect::S3, SignatureVersion::V1) => {
            return Err(ConfigError::Invalid(
                "--signature-version v1 applies to oss:// only; S3 uses Signature V4".into(),
            ))
        }
        (Dialect::Oss, SignatureVersion::V4) => Scheme::OssV4 {
            region: region.clone(),
        },
        (Dialect::Oss, SignatureVersion::V1) => Scheme::OssV1,
    };
    let idle_timeout = match (flags.idle_timeout, profile.idle_timeout) {
        (Some(t), _) => t,
        (None, Some(d)) if d.0.is_zero() => {
            return Err(ConfigError::Invalid(format!(
                "profile '{}': idle_timeout must be more than 0",
                profile_name.unwrap_or_default()
            )))
        }
        (None, Some(d)) => d.0,
        (None, None) => DEFAULT_IDLE_TIMEOUT,
    };
    let checksum = match (flags.checksum_algorithm, &profile.checksum_algorithm) {
        (Some(c), _) => c,
        (None, Some(name)) => ChecksumChoice::parse(name).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "profile '{}': checksum_algorithm \"{name}\" is not one of {}",
                profile_name.unwrap_or_default(),
                ChecksumChoice::NAMES
            ))
        })?,
        (None, None) => ChecksumChoice::Auto,
    };
    if let (Dialect::Oss, ChecksumChoice::Crc(a)) = (dialect, checksum) {
        return Err(ConfigError::Invalid(format!(
            "checksum algorithm {a}: OSS stores CRC-64/ECMA, which ferry always checks; choose md5 or leave it out"
        )));
    }
    let credentials = if flags.no_sign_request {
        None
    } else {
        Some(credential_source_for(dialect, profile, env)?.0)
    };
    let requester_pays = flags.requester_pays || profile.requester_pays.unwrap_or(false);
    // The AWS CLI and SDKs read AWS_CA_BUNDLE; OSS's tools have no such
    // variable, so oss:// takes the flag or the profile.
    let ca_bundle = flags
        .ca_bundle
        .clone()
        .or_else(|| match dialect {
            Dialect::S3 => env
                .var("AWS_CA_BUNDLE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            Dialect::Oss => None,
        })
        .or_else(|| profile.ca_bundle.clone());
    let trimmed = |u: &Url| u.as_str().trim_end_matches('/').to_string();
    let store_id = match (&more_endpoints[..], from_profile_list, profile_label) {
        ([], _, _) => trimmed(&endpoint),
        (_, true, Some(name)) => format!("profile {name}"),
        (more, _, _) => {
            let mut all: Vec<String> = std::iter::once(&endpoint)
                .chain(more)
                .map(trimmed)
                .collect();
            all.sort();
            all.dedup();
            all.join(",")
        }
    };
    Ok(EndpointSettings {
        dialect,
        endpoint,
        more_endpoints,
        store_id,
        region,
        addressing,
        scheme,
        credentials,
        idle_timeout,
        checksum,
        requester_pays,
        ca_bundle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    const KEYS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")];

    #[test]
    fn several_nodes_name_the_store_by_profile_or_by_the_set() {
        let e = env(&[KEYS[0], KEYS[1]]);
        let file: ConfigFile = toml::from_str(
            "[profiles.c]\nendpoints = [\"http://127.0.0.1:2\", \"http://127.0.0.1:1/\"]\n\
             [profiles.both]\nendpoint = \"http://a:1\"\nendpoints = [\"http://b:1\"]\n",
        )
        .unwrap();
        let with = |profile: &str| EndpointFlags {
            profile: Some(profile.into()),
            ..Default::default()
        };
        let s = resolve_endpoint(Dialect::S3, &with("c"), &file, &e).unwrap();
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:2/");
        assert_eq!(s.more_endpoints.len(), 1);
        assert_eq!(s.store_id, "profile c");
        let err = resolve_endpoint(Dialect::S3, &with("both"), &file, &e).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        // --endpoint repeated: the set, in any order, names the store.
        let flags = |a: &str, b: &str| EndpointFlags {
            endpoint: Some(a.into()),
            more_endpoints: vec![b.into()],
            ..Default::default()
        };
        let x = resolve_endpoint(
            Dialect::S3,
            &flags("http://n1:9", "http://n2:9"),
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        let y = resolve_endpoint(
            Dialect::S3,
            &flags("http://n2:9", "http://n1:9"),
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(x.store_id, y.store_id);
        assert_eq!(x.store_id, "http://n1:9,http://n2:9");
        // One endpoint: its URL, as before (checkpoints made earlier still match).
        let one = resolve_endpoint(
            Dialect::S3,
            &EndpointFlags {
                endpoint: Some("http://n1:9/".into()),
                ..Default::default()
            },
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(one.store_id, "http://n1:9");
    }

    #[test]
    fn local_endpoints_use_path_style() {
        let e = env(&[
            KEYS[0],
            KEYS[1],
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900"),
            ("AWS_REGION", "garage"),
        ]);
        let s = resolve_endpoint(
            Dialect::S3,
            &EndpointFlags::default(),
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(s.addressing, Addressing::Path);
        assert_eq!(s.region, "garage");
        assert_eq!(
            s.scheme,
            Scheme::S3V4 {
                region: "garage".into()
            }
        );
        let s = resolve_endpoint(
            Dialect::S3,
            &EndpointFlags {
                endpoint: Some("http://localhost:9000".into()),
                ..Default::default()
            },
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(s.addressing, Addressing::Path);
        let s = resolve_endpoint(
            Dialect::S3,
            &EndpointFlags {
                endpoint: Some("https://s3.example.com".into()),
                ..Default::default()
            },
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(s.addressing, Addressing::Virtual);
    }

    #[test]
    fn flags_beat_env_beat_profile() {
        let file = ConfigFile::parse(
            "[profiles.p]\nendpoint = \"http://10.0.0.1:1\"\nregion = \"from-file\"\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let e = env(&[KEYS[0], KEYS[1], ("AWS_REGION", "from-env")]);
        let flags = EndpointFlags {
            profile: Some("p".into()),
            ..Default::default()
        };
        let s = resolve_endpoint(Dialect::S3, &flags, &file, &e).unwrap();
        assert_eq!(s.region, "from-env");
        assert_eq!(s.endpoint.as_str(), "http://10.0.0.1:1/");
        let flags = EndpointFlags {
            region: Some("from-flag".into()),
            ..flags
        };
        assert_eq!(
            resolve_endpoint(Dialect::S3, &flags, &file, &e)
                .unwrap()
                .region,
            "from-flag"
        );
    }

    #[test]
    fn oss_region_from_endpoint_and_signature_choice() {
        let e = env(&[
            ("OSS_ACCESS_KEY_ID", "AK"),
            ("OSS_ACCESS_KEY_SECRET", "SK"),
            ("OSS_ENDPOINT", "oss-cn-hangzhou.aliyuncs.com"),
        ]);
        let s = resolve_endpoint(
            Dialect::Oss,
            &EndpointFlags::default(),
            &ConfigFile::default(),
            &e,
        )
        .unwrap();
        assert_eq!(s.region, "cn-hangzhou");
        assert_eq!(s.endpoint.as_str(), "https://oss-cn-hangzhou.aliyuncs.com/");
        assert_eq!(s.addressing, Addressing::Virtual);
        assert_eq!(
            s.scheme,
            Scheme::OssV4 {
                region: "cn-hangzhou".into()
            }
        );
        let flags = EndpointFlags {
            signature_version: Some(SignatureVersion::V1),
            ..Default::default()
        };
        assert_eq!(
            resolve_endpoint(Dialect::Oss, &flags, &ConfigFile::default(), &e)
                .unwrap()
                .scheme,
            Scheme::OssV1
        );
        let none = env(&[("OSS_ACCESS_KEY_ID", "AK"), ("OSS_ACCESS_KEY_SECRET", "SK")]);
        let err = resolve_endpoint(
            Dialect::Oss,
            &EndpointFlags::default(),
            &ConfigFile::default(),
            &none,
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs a region"));
    }

    #[test]
    fn idle_timeout_from_flag_profile_or_default() {
        let file = ConfigFile::parse(
            "[profiles.p]\nidle_timeout = \"5m\"\n[profiles.z]\nidle_timeout = 0\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let e = env(&KEYS);
        let with = |profile: Option<&str>, flag: Option<Duration>| {
            resolve_endpoint(
                Dialect::S3,
                &EndpointFlags {
                    profile: profile.map(str::to_string),
                    idle_timeout: flag,
                    ..Default::default()
                },
                &file,
                &e,
            )
        };
        assert_eq!(with(None, None).unwrap().idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(
            with(Some("p"), None).unwrap().idle_timeout,
            Duration::from_secs(300)
        );
        assert_eq!(
            with(Some("p"), Some(Duration::from_secs(2)))
                .unwrap()
                .idle_timeout,
            Duration::from_secs(2)
        );
        let err = with(Some("z"), None).unwrap_err().to_string();
        assert!(err.contains("idle_timeout must be more than 0"), "{err}");
    }

    #[test]
    fn profile_scheme_must_match_url() {
        let file = ConfigFile::parse(
            "[profiles.o]\nscheme = \"oss\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        let flags = EndpointFlags {
            profile: Some("o".into()),
            ..Default::default()
        };
        let err = resolve_endpoint(Dialect::S3, &flags, &file, &env(&KEYS)).unwrap_err();
        assert!(err.to_string().contains("is for oss://"));
    }
}
