//! The file-system model: every operation the kernel can ask for, in plain
//! async Rust over [`ObjectStore`], with no FUSE types. `fuse.rs` only
//! translates; unit tests drive this directly against the memory store.
//!
//! What each operation does to the bucket is specified in
//! `docs/SEMANTICS.md`. This file holds the state and lookups; the
//! operations are split by topic into `dirs`, `files`, `rename` and
//! `journal` (recovery and shutdown).

mod dirs;
mod files;
mod journal;
mod rename;
mod superseded;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::FsError;
use super::names::{
    dir_key, file_key, object_name, prefix_name, split_relative, valid_name, KEY_MAX, NAME_MAX,
};
use super::reader::{ReadAhead, RemoteReader};
use super::staging::{CommitPlan, EntryState, Journal, Staged, Superseded};
use super::tree::{Cached, Ino, Kind, Listed, RemoteFile, Tree, ROOT};
use crate::mtime::{format_mtime, Nanos, MTIME_KEY};
use crate::store::{Body, ListRequest, ObjectMeta, ObjectStore, PutOptions};
use crate::transfer::download::{download_object, stored_mtime};
use crate::transfer::{
    upload_file, Cancel, Context, Progress, TransferOptions, UploadOutcome, MIB,
};

/// CopyObject's limit; larger objects cannot be renamed or re-timed
/// server-side (see SEMANTICS.md).
/// Largest object a server-side copy (multipart beyond the store's
/// single-copy limit) moves: S3's largest object.
pub const MAX_COPY: u64 = 5 * 1024 * 1024 * MIB;

/// Settings of one mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub bucket: String,
    /// "" or ending in '/'.
    pub prefix: String,
    pub read_only: bool,
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
    /// How long a directory listing (and a file's HEAD) is trusted.
    pub list_ttl: Duration,
    /// Most objects a directory rename copies; above it, EXDEV.
    pub rename_limit: usize,
    /// Bytes all open files together may hold in read-ahead.
    pub read_ahead: u64,
    /// Uploads: threshold, part size, checkpoint dir, endpoint id.
    pub transfer: TransferOptions,
}

impl MountConfig {
    pub fn new(bucket: &str, prefix: &str) -> Self {
        MountConfig {
            bucket: bucket.to_string(),
            prefix: super::names::normalize_prefix(prefix),
            read_only: false,
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            list_ttl: Duration::from_secs(5),
            rename_limit: 1000,
            read_ahead: 256 * MIB,
            transfer: TransferOptions {
                bigfile_threshold: 16 * MIB,
                part_size: Some(8 * MIB),
                ..Default::default()
            },
        }
    }
}

/// What `stat` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub mtime: Nanos,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: Kind,
    pub name: String,
}

/// The parts of setattr the model acts on.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mtime: Option<Nanos>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Made through an open file handle (ftruncate, futimens) rather than
    /// by path (truncate, utimens).
    pub via_handle: bool,
}

/// User-facing notices (recovery, flush), printed by the CLI.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// A handle's reader, created on its first remote read.
type SharedReader = Arc<tokio::sync::Mutex<Option<RemoteReader>>>;

struct Handle {
    ino: Ino,
    writable: bool,
    reader: SharedReader,
}

/// What the startup scan of the journal found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Ready entries whose uploads were restarted: (key, size).
    pub resumed: Vec<(String, u64)>,
    /// Entries never closed before the crash, moved out of the journal.
    pub set_aside: Vec<(String, std::path::PathBuf)>,
    /// Entries of another endpoint or bucket, left alone.
    pub foreign: Vec<String>,
    pub problems: Vec<String>,
}

/// What could not be flushed before the deadline.
#[derive(Debug, Default, Clone)]
pub struct ShutdownReport {
    pub unflushed: Vec<String>,
}

/// Uploads running outside any kernel request (recovery, retries).
struct Background {
    count: tokio::sync::watch::Sender<usize>,
}

impl Background {
    fn enter(&self) {
        self.count.send_modify(|n| *n += 1);
    }
    fn leave(&self) {
        self.count.send_modify(|n| *n -= 1);
    }
}

/// Notes from the transfer engine ("resuming…") go to the user.
struct NoticeProgress(Notify);

impl Progress for NoticeProgress {
    fn note(&self, msg: &str) {
        (self.0)(msg);
    }
}

const STRIPES: usize = 64;

pub struct MountFs {
    cfg: MountConfig,
    store: Arc<dyn ObjectStore>,
    ctx: Context,
    journal: Journal,
    tree: Mutex<Tree>,
    handles: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
    /// Per-inode exclusion for operations that must not interleave
    /// (materializing, unlink, rename); striped so it needs no cleanup.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// One listing fetch per directory at a time.
    list_stripes: Vec<tokio::sync::Mutex<()>>,
    logged: Mutex<HashMap<(String, i32), Instant>>,
    /// Objects a rename left behind, hidden until deleted: key → the ETag
    /// to delete at unmount when this mount must retry the delete itself,
    /// `None` while a journal entry will delete it after its upload.
    doomed: Mutex<HashMap<String, Option<String>>>,
    read_ahead: Arc<ReadAhead>,
    background: Background,
    notify: Notify,
    started: Nanos,
}

