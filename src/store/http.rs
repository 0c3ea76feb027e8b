//! The one network implementation of [`ObjectStore`]: reqwest over a pooled
//! connection set, with the dialect (S3 or OSS) deciding header names and
//! the signing scheme. Retries live here, around each request, so callers
//! see either a result or an error that is worth showing to the user.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use time::OffsetDateTime;
use url::Url;

use super::bandwidth::{paced, Bandwidth, CHUNK};
use super::checksums::{self, Learned};
use super::credentials::CredentialSource;
use super::dialect::{Addressing, Dialect};
use super::error::Detail;
use super::idle::{Activity, Guarded, Watched};
use super::nodes::Nodes;
use super::region::{self, Hint, Place};
use super::retry::RetryPolicy;
use super::sign::sigv4::uri_encode;
use super::sign::{Payload, Scheme, SignableRequest};
use super::sse_c::CustomerKey;
use super::status::{error_from_answer, Asked};
use super::xml;
use super::{
    Body, Checksum, ChecksumSupport, CompletedPart, CopyLimits, CopySource, CreatedUpload,
    DeleteFailure, EtagKind, GetObjectOutput, GetRequest, ListPage, ListPartsPage, ListRequest,
    ListUploadsPage, Metadata, ObjectMeta, ObjectPart, ObjectStore, PartInfo, PutOptions,
    PutResult, StoreError, StoreErrorKind, StoredChecksum, VersionRef, VersionsPage,
    VersionsRequest,
};
use crate::checksum::{content_md5_base64, normalize_etag};

/// Keys and query values go on the wire in the exact encoding the signers
/// canonicalise to, so what is signed is what the server sees.
pub fn encode_path(s: &str) -> String {
    uri_encode(s, true)
}

pub fn encode_query(s: &str) -> String {
    uri_encode(s, false)
}

pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Error bodies are read up to this much: enough for any XML error, never
/// a whole misdirected download.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Successful XML answers (listings, results) are read up to this much.
const MAX_XML_BODY: usize = 64 << 20;

#[derive(Clone)]
pub struct HttpStoreConfig {
    pub endpoint: Url,
    /// Further nodes serving the same buckets (a cluster's other S3 APIs).
    pub more_endpoints: Vec<Url>,
    pub dialect: Dialect,
    pub scheme: Scheme,
    pub addressing: Addressing,
    /// `None` sends unsigned (anonymous) requests.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest time without a byte moving either way (sending a body,
    /// waiting for the answer, receiving it) before a request fails.
    pub idle_timeout: Duration,
    /// Idle connections kept per host; enough for every concurrent part.
    pub pool_size: usize,
    /// Shared limit on body bytes per second, both directions together.
    pub bandwidth: Option<Arc<Bandwidth>>,
    /// SSE-C: the key every object is written and read with.
    pub customer_key: Option<CustomerKey>,
    /// Bucket requests say the requester pays.
    pub requester_pays: bool,
    /// PEM certificates trusted besides the system's (a private CA), and
    /// the file they came from, for messages.
    pub ca_certificates: Vec<u8>,
    pub ca_bundle_name: Option<String>,
}

impl HttpStoreConfig {
    pub fn new(endpoint: Url, dialect: Dialect, scheme: Scheme, addressing: Addressing) -> Self {
        HttpStoreConfig {
            endpoint,
            more_endpoints: Vec::new(),
            dialect,
            scheme,
            addressing,
            credentials: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pool_size: 64,
            bandwidth: None,
            customer_key: None,
            requester_pays: false,
            ca_certificates: Vec::new(),
            ca_bundle_name: None,
        }
    }
}

pub struct HttpStore {
    client: reqwest::Client,
    cfg: HttpStoreConfig,
    clock: Clock,
    /// Milliseconds to add to the clock when signing: learned from a
    /// server that refused this machine's time, kept for later requests.
    clock_offset_ms: AtomicI64,
    /// Whether this endpoint stores flexible checksums.
    checksums: Learned,
    /// Buckets the server said live elsewhere, and where (`region`).
    places: std::sync::RwLock<std::collections::HashMap<String, BucketPlace>>,
    /// The store's addresses: the endpoint, then any further nodes.
    nodes: Nodes,
    /// Requests sent, by kind.
    tally: super::tally::RequestTally,
}

/// What the server said about a bucket's place: the region to sign for,
/// and a host only when it is not the configured one (AWS's regional
/// host); a private endpoint's nodes keep serving it.
#[derive(Debug, Clone)]
struct BucketPlace {
    region: Option<String>,
    host: Option<String>,
}

