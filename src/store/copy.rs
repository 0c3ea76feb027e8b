//! Server-side copy of an object of any size: one CopyObject up to the
//! dialect's limit (5 GiB on S3, 1 GiB on OSS), a multipart copy
//! (UploadPartCopy per range) above it, with the same metadata rules:
//! `None` keeps the source's user metadata, `Some` replaces it.

use std::ops::Range;

use futures::{StreamExt, TryStreamExt};

use super::dialect::Dialect;
use super::{
    CompletedPart, Metadata, ObjectMeta, ObjectStore, PartInfo, PutOptions, PutResult, StoreError,
    StoreErrorKind,
};

const MIB: u64 = 1024 * 1024;
/// Parts uploads use by default; copies size theirs the same way.
pub const DEFAULT_COPY_PART: u64 = 8 * MIB;
const MAX_PARTS: u64 = 10_000;
const MAX_PART: u64 = 5 << 30;
/// Part copies in flight for one object.
const PARALLEL: usize = 4;

/// When a copy must go multipart, and in what pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyLimits {
    /// Largest object one CopyObject copies.
    pub max_single: u64,
    /// Part size above it, grown so a copy stays within 10,000 parts.
    pub part_size: u64,
}

impl CopyLimits {
    pub fn for_dialect(d: Dialect) -> Self {
        CopyLimits {
            max_single: d.max_single_copy(),
            part_size: DEFAULT_COPY_PART,
        }
    }
}

/// The source of one UploadPartCopy.
#[derive(Debug, Clone)]
pub struct CopySource<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub range: Range<u64>,
    /// The source's ETag: the server refuses the part (412) if the object
    /// changed since, so a copy never mixes two versions.
    pub if_match: Option<&'a str>,
    /// One version of the source rather than the current one.
    pub version_id: Option<&'a str>,
}

/// Pure: the byte ranges of a multipart copy of `size` bytes.
pub fn copy_ranges(size: u64, part_size: u64) -> Result<Vec<Range<u64>>, StoreError> {
    let part = part_size.max(1);
    let part = if size.div_ceil(part) > MAX_PARTS {
        size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB
    } else {
        part
    };
    if part > MAX_PART {
        return Err(StoreError::new(
            StoreErrorKind::Rejected,
            format!("{size} bytes is more than 10,000 parts of 5 GiB can copy"),
        ));
    }
    Ok((0..size.div_ceil(part))
        .map(|i| i * part..((i + 1) * part).min(size))
        .collect())
}

/// Copies `src_bucket/src_key` to `bucket/key` server-side, whatever its
/// size, as the same object: its metadata (or `metadata` in its place),
/// Content-Type, caching headers, storage class and encryption carry over
/// ([`PutOptions::like`]), and the copy is of the version the HEAD saw.
pub async fn copy_object_any_size(
    store: &dyn ObjectStore,
    src_bucket: &str,
    src_key: &str,
    bucket: &str,
    key: &str,
    metadata: Option<&Metadata>,
    limits: &CopyLimits,
) -> Result<PutResult, StoreError> {
    copy_version_any_size(
        store, src_bucket, src_key, None, bucket, key, metadata, limits,
    )
    .await
}

/// [`copy_object_any_size`] from one version of the source (versioned
/// buckets): how an older version is restored, in place or elsewhere.
#[allow(clippy::too_many_arguments)]
pub async fn copy_version_any_size(
    store: &dyn ObjectStore,
    src_bucket: &str,
    src_key: &str,
    version_id: Option<&str>,
    bucket: &str,
    key: &str,
    metadata: Option<&Metadata>,
    limits: &CopyLimits,
) -> Result<PutResult, StoreError> {
    let src = super::head_at(store, src_bucket, src_key, version_id).await?;
    copy_known(
        store, src_bucket, &src, version_id, bucket, key, metadata, limits,
    )
    .await
}

/// [`copy_version_any_size`] of the object a HEAD already described: the
/// copy is of that version (its ETag holds every part to it).
#[allow(clippy::too_many_arguments)]
pub async fn copy_known(
    store: &dyn ObjectStore,
    src_bucket: &str,
    src: &ObjectMeta,
    version_id: Option<&str>,
    bucket: &str,
    key: &str,
    metadata: Option<&Metadata>,
    limits: &CopyLimits,
) -> Result<PutResult, StoreError> {
    let src_key = src.key.as_str();
    let opts = PutOptions::like(
        src,
        metadata.cloned().unwrap_or_else(|| src.metadata.clone()),
    );
    if src.size <= limits.max_single {
        return match version_id {
            Some(v) => {
                store
                    .copy_version(src_bucket, src_key, v, bucket, key, &opts)
                    .await
            }
            None => {
                store
                    .copy_object(src_bucket, src_key, bucket, key, &opts)
                    .await
            }
        };
    }
    let what = format!("multipart copy {src_bucket}/{src_key} -> {bucket}/{key}");
    multipart_copy(
        store, src_bucket, src, version_id, bucket, key, &opts, limits,
    )
    .await
    .map_err(|e| e.with_context(what))
}

