//! rename of files (CopyObject + DeleteObject, or moving a pending
//! upload) and of directories (bounded copy of every object below).

use crate::store::copy_object_any_size;
use std::sync::Arc;

use futures::StreamExt;

use super::*;
use crate::store::list_objects_beyond;

impl MountFs {
    pub async fn rename(
        &self,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
        noreplace: bool,
    ) -> Result<(), FsError> {
        self.writable()?;
        if !valid_name(new_name) {
            return Err(quiet(libc::EINVAL));
        }
        let src = self.resolve(parent, name).await?;
        // The destination is checked against the store, not the cache: a
        // stale "absent" would merge a directory into one that now exists.
        let dst = match self.resolve_fresh(new_parent, new_name).await {
            Ok(i) => Some(i),
            Err(e) if e.errno == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        if dst == Some(src) {
            return Ok(());
        }
        if noreplace && dst.is_some() {
            return Err(quiet(libc::EEXIST));
        }
        let kind = self.tree().get(src).ok_or(quiet(libc::ENOENT))?.kind;
        match kind {
            Kind::File => {
                self.rename_file(src, dst, parent, name, new_parent, new_name)
                    .await
            }
            Kind::Dir => {
                self.rename_dir(src, dst, parent, name, new_parent, new_name)
                    .await
            }
        }
    }

    /// Keeps the data under a key at every step, so that a failure or a
    /// crash anywhere leaves it under the old name or the new one:
    ///
    /// - uploaded (clean): CopyObject, then the mount follows the new name,
    ///   then DeleteObject of the old one. A failed copy leaves everything
    ///   as it was (`EIO`). Once the copy is made the rename stands: if the
    ///   delete fails the old name is hidden and retried at unmount.
    /// - not uploaded yet (dirty): the journal records the new key (and
    ///   the older version under the old name, to delete later) before
    ///   anything else changes; that older version is deleted only after
    ///   the upload to the new key, so a crash before it leaves it intact.
    async fn rename_file(
        &self,
        src: Ino,
        dst: Option<Ino>,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
    ) -> Result<(), FsError> {
        if let Some(d) = dst {
            if self.tree().get(d).map(|n| n.kind) == Some(Kind::Dir) {
                return Err(quiet(libc::EISDIR));
            }
        }
        let _x = self.stripes[src as usize % STRIPES].lock().await;
        let (src_key, staged, remote) = {
            let t = self.tree();
            let n = t.get(src).ok_or(quiet(libc::ENOENT))?;
            (
                t.key(src).unwrap_or_default(),
                n.staged.clone(),
                n.remote.clone(),
            )
        };
        let dst_key = file_key(&self.key_of(new_parent)?, new_name);
        if dst_key.len() > KEY_MAX {
            return Err(quiet(libc::ENAMETOOLONG));
        }
        // A file being written under the new name is replaced; what it was
        // to delete after its upload still has to go.
        let replaced = dst
            .and_then(|d| self.tree().get(d).and_then(|n| n.staged.clone()))
            .filter(|ds| !ds.meta().discarded);
        let inherited = replaced
            .as_ref()
            .map(|ds| ds.meta().supersedes)
            .unwrap_or_default();
        let _one = match &staged {
            Some(s) => Some(s.commit.lock().await),
            None => None,
        };
        let dirty = staged.as_ref().is_some_and(|s| s.meta().dirty());
        let mut copied_etag = None;
        let mut old_etag = String::new();
        if dirty {
            let s = staged.as_ref().expect("dirty implies staged");
            let mut old: Vec<Superseded> = self
                .head(&src_key)
                .await?
                .map(|m| Superseded {
                    key: src_key.clone(),
                    etag: m.etag,
                })
                .into_iter()
                .collect();
            old.extend(inherited.iter().cloned());
            // Durable before anything forgets the old name; if it cannot
            // be written, nothing has changed.
            s.move_to(&dst_key, old)
                .map_err(|e| self.io_fail("rename", &src_key, e))?;
            self.undoom(&dst_key);
            self.doom_held(&s.meta().supersedes);
        } else {
            let (size, etag) = match &remote {
                Some(r) => (r.size, r.etag.clone()),
                None => match self.head(&src_key).await? {
                    Some(m) => (m.size, m.etag),
                    None => return Err(quiet(libc::ENOENT)),
                },
            };
            if size > MAX_COPY {
                // mv falls back to copy + unlink through the mount.
                return Err(quiet(libc::EXDEV));
            }
            let copied = copy_object_any_size(
                self.store.as_ref(),
                self.bucket(),
                &src_key,
                self.bucket(),
                &dst_key,
                None,
                &self.store.copy_limits(),
            )
            .await;
            match copied {
                Ok(put) => copied_etag = Some(put.etag),
                Err(e) => {
                    if dst.is_none() {
                        // A lost answer can hide a copy that was made:
                        // undone means no new name either.
                        self.delete_superseded(&[Superseded {
                            key: dst_key.clone(),
                            etag: etag.clone(),
                        }])
                        .await;
                    }
                    return Err(self.fail("rename", &src_key, FsError::from_store(&e)));
                }
            }
            self.undoom(&dst_key);
            if let Some(s) = &staged {
                // A clean copy: nothing journaled, this cannot fail.
                let _ = s.set_key(&dst_key);
            }
            old_etag = etag;
        }
        {
            let mut t = self.tree();
            if let Some(d) = dst {
                if let Some(n) = t.get_mut(d) {
                    if let Some(ds) = &n.staged {
                        ds.discard();
                    }
                    if n.handles == 0 {
                        n.staged = None;
                    }
                }
            }
            t.listing_put(parent, name, None);
            t.move_node(src, new_parent, new_name);
            let listed = t.get_mut(src).and_then(|n| {
                n.checked = None;
                let r = n.remote.as_mut()?;
                if let Some(etag) = &copied_etag {
                    // Open handles go on reading the copy.
                    r.etag = etag.clone();
                }
                Some(Listed::File {
                    size: r.size,
                    etag: r.etag.clone(),
                    last_modified: now(),
                })
            });
            if !dirty {
                t.listing_put(new_parent, new_name, listed);
            }
        }
        if !dirty {
            // The old name goes last, and its failure does not undo the
            // rename: the data is under the new name already.
            if let Err(e) = self.store.delete_object(self.bucket(), &src_key).await {
                if !e.is_not_found() {
                    self.leave(
                        Superseded {
                            key: src_key.clone(),
                            etag: old_etag,
                        },
                        FsError::from_store(&e),
                    );
                }
            }
            self.delete_superseded(&inherited).await;
        }
        Ok(())
    }

    async fn rename_dir(
        &self,
        src: Ino,
        dst: Option<Ino>,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
    ) -> Result<(), FsError> {
        if let Some(d) = dst {
            if self.tree().get(d).map(|n| n.kind) != Some(Kind::Dir) {
                return Err(quiet(libc::ENOTDIR));
            }
            if !self.dir_is_empty(d).await? {
                return Err(quiet(libc::ENOTEMPTY));
            }
        }
        let (src_prefix, dst_prefix) = {
            let t = self.tree();
            if t.is_within(new_parent, src) {
                return Err(quiet(libc::EINVAL));
            }
            if t.has_dirty_below(src) {
                // Files being written below would upload to the old names.
                return Err(quiet(libc::EBUSY));
            }
            (
                t.key(src).ok_or(quiet(libc::ENOENT))?,
                dir_key(&t.key(new_parent).ok_or(quiet(libc::ENOENT))?, new_name),
            )
        };
        // Bounded: stop listing once past the rename limit.
        let objects = list_objects_beyond(
            self.store.as_ref(),
            self.bucket(),
            &src_prefix,
            self.cfg.rename_limit,
        )
        .await
        .map_err(|e| self.fail("rename", &src_prefix, FsError::from_store(&e)))?;
        // Old names renamed away from already are not moved again.
        let objects: Vec<_> = objects
            .into_iter()
            .filter(|o| !self.is_doomed(&o.key))
            .collect();
        if objects.len() > self.cfg.rename_limit {
            tracing::info!(
                "rename {src_prefix}: more than {} objects; refused with EXDEV (mv copies instead)",
                self.cfg.rename_limit
            );
            return Err(quiet(libc::EXDEV));
        }
        if objects.iter().any(|o| o.size > MAX_COPY) {
            return Err(quiet(libc::EXDEV));
        }
        if objects
            .iter()
            .any(|o| dst_prefix.len() + o.key.len() - src_prefix.len() > KEY_MAX)
        {
            return Err(quiet(libc::ENAMETOOLONG));
        }
        if objects.is_empty() {
            // Nothing stored yet: the new directory needs a marker to exist.
            self.put_marker(&dst_prefix, "rename").await?;
        }
        let pairs: Vec<(String, String, u64)> = objects
            .iter()
            .map(|o| {
                let to = format!("{dst_prefix}{}", &o.key[src_prefix.len()..]);
                (o.key.clone(), to, o.size)
            })
            .collect();
        type Copied = Result<Superseded, (String, crate::store::StoreError)>;
        let copies: Vec<Copied> =
            futures::stream::iter(pairs.into_iter().map(|(from, to, _size)| {
                let store = self.store.clone();
                let bucket = self.bucket().to_string();
                async move {
                    let limits = store.copy_limits();
                    let copied = copy_object_any_size(
                        store.as_ref(),
                        &bucket,
                        &from,
                        &bucket,
                        &to,
                        None,
                        &limits,
                    )
                    .await;
                    match copied {
                        Ok(put) => Ok(Superseded {
                            key: to,
                            etag: put.etag,
                        }),
                        Err(e) => Err((from, e)),
                    }
                }
            }))
            .buffer_unordered(8)
            .collect()
            .await;
        if let Some((from, e)) = copies.iter().find_map(|r| r.as_ref().err()) {
            // Undone: the source is as it was; the copies made so far go
            // (an existing destination keeps its marker). Copies that
            // cannot be deleted are hidden and retried at unmount.
            let made: Vec<Superseded> = copies
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .filter(|c| dst.is_none() || c.key != dst_prefix)
                .collect();
            self.delete_batches(&made).await;
            return Err(self.fail("rename", from, FsError::from_store(e)));
        }
        for c in copies.iter().flatten() {
            self.undoom(&c.key);
        }
        // Every object is under its new name: the rename stands from here.
        {
            let mut t = self.tree();
            t.listing_put(parent, name, None);
            t.move_node(src, new_parent, new_name);
            t.listing_put(new_parent, new_name, Some(Listed::Dir));
            t.invalidate_subtree(src);
            // Clean staged copies (open files) below follow their new names.
            let below: Vec<(Ino, Arc<Staged>)> = t
                .staged_nodes()
                .into_iter()
                .filter(|(i, _)| t.is_within(*i, src))
                .collect();
            for (i, s) in below {
                if let Some(k) = t.key(i) {
                    let _ = s.set_key(&k);
                }
            }
        }
        let old: Vec<Superseded> = objects
            .into_iter()
            .map(|o| Superseded {
                key: o.key,
                etag: o.etag,
            })
            .collect();
        self.delete_batches(&old).await;
        Ok(())
    }

    /// Batch deletes (1,000 per request) of objects whose data is safe
    /// elsewhere; what cannot be deleted is hidden and retried at unmount.
    async fn delete_batches(&self, objects: &[Superseded]) {
        for chunk in objects.chunks(1000) {
            let keys: Vec<String> = chunk.iter().map(|o| o.key.clone()).collect();
            let failed: Vec<(String, FsError)> =
                match self.store.delete_objects(self.bucket(), &keys).await {
                    Ok(failed) => failed
                        .into_iter()
                        .map(|f| {
                            let e = FsError::with(libc::EIO, format!("{} {}", f.code, f.message));
                            (f.key, e)
                        })
                        .collect(),
                    Err(e) => keys
                        .iter()
                        .map(|k| (k.clone(), FsError::from_store(&e)))
                        .collect(),
                };
            for (key, e) in failed {
                if let Some(o) = chunk.iter().find(|o| o.key == key) {
                    self.leave(o.clone(), e);
                }
            }
        }
    }
}
