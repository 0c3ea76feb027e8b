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
        let (c, expiry) = self.inner.fetch().await?;
        *cached = Some((c.clone(), expiry));
        Ok(c)
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

    #[test]
    fn freshness_window() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(fresh(None, now));
        assert!(fresh(Some(now + EARLY + Duration::from_secs(1)), now));
        assert!(!fresh(Some(now + EARLY), now));
        assert!(!fresh(Some(now - Duration::from_secs(1)), now));
    }
}