#[allow(clippy::too_many_arguments)]
async fn multipart_copy(
    store: &dyn ObjectStore,
    src_bucket: &str,
    src: &ObjectMeta,
    version_id: Option<&str>,
    bucket: &str,
    key: &str,
    opts: &PutOptions,
    limits: &CopyLimits,
) -> Result<PutResult, StoreError> {
    let ranges = copy_ranges(src.size, limits.part_size)?;
    let upload_id = store
        .create_multipart_upload(bucket, key, opts)
        .await?
        .upload_id;
    let if_match = (!src.etag.is_empty()).then_some(src.etag.as_str());
    let copied: Result<Vec<PartInfo>, StoreError> =
        futures::stream::iter(ranges.into_iter().enumerate().map(|(i, range)| {
            let upload_id = &upload_id;
            async move {
                let part = CopySource {
                    bucket: src_bucket,
                    key: &src.key,
                    range,
                    if_match,
                    version_id,
                };
                store
                    .upload_part_copy(&part, bucket, key, upload_id, i as u32 + 1)
                    .await
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await;
    let finished = match copied {
        Ok(mut parts) => {
            parts.sort_by_key(|p| p.part_number);
            let done: Vec<CompletedPart> = parts
                .into_iter()
                .map(|p| CompletedPart {
                    part_number: p.part_number,
                    etag: p.etag,
                    checksum: None,
                })
                .collect();
            store
                .complete_multipart_upload(bucket, key, &upload_id, &done, None)
                .await
        }
        Err(e) => Err(e),
    };
    let put = match finished {
        Ok(put) => put,
        Err(e) => {
            // Parts of an unfinished copy would be billed and never used.
            let _ = store.abort_multipart_upload(bucket, key, &upload_id).await;
            return Err(e);
        }
    };
    if let (Some(want), Some(got)) = (src.crc64, put.crc64) {
        if want != got {
            // Not deleted: the copy already replaced whatever the key held
            // (for a re-time, the object itself), and deleting it would
            // lose both. The copy fails, and the message says so.
            return Err(StoreError::new(
                StoreErrorKind::Integrity,
                format!(
                    "the copy's CRC-64 {got} differs from the source's {want}; the copy is kept as stored (deleting it would lose what it replaced)"
                ),
            ));
        }
    }
    Ok(put)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faulty::{FaultyStore, Op};
    use crate::store::memory::MemoryStore;
    use crate::store::Body;
    use std::sync::Arc;

    #[test]
    fn ranges_cover_the_object_within_10000_parts() {
        let r = copy_ranges(20 * MIB + 1, 8 * MIB).unwrap();
        assert_eq!(
            r,
            vec![0..8 * MIB, 8 * MIB..16 * MIB, 16 * MIB..20 * MIB + 1]
        );
        // 5 TiB: parts grow past 8 MiB to stay within 10,000.
        let big = copy_ranges(5 << 40, 8 * MIB).unwrap();
        assert!(big.len() <= 10_000);
        assert_eq!(big.last().unwrap().end, 5 << 40);
        assert!(copy_ranges(60 << 40, 8 * MIB).is_err());
    }

    async fn store_with(size: usize) -> (Arc<MemoryStore>, Metadata) {
        let mut m = MemoryStore::new();
        m.min_part_size = 4;
        m.max_single_copy = 10;
        m.create_bucket("b").await.unwrap();
        let md: Metadata = [("mtime".to_string(), "12.5".to_string())].into();
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        m.put_object(
            "b",
            "src",
            Body::new(data),
            &PutOptions {
                metadata: md.clone(),
                content_type: None,
                checksum: None,
                object: Default::default(),
            },
        )
        .await
        .unwrap();
        (Arc::new(m), md)
    }

    #[tokio::test]
    async fn above_the_limit_the_copy_goes_multipart_and_keeps_metadata() {
        let (m, md) = store_with(25).await;
        let f = FaultyStore::new(m.clone());
        // CopyObject itself refuses an object this large.
        assert!(f
            .copy_object("b", "src", "b", "plain", &PutOptions::default())
            .await
            .is_err());
        let limits = CopyLimits {
            max_single: 10,
            part_size: 8,
        };
        copy_object_any_size(&f, "b", "src", "b", "dst", None, &limits)
            .await
            .unwrap();
        assert_eq!(f.calls(Op::UploadPartCopy), 4);
        let got = m
            .get_object("b", "dst", &crate::store::GetRequest::whole())
            .await
            .unwrap();
        assert_eq!(got.meta.metadata, md);
        let src = m
            .get_object("b", "src", &crate::store::GetRequest::whole())
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap(), src.bytes().await.unwrap());
        // Replaced metadata when asked.
        let new: Metadata = [("mtime".to_string(), "99".to_string())].into();
        copy_object_any_size(&f, "b", "src", "b", "dst2", Some(&new), &limits)
            .await
            .unwrap();
        assert_eq!(m.head_object("b", "dst2").await.unwrap().metadata, new);
    }

    #[tokio::test]
    async fn within_the_limit_one_head_and_one_copy_that_keeps_the_object_as_it_was() {
        let (m, _) = store_with(10).await;
        // An object with a type, caching headers and a class of its own.
        let opts = PutOptions {
            content_type: Some("text/html".into()),
            object: crate::store::ObjectOptions {
                storage_class: Some("STANDARD_IA".into()),
                cache_control: Some("max-age=60".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        m.put_object(
            "b",
            "typed",
            crate::store::Body::new(&b"0123456789"[..]),
            &opts,
        )
        .await
        .unwrap();
        let f = FaultyStore::new(m.clone());
        let limits = CopyLimits {
            max_single: 10,
            part_size: 8,
        };
        let new: Metadata = [("mtime".to_string(), "7".to_string())].into();
        copy_object_any_size(&f, "b", "typed", "b", "dst", Some(&new), &limits)
            .await
            .unwrap();
        assert_eq!(
            (
                f.calls(Op::Copy),
                f.calls(Op::Head),
                f.calls(Op::UploadPartCopy)
            ),
            (1, 1, 0)
        );
        let copy = m.head_object("b", "dst").await.unwrap();
        assert_eq!(copy.metadata, new);
        assert_eq!(copy.content_type.as_deref(), Some("text/html"));
        assert_eq!(copy.object, opts.object);
    }

    /// A re-time copies an object onto itself: a completed copy whose
    /// CRC-64 disagrees must not be deleted, or the only copy goes.
    #[tokio::test]
    async fn a_copy_whose_crc_disagrees_is_reported_and_never_deleted() {
        use crate::store::faulty::{Fault, When};
        let mut oss = MemoryStore::new();
        oss.report_crc64 = true;
        oss.min_part_size = 4;
        oss.max_single_copy = 10;
        let oss = Arc::new(oss);
        oss.create_bucket("b").await.unwrap();
        let data: Vec<u8> = (0..25u8).collect();
        oss.put_object("b", "src", Body::new(data.clone()), &PutOptions::default())
            .await
            .unwrap();
        let f = FaultyStore::new(oss.clone());
        f.inject(Op::Complete, When::Always, Fault::WrongCrc64);
        let limits = CopyLimits {
            max_single: 10,
            part_size: 8,
        };
        let new: Metadata = [("mtime".to_string(), "99".to_string())].into();
        let err = copy_object_any_size(&f, "b", "src", "b", "src", Some(&new), &limits)
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Integrity, "{err}");
        assert!(err.to_string().contains("kept"), "{err}");
        assert_eq!(f.calls(Op::Delete), 0);
        let kept = oss
            .get_object("b", "src", &crate::store::GetRequest::whole())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(kept, data);
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload() {
        use crate::store::faulty::{Fault, When};
        let (m, _) = store_with(25).await;
        let f = FaultyStore::new(m.clone());
        f.inject(
            Op::UploadPartCopy,
            When::Nth(3),
            Fault::Fail(StoreErrorKind::AccessDenied),
        );
        let limits = CopyLimits {
            max_single: 10,
            part_size: 8,
        };
        let err = copy_object_any_size(&f, "b", "src", "b", "dst", None, &limits)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("multipart copy b/src -> b/dst"),
            "{err}"
        );
        assert_eq!(f.calls(Op::Abort), 1);
        assert!(m
            .list_multipart_uploads("b", "", None)
            .await
            .unwrap()
            .uploads
            .is_empty());
        assert!(m.head_object("b", "dst").await.is_err());
    }
}
