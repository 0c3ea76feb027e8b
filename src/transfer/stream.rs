//! Streams: a reader of unknown length (standard input) into an object,
//! and an object onto a writer (standard output), each with memory bounded
//! by the part size times the parts in flight.
//!
//! Neither is resumable: a pipe cannot be read twice, and what a pipe has
//! taken cannot be taken back. An upload that fails is aborted on the
//! server (no orphaned parts billed); a download that fails stops with the
//! bytes written so far and an error naming how far it got.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::digests::{self, digest};
use super::parts::{stream_part_size, DEFAULT_PART_SIZE, MAX_PARTS};
use super::upload::{
    check_part, check_put, content_type_for, endpoint, worth_resending, UploadOutcome,
    PART_ATTEMPTS,
};
use super::verify::{Check, InStream};
use super::{Context, TransferError, TransferOptions};
use crate::store::{CompletedPart, GetRequest, PutOptions, StoreError};

fn options(opts: &TransferOptions, key: &str) -> PutOptions {
    PutOptions {
        // No file, so no mtime: the object's Last-Modified stands for it.
        metadata: opts.metadata.clone(),
        content_type: content_type_for(opts, key),
        checksum: None,
        object: opts.object.clone(),
    }
}

/// Fills `buf` up to `want` bytes; fewer only at the end of the input.
async fn fill<R: AsyncRead + Unpin>(input: &mut R, want: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want as usize);
    let mut limited = input.take(want);
    while (buf.len() as u64) < want {
        if limited.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf)
}

fn input_error(from: &str, e: std::io::Error) -> TransferError {
    TransferError::io(from, "cannot read", e)
}

/// Sends what `input` yields to `bucket/key`: one PUT when it ends within
/// the first part, else a multipart upload whose parts grow with the
/// stream ([`stream_part_size`]). At most `opts.parallel` parts are in
/// flight, each counted against the memory budget.
pub async fn upload_stream<R: AsyncRead + Unpin + Send>(
    ctx: &Context,
    opts: &TransferOptions,
    input: R,
    bucket: &str,
    key: &str,
) -> Result<UploadOutcome, TransferError> {
    let put_opts = options(opts, key);
    upload_from(ctx, opts, input, "standard input", bucket, key, put_opts).await
}

/// [`upload_stream`] from any reader (`from` names it in errors), storing
/// the object with `put_opts`.
async fn upload_from<R: AsyncRead + Unpin + Send>(
    ctx: &Context,
    opts: &TransferOptions,
    mut input: R,
    from: &str,
    bucket: &str,
    key: &str,
    put_opts: PutOptions,
) -> Result<UploadOutcome, TransferError> {
    let base = opts.part_size.unwrap_or(DEFAULT_PART_SIZE);
    let at = endpoint(ctx, opts);
    ctx.progress.start(key, 0, 0);
    let first = fill(&mut input, stream_part_size(base, 1))
        .await
        .map_err(|e| input_error(from, e))?;
    if (first.len() as u64) < stream_part_size(base, 1) {
        let size = first.len() as u64;
        let d = digest(first, digests::for_put(opts.checksum, at));
        let put = retried(|| ctx.store.put_object(bucket, key, d.body(), &put_opts)).await?;
        check_put(bucket, key, &d, &put, "the object is kept as stored")?;
        ctx.progress.advance(size);
        ctx.progress.finish();
        return Ok(UploadOutcome::single(size, put.etag));
    }
    let mut put_opts = put_opts;
    put_opts.checksum = digests::for_create(opts.checksum, at);
    let created = ctx
        .store
        .create_multipart_upload(bucket, key, &put_opts)
        .await?;
    let id = created.upload_id.clone();
    let part = PartTask {
        ctx: ctx.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: id.clone(),
        want: digests::for_part(opts.checksum, at, created.checksum),
        agreed: created.checksum,
    };
    match send_parts(&part, opts, first, &mut input, from, base).await {
        Ok((parts, size)) => {
            let put = ctx
                .store
                .complete_multipart_upload(bucket, key, &id, &parts, None)
                .await;
            match put {
                Ok(put) => {
                    ctx.progress.finish();
                    Ok(UploadOutcome {
                        size,
                        bytes_sent: size,
                        parts_total: parts.len() as u32,
                        parts_sent: parts.len() as u32,
                        multipart: true,
                        etag: put.etag,
                        ..Default::default()
                    })
                }
                Err(e) => Err(abort(ctx, bucket, key, &id, e.into()).await),
            }
        }
        Err(e) => Err(abort(ctx, bucket, key, &id, e).await),
    }
}

/// A stream cannot be resumed: leave no parts behind to be billed for.
async fn abort(
    ctx: &Context,
    bucket: &str,
    key: &str,
    id: &str,
    e: TransferError,
) -> TransferError {
    if let Err(abort) = ctx.store.abort_multipart_upload(bucket, key, id).await {
        tracing::warn!(error = %abort, "could not abort the multipart upload {id}");
    }
    e
}

