//! The store layer's one error type. It prints as a single line naming the
//! operation, the object and what the server (or the network) said.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// NoSuchKey / 404 on an object.
    NotFound,
    NoSuchBucket,
    NoSuchUpload,
    AccessDenied,
    /// SignatureDoesNotMatch or an invalid access key: almost always wrong credentials.
    BadCredentials,
    /// 429 / 503 SlowDown: retryable, the server asked us to slow down.
    Throttled,
    /// 5xx other than throttling: retryable.
    Server,
    /// Connection refused/reset, DNS, timeouts: retryable.
    Network,
    /// A body ended before its Content-Length.
    Truncated,
    /// Data arrived but does not match its checksum.
    Integrity,
    /// The object is no longer the version a transfer started from (412 to
    /// an If-Match): not retryable as is; the transfer starts over.
    Changed,
    /// Bucket not empty, invalid part...: not retryable.
    Rejected,
    /// A response we could not make sense of.
    Protocol,
    /// An archived object (Glacier, OSS Archive) that must be restored
    /// before it can be read.
    Archived,
}

#[derive(Debug, Clone, thiserror::Error)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    /// The server's error code (`NoSuchKey`, `SlowDown`...), when it sent one.
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub status: Option<u16>,
    /// From a Retry-After header.
    pub retry_after: Option<Duration>,
    /// What was being done: "PUT s3://bucket/key".
    /// (A boxed str keeps the error small: it travels in every `Result`.)
    pub context: Option<Box<str>>,
    /// Which edge of the protocol was hit, when the kind alone does not
    /// say (the kind keeps deciding retries and errnos).
    /// (Boxed: most errors have none.)
    pub detail: Option<Box<Detail>>,
    /// Requests the store made before giving up on a transient error
    /// (`--retries`); 0 when it did not retry it itself (a body that broke
    /// mid-stream, an error from elsewhere). Callers retry only those: a
    /// part must not multiply the attempts the user allowed.
    pub attempts: u16,
}

/// The typed reason behind some errors, for callers that act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// The key is empty or longer than the dialect allows; nothing was sent.
    InvalidKey { len: usize, max: usize },
    /// The bucket lives in another region (or behind another endpoint),
    /// as far as the answer said.
    WrongRegion {
        region: Option<String>,
        endpoint: Option<String>,
    },
    /// The server refused the request's clock (`RequestTimeTooSkewed`);
    /// its own time, when it said.
    ClockSkew { server_time: Option<OffsetDateTime> },
    /// Nothing moved in either direction for this long.
    Idle(Duration),
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            code: None,
            message: message.into(),
            request_id: None,
            status: None,
            retry_after: None,
            context: None,
            detail: None,
            attempts: 0,
        }
    }

    /// Whether another try of the whole operation may help: a transient
    /// error the store has not already retried as often as allowed.
    pub fn worth_another_try(&self) -> bool {
        self.is_retryable() && self.attempts == 0
    }

    pub fn detail(&self) -> Option<&Detail> {
        self.detail.as_deref()
    }

    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        if self.context.is_none() {
            self.context = Some(context.into().into_boxed_str());
        }
        self
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Throttled
                | StoreErrorKind::Server
                | StoreErrorKind::Network
                | StoreErrorKind::Truncated
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    /// Maps an HTTP status and the server's error code to a kind.
    pub fn classify(status: u16, code: Option<&str>) -> StoreErrorKind {
        match code {
            Some("NoSuchKey") => return StoreErrorKind::NotFound,
            Some("NoSuchBucket") => return StoreErrorKind::NoSuchBucket,
            Some("NoSuchUpload") => return StoreErrorKind::NoSuchUpload,
            Some("SignatureDoesNotMatch")
            | Some("InvalidAccessKeyId")
            | Some("InvalidSignature")
            | Some("ExpiredToken")
            | Some("InvalidToken") => return StoreErrorKind::BadCredentials,
            Some("AccessDenied") => return StoreErrorKind::AccessDenied,
            Some("PreconditionFailed") => return StoreErrorKind::Changed,
            // The body did not match the digest it was sent with (AWS says
            // BadDigest for both MD5 and checksums, Garage InvalidDigest
            // for a checksum): the bytes broke on the way, worth sending
            // again from the source.
            Some("BadDigest")
            | Some("InvalidDigest")
            | Some("XAmzContentChecksumMismatch")
            | Some("InvalidChecksum") => return StoreErrorKind::Integrity,
            // Not the credentials and not a permission: the clock, which
            // the client corrects once before giving up.
            Some("RequestTimeTooSkewed") => return StoreErrorKind::Rejected,
            Some("PermanentRedirect") | Some("TemporaryRedirect") => {
                return StoreErrorKind::Rejected
            }
            // A feature the server lacks (Garage: versions, ACLs): asking
            // again cannot help.
            Some("NotImplemented") => return StoreErrorKind::Rejected,
            Some("SlowDown") | Some("Throttling") | Some("TooManyRequests") => {
                return StoreErrorKind::Throttled
            }
            _ => {}
        }
        match status {
            404 => StoreErrorKind::NotFound,
            401 | 403 => StoreErrorKind::AccessDenied,
            408 => StoreErrorKind::Network,
            412 => StoreErrorKind::Changed,
            429 | 503 => StoreErrorKind::Throttled,
            501 => StoreErrorKind::Rejected,
            500..=599 => StoreErrorKind::Server,
            _ => StoreErrorKind::Rejected,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ctx) = &self.context {
            write!(f, "{ctx}: ")?;
        }
        match (&self.code, self.status) {
            (Some(code), _) => write!(f, "{code}: ")?,
            (None, Some(status)) => write!(f, "HTTP {status}: ")?,
            _ => {}
        }
        f.write_str(self.message.trim())?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}