fn now() -> Nanos {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

fn quiet(errno: i32) -> FsError {
    FsError::quiet(errno)
}

fn remote_from_head(m: &ObjectMeta) -> RemoteFile {
    RemoteFile {
        size: m.size,
        etag: m.etag.clone(),
        mtime: stored_mtime(m),
        from_head: true,
    }
}

impl MountFs {
    pub fn new(
        cfg: MountConfig,
        store: Arc<dyn ObjectStore>,
        journal: Journal,
        notify: Notify,
    ) -> Arc<MountFs> {
        let ctx = Context {
            store: store.clone(),
            progress: Arc::new(NoticeProgress(notify.clone())),
            // Uploads are never cancelled half-way: unmount waits for them.
            cancel: Cancel::never(),
        };
        let read_ahead = ReadAhead::new(cfg.read_ahead);
        Arc::new(MountFs {
            tree: Mutex::new(Tree::new(&cfg.prefix)),
            cfg,
            store,
            ctx,
            journal,
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            list_stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            logged: Mutex::new(HashMap::new()),
            doomed: Mutex::new(HashMap::new()),
            read_ahead,
            background: Background {
                count: tokio::sync::watch::channel(0).0,
            },
            notify,
            started: now(),
        })
    }

    pub fn config(&self) -> &MountConfig {
        &self.cfg
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap()
    }

    fn bucket(&self) -> &str {
        &self.cfg.bucket
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.cfg.read_only {
            Err(quiet(libc::EROFS))
        } else {
            Ok(())
        }
    }

    /// Logs a failure once per path and errno a minute, and passes it on.
    fn fail(&self, op: &str, path: &str, e: FsError) -> FsError {
        if let Some(detail) = &e.detail {
            let mut logged = self.logged.lock().unwrap();
            if logged.len() > 10_000 {
                logged.clear();
            }
            let k = (path.to_string(), e.errno);
            if logged
                .get(&k)
                .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
            {
                logged.insert(k, Instant::now());
                tracing::warn!("{op} {path}: {detail}");
            }
        }
        e
    }

    fn io_fail(&self, op: &str, path: &str, e: std::io::Error) -> FsError {
        self.fail(op, path, FsError::from_io(&format!("cache dir ({op})"), &e))
    }

    fn attr_of(&self, t: &Tree, ino: Ino) -> Option<Attr> {
        let n = t.get(ino)?;
        let mut a = Attr {
            ino,
            kind: n.kind,
            size: 0,
            mtime: self.started,
            perm: self.cfg.file_mode,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        };
        match n.kind {
            Kind::Dir => a.perm = self.cfg.dir_mode,
            Kind::File => {
                if let Some(s) = &n.staged {
                    let m = s.meta();
                    a.size = m.size;
                    a.mtime = m.mtime();
                } else if let Some(r) = &n.remote {
                    a.size = r.size;
                    a.mtime = r.mtime;
                }
            }
        }
        Some(a)
    }

    fn attr(&self, ino: Ino) -> Result<Attr, FsError> {
        let t = self.tree();
        self.attr_of(&t, ino).ok_or(quiet(libc::ENOENT))
    }

    /// A lookup reply: the kernel now holds one more reference.
    fn found(&self, ino: Ino) -> Result<Attr, FsError> {
        let mut t = self.tree();
        let n = t.get_mut(ino).ok_or(quiet(libc::ENOENT))?;
        n.lookups += 1;
        self.attr_of(&t, ino).ok_or(quiet(libc::ENOENT))
    }

    fn key_of(&self, ino: Ino) -> Result<String, FsError> {
        self.tree().key(ino).ok_or(quiet(libc::ENOENT))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, FsError> {
        match self.store.head_object(self.bucket(), key).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.fail("stat", key, FsError::from_store(&e))),
        }
    }

    // ----- lookup and attributes -------------------------------------------

    pub async fn lookup(&self, parent: Ino, name: &str) -> Result<Attr, FsError> {
        // A node nobody references yet can be collected between being
        // resolved and being counted; resolving again finds or makes it.
        let mut tries = 0;
        loop {
            let ino = self.resolve(parent, name).await?;
            match self.found(ino) {
                Err(e) if e.errno == libc::ENOENT && tries < 2 => tries += 1,
                other => return other,
            }
        }
    }

    /// The inode `name` in `parent` refers to, asking the store when the
    /// directory cache cannot tell. Does not count as a kernel reference.
    async fn resolve(&self, parent: Ino, name: &str) -> Result<Ino, FsError> {
        if !valid_name(name) {
            return Err(quiet(if name.len() > NAME_MAX {
                libc::ENAMETOOLONG
            } else {
                libc::ENOENT
            }));
        }
        let ttl = self.cfg.list_ttl;
        let (dir, cached, local) = {
            let t = self.tree();
            let p = t.get(parent).ok_or(quiet(libc::ENOENT))?;
            if p.kind != Kind::Dir {
                return Err(quiet(libc::ENOTDIR));
            }
            // Files written here but not uploaded yet, and directories
            // holding such files, exist before the store knows them.
            let local = t.child(parent, name).filter(|c| t.has_local_state(*c));
            (
                t.key(parent).unwrap_or_default(),
                t.cached(parent, name, ttl),
                local,
            )
        };
        if let Some(ino) = local {
            return Ok(ino);
        }
        match cached {
            Cached::Absent => Err(quiet(libc::ENOENT)),
            Cached::Present(Listed::Dir) => Ok(self.tree().ensure_child(parent, name, Kind::Dir)),
            Cached::Present(Listed::File { etag, .. }) => {
                let ino = self.tree().ensure_child(parent, name, Kind::File);
                let current = {
                    let t = self.tree();
                    let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
                    n.fresh(ttl)
                        && n.remote
                            .as_ref()
                            .is_some_and(|r| r.from_head && r.etag == etag)
                };
                if !current {
                    self.revalidate(ino).await?;
                }
                Ok(ino)
            }
            Cached::Unknown => self.probe(parent, name, &dir).await,
        }
    }

    /// As [`resolve`](Self::resolve), but asking the store whatever the
    /// cache says.
    async fn resolve_fresh(&self, parent: Ino, name: &str) -> Result<Ino, FsError> {
        if !valid_name(name) {
            return Err(quiet(libc::ENOENT));
        }
        let (dir, local) = {
            let t = self.tree();
            let p = t.get(parent).ok_or(quiet(libc::ENOENT))?;
            if p.kind != Kind::Dir {
                return Err(quiet(libc::ENOTDIR));
            }
            let local = t.child(parent, name).filter(|c| t.has_local_state(*c));
            (t.key(parent).unwrap_or_default(), local)
        };
        match local {
            Some(ino) => Ok(ino),
            None => self.probe(parent, name, &dir).await,
        }
    }

    /// No listing to go by: one HEAD for a file and one LIST for a
    /// directory of that name, at once. A directory wins over a file of
    /// the same name.
    async fn probe(&self, parent: Ino, name: &str, dir: &str) -> Result<Ino, FsError> {
        let fkey = file_key(dir, name);
        let dkey = dir_key(dir, name);
        let req = ListRequest {
            prefix: &dkey,
            delimiter: Some("/"),
            max_keys: Some(1),
            ..Default::default()
        };
        let (head, list) = tokio::join!(
            self.store.head_object(self.bucket(), &fkey),
            self.store.list_objects(self.bucket(), &req)
        );
        let list = list.map_err(|e| self.fail("lookup", &dkey, FsError::from_store(&e)))?;
        if (!list.objects.is_empty() || !list.prefixes.is_empty())
            && self
                .live_below(&dkey)
                .await
                .map_err(|e| self.fail("lookup", &dkey, FsError::from_store(&e)))?
        {
            return Ok(self.tree().ensure_child(parent, name, Kind::Dir));
        }
        match head {
            // Renamed away through this mount; only not deleted yet.
            Ok(_) if self.is_doomed(&fkey) => Err(quiet(libc::ENOENT)),
            Ok(meta) => {
                let mut t = self.tree();
                let ino = t.ensure_child(parent, name, Kind::File);
                if let Some(n) = t.get_mut(ino) {
                    n.remote = Some(remote_from_head(&meta));
                    n.checked = Some(Instant::now());
                }
                Ok(ino)
            }
            Err(e) if e.is_not_found() => Err(quiet(libc::ENOENT)),
            Err(e) => Err(self.fail("lookup", &fkey, FsError::from_store(&e))),
        }
    }

    /// HEADs a file again; a vanished object leaves its directory.
    async fn revalidate(&self, ino: Ino) -> Result<(), FsError> {
        let key = self.key_of(ino)?;
        match self.head(&key).await? {
            Some(meta) => {
                let mut t = self.tree();
                if let Some(n) = t.get_mut(ino) {
                    n.remote = Some(remote_from_head(&meta));
                    n.checked = Some(Instant::now());
                }
                Ok(())
            }
            None => {
                let mut t = self.tree();
                if let Some(n) = t.get(ino) {
                    let (p, name) = (n.parent, n.name.clone());
                    t.listing_put(p, &name, None);
                }
                t.detach(ino);
                Err(quiet(libc::ENOENT))
            }
        }
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        self.tree().forget(ino, n);
    }

    pub async fn getattr(&self, ino: Ino) -> Result<Attr, FsError> {
        let stale = {
            let t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            n.kind == Kind::File && n.staged.is_none() && n.attached && !n.fresh(self.cfg.list_ttl)
        };
        if stale {
            self.revalidate(ino).await?;
        }
        self.attr(ino)
    }
}

#[cfg(test)]
mod tests;