/// What each part's task needs, owned so parts upload on their own tasks
/// while the next part is read.
#[derive(Clone)]
struct PartTask {
    ctx: Context,
    bucket: String,
    key: String,
    upload_id: String,
    want: digests::Want,
    agreed: Option<crate::checksum::Algorithm>,
}

/// Reads the stream part by part, each sent on its own task; at most
/// `parallel` in flight plus the one being read. Returns the parts in
/// order and the bytes sent.
async fn send_parts<R: AsyncRead + Unpin + Send>(
    task: &PartTask,
    opts: &TransferOptions,
    first: Vec<u8>,
    input: &mut R,
    from: &str,
    base: u64,
) -> Result<(Vec<CompletedPart>, u64), TransferError> {
    let parallel = opts.parallel.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut done: BTreeMap<u32, CompletedPart> = BTreeMap::new();
    let mut next = Some(first);
    let (mut number, mut size) = (1u32, 0u64);
    let mut collect = |r: Result<Result<CompletedPart, TransferError>, tokio::task::JoinError>| {
        let part = r.expect("part task panicked")?;
        done.insert(part.part_number, part);
        Ok::<(), TransferError>(())
    };
    while let Some(buf) = next.take() {
        if task.ctx.cancel.is_cancelled() {
            return Err(TransferError::Interrupted);
        }
        if u64::from(number) > MAX_PARTS {
            return Err(TransferError::Integrity(format!(
                "{}/{}: the stream is longer than 10,000 parts can hold; nothing was stored",
                task.bucket, task.key
            )));
        }
        while tasks.len() >= parallel {
            if let Some(r) = tasks.join_next().await {
                collect(r)?;
            }
        }
        let len = buf.len() as u64;
        size += len;
        let permit = opts.reserve(len).await;
        tasks.spawn(task.clone().send(number, buf, permit));
        let full = len == stream_part_size(base, number);
        number += 1;
        if full {
            let buf = fill(input, stream_part_size(base, number))
                .await
                .map_err(|e| input_error(from, e))?;
            if !buf.is_empty() {
                next = Some(buf);
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        collect(r)?;
    }
    Ok((done.into_values().collect(), size))
}

impl PartTask {
    async fn send(
        self,
        number: u32,
        buf: Vec<u8>,
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<CompletedPart, TransferError> {
        let len = buf.len() as u64;
        let want = self.want;
        let d = tokio::task::spawn_blocking(move || digest(buf, want))
            .await
            .expect("digest task panicked");
        let info = retried(|| {
            self.ctx
                .store
                .upload_part(&self.bucket, &self.key, &self.upload_id, number, d.body())
        })
        .await?;
        check_part(&self.key, number, &d, &info)?;
        self.ctx.progress.advance(len);
        Ok(CompletedPart {
            part_number: number,
            etag: info.etag,
            checksum: self.agreed.and(d.checksum),
        })
    }
}

/// A request tried again (after a pause) when the failure is one a new
/// attempt can mend and the HTTP layer has not already retried it: the
/// file upload's policy, for bodies held in memory.
async fn retried<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if worth_resending(&e) && attempt < PART_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "trying again");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// What a stream download wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// All of the object, checked as [`Check::describe`] says.
    All(u64),
    /// The reader went away (a closed pipe: `ferry cat … | head`); not an
    /// error, as for `cat`.
    Closed(u64),
}

/// Writes `bucket/key` to `out` in order. Objects above the multipart
/// threshold come in `opts.parallel` ranged GETs at a time, held to the
/// ETag the first answer gave (a changed object fails, never mixes); the
/// checks that need bytes in order (MD5 ETag, full-object CRC or SHA) are
/// made on the way, and a mismatch is an error after the fact.
pub async fn download_stream<W: AsyncWrite + Unpin>(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    out: W,
) -> Result<Written, TransferError> {
    let meta = crate::store::head_at(ctx.store.as_ref(), bucket, key, version_id).await?;
    download_stream_of(ctx, opts, meta, bucket, key, version_id, out).await
}

/// [`download_stream`] of the object `meta` describes (a HEAD's answer).
async fn download_stream_of<W: AsyncWrite + Unpin>(
    ctx: &Context,
    opts: &TransferOptions,
    meta: crate::store::ObjectMeta,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    mut out: W,
) -> Result<Written, TransferError> {
    let check = Check::choose(&meta, true);
    let mut hash = InStream::new(&check);
    let part = opts.part_size.unwrap_or(DEFAULT_PART_SIZE).max(1);
    let ranges: Vec<std::ops::Range<u64>> = if meta.size < opts.bigfile_threshold.max(1) {
        std::iter::once(0..meta.size).collect()
    } else {
        (0..meta.size.div_ceil(part))
            .map(|i| i * part..((i + 1) * part).min(meta.size))
            .collect()
    };
    ctx.progress.start(key, meta.size, 0);
    let etag = meta.etag.clone();
    let fetch = |r: std::ops::Range<u64>| {
        let etag = etag.clone();
        async move {
            retried(|| async {
                let req = if r.start == 0 && r.end == meta.size {
                    GetRequest::whole()
                } else {
                    GetRequest::range(r.clone())
                };
                let got = ctx
                    .store
                    .get_object(bucket, key, &req.if_match(Some(&etag)).version(version_id))
                    .await?;
                let body: Bytes = got.bytes().await?;
                if body.len() as u64 != r.end - r.start {
                    return Err(StoreError::new(
                        crate::store::StoreErrorKind::Protocol,
                        format!(
                            "{bucket}/{key}: bytes {}-{} came back as {} bytes",
                            r.start,
                            r.end,
                            body.len()
                        ),
                    ));
                }
                Ok(body)
            })
            .await
        }
    };
    let mut bodies = futures::stream::iter(ranges)
        .map(fetch)
        .buffered(opts.parallel.max(1));
    let mut written = 0u64;
    while let Some(body) = bodies.try_next().await? {
        if ctx.cancel.is_cancelled() {
            return Err(TransferError::Interrupted);
        }
        hash.update(&body);
        match out.write_all(&body).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Written::Closed(written))
            }
            Err(e) => return Err(TransferError::io("standard output", "cannot write", e)),
        }
        written += body.len() as u64;
        ctx.progress.advance(body.len() as u64);
    }
    match out.flush().await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(Written::Closed(written))
        }
        r => r.map_err(|e| TransferError::io("standard output", "cannot write", e))?,
    }
    ctx.progress.finish();
    hash.verdict_then(
        &format!("{bucket}/{key}"),
        &check,
        "what was written is not the object",
    )
    .map_err(TransferError::Integrity)?;
    Ok(Written::All(written))
}