/// One logical request; rebuilt and re-signed on every attempt so retries
/// carry a fresh date.
struct Request<'a> {
    op: &'static str,
    method: Method,
    bucket: Option<&'a str>,
    key: Option<&'a str>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl<'a> Request<'a> {
    fn new(op: &'static str, method: Method, bucket: &'a str, key: Option<&'a str>) -> Self {
        Request {
            op,
            method,
            bucket: Some(bucket),
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    fn body_with_md5(mut self, data: Bytes, md5: &[u8; 16]) -> Self {
        self.headers
            .push(("content-md5".into(), content_md5_base64(md5)));
        self.body = Some(data);
        self
    }

    /// A body with whichever digests it carries: Content-MD5, and the
    /// flexible checksum where the dialect has them.
    fn body(mut self, body: Body, dialect: Dialect) -> Self {
        if let Some(md5) = &body.md5 {
            self.headers
                .push(("content-md5".into(), content_md5_base64(md5)));
        }
        if let (Some(c), Dialect::S3) = (&body.checksum, dialect) {
            self.headers
                .push((c.algorithm.header().into(), c.to_base64()));
        }
        self.body = Some(body.data);
        self
    }

    fn xml_body(self, body: String) -> Self {
        let md5: [u8; 16] = Md5::digest(body.as_bytes()).into();
        self.header("content-type", "application/xml")
            .body_with_md5(Bytes::from(body), &md5)
    }
}

impl HttpStore {
    pub fn new(cfg: HttpStoreConfig) -> Result<Self, StoreError> {
        let now: Clock = Arc::new(OffsetDateTime::now_utc);
        Self::with_clock(cfg, now)
    }

    pub fn with_clock(cfg: HttpStoreConfig, clock: Clock) -> Result<Self, StoreError> {
        // No read timeout: it would also run while a slow body is being
        // sent. Silence is watched per request instead (`idle`).
        let mut builder = reqwest::Client::builder();
        if let Some(name) = &cfg.ca_bundle_name {
            let certs = reqwest::Certificate::from_pem_bundle(&cfg.ca_certificates)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    StoreError::new(
                        StoreErrorKind::Rejected,
                        format!("CA bundle {name}: no PEM certificate in it"),
                    )
                })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        // Proxies come from HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY
        // (either case), as curl and the AWS CLI read them: reqwest's default.
        let client = builder
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_size)
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            // Object stores answer redirects with errors we want to see, not follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StoreError::new(StoreErrorKind::Protocol, e.to_string()))?;
        Ok(HttpStore {
            client,
            clock,
            clock_offset_ms: AtomicI64::new(0),
            checksums: Learned::default(),
            places: Default::default(),
            nodes: Nodes::new(std::iter::once(&cfg.endpoint).chain(&cfg.more_endpoints)),
            tally: Default::default(),
            cfg,
        })
    }

    /// The time requests are signed with: this machine's clock, corrected
    /// by what a server said its own clock reads.
    fn now(&self) -> OffsetDateTime {
        (self.clock)() + time::Duration::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Where a bucket's requests go: where the configuration says, unless
    /// the server has said otherwise. Service-level requests (no bucket)
    /// always go where configured.
    fn place(&self, bucket: Option<&str>, node: usize) -> Place {
        let region = match &self.cfg.scheme {
            Scheme::S3V4 { region } | Scheme::OssV4 { region } => Some(region.clone()),
            Scheme::OssV1 => None,
        };
        let mut place = Place {
            region,
            host: self.nodes.get(node).host.clone(),
        };
        if let Some(l) = bucket.and_then(|b| self.places.read().ok()?.get(b).cloned()) {
            place.region = l.region;
            if let Some(h) = l.host {
                place.host = h;
            }
        }
        place
    }

    /// The configured scheme, signing for `place`'s region.
    fn scheme_for(&self, place: &Place) -> Scheme {
        match (&self.cfg.scheme, &place.region) {
            (Scheme::S3V4 { .. }, Some(r)) => Scheme::S3V4 { region: r.clone() },
            (Scheme::OssV4 { .. }, Some(r)) => Scheme::OssV4 { region: r.clone() },
            (s, _) => s.clone(),
        }
    }

    /// After an answer saying the bucket is elsewhere: where to try again,
    /// remembered for every later request on the bucket. A hint without a
    /// region (a HEAD's bare 301 from a server that left the header out)
    /// is completed by asking the bucket's region with HEAD, as the AWS
    /// SDKs do.
    async fn relocate(
        &self,
        bucket: &str,
        err: &StoreError,
        node: usize,
        used: &Place,
    ) -> Option<Place> {
        let mut hint = match err.detail() {
            Some(Detail::WrongRegion { region, endpoint }) => Hint {
                region: region.clone(),
                endpoint: endpoint.clone(),
            },
            // A bare 400 to a HEAD (no body, no header) is how a signature
            // for the wrong region looks there; the SDKs then ask the
            // bucket, and so does ferry.
            _ if err.status == Some(400) && err.code.is_none() => Hint::default(),
            _ => return None,
        };
        // Requests in flight together all hear "elsewhere": one learns the
        // place, the others just go there.
        let current = self.place(Some(bucket), node);
        if current != *used {
            return Some(current);
        }
        let now = used.clone();
        if hint.region.is_none() && self.cfg.dialect == Dialect::S3 {
            hint.region = self.bucket_region(bucket).await;
        }
        let next = region::relocate(self.cfg.dialect, &now, &hint)?;
        tracing::debug!(
            bucket,
            region = next.region.as_deref().unwrap_or("-"),
            host = %next.host,
            "the bucket is served elsewhere; following the server's answer"
        );
        let learned = BucketPlace {
            region: next.region.clone(),
            host: (next.host != now.host).then(|| next.host.clone()),
        };
        if let Ok(mut places) = self.places.write() {
            places.insert(bucket.to_string(), learned);
        }
        Some(next)
    }

    /// `x-amz-bucket-region` of a HEAD on the bucket, whatever its status:
    /// AWS sends it on 200, 301 and 403 alike.
    async fn bucket_region(&self, bucket: &str) -> Option<String> {
        let req = Request::new("HeadBucket", Method::HEAD, bucket, None);
        let resp = match self.send_once_raw(&req).await {
            Ok(r) => r,
            Err(_) => return None,
        };
        header(resp.headers(), "x-amz-bucket-region")
    }

    pub fn dialect(&self) -> Dialect {
        self.cfg.dialect
    }

    fn target(&self, place: &Place, bucket: Option<&str>, key: Option<&str>) -> (String, String) {
        let base_host = place.host.clone();
        let key_path = key.map(encode_path).unwrap_or_default();
        match (self.cfg.addressing, bucket) {
            (Addressing::Virtual, Some(b)) => (format!("{b}.{base_host}"), format!("/{key_path}")),
            (_, Some(b)) if key.is_some() => (base_host, format!("/{b}/{key_path}")),
            (_, Some(b)) => (base_host, format!("/{b}")),
            (_, None) => (base_host, "/".to_string()),
        }
    }

    /// How the object is named in messages: `s3://bucket/key`.
    fn name(&self, bucket: Option<&str>, key: Option<&str>) -> String {
        let scheme = self.cfg.dialect.name();
        match (bucket, key) {
            (Some(b), Some(k)) => format!("{scheme}://{b}/{k}"),
            (Some(b), None) => format!("{scheme}://{b}"),
            _ => self.nodes.get(0).shown.clone(),
        }
    }

    async fn send(&self, req: Request<'_>) -> Result<reqwest::Response, StoreError> {
        let context = format!("{} {}", req.op, self.name(req.bucket, req.key));
        if let Some(k) = req.key {
            self.cfg
                .dialect
                .check_key(k)
                .map_err(|e| e.with_context(context.clone()))?;
        }
        let mut attempt = 1;
        let mut clock_corrected = false;
        let mut relocated = false;
        loop {
            let (result, node, used) = self.send_once(&req).await;
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            // Another node of the store takes the request at once; the
            // attempt still counts, so --retries bounds a dead cluster too.
            let failover = err.kind == StoreErrorKind::Network && self.nodes.avoid(node);
            // Once per request: a second "elsewhere" is a server this
            // client cannot satisfy, and its message names the fix.
            if let (Some(bucket), false) = (req.bucket, relocated) {
                if self.relocate(bucket, &err, node, &used).await.is_some() {
                    relocated = true;
                    continue;
                }
            }
            if let Some(&Detail::ClockSkew { server_time }) = err.detail() {
                match server_time {
                    // Once per request: a second refusal is not a clock
                    // this client can fix.
                    Some(t) if !clock_corrected => {
                        self.learn_clock(t);
                        clock_corrected = true;
                        continue;
                    }
                    _ => return Err(skew_error(err, clock_corrected).with_context(context)),
                }
            }
            match self.cfg.retry.next_delay(attempt, &err) {
                Some(wait) => {
                    tracing::debug!(op = req.op, attempt, ?wait, error = %err, "retrying");
                    if !failover {
                        tokio::time::sleep(wait).await;
                    }
                    attempt += 1;
                }
                None => {
                    let err = if err.is_retryable() {
                        let mut message = if attempt > 1 {
                            format!("{} (after {attempt} attempts)", err.message)
                        } else {
                            err.message
                        };
                        if err.kind == StoreErrorKind::Network
                            && self.nodes.count() > 1
                            && !failover
                        {
                            message.push_str(&format!(
                                "; none of the store's {} endpoints answered",
                                self.nodes.count()
                            ));
                        }
                        StoreError {
                            message,
                            attempts: u16::try_from(attempt).unwrap_or(u16::MAX),
                            ..err
                        }
                    } else {
                        err
                    };
                    return Err(err.with_context(context));
                }
            }
        }
    }

    /// Keeps the server's clock offset for this and every later request.
    fn learn_clock(&self, server: OffsetDateTime) {
        let offset = server - (self.clock)();
        let ms = i64::try_from(offset.whole_milliseconds()).unwrap_or(0);
        tracing::debug!(
            offset_ms = ms,
            "the server's clock differs from this machine's; signing with the server's time"
        );
        self.clock_offset_ms.store(ms, Ordering::Relaxed);
    }

    /// One attempt, the node it went to and where it was sent.
    async fn send_once(
        &self,
        req: &Request<'_>,
    ) -> (Result<reqwest::Response, StoreError>, usize, Place) {
        let node = self.nodes.pick();
        let place = self.place(req.bucket, node);
        let (resp, signed_at) = match self.send_signed(req, node, &place).await {
            Ok(r) => r,
            Err(e) => return (Err(e), node, place),
        };
        let status = resp.status().as_u16();
        if status < 300 || (status == 304) {
            return (Ok(resp), node, place);
        }
        let err = self.status_error(resp, req.bucket, &place, signed_at).await;
        (Err(err), node, place)
    }

    /// One attempt, whatever the status: for the few callers that read an
    /// error answer's headers themselves.
    async fn send_once_raw(&self, req: &Request<'_>) -> Result<reqwest::Response, StoreError> {
        let node = self.nodes.pick();
        let place = self.place(req.bucket, node);
        self.send_signed(req, node, &place)
            .await
            .map(|(resp, _)| resp)
    }

    async fn send_signed(
        &self,
        req: &Request<'_>,
        node: usize,
        place: &Place,
    ) -> Result<(reqwest::Response, OffsetDateTime), StoreError> {
        self.tally.add(req.op);
        let (host, path) = self.target(place, req.bucket, req.key);
        let mut query = req.query.clone();
        query.sort();
        let mut headers = req.headers.clone();
        if self.cfg.requester_pays && req.bucket.is_some() {
            let name = match self.cfg.dialect {
                Dialect::S3 => "x-amz-request-payer",
                Dialect::Oss => "x-oss-request-payer",
            };
            headers.push((name.into(), "requester".into()));
        }
        let signed_at = self.now();
        if let Some(source) = &self.cfg.credentials {
            let creds = &source.credentials().await?;
            let signable = SignableRequest {
                method: req.method.as_str(),
                host: &host,
                path: &path,
                query: &query,
                headers: &headers,
                bucket: req.bucket,
                key: req.key,
            };
            let added =
                self.scheme_for(place)
                    .sign(&signable, creds, &Payload::Unsigned, signed_at);
            headers.extend(added);
        }
        let mut url = format!("{}://{}{}", self.nodes.get(node).scheme, host, path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_query(k));
            if !v.is_empty() {
                url.push('=');
                url.push_str(&encode_query(v));
            }
        }
        let mut map = HeaderMap::with_capacity(headers.len());
        for (k, v) in &headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                StoreError::new(StoreErrorKind::Rejected, format!("invalid header name {k}"))
            })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Rejected,
                    format!("header {k} has a value that cannot be sent (non-ASCII?)"),
                )
            })?;
            map.insert(name, value);
        }
        let mut builder = self.client.request(req.method.clone(), &url).headers(map);
        let activity = Activity::new();
        match &req.body {
            // Always an explicit length: hyper leaves it out for an empty
            // body (S3 answers such a PUT with 411), and a streamed body
            // would otherwise go out chunked, which S3 and OSS refuse.
            Some(body) if !body.is_empty() => {
                let chunks: super::ByteStream = match &self.cfg.bandwidth {
                    Some(bw) => Box::pin(
                        paced(body.clone(), bw.clone())
                            .map_err(|e| StoreError::new(StoreErrorKind::Network, e.to_string())),
                    ),
                    None => Box::pin(futures::stream::iter(chunks_of(body).into_iter().map(Ok))),
                };
                builder = builder
                    .header("content-length", body.len().to_string())
                    .body(reqwest::Body::wrap_stream(Watched::new(
                        chunks,
                        activity.clone(),
                    )));
            }
            Some(_) => builder = builder.header("content-length", "0"),
            None if matches!(req.method, Method::PUT | Method::POST) => {
                builder = builder.header("content-length", "0")
            }
            None => {}
        }
        tracing::debug!(op = req.op, method = %req.method, url = %url, "request");
        let resp = tokio::select! {
            r = builder.send() => r.map_err(|e| self.network_error(&e, node))?,
            _ = activity.silent_for(self.cfg.idle_timeout) => {
                return Err(self.idle_error("no answer from", &self.nodes.get(node).shown));
            }
        };
        tracing::debug!(op = req.op, status = resp.status().as_u16(), "response");
        Ok((resp, signed_at))
    }

    fn idle_error(&self, what: &str, shown: &str) -> StoreError {
        let limit = self.cfg.idle_timeout;
        StoreError::new(
            StoreErrorKind::Network,
            format!("{what} {shown}: nothing moved for {limit:?} (--idle-timeout)"),
        )
        .with_detail(Detail::Idle(limit))
    }

    /// A response body as a stream that fails when the server goes silent.
    fn body_stream(&self, resp: reqwest::Response) -> super::ByteStream {
        let endpoint = resp.url().origin().ascii_serialization();
        let shown = endpoint.clone();
        let body = resp.bytes_stream().map_err(move |e| {
            StoreError::new(
                StoreErrorKind::Network,
                format!("download from {endpoint} interrupted: {e}"),
            )
        });
        let stalled = self.idle_error("download stalled: no data from", &shown);
        Box::pin(Guarded::new(
            Box::pin(body),
            self.cfg.idle_timeout,
            move || stalled.clone(),
        ))
    }

    /// Up to `max` bytes of a response body, and whether there was more
    /// (which is left unread).
    async fn read_body(
        &self,
        resp: reqwest::Response,
        max: usize,
    ) -> Result<(Vec<u8>, bool), StoreError> {
        let mut body = self.body_stream(resp);
        let mut out = Vec::new();
        while let Some(chunk) = body.try_next().await? {
            if out.len() + chunk.len() > max {
                out.extend_from_slice(&chunk[..max - out.len()]);
                return Ok((out, true));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out, false))
    }

    fn network_error(&self, e: &reqwest::Error, node: usize) -> StoreError {
        StoreError::new(
            StoreErrorKind::Network,
            format!(
                "cannot reach {}: {}",
                self.nodes.get(node).shown,
                transport_cause(e)
            ),
        )
    }

    async fn status_error(
        &self,
        resp: reqwest::Response,
        bucket: Option<&str>,
        place: &Place,
        signed_at: OffsetDateTime,
    ) -> StoreError {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // A body that breaks off still leaves the status and headers to go on.
        let body = match self.read_body(resp, MAX_ERROR_BODY).await {
            Ok((b, _)) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        };
        let asked = Asked {
            bucket,
            region: place.region.as_deref(),
            signed_at,
        };
        error_from_answer(self.cfg.dialect, status, &headers, &body, &asked)
    }

    fn meta_from_headers(&self, key: &str, h: &HeaderMap) -> Result<ObjectMeta, StoreError> {
        let prefix = self.cfg.dialect.meta_prefix();
        let mut metadata = Metadata::new();
        for (name, value) in h {
            if let Some(k) = name.as_str().strip_prefix(prefix) {
                if let Ok(v) = value.to_str() {
                    metadata.insert(k.to_string(), v.to_string());
                }
            }
        }
        let size = match header(h, "content-range").and_then(|r| total_from_content_range(&r)) {
            Some(total) => total,
            None => header(h, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        };
        let last_modified = match header(h, "last-modified") {
            Some(v) => xml::parse_http_date(&v)?,
            None => OffsetDateTime::UNIX_EPOCH,
        };
        let etag = etag_header(h);
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag_kind: self.etag_kind(&etag, self.encrypted_with_key(h)),
            etag,
            last_modified,
            metadata,
            crc64: self.crc64(h),
            checksum: self.stored_checksum(h),
            content_type: header(h, "content-type"),
            object: self.object_options(h),
            version_id: header(h, self.cfg.dialect.version_id_header()),
        })
    }

    /// HEAD of the current object, or of one version.
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectMeta, StoreError> {
        let mut req = self.with_key(self.with_checksum_mode(Request::new(
            "HEAD",
            Method::HEAD,
            bucket,
            Some(key),
        )));
        if let Some(v) = version_id {
            req = req.query("versionId", v);
        }
        let resp = self.send(req).await;
        match resp {
            Ok(resp) => self.meta_from_headers(key, resp.headers()).map_err(|e| {
                e.with_context(format!("HEAD {}", self.name(Some(bucket), Some(key))))
            }),
            // A HEAD answer has no body, so a 403 cannot say whether the
            // signature or the permission is wrong; a one-byte GET can.
            Err(e) if e.status == Some(403) && e.code.is_none() => {
                match self
                    .get_object(bucket, key, &GetRequest::range(0..1).version(version_id))
                    .await
                {
                    Err(detailed) if detailed.code.is_some() => Err(detailed),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// CopyObject from the current source, or from one of its versions.
    async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        version_id: Option<&str>,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let d = self.cfg.dialect;
        d.check_key(src_key).map_err(|e| {
            e.with_context(format!(
                "COPY {}",
                self.name(Some(src_bucket), Some(src_key))
            ))
        })?;
        let mut req = Request::new("COPY", Method::PUT, bucket, Some(key)).header(
            d.copy_source_header(),
            copy_source(src_bucket, src_key, version_id),
        );
        req = req.header(d.metadata_directive_header(), "REPLACE");
        req = self.with_put_options(req, opts);
        let resp = self.send(self.with_copy_keys(req)).await?;
        let headers = resp.headers().clone();
        let body = self.text(resp, "CopyObject").await?;
        let parsed = xml::parse_etag_result("CopyObject", &body)
            .map_err(|e| e.with_context(format!("COPY {}", self.name(Some(bucket), Some(key)))))?;
        Ok(self.xml_put_result(parsed, &headers))
    }

    /// The storage class, encryption and caching headers of an answer.
    fn object_options(&self, h: &HeaderMap) -> super::ObjectOptions {
        let d = self.cfg.dialect;
        let (sse, _, kms, key_header) = d.encryption_headers();
        let encryption = header(h, sse).map(|v| {
            if v.eq_ignore_ascii_case(kms) {
                super::Encryption::Kms {
                    key_id: header(h, key_header),
                }
            } else {
                super::Encryption::Aes256
            }
        });
        super::ObjectOptions {
            storage_class: header(h, d.storage_class_header()),
            encryption,
            acl: None,
            cache_control: header(h, "cache-control"),
            content_disposition: header(h, "content-disposition"),
            content_encoding: header(h, "content-encoding"),
            expires: header(h, "expires"),
            tagging: None,
        }
    }

    /// The flexible checksum of a response (S3 only: OSS has its CRC-64).
    fn stored_checksum(&self, h: &HeaderMap) -> Option<StoredChecksum> {
        match self.cfg.dialect {
            Dialect::S3 => checksums::stored_from_headers(h),
            Dialect::Oss => None,
        }
    }

    /// A request on an object's data: with the SSE-C key, if any.
    fn with_key<'a>(&self, mut req: Request<'a>) -> Request<'a> {
        if let Some(k) = &self.cfg.customer_key {
            req.headers.extend(k.headers());
        }
        req
    }

    /// A copy: the source is read and the destination written with the key.
    fn with_copy_keys<'a>(&self, mut req: Request<'a>) -> Request<'a> {
        if let Some(k) = &self.cfg.customer_key {
            req.headers.extend(k.copy_source_headers());
        }
        self.with_key(req)
    }

    /// A HEAD or GET that asks for the stored checksum.
    fn with_checksum_mode<'a>(&self, req: Request<'a>) -> Request<'a> {
        match self.cfg.dialect {
            Dialect::S3 => req.header(checksums::MODE_HEADER, "ENABLED"),
            Dialect::Oss => req,
        }
    }

    /// Learns from the answer to a body that carried a checksum whether
    /// this endpoint stores them.
    fn learn_checksums(&self, sent: bool, answered: bool) {
        if sent {
            self.checksums.learn(answered);
        }
    }

    /// Whether the response says the data is encrypted with a key the
    /// store holds (SSE-KMS) or the client gave (SSE-C); on OSS, with any
    /// server-side encryption.
    fn encrypted_with_key(&self, h: &HeaderMap) -> bool {
        match self.cfg.dialect {
            Dialect::S3 => {
                header(h, "x-amz-server-side-encryption").is_some_and(|v| v.starts_with("aws:kms"))
                    || h.contains_key("x-amz-server-side-encryption-customer-algorithm")
            }
            Dialect::Oss => h.contains_key("x-oss-server-side-encryption"),
        }
    }

    /// See [`EtagKind`]: encryption with a key makes S3's ETag opaque; on
    /// OSS only a simple object's ETag, unencrypted, is documented as its
    /// MD5.
    fn etag_kind(&self, etag: &str, keyed: bool) -> EtagKind {
        match EtagKind::from_form(etag) {
            _ if keyed => EtagKind::Opaque,
            EtagKind::PartsMd5 if self.cfg.dialect == Dialect::Oss => EtagKind::Opaque,
            k => k,
        }
    }

    fn crc64(&self, h: &HeaderMap) -> Option<u64> {
        self.cfg
            .dialect
            .crc64_header()
            .and_then(|n| header(h, n))
            .and_then(|v| v.parse().ok())
    }

    fn put_result(&self, h: &HeaderMap) -> PutResult {
        let etag = etag_header(h);
        PutResult {
            etag_kind: self.etag_kind(&etag, self.encrypted_with_key(h)),
            etag,
            crc64: self.crc64(h),
            checksum: self.stored_checksum(h),
        }
    }

    /// A result whose ETag is in the XML body (CopyObject,
    /// CompleteMultipartUpload) while its headers say the rest.
    fn xml_put_result(
        &self,
        (etag, checksum): (String, Option<StoredChecksum>),
        h: &HeaderMap,
    ) -> PutResult {
        PutResult {
            etag_kind: self.etag_kind(&etag, self.encrypted_with_key(h)),
            etag,
            crc64: self.crc64(h),
            checksum: checksum.or_else(|| self.stored_checksum(h)),
        }
    }

    fn with_put_options<'a>(&self, mut req: Request<'a>, opts: &PutOptions) -> Request<'a> {
        for (k, v) in &opts.metadata {
            req = req.header(&format!("{}{}", self.cfg.dialect.meta_prefix(), k), v);
        }
        if let Some(ct) = &opts.content_type {
            req = req.header("content-type", ct);
        }
        let (o, d) = (&opts.object, self.cfg.dialect);
        let plain = [
            (d.storage_class_header(), &o.storage_class),
            (d.acl_header(), &o.acl),
            (d.tagging_header(), &o.tagging),
            ("cache-control", &o.cache_control),
            ("content-disposition", &o.content_disposition),
            ("content-encoding", &o.content_encoding),
            ("expires", &o.expires),
        ];
        for (name, value) in plain {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        let (sse, aes, kms, key_header) = d.encryption_headers();
        match &o.encryption {
            Some(super::Encryption::Aes256) => req = req.header(sse, aes),
            Some(super::Encryption::Kms { key_id }) => {
                req = req.header(sse, kms);
                if let Some(k) = key_id {
                    req = req.header(key_header, k);
                }
            }
            None => {}
        }
        req
    }

    async fn text(&self, resp: reqwest::Response, what: &str) -> Result<String, StoreError> {
        let (body, cut) = self
            .read_body(resp, MAX_XML_BODY)
            .await
            .map_err(|e| StoreError {
                message: format!("reading {what} response: {}", e.message),
                ..e
            })?;
        if cut {
            return Err(StoreError::new(
                StoreErrorKind::Protocol,
                format!("{what} response is larger than {MAX_XML_BODY} bytes"),
            ));
        }
        String::from_utf8(body).map_err(|_| {
            StoreError::new(
                StoreErrorKind::Protocol,
                format!("{what} response is not UTF-8"),
            )
        })
    }
}

