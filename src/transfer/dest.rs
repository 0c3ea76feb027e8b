//! Where downloads write. Every directory and file a download creates,
//! replaces or deletes is reached from the destination root one name at a
//! time with `O_NOFOLLOW`, so a symbolic link planted in the destination
//! (`d -> /etc`) can never turn the key `d/passwd` into a write outside it.
//! The root itself is the user's choice and may be a link; only what lies
//! below it comes from object keys.
//!
//! Written on rustix's `openat` family rather than `cap-std`: cap-std
//! follows links that stay inside the root, and here a link on the way is
//! an error whatever it points at, which is one flag on each `openat`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a destination path could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    #[error("{0}: is a symbolic link; downloads never write through a link in the destination")]
    Link(PathBuf),
    #[error("{0}: is not a directory")]
    NotDir(PathBuf),
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl DestError {
    fn io(path: &Path, op: &'static str, e: impl Into<std::io::Error>) -> Self {
        DestError::Io {
            path: path.to_path_buf(),
            op,
            source: e.into(),
        }
    }
}

/// The directory a tree (or one file) is downloaded into, opened on first
/// use: a download of an empty prefix creates nothing.
pub struct Destination {
    root: PathBuf,
    opened: Mutex<Option<Arc<Root>>>,
}

struct Root {
    fd: OwnedFd,
    /// The root with every link resolved, once: with no link followed below
    /// it, `canonical/rel` names one file however the user spelled the root
    /// (`out/big` and `out/../out/big` are the same download).
    canonical: PathBuf,
}

/// An open directory inside the destination.
pub struct DestDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    canonical: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Destination {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Destination {
            root: root.into(),
            opened: Mutex::new(None),
        }
    }

    /// The root as the user gave it, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open_root(&self, create: bool) -> Result<Option<Arc<Root>>, DestError> {
        let mut slot = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(Some(r.clone()));
        }
        let root = if self.root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.root.as_path()
        };
        // The root is followed: it is the user's own path, not a key.
        let open = || {
            rustix::fs::open(
                root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let fd = match open() {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                std::fs::create_dir_all(root)
                    .map_err(|e| DestError::io(root, "cannot create directory", e))?;
                open().map_err(|e| DestError::io(root, "cannot open directory", e))?
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::NOTDIR) => return Err(DestError::NotDir(root.to_path_buf())),
            Err(e) => return Err(DestError::io(root, "cannot open directory", e)),
        };
        let canonical = std::fs::canonicalize(root)
            .map_err(|e| DestError::io(root, "cannot resolve directory", e))?;
        let r = Arc::new(Root { fd, canonical });
        *slot = Some(r.clone());
        Ok(Some(r))
    }

    /// The directory holding `rel`'s last name, and that name. Missing
    /// directories are created when `create`; without it, `Ok(None)` says
    /// the directory does not exist. `rel` is a checked relative path
    /// (plain names only, see `paths::safe_relative_path`).
    pub fn dir_for<'r>(
        &self,
        rel: &'r Path,
        create: bool,
    ) -> Result<Option<(DestDir, &'r OsStr)>, DestError> {
        let mut names: Vec<&OsStr> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n),
                other => {
                    return Err(DestError::io(
                        rel,
                        "refused",
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("not a plain relative path ({other:?})"),
                        ),
                    ))
                }
            }
        }
        let Some(last) = names.pop() else {
            return Err(DestError::io(
                rel,
                "refused",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty path"),
            ));
        };
        let Some(root) = self.open_root(create)? else {
            return Ok(None);
        };
        let mut path = self.root.clone();
        let mut canonical = root.canonical.clone();
        let mut fd: Option<OwnedFd> = None;
        for name in names {
            path.push(name);
            canonical.push(name);
            let at = match &fd {
                Some(f) => f.as_fd(),
                None => root.fd.as_fd(),
            };
            let next = match rustix::fs::openat(at, name, DIR_FLAGS, Mode::empty()) {
                Ok(f) => f,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(DestError::io(&path, "cannot create directory", e)),
                    }
                    rustix::fs::openat(at, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| classify(at, name, &path, e))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(classify(at, name, &path, e)),
            };
            fd = Some(next);
        }
        let fd = match fd {
            Some(f) => Arc::new(f),
            None => Arc::new(
                root.fd
                    .try_clone()
                    .map_err(|e| DestError::io(&path, "cannot open directory", e))?,
            ),
        };
        Ok(Some((
            DestDir {
                fd,
                path,
                canonical,
            },
            last,
        )))
    }
}

