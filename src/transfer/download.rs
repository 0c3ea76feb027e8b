//! Downloads: into a hidden temporary file beside the destination, renamed
//! into place only once complete and verified, so the real name never holds
//! a partial file. Large objects arrive as concurrent ranged GETs, all
//! pinned to the ETag the download started from; with a checkpoint
//! directory a rerun fetches only the ranges still missing. Every path is
//! reached through [`Destination`], never through a link.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use super::checkpoint::{CheckpointFile, DonePart, DownloadCheckpoint, LockError};
use super::dest::{temp_name, DestDir, Destination};
use super::parts::{choose_part_size, layout, PartSpec};
use super::resume::plan_download_resume;
use super::verify::{self, Check, Crc};
use super::{io, Context, TransferError, TransferOptions};
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
    /// The whole-object check that passed.
    pub check: Option<Check>,
}

/// Attempts per range; the store already retried the request itself (and
/// those errors are final), this covers bodies that break mid-stream.
const RANGE_ATTEMPTS: u32 = 4;

/// The time to give the downloaded file: the `mtime` metadata when present,
/// else the object's Last-Modified.
pub fn stored_mtime(meta: &ObjectMeta) -> i128 {
    meta.metadata
        .get(MTIME_KEY)
        .and_then(|v| parse_mtime(v))
        .unwrap_or_else(|| from_datetime(meta.last_modified))
}

/// Where one download goes: a checked relative path below a destination.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub dest: &'a Destination,
    pub rel: &'a Path,
}

impl Target<'_> {
    /// The destination file as the user would name it, for messages.
    pub fn display_path(&self) -> PathBuf {
        self.dest.root().join(self.rel)
    }
}

/// A file path as the user gave it: its directory is followed (it is the
/// user's, like `cp`'s), its last name is written without following.
pub fn file_target(path: &Path) -> Result<(Destination, PathBuf), TransferError> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((Destination::new(dir), PathBuf::from(name))),
        _ => Err(TransferError::io(
            path,
            "cannot download to",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )),
    }
}

/// Downloads one object to a file path (see [`file_target`]).
pub async fn download_file(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<DownloadOutcome, TransferError> {
    let (root, name) = file_target(path)?;
    let meta = ctx.store.head_object(bucket, key).await?;
    let target = Target {
        dest: &root,
        rel: &name,
    };
    download_object(ctx, opts, bucket, key, target, meta).await
}

/// How often one file starts over because the object changed under it
/// before ferry gives up on it for this run.
const RESTARTS: u32 = 3;

/// As [`download_file`], for a caller that already holds the object's HEAD.
pub async fn download_object(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    target: Target<'_>,
    meta: ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    download_pinned(ctx, opts, bucket, key, None, target, meta).await
}

/// [`download_object`] of one version (`version_id`, whose HEAD `meta`
/// is), every GET naming it. Only when asked: reading by version needs
/// `s3:GetObjectVersion`, which a user allowed `s3:GetObject` may lack.
pub async fn download_pinned(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    target: Target<'_>,
    meta: ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let mut meta = meta;
    let mut restarts = 0;
    loop {
        let result = if meta.size < opts.bigfile_threshold || meta.size == 0 {
            single_get(ctx, bucket, key, version_id, target, &meta).await
        } else {
            ranged(ctx, opts, bucket, key, version_id, target, &meta).await
        };
        match result {
            Err(TransferError::Store(e))
                if e.kind == StoreErrorKind::Changed && restarts < RESTARTS =>
            {
                // The ranges fetched so far belong to the old version: they
                // were discarded, and the file starts over from a new HEAD.
                restarts += 1;
                ctx.progress.note(&format!(
                    "{bucket}/{key} was replaced on the server during the download; starting over"
                ));
                meta = crate::store::head_at(ctx.store.as_ref(), bucket, key, version_id).await?;
            }
            other => return other,
        }
    }
}

fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A download's temporary file, open and locked, in its directory.
struct Temp {
    dir: DestDir,
    name: OsString,
    file: Arc<TempFile>,
}

impl Temp {
    fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    fn remove(&self) {
        let _ = self.dir.remove(&self.name);
    }
}

/// Why a temporary could not be had: the caller picks the message.
enum TempError {
    /// Another process holds it.
    Busy,
    Failed(TransferError),
}

/// Locks a temporary for as long as it is open: a second process (another
/// checkpoint directory, another spelling of the same destination) that
/// arrives at the same name finds it held instead of truncating finished
/// ranges; and `ferry checkpoint clean` can tell a live one from a
/// leftover.
fn lock_temp(file: File, path: &Path) -> Result<File, TempError> {
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(TempError::Busy),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(TempError::Failed(TransferError::io(path, "cannot lock", e)))
        }
    }
}

