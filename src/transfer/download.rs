//! Downloads: into a hidden temporary file beside the destination, renamed
//! into place only once complete and verified, so the real name never holds
//! a partial file. Large objects arrive as concurrent ranged GETs; with a
//! checkpoint directory a rerun fetches only the ranges still missing.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use super::checkpoint::{CheckpointFile, DonePart, DownloadCheckpoint, LockError};
use super::parts::{choose_part_size, layout, PartSpec};
use super::paths::temp_path_for;
use super::resume::plan_download_resume;
use super::{io, Context, TransferError, TransferOptions};
use crate::checksum::{crc64_combine, Crc64};
use crate::mtime::{from_datetime, parse_mtime, to_filetime, MTIME_KEY};
use crate::store::{ByteStream, GetRequest, ObjectMeta, StoreError, StoreErrorKind};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOutcome {
    pub size: u64,
    pub bytes_received: u64,
    pub bytes_resumed: u64,
    pub multipart: bool,
    /// What the server said about the object it sent (GET or HEAD headers).
    pub meta: Option<ObjectMeta>,
}

/// Attempts per range; the store already retried the request itself, this
/// covers bodies that break mid-stream.
const RANGE_ATTEMPTS: u32 = 4;

/// The time to give the downloaded file: the `mtime` metadata when present,
/// else the object's Last-Modified.
pub fn stored_mtime(meta: &ObjectMeta) -> i128 {
    meta.metadata
        .get(MTIME_KEY)
        .and_then(|v| parse_mtime(v))
        .unwrap_or_else(|| from_datetime(meta.last_modified))
}

pub async fn download_file(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    dest: &Path,
) -> Result<DownloadOutcome, TransferError> {
    let meta = ctx.store.head_object(bucket, key).await?;
    download_object(ctx, opts, bucket, key, dest, meta).await
}

/// As [`download_file`], for a caller that already holds the object's HEAD.
pub async fn download_object(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    dest: &Path,
    meta: ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    if meta.size < opts.bigfile_threshold || meta.size == 0 {
        single_get(ctx, bucket, key, dest, &meta).await
    } else {
        ranged(ctx, opts, bucket, key, dest, &meta).await
    }
}

fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Creates the temporary file, and its directory when that is missing: in
/// a tree download most directories exist already, so trying the open
/// first saves a failed mkdir per file.
fn create_temp(path: &Path) -> Result<File, TransferError> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(io(dir, "cannot create directory"))?;
            open()
        }
        other => other,
    }
    .map_err(|e| TransferError::io(dir, "cannot write to directory", e))
}

/// fsync, set the mtime, rename into place. The fsync waits for the disk,
/// so it runs on the blocking pool: on a runtime worker it would stall
/// every other transfer scheduled there (with two cores, half of them).
async fn finalize(
    temp: &Path,
    dest: &Path,
    file: Arc<TempFile>,
    mtime: i128,
) -> Result<(), TransferError> {
    let (temp, dest) = (temp.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || {
        file.sync_all().map_err(io(&temp, "cannot flush"))?;
        filetime::set_file_handle_times(&file.file, None, Some(to_filetime(mtime)))
            .map_err(io(&temp, "cannot set modification time"))?;
        std::fs::rename(&temp, &dest).map_err(io(&dest, "cannot move download into place"))
    })
    .await
    .unwrap_or_else(joined)
}

/// A blocking task's failure: a panic is passed on; a task dropped by a
/// runtime that is shutting down means the transfer was interrupted.
fn joined<T>(e: tokio::task::JoinError) -> Result<T, TransferError> {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Err(TransferError::Interrupted),
    }
}