/// What an `openat` failure on the way means: a link or a file where a
/// directory should be is named as such, the rest is passed on.
fn classify(at: std::os::fd::BorrowedFd<'_>, name: &OsStr, path: &Path, e: Errno) -> DestError {
    if matches!(e, Errno::LOOP | Errno::NOTDIR) {
        if let Ok(st) = rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            return match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => DestError::Link(path.to_path_buf()),
                _ => DestError::NotDir(path.to_path_buf()),
            };
        }
    }
    DestError::io(path, "cannot open directory", e)
}

impl DestDir {
    /// This directory as the user would name it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This directory with the root's links resolved: the same for every
    /// spelling of the destination.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// Creates a file that did not exist: never an existing file, never
    /// through a link. Readable too: a download reads its temporary back
    /// for the checks that need the bytes in order.
    pub fn create_new(&self, name: &OsStr) -> std::io::Result<File> {
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        Ok(File::from(fd))
    }

    /// Opens an existing regular file for reading and writing, never
    /// through a link.
    pub fn open_existing(&self, name: &OsStr) -> std::io::Result<File> {
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// Moves `from` to `to` within this directory, then makes the rename
    /// durable: without the directory's fsync a crash can lose the new
    /// name even though the data was flushed. A link at `to` is replaced,
    /// never followed.
    pub fn publish(&self, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
        rustix::fs::renameat(&*self.fd, from, &*self.fd, to)?;
        rustix::fs::fsync(&*self.fd)?;
        Ok(())
    }

    /// Removes a file (or a link itself, never what it points at).
    pub fn remove(&self, name: &OsStr) -> std::io::Result<()> {
        rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty())?;
        Ok(())
    }

