//! A wrapper that makes any [`ObjectStore`] fail on cue: the Nth call of an
//! operation errors, succeeds but loses its answer, has its body cut short,
//! or reports parts with the wrong size. Resume and retry logic is proven
//! against it, since a real server cannot be told to misbehave on demand.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;

use super::{
    Body, Checksum, ChecksumSupport, CompletedPart, CopyLimits, CopySource, CreatedUpload,
    DeleteFailure, GetObjectOutput, GetRequest, ListPage, ListPartsPage, ListRequest,
    ListUploadsPage, ObjectMeta, ObjectPart, ObjectStore, PartInfo, PutOptions, PutResult,
    StoreError, StoreErrorKind,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Head,
    HeadPart,
    Get,
    Put,
    List,
    Delete,
    DeleteBatch,
    Copy,
    CreateUpload,
    UploadPart,
    UploadPartCopy,
    ListParts,
    Complete,
    Abort,
    ListUploads,
    MakeBucket,
    RemoveBucket,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Fail before the request reaches the store.
    Fail(StoreErrorKind),
    /// Let the store do the work, then report a failure: the lost-response
    /// case where the server has the part but the client does not know.
    FailAfter(StoreErrorKind),
    /// GET bodies end (with a network error) after this many bytes.
    TruncateBody(u64),
    /// ListParts reports every part one byte larger than it is.
    WrongPartSize,
    /// Listings always say more follows, with the same token: a server
    /// stuck in a loop.
    RepeatToken,
    /// GET bodies arrive whole but with the first byte of every chunk
    /// flipped: damage no length check can see.
    CorruptBody,
    /// A completion reports a CRC-64 one bit off what the store holds: a
    /// copy or upload that went wrong where only that check can see it.
    WrongCrc64,
    /// Refuse before the request reaches the store with this error code
    /// and a 400, classified as the HTTP store classifies it
    /// (`InvalidPart` from a cluster that listed a part it cannot use).
    Refuse(&'static str),
}

/// Which calls (counted per operation, from 1) a fault applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Nth(u64),
    Calls(Range<u64>),
    Always,
}

impl When {
    fn matches(&self, n: u64) -> bool {
        match self {
            When::Nth(k) => *k == n,
            When::Calls(r) => r.contains(&n),
            When::Always => true,
        }
    }
}

struct Rule {
    op: Op,
    when: When,
    fault: Fault,
}

pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<HashMap<Op, u64>>,
    bytes_sent: AtomicU64,
}

