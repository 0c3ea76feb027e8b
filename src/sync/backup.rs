//! `--backup-dir` / `--suffix`: what a sync would overwrite or delete is
//! first put aside, so a mistaken source never costs the destination's
//! data. On the store side an object is copied server-side (no byte goes
//! through ferry; any size, with its metadata) before it is replaced or
//! deleted; on the local side a file to be replaced keeps a hard link in
//! the backup (the download's rename then leaves the old bytes there) and
//! a file to be deleted is moved there. A backup that fails fails its
//! file: nothing is replaced or deleted without its backup.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::events::{Event, FailKind};
use super::SyncTarget;
use crate::store::copy::copy_object_any_size;
use crate::transfer::paths::safe_relative_path;
use crate::transfer::Destination;

/// Where backups go and how they are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    pub place: BackupPlace,
    /// Appended to each backed-up name (`--suffix`), may be empty.
    pub suffix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupPlace {
    /// A prefix (empty or ending with `/`) in a bucket of the destination's
    /// store.
    Store { bucket: String, prefix: String },
    /// A local directory.
    Local(PathBuf),
}

impl BackupOptions {
    /// The backup's key for the relative key `rel`.
    pub fn key(&self, prefix: &str, rel: &str) -> String {
        format!("{prefix}{rel}{}", self.suffix)
    }
}

/// Why a backup place cannot be used with a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("--backup-dir {backup} overlaps the destination {dest}: a sync would overwrite or delete its own backups (use a place outside it, or --suffix alone to keep backups beside the files)")]
    Overlaps { backup: String, dest: String },
}

/// Pure: whether two prefixes of one bucket hold keys in common, one
/// being the other or lying below it. Prefixes are empty or end in `/`.
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The store-side place checked against the destination prefix.
pub fn check_store_place(
    bucket: &str,
    prefix: &str,
    dest_bucket: &str,
    dest_prefix: &str,
) -> Result<(), PlaceError> {
    if bucket == dest_bucket && prefixes_overlap(prefix, dest_prefix) {
        return Err(PlaceError::Overlaps {
            backup: format!("{bucket}/{prefix}"),
            dest: format!("{dest_bucket}/{dest_prefix}"),
        });
    }
    Ok(())
}

/// The local place checked against the destination root, both resolved
/// as far as they exist (a backup directory is created on first use).
pub fn check_local_place(backup: &Path, root: &Path) -> Result<(), PlaceError> {
    let (b, r) = (resolved(backup), resolved(root));
    if b.starts_with(&r) || r.starts_with(&b) {
        return Err(PlaceError::Overlaps {
            backup: backup.display().to_string(),
            dest: root.display().to_string(),
        });
    }
    Ok(())
}

/// `path` absolute, with the links of its longest existing ancestor
/// resolved and the rest appended as given.
fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest: Vec<OsString> = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            return rest.iter().rev().fold(c, |p, n| p.join(n));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return abs,
        }
    }
}

/// A run's backups, and how many were made.
pub(crate) struct Backups {
    opts: Option<BackupOptions>,
    /// The local backup directory, reached like the destination: never
    /// through a link below it.
    local: Option<Destination>,
    made: AtomicU64,
}

