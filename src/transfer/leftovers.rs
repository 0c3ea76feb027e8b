//! ferry's own download temporaries (`.NAME.ferry-TAG.part`) found in a
//! tree: a killed run leaves its temporary behind, and with a random tag
//! nothing else would ever name it again. A live download holds a lock on
//! its temporary, which tells the two apart.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::paths::is_temp_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    pub path: PathBuf,
    pub size: u64,
    /// A download running now holds it.
    pub in_use: bool,
}

fn open_nofollow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether a download holds the temporary now.
fn held(file: &File) -> bool {
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// The size of `path` if it is a temporary nobody holds (a regular file,
/// not a link, not locked by a running download).
pub fn leftover_size(path: &Path) -> Option<u64> {
    let f = open_nofollow(path).ok()?;
    let m = f.metadata().ok()?;
    (m.is_file() && !held(&f)).then_some(m.len())
}

/// Every temporary below `root`, in path order, never following a link;
/// unreadable places are reported as `Err` lines and the walk goes on.
pub fn find(root: &Path) -> Vec<Result<TempFile, String>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.push(Err(e.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_file() || !is_temp_name(entry.file_name()) {
            continue;
        }
        let path = entry.path().to_path_buf();
        match open_nofollow(&path).and_then(|f| Ok((f.metadata()?.len(), held(&f)))) {
            Ok((size, in_use)) => out.push(Ok(TempFile { path, size, in_use })),
            Err(e) => out.push(Err(format!("{}: {e}", path.display()))),
        }
    }
    out
}

/// Removes a temporary unless a download holds it; `Ok(false)` if one
/// does. The lock is held across the unlink, so a download cannot take
/// the file between the check and the removal.
pub fn remove_unused(path: &Path) -> std::io::Result<bool> {
    let f = open_nofollow(path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    std::fs::remove_file(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::dest::temp_name;
    use std::ffi::OsStr;

    #[test]
    fn finds_leftovers_tells_live_ones_apart_and_removes_only_leftovers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        let dead = d.path().join("a").join(temp_name(OsStr::new("big"), "1"));
        let live = d.path().join(temp_name(OsStr::new("f"), "2"));
        std::fs::write(&dead, vec![0u8; 1000]).unwrap();
        std::fs::write(&live, b"x").unwrap();
        std::fs::write(d.path().join("a/.notes.part"), b"mine").unwrap();
        std::os::unix::fs::symlink(&dead, d.path().join(temp_name(OsStr::new("l"), "3"))).unwrap();
        let holder = File::open(&live).unwrap();
        holder.lock().unwrap();
        let found: Vec<TempFile> = find(d.path()).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            found,
            [
                TempFile {
                    path: live.clone(),
                    size: 1,
                    in_use: true
                },
                TempFile {
                    path: dead.clone(),
                    size: 1000,
                    in_use: false
                },
            ]
        );
        assert!(!remove_unused(&live).unwrap());
        assert!(remove_unused(&dead).unwrap());
        assert!(live.exists() && !dead.exists());
        assert!(d.path().join("a/.notes.part").exists());
    }
}
