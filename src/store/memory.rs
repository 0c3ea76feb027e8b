//! An in-memory [`ObjectStore`] with S3's semantics (listing order,
//! delimiters, pagination, multipart rules), for unit tests that must run
//! without a network. Integration tests run the same bodies against a real
//! server; this store never stands in for one there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use time::OffsetDateTime;

use super::{
    Body, CompletedPart, CopyLimits, CopySource, CreatedUpload, DeleteFailure, EtagKind,
    GetObjectOutput, GetRequest, ListEntry, ListPage, ListPartsPage, ListRequest, ListUploadsPage,
    Metadata, MultipartUpload, ObjectMeta, ObjectOptions, ObjectPart, ObjectStore, PartInfo,
    PutOptions, PutResult, StoreError, StoreErrorKind,
};
use crate::checksum::flexible::{crc_combine, Hasher};
use crate::checksum::{crc64, multipart_etag, Algorithm, Checksum, ChecksumType, StoredChecksum};

#[derive(Clone)]
struct Object {
    data: Bytes,
    etag: String,
    last_modified: OffsetDateTime,
    metadata: Metadata,
    checksum: Option<StoredChecksum>,
    /// Part sizes of a multipart object, for `HEAD ?partNumber=N`.
    parts: Vec<u64>,
    content_type: Option<String>,
    object: ObjectOptions,
}

/// One uploaded part: its bytes, MD5 and checksum in the upload's algorithm.
type StoredPart = (Bytes, [u8; 16], Option<Checksum>);

struct Upload {
    key: String,
    metadata: Metadata,
    content_type: Option<String>,
    object: ObjectOptions,
    initiated: OffsetDateTime,
    checksum: Option<Algorithm>,
    parts: BTreeMap<u32, StoredPart>,
}

fn digest_of(a: Algorithm, data: &[u8]) -> Checksum {
    let mut h = Hasher::new(a);
    h.update(data);
    h.finish()
}

fn bad_digest(what: &str) -> StoreError {
    let mut e = StoreError::new(StoreErrorKind::Integrity, what.to_string());
    e.code = Some("BadDigest".into());
    e.status = Some(400);
    e
}

#[derive(Default)]
struct BucketState {
    objects: BTreeMap<String, Object>,
    uploads: BTreeMap<String, Upload>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, BucketState>,
    next_upload: u64,
}

pub struct MemoryStore {
    state: Mutex<State>,
    /// S3 requires 5 MiB for every part but the last; tests shrink it to
    /// exercise multipart with small data.
    pub min_part_size: u64,
    /// Page sizes, shrinkable so tests cover pagination cheaply.
    pub max_keys: u32,
    pub max_parts: u32,
    /// Whether to report `x-oss-hash-crc64ecma` like OSS does.
    pub report_crc64: bool,
    /// ETags as SSE-KMS gives them: hex, of the right length, and not the
    /// MD5 of anything the client can compute.
    pub kms_etags: bool,
    /// Largest object CopyObject takes (S3: 5 GiB); tests shrink it.
    pub max_single_copy: u64,
    /// Flexible checksums as AWS keeps them: checked on arrival, stored
    /// (CRC-64/NVME when the client sent none), returned on HEAD/GET.
    /// Off, the store ignores them like an older S3-compatible server.
    pub checksums: bool,
    bytes_received: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            min_part_size: 5 * 1024 * 1024,
            max_keys: 1000,
            max_parts: 1000,
            report_crc64: false,
            kms_etags: false,
            max_single_copy: 5 << 30,
            checksums: true,
            bytes_received: AtomicU64::new(0),
        }
    }
}

fn not_found(kind: StoreErrorKind, what: String) -> StoreError {
    let code = match kind {
        StoreErrorKind::NoSuchBucket => "NoSuchBucket",
        StoreErrorKind::NoSuchUpload => "NoSuchUpload",
        _ => "NoSuchKey",
    };
    let mut e = StoreError::new(kind, what);
    e.code = Some(code.into());
    e.status = Some(404);
    e
}

