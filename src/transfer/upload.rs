//! Uploads: one PUT below the big-file threshold, a multipart upload at or
//! above it. With a checkpoint directory the multipart upload survives the
//! process: a rerun asks the server which parts it holds and sends the rest.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};

use super::checkpoint::{CheckpointFile, LockError, UploadCheckpoint};
use super::digests::{self, read_and_digest, Digested, Endpoint, Want};
use super::parts::{choose_part_size, layout, PartSpec};
use super::resume::{plan_upload_resume, same_etag, RecordedPart};
use super::{io, ContentType, Context, TransferError, TransferOptions};
use crate::checksum::flexible::crc_combine;
use crate::checksum::{crc64_combine, multipart_etag, Algorithm, Checksum, ChecksumType};
use crate::mtime::{file_mtime, format_mtime, Nanos, MTIME_KEY};
use crate::store::{
    list_all_parts, CompletedPart, EtagKind, PartInfo, PutOptions, StoreError, StoreErrorKind,
    StoredChecksum,
};

/// Attempts per part. The HTTP layer already retried each request as
/// often as `--retries` allows, and those errors are not retried again;
/// this covers what it cannot see (a failure outside the request) and a
/// body the server refused for its digest (read again from the file).
pub(crate) const PART_ATTEMPTS: u32 = 4;

/// Whether sending the same part again may succeed.
pub(crate) fn worth_resending(e: &StoreError) -> bool {
    e.worth_another_try() || e.kind == StoreErrorKind::Integrity
}

/// Where bodies go, as far as digests are concerned.
pub(crate) fn endpoint(ctx: &Context, opts: &TransferOptions) -> Endpoint {
    if opts.crc64 {
        Endpoint::Oss
    } else {
        Endpoint::S3(ctx.store.checksum_support())
    }
}