/// The two ends of a streamed copy between stores.
pub struct CopyEnds<'a> {
    /// Reads the source (its progress is not shown: the upload's is).
    pub from: &'a Context,
    pub to: &'a Context,
    pub src_bucket: &'a str,
    /// What a HEAD of the source showed: the copy is of that version.
    pub src: crate::store::ObjectMeta,
    /// The version asked for, when it is not the current one.
    pub version_id: Option<&'a str>,
    pub bucket: &'a str,
    pub key: &'a str,
}

/// Copies an object from one store to another through memory: the
/// source's ranged GETs (checked against its ETag and checksum on the
/// way) feed the stream upload, so memory stays within the part size
/// times the parts in flight, whatever the object's size, and no disk is
/// used. The upload sees the end of its input only once the download has
/// delivered every byte and its checks passed; anything else fails the
/// upload, which is then aborted: a copy is whole or absent.
pub async fn copy_stream(
    ends: CopyEnds<'_>,
    opts: &TransferOptions,
    put_opts: PutOptions,
) -> Result<UploadOutcome, TransferError> {
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let size = ends.src.size;
    let from = format!("{}/{}", ends.src_bucket, ends.src.key);
    let src_key = ends.src.key.clone();
    let down = async {
        let mut writer = writer;
        let got = download_stream_of(
            ends.from,
            opts,
            ends.src,
            ends.src_bucket,
            &src_key,
            ends.version_id,
            &mut writer,
        )
        .await;
        let verdict = match &got {
            Ok(Written::All(_)) => Ok(()),
            Ok(Written::Closed(_)) => Err("the copy stopped reading".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(verdict);
        drop(writer);
        got
    };
    let input = Guarded {
        inner: reader,
        expected: size,
        read: 0,
        verdict: Some(rx),
    };
    let up = upload_from(ends.to, opts, input, &from, ends.bucket, ends.key, put_opts);
    let (got, sent) = tokio::join!(down, up);
    match (got, sent) {
        (Err(TransferError::Interrupted), _) | (_, Err(TransferError::Interrupted)) => {
            Err(TransferError::Interrupted)
        }
        // The download's own error says more than the upload's "cannot read".
        (Err(e), Err(_)) => Err(e),
        (_, sent) => sent,
    }
}

/// The upload's side of a streamed copy: the end of the input is passed
/// on only when the download says the source was whole and checked.
struct Guarded {
    inner: tokio::io::DuplexStream,
    expected: u64,
    read: u64,
    verdict: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Err(e) = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)) {
            return Poll::Ready(Err(e));
        }
        let n = (buf.filled().len() - before) as u64;
        this.read += n;
        if n > 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(rx) = this.verdict.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let verdict = std::task::ready!(std::future::Future::poll(std::pin::Pin::new(rx), cx));
        this.verdict = None;
        Poll::Ready(match verdict {
            Ok(Ok(())) if this.read == this.expected => Ok(()),
            Ok(Ok(())) => Err(std::io::Error::other(format!(
                "the source ended after {} of {} bytes",
                this.read, this.expected
            ))),
            Ok(Err(why)) => Err(std::io::Error::other(why)),
            Err(_) => Err(std::io::Error::other("the source stopped")),
        })
    }
}
