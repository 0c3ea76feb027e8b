//! Written files are staged in the cache directory, and the staging area is
//! a journal: each staged file `pending/<id>.data` has a small manifest
//! `pending/<id>.json` naming the endpoint, bucket, key and state.
//!
//! - `writing`: the file changed and no program has closed or fsynced it
//!   since; its content may be half-written.
//! - `ready`: closed or fsynced; this content is what must reach the
//!   bucket, with this mtime. The upload runs with a checkpoint, so after a
//!   crash the next mount resumes it from the parts already on the server.
//!
//! The manifest disappears once the upload succeeded; a data file without
//! a manifest is a clean copy and is deleted on the next start.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::names::set_aside_name;
use crate::atomic_file::write_atomic;
use crate::mtime::{file_mtime, format_mtime, parse_mtime, to_filetime, Nanos};

pub const FORMAT: &str = "ferry-mount-journal";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    Writing,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub state: EntryState,
    /// The mtime the object gets (`mtime` metadata notation); set when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    pub size: u64,
    /// Objects this file's content was renamed away from: deleted once it
    /// is uploaded under `key`, not before (see [`Superseded`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Superseded>,
}

/// An object left under a name a file not yet uploaded was renamed away
/// from. It holds an older version, which stays until the new key holds
/// the data: deleting it at the rename would leave a crash with the data
/// under neither key. The ETag guards the late delete against a version
/// someone stored there since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    pub key: String,
    pub etag: String,
}

/// The staging directory of one cache dir, for one endpoint and bucket.
#[derive(Debug, Clone)]
pub struct Journal {
    pending: PathBuf,
    unfinished: PathBuf,
    endpoint: String,
    bucket: String,
}

/// A journal entry found at startup.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub manifest: Manifest,
    pub data: PathBuf,
}

fn now_nanos() -> Nanos {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

fn private_dir(p: &Path) -> std::io::Result<()> {
    fs::create_dir_all(p)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700))
}

impl Journal {
    pub fn open(cache_dir: &Path, endpoint: &str, bucket: &str) -> std::io::Result<Journal> {
        let j = Journal {
            pending: cache_dir.join("pending"),
            unfinished: cache_dir.join("unfinished"),
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
        };
        private_dir(cache_dir)?;
        private_dir(&j.pending)?;
        Ok(j)
    }

    pub fn pending_dir(&self) -> &Path {
        &self.pending
    }

    pub fn unfinished_dir(&self) -> &Path {
        &self.unfinished
    }

    fn new_id() -> String {
        format!(
            "{:x}-{:016x}",
            now_nanos() / 1_000_000,
            rand::random::<u64>()
        )
    }

    /// Where a new staged file's data goes, before it exists; lets a caller
    /// download an object's current content there first.
    pub fn reserve(&self) -> (String, PathBuf) {
        let id = Self::new_id();
        let path = self.pending.join(format!("{id}.data"));
        (id, path)
    }

    /// A new, empty staged file for `key`.
    pub fn create(&self, key: &str) -> std::io::Result<Arc<Staged>> {
        let (id, path) = self.reserve();
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        self.adopt(id, key, None)
    }