/// The stored checksum must be the one computed here, where both exist;
/// the problem, if any, for the caller to name the object in.
fn check_stored(sent: Option<&Checksum>, stored: Option<&StoredChecksum>) -> Result<(), String> {
    match (sent, stored) {
        (Some(mine), Some(s))
            if s.kind == ChecksumType::FullObject
                && s.checksum.algorithm == mine.algorithm
                && s.checksum != *mine =>
        {
            Err(format!(
                "the server stored {} {} but the data sent has {}",
                s.checksum.algorithm,
                s.checksum.to_base64(),
                mine.to_base64()
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOutcome {
    pub size: u64,
    /// Body bytes this run sent.
    pub bytes_sent: u64,
    /// Bytes already on the server from an earlier run.
    pub bytes_resumed: u64,
    pub parts_total: u32,
    pub parts_sent: u32,
    pub multipart: bool,
    pub etag: String,
}

impl UploadOutcome {
    /// One PUT of `size` bytes.
    pub(crate) fn single(size: u64, etag: String) -> UploadOutcome {
        UploadOutcome {
            size,
            bytes_sent: size,
            parts_total: 1,
            parts_sent: 1,
            etag,
            ..Default::default()
        }
    }
}

/// The Content-Type a browser or CDN needs: the one asked for, else
/// guessed from the key's extension as the AWS CLI and rclone do (the key,
/// not the path read: the mount uploads from staged files of other
/// names); none (the store's default) when unknown or guessing is off.
pub(crate) fn content_type_for(opts: &TransferOptions, key: &str) -> Option<String> {
    match &opts.content_type {
        ContentType::Fixed(t) => Some(t.clone()),
        ContentType::Guess => mime_guess::from_path(key).first_raw().map(str::to_string),
        ContentType::None => None,
    }
}

/// What an upload stores with the object: the user's metadata, the
/// file's mtime (which no user key replaces), and the object options.
fn put_options(opts: &TransferOptions, key: &str, mtime: Nanos) -> PutOptions {
    let mut metadata = opts.metadata.clone();
    metadata.insert(MTIME_KEY.into(), format_mtime(mtime));
    PutOptions {
        metadata,
        content_type: content_type_for(opts, key),
        checksum: None,
        object: opts.object.clone(),
    }
}

fn stat(path: &Path) -> Result<(u64, Nanos), TransferError> {
    let meta = std::fs::metadata(path).map_err(io(path, "cannot read"))?;
    if meta.is_dir() {
        return Err(TransferError::io(
            path,
            "cannot upload",
            std::io::Error::other("is a directory (use -r to copy a directory)"),
        ));
    }
    Ok((meta.len(), file_mtime(&meta)))
}

pub async fn upload_file(
    ctx: &Context,
    opts: &TransferOptions,
    path: &Path,
    bucket: &str,
    key: &str,
) -> Result<UploadOutcome, TransferError> {
    let (size, mtime) = stat(path)?;
    if size < opts.bigfile_threshold || size == 0 {
        single_put(ctx, opts, path, bucket, key, size, mtime).await
    } else {
        Multipart {
            ctx,
            opts,
            path,
            bucket,
            key,
            size,
            mtime,
        }
        .run()
        .await
    }
}

async fn single_put(
    ctx: &Context,
    opts: &TransferOptions,
    path: &Path,
    bucket: &str,
    key: &str,
    size: u64,
    mtime: Nanos,
) -> Result<UploadOutcome, TransferError> {
    let _permit = opts.reserve(size).await;
    let want = digests::for_put(opts.checksum, endpoint(ctx, opts));
    let put_opts = put_options(opts, key, mtime);
    ctx.progress.start(key, size, 0);
    let file = Arc::new(File::open(path).map_err(io(path, "cannot read"))?);
    let mut attempt = 1;
    let (d, put) = loop {
        let d = read_part(&file, path, 0, size, want).await?;
        // A file rewritten while we read it would be stored as a mix of old and new.
        if stat(path)? != (size, mtime) {
            return Err(TransferError::SourceChanged(format!(
                "{}: changed while it was being read; nothing was uploaded, run again",
                path.display()
            )));
        }
        match ctx.store.put_object(bucket, key, d.body(), &put_opts).await {
            Ok(put) => break (d, put),
            Err(e) if worth_resending(&e) && attempt < PART_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "sending the file again");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    };
    ctx.progress.advance(size);
    ctx.progress.finish();
    let kept = "the object is kept as stored (deleting it would lose the version it replaced); rerun without -u to send it again";
    check_put(bucket, key, &d, &put, kept)?;
    Ok(UploadOutcome::single(size, put.etag))
}

struct Multipart<'a> {
    ctx: &'a Context,
    opts: &'a TransferOptions,
    path: &'a Path,
    bucket: &'a str,
    key: &'a str,
    size: u64,
    mtime: Nanos,
}

enum Job {
    Send(PartSpec),
    Verify(PartSpec, PartInfo),
}

struct PartDone {
    record: RecordedPart,
    sent: bool,
    len: u64,
}

impl Multipart<'_> {
    fn destination_id(&self) -> String {
        format!("{}/{}/{}", self.opts.endpoint_id, self.bucket, self.key)
    }

    async fn run(self) -> Result<UploadOutcome, TransferError> {
        let abs = std::fs::canonicalize(self.path).map_err(io(self.path, "cannot resolve"))?;
        let ckpt = match &self.opts.checkpoint_dir {
            Some(dir) => Some(
                CheckpointFile::open::<UploadCheckpoint>(
                    dir,
                    abs.as_os_str(),
                    self.destination_id(),
                )
                .map_err(|e| match e {
                    LockError::Busy(p) => TransferError::Busy(format!(
                        "{}: another ferry process is already uploading it (checkpoint {})",
                        self.path.display(),
                        p.display()
                    )),
                    LockError::Io { path, source } => TransferError::io(path, "checkpoint", source),
                })?,
            ),
            None => None,
        };
        let resumed = match &ckpt {
            Some(c) => self.load_resumable(c, &abs).await?,
            None => None,
        };
        let (mut cp, jobs, resumed_bytes) = match resumed {
            Some((cp, listed)) => {
                let l = layout(self.size, cp.part_size);
                let plan = plan_upload_resume(&l, &cp.parts, &listed);
                let done_bytes: u64 = plan
                    .done
                    .iter()
                    .filter_map(|r| l.get(r.number as usize - 1).map(|s| s.len))
                    .sum();
                // What the server holds, not only what the checkpoint
                // recorded: parts the last run sent but never recorded are
                // reused too once their MD5 matches the file.
                let unrecorded = if plan.verify.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} more on the server but not in the checkpoint, reused if they match the file",
                        plan.verify.len()
                    )
                };
                self.ctx.progress.note(&format!(
                    "resuming {}: {} of {} parts already on the server ({} skipped){unrecorded}{}",
                    self.path.display(),
                    plan.done.len(),
                    l.len(),
                    crate::units::human(done_bytes),
                    if plan.rejected.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", {} recorded part(s) not trusted and re-sent",
                            plan.rejected.len()
                        )
                    }
                ));
                let mut jobs: Vec<Job> = plan.send.into_iter().map(Job::Send).collect();
                jobs.extend(plan.verify.into_iter().map(|(s, p)| Job::Verify(s, p)));
                jobs.sort_by_key(|j| match j {
                    Job::Send(s) | Job::Verify(s, _) => s.number,
                });
                let mut cp = cp;
                cp.parts = plan.done;
                (cp, jobs, done_bytes)
            }
            None => {
                let part_size = choose_part_size(self.size, self.opts.part_size);
                let asked = digests::for_create(self.opts.checksum, endpoint(self.ctx, self.opts));
                let created = self
                    .ctx
                    .store
                    .create_multipart_upload(
                        self.bucket,
                        self.key,
                        &PutOptions {
                            checksum: asked,
                            ..put_options(self.opts, self.key, self.mtime)
                        },
                    )
                    .await?;
                let cp = UploadCheckpoint {
                    source: abs.clone(),
                    size: self.size,
                    mtime: format_mtime(self.mtime),
                    endpoint: self.opts.endpoint_id.clone(),
                    bucket: self.bucket.into(),
                    key: self.key.into(),
                    part_size,
                    upload_id: created.upload_id,
                    checksum: created.checksum.map(|a| a.name().to_string()),
                    parts: Vec::new(),
                };
                if let Some(c) = &ckpt {
                    c.save(&cp)
                        .map_err(io(&c.path, "cannot write checkpoint"))?;
                }
                let jobs = layout(self.size, part_size)
                    .into_iter()
                    .map(Job::Send)
                    .collect();
                (cp, jobs, 0)
            }
        };
        match self
            .transfer(&mut cp, jobs, ckpt.as_ref(), resumed_bytes)
            .await
        {
            Ok(outcome) => {
                if let Some(c) = ckpt {
                    c.finish();
                }
                Ok(outcome)
            }
            Err(e) => {
                let keep = ckpt.is_some()
                    && !matches!(
                        e,
                        TransferError::SourceChanged(_) | TransferError::Integrity(_)
                    );
                if keep {
                    let c = ckpt.as_ref().expect("checked");
                    let _ = c.save(&cp);
                } else {
                    // Without a checkpoint nobody can resume this upload;
                    // abort it so its parts stop costing storage.
                    let _ = self
                        .ctx
                        .store
                        .abort_multipart_upload(self.bucket, self.key, &cp.upload_id)
                        .await;
                    if let Some(c) = ckpt {
                        c.finish();
                    }
                }
                Err(e)
            }
        }
    }

    /// The checkpoint and the server's part list, if this upload can resume.
    async fn load_resumable(
        &self,
        ckpt: &CheckpointFile,
        abs: &Path,
    ) -> Result<Option<(UploadCheckpoint, Vec<crate::store::PartInfo>)>, TransferError> {
        let cp = match ckpt.load::<UploadCheckpoint>() {
            Ok(Some(cp)) => cp,
            Ok(None) => return Ok(None),
            Err(problem) => {
                self.ctx.progress.note(&format!(
                    "ignoring checkpoint {}: {problem}; starting the upload over",
                    ckpt.path.display()
                ));
                ckpt.remove();
                return Ok(None);
            }
        };
        if cp.source != abs
            || cp.bucket != self.bucket
            || cp.key != self.key
            || cp.endpoint != self.opts.endpoint_id
        {
            self.ctx.progress.note(&format!(
                "ignoring checkpoint {}: it belongs to another transfer",
                ckpt.path.display()
            ));
            ckpt.remove();
            return Ok(None);
        }
        if cp.size != self.size || cp.mtime != format_mtime(self.mtime) {
            self.ctx.progress.note(&format!(
                "{} changed since the interrupted upload; discarding its uploaded parts and starting over",
                self.path.display()
            ));
            let _ = self
                .ctx
                .store
                .abort_multipart_upload(self.bucket, self.key, &cp.upload_id)
                .await;
            ckpt.remove();
            return Ok(None);
        }
        if let Some(req) = self.opts.part_size {
            if req != cp.part_size {
                self.ctx.progress.note(&format!(
                    "{}: continuing with the interrupted upload's part size of {} bytes, not the requested {req}",
                    self.path.display(),
                    cp.part_size
                ));
            }
        }
        match list_all_parts(
            self.ctx.store.as_ref(),
            self.bucket,
            self.key,
            &cp.upload_id,
        )
        .await
        {
            Ok(listed) => Ok(Some((cp, listed))),
            Err(e) if e.kind == StoreErrorKind::NoSuchUpload => {
                self.ctx.progress.note(&format!(
                    "{}: the interrupted upload no longer exists on the server; starting over",
                    self.path.display()
                ));
                ckpt.remove();
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn transfer(
        &self,
        cp: &mut UploadCheckpoint,
        jobs: Vec<Job>,
        ckpt: Option<&CheckpointFile>,
        resumed_bytes: u64,
    ) -> Result<UploadOutcome, TransferError> {
        let file = Arc::new(File::open(self.path).map_err(io(self.path, "cannot read"))?);
        let l = layout(self.size, cp.part_size);
        self.ctx.progress.start(self.key, self.size, resumed_bytes);
        let mut outcome = UploadOutcome {
            size: self.size,
            bytes_resumed: resumed_bytes,
            parts_total: l.len() as u32,
            multipart: true,
            ..Default::default()
        };
        let upload_id = cp.upload_id.clone();
        let algorithm = upload_algorithm(cp);
        let mut stream = futures::stream::iter(jobs)
            .map(|job| self.run_job(file.clone(), job, &upload_id, algorithm))
            .buffer_unordered(self.opts.parallel.max(1));
        let mut last_save = Instant::now();
        let mut sent_here = BTreeSet::new();
        loop {
            let next = tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return Err(TransferError::Interrupted),
                n = stream.next() => n,
            };
            let Some(done) = next else { break };
            let done = done?;
            if done.sent {
                outcome.bytes_sent += done.len;
                outcome.parts_sent += 1;
                sent_here.insert(done.record.number);
            } else {
                outcome.bytes_resumed += done.len;
            }
            cp.parts.push(done.record);
            // Not on every part: the server is the truth on resume, so a
            // record lost in a crash costs only a local re-hash.
            if let Some(c) = ckpt {
                if last_save.elapsed() >= Duration::from_millis(500) {
                    c.save(&*cp)
                        .map_err(io(&c.path, "cannot write checkpoint"))?;
                    last_save = Instant::now();
                }
            }
        }
        drop(stream);
        cp.parts.sort_by_key(|p| p.number);
        cp.parts.dedup_by_key(|p| p.number);
        if cp.parts.len() != l.len() {
            return Err(TransferError::Integrity(format!(
                "{}: {} of {} parts accounted for",
                self.key,
                cp.parts.len(),
                l.len()
            )));
        }
        if stat(self.path)? != (self.size, self.mtime) {
            return Err(TransferError::SourceChanged(format!(
                "{}: changed during the upload; the partial upload was discarded, run again",
                self.path.display()
            )));
        }
        let (result, full) = self
            .complete(cp, &l, &file, &sent_here, &mut outcome)
            .await?;
        self.verify(cp, &l, &result, full.as_ref()).await?;
        self.ctx.progress.finish();
        outcome.etag = result.etag;
        Ok(outcome)
    }

    /// CompleteMultipartUpload, riding out what a cluster answers when a
    /// node fails: `InvalidPart` for a part it listed (one in flight when
    /// the last run died can be listed before its data is whole), and an
    /// answer lost after the completion took place.
    async fn complete(
        &self,
        cp: &mut UploadCheckpoint,
        l: &[PartSpec],
        file: &Arc<File>,
        sent_here: &BTreeSet<u32>,
        outcome: &mut UploadOutcome,
    ) -> Result<(crate::store::PutResult, Option<Checksum>), TransferError> {
        let algorithm = upload_algorithm(cp);
        let (mut resent, mut asked_again) = (false, false);
        loop {
            let completed = completed_parts(cp, algorithm);
            let full = full_object_checksum(algorithm, &completed, l);
            let answer = self
                .ctx
                .store
                .complete_multipart_upload(
                    self.bucket,
                    self.key,
                    &cp.upload_id,
                    &completed,
                    full.as_ref(),
                )
                .await;
            let e = match answer {
                Ok(r) => return Ok((r, full)),
                Err(e) => e,
            };
            if matches!(e.code.as_deref(), Some("InvalidPart" | "InvalidPartOrder")) && !resent {
                resent = true;
                let disputed = self.disputed(cp, l, sent_here).await?;
                self.ctx.progress.note(&format!(
                    "{}: the server refused to complete with parts it listed ({}); sending {} part(s) again",
                    self.path.display(),
                    e.code.as_deref().unwrap_or_default(),
                    disputed.len()
                ));
                let upload_id = cp.upload_id.clone();
                let again: Vec<PartDone> = futures::stream::iter(disputed)
                    .map(|spec| self.run_job(file.clone(), Job::Send(spec), &upload_id, algorithm))
                    .buffer_unordered(self.opts.parallel.max(1))
                    .try_collect()
                    .await?;
                for done in again {
                    outcome.bytes_sent += done.len;
                    outcome.parts_sent += 1;
                    if !sent_here.contains(&done.record.number) {
                        outcome.bytes_resumed -= done.len.min(outcome.bytes_resumed);
                    }
                    if let Some(p) = cp.parts.iter_mut().find(|p| p.number == done.record.number) {
                        *p = done.record;
                    }
                }
                continue;
            }
            if e.is_retryable() && !asked_again {
                // The store already retried; this covers an answer lost
                // above it. A completion that took place answers
                // NoSuchUpload to the second ask, handled below.
                asked_again = true;
                continue;
            }
            if e.kind == StoreErrorKind::NoSuchUpload {
                if let Some(r) = self.completed_earlier(cp, full.as_ref()).await? {
                    return Ok((r, full));
                }
            }
            return Err(e.into());
        }
    }

    /// The parts to send again when the server refuses to complete: those
    /// this run did not send itself (taken over from the last run or from
    /// the listing), and any the server now lists otherwise than recorded.
    async fn disputed(
        &self,
        cp: &UploadCheckpoint,
        l: &[PartSpec],
        sent_here: &BTreeSet<u32>,
    ) -> Result<Vec<PartSpec>, TransferError> {
        let listed = list_all_parts(
            self.ctx.store.as_ref(),
            self.bucket,
            self.key,
            &cp.upload_id,
        )
        .await?;
        Ok(l.iter()
            .filter(|s| {
                let rec = cp.parts.iter().find(|p| p.number == s.number);
                let on_server = listed.iter().find(|p| p.part_number == s.number);
                let agrees = match (rec, on_server) {
                    (Some(r), Some(p)) => p.size == s.len && same_etag(&p.etag, &r.etag),
                    _ => false,
                };
                !agrees || !sent_here.contains(&s.number)
            })
            .copied()
            .collect())
    }

    /// After NoSuchUpload to a completion: the object, if an earlier
    /// attempt whose answer was lost completed it. It must be this file:
    /// its size, its mtime, and the full-object checksum where there is
    /// one (else the multipart ETag of the parts' MD5s).
    async fn completed_earlier(
        &self,
        cp: &UploadCheckpoint,
        full: Option<&Checksum>,
    ) -> Result<Option<crate::store::PutResult>, TransferError> {
        let head = match self.ctx.store.head_object(self.bucket, self.key).await {
            Ok(h) => h,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ours = head.size == self.size
            && head.metadata.get(MTIME_KEY) == Some(&format_mtime(self.mtime))
            && match (full, &head.checksum) {
                (Some(mine), Some(s)) => s.checksum == *mine,
                _ => parts_etag(cp).is_some_and(|e| e.eq_ignore_ascii_case(&head.etag)),
            };
        if !ours {
            return Ok(None);
        }
        self.ctx.progress.note(&format!(
            "{}: the completion's answer was lost; the object on the server is this upload",
            self.path.display()
        ));
        Ok(Some(crate::store::PutResult {
            etag: head.etag,
            crc64: head.crc64,
            etag_kind: head.etag_kind,
            checksum: head.checksum,
        }))
    }

    async fn verify(
        &self,
        cp: &UploadCheckpoint,
        l: &[PartSpec],
        result: &crate::store::PutResult,
        full: Option<&Checksum>,
    ) -> Result<(), TransferError> {
        let mut problem = None;
        // The server compared the full-object checksum before completing;
        // what it reports having stored is checked once more.
        if let Some(mine) = full {
            let stored = match &result.checksum {
                Some(s) => Some(s.clone()),
                None => {
                    self.ctx
                        .store
                        .head_object(self.bucket, self.key)
                        .await?
                        .checksum
                }
            };
            if let Err(p) = check_stored(Some(mine), stored.as_ref()) {
                problem = Some(p);
            }
        }
        if result.etag_kind == EtagKind::PartsMd5 {
            if let Some(exp) = parts_etag(cp) {
                if !exp.eq_ignore_ascii_case(&result.etag) {
                    problem = Some(format!(
                        "server ETag {}, expected {exp} from the parts sent",
                        result.etag
                    ));
                }
            }
        }
        if self.opts.crc64 {
            let server = match result.crc64 {
                Some(c) => Some(c),
                None => {
                    self.ctx
                        .store
                        .head_object(self.bucket, self.key)
                        .await?
                        .crc64
                }
            };
            let local = cp.parts.iter().zip(l).try_fold(0u64, |acc, (p, s)| {
                p.crc64.map(|c| crc64_combine(acc, c, s.len))
            });
            if let (Some(s), Some(mine)) = (server, local) {
                if s != mine {
                    problem = Some(format!("server CRC-64 {s}, expected {mine}"));
                }
            }
        }
        match problem {
            None => Ok(()),
            Some(p) => {
                // Not deleted: the completed object already replaced the
                // previous version, and deleting it would lose both. The
                // file fails, and the message says what to look at.
                Err(TransferError::Integrity(format!(
                    "{}/{}: {p}; the object is kept as stored (deleting it would lose the version it replaced); rerun without -u to send it again",
                    self.bucket, self.key
                )))
            }
        }
    }

    async fn run_job(
        &self,
        file: Arc<File>,
        job: Job,
        upload_id: &str,
        algorithm: Option<Algorithm>,
    ) -> Result<PartDone, TransferError> {
        let want = digests::for_part(self.opts.checksum, endpoint(self.ctx, self.opts), algorithm);
        let _permit = self
            .opts
            .reserve(match &job {
                Job::Send(s) | Job::Verify(s, _) => s.len,
            })
            .await;
        if let Job::Verify(spec, listed) = &job {
            if let Some(done) = self.reuse(&file, *spec, listed, want).await? {
                return Ok(done);
            }
        }
        let spec = match job {
            Job::Send(s) | Job::Verify(s, _) => s,
        };
        let mut attempt = 1;
        let (d, info) = loop {
            let d = read_part(&file, self.path, spec.offset, spec.len, want).await?;
            let sent = self
                .ctx
                .store
                .upload_part(self.bucket, self.key, upload_id, spec.number, d.body())
                .await;
            match sent {
                Ok(info) => break (d, info),
                // Read again on the next attempt: a body the server refused
                // for its digest may have broken in this process's memory.
                Err(e) if worth_resending(&e) && attempt < PART_ATTEMPTS => {
                    tracing::debug!(part = spec.number, attempt, error = %e, "retrying part");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        check_part(self.key, spec.number, &d, &info)?;
        self.ctx.progress.advance(spec.len);
        Ok(PartDone {
            record: record(spec.number, info.etag, &d),
            sent: true,
            len: spec.len,
        })
    }

    /// A part the server holds but the checkpoint does not: kept if the
    /// file's bytes match it, by the listed checksum where there is one,
    /// else by the MD5 its ETag is.
    async fn reuse(
        &self,
        file: &Arc<File>,
        spec: PartSpec,
        listed: &PartInfo,
        want: Want,
    ) -> Result<Option<PartDone>, TransferError> {
        let by_checksum = listed.checksum.is_some() && want.checksum.is_some();
        let want = Want {
            md5: want.md5 || !by_checksum,
            ..want
        };
        let d = read_part(file, self.path, spec.offset, spec.len, want).await?;
        let same = if by_checksum {
            d.checksum == listed.checksum
        } else {
            same_etag(&listed.etag, &d.md5_hex())
        };
        if !same {
            return Ok(None);
        }
        self.ctx.progress.advance(spec.len);
        Ok(Some(PartDone {
            record: record(spec.number, listed.etag.clone(), &d),
            sent: false,
            len: spec.len,
        }))
    }
}

/// What the server says it stored for a single PUT must be what was
/// sent; `kept` says what became of the object.
pub(crate) fn check_put(
    bucket: &str,
    key: &str,
    d: &Digested,
    put: &crate::store::PutResult,
    kept: &str,
) -> Result<(), TransferError> {
    // The server already checked the body against its digest; these are a
    // second look at what it says it stored.
    check_stored(d.checksum.as_ref(), put.checksum.as_ref())
        .map_err(|p| TransferError::Integrity(format!("{bucket}/{key}: {p}; {kept}")))?;
    if let Some(md5) = d.md5 {
        if put.etag_kind == EtagKind::Md5 && !put.etag.eq_ignore_ascii_case(&hex::encode(md5)) {
            return Err(TransferError::Integrity(format!(
                "{bucket}/{key}: the server stored ETag {} but the file's MD5 is {}; {kept}",
                put.etag,
                hex::encode(md5)
            )));
        }
    }
    if let (Some(mine), Some(theirs)) = (d.crc64, put.crc64) {
        if mine != theirs {
            return Err(TransferError::Integrity(format!(
                "{bucket}/{key}: CRC-64 mismatch after upload (local {mine}, server {theirs}); {kept}"
            )));
        }
    }
    Ok(())
}

/// What the server says it stored for a part must be what was sent: its
/// ETag where that is an MD5, its checksum where it gave one.
pub(crate) fn check_part(
    key: &str,
    number: u32,
    d: &Digested,
    info: &PartInfo,
) -> Result<(), TransferError> {
    let md5_hex = d.md5_hex();
    if d.md5.is_some()
        && info.etag_kind == EtagKind::Md5
        && !info.etag.eq_ignore_ascii_case(&md5_hex)
    {
        return Err(TransferError::Integrity(format!(
            "{key}: part {number} stored with ETag {} but its MD5 is {md5_hex}",
            info.etag
        )));
    }
    if let (Some(mine), Some(theirs)) = (&d.checksum, &info.checksum) {
        if mine != theirs {
            return Err(TransferError::Integrity(format!(
                "{key}: part {number} stored with {theirs} but the data sent has {}",
                mine.to_base64()
            )));
        }
    }
    Ok(())
}

fn record(number: u32, etag: String, d: &Digested) -> RecordedPart {
    RecordedPart {
        number,
        etag,
        md5: d.md5_hex(),
        crc64: d.crc64,
        checksum: d.checksum.as_ref().map(Checksum::to_base64),
    }
}

/// [`read_and_digest`] on the blocking pool: reading and hashing a part
/// would stall the runtime worker every other transfer shares.
async fn read_part(
    file: &Arc<File>,
    path: &Path,
    offset: u64,
    len: u64,
    want: Want,
) -> Result<Digested, TransferError> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || read_and_digest(&f, offset, len, want))
        .await
        .expect("read task panicked")
        .map_err(io(path, "cannot read"))
}

/// The multipart ETag the parts' MD5s make; `None` unless every part was
/// sent with one (parts sent with a checksum record no MD5).
fn parts_etag(cp: &UploadCheckpoint) -> Option<String> {
    let md5s: Option<Vec<[u8; 16]>> = cp
        .parts
        .iter()
        .map(|p| hex::decode(&p.md5).ok().and_then(|v| v.try_into().ok()))
        .collect();
    md5s.map(|m| multipart_etag(&m))
}

/// The parts as CompleteMultipartUpload lists them.
fn completed_parts(cp: &UploadCheckpoint, algorithm: Option<Algorithm>) -> Vec<CompletedPart> {
    cp.parts
        .iter()
        .map(|p| CompletedPart {
            part_number: p.number,
            etag: p.etag.clone(),
            checksum: algorithm
                .zip(p.checksum.as_deref())
                .and_then(|(a, v)| Checksum::from_base64(a, v)),
        })
        .collect()
}

/// The algorithm an upload's parts carry, from its checkpoint.
fn upload_algorithm(cp: &UploadCheckpoint) -> Option<Algorithm> {
    cp.checksum.as_deref().and_then(Algorithm::parse)
}

/// The parts' CRCs combined in order: what the server must find for the
/// whole object. `None` unless every part has one.
fn full_object_checksum(
    algorithm: Option<Algorithm>,
    parts: &[CompletedPart],
    l: &[PartSpec],
) -> Option<Checksum> {
    let a = algorithm?;
    let mut acc: Option<u64> = None;
    for (p, s) in parts.iter().zip(l) {
        let c = p.checksum.as_ref()?.crc_value()?;
        acc = Some(match acc {
            None => c,
            Some(prev) => crc_combine(a, prev, c, s.len)?,
        });
    }
    Some(Checksum::crc(a, acc?))
}
