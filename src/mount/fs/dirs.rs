//! Directories: listings (cached for the TTL), readdir snapshots, mkdir
//! and rmdir.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::store::list_pages;

use super::*;

impl MountFs {
    /// Stores the empty `dir/` object that makes a directory exist while it
    /// has no children.
    pub(super) async fn put_marker(&self, key: &str, op: &str) -> Result<(), FsError> {
        self.store
            .put_object(
                self.bucket(),
                key,
                Body::new(Bytes::new()),
                &PutOptions::default(),
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(op, key, FsError::from_store(&e)))
    }

    async fn fetch_listing(&self, dir: &str) -> Result<BTreeMap<String, Listed>, FsError> {
        let mut entries = BTreeMap::new();
        let pages = list_pages(
            self.store.as_ref(),
            self.bucket(),
            ListRequest {
                prefix: dir,
                delimiter: Some("/"),
                ..Default::default()
            },
        );
        let mut pages = std::pin::pin!(pages);
        let mut suspect = Vec::new();
        loop {
            let page = match pages.try_next().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    let shown = if dir.is_empty() { "/" } else { dir };
                    return Err(self.fail("list", shown, FsError::from_store(&e)));
                }
            };
            let doomed = self.doomed.lock().unwrap();
            for o in page.objects.iter().filter(|o| !doomed.contains_key(&o.key)) {
                if let Some(name) = object_name(dir, &o.key) {
                    entries.entry(name.to_string()).or_insert(Listed::File {
                        size: o.size,
                        etag: o.etag.clone(),
                        last_modified: o.last_modified.unix_timestamp_nanos(),
                    });
                }
            }
            for p in &page.prefixes {
                if let Some(name) = prefix_name(dir, p) {
                    // A directory shadows a file of the same name.
                    entries.insert(name.to_string(), Listed::Dir);
                    if doomed.keys().any(|k| k.starts_with(p.as_str())) {
                        suspect.push((name.to_string(), p.clone()));
                    }
                }
            }
            drop(doomed);
        }
        for (name, p) in suspect {
            let live = self
                .live_below(&p)
                .await
                .map_err(|e| self.fail("list", &p, FsError::from_store(&e)))?;
            if !live {
                entries.remove(&name);
            }
        }
        Ok(entries)
    }

    /// Whether anything but objects renamed away (and not deleted yet) is
    /// stored below `prefix`: a directory holding only those is gone.
    pub(super) async fn live_below(&self, prefix: &str) -> Result<bool, crate::store::StoreError> {
        let doomed = self
            .doomed
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count();
        if doomed == 0 {
            return Ok(true);
        }
        let page = self
            .store
            .list_objects(
                self.bucket(),
                &ListRequest {
                    prefix,
                    max_keys: Some((doomed + 1).min(1000) as u32),
                    ..Default::default()
                },
            )
            .await?;
        Ok(page.objects.iter().any(|o| !self.is_doomed(&o.key)) || page.next_token.is_some())
    }

    async fn ensure_listing(&self, ino: Ino) -> Result<(), FsError> {
        let ttl = self.cfg.list_ttl;
        {
            let t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            if n.kind != Kind::Dir {
                return Err(quiet(libc::ENOTDIR));
            }
            if t.listing_fresh(ino, ttl) {
                return Ok(());
            }
        }
        let _one = self.list_stripes[ino as usize % STRIPES].lock().await;
        if self.tree().listing_fresh(ino, ttl) {
            return Ok(());
        }
        let dir = self.key_of(ino)?;
        let entries = self.fetch_listing(&dir).await?;
        self.tree().set_listing(ino, entries);
        Ok(())
    }

    /// Lists a directory (fetching it if the cache is stale) into a
    /// snapshot that `readdir` pages through by offset.
    pub async fn opendir(&self, ino: Ino) -> Result<u64, FsError> {
        self.ensure_listing(ino).await?;
        let entries = {
            let mut t = self.tree();
            let n = t.get(ino).ok_or(quiet(libc::ENOENT))?;
            let parent = n.parent;
            let mut names: BTreeMap<String, Kind> = n
                .listing
                .as_ref()
                .map(|l| {
                    l.entries
                        .iter()
                        .map(|(k, v)| {
                            let kind = match v {
                                Listed::Dir => Kind::Dir,
                                Listed::File { .. } => Kind::File,
                            };
                            (k.clone(), kind)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let local: Vec<(String, Ino)> =
                n.children.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (name, c) in local {
                if t.has_local_state(c) {
                    names.insert(name, t.get(c).map_or(Kind::File, |n| n.kind));
                }
            }
            let mut out = Vec::with_capacity(names.len() + 2);
            out.push(DirEntry {
                ino,
                kind: Kind::Dir,
                name: ".".into(),
            });
            out.push(DirEntry {
                ino: parent,
                kind: Kind::Dir,
                name: "..".into(),
            });
            for (name, kind) in names {
                let c = t.ensure_child(ino, &name, kind);
                out.push(DirEntry { ino: c, kind, name });
            }
            out
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().unwrap().insert(fh, Arc::new(entries));
        Ok(fh)
    }

    pub fn readdir(&self, fh: u64) -> Result<Arc<Vec<DirEntry>>, FsError> {
        self.dirs
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(quiet(libc::EBADF))
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().unwrap().remove(&fh);
    }

    pub async fn mkdir(&self, parent: Ino, name: &str) -> Result<Attr, FsError> {
        self.writable()?;
        if !valid_name(name) {
            return Err(quiet(libc::EINVAL));
        }
        if self.resolve(parent, name).await.is_ok() {
            return Err(quiet(libc::EEXIST));
        }
        let dkey = dir_key(&self.key_of(parent)?, name);
        if dkey.len() > KEY_MAX {
            return Err(quiet(libc::ENAMETOOLONG));
        }
        self.put_marker(&dkey, "mkdir").await?;
        let ino = {
            let mut t = self.tree();
            let ino = t.ensure_child(parent, name, Kind::Dir);
            t.listing_put(parent, name, Some(Listed::Dir));
            // Known empty: no need to list it.
            t.set_listing(ino, BTreeMap::new());
            ino
        };
        self.found(ino)
    }

    /// The store's answer to "is this directory empty?", counting files
    /// written here that are not uploaded yet.
    pub(super) async fn dir_is_empty(&self, ino: Ino) -> Result<bool, FsError> {
        let local = {
            let t = self.tree();
            t.get(ino)
                .map(|n| n.children.values().any(|c| t.has_local_state(*c)))
                .unwrap_or(false)
        };
        if local {
            return Ok(false);
        }
        let dkey = self.key_of(ino)?;
        // Objects renamed away but not deleted yet do not count; enough
        // are asked for to see past them.
        let doomed = self
            .doomed
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(&dkey))
            .count();
        let page = self
            .store
            .list_objects(
                self.bucket(),
                &ListRequest {
                    prefix: &dkey,
                    delimiter: Some("/"),
                    max_keys: Some(2 + doomed.min(998) as u32),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.fail("list", &dkey, FsError::from_store(&e)))?;
        Ok(page.prefixes.is_empty()
            && page
                .objects
                .iter()
                .all(|o| o.key == dkey || self.is_doomed(&o.key)))
    }

    pub async fn rmdir(&self, parent: Ino, name: &str) -> Result<(), FsError> {
        self.writable()?;
        let ino = self.resolve(parent, name).await?;
        if self.tree().get(ino).map(|n| n.kind) != Some(Kind::Dir) {
            return Err(quiet(libc::ENOTDIR));
        }
        if !self.dir_is_empty(ino).await? {
            return Err(quiet(libc::ENOTEMPTY));
        }
        let dkey = self.key_of(ino)?;
        self.store
            .delete_object(self.bucket(), &dkey)
            .await
            .map_err(|e| self.fail("rmdir", &dkey, FsError::from_store(&e)))?;
        let mut t = self.tree();
        t.listing_put(parent, name, None);
        if let Some(n) = t.get_mut(ino) {
            n.listing = None;
        }
        t.detach(ino);
        Ok(())
    }
}
