//! The object-store layer: one small async trait, the plain-data types it
//! speaks, and its implementations (HTTP for S3/OSS, in-memory, fault-injecting).
//!
//! Everything above this layer (transfers, sync, mount) talks only to
//! [`ObjectStore`], so the same code path is exercised by unit tests against
//! [`memory::MemoryStore`] and by integration tests against a real server.

pub(crate) mod bandwidth;
pub(crate) mod checksums;
pub mod copy;
pub mod credentials;
pub mod dialect;
pub mod error;
#[cfg(any(test, feature = "test-doubles"))]
pub mod faulty;
pub mod http;
pub(crate) mod idle;
#[cfg(any(test, feature = "test-doubles"))]
pub mod memory;
pub mod nodes;
pub mod region;
pub(crate) mod retry;
pub mod sign;
pub mod sse_c;
pub(crate) mod status;
pub mod tally;
pub(crate) mod xml;

use std::collections::BTreeMap;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use time::OffsetDateTime;

pub use crate::checksum::{Algorithm, Checksum, ChecksumType, StoredChecksum};
pub use copy::{copy_known, copy_object_any_size, copy_version_any_size, CopyLimits, CopySource};
pub use error::{Detail, StoreError, StoreErrorKind};

/// User metadata, keys lower-cased and without the `x-amz-meta-`/`x-oss-meta-` prefix.
pub type Metadata = BTreeMap<String, String>;

/// A streamed object body. Streams keep memory flat for large ranges and let
/// the fault injector cut a body after N bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// What an ETag is known to say about the bytes. Only the store can tell:
/// under SSE-KMS or SSE-C, S3's ETag is not the MD5 of the data even for a
/// single PUT, and OSS documents no rule for a multipart object's ETag.
/// A check against an ETag is made only where it is known to be a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtagKind {
    /// The MD5 of the object's (or the part's) bytes.
    Md5,
    /// S3's multipart form: the MD5 of the parts' MD5s, then `-N`.
    PartsMd5,
    /// Nothing to check against.
    #[default]
    Opaque,
}

impl EtagKind {
    /// What the ETag's form says, for a store that does not encrypt with
    /// keys of its own: 32 hex digits are an MD5, `HEX-N` S3's multipart
    /// form.
    pub fn from_form(etag: &str) -> EtagKind {
        let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.split_once('-') {
            None if hex32(etag) => EtagKind::Md5,
            Some((h, n)) if hex32(h) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                EtagKind::PartsMd5
            }
            _ => EtagKind::Opaque,
        }
    }
}

/// What a HEAD (or the headers of a GET) says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub metadata: Metadata,
    /// `x-oss-hash-crc64ecma` when the store reports it (OSS; never S3).
    pub crc64: Option<u64>,
    pub etag_kind: EtagKind,
    /// The flexible checksum S3 stored with the object, if any (asked for
    /// with `x-amz-checksum-mode: ENABLED`; a ranged GET carries none).
    pub checksum: Option<StoredChecksum>,
    pub content_type: Option<String>,
    /// Storage class, encryption and caching headers as the store reports
    /// them (a HEAD carries no ACL or tags).
    pub object: ObjectOptions,
    /// The version this answer is about, in a bucket that keeps versions
    /// (`null` for an object written before versioning was turned on).
    pub version_id: Option<String>,
}

impl ObjectMeta {
    /// Whether the ETag is the MD5 of the whole object's bytes.
    pub fn etag_is_md5(&self) -> bool {
        self.etag_kind == EtagKind::Md5
    }
}

/// One entry of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    /// Common prefixes when a delimiter was given (each ends with the delimiter).
    pub prefixes: Vec<String>,
    /// Present when more pages follow.
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub continuation: Option<&'a str>,
    pub start_after: Option<&'a str>,
    pub max_keys: Option<u32>,
}

/// What a GET asks for beyond the key.
#[derive(Debug, Clone, Default)]
pub struct GetRequest<'a> {
    pub range: Option<Range<u64>>,
    /// Only this version: a server holding another ETag answers 412
    /// ([`StoreErrorKind::Changed`]), so a file assembled from several
    /// ranged GETs can never mix two versions of an object.
    pub if_match: Option<&'a str>,
    /// A version other than the current one (versioned buckets).
    pub version_id: Option<&'a str>,
}

