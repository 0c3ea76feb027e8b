//! Access keys and where they come from. Secrets never reach a log line:
//! `Debug` prints only the key ID.

use std::fmt;

use async_trait::async_trait;

use super::StoreError;

/// Where a store gets the credentials it signs with, asked before every
/// request: fixed keys answer at once; a provider of temporary
/// credentials (roles, web identity, instance metadata) answers from its
/// cache and refreshes them before they expire, so a ten-hour upload, a
/// watch or a mount keeps signing with valid keys.
#[async_trait]
pub trait CredentialSource: Send + Sync + fmt::Debug {
    async fn credentials(&self) -> Result<Credentials, StoreError>;
}

#[async_trait]
impl CredentialSource for Credentials {
    async fn credentials(&self) -> Result<Credentials, StoreError> {
        Ok(self.clone())
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
