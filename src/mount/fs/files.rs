//! Files: open handles, reads, staged writes, uploads on close and fsync,
//! setattr (truncate, utimens, the refused chmod/chown) and unlink.

use crate::store::copy_object_any_size;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::transfer::{Destination, Target};

use super::*;
use crate::store::StoreErrorKind;

/// A reference to a node held by an operation that changes it without a
/// file handle (truncate or utimens by path, open with `O_TRUNC`). It
/// counts as a handle, so the release of the last real handle, which the
/// kernel sends asynchronously after close(2) has returned, cannot drop the
/// staged copy between this operation finding it and changing it; the
/// change would otherwise land in a copy nobody uploads.
struct Pin<'a> {
    fs: &'a MountFs,
    ino: Ino,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.fs.unref(self.ino);
    }
}

impl MountFs {
    fn pin(&self, ino: Ino) -> Result<Pin<'_>, FsError> {
        self.tree().get_mut(ino).ok_or(quiet(libc::ENOENT))?.handles += 1;
        Ok(Pin { fs: self, ino })
    }

    /// A handle or pin is gone: a clean staged copy nobody holds is
    /// dropped, so later reads see the store again.
    fn unref(&self, ino: Ino) {
        let mut t = self.tree();
        if let Some(n) = t.get_mut(ino) {
            n.handles = n.handles.saturating_sub(1);
            if n.handles == 0 && n.staged.as_ref().is_some_and(|s| !s.meta().dirty()) {
                n.staged = None;
            }
        }
        t.collect(ino);
    }

    fn new_handle(&self, ino: Ino, writable: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().unwrap().insert(
            fh,
            Handle {
                ino,
                writable,
                reader: Arc::new(tokio::sync::Mutex::new(None)),
            },
        );
        fh
    }

    fn handle(&self, fh: u64) -> Result<(Ino, bool, SharedReader), FsError> {
        let h = self.handles.lock().unwrap();
        let h = h.get(&fh).ok_or(quiet(libc::EBADF))?;
        Ok((h.ino, h.writable, h.reader.clone()))
    }

    fn writers(&self, ino: Ino) -> usize {
        self.handles
            .lock()
            .unwrap()
            .values()
            .filter(|h| h.ino == ino && h.writable)
            .count()
    }

    pub async fn create(&self, parent: Ino, name: &str) -> Result<(Attr, u64), FsError> {
        self.writable()?;
        if !valid_name(name) {
            return Err(quiet(libc::EINVAL));
        }
        let fkey = file_key(&self.key_of(parent)?, name);
        if fkey.len() > KEY_MAX {
            return Err(quiet(libc::ENAMETOOLONG));
        }
        let staged = self
            .journal
            .create(&fkey)
            .map_err(|e| self.io_fail("create", &fkey, e))?;
        staged
            .mark_new()
            .map_err(|e| self.io_fail("create", &fkey, e))?;
        // A new file under a name an earlier rename left: it is this
        // file's now, not an old object to delete.
        self.undoom(&fkey);
        let (ino, replaced) = {
            let mut t = self.tree();
            let ino = t.ensure_child(parent, name, Kind::File);
            let n = t.get_mut(ino).ok_or(quiet(libc::ENOENT))?;
            let replaced = n.staged.replace(staged.clone());
            n.handles += 1;
            (ino, replaced)
        };
        if let Some(old) = replaced {
            // What the replaced file was to delete after its upload, this
            // one deletes after its own.
            let left = old.meta().supersedes;
            old.discard();
            if !left.is_empty() {
                if let Err(e) = staged.move_to(&fkey, left) {
                    tracing::warn!("journal of {fkey}: {e}");
                }
            }
        }
        let fh = self.new_handle(ino, true);
        Ok((self.found(ino)?, fh))
    }

    pub async fn open(&self, ino: Ino, writable: bool, truncate: bool) -> Result<u64, FsError> {
        if writable {
            self.writable()?;
        }
        let (kind, staged, fresh) = {
            let t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            (n.kind, n.staged.is_some(), n.fresh(self.cfg.list_ttl))
        };
        if kind == Kind::Dir {
            return Err(quiet(libc::EISDIR));
        }
        let pin = self.pin(ino)?;
        if writable && truncate {
            self.resize(ino, 0).await?;
        } else if !staged && !fresh {
            // Readers get the object as it is now, not as it was listed.
            self.revalidate(ino).await?;
        }
        // The pin becomes the handle's reference.
        std::mem::forget(pin);
        Ok(self.new_handle(ino, writable))
    }

    pub async fn read(&self, fh: u64, offset: u64, len: u32) -> Result<Bytes, FsError> {
        let (ino, _, reader) = self.handle(fh)?;
        let (staged, key, size, etag) = {
            let t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            (
                n.staged.clone(),
                t.key(ino).unwrap_or_default(),
                n.remote.as_ref().map_or(0, |r| r.size),
                n.remote.as_ref().map(|r| r.etag.clone()),
            )
        };
        if let Some(s) = staged {
            return s
                .read_at(offset, len)
                .await
                .map(Bytes::from)
                .map_err(|e| self.io_fail("read", &key, e));
        }
        let mut r = reader.lock().await;
        if !r.as_ref().is_some_and(|r| r.reads(&key)) {
            // The first read (or the first since a rename through the
            // mount) pins the version the node knows.
            *r = Some(RemoteReader::new(
                self.store.clone(),
                self.bucket(),
                &key,
                size,
                etag.as_deref(),
                self.read_ahead.clone(),
            ));
        }
        let got = r.as_mut().expect("set above").read(offset, len).await;
        got.map_err(|e| {
            if e.kind == StoreErrorKind::Changed {
                // Replaced by another client: the next open asks the store
                // again and reads the new version.
                let mut t = self.tree();
                if let Some(n) = t.get_mut(ino) {
                    n.checked = None;
                }
            }
            self.fail("read", &key, FsError::from_store(&e))
        })
    }

    /// The staged copy of a file, creating it on first change: empty when
    /// the file is being truncated to nothing or does not exist in the
    /// store, else the object's current content (download-then-modify).
    async fn staged_for_change(
        &self,
        ino: Ino,
        new_size: Option<u64>,
    ) -> Result<Arc<Staged>, FsError> {
        if let Some(s) = self.tree().get(ino).and_then(|n| n.staged.clone()) {
            return Ok(s);
        }
        let _x = self.stripes[ino as usize % STRIPES].lock().await;
        if let Some(s) = self.tree().get(ino).and_then(|n| n.staged.clone()) {
            return Ok(s);
        }
        let key = self.key_of(ino)?;
        let existing = if new_size == Some(0) {
            None
        } else {
            self.head(&key).await?
        };
        let staged = match existing {
            None => self.journal.create(&key),
            Some(meta) => {
                let (id, path) = self.journal.reserve();
                let opts = TransferOptions {
                    checkpoint_dir: None,
                    ..self.cfg.transfer.clone()
                };
                let mtime = stored_mtime(&meta);
                // The staging directory is the mount's own.
                let staging = Destination::new(path.parent().unwrap_or(Path::new(".")));
                let name = PathBuf::from(path.file_name().unwrap_or_default());
                let target = Target {
                    dest: &staging,
                    rel: &name,
                };
                download_object(&self.ctx, &opts, self.bucket(), &key, target, meta)
                    .await
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&path);
                        self.fail("open for writing", &key, FsError::from_transfer(&e))
                    })?;
                self.journal.adopt(id, &key, Some(mtime))
            }
        }
        .map_err(|e| self.io_fail("stage", &key, e))?;
        let mut t = self.tree();
        let n = t.get_mut(ino).ok_or(quiet(libc::ENOENT))?;
        if !n.attached {
            // Unlinked while open: writes go nowhere, as on a local disk.
            staged.discard();
        }
        n.staged = Some(staged.clone());
        Ok(staged)
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let (ino, writable, _) = self.handle(fh)?;
        if !writable {
            return Err(quiet(libc::EBADF));
        }
        let s = self.staged_for_change(ino, None).await?;
        s.write_at(offset, data).await.map_err(|e| {
            let key = s.meta().key;
            self.io_fail("write", &key, e)
        })?;
        Ok(data.len() as u32)
    }

    async fn resize(&self, ino: Ino, size: u64) -> Result<(), FsError> {
        let s = self.staged_for_change(ino, Some(size)).await?;
        s.truncate(size).await.map_err(|e| {
            let key = s.meta().key;
            self.io_fail("truncate", &key, e)
        })
    }

    /// Uploads a staged file's current content if it changed since the
    /// last upload. Returns what was sent, or `None` if nothing was due.
    pub(super) async fn upload_staged(
        &self,
        s: &Arc<Staged>,
    ) -> Result<Option<(CommitPlan, UploadOutcome)>, FsError> {
        let _one = s.commit.lock().await;
        let _stable = s.io.read().await;
        let key = s.meta().key;
        let prepare = s.clone();
        let Some(plan) = tokio::task::spawn_blocking(move || prepare.prepare_commit())
            .await
            .expect("flush task panicked")
            .map_err(|e| self.io_fail("flush", &key, e))?
        else {
            return Ok(None);
        };
        let out = upload_file(
            &self.ctx,
            &self.cfg.transfer,
            &s.path,
            &plan.bucket,
            &plan.key,
        )
        .await
        .map_err(|e| self.fail("upload", &plan.key, FsError::from_transfer(&e)))?;
        // Only now that the new key holds the data may the names it was
        // renamed away from go; still journaled until here, so a crash
        // before this point deletes them after the next mount's upload.
        let old = s.meta().supersedes;
        if !old.is_empty() {
            self.delete_superseded(&old).await;
            for o in &old {
                let _ = s.forget_superseded(&o.key);
            }
        }
        s.finish_commit(plan.version);
        Ok(Some((plan, out)))
    }

    /// After an upload: the node now mirrors the object, and a staged copy
    /// nobody has open is dropped.
    pub(super) fn uploaded(
        &self,
        ino: Ino,
        s: &Arc<Staged>,
        plan: &CommitPlan,
        out: &UploadOutcome,
    ) {
        let mut t = self.tree();
        let Some(n) = t.get_mut(ino) else { return };
        if !n.staged.as_ref().is_some_and(|x| Arc::ptr_eq(x, s)) {
            return;
        }
        n.remote = Some(RemoteFile {
            size: plan.size,
            etag: out.etag.clone(),
            mtime: plan.mtime,
            from_head: true,
        });
        n.checked = Some(Instant::now());
        let drop_copy = n.handles == 0 && !s.meta().dirty();
        if drop_copy {
            n.staged = None;
        }
        let (parent, name, attached) = (n.parent, n.name.clone(), n.attached);
        if attached {
            t.listing_put(
                parent,
                &name,
                Some(Listed::File {
                    size: plan.size,
                    etag: out.etag.clone(),
                    last_modified: now(),
                }),
            );
        }
        if drop_copy {
            t.collect(ino);
        }
    }

    async fn commit(&self, ino: Ino) -> Result<(), FsError> {
        let Some(s) = self.tree().get(ino).and_then(|n| n.staged.clone()) else {
            return Ok(());
        };
        if let Some((plan, out)) = self.upload_staged(&s).await? {
            self.uploaded(ino, &s, &plan, &out);
        }
        Ok(())
    }

    /// close(): a handle that wrote uploads the file now, so close reports
    /// whether the data reached the bucket.
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let (ino, writable, _) = self.handle(fh)?;
        if writable {
            self.commit(ino).await?;
        }
        Ok(())
    }

    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        self.flush(fh).await
    }

    pub async fn release(&self, fh: u64) -> Result<(), FsError> {
        let Some(h) = self.handles.lock().unwrap().remove(&fh) else {
            return Err(quiet(libc::EBADF));
        };
        let mut result = Ok(());
        if h.writable {
            // Normally flush already uploaded; this catches a failed flush
            // or writes through a duplicated descriptor after it.
            result = self.commit(h.ino).await;
            if result.is_err() {
                let key = self.tree().describe(h.ino);
                tracing::warn!(
                    "{key}: not uploaded; the data stays in the cache dir and is retried at unmount and on the next mount"
                );
            }
        }
        self.unref(h.ino);
        result
    }

    pub async fn setattr(&self, ino: Ino, a: SetAttr) -> Result<Attr, FsError> {
        let cur = self.attr(ino)?;
        // Permissions and owners are fixed by mount options; setting the
        // value they already have succeeds so `cp -p` and `rsync -a` work.
        if a.mode.is_some_and(|m| (m & 0o7777) as u16 != cur.perm)
            || a.uid.is_some_and(|u| u != cur.uid)
            || a.gid.is_some_and(|g| g != cur.gid)
        {
            return Err(quiet(libc::EPERM));
        }
        if a.size.is_none() && a.mtime.is_none() {
            return Ok(cur);
        }
        self.writable()?;
        if cur.kind == Kind::Dir {
            if a.size.is_some() {
                return Err(quiet(libc::EISDIR));
            }
            // Directories have no stored time to change.
            return Ok(cur);
        }
        let _pin = self.pin(ino)?;
        if let Some(size) = a.size {
            self.resize(ino, size).await?;
        }
        if let Some(t) = a.mtime {
            let staged = self.tree().get(ino).and_then(|n| n.staged.clone());
            match staged {
                Some(s) if s.meta().dirty() => {
                    // The pending upload carries the new time.
                    let key = s.meta().key;
                    s.set_mtime(t, false)
                        .map_err(|e| self.io_fail("utimens", &key, e))?;
                }
                other => {
                    self.retime(ino, t).await?;
                    if let Some(s) = other {
                        let key = s.meta().key;
                        s.set_mtime(t, false)
                            .map_err(|e| self.io_fail("utimens", &key, e))?;
                    }
                }
            }
        }
        if !a.via_handle || self.writers(ino) == 0 {
            // A change by path is in the store when the call returns, even
            // while a handle is open: the kernel sends release after
            // close(2) has returned, so a just-closed writer may still count
            // here and would upload only later. A change through a handle
            // travels with that handle's upload at close.
            self.commit(ino).await?;
        }
        self.attr(ino)
    }

    /// utimens on an uploaded object: CopyObject onto itself with the
    /// metadata replaced, keeping the other user metadata.
    async fn retime(&self, ino: Ino, t: Nanos) -> Result<(), FsError> {
        let key = self.key_of(ino)?;
        let Some(meta) = self.head(&key).await? else {
            return Err(quiet(libc::ENOENT));
        };
        if meta.size > MAX_COPY {
            return Err(self.fail(
                "utimens",
                &key,
                FsError::with(
                    libc::ENOTSUP,
                    "objects over 5 TiB cannot be re-timed with a server-side copy",
                ),
            ));
        }
        let mut md = meta.metadata.clone();
        md.insert(MTIME_KEY.into(), format_mtime(t));
        let put = copy_object_any_size(
            self.store.as_ref(),
            self.bucket(),
            &key,
            self.bucket(),
            &key,
            Some(&md),
            &self.store.copy_limits(),
        )
        .await
        .map_err(|e| self.fail("utimens", &key, FsError::from_store(&e)))?;
        let mut tr = self.tree();
        if let Some(n) = tr.get_mut(ino) {
            n.remote = Some(RemoteFile {
                size: meta.size,
                etag: put.etag,
                mtime: t,
                from_head: true,
            });
            n.checked = Some(Instant::now());
        }
        Ok(())
    }

    pub async fn unlink(&self, parent: Ino, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let ino = self.resolve(parent, name).await?;
        let _x = self.stripes[ino as usize % STRIPES].lock().await;
        let (kind, key, staged) = {
            let t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            (n.kind, t.key(ino).unwrap_or_default(), n.staged.clone())
        };
        if kind == Kind::Dir {
            return Err(quiet(libc::EISDIR));
        }
        let mut superseded = Vec::new();
        let _one = match &staged {
            Some(s) => {
                // An upload in flight would bring the object back after the delete.
                let one = s.commit.lock().await;
                superseded = s.meta().supersedes;
                s.discard();
                Some(one)
            }
            None => None,
        };
        self.store
            .delete_object(self.bucket(), &key)
            .await
            .map_err(|e| self.fail("unlink", &key, FsError::from_store(&e)))?;
        // The names this file was renamed away from go with it.
        self.delete_superseded(&superseded).await;
        let mut t = self.tree();
        t.listing_put(parent, name, None);
        if let Some(n) = t.get_mut(ino) {
            if n.handles == 0 {
                n.staged = None;
            }
        }
        t.detach(ino);
        Ok(())
    }
}
