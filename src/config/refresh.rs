//! Temporary credentials kept until shortly before they expire, then
//! fetched again, one refresh at a time: the one cache every provider of
//! temporary keys (the AWS chain, Alibaba's roles, metadata services and
//! commands) sits behind, so a ten-hour upload, a watch or a mount keeps
//! signing with valid keys.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::store::credentials::{CredentialSource, Credentials};
use crate::store::StoreError;

/// Refresh this long before the expiry a provider gave. The AWS SDKs use
/// 5 minutes; Alibaba's refresh within 180 s of expiry, so this covers both.
pub const EARLY: Duration = Duration::from_secs(300);

/// Keys and, for temporary ones, when they expire.
pub type Fetched = (Credentials, Option<SystemTime>);

/// One way of getting credentials, asked again only when they run out.
#[async_trait]
pub trait Fetch: Send + Sync + std::fmt::Debug {
    async fn fetch(&self) -> Result<Fetched, StoreError>;
}

#[derive(Debug)]
pub struct Refreshing<F> {
    inner: F,
    cached: Mutex<Option<Fetched>>,
}

impl<F: Fetch> Refreshing<F> {
    pub fn new(inner: F) -> Self {
        Refreshing {
            inner,
            cached: Mutex::new(None),
        }
    }
}

/// Whether keys fetched with `expiry` may still be used at `now`.
pub fn fresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_none_or(|e| now + EARLY < e)
}

#[async_trait]
impl<F: Fetch> CredentialSource for Refreshing<F> {
    async fn credentials(&self) -> Result<Credentials, StoreError> {
        // Held across the fetch: concurrent requests wait for one refresh
        // instead of each asking the provider.
        let mut cached = self.cached.lock().await;
        if let Some((c, expiry)) = &*cached {
            if fresh(*expiry, SystemTime::now()) {
                return Ok(c.clone());
            }
        }
        match self.inner.fetch().await {
            Ok((c, expiry)) => {
                *cached = Some((c.clone(), expiry));
                Ok(c)
            }
            // The early refresh failed (STS or the metadata service briefly
            // away): the keys held still work until they expire.
            Err(e) => match &*cached {
                Some((c, Some(exp))) if SystemTime::now() < *exp => {
                    tracing::warn!(error = %e, "refreshing credentials failed; using the current ones until they expire");
                    Ok(c.clone())
                }
                _ => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: AtomicU32,
        lifetime: Option<Duration>,
    }

    #[async_trait]
    impl Fetch for Counting {
        async fn fetch(&self) -> Result<Fetched, StoreError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok((
                Credentials {
                    access_key_id: format!("K{n}"),
                    secret_access_key: "S".into(),
                    session_token: None,
                },
                self.lifetime.map(|l| SystemTime::now() + l),
            ))
        }
    }

    #[tokio::test]
    async fn kept_until_close_to_expiry_then_fetched_again() {
        let long = Refreshing::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(3600)),
        });
        for _ in 0..3 {
            assert_eq!(long.credentials().await.unwrap().access_key_id, "K0");
        }
        // Inside the early window: every ask refreshes.
        let short = Refreshing::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(60)),
        });
        assert_eq!(short.credentials().await.unwrap().access_key_id, "K0");
        assert_eq!(short.credentials().await.unwrap().access_key_id, "K1");
        // No expiry: fetched once.
        let fixed = Refreshing::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: None,
        });
        fixed.credentials().await.unwrap();
        assert_eq!(fixed.credentials().await.unwrap().access_key_id, "K0");
    }

    #[derive(Debug)]
    struct OnceThenDown {
        calls: AtomicU32,
        lifetime: Duration,
    }

    #[async_trait]
    impl Fetch for OnceThenDown {
        async fn fetch(&self) -> Result<Fetched, StoreError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
                return Err(StoreError::new(
                    crate::store::StoreErrorKind::Network,
                    "STS is away",
                ));
            }
            Ok((
                Credentials {
                    access_key_id: "K0".into(),
                    secret_access_key: "S".into(),
                    session_token: Some("T".into()),
                },
                Some(SystemTime::now() + self.lifetime),
            ))
        }
    }

    #[tokio::test]
    async fn a_failed_early_refresh_keeps_keys_that_still_work() {
        // Inside the early window but not expired: the refresh fails, the
        // held keys are used.
        let s = Refreshing::new(OnceThenDown {
            calls: AtomicU32::new(0),
            lifetime: Duration::from_secs(120),
        });
        assert_eq!(s.credentials().await.unwrap().access_key_id, "K0");
        assert_eq!(s.credentials().await.unwrap().access_key_id, "K0");
        assert_eq!(s.inner.calls.load(Ordering::SeqCst), 2, "it did try again");
        // Expired: the failure is the answer.
        let gone = Refreshing::new(OnceThenDown {
            calls: AtomicU32::new(0),
            lifetime: Duration::ZERO,
        });
        gone.credentials().await.unwrap();
        assert!(gone
            .credentials()
            .await
            .unwrap_err()
            .message
            .contains("STS is away"));
    }

    #[test]
    fn freshness_window() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(fresh(None, now));
        assert!(fresh(Some(now + EARLY + Duration::from_secs(1)), now));
        assert!(!fresh(Some(now + EARLY), now));
        assert!(!fresh(Some(now - Duration::from_secs(1)), now));
    }
}