async fn single_get(
    ctx: &Context,
    bucket: &str,
    key: &str,
    dest: &Path,
    head: &ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let temp = temp_path_for(dest, &random_tag());
    let result = async {
        let mut file = create_temp(&temp)?;
        ctx.progress.start(key, head.size, 0);
        let out = if head.size == 0 {
            None
        } else {
            Some(
                ctx.store
                    .get_object(bucket, key, &GetRequest::whole())
                    .await?,
            )
        };
        let meta = out
            .as_ref()
            .map(|o| o.meta.clone())
            .unwrap_or_else(|| head.clone());
        // One whole-object check is enough: CRC-64 (OSS) when the store
        // gives one, as it costs a twentieth of MD5's CPU, else the MD5 that
        // a single-part ETag is.
        let check_md5 = meta.crc64.is_none() && meta.etag.len() == 32 && !meta.etag.contains('-');
        let mut md5 = check_md5.then(Md5::new);
        let mut crc = meta.crc64.map(|_| Crc64::new());
        let mut received = 0u64;
        if let Some(out) = out {
            let mut body = out.body;
            use std::io::Write;
            // A small object becomes one write.
            received = drain(&mut body, meta.size, |piece| {
                file.write_all(piece).map_err(io(&temp, "cannot write"))?;
                if let Some(m) = md5.as_mut() {
                    m.update(piece);
                }
                if let Some(c) = crc.as_mut() {
                    c.update(piece);
                }
                ctx.progress.advance(piece.len() as u64);
                Ok(())
            })
            .await?;
        }
        if received != meta.size {
            return Err(StoreError::new(
                StoreErrorKind::Truncated,
                format!("{bucket}/{key}: received {received} of {} bytes", meta.size),
            )
            .into());
        }
        if let Some(m) = md5 {
            let got = hex::encode(m.finalize());
            if !got.eq_ignore_ascii_case(&meta.etag) {
                return Err(TransferError::Integrity(format!(
                    "{bucket}/{key}: downloaded data has MD5 {got}, the object's ETag is {}",
                    meta.etag
                )));
            }
        }
        if let (Some(c), Some(expected)) = (crc, meta.crc64) {
            let got = c.finish();
            if got != expected {
                return Err(TransferError::Integrity(format!(
                    "{bucket}/{key}: downloaded data has CRC-64 {got}, the store says {expected}"
                )));
            }
        }
        finalize(
            &temp,
            dest,
            Arc::new(TempFile::new(file)),
            stored_mtime(&meta),
        )
        .await?;
        ctx.progress.finish();
        Ok(DownloadOutcome {
            size: meta.size,
            bytes_received: received,
            meta: Some(meta),
            ..Default::default()
        })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn same_object(cp: &DownloadCheckpoint, meta: &ObjectMeta) -> bool {
    cp.etag == meta.etag
        && cp.size == meta.size
        && cp.last_modified == meta.last_modified.unix_timestamp()
}

fn absolute(dest: &Path) -> PathBuf {
    std::path::absolute(dest).unwrap_or_else(|_| dest.to_path_buf())
}

async fn ranged(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    dest: &Path,
    meta: &ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let source_id = format!("{}/{}/{}", opts.endpoint_id, bucket, key);
    let dest_abs = absolute(dest);
    let ckpt = match &opts.checkpoint_dir {
        Some(dir) => Some(
            CheckpointFile::open::<DownloadCheckpoint>(
                dir,
                &source_id,
                &dest_abs.to_string_lossy(),
            )
            .map_err(|e| match e {
                LockError::Busy(p) => TransferError::Busy(format!(
                    "{}: another ferry process is already downloading it (checkpoint {})",
                    dest.display(),
                    p.display()
                )),
                LockError::Io { path, source } => TransferError::io(path, "checkpoint", source),
            })?,
        ),
        None => None,
    };
    let mut previous = None;
    if let Some(c) = &ckpt {
        match c.load::<DownloadCheckpoint>() {
            Ok(Some(cp))
                if cp.endpoint == opts.endpoint_id
                    && cp.bucket == bucket
                    && cp.key == key
                    && cp.destination == dest_abs =>
            {
                if same_object(&cp, meta) {
                    previous = Some(cp);
                } else {
                    ctx.progress.note(&format!(
                        "{bucket}/{key} changed since the interrupted download; starting over"
                    ));
                    let _ = std::fs::remove_file(&cp.temp);
                    c.remove();
                }
            }
            Ok(Some(_)) => {
                ctx.progress.note(&format!(
                    "ignoring checkpoint {}: it belongs to another transfer",
                    c.path.display()
                ));
                c.remove();
            }
            Ok(None) => {}
            Err(problem) => {
                ctx.progress.note(&format!(
                    "ignoring checkpoint {}: {problem}; starting the download over",
                    c.path.display()
                ));
                c.remove();
            }
        }
    }
    let (mut cp, todo, file) = match previous {
        Some(cp) => {
            let temp_len = std::fs::metadata(&cp.temp).ok().map(|m| m.len());
            let l = layout(meta.size, cp.part_size);
            let done: Vec<u32> = cp.done.iter().map(|d| d.number).collect();
            let todo = plan_download_resume(&l, &done, temp_len, meta.size);
            let mut cp = cp;
            if todo.len() == l.len() {
                cp.done.clear();
            }
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&cp.temp)
                .map_err(io(&cp.temp, "cannot open"))?;
            file.set_len(meta.size)
                .map_err(io(&cp.temp, "cannot size"))?;
            ctx.progress.note(&format!(
                "resuming {bucket}/{key}: {} of {} ranges already downloaded",
                l.len() - todo.len(),
                l.len()
            ));
            (cp, todo, file)
        }
        None => {
            let tag = if ckpt.is_some() {
                // Stable, so the checkpoint can find its temp file again.
                hex::encode(&md5::Md5::digest(source_id.as_bytes())[..6])
            } else {
                random_tag()
            };
            let temp = temp_path_for(dest, &tag);
            let file = create_temp(&temp)?;
            file.set_len(meta.size).map_err(io(&temp, "cannot size"))?;
            let part_size = choose_part_size(meta.size, opts.part_size);
            let cp = DownloadCheckpoint {
                endpoint: opts.endpoint_id.clone(),
                bucket: bucket.into(),
                key: key.into(),
                etag: meta.etag.clone(),
                size: meta.size,
                last_modified: meta.last_modified.unix_timestamp(),
                destination: dest_abs.clone(),
                temp,
                part_size,
                done: Vec::new(),
            };
            if let Some(c) = &ckpt {
                c.save(&cp)
                    .map_err(io(&c.path, "cannot write checkpoint"))?;
            }
            let todo = layout(meta.size, part_size);
            (cp, todo, file)
        }
    };
    let file = Arc::new(TempFile::new(file));
    let result = fetch_ranges(
        ctx,
        opts,
        bucket,
        key,
        meta,
        &mut cp,
        todo,
        &file,
        ckpt.as_ref(),
    )
    .await;
    match result {
        Ok(outcome) => {
            finalize(&cp.temp, dest, file.clone(), stored_mtime(meta)).await?;
            if let Some(c) = ckpt {
                c.finish();
            }
            ctx.progress.finish();
            Ok(outcome)
        }
        Err(e) => {
            let keep = ckpt.is_some() && !matches!(e, TransferError::Integrity(_));
            if keep {
                let _ = file.sync_data();
                let _ = ckpt.as_ref().expect("checked").save(&cp);
            } else {
                let _ = std::fs::remove_file(&cp.temp);
                if let Some(c) = ckpt {
                    c.finish();
                }
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fetch_ranges(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    meta: &ObjectMeta,
    cp: &mut DownloadCheckpoint,
    todo: Vec<PartSpec>,
    file: &Arc<TempFile>,
    ckpt: Option<&CheckpointFile>,
) -> Result<DownloadOutcome, TransferError> {
    let l = layout(meta.size, cp.part_size);
    let resumed: u64 = l
        .iter()
        .filter(|p| !todo.iter().any(|t| t.number == p.number))
        .map(|p| p.len)
        .sum();
    ctx.progress.start(key, meta.size, resumed);
    let want_crc = meta.crc64.is_some();
    let mut stream = futures::stream::iter(todo)
        .map(|spec| {
            fetch_range(
                ctx,
                opts,
                bucket,
                key,
                spec,
                file.clone(),
                want_crc,
                &meta.etag,
                &cp.temp,
            )
        })
        .buffer_unordered(opts.parallel.max(1));
    let mut received = 0;
    let mut last_save = Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(TransferError::Interrupted),
            n = stream.next() => n,
        };
        let Some(done) = next else { break };
        let (spec, crc) = done?;
        received += spec.len;
        cp.done.push(DonePart {
            number: spec.number,
            crc64: crc,
        });
        if let Some(c) = ckpt {
            if last_save.elapsed() >= Duration::from_millis(500) {
                // Data first, then the record that vouches for it. Flushing
                // many MiB can take a while, so not on a runtime worker.
                let (f, temp) = (file.clone(), cp.temp.clone());
                tokio::task::spawn_blocking(move || {
                    f.sync_data().map_err(io(&temp, "cannot flush"))
                })
                .await
                .unwrap_or_else(joined)?;
                c.save(&*cp)
                    .map_err(io(&c.path, "cannot write checkpoint"))?;
                last_save = Instant::now();
            }
        }
    }
    drop(stream);
    cp.done.sort_by_key(|d| d.number);
    cp.done.dedup_by_key(|d| d.number);
    if let Some(expected) = meta.crc64 {
        let combined = cp.done.iter().zip(&l).try_fold(0u64, |acc, (d, s)| {
            d.crc64.map(|c| crc64_combine(acc, c, s.len))
        });
        match combined {
            Some(got) if got != expected => {
                return Err(TransferError::Integrity(format!(
                    "{bucket}/{key}: downloaded data has CRC-64 {got}, the store says {expected}"
                )))
            }
            _ => {}
        }
    }
    let on_disk = file.metadata().map_err(io(&cp.temp, "cannot stat"))?.len();
    if on_disk != meta.size || cp.done.len() != l.len() {
        return Err(TransferError::Integrity(format!(
            "{bucket}/{key}: download incomplete ({} of {} ranges, {on_disk} of {} bytes)",
            cp.done.len(),
            l.len(),
            meta.size
        )));
    }
    Ok(DownloadOutcome {
        size: meta.size,
        bytes_received: received,
        bytes_resumed: resumed,
        multipart: true,
        meta: Some(meta.clone()),
    })
}

#[allow(clippy::too_many_arguments)]
async fn fetch_range(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    spec: PartSpec,
    file: Arc<TempFile>,
    want_crc: bool,
    etag: &str,
    temp: &Path,
) -> Result<(PartSpec, Option<u64>), TransferError> {
    let mut attempt = 1;
    loop {
        match fetch_range_once(ctx, opts, bucket, key, spec, &file, want_crc, etag, temp).await {
            Ok(crc) => return Ok((spec, crc)),
            Err(TransferError::Store(e)) if e.is_retryable() && attempt < RANGE_ATTEMPTS => {
                tracing::debug!(part = spec.number, attempt, error = %e, "retrying range");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A download's temporary file, with room for the one writeback hint it
/// may have in flight.
struct TempFile {
    file: File,
    writeback_busy: std::sync::atomic::AtomicBool,
}

impl TempFile {
    fn new(file: File) -> TempFile {
        TempFile {
            file,
            writeback_busy: Default::default(),
        }
    }
}

impl std::ops::Deref for TempFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

/// Asks the kernel to start writing the file's dirty pages to disk now,
/// while the rest is still arriving, so the fsync before the rename finds
/// little left to do instead of flushing the whole file at the end. The
/// call can wait when the disk queue is full, hence the blocking pool; and
/// at most one is in flight per file, so a slow disk costs one waiting
/// thread, not one per range. A skipped hint loses nothing: the next one
/// covers the whole file, and the fsync is what guarantees it.
fn start_writeback(file: &Arc<TempFile>) {
    use std::sync::atomic::Ordering;
    if file.writeback_busy.swap(true, Ordering::AcqRel) {
        return;
    }
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor stays open while `file` is alive, and
            // sync_file_range reads no memory of ours. Offset 0 and length
            // 0 mean the whole file.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
        file.writeback_busy.store(false, Ordering::Release);
    });
}

/// How much of a range is gathered before it is written. Each chunk goes
/// to its offset while it is still in the CPU cache: collecting a whole
/// part first and writing it in one call made the kernel's page-cache copy
/// the most expensive step of a download (see docs/benchmarks.md).
const WRITE_BUF: usize = 256 * 1024;

#[allow(clippy::too_many_arguments)]
async fn fetch_range_once(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    spec: PartSpec,
    file: &Arc<TempFile>,
    want_crc: bool,
    etag: &str,
    temp: &Path,
) -> Result<Option<u64>, TransferError> {
    use std::os::unix::fs::FileExt;
    let _permit = opts.reserve(WRITE_BUF.min(spec.len as usize) as u64).await;
    let out = ctx
        .store
        .get_object(
            bucket,
            key,
            &GetRequest::range(spec.offset..spec.offset + spec.len).if_match(Some(etag)),
        )
        .await?;
    let mut body = out.body;
    let mut crc = want_crc.then(Crc64::new);
    let mut written = 0u64;
    let received = drain(&mut body, spec.len, |piece| {
        file.write_all_at(piece, spec.offset + written)
            .map_err(|e| TransferError::io(temp, "cannot write", e))?;
        if let Some(c) = crc.as_mut() {
            c.update(piece);
        }
        written += piece.len() as u64;
        Ok(())
    })
    .await?;
    if received != spec.len {
        return Err(StoreError::new(
            StoreErrorKind::Truncated,
            format!(
                "{bucket}/{key}: range {} returned {received} of {} bytes",
                spec.number, spec.len
            ),
        )
        .into());
    }
    start_writeback(file);
    // Counted once the range is whole, so a retried range is not counted twice.
    ctx.progress.advance(spec.len);
    Ok(crc.map(|c| c.finish()))
}

/// Reads a body to its end, handing it to `sink` in pieces of up to
/// `WRITE_BUF` bytes: the network delivers a few KiB at a time, and each
/// piece is written while it is still in the CPU cache. Writing to the page
/// cache is quick, so `sink` runs inline rather than paying a thread hop
/// per write. Stops once more than `expected` bytes arrived, without
/// handing on the excess; returns how many bytes arrived.
async fn drain(
    body: &mut ByteStream,
    expected: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), TransferError>,
) -> Result<u64, TransferError> {
    let cap = WRITE_BUF.min(expected as usize).max(1);
    let mut buf = Vec::with_capacity(cap);
    let mut received = 0u64;
    while let Some(chunk) = body.try_next().await? {
        received += chunk.len() as u64;
        if received > expected {
            return Ok(received);
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= cap {
            sink(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        sink(&buf)?;
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(chunks: &[usize]) -> ByteStream {
        let items: Vec<Result<Bytes, StoreError>> = chunks
            .iter()
            .enumerate()
            .map(|(i, &n)| Ok(Bytes::from(vec![i as u8; n])))
            .collect();
        Box::pin(futures::stream::iter(items))
    }

    fn drained(chunks: &[usize], expected: u64) -> (u64, Vec<usize>, Vec<u8>) {
        let mut pieces = Vec::new();
        let mut data = Vec::new();
        let got = futures::executor::block_on(drain(&mut body(chunks), expected, |p| {
            pieces.push(p.len());
            data.extend_from_slice(p);
            Ok(())
        }))
        .unwrap();
        (got, pieces, data)
    }

    #[test]
    fn drain_gathers_small_chunks_into_pieces_in_order() {
        let (got, pieces, data) = drained(&[16 * 1024; 40], 640 * 1024);
        assert_eq!(got, 640 * 1024);
        assert_eq!(pieces, vec![WRITE_BUF, WRITE_BUF, 128 * 1024]);
        let want: Vec<u8> = (0..40u8)
            .flat_map(|i| std::iter::repeat_n(i, 16 * 1024))
            .collect();
        assert_eq!(data, want);
    }

    #[test]
    fn drain_stops_at_excess_and_hands_none_of_it_on() {
        // The caller sees 200 and fails the range; nothing past byte 150
        // may have reached the file.
        let (got, _, data) = drained(&[100, 100, 100], 150);
        assert_eq!(got, 200);
        assert!(data.len() <= 150, "{} bytes handed on", data.len());
        let (got, pieces, _) = drained(&[10, 10], 50);
        assert_eq!((got, pieces), (20, vec![20]));
    }
}