impl<'a> GetRequest<'a> {
    pub fn whole() -> Self {
        GetRequest::default()
    }

    pub fn range(range: Range<u64>) -> Self {
        GetRequest {
            range: Some(range),
            ..GetRequest::default()
        }
    }

    pub fn if_match(mut self, etag: Option<&'a str>) -> Self {
        self.if_match = etag;
        self
    }

    pub fn version(mut self, version_id: Option<&'a str>) -> Self {
        self.version_id = version_id;
        self
    }
}

pub struct GetObjectOutput {
    pub meta: ObjectMeta,
    /// Bytes this response carries (the range length, or the object size).
    pub content_length: u64,
    pub body: ByteStream,
}

impl GetObjectOutput {
    /// Collect the whole body; for small objects and tests.
    pub async fn bytes(self) -> Result<Bytes, StoreError> {
        use futures::TryStreamExt;
        // The length is the server's word: reserve no more than a sane
        // amount up front, so a wild Content-Length cannot abort the process.
        let mut out = Vec::with_capacity(self.content_length.min(64 << 20) as usize);
        let mut body = self.body;
        while let Some(chunk) = body.try_next().await? {
            out.extend_from_slice(&chunk);
        }
        if out.len() as u64 != self.content_length {
            return Err(StoreError::new(
                StoreErrorKind::Truncated,
                format!(
                    "body ended after {} of {} bytes",
                    out.len(),
                    self.content_length
                ),
            ));
        }
        Ok(out.into())
    }
}

/// A request body with the digests that let the server reject it if it
/// arrives corrupted: Content-MD5 and/or a flexible checksum. The digests
/// travel with the data because the reader computed them in the same pass
/// that read the bytes.
#[derive(Debug, Clone)]
pub struct Body {
    pub data: Bytes,
    pub md5: Option<[u8; 16]>,
    /// Sent as `x-amz-checksum-*` (S3 only; other dialects ignore it).
    pub checksum: Option<Checksum>,
}

impl Body {
    /// A body with its MD5, for callers with no checksum of their own.
    pub fn new(data: impl Into<Bytes>) -> Self {
        use md5::{Digest, Md5};
        let data = data.into();
        let md5 = Some(Md5::digest(&data).into());
        Body {
            data,
            md5,
            checksum: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Server-side encryption with keys the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 / OSS's AES256.
    Aes256,
    /// SSE-KMS (OSS: KMS), with the store's default key unless one is named.
    Kms { key_id: Option<String> },
}

/// What an upload asks the store to keep with an object besides its
/// bytes, metadata and Content-Type. Names are checked against the
/// dialect before anything is sent (`cli::object_args`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectOptions {
    pub storage_class: Option<String>,
    pub encryption: Option<Encryption>,
    /// A canned ACL.
    pub acl: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    /// An HTTP date.
    pub expires: Option<String>,
    /// `k=v&k2=v2`, URL-encoded.
    pub tagging: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub metadata: Metadata,
    pub content_type: Option<String>,
    /// Storage class, encryption, ACL, caching headers, tags.
    pub object: ObjectOptions,
    /// CreateMultipartUpload only: the flexible checksum every part will
    /// carry, combined into a FULL_OBJECT checksum at completion.
    pub checksum: Option<Algorithm>,
}

impl PutOptions {
    /// What a copy of `src` must carry to be the same object elsewhere:
    /// a copy that replaces metadata drops the Content-Type and caching
    /// headers, and S3 gives every copy the STANDARD class and the
    /// bucket's encryption unless told otherwise.
    pub fn like(src: &ObjectMeta, metadata: Metadata) -> PutOptions {
        PutOptions {
            metadata,
            content_type: src.content_type.clone(),
            object: src.object.clone(),
            checksum: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub etag: String,
    pub crc64: Option<u64>,
    pub etag_kind: EtagKind,
    /// The flexible checksum the server computed and stored, when it
    /// answered with one.
    pub checksum: Option<StoredChecksum>,
}

/// A part as the server lists it (ListParts) or as an UploadPart returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub etag_kind: EtagKind,
    /// The part's flexible checksum, when the upload declared one.
    pub checksum: Option<Checksum>,
}

/// A started multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUpload {
    pub upload_id: String,
    /// The checksum algorithm the server agreed to (it echoes the one
    /// asked for); `None` from a server that ignored the request.
    pub checksum: Option<Algorithm>,
}

/// One part of a completed multipart object (`HEAD ?partNumber=N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPart {
    pub number: u32,
    /// Where the part lies in the object.
    pub range: Range<u64>,
    /// How many parts the object has.
    pub parts: u32,
    pub etag: String,
    /// The checksum the answer carried: the part's own on AWS (for a
    /// composite object), the whole object's on Garage.
    pub checksum: Option<StoredChecksum>,
}

