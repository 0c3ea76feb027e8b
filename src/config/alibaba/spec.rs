//! What Alibaba's tools say to sign with, once read from the environment
//! or a file: fixed keys, or how to get temporary ones. Pure data; the
//! providers beside it do the fetching.

use std::path::PathBuf;

use crate::store::credentials::Credentials;

/// How credentials are to be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// An AccessKey pair, with an STS token if temporary.
    Static(Credentials),
    /// STS AssumeRole, signed with the credentials of `source`.
    RamRoleArn {
        source: Box<Spec>,
        role: RoleRequest,
        external_id: Option<String>,
    },
    /// STS AssumeRoleWithOIDC (RRSA), unsigned: the token file's JWT is the proof.
    Oidc {
        role: RoleRequest,
        provider_arn: String,
        token_file: PathBuf,
    },
    /// The ECS instance's RAM role from the metadata service; its name,
    /// or the one the service lists.
    EcsRamRole { role_name: Option<String> },
    /// A command that prints credentials as JSON.
    Process { command: String },
    /// A URL that answers credentials as JSON.
    Uri(String),
}

/// What every STS role request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRequest {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: u32,
    pub policy: Option<String>,
    pub sts: StsEndpoint,
}

/// Where STS is asked: a URL given outright, else by region (and VPC).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StsEndpoint {
    pub url: Option<String>,
    pub region: Option<String>,
    pub vpc: bool,
}

impl StsEndpoint {
    /// `https://sts.aliyuncs.com`, `https://sts[-vpc].REGION.aliyuncs.com`,
    /// or the URL given (a bare host gets `https://`).
    pub fn url(&self) -> String {
        if let Some(u) = &self.url {
            return if u.contains("://") {
                u.trim_end_matches('/').to_string()
            } else {
                format!("https://{}", u.trim_end_matches('/'))
            };
        }
        match &self.region {
            Some(r) => {
                let prefix = if self.vpc { "sts-vpc" } else { "sts" };
                format!("https://{prefix}.{r}.aliyuncs.com")
            }
            None => "https://sts.aliyuncs.com".into(),
        }
    }
}

/// The session name the SDKs use when none is given.
pub fn default_session_name() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("ferry-{micros}")
}

/// One hour, the SDKs' default; STS refuses less than 15 minutes.
pub const DEFAULT_DURATION: u32 = 3600;
pub const MIN_DURATION: u32 = 900;

impl Spec {
    /// How `ferry config show` names this way of signing (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Spec::Static(c) if c.session_token.is_some() => "an STS token".into(),
            Spec::Static(_) => "an AccessKey".into(),
            Spec::RamRoleArn { source, role, .. } => {
                format!("AssumeRole {} with {}", role.role_arn, source.describe())
            }
            Spec::Oidc {
                role, token_file, ..
            } => format!(
                "AssumeRoleWithOIDC {} with the token in {}",
                role.role_arn,
                token_file.display()
            ),
            Spec::EcsRamRole { role_name: Some(r) } => format!("the ECS instance's RAM role {r}"),
            Spec::EcsRamRole { role_name: None } => "the ECS instance's RAM role".into(),
            Spec::Process { command } => format!("the output of `{command}`"),
            Spec::Uri(u) => format!("the credentials URI {u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_endpoints() {
        let e = |url: Option<&str>, region: Option<&str>, vpc| {
            StsEndpoint {
                url: url.map(Into::into),
                region: region.map(Into::into),
                vpc,
            }
            .url()
        };
        assert_eq!(e(None, None, false), "https://sts.aliyuncs.com");
        assert_eq!(e(None, None, true), "https://sts.aliyuncs.com");
        assert_eq!(
            e(None, Some("cn-beijing"), false),
            "https://sts.cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            e(None, Some("cn-beijing"), true),
            "https://sts-vpc.cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            e(Some("sts.example.com/"), Some("x"), true),
            "https://sts.example.com"
        );
        assert_eq!(
            e(Some("http://127.0.0.1:9"), None, false),
            "http://127.0.0.1:9"
        );
    }
}