    /// Gives the file `name` a second name `to` in `other` (a hard link,
    /// so a later download replacing `name` leaves the old bytes there),
    /// replacing what `to` was. Across file systems it is copied instead.
    /// `Ok(false)`: there was no `name` to keep.
    pub fn keep_in(&self, name: &OsStr, other: &DestDir, to: &OsStr) -> std::io::Result<bool> {
        let tmp = temp_name(to, &format!("keep{:08x}", rand::random::<u32>()));
        match rustix::fs::linkat(&*self.fd, name, &*other.fd, &tmp, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) if !self.exists(name) => return Ok(false),
            Err(Errno::XDEV | Errno::PERM | Errno::NOTSUP | Errno::MLINK) => {
                return self.copy_into(name, other, to)
            }
            Err(e) => return Err(e.into()),
        }
        other.publish(&tmp, to).inspect_err(|_| {
            let _ = other.remove(&tmp);
        })?;
        Ok(true)
    }

    /// Moves the file `name` to `to` in `other`, replacing what `to` was;
    /// across file systems it is copied, then removed here.
    /// `Ok(false)`: there was no `name` to move.
    pub fn move_into(&self, name: &OsStr, other: &DestDir, to: &OsStr) -> std::io::Result<bool> {
        match rustix::fs::renameat(&*self.fd, name, &*other.fd, to) {
            Ok(()) => {
                rustix::fs::fsync(&*other.fd)?;
                rustix::fs::fsync(&*self.fd)?;
                Ok(true)
            }
            Err(Errno::NOENT) if !self.exists(name) => Ok(false),
            Err(Errno::XDEV) => {
                if self.copy_into(name, other, to)? {
                    self.remove(name)?;
                    rustix::fs::fsync(&*self.fd)?;
                }
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A durable copy of the regular file `name` as `to` in `other`, with
    /// its modification time, published whole or not at all.
    fn copy_into(&self, name: &OsStr, other: &DestDir, to: &OsStr) -> std::io::Result<bool> {
        let mut src = match rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let meta = src.metadata()?;
        let tmp = temp_name(to, &format!("copy{:08x}", rand::random::<u32>()));
        let mut out = other.create_new(&tmp)?;
        let copied = std::io::copy(&mut src, &mut out)
            .and_then(|_| {
                let mtime = filetime::FileTime::from_last_modification_time(&meta);
                filetime::set_file_handle_times(&out, None, Some(mtime))
            })
            .and_then(|()| out.sync_all())
            .and_then(|()| other.publish(&tmp, to));
        if copied.is_err() {
            let _ = other.remove(&tmp);
        }
        copied.map(|()| true)
    }

    /// Whether anything (a file, a link, a directory) is named `name` here.
    fn exists(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Whether `name` here is a regular file (not a link to one).
    pub fn is_file(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
            .unwrap_or(false)
    }
}

/// Longest file name most Linux file systems take.
pub const NAME_MAX: usize = 255;

/// The hidden temporary name beside `name`: `.NAME.ferry-TAG.part`, with
/// NAME cut short when the whole would pass `NAME_MAX` (the tag keeps it
/// unique, and nothing reads the name back).
pub fn temp_name(name: &OsStr, tag: &str) -> OsString {
    let fixed = 1 + ".ferry-".len() + tag.len() + ".part".len();
    let bytes = name.as_bytes();
    let keep = bytes.len().min(NAME_MAX.saturating_sub(fixed));
    let mut out = Vec::with_capacity(fixed + keep);
    out.push(b'.');
    out.extend_from_slice(&bytes[..keep]);
    out.extend_from_slice(b".ferry-");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b".part");
    OsString::from(std::ffi::OsStr::from_bytes(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_directories_and_files_below_the_root() {
        let t = tempfile::tempdir().unwrap();
        let d = Destination::new(t.path().join("out"));
        let (dir, name) = d.dir_for(Path::new("a/b/f"), true).unwrap().unwrap();
        assert_eq!(name, "f");
        assert_eq!(dir.path(), t.path().join("out/a/b"));
        let tmp = temp_name(name, "x");
        std::io::Write::write_all(&mut dir.create_new(&tmp).unwrap(), b"hi").unwrap();
        assert!(dir.create_new(&tmp).is_err(), "O_EXCL");
        dir.publish(&tmp, name).unwrap();
        assert_eq!(std::fs::read(t.path().join("out/a/b/f")).unwrap(), b"hi");
    }

    #[test]
    fn a_link_on_the_way_is_refused_wherever_it_points() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let root = t.path().join("out");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        symlink(&outside, root.join("d")).unwrap();
        symlink(root.join("inside"), root.join("i")).unwrap();
        let d = Destination::new(&root);
        for rel in ["d/passwd", "d/x/y", "i/f"] {
            match d.dir_for(Path::new(rel), true) {
                Err(DestError::Link(p)) => assert_eq!(p, root.join(&rel[..1])),
                Err(e) => panic!("{rel}: {e}"),
                Ok(_) => panic!("{rel}: followed a link"),
            }
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A file where a directory should be is named too.
        std::fs::write(root.join("file"), b"").unwrap();
        assert!(matches!(
            d.dir_for(Path::new("file/x"), true),
            Err(DestError::NotDir(_))
        ));
    }

    #[test]
    fn files_are_never_opened_through_a_final_link() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let root = t.path().join("out");
        std::fs::create_dir_all(&root).unwrap();
        symlink(&target, root.join("l")).unwrap();
        let d = Destination::new(&root);
        let (dir, name) = d.dir_for(Path::new("l"), true).unwrap().unwrap();
        assert!(dir.create_new(name).is_err());
        assert!(dir.open_existing(name).is_err());
        assert!(!dir.is_file(name));
        // Publishing over the link replaces the link, not its target.
        dir.create_new(OsStr::new("new")).unwrap();
        dir.publish(OsStr::new("new"), name).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(dir.is_file(name));
        // Removing a link removes the link.
        symlink(&target, root.join("l2")).unwrap();
        dir.remove(OsStr::new("l2")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn spellings_of_one_root_share_a_canonical_path() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("out")).unwrap();
        let a = Destination::new(t.path().join("out"));
        let b = Destination::new(t.path().join("out/../out"));
        let (da, _) = a.dir_for(Path::new("big"), true).unwrap().unwrap();
        let (db, _) = b.dir_for(Path::new("big"), true).unwrap().unwrap();
        assert_eq!(da.canonical(), db.canonical());
    }

    #[test]
    fn missing_directories_are_not_created_unless_asked() {
        let t = tempfile::tempdir().unwrap();
        let d = Destination::new(t.path().join("none"));
        assert!(d.dir_for(Path::new("a/f"), false).unwrap().is_none());
        assert!(!t.path().join("none").exists());
    }

    #[test]
    fn kept_and_moved_files_survive_what_replaces_them() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("out");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f"), b"old").unwrap();
        std::fs::write(root.join("g"), b"gone").unwrap();
        let d = Destination::new(&root);
        let b = Destination::new(t.path().join("bak"));
        let (here, f) = d.dir_for(Path::new("f"), false).unwrap().unwrap();
        let (there, _) = b.dir_for(Path::new("x/f"), true).unwrap().unwrap();
        assert!(here.keep_in(f, &there, OsStr::new("f~")).unwrap());
        // A download publishing over `f` leaves the kept bytes alone.
        std::fs::write(root.join(".new"), b"new").unwrap();
        here.publish(OsStr::new(".new"), f).unwrap();
        assert_eq!(std::fs::read(t.path().join("bak/x/f~")).unwrap(), b"old");
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"new");
        // Keeping again replaces the older backup.
        assert!(here.keep_in(f, &there, OsStr::new("f~")).unwrap());
        assert_eq!(std::fs::read(t.path().join("bak/x/f~")).unwrap(), b"new");
        assert!(here
            .move_into(OsStr::new("g"), &there, OsStr::new("g"))
            .unwrap());
        assert!(!root.join("g").exists());
        assert_eq!(std::fs::read(t.path().join("bak/x/g")).unwrap(), b"gone");
        // Nothing there: nothing kept, nothing moved, no error.
        assert!(!here
            .keep_in(OsStr::new("none"), &there, OsStr::new("n"))
            .unwrap());
        assert!(!here
            .move_into(OsStr::new("none"), &there, OsStr::new("n"))
            .unwrap());
        // The copy the fallback makes keeps bytes and mtime.
        std::fs::write(root.join("c"), b"copied").unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(root.join("c"), old).unwrap();
        assert!(here
            .copy_into(OsStr::new("c"), &there, OsStr::new("c"))
            .unwrap());
        let m = std::fs::metadata(t.path().join("bak/x/c")).unwrap();
        assert_eq!(filetime::FileTime::from_last_modification_time(&m), old);
        assert_eq!(std::fs::read(root.join("c")).unwrap(), b"copied");
        let names: Vec<_> = std::fs::read_dir(t.path().join("bak/x")).unwrap().collect();
        assert_eq!(names.len(), 3, "no temporary left: {names:?}");
    }

    #[test]
    fn temp_names_fit_the_name_limit() {
        let long = "é".repeat(127) + "x"; // 255 bytes
        let t = temp_name(OsStr::new(&long), "0123456789abcdef");
        assert!(t.len() <= NAME_MAX, "{}", t.len());
        assert!(crate::transfer::paths::is_temp_name(&t));
        assert_eq!(temp_name(OsStr::new("f.bin"), "x"), ".f.bin.ferry-x.part");
    }
}