/// Whether an endpoint stores flexible checksums: learned from its first
/// answer to a body that carried one, and remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumSupport {
    Unknown,
    Yes,
    No,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartsPage {
    pub parts: Vec<PartInfo>,
    pub next_marker: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// The part's checksum as UploadPart was given it.
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsPage {
    pub uploads: Vec<MultipartUpload>,
    /// (key-marker, upload-id-marker) for the next page.
    pub next: Option<(String, String)>,
}

/// A key the server refused to delete in a batch delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// One version of a key in a versioned bucket, as ListObjectVersions
/// lists it: a stored version, or a delete marker (which has no bytes and
/// hides the versions below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// One exact version, to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub key: String,
    pub version_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct VersionsRequest<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Where the previous page ended: (key-marker, version-id-marker).
    pub after: Option<&'a (String, String)>,
    pub max_keys: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// By key, and each key's versions newest first.
    pub versions: Vec<VersionEntry>,
    pub prefixes: Vec<String>,
    /// (next-key-marker, next-version-id-marker) when more pages follow.
    pub next: Option<(String, String)>,
}

/// What a store says of an operation on versions when it keeps none.
fn no_versions(store: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Rejected,
        format!("{store} keeps no object versions"),
    )
}

/// Every operation ferry needs from an object store, and nothing more.
///
/// Methods take the bucket explicitly so one client (one connection pool)
/// serves every bucket of an endpoint.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A short description for messages: "s3 http://127.0.0.1:3900".
    fn describe(&self) -> String;

    async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError>;
    /// `HEAD ?partNumber=N`: where part N of a multipart object lies.
    async fn head_object_part(
        &self,
        bucket: &str,
        key: &str,
        part_number: u32,
    ) -> Result<ObjectPart, StoreError>;
    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        req: &GetRequest<'_>,
    ) -> Result<GetObjectOutput, StoreError>;
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError>;
    async fn list_objects(
        &self,
        bucket: &str,
        req: &ListRequest<'_>,
    ) -> Result<ListPage, StoreError>;
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
    /// Deletes up to 1000 keys; returns the keys that could not be deleted.
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<DeleteFailure>, StoreError>;
    /// Server-side copy that gives the copy exactly `opts` (metadata,
    /// Content-Type, storage class…): [`PutOptions::like`] the source keeps
    /// them, [`copy_object_any_size`] does so for every copy ferry makes.
    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError>;

    /// HEAD of one version (`?versionId=`); a delete marker answers 405.
    async fn head_version(
        &self,
        _bucket: &str,
        _key: &str,
        _version_id: &str,
    ) -> Result<ObjectMeta, StoreError> {
        Err(no_versions(&self.describe()))
    }
    /// CopyObject from one version of the source.
    async fn copy_version(
        &self,
        _src_bucket: &str,
        _src_key: &str,
        _version_id: &str,
        _bucket: &str,
        _key: &str,
        _opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        Err(no_versions(&self.describe()))
    }
    /// One page of ListObjectVersions.
    async fn list_versions(
        &self,
        _bucket: &str,
        _req: &VersionsRequest<'_>,
    ) -> Result<VersionsPage, StoreError> {
        Err(no_versions(&self.describe()))
    }
    /// Deletes exact versions (or delete markers) for good, up to 1000 at a
    /// time; returns the ones that could not be deleted.
    async fn delete_versions(
        &self,
        _bucket: &str,
        _versions: &[VersionRef],
    ) -> Result<Vec<DeleteFailure>, StoreError> {
        Err(no_versions(&self.describe()))
    }

    /// The requests this store has sent, by kind, where it counts them.
    fn tally(&self) -> Option<&tally::RequestTally> {
        None
    }

    /// What one `copy_object` can take; [`copy_object_any_size`] goes
    /// multipart above it.
    fn copy_limits(&self) -> CopyLimits {
        CopyLimits::for_dialect(dialect::Dialect::S3)
    }

    /// Whether bodies should carry flexible checksums here. A store that
    /// never stores them (OSS, which has its CRC-64) says `No`.
    fn checksum_support(&self) -> ChecksumSupport {
        ChecksumSupport::Unknown
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<CreatedUpload, StoreError>;
    /// UploadPartCopy: one part of a multipart upload, copied server-side
    /// from a byte range of another object.
    async fn upload_part_copy(
        &self,
        src: &CopySource<'_>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartInfo, StoreError>;
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<PartInfo, StoreError>;
    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: Option<u32>,
    ) -> Result<ListPartsPage, StoreError>;
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: Option<&Checksum>,
    ) -> Result<PutResult, StoreError>;
    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError>;
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<&(String, String)>,
    ) -> Result<ListUploadsPage, StoreError>;

    async fn create_bucket(&self, bucket: &str) -> Result<(), StoreError>;
    async fn delete_bucket(&self, bucket: &str) -> Result<(), StoreError>;
}