/// What went wrong on the wire, as the user can act on it: reqwest's own
/// message embeds the URL, the innermost cause ("Connection refused",
/// "timed out") does not.
pub fn transport_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A body in the pieces it is sent in, so each piece the connection takes
/// counts as progress.
fn chunks_of(data: &Bytes) -> Vec<Bytes> {
    (0..data.len())
        .step_by(CHUNK)
        .map(|i| data.slice(i..(i + CHUNK).min(data.len())))
        .collect()
}

/// The final error of a request the server refused for its clock.
fn skew_error(err: StoreError, corrected: bool) -> StoreError {
    let hint = if corrected {
        "; refused again after signing with the server's time"
    } else {
        "; this machine's clock is off: check the system time (NTP)"
    };
    StoreError {
        message: format!("{}{hint}", err.message.trim_end().trim_end_matches('.')),
        ..err
    }
}

/// The ETag header without its quotes; empty when absent.
/// The copy-source header's value: `/bucket/key`, with `?versionId=`
/// for one version.
fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    match version_id {
        Some(v) => format!(
            "/{bucket}/{}?versionId={}",
            encode_path(key),
            encode_query(v)
        ),
        None => format!("/{bucket}/{}", encode_path(key)),
    }
}

fn etag_header(h: &HeaderMap) -> String {
    header(h, "etag")
        .map(|e| normalize_etag(&e).to_string())
        .unwrap_or_default()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// `bytes 0-99/1000` -> 1000.
fn total_from_content_range(v: &str) -> Option<u64> {
    v.rsplit_once('/').and_then(|(_, t)| t.trim().parse().ok())
}

/// `bytes 100-199/1000` -> 100..200.
fn range_from_content_range(v: &str) -> Option<std::ops::Range<u64>> {
    let (span, _) = v.trim().strip_prefix("bytes")?.trim().split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some(a..b.checked_add(1)?)
}

#[async_trait]
impl ObjectStore for HttpStore {
    fn describe(&self) -> String {
        let all: Vec<&str> = self.nodes.all().map(|n| n.shown.as_str()).collect();
        format!("{} {}", self.cfg.dialect.name(), all.join(","))
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        self.head(bucket, key, None).await
    }

    async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<ObjectMeta, StoreError> {
        self.head(bucket, key, Some(version_id)).await
    }

    async fn copy_version(
        &self,
        src_bucket: &str,
        src_key: &str,
        version_id: &str,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.copy(src_bucket, src_key, Some(version_id), bucket, key, opts)
            .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        r: &VersionsRequest<'_>,
    ) -> Result<VersionsPage, StoreError> {
        let mut req = Request::new("LIST", Method::GET, bucket, None)
            .query("versions", "")
            .query("encoding-type", "url")
            .query("prefix", r.prefix);
        if let Some(d) = r.delimiter {
            req = req.query("delimiter", d);
        }
        if let Some((key, version)) = r.after {
            req = req.query("key-marker", key.as_str());
            if !version.is_empty() {
                req = req.query("version-id-marker", version.as_str());
            }
        }
        if let Some(m) = r.max_keys {
            req = req.query("max-keys", m.to_string());
        }
        let resp = self.send(req).await?;
        let body = self.text(resp, "ListObjectVersions").await?;
        xml::parse_list_versions(&body, self.cfg.dialect.list_encoding())
            .map_err(|e| e.with_context(format!("LIST versions {}", self.name(Some(bucket), None))))
    }

    async fn delete_versions(
        &self,
        bucket: &str,
        versions: &[VersionRef],
    ) -> Result<Vec<DeleteFailure>, StoreError> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let req = Request::new("DELETE-BATCH", Method::POST, bucket, None)
            .query("delete", "")
            .xml_body(xml::delete_versions_body(versions));
        let resp = self.send(req).await?;
        let body = self.text(resp, "DeleteObjects").await?;
        xml::parse_delete_result(&body)
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        get: &GetRequest<'_>,
    ) -> Result<GetObjectOutput, StoreError> {
        let range = get.range.clone();
        let mut req = self.with_key(self.with_checksum_mode(Request::new(
            "GET",
            Method::GET,
            bucket,
            Some(key),
        )));
        if let Some(v) = get.version_id {
            req = req.query("versionId", v);
        }
        if let Some(etag) = get.if_match {
            // ETags are kept unquoted; the header wants an entity-tag.
            let quoted = if etag.starts_with('"') {
                etag.to_string()
            } else {
                format!("\"{etag}\"")
            };
            req = req.header("if-match", quoted);
        }
        if let Some(r) = &range {
            if r.start >= r.end {
                return Err(StoreError::new(
                    StoreErrorKind::Rejected,
                    format!("empty range {}..{}", r.start, r.end),
                ));
            }
            req = req.header("range", format!("bytes={}-{}", r.start, r.end - 1));
        }
        let resp = self.send(req).await?;
        let meta = self
            .meta_from_headers(key, resp.headers())
            .map_err(|e| e.with_context(format!("GET {}", self.name(Some(bucket), Some(key)))))?;
        let content_length = resp
            .content_length()
            .or_else(|| header(resp.headers(), "content-length").and_then(|v| v.parse().ok()))
            .unwrap_or(meta.size);
        if let Some(r) = &range {
            if resp.status().as_u16() != 206 && r.start != 0 {
                return Err(StoreError::new(
                    StoreErrorKind::Protocol,
                    "server ignored the byte range",
                )
                .with_context(format!("GET {}", self.name(Some(bucket), Some(key)))));
            }
        }
        let body = self.body_stream(resp);
        let body: super::ByteStream = match &self.cfg.bandwidth {
            Some(bw) => {
                let bw = bw.clone();
                Box::pin(body.then(move |chunk| {
                    let bw = bw.clone();
                    async move {
                        if let Ok(c) = &chunk {
                            bw.take(c.len()).await;
                        }
                        chunk
                    }
                }))
            }
            None => body,
        };
        Ok(GetObjectOutput {
            meta,
            content_length,
            body,
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let sent = body.checksum.is_some() && self.cfg.dialect == Dialect::S3;
        let req = self.with_key(
            Request::new("PUT", Method::PUT, bucket, Some(key)).body(body, self.cfg.dialect),
        );
        let resp = self.send(self.with_put_options(req, opts)).await?;
        let result = self.put_result(resp.headers());
        self.learn_checksums(sent, result.checksum.is_some());
        Ok(result)
    }

    async fn list_objects(
        &self,
        bucket: &str,
        r: &ListRequest<'_>,
    ) -> Result<ListPage, StoreError> {
        let mut req = Request::new("LIST", Method::GET, bucket, None)
            .query("list-type", "2")
            .query("encoding-type", "url")
            .query("prefix", r.prefix);
        if let Some(d) = r.delimiter {
            req = req.query("delimiter", d);
        }
        if let Some(t) = r.continuation {
            req = req.query("continuation-token", t);
        }
        if let Some(s) = r.start_after {
            req = req.query("start-after", s);
        }
        if let Some(m) = r.max_keys {
            req = req.query("max-keys", m.to_string());
        }
        let resp = self.send(req).await?;
        let body = self.text(resp, "ListObjectsV2").await?;
        xml::parse_list_objects(&body, self.cfg.dialect.list_encoding())
            .map_err(|e| e.with_context(format!("LIST {}", self.name(Some(bucket), None))))
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.send(Request::new("DELETE", Method::DELETE, bucket, Some(key)))
            .await?;
        Ok(())
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<DeleteFailure>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let req = Request::new("DELETE-BATCH", Method::POST, bucket, None)
            .query("delete", "")
            .xml_body(xml::delete_body(keys));
        let resp = self.send(req).await?;
        let body = self.text(resp, "DeleteObjects").await?;
        xml::parse_delete_result(&body)
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.copy(src_bucket, src_key, None, bucket, key, opts)
            .await
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<CreatedUpload, StoreError> {
        let mut req =
            Request::new("CREATE-UPLOAD", Method::POST, bucket, Some(key)).query("uploads", "");
        let asked = opts.checksum.filter(|_| self.cfg.dialect == Dialect::S3);
        if let Some(a) = asked {
            // FULL_OBJECT: the parts' CRCs combine into the object's, which
            // a download checks whole. (SHAs cannot; ferry never asks.)
            req = req
                .header(checksums::ALGORITHM_HEADER, a.name())
                .header(checksums::TYPE_HEADER, "FULL_OBJECT");
        }
        let resp = self
            .send(self.with_key(self.with_put_options(req, opts)))
            .await?;
        let agreed = checksums::agreed_algorithm(resp.headers());
        self.learn_checksums(asked.is_some(), agreed.is_some());
        let body = self.text(resp, "CreateMultipartUpload").await?;
        Ok(CreatedUpload {
            upload_id: xml::parse_initiate(&body)?,
            checksum: agreed.filter(|a| Some(*a) == asked),
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<PartInfo, StoreError> {
        let size = body.len();
        let sent = body.checksum.as_ref().map(|c| c.algorithm);
        let req = Request::new("UPLOAD-PART", Method::PUT, bucket, Some(key))
            .query("partNumber", part_number.to_string())
            .query("uploadId", upload_id)
            .body(body, self.cfg.dialect);
        let resp = self.send(self.with_key(req)).await?;
        let etag = etag_header(resp.headers());
        let checksum = sent.and_then(|a| {
            let v = header(resp.headers(), a.header())?;
            Checksum::from_base64(a, &v)
        });
        Ok(PartInfo {
            part_number,
            etag_kind: self.etag_kind(&etag, self.encrypted_with_key(resp.headers())),
            etag,
            size,
            checksum,
        })
    }

    async fn upload_part_copy(
        &self,
        src: &CopySource<'_>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartInfo, StoreError> {
        let d = self.cfg.dialect;
        let source = || {
            format!(
                "UPLOAD-PART-COPY {}",
                self.name(Some(src.bucket), Some(src.key))
            )
        };
        d.check_key(src.key).map_err(|e| e.with_context(source()))?;
        let range = &src.range;
        if range.start >= range.end {
            return Err(StoreError::new(
                StoreErrorKind::Rejected,
                format!("empty range {}..{}", range.start, range.end),
            )
            .with_context(source()));
        }
        let mut req = Request::new("UPLOAD-PART-COPY", Method::PUT, bucket, Some(key))
            .query("partNumber", part_number.to_string())
            .query("uploadId", upload_id)
            .header(
                d.copy_source_header(),
                copy_source(src.bucket, src.key, src.version_id),
            )
            .header(
                d.copy_source_range_header(),
                format!("bytes={}-{}", range.start, range.end - 1),
            );
        if let Some(etag) = src.if_match {
            req = req.header(d.copy_source_if_match_header(), format!("\"{etag}\""));
        }
        let resp = self.send(self.with_copy_keys(req)).await?;
        let keyed = self.encrypted_with_key(resp.headers());
        let body = self.text(resp, "UploadPartCopy").await?;
        let (etag, checksum) = xml::parse_etag_result("UploadPartCopy", &body).map_err(|e| {
            e.with_context(format!(
                "UPLOAD-PART-COPY {}",
                self.name(Some(bucket), Some(key))
            ))
        })?;
        Ok(PartInfo {
            part_number,
            etag_kind: self.etag_kind(&etag, keyed),
            etag,
            size: range.end - range.start,
            checksum: checksum.map(|s| s.checksum),
        })
    }

    fn copy_limits(&self) -> CopyLimits {
        CopyLimits::for_dialect(self.cfg.dialect)
    }

    fn tally(&self) -> Option<&super::tally::RequestTally> {
        Some(&self.tally)
    }

    fn checksum_support(&self) -> ChecksumSupport {
        match self.cfg.dialect {
            Dialect::S3 => self.checksums.get(),
            Dialect::Oss => ChecksumSupport::No,
        }
    }

    async fn head_object_part(
        &self,
        bucket: &str,
        key: &str,
        part_number: u32,
    ) -> Result<ObjectPart, StoreError> {
        let req = self.with_key(
            self.with_checksum_mode(
                Request::new("HEAD-PART", Method::HEAD, bucket, Some(key))
                    .query("partNumber", part_number.to_string()),
            ),
        );
        let resp = self.send(req).await?;
        let h = resp.headers();
        let context = || {
            format!(
                "HEAD {} part {part_number}",
                self.name(Some(bucket), Some(key))
            )
        };
        let range = header(h, "content-range")
            .and_then(|v| range_from_content_range(&v))
            .or_else(|| {
                // A one-part object may be answered with 200 and no range.
                let len: u64 = header(h, "content-length")?.parse().ok()?;
                (part_number == 1).then_some(0..len)
            })
            .ok_or_else(|| {
                StoreError::new(StoreErrorKind::Protocol, "no Content-Range in the answer")
                    .with_context(context())
            })?;
        let parts = header(h, "x-amz-mp-parts-count")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        // As the store answered: AWS gives the part's own value, Garage
        // the object's; the caller tells them apart.
        let checksum = self.stored_checksum(h);
        Ok(ObjectPart {
            number: part_number,
            range,
            parts,
            etag: etag_header(h),
            checksum,
        })
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: Option<u32>,
    ) -> Result<ListPartsPage, StoreError> {
        let mut req =
            Request::new("LIST-PARTS", Method::GET, bucket, Some(key)).query("uploadId", upload_id);
        if let Some(m) = marker {
            req = req.query("part-number-marker", m.to_string());
        }
        let resp = self.send(req).await?;
        let body = self.text(resp, "ListParts").await?;
        xml::parse_list_parts(&body)
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: Option<&Checksum>,
    ) -> Result<PutResult, StoreError> {
        let mut req = Request::new("COMPLETE-UPLOAD", Method::POST, bucket, Some(key))
            .query("uploadId", upload_id)
            .xml_body(xml::complete_body(parts));
        if let (Some(c), Dialect::S3) = (checksum, self.cfg.dialect) {
            // The server compares its combination of the parts with this
            // and refuses the completion if they differ.
            req = req
                .header(c.algorithm.header(), c.to_base64())
                .header(checksums::TYPE_HEADER, "FULL_OBJECT");
        }
        // With a checksum the server reads the parts' to combine them, so
        // an SSE-C upload completes with its key (AWS documents the same).
        let resp = self.send(self.with_key(req)).await?;
        let headers = resp.headers().clone();
        let body = self.text(resp, "CompleteMultipartUpload").await?;
        let parsed = xml::parse_etag_result("CompleteMultipartUpload", &body).map_err(|e| {
            e.with_context(format!(
                "COMPLETE-UPLOAD {}",
                self.name(Some(bucket), Some(key))
            ))
        })?;
        Ok(self.xml_put_result(parsed, &headers))
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let req = Request::new("ABORT-UPLOAD", Method::DELETE, bucket, Some(key))
            .query("uploadId", upload_id);
        self.send(req).await?;
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<&(String, String)>,
    ) -> Result<ListUploadsPage, StoreError> {
        let mut req = Request::new("LIST-UPLOADS", Method::GET, bucket, None)
            .query("uploads", "")
            .query("prefix", prefix);
        if let Some((k, u)) = next {
            req = req.query("key-marker", k.as_str());
            if !u.is_empty() {
                req = req.query("upload-id-marker", u.as_str());
            }
        }
        let resp = self.send(req).await?;
        let body = self.text(resp, "ListMultipartUploads").await?;
        xml::parse_list_uploads(&body)
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        self.send(Request::new("MAKE-BUCKET", Method::PUT, bucket, None))
            .await?;
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        self.send(Request::new("REMOVE-BUCKET", Method::DELETE, bucket, None))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(addressing: Addressing, endpoint: &str) -> HttpStore {
        HttpStore::new(HttpStoreConfig::new(
            Url::parse(endpoint).unwrap(),
            Dialect::S3,
            Scheme::S3V4 { region: "r".into() },
            addressing,
        ))
        .unwrap()
    }

    #[test]
    fn path_and_virtual_targets() {
        let p = store(Addressing::Path, "http://127.0.0.1:3900");
        assert_eq!(
            p.target(&p.place(None, 0), Some("b"), Some("a b/c+d")),
            ("127.0.0.1:3900".into(), "/b/a%20b/c%2Bd".into())
        );
        assert_eq!(
            p.target(&p.place(None, 0), Some("b"), None),
            ("127.0.0.1:3900".into(), "/b".into())
        );
        let v = store(Addressing::Virtual, "https://s3.example.com");
        assert_eq!(
            v.target(&v.place(None, 0), Some("b"), Some("k~x")),
            ("b.s3.example.com".into(), "/k~x".into())
        );
        assert_eq!(
            v.target(&v.place(None, 0), Some("b"), None),
            ("b.s3.example.com".into(), "/".into())
        );
    }

    #[tokio::test]
    async fn keys_over_the_dialects_limit_are_refused_before_sending() {
        // Nothing listens on port 1: a request that went out would fail
        // as a network error, not as an invalid key.
        let mut cfg = HttpStoreConfig::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            Dialect::Oss,
            Scheme::OssV4 { region: "r".into() },
            Addressing::Path,
        );
        cfg.retry = RetryPolicy::none();
        let oss = HttpStore::new(cfg.clone()).unwrap();
        let body = || Body::new(&b"x"[..]);
        let opts = PutOptions::default();
        let long = "k".repeat(1024);
        let e = oss.put_object("b", &long, body(), &opts).await.unwrap_err();
        assert_eq!(
            e.detail(),
            Some(&Detail::InvalidKey {
                len: 1024,
                max: 1023
            })
        );
        let line = e.to_string();
        assert!(line.contains(&format!("PUT oss://b/{long}")), "{line}");
        assert!(
            line.contains("1024 bytes; oss allows at most 1023"),
            "{line}"
        );
        let e = oss.head_object("b", "").await.unwrap_err();
        assert!(e.to_string().contains("cannot be empty"), "{e}");
        // The source of a copy too.
        let e = oss
            .copy_object("b", &long, "b", "short", &PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e.detail(), Some(Detail::InvalidKey { .. })), "{e}");
        // 1023 bytes is a valid OSS key: it goes out (and meets no server).
        let e = oss
            .put_object("b", &long[..1023], body(), &opts)
            .await
            .unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Network, "{e}");
        // S3 takes 1024 and refuses 1025.
        cfg.dialect = Dialect::S3;
        cfg.scheme = Scheme::S3V4 { region: "r".into() };
        let s3 = HttpStore::new(cfg).unwrap();
        let e = s3.put_object("b", &long, body(), &opts).await.unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Network, "{e}");
        let e = s3
            .put_object("b", &format!("{long}k"), body(), &opts)
            .await
            .unwrap_err();
        assert_eq!(
            e.detail(),
            Some(&Detail::InvalidKey {
                len: 1025,
                max: 1024
            })
        );
    }

    #[test]
    fn content_range_total() {
        assert_eq!(total_from_content_range("bytes 0-99/1000"), Some(1000));
        assert_eq!(total_from_content_range("bytes */1000"), Some(1000));
        assert_eq!(total_from_content_range("garbage"), None);
        assert_eq!(
            range_from_content_range("bytes 100-199/1000"),
            Some(100..200)
        );
        assert_eq!(range_from_content_range("bytes 0-0/1"), Some(0..1));
        assert_eq!(range_from_content_range("bytes 9-3/10"), None);
        assert_eq!(range_from_content_range("bytes */10"), None);
    }
}
