//! Which failures are worth another attempt, and how long to wait first.
//!
//! Connection errors, timeouts, 5xx and throttling retry with exponential
//! backoff and full jitter; a server's Retry-After wins when it asks for
//! longer. 4xx other than 408/429 never retry: repeating a rejected request
//! only delays the error the user needs to see.

use std::time::Duration;

use rand::Rng;

use super::StoreError;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1), or
    /// `None` when the error is final or attempts are used up.
    pub fn next_delay(&self, attempt: u32, err: &StoreError) -> Option<Duration> {
        if !err.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        // Full jitter spreads synchronized clients (many parts failing at once).
        let jittered = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
        let wait = match err.retry_after {
            Some(ra) => ra.min(Duration::from_secs(30)).max(jittered),
            None => jittered,
        };
        Some(wait)
    }
}

/// Parses a Retry-After value given in seconds (the HTTP-date form is rare
/// from object stores and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreErrorKind;

    fn err(kind: StoreErrorKind) -> StoreError {
        StoreError::new(kind, "x")
    }

    #[test]
    fn retries_only_transient_errors() {
        let p = RetryPolicy::default();
        for kind in [
            StoreErrorKind::Network,
            StoreErrorKind::Server,
            StoreErrorKind::Throttled,
            StoreErrorKind::Truncated,
        ] {
            assert!(p.next_delay(1, &err(kind)).is_some(), "{kind:?}");
        }
        for kind in [
            StoreErrorKind::NotFound,
            StoreErrorKind::AccessDenied,
            StoreErrorKind::BadCredentials,
            StoreErrorKind::Rejected,
            StoreErrorKind::NoSuchUpload,
            StoreErrorKind::Integrity,
        ] {
            assert!(p.next_delay(1, &err(kind)).is_none(), "{kind:?}");
        }
    }

    #[test]
    fn stops_after_max_attempts_and_caps_delay() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let e = err(StoreErrorKind::Server);
        for attempt in 1..4 {
            let d = p.next_delay(attempt, &e).unwrap();
            assert!(d <= Duration::from_millis(300), "{d:?}");
        }
        assert!(p.next_delay(4, &e).is_none());
    }

    #[test]
    fn honours_retry_after() {
        let p = RetryPolicy::default();
        let mut e = err(StoreErrorKind::Throttled);
        e.retry_after = parse_retry_after(" 7 ");
        assert_eq!(p.next_delay(1, &e), Some(Duration::from_secs(7)));
        e.retry_after = Some(Duration::from_secs(3600));
        assert_eq!(p.next_delay(1, &e), Some(Duration::from_secs(30)));
    }

    #[test]
    fn classifies_408_and_429_as_retryable_but_not_400() {
        assert!(err(StoreError::classify(408, None)).is_retryable());
        assert!(err(StoreError::classify(429, None)).is_retryable());
        assert!(err(StoreError::classify(503, Some("SlowDown"))).is_retryable());
        assert!(!err(StoreError::classify(400, Some("InvalidArgument"))).is_retryable());
        assert!(!err(StoreError::classify(403, Some("SignatureDoesNotMatch"))).is_retryable());
        // Not implemented is for good, whatever the status says.
        assert!(!err(StoreError::classify(501, Some("NotImplemented"))).is_retryable());
        assert!(!err(StoreError::classify(500, Some("NotImplemented"))).is_retryable());
        assert!(!err(StoreError::classify(501, None)).is_retryable());
        assert!(err(StoreError::classify(500, None)).is_retryable());
    }
}