    /// Takes over the data file of a reserved id (created by the caller).
    /// `mtime` is the content's modification time if it came from the store.
    pub fn adopt(
        &self,
        id: String,
        key: &str,
        mtime: Option<Nanos>,
    ) -> std::io::Result<Arc<Staged>> {
        let path = self.pending.join(format!("{id}.data"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Arc::new(Staged {
            manifest_path: self.pending.join(format!("{id}.json")),
            id,
            path,
            file,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            io: tokio::sync::RwLock::new(()),
            commit: tokio::sync::Mutex::new(()),
            meta: Mutex::new(StagedMeta {
                key: key.to_string(),
                size,
                version: 0,
                committed: 0,
                written_at: mtime.unwrap_or_else(now_nanos),
                explicit_mtime: None,
                journaled: None,
                discarded: false,
                supersedes: Vec::new(),
            }),
        }))
    }

    /// Reopens a `ready` entry found at startup, to finish its upload.
    pub fn recovered(&self, p: &Pending) -> std::io::Result<Arc<Staged>> {
        let file = OpenOptions::new().read(true).write(true).open(&p.data)?;
        let md = file.metadata()?;
        let mtime = p
            .manifest
            .mtime
            .as_deref()
            .and_then(parse_mtime)
            .unwrap_or_else(|| file_mtime(&md));
        Ok(Arc::new(Staged {
            manifest_path: self.pending.join(format!("{}.json", p.id)),
            id: p.id.clone(),
            path: p.data.clone(),
            file,
            endpoint: p.manifest.endpoint.clone(),
            bucket: p.manifest.bucket.clone(),
            io: tokio::sync::RwLock::new(()),
            commit: tokio::sync::Mutex::new(()),
            meta: Mutex::new(StagedMeta {
                key: p.manifest.key.clone(),
                size: md.len(),
                version: 1,
                committed: 0,
                written_at: mtime,
                explicit_mtime: Some(mtime),
                journaled: Some(EntryState::Ready),
                discarded: false,
                supersedes: p.manifest.supersedes.clone(),
            }),
        }))
    }

    /// Every entry of the journal. Clean copies (data without a manifest)
    /// and leftovers of interrupted downloads are deleted; problems are
    /// returned as messages.
    pub fn scan(&self) -> (Vec<Pending>, Vec<String>) {
        let mut found = Vec::new();
        let mut problems = Vec::new();
        let Ok(rd) = fs::read_dir(&self.pending) else {
            return (found, problems);
        };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in &names {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(id) = name.strip_suffix(".json") {
                let data = self.pending.join(format!("{id}.data"));
                let parsed = fs::read(path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                    .filter(|m| m.format == FORMAT && m.version == VERSION);
                match parsed {
                    Some(manifest) if data.exists() => found.push(Pending {
                        id: id.to_string(),
                        manifest,
                        data,
                    }),
                    Some(m) => {
                        problems.push(format!(
                            "journal entry for {} has lost its data file; dropped",
                            m.key
                        ));
                        let _ = fs::remove_file(path);
                    }
                    None => problems.push(format!(
                        "{}: unreadable journal manifest, left in place",
                        path.display()
                    )),
                }
            } else if let Some(id) = name.strip_suffix(".data") {
                if !self.pending.join(format!("{id}.json")).exists() {
                    let _ = fs::remove_file(path);
                }
            } else if name.ends_with(".part") || name.ends_with(".tmp") {
                let _ = fs::remove_file(path);
            }
        }
        (found, problems)
    }

    /// Moves a `writing` entry (never closed before the crash, so possibly
    /// half-written) out of the journal, where the user can inspect it.
    pub fn set_aside(&self, p: &Pending) -> std::io::Result<PathBuf> {
        private_dir(&self.unfinished)?;
        let name = set_aside_name(&p.id, &p.manifest.key, ".json".len());
        let dest = self.unfinished.join(&name);
        fs::rename(&p.data, &dest)?;
        // The manifest goes along: it holds the whole key, which the file
        // name may have had to shorten.
        let manifest = self.pending.join(format!("{}.json", p.id));
        if fs::rename(&manifest, self.unfinished.join(format!("{name}.json"))).is_err() {
            let _ = fs::remove_file(&manifest);
        }
        Ok(dest)
    }
}

#[derive(Debug, Clone)]
pub struct StagedMeta {
    /// Destination key; a rename of a staged file changes it.
    pub key: String,
    pub size: u64,
    /// Bumped by every change; `committed` is the version last uploaded.
    pub version: u64,
    pub committed: u64,
    /// When the content last changed (what `stat` shows without utimens).
    pub written_at: Nanos,
    /// Set by utimens; cleared by the next write.
    pub explicit_mtime: Option<Nanos>,
    /// What the manifest on disk says; `None` when there is none (clean).
    pub journaled: Option<EntryState>,
    /// Unlinked or replaced: never uploaded.
    pub discarded: bool,
    /// Old objects to delete once this content is uploaded.
    pub supersedes: Vec<Superseded>,
}

impl StagedMeta {
    pub fn mtime(&self) -> Nanos {
        self.explicit_mtime.unwrap_or(self.written_at)
    }

    pub fn dirty(&self) -> bool {
        !self.discarded && self.version != self.committed
    }
}

/// One staged file. `io` orders data access: writes take it exclusively,
/// reads and uploads share it, so an upload always sends one consistent
/// version. `commit` lets one upload run at a time.
pub struct Staged {
    pub id: String,
    pub path: PathBuf,
    manifest_path: PathBuf,
    file: File,
    endpoint: String,
    bucket: String,
    pub io: tokio::sync::RwLock<()>,
    pub commit: tokio::sync::Mutex<()>,
    meta: Mutex<StagedMeta>,
}

/// What an upload of a staged file must send.
#[derive(Debug, Clone)]
pub struct CommitPlan {
    pub version: u64,
    pub key: String,
    pub bucket: String,
    pub size: u64,
    pub mtime: Nanos,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("id", &self.id)
            .field("meta", &self.meta())
            .finish()
    }
}

impl Staged {
    pub fn meta(&self) -> StagedMeta {
        self.meta.lock().unwrap().clone()
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn write_manifest(&self, m: &StagedMeta, state: EntryState) -> std::io::Result<()> {
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: m.key.clone(),
            state,
            mtime: (state == EntryState::Ready).then(|| format_mtime(m.mtime())),
            size: m.size,
            supersedes: m.supersedes.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        write_atomic(&self.manifest_path, &bytes)
    }

    /// Journals the file as being written, before its data changes.
    fn begin_change(&self, meta: &mut StagedMeta) -> std::io::Result<()> {
        if !meta.discarded && meta.journaled != Some(EntryState::Writing) {
            self.write_manifest(meta, EntryState::Writing)?;
            meta.journaled = Some(EntryState::Writing);
        }
        Ok(())
    }

    pub async fn read_at(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        let _r = self.io.read().await;
        let size = self.meta.lock().unwrap().size;
        if offset >= size {
            return Ok(Vec::new());
        }
        let n = (len as u64).min(size - offset) as usize;
        let mut buf = vec![0u8; n];
        let mut done = 0;
        while done < n {
            match self.file.read_at(&mut buf[done..], offset + done as u64)? {
                0 => break,
                k => done += k,
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub async fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let _w = self.io.write().await;
        {
            let mut m = self.meta.lock().unwrap();
            self.begin_change(&mut m)?;
        }
        self.file.write_all_at(data, offset)?;
        let mut m = self.meta.lock().unwrap();
        m.size = m.size.max(offset + data.len() as u64);
        m.version += 1;
        m.written_at = now_nanos();
        m.explicit_mtime = None;
        Ok(())
    }

    pub async fn truncate(&self, size: u64) -> std::io::Result<()> {
        let _w = self.io.write().await;
        {
            let mut m = self.meta.lock().unwrap();
            self.begin_change(&mut m)?;
        }
        self.file.set_len(size)?;
        let mut m = self.meta.lock().unwrap();
        m.size = size;
        m.version += 1;
        m.written_at = now_nanos();
        m.explicit_mtime = None;
        Ok(())
    }

    /// A new file must be uploaded even if nothing is ever written to it.
    pub fn mark_new(&self) -> std::io::Result<()> {
        let mut m = self.meta.lock().unwrap();
        self.begin_change(&mut m)?;
        m.version += 1;
        Ok(())
    }

    /// utimens. `changes_content` is false when the uploaded object gets
    /// the new time some other way (CopyObject) and true when the next
    /// upload must carry it.
    pub fn set_mtime(&self, t: Nanos, changes_content: bool) -> std::io::Result<()> {
        let mut m = self.meta.lock().unwrap();
        if changes_content {
            self.begin_change(&mut m)?;
            m.version += 1;
        }
        m.explicit_mtime = Some(t);
        Ok(())
    }

    /// A rename of a clean copy (the object was copied to `key` already).
    pub fn set_key(&self, key: &str) -> std::io::Result<()> {
        self.move_to(key, Vec::new())
    }

    /// A rename moves the pending upload along with the name; `old` are
    /// objects to delete once it is uploaded (the older version under the
    /// name it leaves, those a replaced file had left). Journaled before
    /// it takes effect: if the manifest cannot be written, nothing changed.
    pub fn move_to(&self, key: &str, old: Vec<Superseded>) -> std::io::Result<()> {
        let mut m = self.meta.lock().unwrap();
        let mut next = m.clone();
        next.key = key.to_string();
        for o in old {
            if !next.supersedes.iter().any(|x| x.key == o.key) {
                next.supersedes.push(o);
            }
        }
        // What is uploaded to `key` replaces whatever is there anyway.
        next.supersedes.retain(|o| o.key != key);
        if let Some(state) = next.journaled.filter(|_| !next.discarded) {
            self.write_manifest(&next, state)?;
        }
        *m = next;
        Ok(())
    }

    /// Drops `key` from the objects to delete (deleted, or new data is
    /// headed there). Returns whether it was listed.
    pub fn forget_superseded(&self, key: &str) -> std::io::Result<bool> {
        let mut m = self.meta.lock().unwrap();
        if !m.supersedes.iter().any(|o| o.key == key) {
            return Ok(false);
        }
        m.supersedes.retain(|o| o.key != key);
        if let Some(state) = m.journaled.filter(|_| !m.discarded) {
            self.write_manifest(&m, state)?;
        }
        Ok(true)
    }

    /// Unlinked or replaced: drop the journal entry; open handles keep
    /// reading and writing the (now nameless) data.
    pub fn discard(&self) {
        let mut m = self.meta.lock().unwrap();
        m.discarded = true;
        m.journaled = None;
        let _ = fs::remove_file(&self.manifest_path);
        let _ = fs::remove_file(&self.path);
    }

    /// Called with `commit` and a read guard of `io` held: makes the data
    /// durable, gives the file the mtime the object will carry (the upload
    /// takes it from the file), and journals the entry as ready.
    pub fn prepare_commit(&self) -> std::io::Result<Option<CommitPlan>> {
        if !self.meta().dirty() {
            return Ok(None);
        }
        // Outside the metadata lock: flushing a large file takes a while
        // and `stat` must not wait for it. Writes are held off by `io`.
        self.file.sync_data()?;
        let mut m = self.meta.lock().unwrap();
        if !m.dirty() {
            return Ok(None);
        }
        let mtime = m.mtime();
        if file_mtime(&self.file.metadata()?) != mtime {
            filetime::set_file_handle_times(&self.file, None, Some(to_filetime(mtime)))?;
        }
        // Rewritten every time: a utimens since the last attempt changed the mtime.
        self.write_manifest(&m, EntryState::Ready)?;
        m.journaled = Some(EntryState::Ready);
        Ok(Some(CommitPlan {
            version: m.version,
            key: m.key.clone(),
            bucket: self.bucket.clone(),
            size: m.size,
            mtime,
        }))
    }

    /// The upload of `version` succeeded.
    pub fn finish_commit(&self, version: u64) {
        let mut m = self.meta.lock().unwrap();
        m.committed = m.committed.max(version);
        if m.version == m.committed && m.journaled.is_some() {
            let _ = fs::remove_file(&self.manifest_path);
            m.journaled = None;
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // A journaled file is kept for the next mount; a clean copy is not.
        let m = self.meta.get_mut().unwrap();
        if m.journaled.is_none() || m.discarded {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn journal_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "http://e", "b").unwrap();
        let s = j.create("k/a.txt").unwrap();
        s.mark_new().unwrap();
        s.write_at(0, b"hello").await.unwrap();
        let (found, _) = j.scan();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].manifest.state, EntryState::Writing);
        assert_eq!(found[0].manifest.key, "k/a.txt");

        let plan = {
            let _c = s.commit.lock().await;
            let _r = s.io.read().await;
            s.prepare_commit().unwrap().unwrap()
        };
        assert_eq!(plan.size, 5);
        let (found, _) = j.scan();
        assert_eq!(found[0].manifest.state, EntryState::Ready);
        assert_eq!(
            found[0].manifest.mtime.as_deref(),
            Some(format_mtime(plan.mtime).as_str())
        );
        // The file carries the mtime the object will get.
        assert_eq!(file_mtime(&fs::metadata(&s.path).unwrap()), plan.mtime);

        let r = j.recovered(&found[0]).unwrap();
        assert!(r.meta().dirty());
        assert_eq!(r.meta().mtime(), plan.mtime);
        drop(r);

        s.finish_commit(plan.version);
        assert!(!s.meta().dirty());
        assert!(j.scan().0.is_empty(), "manifest removed after the upload");
        let data = s.path.clone();
        drop(s);
        assert!(!data.exists(), "clean copies are not kept");
    }

    #[tokio::test]
    async fn unfinished_entries_are_set_aside_and_orphans_removed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "http://e", "b").unwrap();
        let s = j.create("a/b").unwrap();
        s.write_at(3, b"xy").await.unwrap();
        let (id, orphan) = j.reserve();
        fs::write(&orphan, b"clean copy").unwrap();
        std::mem::forget(s); // a crash: nothing cleans up
        let (found, problems) = j.scan();
        assert!(problems.is_empty());
        assert!(!orphan.exists(), "{id}: data without manifest is deleted");
        assert_eq!(found.len(), 1);
        let moved = j.set_aside(&found[0]).unwrap();
        assert_eq!(fs::read(&moved).unwrap(), b"\0\0\0xy");
        assert!(moved.starts_with(j.unfinished_dir()));
        assert!(j.scan().0.is_empty());
    }

