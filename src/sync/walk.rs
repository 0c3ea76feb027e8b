//! The local side of a sync: walk a tree in key order and stat its files on
//! rayon, streaming batches so transfers start long before a large walk
//! ends.
//!
//! Key order is byte order of the `/`-joined relative path, the order S3
//! lists in. A depth-first walk yields it when siblings are sorted by name
//! with directories compared as `name/`: that puts `a-b` (0x2D) before
//! `a/…` (0x2F) before `a0` (0x30), exactly as their keys sort.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::filter::Filter;
use crate::mtime::{file_mtime, Nanos};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    /// Relative key, `/`-separated.
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime: Nanos,
    pub id: FileId,
}

/// Which file this is and whether it was written since: device, inode and
/// ctime (which any write moves and no one can set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub ctime: Nanos,
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            ctime: Nanos::from(m.ctime()) * 1_000_000_000 + Nanos::from(m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkItem {
    File(LocalEntry),
    /// Skipped with a notice (symlink, special file, loop): not a failure.
    /// `key` is set when the item has one, so that `--delete` never removes
    /// the destination's copy of something the source still has.
    Skipped {
        path: PathBuf,
        key: Option<String>,
        why: String,
    },
    /// Could not be read: counted as a failure.
    Error {
        path: PathBuf,
        key: Option<String>,
        why: String,
    },
}

impl WalkItem {
    /// The key this item occupies in the source, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            WalkItem::File(e) => Some(&e.key),
            WalkItem::Skipped { key, .. } | WalkItem::Error { key, .. } => key.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    pub follow_symlinks: bool,
    pub filter: Filter,
    /// Where the walk notes the download temporaries it leaves out (the
    /// first [`TEMPS_NOTED`]), so a download can name a killed run's.
    pub temps_seen: Option<Arc<Mutex<Vec<PathBuf>>>>,
}

pub const TEMPS_NOTED: usize = 1000;

const BATCH: usize = 512;

fn sort_name(e: &walkdir::DirEntry) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut n = e.file_name().as_bytes().to_vec();
    if e.file_type().is_dir() {
        n.push(b'/');
    }
    n
}

fn rel_key(root: &Path, path: &Path) -> Result<String, String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s),
            None => return Err("name is not valid UTF-8, so it cannot be a key".into()),
        }
    }
    Ok(parts.join("/"))
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "vanished during the walk".into(),
        _ => e.to_string(),
    }
}

