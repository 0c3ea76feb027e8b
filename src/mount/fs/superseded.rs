//! Objects a rename left behind. A file renamed before its upload keeps
//! the older version under its old name until the new key holds the data
//! (the journal entry lists it; see `staging::Superseded`); an old name
//! whose delete failed after a copy stays until unmount retries it. Either
//! way the mount no longer shows it, and deletes it only if it still holds
//! the version that was renamed away.

use super::*;

/// What became of one superseded object.
enum Outcome {
    /// Deleted, already gone, or replaced by someone since: nothing to do.
    Done,
    /// The store could not be asked or would not delete.
    Failed(FsError),
}

impl MountFs {
    pub(super) fn is_doomed(&self, key: &str) -> bool {
        self.doomed.lock().unwrap().contains_key(key)
    }

    /// Hides objects a journal entry will delete after its upload.
    pub(super) fn doom_held(&self, list: &[Superseded]) {
        let mut d = self.doomed.lock().unwrap();
        for o in list {
            d.entry(o.key.clone()).or_insert(None);
        }
    }

    /// New data is headed for `key` through this mount: nothing may delete
    /// it as a leftover of an earlier rename any more.
    pub(super) fn undoom(&self, key: &str) {
        if self.doomed.lock().unwrap().remove(key).is_none() {
            return;
        }
        let staged = self.tree().staged_nodes();
        for (_, s) in staged {
            if let Err(e) = s.forget_superseded(key) {
                tracing::warn!("journal of {}: {e}", s.meta().key);
            }
        }
    }

    async fn delete_one(&self, o: &Superseded) -> Outcome {
        let found = match self.store.head_object(self.bucket(), &o.key).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Outcome::Done,
            Err(e) => return Outcome::Failed(FsError::from_store(&e)),
        };
        if found.etag != o.etag {
            return Outcome::Done;
        }
        match self.store.delete_object(self.bucket(), &o.key).await {
            Ok(()) => Outcome::Done,
            Err(e) if e.is_not_found() => Outcome::Done,
            Err(e) => Outcome::Failed(FsError::from_store(&e)),
        }
    }

    /// Deletes superseded objects; those that cannot be deleted now stay
    /// hidden and are retried at unmount. Returns how many are left.
    pub(super) async fn delete_superseded(&self, list: &[Superseded]) -> usize {
        let mut left = 0;
        for o in list {
            match self.delete_one(o).await {
                Outcome::Done => {
                    self.doomed.lock().unwrap().remove(&o.key);
                }
                Outcome::Failed(e) => {
                    left += 1;
                    self.leave(o.clone(), e);
                }
            }
        }
        left
    }

    /// An old name the data has already left but that could not be deleted.
    pub(super) fn leave(&self, o: Superseded, e: FsError) {
        let detail = e.detail.clone().unwrap_or_default();
        self.fail(
            "rename",
            &o.key,
            FsError::with(
                e.errno,
                format!("the old object could not be deleted ({detail}); it is retried at unmount"),
            ),
        );
        self.doomed.lock().unwrap().insert(o.key, Some(o.etag));
    }

    /// Unmount: one more try at the old names whose delete failed. Returns
    /// those still there.
    pub(super) async fn retry_leftovers(&self) -> Vec<String> {
        let owned: Vec<Superseded> = self
            .doomed
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(k, e)| {
                e.as_ref().map(|etag| Superseded {
                    key: k.clone(),
                    etag: etag.clone(),
                })
            })
            .collect();
        let mut still = Vec::new();
        for o in owned {
            match self.delete_one(&o).await {
                Outcome::Done => {
                    self.doomed.lock().unwrap().remove(&o.key);
                }
                Outcome::Failed(_) => still.push(o.key),
            }
        }
        still.sort();
        still
    }
}