    #[tokio::test]
    async fn entries_with_the_longest_keys_are_set_aside_too() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "http://e", "b").unwrap();
        let keys = [
            // A key at S3's limit, and a basename at the kernel's.
            format!("{}/{}", "d".repeat(1024 - 256), "n".repeat(255)),
            format!("m/{}", "é".repeat(127)),
        ];
        for key in &keys {
            let s = j.create(key).unwrap();
            s.write_at(0, key.as_bytes()).await.unwrap();
            std::mem::forget(s);
        }
        let (found, _) = j.scan();
        assert_eq!(found.len(), 2);
        for p in &found {
            let moved = j.set_aside(p).unwrap();
            let name = moved.file_name().unwrap().to_str().unwrap();
            assert!(name.len() <= 255, "{} bytes", name.len());
            assert_eq!(fs::read(&moved).unwrap(), p.manifest.key.as_bytes());
            // The whole key is kept beside it.
            let m: Manifest =
                serde_json::from_slice(&fs::read(format!("{}.json", moved.display())).unwrap())
                    .unwrap();
            assert_eq!(m.key, p.manifest.key);
        }
        assert!(j.scan().0.is_empty());
    }

    #[tokio::test]
    async fn discard_and_rename() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "http://e", "b").unwrap();
        let s = j.create("old").unwrap();
        s.write_at(0, b"x").await.unwrap();
        s.set_key("new").unwrap();
        assert_eq!(j.scan().0[0].manifest.key, "new");
        s.discard();
        assert!(j.scan().0.is_empty());
        // Still readable through the open handle.
        assert_eq!(s.read_at(0, 10).await.unwrap(), b"x");
        assert!(!s.meta().dirty());
    }
}