fn injected(kind: StoreErrorKind, op: Op) -> StoreError {
    let mut e = StoreError::new(kind, format!("injected fault in {op:?}"));
    e.code = match kind {
        StoreErrorKind::Throttled => Some("SlowDown".into()),
        StoreErrorKind::NoSuchUpload => Some("NoSuchUpload".into()),
        StoreErrorKind::NotFound => Some("NoSuchKey".into()),
        _ => None,
    };
    e
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultyStore {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(HashMap::new()),
            bytes_sent: AtomicU64::new(0),
        }
    }

    pub fn inject(&self, op: Op, when: When, fault: Fault) -> &Self {
        self.rules.lock().unwrap().push(Rule { op, when, fault });
        self
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> u64 {
        self.calls.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    /// Body bytes handed to PUT and UploadPart calls that reached the store.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Counts the call and returns the fault that applies to it, if any.
    fn enter(&self, op: Op) -> Option<Fault> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let c = calls.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        self.rules
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.op == op && r.when.matches(n))
            .map(|r| r.fault.clone())
    }

    async fn run<T, F>(&self, op: Op, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let fault = self.enter(op);
        self.apply(fault, op, call).await
    }

    /// The call under the fault the caller already looked up.
    async fn apply<T, F>(&self, fault: Option<Fault>, op: Op, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match fault {
            Some(Fault::Fail(kind)) => Err(injected(kind, op)),
            Some(Fault::Refuse(code)) => {
                let mut e = StoreError::new(
                    StoreError::classify(400, Some(code)),
                    format!("injected {code} in {op:?}"),
                );
                e.code = Some(code.into());
                e.status = Some(400);
                Err(e)
            }
            Some(Fault::FailAfter(kind)) => {
                call.await?;
                Err(injected(kind, op))
            }
            _ => call.await,
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        self.run(Op::Head, self.inner.head_object(bucket, key))
            .await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        get: &GetRequest<'_>,
    ) -> Result<GetObjectOutput, StoreError> {
        match self.enter(Op::Get) {
            Some(Fault::Fail(kind)) => Err(injected(kind, Op::Get)),
            Some(Fault::TruncateBody(limit)) => {
                let mut out = self.inner.get_object(bucket, key, get).await?;
                let mut left = limit;
                let body = out.body.map(move |chunk| {
                    let chunk = chunk?;
                    if left == 0 {
                        return Err(StoreError::new(
                            StoreErrorKind::Network,
                            "injected: connection dropped mid-body",
                        ));
                    }
                    let take = (chunk.len() as u64).min(left);
                    left -= take;
                    Ok(chunk.slice(..take as usize))
                });
                // Once the budget is spent the next chunk errors, so the
                // consumer sees a short body followed by a failure.
                out.body = Box::pin(body);
                Ok(out)
            }
            Some(Fault::CorruptBody) => {
                let mut out = self.inner.get_object(bucket, key, get).await?;
                out.body = Box::pin(out.body.map(|chunk| {
                    let mut bytes = chunk?.to_vec();
                    if let Some(b) = bytes.first_mut() {
                        *b ^= 0xff;
                    }
                    Ok(bytes.into())
                }));
                Ok(out)
            }
            _ => self.inner.get_object(bucket, key, get).await,
        }
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        let len = body.len();
        let r = self
            .run(Op::Put, async {
                self.bytes_sent.fetch_add(len, Ordering::Relaxed);
                self.inner.put_object(bucket, key, body, opts).await
            })
            .await;
        r
    }

    async fn list_objects(
        &self,
        bucket: &str,
        req: &ListRequest<'_>,
    ) -> Result<ListPage, StoreError> {
        match self.enter(Op::List) {
            Some(Fault::Fail(kind)) => Err(injected(kind, Op::List)),
            Some(Fault::FailAfter(kind)) => {
                self.inner.list_objects(bucket, req).await?;
                Err(injected(kind, Op::List))
            }
            Some(Fault::RepeatToken) => {
                let mut page = self.inner.list_objects(bucket, req).await?;
                page.next_token = Some("same-token".into());
                Ok(page)
            }
            _ => self.inner.list_objects(bucket, req).await,
        }
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.run(Op::Delete, self.inner.delete_object(bucket, key))
            .await
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<DeleteFailure>, StoreError> {
        self.run(Op::DeleteBatch, self.inner.delete_objects(bucket, keys))
            .await
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, StoreError> {
        self.run(
            Op::Copy,
            self.inner
                .copy_object(src_bucket, src_key, bucket, key, opts),
        )
        .await
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
    ) -> Result<CreatedUpload, StoreError> {
        self.run(
            Op::CreateUpload,
            self.inner.create_multipart_upload(bucket, key, opts),
        )
        .await
    }

    fn copy_limits(&self) -> CopyLimits {
        self.inner.copy_limits()
    }

    fn checksum_support(&self) -> ChecksumSupport {
        self.inner.checksum_support()
    }

    async fn head_object_part(
        &self,
        bucket: &str,
        key: &str,
        part_number: u32,
    ) -> Result<ObjectPart, StoreError> {
        self.run(
            Op::HeadPart,
            self.inner.head_object_part(bucket, key, part_number),
        )
        .await
    }

    async fn upload_part_copy(
        &self,
        src: &CopySource<'_>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartInfo, StoreError> {
        self.run(
            Op::UploadPartCopy,
            self.inner
                .upload_part_copy(src, bucket, key, upload_id, part_number),
        )
        .await
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<PartInfo, StoreError> {
        let len = body.len();
        self.run(Op::UploadPart, async {
            self.bytes_sent.fetch_add(len, Ordering::Relaxed);
            self.inner
                .upload_part(bucket, key, upload_id, part_number, body)
                .await
        })
        .await
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: Option<u32>,
    ) -> Result<ListPartsPage, StoreError> {
        match self.enter(Op::ListParts) {
            Some(Fault::Fail(kind)) => Err(injected(kind, Op::ListParts)),
            Some(Fault::WrongPartSize) => {
                let mut page = self
                    .inner
                    .list_parts(bucket, key, upload_id, marker)
                    .await?;
                for p in &mut page.parts {
                    p.size += 1;
                }
                Ok(page)
            }
            _ => self.inner.list_parts(bucket, key, upload_id, marker).await,
        }
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: Option<&Checksum>,
    ) -> Result<PutResult, StoreError> {
        let fault = self.enter(Op::Complete);
        let wrong = fault == Some(Fault::WrongCrc64);
        let mut put = self
            .apply(
                fault,
                Op::Complete,
                self.inner
                    .complete_multipart_upload(bucket, key, upload_id, parts, checksum),
            )
            .await?;
        if wrong {
            put.crc64 = put.crc64.map(|c| c ^ 1);
        }
        Ok(put)
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.run(
            Op::Abort,
            self.inner.abort_multipart_upload(bucket, key, upload_id),
        )
        .await
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<&(String, String)>,
    ) -> Result<ListUploadsPage, StoreError> {
        self.run(
            Op::ListUploads,
            self.inner.list_multipart_uploads(bucket, prefix, next),
        )
        .await
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        self.run(Op::MakeBucket, self.inner.create_bucket(bucket))
            .await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        self.run(Op::RemoveBucket, self.inner.delete_bucket(bucket))
            .await
    }
}
