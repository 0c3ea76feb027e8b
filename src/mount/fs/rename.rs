//! rename of files (CopyObject + DeleteObject, or moving a pending
//! upload) and of directories (bounded copy of every object below).

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
        let (src_key, staged, remote_size) = {
            let t = self.tree();
            let n = t.get(src).ok_or(quiet(libc::ENOENT))?;
            (
                t.key(src).unwrap_or_default(),
                n.staged.clone(),
                n.remote.as_ref().map(|r| r.size),
            )
        };
        let dst_key = file_key(&self.key_of(new_parent)?, new_name);
        if dst_key.len() > KEY_MAX {
            return Err(quiet(libc::ENAMETOOLONG));
        }
        let _one = match &staged {
            Some(s) => Some(s.commit.lock().await),
            None => None,
        };
        let dirty = staged.as_ref().is_some_and(|s| s.meta().dirty());
        if dirty {
            // Not uploaded yet: the pending upload simply goes to the new
            // key; an older version under the old name must go.
            let s = staged.as_ref().expect("dirty implies staged");
            s.set_key(&dst_key)
                .map_err(|e| self.io_fail("rename", &src_key, e))?;
        } else {
            let size = match remote_size {
                Some(s) => s,
                None => match self.head(&src_key).await? {
                    Some(m) => m.size,
                    None => return Err(quiet(libc::ENOENT)),
                },
            };
            if size > MAX_COPY {
                // mv falls back to copy + unlink through the mount.
                return Err(quiet(libc::EXDEV));
            }
            self.store
                .copy_object(self.bucket(), &src_key, self.bucket(), &dst_key, None)
                .await
                .map_err(|e| self.fail("rename", &src_key, FsError::from_store(&e)))?;
            if let Some(s) = &staged {
                let _ = s.set_key(&dst_key);
            }
        }
        self.store
            .delete_object(self.bucket(), &src_key)
            .await
            .map_err(|e| self.fail("rename", &src_key, FsError::from_store(&e)))?;
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
            n.remote.as_ref().map(|r| Listed::File {
                size: r.size,
                etag: r.etag.clone(),
                last_modified: now(),
            })
        });
        if !dirty {
            t.listing_put(new_parent, new_name, listed);
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
        let pairs: Vec<(String, String)> = objects
            .iter()
            .map(|o| {
                let to = format!("{dst_prefix}{}", &o.key[src_prefix.len()..]);
                (o.key.clone(), to)
            })
            .collect();
        let copies: Vec<Result<String, (String, crate::store::StoreError)>> =
            futures::stream::iter(pairs.into_iter().map(|(from, to)| {
                let store = self.store.clone();
                let bucket = self.bucket().to_string();
                async move {
                    match store.copy_object(&bucket, &from, &bucket, &to, None).await {
                        Ok(_) => Ok(to),
                        Err(e) => Err((from, e)),
                    }
                }
            }))
            .buffer_unordered(8)
            .collect()
            .await;
        if let Some((from, e)) = copies.iter().find_map(|r| r.as_ref().err()) {
            // Leave the source as it was: remove the copies made so far.
            let made: Vec<String> = copies.iter().filter_map(|r| r.clone().ok()).collect();
            for chunk in made.chunks(1000) {
                let _ = self.store.delete_objects(self.bucket(), chunk).await;
            }
            return Err(self.fail("rename", from, FsError::from_store(e)));
        }
        let old: Vec<String> = objects.into_iter().map(|o| o.key).collect();
        for chunk in old.chunks(1000) {
            let failed = self
                .store
                .delete_objects(self.bucket(), chunk)
                .await
                .map_err(|e| self.fail("rename", &src_prefix, FsError::from_store(&e)))?;
            if let Some(f) = failed.first() {
                return Err(self.fail(
                    "rename",
                    &f.key,
                    FsError::with(
                        libc::EIO,
                        format!(
                            "copied, but {} old object(s) could not be deleted: {} {}",
                            failed.len(),
                            f.code,
                            f.message
                        ),
                    ),
                ));
            }
        }
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
        Ok(())
    }
}