/// Every part of an upload, following ListParts pagination to the end.
pub async fn list_all_parts(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Vec<PartInfo>, StoreError> {
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let page = store.list_parts(bucket, key, upload_id, marker).await?;
        all.extend(page.parts);
        match page.next_marker {
            // A server that repeats its marker would loop forever; treat it as the end.
            Some(m) if Some(m) != marker => marker = Some(m),
            _ => break,
        }
    }
    Ok(all)
}

/// Every object under a prefix (no delimiter), following pagination.
pub async fn list_all_objects(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ListEntry>, StoreError> {
    list_objects_beyond(store, bucket, prefix, usize::MAX).await
}

/// The pages of a listing, following continuation tokens to the end: the
/// one pagination loop every lister (sync, `ls`, `rm -r`, the mount) uses.
/// A listing that breaks the protocol is an error, never a short or
/// shuffled listing taken for the whole: a repeated continuation token,
/// keys or prefixes out of order (across pages too), or outside the
/// requested prefix. (A truncated page without a token is refused where
/// the page is parsed.)
pub fn list_pages<'a>(
    store: &'a dyn ObjectStore,
    bucket: &'a str,
    req: ListRequest<'a>,
) -> impl Stream<Item = Result<ListPage, StoreError>> + Send + 'a {
    futures::stream::try_unfold(Paging::default(), move |mut st| {
        let req = req.clone();
        async move {
            if st.done {
                return Ok(None);
            }
            let page = store
                .list_objects(
                    bucket,
                    &ListRequest {
                        continuation: st.token.as_deref(),
                        ..req.clone()
                    },
                )
                .await?;
            st.check(&req, &page).map_err(|why| {
                StoreError::new(
                    StoreErrorKind::Protocol,
                    format!("listing of {bucket}/{}: {why}", req.prefix),
                )
            })?;
            match &page.next_token {
                Some(t) if st.seen_tokens.contains(t) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Protocol,
                        format!(
                            "listing of {bucket}/{}: the server repeated continuation token {t:?}",
                            req.prefix
                        ),
                    ))
                }
                Some(t) => {
                    st.seen_tokens.insert(t.clone());
                    st.token = Some(t.clone());
                }
                None => st.done = true,
            }
            Ok(Some((page, st)))
        }
    })
}