/// Walks `root`, calling `emit` with batches of items in key order, until
/// the walk ends or `emit` returns false (its consumer stopped). Runs on
/// the calling thread (use a blocking task); stat calls fan out on rayon.
pub fn walk(root: &Path, opts: &WalkOptions, mut emit: impl FnMut(Vec<WalkItem>) -> bool) {
    if let Some(listed) = opts.filter.listed() {
        return walk_listed(root, listed, opts, emit);
    }
    let walker = walkdir::WalkDir::new(root)
        .follow_links(opts.follow_symlinks)
        .sort_by(|a, b| sort_name(a).cmp(&sort_name(b)))
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 {
                return true;
            }
            if !e.file_type().is_dir() {
                // A download's temporary is nobody's data.
                if crate::transfer::paths::is_temp_name(e.file_name()) {
                    if let Some(seen) = &opts.temps_seen {
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.len() < TEMPS_NOTED {
                            seen.push(e.path().to_path_buf());
                        }
                    }
                    return false;
                }
                return true;
            }
            match rel_key(root, e.path()) {
                Ok(rel) => !opts.filter.prune_dir(&rel),
                Err(_) => true,
            }
        });
    let mut pending: Vec<(PathBuf, Result<String, String>)> = Vec::with_capacity(BATCH);
    let mut early: Vec<WalkItem> = Vec::new();
    let flush = |pending: &mut Vec<(PathBuf, Result<String, String>)>,
                 early: &mut Vec<WalkItem>,
                 emit: &mut dyn FnMut(Vec<WalkItem>) -> bool|
     -> bool {
        let follow = opts.follow_symlinks;
        let mut items: Vec<WalkItem> = std::mem::take(early);
        items.extend(
            pending
                .par_iter()
                .map(|(path, key)| {
                    let key = match key {
                        Ok(k) => k.clone(),
                        Err(why) => {
                            return WalkItem::Error {
                                path: path.clone(),
                                key: None,
                                why: why.clone(),
                            }
                        }
                    };
                    let meta = if follow {
                        std::fs::metadata(path)
                    } else {
                        std::fs::symlink_metadata(path)
                    };
                    match meta {
                        Ok(m) => WalkItem::File(LocalEntry {
                            key,
                            path: path.clone(),
                            size: m.len(),
                            mtime: file_mtime(&m),
                            id: FileId::of(&m),
                        }),
                        Err(e) => WalkItem::Error {
                            path: path.clone(),
                            key: Some(key),
                            why: reason(&e),
                        },
                    }
                })
                .collect::<Vec<_>>(),
        );
        pending.clear();
        items.is_empty() || emit(items)
    };
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let key = rel_key(root, &path).ok().filter(|k| !k.is_empty());
                let item = if e.loop_ancestor().is_some() {
                    WalkItem::Skipped {
                        path,
                        key,
                        why: "symbolic link loop".into(),
                    }
                } else {
                    WalkItem::Error {
                        path,
                        key,
                        why: e.io_error().map(reason).unwrap_or_else(|| e.to_string()),
                    }
                };
                // Keep key order: flush what came before this item first.
                if !flush(&mut pending, &mut early, &mut emit) || !emit(vec![item]) {
                    return;
                }
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let skip = if ft.is_symlink() {
            Some("symbolic link (use --follow-symlinks to copy its target)")
        } else if !ft.is_file() {
            Some("not a regular file (socket, FIFO or device)")
        } else {
            None
        };
        if let Some(why) = skip {
            let key = rel_key(root, entry.path()).ok();
            let item = WalkItem::Skipped {
                path: entry.path().to_path_buf(),
                key,
                why: why.into(),
            };
            if !flush(&mut pending, &mut early, &mut emit) || !emit(vec![item]) {
                return;
            }
            continue;
        }
        let key = rel_key(root, entry.path());
        if let Ok(k) = &key {
            if !opts.filter.file(k) {
                continue;
            }
        }
        pending.push((entry.into_path(), key));
        if pending.len() >= BATCH && !flush(&mut pending, &mut early, &mut emit) {
            return;
        }
    }
    flush(&mut pending, &mut early, &mut emit);
}

/// `--files-from`: the listed files stat'ed in key order (a sorted set's
/// order is the keys' byte order), no directory read. A listed path that
/// is missing or not a file is skipped with a notice, keeping its key, so
/// a `--delete` leaves its copy alone.
fn walk_listed(
    root: &Path,
    listed: &std::collections::BTreeSet<String>,
    opts: &WalkOptions,
    mut emit: impl FnMut(Vec<WalkItem>) -> bool,
) {
    let keys: Vec<&String> = listed.iter().filter(|k| opts.filter.file(k)).collect();
    for chunk in keys.chunks(BATCH) {
        let items: Vec<WalkItem> = chunk
            .par_iter()
            .map(|key| {
                let path = root.join(key.as_str());
                let skipped = |why: &str| WalkItem::Skipped {
                    path: path.clone(),
                    key: Some(key.to_string()),
                    why: why.into(),
                };
                let meta = if opts.follow_symlinks {
                    std::fs::metadata(&path)
                } else {
                    std::fs::symlink_metadata(&path)
                };
                match meta {
                    Ok(m) if m.is_file() => WalkItem::File(LocalEntry {
                        key: key.to_string(),
                        path: path.clone(),
                        size: m.len(),
                        mtime: file_mtime(&m),
                        id: FileId::of(&m),
                    }),
                    Ok(m) if m.file_type().is_symlink() => {
                        skipped("symbolic link (use --follow-symlinks to copy its target)")
                    }
                    Ok(m) if m.is_dir() => skipped("a directory (--files-from lists files)"),
                    Ok(_) => skipped("not a regular file (socket, FIFO or device)"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        skipped("listed in --files-from but not found")
                    }
                    Err(e) => WalkItem::Error {
                        path: path.clone(),
                        key: Some(key.to_string()),
                        why: reason(&e),
                    },
                }
            })
            .collect();
        if !emit(items) {
            return;
        }
    }
}