/// A fresh temporary with a random tag: `O_EXCL`, so never anyone else's.
fn new_temp(dir: DestDir, name: &OsStr) -> Result<Temp, TransferError> {
    loop {
        let tmp = temp_name(name, &random_tag());
        match dir.create_new(&tmp) {
            Ok(f) => {
                let path = dir.path().join(&tmp);
                let file = match lock_temp(f, &path) {
                    Ok(f) => f,
                    // Nobody else can hold a file created a moment ago under
                    // a random name; were it so, it is theirs to remove and
                    // another name does.
                    Err(TempError::Busy) => continue,
                    Err(TempError::Failed(e)) => {
                        let _ = dir.remove(&tmp);
                        return Err(e);
                    }
                };
                return Ok(Temp {
                    dir,
                    name: tmp,
                    file: Arc::new(TempFile::new(file)),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(TransferError::io(
                    dir.path(),
                    "cannot write to directory",
                    e,
                ))
            }
        }
    }
}

/// The temporary of a resumable download, under a name stable across runs.
/// `fresh` truncates what is there (nothing vouches for it); otherwise it
/// is opened as the checkpoint left it. Busy if another process has it.
fn stable_temp(dir: DestDir, tmp: OsString, fresh: bool) -> Result<Temp, TempError> {
    let path = dir.path().join(&tmp);
    let opened = if fresh {
        match dir.create_new(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => dir.open_existing(&tmp),
            other => other,
        }
    } else {
        dir.open_existing(&tmp)
    };
    let file = opened.map_err(|e| TempError::Failed(TransferError::io(&path, "cannot open", e)))?;
    let file = lock_temp(file, &path)?;
    if fresh {
        file.set_len(0)
            .map_err(|e| TempError::Failed(TransferError::io(&path, "cannot truncate", e)))?;
    }
    Ok(Temp {
        dir,
        name: tmp,
        file: Arc::new(TempFile::new(file)),
    })
}

/// The directory of `target`, created when missing, and the final name.
fn target_dir<'a>(target: Target<'a>) -> Result<(DestDir, &'a OsStr), TransferError> {
    match target.dest.dir_for(target.rel, true)? {
        Some(found) => Ok(found),
        None => Err(TransferError::io(
            target.display_path(),
            "cannot create directory",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )),
    }
}

/// fsync, set the mtime, rename into place, fsync the directory. The
/// fsyncs wait for the disk, so they run on the blocking pool: on a
/// runtime worker they would stall every other transfer scheduled there
/// (with two cores, half of them).
async fn finalize(temp: Arc<Temp>, name: OsString, mtime: i128) -> Result<(), TransferError> {
    tokio::task::spawn_blocking(move || {
        let path = temp.path();
        temp.file.sync_all().map_err(io(&path, "cannot flush"))?;
        filetime::set_file_handle_times(&temp.file.file, None, Some(to_filetime(mtime)))
            .map_err(io(&path, "cannot set modification time"))?;
        temp.dir.publish(&temp.name, &name).map_err(io(
            &temp.dir.path().join(&name),
            "cannot move download into place",
        ))
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
    version_id: Option<&str>,
    target: Target<'_>,
    head: &ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let (dir, name) = target_dir(target)?;
    let name = name.to_os_string();
    let temp = Arc::new(new_temp(dir, &name)?);
    let result = async {
        ctx.progress.start(key, head.size, 0);
        let out = if head.size == 0 {
            None
        } else {
            Some(
                ctx.store
                    .get_object(bucket, key, &GetRequest::whole().version(version_id))
                    .await?,
            )
        };
        let meta = out
            .as_ref()
            .map(|o| o.meta.clone())
            .unwrap_or_else(|| head.clone());
        // One whole-object check, the strongest the object allows (see
        // `verify`): a stored CRC costs a twentieth of MD5's CPU; the MD5
        // the ETag is only where the store vouches that it is one.
        let check = Check::choose(&meta, true);
        let mut digest = verify::InStream::new(&check);
        let mut received = 0u64;
        if let Some(out) = out {
            let mut body = out.body;
            let path = temp.path();
            let mut file: &File = &temp.file.file;
            use std::io::Write;
            // A small object becomes one write.
            received = drain(&mut body, meta.size, |piece| {
                file.write_all(piece).map_err(io(&path, "cannot write"))?;
                digest.update(piece);
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
        let what = format!("{bucket}/{key}");
        digest
            .verdict(&what, &check)
            .map_err(TransferError::Integrity)?;
        if check.reads_back(true) {
            read_back(ctx, bucket, key, &temp, &meta, &check).await?;
        }
        tracing::debug!("{what}: verified by {}", check.describe());
        finalize(temp.clone(), name.clone(), stored_mtime(&meta)).await?;
        ctx.progress.finish();
        Ok(DownloadOutcome {
            size: meta.size,
            bytes_received: received,
            meta: Some(meta),
            check: Some(check),
            ..Default::default()
        })
    }
    .await;
    if result.is_err() {
        temp.remove();
    }
    result
}

/// Blocking file work off the runtime; an I/O error is named after `path`.
async fn blocking<T: Send + 'static>(
    path: &Path,
    op: &'static str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, TransferError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(io(path, op)),
        Err(e) => joined(e),
    }
}

/// The CRC of one range of the temporary, read back.
fn crc_of_range(file: &File, kind: verify::CrcKind, s: &PartSpec) -> std::io::Result<u64> {
    let mut h = Crc::new(kind);
    verify::each_chunk(file, s.offset, s.len, |c| h.update(c))?;
    Ok(h.finish())
}

/// The checks that need the whole file in order (SHAs of a ranged
/// download, composite checksums), made on the temporary before it is
/// published.
async fn read_back(
    ctx: &Context,
    bucket: &str,
    key: &str,
    temp: &Arc<Temp>,
    meta: &ObjectMeta,
    check: &Check,
) -> Result<(), TransferError> {
    let what = format!("{bucket}/{key}");
    let path = temp.path();
    match check {
        Check::Sha { expected } => {
            let (t, a, size) = (temp.clone(), expected.algorithm, meta.size);
            let got = blocking(&path, "cannot read back", move || {
                verify::digest_range(&t.file, a, 0, size)
            })
            .await?;
            verify::digest_verdict(&what, check, &got, expected)
                .map_err(TransferError::Integrity)?;
        }
        Check::Composite { expected, parts } => {
            let bounds =
                crate::store::part_bounds(ctx.store.as_ref(), bucket, key, *parts, meta).await?;
            let (t, a, b) = (temp.clone(), expected.algorithm, bounds.clone());
            let (got, each) = blocking(&path, "cannot read back", move || {
                verify::composite_from_file(
                    &t.file,
                    a,
                    &b.iter().map(|p| p.range.clone()).collect::<Vec<_>>(),
                )
            })
            .await?;
            // Where the store gave a part's own checksum (AWS does), each
            // part is held to it; the composite covers the rest.
            for (p, mine) in bounds.iter().zip(&each) {
                if let Some(theirs) = p.checksum.as_ref().filter(|c| {
                    c.kind == crate::checksum::ChecksumType::FullObject
                        && c.checksum.algorithm == mine.algorithm
                }) {
                    if theirs.checksum != *mine {
                        return Err(TransferError::Integrity(verify::mismatch(
                            &format!("{what} part {}", p.number),
                            check,
                            &mine.to_base64(),
                            &theirs.checksum.to_base64(),
                        )));
                    }
                }
            }
            if got != *expected {
                return Err(TransferError::Integrity(verify::mismatch(
                    &what,
                    check,
                    &format!("{}-{parts}", got.to_base64()),
                    &format!("{}-{parts}", expected.to_base64()),
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

fn same_object(cp: &DownloadCheckpoint, meta: &ObjectMeta) -> bool {
    cp.etag == meta.etag
        && cp.size == meta.size
        && cp.last_modified == meta.last_modified.unix_timestamp()
}

/// The stable temporary name of a resumable download: from the source and
/// the canonical destination, so every run of the same transfer (whatever
/// the checkpoint directory or the spelling of the path) meets at one
/// locked file instead of two runs writing one file unawares.
fn stable_tag(source_id: &str, canonical: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h = Md5::new();
    h.update(source_id.as_bytes());
    h.update([0]);
    h.update(canonical.as_os_str().as_bytes());
    hex::encode(&h.finalize()[..8])
}

fn busy(target: Target<'_>, what: &str) -> TransferError {
    TransferError::Busy(format!(
        "{}: another ferry process is already downloading it ({what})",
        target.display_path().display()
    ))
}

async fn ranged(
    ctx: &Context,
    opts: &TransferOptions,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    target: Target<'_>,
    meta: &ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let source_id = format!("{}/{}/{}", opts.endpoint_id, bucket, key);
    let (dir, name) = target_dir(target)?;
    let name = name.to_os_string();
    let canonical = dir.canonical().join(&name);
    let ckpt = match &opts.checkpoint_dir {
        Some(cdir) => Some(
            CheckpointFile::open::<DownloadCheckpoint>(cdir, &source_id, canonical.as_os_str())
                .map_err(|e| match e {
                    LockError::Busy(p) => busy(target, &format!("checkpoint {}", p.display())),
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
                    && cp.destination == canonical
                    // The temporary must be in this directory: a record
                    // naming another place is not followed there.
                    && cp.temp.parent() == Some(dir.canonical()) =>
            {
                if same_object(&cp, meta) {
                    previous = Some(cp);
                } else {
                    ctx.progress.note(&format!(
                        "{bucket}/{key} changed since the interrupted download; starting over"
                    ));
                    if let Some(n) = cp.temp.file_name() {
                        let _ = dir.remove(n);
                    }
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
    let resumable = ckpt.is_some();
    let l_for = |part_size| layout(meta.size, part_size);
    let (mut cp, todo, temp) = match previous {
        Some(cp) => {
            let tmp = cp.temp.file_name().unwrap_or_default().to_os_string();
            let temp = match stable_temp(dir, tmp, false) {
                Ok(t) => t,
                Err(TempError::Busy) => return Err(busy(target, "its temporary file is locked")),
                Err(TempError::Failed(e)) => return Err(e),
            };
            let temp_len = temp.file.metadata().ok().map(|m| m.len());
            let l = l_for(cp.part_size);
            let done: Vec<u32> = cp.done.iter().map(|d| d.number).collect();
            let todo = plan_download_resume(&l, &done, temp_len, meta.size);
            let mut cp = cp;
            if todo.len() == l.len() {
                cp.done.clear();
            }
            temp.file
                .set_len(meta.size)
                .map_err(io(&temp.path(), "cannot size"))?;
            ctx.progress.note(&format!(
                "resuming {bucket}/{key}: {} of {} ranges already downloaded",
                l.len() - todo.len(),
                l.len()
            ));
            (cp, todo, temp)
        }
        None => {
            let temp = if resumable {
                let tmp = temp_name(&name, &stable_tag(&source_id, &canonical));
                match stable_temp(dir, tmp, true) {
                    Ok(t) => t,
                    Err(TempError::Busy) => {
                        return Err(busy(target, "its temporary file is locked"))
                    }
                    Err(TempError::Failed(e)) => return Err(e),
                }
            } else {
                new_temp(dir, &name)?
            };
            temp.file
                .set_len(meta.size)
                .map_err(io(&temp.path(), "cannot size"))?;
            let part_size = choose_part_size(meta.size, opts.part_size);
            let cp = DownloadCheckpoint {
                endpoint: opts.endpoint_id.clone(),
                bucket: bucket.into(),
                key: key.into(),
                etag: meta.etag.clone(),
                size: meta.size,
                last_modified: meta.last_modified.unix_timestamp(),
                destination: canonical.clone(),
                temp: temp.dir.canonical().join(&temp.name),
                part_size,
                crc: None,
                done: Vec::new(),
            };
            if let Some(c) = &ckpt {
                if let Err(e) = c.save(&cp) {
                    temp.remove();
                    return Err(TransferError::io(&c.path, "cannot write checkpoint", e));
                }
            }
            let todo = l_for(part_size);
            (cp, todo, temp)
        }
    };
    let temp = Arc::new(temp);
    let check = Check::choose(meta, false);
    let crc_name = check.range_crc().map(|k| k.name().to_string());
    if cp.crc != crc_name {
        // Range CRCs of another algorithm say nothing here; the ranges
        // are hashed again from the temporary at the end.
        for d in &mut cp.done {
            d.crc64 = None;
        }
        cp.crc = crc_name;
    }
    let ranges = Ranges {
        ctx,
        opts,
        bucket,
        key,
        version_id,
        meta,
        temp: &temp,
        check: &check,
    };
    let result = fetch_ranges(&ranges, &mut cp, todo, ckpt.as_ref()).await;
    let result = match result {
        Ok(outcome) => finalize(temp.clone(), name, stored_mtime(meta))
            .await
            .map(|()| outcome),
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => {
            if let Some(c) = ckpt {
                c.finish();
            }
            ctx.progress.finish();
            Ok(outcome)
        }
        Err(e) => {
            // What was fetched can be resumed, unless it is wrong (failed
            // its check) or of a version that no longer exists.
            let changed =
                matches!(&e, TransferError::Store(s) if s.kind == StoreErrorKind::Changed);
            let keep = ckpt.is_some() && !matches!(e, TransferError::Integrity(_)) && !changed;
            if keep {
                let _ = temp.file.sync_data();
                let _ = ckpt.as_ref().expect("checked").save(&cp);
            } else {
                temp.remove();
                if let Some(c) = ckpt {
                    c.finish();
                }
            }
            Err(e)
        }
    }
}

/// What every range of one download shares.
struct Ranges<'a> {
    ctx: &'a Context,
    opts: &'a TransferOptions,
    bucket: &'a str,
    key: &'a str,
    version_id: Option<&'a str>,
    meta: &'a ObjectMeta,
    temp: &'a Arc<Temp>,
    check: &'a Check,
}

async fn fetch_ranges(
    r: &Ranges<'_>,
    cp: &mut DownloadCheckpoint,
    todo: Vec<PartSpec>,
    ckpt: Option<&CheckpointFile>,
) -> Result<DownloadOutcome, TransferError> {
    let (ctx, meta, bucket, key) = (r.ctx, r.meta, r.bucket, r.key);
    let l = layout(meta.size, cp.part_size);
    let resumed: u64 = l
        .iter()
        .filter(|p| !todo.iter().any(|t| t.number == p.number))
        .map(|p| p.len)
        .sum();
    ctx.progress.start(key, meta.size, resumed);
    let mut stream = futures::stream::iter(todo)
        .map(|spec| r.fetch_range(spec))
        .buffer_unordered(r.opts.parallel.max(1));
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
                let temp = r.temp.clone();
                tokio::task::spawn_blocking(move || {
                    temp.file
                        .sync_data()
                        .map_err(io(&temp.path(), "cannot flush"))
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
    let what = format!("{bucket}/{key}");
    if let Check::Crc { kind, expected } = *r.check {
        // Ranges an older run fetched without a CRC (or with another) are
        // hashed from the temporary: the check covers every byte on disk.
        let missing: Vec<PartSpec> = cp
            .done
            .iter()
            .zip(&l)
            .filter(|(d, _)| d.crc64.is_none())
            .map(|(_, s)| *s)
            .collect();
        if !missing.is_empty() {
            let temp = r.temp.clone();
            let path = temp.path();
            let found = blocking(&path, "cannot read back", move || {
                missing
                    .iter()
                    .map(|s| crc_of_range(&temp.file, kind, s).map(|c| (s.number, c)))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .await?;
            for (n, c) in found {
                if let Some(d) = cp.done.iter_mut().find(|d| d.number == n) {
                    d.crc64 = Some(c);
                }
            }
        }
        let combined = cp
            .done
            .iter()
            .zip(&l)
            .try_fold(None::<u64>, |acc, (d, s)| {
                let c = d.crc64?;
                Some(Some(match acc {
                    None => c,
                    Some(a) => kind.combine(a, c, s.len),
                }))
            })
            .flatten();
        if let Some(got) = combined {
            verify::crc_verdict(&what, r.check, got, expected).map_err(TransferError::Integrity)?;
        }
    }
    if r.check.reads_back(false) {
        read_back(ctx, bucket, key, r.temp, meta, r.check).await?;
    }
    tracing::debug!("{what}: verified by {}", r.check.describe());
    let on_disk = r
        .temp
        .file
        .metadata()
        .map_err(io(&r.temp.path(), "cannot stat"))?
        .len();
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
        check: Some(r.check.clone()),
    })
}

impl Ranges<'_> {
    async fn fetch_range(&self, spec: PartSpec) -> Result<(PartSpec, Option<u64>), TransferError> {
        let mut attempt = 1;
        loop {
            match self.fetch_range_once(spec).await {
                Ok(crc) => return Ok((spec, crc)),
                Err(TransferError::Store(e))
                    if e.worth_another_try() && attempt < RANGE_ATTEMPTS =>
                {
                    tracing::debug!(part = spec.number, attempt, error = %e, "retrying range");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_range_once(&self, spec: PartSpec) -> Result<Option<u64>, TransferError> {
        use std::os::unix::fs::FileExt;
        let (bucket, key, meta) = (self.bucket, self.key, self.meta);
        let _permit = self
            .opts
            .reserve(WRITE_BUF.min(spec.len as usize) as u64)
            .await;
        // Pinned to the version the download started from: a server holding
        // another answers 412, and a server that ignores If-Match is caught
        // by the ETag it sends back.
        let out = self
            .ctx
            .store
            .get_object(
                bucket,
                key,
                &GetRequest::range(spec.offset..spec.offset + spec.len)
                    .if_match(Some(&meta.etag))
                    .version(self.version_id),
            )
            .await?;
        if out.meta.etag != meta.etag {
            return Err(StoreError::new(
                StoreErrorKind::Changed,
                format!(
                    "{bucket}/{key}: range {} came from ETag {}, the download started from {}",
                    spec.number, out.meta.etag, meta.etag
                ),
            )
            .into());
        }
        let mut body = out.body;
        let mut crc = self.check.range_crc().map(Crc::new);
        let mut written = 0u64;
        let file = &self.temp.file;
        let received = drain(&mut body, spec.len, |piece| {
            file.write_all_at(piece, spec.offset + written)
                .map_err(|e| TransferError::io(self.temp.path(), "cannot write", e))?;
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
        self.ctx.progress.advance(spec.len);
        Ok(crc.map(|c| c.finish()))
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