/// Every page of ListObjectVersions under `req.prefix`, in order. A
/// marker the server repeats (a page that would not move the listing on)
/// or a version outside the prefix is an error, as in [`list_pages`].
pub fn version_pages<'a>(
    store: &'a dyn ObjectStore,
    bucket: &'a str,
    req: VersionsRequest<'a>,
) -> impl Stream<Item = Result<VersionsPage, StoreError>> + Send + 'a {
    type State = (
        Option<(String, String)>,
        std::collections::HashSet<(String, String)>,
        bool,
    );
    let start: State = (None, Default::default(), false);
    futures::stream::try_unfold(start, move |(after, mut seen, done)| {
        let req = req.clone();
        async move {
            if done {
                return Ok(None);
            }
            let page = store
                .list_versions(
                    bucket,
                    &VersionsRequest {
                        after: after.as_ref(),
                        ..req.clone()
                    },
                )
                .await?;
            check_version_page(bucket, req.prefix, &page)?;
            match page.next.clone() {
                Some(next) if !seen.insert(next.clone()) => Err(StoreError::new(
                    StoreErrorKind::Protocol,
                    format!(
                        "version listing of {bucket}/{}: the server repeated marker {next:?}",
                        req.prefix
                    ),
                )),
                Some(next) => Ok(Some((page, (Some(next), seen, false)))),
                None => Ok(Some((page, (None, seen, true)))),
            }
        }
    })
}

/// A version listing that strays outside its prefix is refused before
/// anything acts on it (a delete of everything "under" a prefix must
/// never reach past it).
pub fn check_version_page(
    bucket: &str,
    prefix: &str,
    page: &VersionsPage,
) -> Result<(), StoreError> {
    match page.versions.iter().find(|v| !v.key.starts_with(prefix)) {
        Some(v) => Err(StoreError::new(
            StoreErrorKind::Protocol,
            format!(
                "version listing of {bucket}/{prefix}: {:?} is outside the prefix",
                v.key
            ),
        )),
        None => Ok(()),
    }
}

/// Where a listing stands between pages.
#[derive(Default)]
struct Paging {
    token: Option<String>,
    seen_tokens: std::collections::HashSet<String>,
    done: bool,
    last_key: Option<String>,
    last_prefix: Option<String>,
}

impl Paging {
    /// Checks one page against the last one. Pairs within the page are
    /// compared in place; only each page's last name is kept (a listing of
    /// a million keys allocates per page, not per key).
    fn check(&mut self, req: &ListRequest<'_>, page: &ListPage) -> Result<(), String> {
        fn ordered<'k>(
            last: &mut Option<String>,
            names: impl Iterator<Item = &'k str>,
            prefix: &str,
            what: &str,
        ) -> Result<(), String> {
            let mut prev: Option<&str> = last.as_deref();
            let mut newest: Option<&str> = None;
            for n in names {
                if !n.starts_with(prefix) {
                    return Err(format!("{what} {n:?} lies outside the requested prefix"));
                }
                if let Some(p) = newest.or(prev) {
                    if n <= p {
                        return Err(format!(
                            "{what} {n:?} arrived after {p:?}: the listing is not in key order"
                        ));
                    }
                }
                newest = Some(n);
                prev = None;
            }
            if let Some(n) = newest {
                *last = Some(n.to_string());
            }
            Ok(())
        }
        ordered(
            &mut self.last_key,
            page.objects.iter().map(|o| o.key.as_str()),
            req.prefix,
            "key",
        )?;
        ordered(
            &mut self.last_prefix,
            page.prefixes.iter().map(String::as_str),
            req.prefix,
            "prefix",
        )
    }
}