/// The whole walk at once (for downloads, where the local side is the
/// destination and is needed complete before planning).
#[cfg(test)]
pub fn walk_all(root: &Path, opts: &WalkOptions) -> Vec<WalkItem> {
    let mut all = Vec::new();
    if root.exists() {
        walk(root, opts, |batch| {
            all.extend(batch);
            true
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(root: &Path, opts: &WalkOptions) -> Vec<String> {
        walk_all(root, opts)
            .into_iter()
            .filter_map(|i| match i {
                WalkItem::File(e) => Some(e.key),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stops_when_the_consumer_does() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..BATCH * 3 {
            std::fs::write(d.path().join(format!("f{i:05}")), "x").unwrap();
        }
        let mut batches = Vec::new();
        walk(d.path(), &WalkOptions::default(), |b| {
            batches.push(b.len());
            false
        });
        assert_eq!(batches, vec![BATCH]);
        let mut total = 0;
        walk(d.path(), &WalkOptions::default(), |b| {
            total += b.len();
            true
        });
        assert_eq!(total, BATCH * 3);
    }

    #[test]
    fn yields_s3_key_order() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/x", "a-b", "a0", "a.txt", "b/c/d", "b/c-e", "B"] {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, p).unwrap();
        }
        let got = keys(d.path(), &WalkOptions::default());
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn download_temporaries_are_not_walked() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big.iso"), "1").unwrap();
        let temp = crate::transfer::dest::temp_name(std::ffi::OsStr::new("big.iso"), "k1ll3d");
        std::fs::write(d.path().join(temp), "partial").unwrap();
        std::fs::write(d.path().join(".notes.part"), "mine").unwrap();
        assert_eq!(
            keys(d.path(), &WalkOptions::default()),
            [".notes.part", "big.iso"]
        );
    }

    #[test]
    fn skips_symlinks_and_fifos_and_prunes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("keep")).unwrap();
        std::fs::create_dir_all(d.path().join("node_modules/x")).unwrap();
        std::fs::write(d.path().join("keep/f"), "1").unwrap();
        std::fs::write(d.path().join("node_modules/x/f"), "1").unwrap();
        std::os::unix::fs::symlink(d.path().join("keep/f"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("keep/loop")).unwrap();
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let opts = WalkOptions {
            follow_symlinks: false,
            filter: Filter::new(&[], &["node_modules/".into()]).unwrap(),
            temps_seen: None,
        };
        let items = walk_all(d.path(), &opts);
        let skipped = items
            .iter()
            .filter(|i| matches!(i, WalkItem::Skipped { .. }))
            .count();
        assert_eq!(skipped, 3, "{items:?}");
        assert_eq!(keys(d.path(), &opts), vec!["keep/f".to_string()]);
        // Following links: the link's target is copied, the loop is reported.
        let follow = WalkOptions {
            follow_symlinks: true,
            ..opts
        };
        let items = walk_all(d.path(), &follow);
        assert!(
            items
                .iter()
                .any(|i| matches!(i, WalkItem::Skipped { why, .. } if why.contains("loop"))),
            "{items:?}"
        );
        assert!(keys(d.path(), &follow).contains(&"link".to_string()));
    }
}