/// A 412 as S3 gives it (classified as the HTTP store classifies it).
fn precondition_failed() -> StoreError {
    let mut e = StoreError::new(
        StoreError::classify(412, Some("PreconditionFailed")),
        "At least one of the pre-conditions you specified did not hold",
    );
    e.code = Some("PreconditionFailed".into());
    e.status = Some(412);
    e
}

fn md5_hex(data: &[u8]) -> ([u8; 16], String) {
    let d: [u8; 16] = Md5::digest(data).into();
    (d, hex::encode(d))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with one bucket already created.
    pub fn with_bucket(bucket: &str) -> Arc<Self> {
        let s = Self::default();
        s.state
            .lock()
            .unwrap()
            .buckets
            .insert(bucket.into(), BucketState::default());
        Arc::new(s)
    }

    /// The ETag of data with this MD5 (or of parts with these MD5s).
    fn etag_of(&self, md5s: &[[u8; 16]], multipart: bool) -> String {
        let plain = if multipart {
            multipart_etag(md5s)
        } else {
            hex::encode(md5s[0])
        };
        if !self.kms_etags {
            return plain;
        }
        let (_, opaque) = md5_hex(format!("kms:{plain}").as_bytes());
        if multipart {
            format!("{opaque}-{}", md5s.len())
        } else {
            opaque
        }
    }

    fn etag_kind(&self, etag: &str) -> EtagKind {
        if self.kms_etags {
            EtagKind::Opaque
        } else {
            EtagKind::from_form(etag)
        }
    }

    /// Stores one part of an open upload (sent or copied).
    fn add_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
        sent: Option<&Checksum>,
    ) -> Result<PartInfo, StoreError> {
        let md5 = md5_hex(&data).0;
        let etag = self.etag_of(&[md5], false);
        self.with_bucket_state(bucket, |b| {
            let u = b
                .uploads
                .get_mut(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| {
                    not_found(StoreErrorKind::NoSuchUpload, format!("upload {upload_id}"))
                })?;
            let size = data.len() as u64;
            let checksum = u.checksum.map(|a| digest_of(a, &data));
            if let (Some(mine), Some(theirs)) = (&checksum, sent) {
                if mine.algorithm == theirs.algorithm && mine != theirs {
                    return Err(bad_digest("the part's checksum does not match its body"));
                }
            }
            u.parts.insert(part_number, (data, md5, checksum.clone()));
            Ok(PartInfo {
                part_number,
                etag_kind: self.etag_kind(&etag),
                etag,
                size,
                checksum,
            })
        })
    }

    /// Flips one stored byte and leaves ETag and checksum as they were:
    /// bit rot at the server, which only a whole-object check catches.
    pub fn corrupt(&self, bucket: &str, key: &str, offset: usize) {
        let _ = self.with_bucket_state(bucket, |b| {
            if let Some(o) = b.objects.get_mut(key) {
                let mut d = o.data.to_vec();
                if let Some(x) = d.get_mut(offset) {
                    *x ^= 0x01;
                }
                o.data = d.into();
            }
            Ok(())
        });
    }

    /// Request-body bytes received by PUT and UploadPart, for resume tests.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    fn with_bucket_state<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut BucketState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut st = self.state.lock().unwrap();
        match st.buckets.get_mut(bucket) {
            Some(b) => f(b),
            None => Err(not_found(
                StoreErrorKind::NoSuchBucket,
                format!("bucket {bucket} does not exist"),
            )),
        }
    }

    fn meta(&self, key: &str, o: &Object) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: o.data.len() as u64,
            etag: o.etag.clone(),
            last_modified: o.last_modified,
            metadata: o.metadata.clone(),
            crc64: self.report_crc64.then(|| crc64(&o.data)),
            etag_kind: self.etag_kind(&o.etag),
            checksum: o.checksum.clone(),
            content_type: o.content_type.clone(),
            object: o.object.clone(),
            version_id: None,
        }
    }

    /// Content-MD5 and the flexible checksum, as S3 checks a body.
    fn check_body(&self, body: &Body) -> Result<(), StoreError> {
        if let Some(md5) = body.md5 {
            if md5_hex(&body.data).0 != md5 {
                return Err(bad_digest("Content-MD5 does not match"));
            }
        }
        if let (Some(c), true) = (&body.checksum, self.checksums) {
            if digest_of(c.algorithm, &body.data) != *c {
                return Err(bad_digest("the checksum does not match the body"));
            }
        }
        Ok(())
    }

    /// What a single PUT stores: the checksum sent, or CRC-64/NVME of
    /// the server's own, as AWS has since 2024.
    fn put_checksum(&self, body: &Body) -> Option<StoredChecksum> {
        self.checksums.then(|| StoredChecksum {
            checksum: body
                .checksum
                .clone()
                .unwrap_or_else(|| digest_of(Algorithm::Crc64Nvme, &body.data)),
            kind: ChecksumType::FullObject,
        })
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        self.with_bucket_state(bucket, |b| match b.objects.get(key) {
            Some(o) => Ok(self.meta(key, o)),
            None => Err(not_found(
                StoreErrorKind::NotFound,
                format!("{key} not found"),
            )),
        })
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        get: &GetRequest<'_>,
    ) -> Result<GetObjectOutput, StoreError> {
        let (meta, data) = self.with_bucket_state(bucket, |b| match b.objects.get(key) {
            Some(o) => Ok((self.meta(key, o), o.data.clone())),
            None => Err(not_found(
                StoreErrorKind::NotFound,
                format!("{key} not found"),
            )),
        })?;
        if get.if_match.is_some_and(|want| want != meta.etag) {
            return Err(precondition_failed());
        }
        let slice = match get.range.clone() {
            Some(r) => {
                if r.start >= data.len() as u64 || r.start >= r.end {
                    let mut e = StoreError::new(StoreErrorKind::Rejected, "range not satisfiable");
                    e.code = Some("InvalidRange".into());
                    return Err(e);
                }
                data.slice(r.start as usize..(r.end as usize).min(data.len()))
            }
            None => data,
        };
        let content_length = slice.len() as u64;
        // Several chunks, so consumers see a body arrive in pieces as over a network.
        let chunks: Vec<Result<Bytes, StoreError>> = (0..slice.len())
            .step_by(64 * 1024)
            .map(|i| Ok(slice.slice(i..(i + 64 * 1024).min(slice.len()))))
            .collect();
        Ok(GetObjectOutput {
            meta,
            content_length,
            body: Box::pin(futures::stream::iter(chunks)),
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.check_body(&body)?;
        self.bytes_received.fetch_add(body.len(), Ordering::Relaxed);
        let etag = self.etag_of(&[md5_hex(&body.data).0], false);
        let etag_kind = self.etag_kind(&etag);
        let crc = self.report_crc64.then(|| crc64(&body.data));
        let checksum = self.put_checksum(&body);
        self.with_bucket_state(bucket, |b| {
            b.objects.insert(
                key.to_string(),
                Object {
                    data: body.data,
                    etag: etag.clone(),
                    last_modified: now(),
                    metadata: opts.metadata.clone(),
                    checksum: checksum.clone(),
                    parts: Vec::new(),
                    content_type: opts.content_type.clone(),
                    object: opts.object.clone(),
                },
            );
            Ok(PutResult {
                etag,
                crc64: crc,
                etag_kind,
                checksum,
            })
        })
    }

    async fn list_objects(
        &self,
        bucket: &str,
        req: &ListRequest<'_>,
    ) -> Result<ListPage, StoreError> {
        let max = req
            .max_keys
            .unwrap_or(self.max_keys)
            .min(self.max_keys)
            .max(1) as usize;
        self.with_bucket_state(bucket, |b| {
            let mut page = ListPage::default();
            let after = req.continuation.or(req.start_after);
            let mut count = 0;
            let mut last: Option<String> = None;
            for (key, o) in b.objects.range(req.prefix.to_string()..) {
                if !key.starts_with(req.prefix) {
                    break;
                }
                if let Some(a) = after {
                    // A token naming a common prefix skips everything under it.
                    if key.as_str() <= a
                        || (a.ends_with(req.delimiter.unwrap_or("\0")) && key.starts_with(a))
                    {
                        continue;
                    }
                }
                let rest = &key[req.prefix.len()..];
                let item = match req.delimiter.and_then(|d| rest.find(d).map(|i| (i, d))) {
                    Some((i, d)) => {
                        let p = format!("{}{}", req.prefix, &rest[..i + d.len()]);
                        if page.prefixes.last() == Some(&p) {
                            continue;
                        }
                        if count == max {
                            page.next_token = last.clone();
                            break;
                        }
                        page.prefixes.push(p.clone());
                        p
                    }
                    None => {
                        if count == max {
                            page.next_token = last.clone();
                            break;
                        }
                        page.objects.push(ListEntry {
                            key: key.clone(),
                            size: o.data.len() as u64,
                            etag: o.etag.clone(),
                            last_modified: o.last_modified,
                        });
                        key.clone()
                    }
                };
                count += 1;
                last = Some(item);
            }
            Ok(page)
        })
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.with_bucket_state(bucket, |b| {
            b.objects.remove(key);
            Ok(())
        })
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<DeleteFailure>, StoreError> {
        self.with_bucket_state(bucket, |b| {
            for k in keys {
                b.objects.remove(k);
            }
            Ok(Vec::new())
        })
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let src = self.with_bucket_state(src_bucket, |b| {
            b.objects
                .get(src_key)
                .cloned()
                .ok_or_else(|| not_found(StoreErrorKind::NotFound, format!("{src_key} not found")))
        })?;
        if src.data.len() as u64 > self.max_single_copy {
            let mut e = StoreError::new(
                StoreErrorKind::Rejected,
                format!(
                    "The specified copy source is larger than the maximum allowable size for a copy source: {}",
                    self.max_single_copy
                ),
            );
            e.code = Some("InvalidRequest".into());
            return Err(e);
        }
        let crc = self.report_crc64.then(|| crc64(&src.data));
        self.with_bucket_state(bucket, |b| {
            let mut o = src;
            o.metadata = opts.metadata.clone();
            o.content_type = opts.content_type.clone();
            o.object = opts.object.clone();
            o.last_modified = now();
            let etag = o.etag.clone();
            let checksum = o.checksum.clone();
            b.objects.insert(key.to_string(), o);
            Ok(PutResult {
                etag_kind: self.etag_kind(&etag),
                etag,
                crc64: crc,
                checksum,
            })
        })
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<CreatedUpload, StoreError> {
        let checksum = opts.checksum.filter(|_| self.checksums);
        let id = {
            let mut st = self.state.lock().unwrap();
            st.next_upload += 1;
            format!("upload-{}", st.next_upload)
        };
        self.with_bucket_state(bucket, |b| {
            b.uploads.insert(
                id.clone(),
                Upload {
                    key: key.to_string(),
                    metadata: opts.metadata.clone(),
                    content_type: opts.content_type.clone(),
                    object: opts.object.clone(),
                    initiated: now(),
                    checksum,
                    parts: BTreeMap::new(),
                },
            );
            Ok(CreatedUpload {
                upload_id: id,
                checksum,
            })
        })
    }

    fn checksum_support(&self) -> super::ChecksumSupport {
        if self.checksums {
            super::ChecksumSupport::Yes
        } else {
            super::ChecksumSupport::No
        }
    }

    async fn head_object_part(
        &self,
        bucket: &str,
        key: &str,
        part_number: u32,
    ) -> Result<ObjectPart, StoreError> {
        let o = self.with_bucket_state(bucket, |b| {
            b.objects
                .get(key)
                .cloned()
                .ok_or_else(|| not_found(StoreErrorKind::NotFound, format!("{key} not found")))
        })?;
        let sizes = if o.parts.is_empty() {
            vec![o.data.len() as u64]
        } else {
            o.parts.clone()
        };
        let i = part_number as usize;
        if i == 0 || i > sizes.len() {
            let mut e = StoreError::new(StoreErrorKind::Rejected, "no such part");
            e.code = Some("InvalidPart".into());
            return Err(e);
        }
        let start: u64 = sizes[..i - 1].iter().sum();
        let range = start..start + sizes[i - 1];
        // As AWS answers for a composite object: the part's own checksum.
        let checksum = match &o.checksum {
            Some(s) if matches!(s.kind, ChecksumType::Composite { .. }) => Some(StoredChecksum {
                checksum: digest_of(
                    s.checksum.algorithm,
                    &o.data[range.start as usize..range.end as usize],
                ),
                kind: ChecksumType::FullObject,
            }),
            other => other.clone(),
        };
        Ok(ObjectPart {
            number: part_number,
            range,
            parts: sizes.len() as u32,
            etag: o.etag.clone(),
            checksum,
        })
    }

    fn copy_limits(&self) -> CopyLimits {
        CopyLimits {
            max_single: self.max_single_copy,
            ..CopyLimits::for_dialect(super::dialect::Dialect::S3)
        }
    }

    async fn upload_part_copy(
        &self,
        src: &CopySource<'_>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartInfo, StoreError> {
        let o = self.with_bucket_state(src.bucket, |b| {
            b.objects.get(src.key).cloned().ok_or_else(|| {
                not_found(StoreErrorKind::NotFound, format!("{} not found", src.key))
            })
        })?;
        if src.if_match.is_some_and(|e| e != o.etag) {
            return Err(precondition_failed());
        }
        let r = &src.range;
        if r.start >= r.end || r.end > o.data.len() as u64 {
            let mut e = StoreError::new(StoreErrorKind::Rejected, "range not satisfiable");
            e.code = Some("InvalidRange".into());
            return Err(e);
        }
        let data = o.data.slice(r.start as usize..r.end as usize);
        self.add_part(bucket, key, upload_id, part_number, data, None)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<PartInfo, StoreError> {
        self.check_body(&body)?;
        if !(1..=10_000).contains(&part_number) {
            return Err(StoreError::new(
                StoreErrorKind::Rejected,
                "part number out of range",
            ));
        }
        self.bytes_received.fetch_add(body.len(), Ordering::Relaxed);
        self.add_part(
            bucket,
            key,
            upload_id,
            part_number,
            body.data,
            body.checksum.as_ref(),
        )
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: Option<u32>,
    ) -> Result<ListPartsPage, StoreError> {
        let max = self.max_parts as usize;
        self.with_bucket_state(bucket, |b| {
            let u = b
                .uploads
                .get(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| {
                    not_found(StoreErrorKind::NoSuchUpload, format!("upload {upload_id}"))
                })?;
            let all: Vec<PartInfo> = u
                .parts
                .range(marker.map(|m| m + 1).unwrap_or(0)..)
                .map(|(n, (data, md5, checksum))| {
                    let etag = self.etag_of(&[*md5], false);
                    PartInfo {
                        part_number: *n,
                        etag_kind: self.etag_kind(&etag),
                        etag,
                        size: data.len() as u64,
                        checksum: checksum.clone(),
                    }
                })
                .collect();
            let truncated = all.len() > max;
            let parts: Vec<PartInfo> = all.into_iter().take(max).collect();
            let next_marker = truncated
                .then(|| parts.last().map(|p| p.part_number))
                .flatten();
            Ok(ListPartsPage { parts, next_marker })
        })
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        full: Option<&Checksum>,
    ) -> Result<PutResult, StoreError> {
        let min = self.min_part_size;
        let report = self.report_crc64;
        self.with_bucket_state(bucket, |b| {
            let u = b
                .uploads
                .get(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| {
                    not_found(StoreErrorKind::NoSuchUpload, format!("upload {upload_id}"))
                })?;
            let invalid = |m: &str| {
                let mut e = StoreError::new(StoreErrorKind::Rejected, m.to_string());
                e.code = Some("InvalidPart".into());
                e
            };
            if parts.is_empty()
                || parts
                    .windows(2)
                    .any(|w| w[0].part_number >= w[1].part_number)
            {
                return Err(invalid("parts must be ascending and non-empty"));
            }
            let mut data = Vec::new();
            let mut md5s = Vec::new();
            let mut sizes = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                let (bytes, md5, checksum) = u.parts.get(&p.part_number).ok_or_else(|| {
                    invalid(&format!("part {} was never uploaded", p.part_number))
                })?;
                if self.etag_of(&[*md5], false) != p.etag {
                    return Err(invalid(&format!("part {} ETag mismatch", p.part_number)));
                }
                if p.checksum.is_some() && p.checksum != *checksum {
                    return Err(invalid(&format!(
                        "part {} checksum mismatch",
                        p.part_number
                    )));
                }
                sizes.push(bytes.len() as u64);
                if i + 1 < parts.len() && (bytes.len() as u64) < min {
                    let mut e = invalid("part too small");
                    e.code = Some("EntityTooSmall".into());
                    return Err(e);
                }
                data.extend_from_slice(bytes);
                md5s.push(*md5);
            }
            let etag = self.etag_of(&md5s, true);
            // FULL_OBJECT: the parts' CRCs combined, which must be the
            // value the client says the whole object has.
            let checksum = match u.checksum {
                Some(a) => {
                    let mut acc = None;
                    for p in parts {
                        let (bytes, _, c) = &u.parts[&p.part_number];
                        let c = c.as_ref().and_then(Checksum::crc_value).unwrap_or(0);
                        acc = Some(match acc {
                            None => c,
                            Some(prev) => crc_combine(a, prev, c, bytes.len() as u64).unwrap_or(0),
                        });
                    }
                    Some(Checksum::crc(a, acc.unwrap_or(0)))
                }
                None => None,
            };
            if let (Some(mine), Some(theirs)) = (&checksum, full) {
                if mine != theirs {
                    return Err(bad_digest(
                        "the full-object checksum does not match the parts",
                    ));
                }
            }
            let checksum = checksum.map(|checksum| StoredChecksum {
                checksum,
                kind: ChecksumType::FullObject,
            });
            let (metadata, content_type, object) =
                (u.metadata.clone(), u.content_type.clone(), u.object.clone());
            b.uploads.remove(upload_id);
            let crc = report.then(|| crc64(&data));
            b.objects.insert(
                key.to_string(),
                Object {
                    data: data.into(),
                    etag: etag.clone(),
                    last_modified: now(),
                    metadata,
                    checksum: checksum.clone(),
                    parts: sizes,
                    content_type,
                    object,
                },
            );
            Ok(PutResult {
                etag_kind: self.etag_kind(&etag),
                etag,
                crc64: crc,
                checksum,
            })
        })
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        _key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.with_bucket_state(bucket, |b| match b.uploads.remove(upload_id) {
            Some(_) => Ok(()),
            None => Err(not_found(
                StoreErrorKind::NoSuchUpload,
                format!("upload {upload_id}"),
            )),
        })
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        _next: Option<&(String, String)>,
    ) -> Result<ListUploadsPage, StoreError> {
        self.with_bucket_state(bucket, |b| {
            let mut uploads: Vec<MultipartUpload> = b
                .uploads
                .iter()
                .filter(|(_, u)| u.key.starts_with(prefix))
                .map(|(id, u)| MultipartUpload {
                    key: u.key.clone(),
                    upload_id: id.clone(),
                    initiated: u.initiated,
                })
                .collect();
            uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
            Ok(ListUploadsPage {
                uploads,
                next: None,
            })
        })
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap();
        if st.buckets.contains_key(bucket) {
            let mut e = StoreError::new(StoreErrorKind::Rejected, "bucket already exists");
            e.code = Some("BucketAlreadyOwnedByYou".into());
            return Err(e);
        }
        st.buckets
            .insert(bucket.to_string(), BucketState::default());
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap();
        match st.buckets.get(bucket) {
            None => Err(not_found(
                StoreErrorKind::NoSuchBucket,
                format!("bucket {bucket}"),
            )),
            Some(b) if !b.objects.is_empty() => {
                let mut e = StoreError::new(StoreErrorKind::Rejected, "bucket is not empty");
                e.code = Some("BucketNotEmpty".into());
                Err(e)
            }
            Some(_) => {
                st.buckets.remove(bucket);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{list_all_objects, list_all_parts};

    #[tokio::test]
    async fn listing_pages_and_delimiters() {
        let s = MemoryStore {
            max_keys: 2,
            ..Default::default()
        };
        s.create_bucket("b").await.unwrap();
        for k in ["a/1", "a/2", "a/d/x", "a/d/y", "a/e/z", "b/1"] {
            s.put_object("b", k, Body::new(&b"x"[..]), &PutOptions::default())
                .await
                .unwrap();
        }
        let all = list_all_objects(&s, "b", "a/").await.unwrap();
        assert_eq!(all.len(), 5);
        let p1 = s
            .list_objects(
                "b",
                &ListRequest {
                    prefix: "a/",
                    delimiter: Some("/"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(p1.objects.len(), 2);
        let p2 = s
            .list_objects(
                "b",
                &ListRequest {
                    prefix: "a/",
                    delimiter: Some("/"),
                    continuation: p1.next_token.as_deref(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(p2.prefixes, vec!["a/d/".to_string(), "a/e/".to_string()]);
        assert!(p2.next_token.is_none());
    }

    #[tokio::test]
    async fn multipart_rules() {
        let s = MemoryStore {
            min_part_size: 4,
            max_parts: 1,
            ..Default::default()
        };
        s.create_bucket("b").await.unwrap();
        let id = s
            .create_multipart_upload("b", "k", &PutOptions::default())
            .await
            .unwrap()
            .upload_id;
        let p1 = s
            .upload_part("b", "k", &id, 1, Body::new(&b"abcd"[..]))
            .await
            .unwrap();
        let p2 = s
            .upload_part("b", "k", &id, 2, Body::new(&b"ef"[..]))
            .await
            .unwrap();
        assert_eq!(list_all_parts(&s, "b", "k", &id).await.unwrap().len(), 2);
        let done = s
            .complete_multipart_upload(
                "b",
                "k",
                &id,
                &[
                    CompletedPart {
                        part_number: 1,
                        etag: p1.etag,
                        checksum: None,
                    },
                    CompletedPart {
                        part_number: 2,
                        etag: p2.etag,
                        checksum: None,
                    },
                ],
                None,
            )
            .await
            .unwrap();
        assert!(done.etag.ends_with("-2"));
        let got = s
            .get_object("b", "k", &GetRequest::range(2..5))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"cde");
        let err = s.list_parts("b", "k", &id, None).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::NoSuchUpload);
    }

    #[tokio::test]
    async fn rejects_bad_digest() {
        let s = MemoryStore::with_bucket("b");
        let mut body = Body::new(&b"abc"[..]);
        body.md5.as_mut().unwrap()[0] ^= 1;
        let err = s
            .put_object("b", "k", body, &PutOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("BadDigest"));
        assert_eq!(err.kind, StoreErrorKind::Integrity);
        // A checksum that does not match is refused the same way.
        let mut body = Body::new(&b"abc"[..]);
        body.checksum = Some(crate::checksum::Checksum::crc(Algorithm::Crc32, 1));
        let err = s
            .put_object("b", "k", body, &PutOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Integrity);
        assert!(s.head_object("b", "k").await.is_err());
    }
}