impl Backups {
    pub fn new(opts: Option<&BackupOptions>) -> Backups {
        let local = match opts.map(|o| &o.place) {
            Some(BackupPlace::Local(dir)) => Some(Destination::new(dir)),
            _ => None,
        };
        Backups {
            opts: opts.cloned(),
            local,
            made: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.opts.is_some()
    }

    /// Backups made so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Copies the object of `rel` to its backup key, server-side. An
    /// object that is not there has nothing to lose.
    /// `Some(to)`: the backup made.
    pub async fn object(
        &self,
        target: &SyncTarget,
        rel: &str,
        op: &'static str,
    ) -> Result<Option<String>, Event> {
        let Some(o) = &self.opts else { return Ok(None) };
        let BackupPlace::Store { bucket, prefix } = &o.place else {
            return Ok(None);
        };
        let key = target.key(rel);
        let to = o.key(prefix, rel);
        let store = target.store.as_ref();
        let limits = store.copy_limits();
        match copy_object_any_size(store, &target.bucket, &key, bucket, &to, None, &limits).await {
            Ok(_) => {
                self.made.fetch_add(1, Ordering::Relaxed);
                Ok(Some(format!("{bucket}/{to}")))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Event::failed(
                rel,
                op,
                FailKind::Store,
                format!(
                    "{key}: not {}: its backup to {bucket}/{to} failed: {e}",
                    done(op)
                ),
            )),
        }
    }

    /// Puts the local file of `rel` aside: kept (a hard link, or a copy)
    /// when a download is about to replace it, moved when it is to be
    /// deleted. `Some(path)`: the backup made (`None`: no file was there).
    pub fn file(
        &self,
        dest: &Destination,
        rel: &str,
        op: &'static str,
    ) -> Result<Option<String>, Event> {
        let (Some(o), Some(local)) = (&self.opts, &self.local) else {
            return Ok(None);
        };
        let fail = |kind, why: String| {
            Event::failed(
                rel,
                op,
                kind,
                format!(
                    "{}: not {}: {why}",
                    dest.root().join(rel).display(),
                    done(op)
                ),
            )
        };
        let path =
            safe_relative_path(rel).map_err(|why| fail(FailKind::UnsafeKey, why.to_string()))?;
        let mut to_name = path.file_name().unwrap_or_default().to_os_string();
        to_name.push(&o.suffix);
        let to = path.with_file_name(&to_name);
        let here = match dest.dir_for(&path, false) {
            Ok(Some((dir, _))) => dir,
            Ok(None) => return Ok(None),
            Err(e) => return Err(fail(FailKind::Io, e.to_string())),
        };
        let name = path.file_name().unwrap_or_default();
        let there = match local.dir_for(&to, true) {
            Ok(Some((dir, _))) => dir,
            Ok(None) => return Ok(None),
            Err(e) => return Err(fail(FailKind::Io, format!("backup: {e}"))),
        };
        let shown = local.root().join(&to);
        let put = match op {
            "delete" => here.move_into(name, &there, &to_name),
            _ => here.keep_in(name, &there, &to_name),
        };
        match put {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.made.fetch_add(1, Ordering::Relaxed);
                Ok(Some(shown.display().to_string()))
            }
            Err(e) => Err(fail(
                FailKind::Io,
                format!("its backup to {} failed: {e}", shown.display()),
            )),
        }
    }
}

fn done(op: &str) -> &'static str {
    match op {
        "delete" => "deleted",
        _ => "replaced",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes_are_refused() {
        assert!(prefixes_overlap("a/", "a/b/"));
        assert!(prefixes_overlap("a/b/", "a/"));
        assert!(prefixes_overlap("", "a/"));
        assert!(prefixes_overlap("a/", "a/"));
        assert!(!prefixes_overlap("a/", "ab/"));
        assert!(!prefixes_overlap("old/", "data/"));
        assert!(check_store_place("b", "old/", "b", "data/").is_ok());
        assert!(check_store_place("other", "", "b", "data/").is_ok());
        assert!(check_store_place("b", "data/old/", "b", "data/").is_err());
        assert!(check_store_place("b", "", "b", "data/").is_err());
    }

    #[test]
    fn local_places_overlap_however_spelled() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("out");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        assert!(check_local_place(&t.path().join("bak"), &root).is_ok());
        assert!(check_local_place(&t.path().join("out-old"), &root).is_ok());
        for inside in ["out/old", "link/old/x", "out/../out/old", "."] {
            let b = t.path().join(inside);
            assert!(check_local_place(&b, &root).is_err(), "{inside}");
        }
        assert!(
            check_local_place(t.path(), &root).is_err(),
            "the root inside it"
        );
    }

    #[test]
    fn backup_keys_carry_the_suffix() {
        let o = BackupOptions {
            place: BackupPlace::Local(PathBuf::from("x")),
            suffix: ".bak".into(),
        };
        assert_eq!(o.key("old/", "a/b"), "old/a/b.bak");
    }
}
