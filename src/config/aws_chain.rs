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
//! and then fetched again, one refresh at a time.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use tokio::sync::{Mutex, OnceCell};

use crate::store::credentials::{CredentialSource, Credentials};
use crate::store::{StoreError, StoreErrorKind};

/// Refresh this long before the expiry the provider gave.
const EARLY: Duration = Duration::from_secs(300);

pub struct AwsChain {
    profile: Option<String>,
    chain: OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
    cached: Mutex<Option<(Credentials, Option<SystemTime>)>>,
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
            cached: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<(Credentials, Option<SystemTime>), StoreError> {
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

#[async_trait]
impl CredentialSource for AwsChain {
    async fn credentials(&self) -> Result<Credentials, StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some((c, expiry)) = &*cached {
            let fresh = expiry.is_none_or(|e| SystemTime::now() + EARLY < e);
            if fresh {
                return Ok(c.clone());
            }
        }
        let (c, expiry) = self.fetch().await?;
        *cached = Some((c.clone(), expiry));
        Ok(c)
    }
}