/// As [`list_all_objects`], but stops paging once more than `limit`
/// objects are in hand: a caller that refuses prefixes over a size learns
/// so without listing all of a large one.
pub async fn list_objects_beyond(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    limit: usize,
) -> Result<Vec<ListEntry>, StoreError> {
    use futures::TryStreamExt;
    let mut all = Vec::new();
    let pages = list_pages(
        store,
        bucket,
        ListRequest {
            prefix,
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.try_next().await? {
        all.extend(page.objects);
        if all.len() > limit {
            break;
        }
    }
    Ok(all)
}

/// HEAD, with "no such object" as `None` rather than an error (a missing
/// bucket stays an error).
/// The HEAD of the current object, or of `version_id` when one is named.
pub async fn head_at(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<ObjectMeta, StoreError> {
    match version_id {
        Some(v) => store.head_version(bucket, key, v).await,
        None => store.head_object(bucket, key).await,
    }
}

pub async fn head_if_exists(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectMeta>, StoreError> {
    match store.head_object(bucket, key).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where each part of a composite object lies, from `HEAD ?partNumber=N`;
/// the parts must tile the object exactly.
pub async fn part_bounds(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    parts: u32,
    meta: &ObjectMeta,
) -> Result<Vec<ObjectPart>, StoreError> {
    use futures::{StreamExt, TryStreamExt};
    let mut bounds: Vec<ObjectPart> = futures::stream::iter(1..=parts)
        .map(|n| store.head_object_part(bucket, key, n))
        .buffer_unordered(8)
        .try_collect()
        .await?;
    bounds.sort_by_key(|p| p.number);
    let mut at = 0;
    for p in &bounds {
        if p.range.start != at || p.etag != meta.etag {
            return Err(StoreError::new(
                StoreErrorKind::Changed,
                format!(
                    "{bucket}/{key}: part {} is not where the object's parts should be, or belongs to another version",
                    p.number
                ),
            ));
        }
        at = p.range.end;
    }
    if at != meta.size {
        return Err(StoreError::new(
            StoreErrorKind::Protocol,
            format!(
                "{bucket}/{key}: its {parts} parts cover {at} of {} bytes",
                meta.size
            ),
        ));
    }
    Ok(bounds)
}

#[cfg(test)]
mod etag_tests {
    use super::EtagKind;

    #[test]
    fn etag_forms() {
        assert_eq!(
            EtagKind::from_form("d41d8cd98f00b204e9800998ecf8427e"),
            EtagKind::Md5
        );
        assert_eq!(
            EtagKind::from_form("d41d8cd98f00b204e9800998ecf8427e-12"),
            EtagKind::PartsMd5
        );
        for opaque in [
            "",
            "abc",
            "d41d8cd98f00b204e9800998ecf8427e-",
            "x41d8cd98f00b204e9800998ecf8427e",
        ] {
            assert_eq!(EtagKind::from_form(opaque), EtagKind::Opaque, "{opaque}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(keys: &[&str], prefixes: &[&str]) -> ListPage {
        ListPage {
            objects: keys
                .iter()
                .map(|k| ListEntry {
                    key: k.to_string(),
                    size: 0,
                    etag: String::new(),
                    last_modified: OffsetDateTime::UNIX_EPOCH,
                })
                .collect(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            next_token: None,
        }
    }

    #[test]
    fn listings_that_break_the_protocol_are_refused() {
        let req = ListRequest {
            prefix: "p/",
            ..Default::default()
        };
        let mut st = Paging::default();
        assert!(st.check(&req, &page(&["p/a", "p/b"], &["p/d/"])).is_ok());
        // Order holds across pages.
        assert!(st.check(&req, &page(&["p/c"], &["p/e/"])).is_ok());
        let err = st.check(&req, &page(&["p/b2"], &[])).unwrap_err();
        assert!(err.contains("not in key order"), "{err}");
        let mut st = Paging::default();
        let err = st.check(&req, &page(&["q/x"], &[])).unwrap_err();
        assert!(err.contains("outside the requested prefix"), "{err}");
        let mut st = Paging::default();
        let err = st.check(&req, &page(&[], &["p/b/", "p/a/"])).unwrap_err();
        assert!(err.contains("not in key order"), "{err}");
    }

    #[tokio::test]
    async fn a_repeated_continuation_token_is_an_error() {
        use futures::TryStreamExt;
        let mut m = memory::MemoryStore::new();
        m.max_keys = 1;
        m.create_bucket("b").await.unwrap();
        for k in ["a", "b", "c"] {
            m.put_object("b", k, Body::new(&b"x"[..]), &PutOptions::default())
                .await
                .unwrap();
        }
        // A well-behaved store pages to the end.
        let all: Vec<ListPage> = list_pages(&m, "b", ListRequest::default())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        // One that sends the same token twice is caught, not followed.
        let f = faulty::FaultyStore::new(std::sync::Arc::new(m));
        f.inject(
            faulty::Op::List,
            faulty::When::Always,
            faulty::Fault::RepeatToken,
        );
        let err = list_pages(&f, "b", ListRequest::default())
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("repeated continuation token"),
            "{err}"
        );
    }
}
