//! What `ferry mount` and `ferry unmount` share outside the kernel: a pid
//! file and a status file per mountpoint (so unmount can wait for the
//! mount's final uploads and print its report), the cache-dir lock, and
//! mount-table queries.
//!
//! The pid and status files live in a directory only this user may write
//! (`$XDG_RUNTIME_DIR/ferry`, else `/tmp/ferry-<uid>`): in a shared `/tmp`
//! another local user could otherwise create that directory first, or plant
//! symbolic links where ferry writes, and have it overwrite their targets.
//! So the directory is created 0700 and checked before use, and the files
//! are never opened through a symbolic link.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The absolute form of a mountpoint, without touching it (a dead mount
/// cannot be canonicalized).
pub fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // Trailing slashes would make a different mount-table string.
    let s = abs.to_string_lossy();
    let trimmed = s.trim_end_matches('/');
    PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed })
}

pub struct StateFiles {
    pub pid: PathBuf,
    pub status: PathBuf,
}

/// The pid and status files of the mount at `mountpoint`, in `dir` (the
/// runtime directory: they must not outlive a reboot).
pub fn state_files(dir: &Path, mountpoint: &Path) -> StateFiles {
    let abs = absolute(mountpoint);
    let id = hex::encode(&Sha256::digest(abs.to_string_lossy().as_bytes())[..8]);
    StateFiles {
        pid: dir.join(format!("mount-{id}.pid")),
        status: dir.join(format!("mount-{id}.status")),
    }
}

/// Why the directory for pid and status files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("{0}: is a symbolic link; refusing to keep mount state there")]
    Symlink(PathBuf),
    #[error("{0}: is not a directory; refusing to keep mount state there")]
    NotDir(PathBuf),
    #[error(
        "{path}: belongs to uid {owner}, not to this user (uid {me}); refusing to keep mount state there (remove it, or set XDG_RUNTIME_DIR)"
    )]
    NotOurs { path: PathBuf, owner: u32, me: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes `dir` ready for pid and status files: created 0700 if missing;
/// if it exists it must be a real directory (not a symbolic link) owned by
/// this user, and group or world access is taken away.
pub fn prepare_state_dir(dir: &Path) -> Result<(), StateDirError> {
    let io = |source| StateDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        // A dangling symbolic link: reported as what it is below.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let md = fs::symlink_metadata(dir).map_err(io)?;
    if md.file_type().is_symlink() {
        return Err(StateDirError::Symlink(dir.to_path_buf()));
    }
    if !md.is_dir() {
        return Err(StateDirError::NotDir(dir.to_path_buf()));
    }
    if md.uid() != euid() {
        return Err(StateDirError::NotOurs {
            path: dir.to_path_buf(),
            owner: md.uid(),
            me: euid(),
        });
    }
    if md.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn refuse_link(path: &Path) -> std::io::Error {
    std::io::Error::other(format!(
        "{} is a symbolic link; refusing to follow it",
        path.display()
    ))
}

/// Replaces a pid or status file: written under a fresh private name
/// (`O_EXCL`, `O_NOFOLLOW`), then renamed over the real one, so nothing
/// is ever written through a link planted at either name. A symbolic link
/// at the real name is refused.
pub fn write_state_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refuse_link(path));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of an earlier process with this pid; removing a link
    // removes the link, not its target.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a pid or status file, refusing symbolic links and anything but a
/// regular file (opening a planted FIFO would block).
pub fn read_state_file(path: &Path) -> std::io::Result<String> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                refuse_link(path)
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// Removes the pid file when the mount process ends normally.
pub struct PidFile(PathBuf);

impl PidFile {
    /// In a directory [`prepare_state_dir`] has checked.
    pub fn write(path: &Path, pid: u32, mountpoint: &Path) -> std::io::Result<PidFile> {
        write_state_file(path, &format!("{pid}\n{}\n", mountpoint.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The pid in a pid file, if that process is still a running ferry (a
/// killed mount leaves its file behind, and pids are reused).
pub fn read_pid(path: &Path) -> Option<u32> {
    let text = read_state_file(path).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_ferry = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|argv0| argv0.ends_with(b"ferry"));
    (is_ferry && pid_alive(pid)).then_some(pid)
}

/// Alive and not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Holds the cache dir for one mount at a time: two mounts finishing each
/// other's journal entries would upload them twice.
pub fn lock_cache_dir(dir: &Path) -> Result<File, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let path = dir.join("lock");
    let f = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the cache dir {} is in use by another ferry mount; give this mount its own --cache-dir",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", path.display())),
    }
}

/// Octal escapes of /proc/self/mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if b[i] == b'\\' && octal {
            let d = |k: usize| u32::from(b[i + k] - b'0');
            let v = (d(1) * 64 + d(2) * 8 + d(3)) as u8;
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What /proc/self/mountinfo says is mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// "fuse.ferry" through fusermount3 (which turns the subtype into the
    /// type), "fuse" when mounted directly by root.
    pub fs_type: String,
    /// The mount source: ferry's fsname, `ferry:s3://bucket/prefix`.
    pub source: String,
}

impl Mounted {
    /// A ferry mount, whichever way it was mounted. The type alone is not
    /// enough: a direct `mount(2)` (root, no libfuse) records plain "fuse"
    /// and only the source tells ferry from another FUSE file system.
    pub fn is_ferry(&self) -> bool {
        self.fs_type == "fuse.ferry"
            || (self.fs_type == "fuse" && self.source.starts_with("ferry:"))
    }
}

/// What is mounted at `mountpoint`, if anything.
pub fn mounted(mountpoint: &Path) -> Option<Mounted> {
    let abs = absolute(mountpoint);
    let want = abs.to_string_lossy();
    let table = fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last matching line is the one on top.
    table.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mp = unescape(fields.get(4)?);
        if mp != want {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        Some(Mounted {
            fs_type: fields.get(sep + 1)?.to_string(),
            source: unescape(fields.get(sep + 2).copied().unwrap_or("")),
        })
    })
}

/// Whether a ferry mount is on top at `mountpoint`.
pub fn ferry_mounted(mountpoint: &Path) -> bool {
    mounted(mountpoint).is_some_and(|m| m.is_ferry())
}

/// A FUSE mount whose process died: every access fails with ENOTCONN.
pub fn is_stale(mountpoint: &Path) -> bool {
    matches!(fs::metadata(mountpoint), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// `fusermount3 -u [-z]`, falling back to `umount [-l]` where fusermount3
/// is missing.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let mut c = Command::new("fusermount3");
    c.arg("-u");
    if lazy {
        c.arg("-z");
    }
    c.arg(mountpoint);
    let out = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut u = Command::new("umount");
            if lazy {
                u.arg("-l");
            }
            u.arg(mountpoint)
                .output()
                .map_err(|e| format!("cannot run fusermount3 or umount: {e}"))?
        }
        Err(e) => return Err(format!("cannot run fusermount3: {e}")),
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\"), r"/x\");
    }

    #[test]
    fn a_ferry_mount_is_known_by_its_type_or_its_source() {
        let m = |t: &str, s: &str| Mounted {
            fs_type: t.into(),
            source: s.into(),
        };
        assert!(m("fuse.ferry", "ferry:s3://b/p").is_ferry());
        assert!(m("fuse", "ferry:s3://b/p").is_ferry());
        assert!(!m("fuse", "sshfs#host:/").is_ferry());
        assert!(!m("fuse.rclone", "ferry:s3://b/p").is_ferry());
        assert!(!m("ext4", "/dev/sda1").is_ferry());
    }

    #[test]
    fn absolute_trims_slashes() {
        assert_eq!(absolute(Path::new("/mnt/x/")), PathBuf::from("/mnt/x"));
        assert_eq!(absolute(Path::new("/")), PathBuf::from("/"));
        let a = state_files(Path::new("/run/f"), Path::new("/mnt/x/"));
        let b = state_files(Path::new("/run/f"), Path::new("/mnt/x"));
        assert_eq!(a.pid, b.pid);
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_state_dir_is_private_and_ours() {
        let root = tempfile::tempdir().unwrap();
        // Missing: created 0700.
        let fresh = root.path().join("ferry-1");
        prepare_state_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        // Ours but open to others (made before, or by an older ferry): fixed.
        let loose = root.path().join("ferry-2");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o777)).unwrap();
        prepare_state_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
        // A symbolic link, even to a directory of ours: refused.
        let link = root.path().join("ferry-3");
        std::os::unix::fs::symlink(&loose, &link).unwrap();
        let e = prepare_state_dir(&link).unwrap_err();
        assert!(matches!(e, StateDirError::Symlink(_)), "{e}");
        let dangling = root.path().join("ferry-4");
        std::os::unix::fs::symlink(root.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            prepare_state_dir(&dangling).unwrap_err(),
            StateDirError::Symlink(_)
        ));
        assert!(!root.path().join("nowhere").exists());
        // Someone else's, world-writable: refused and left as it is.
        let theirs = if euid() == 0 {
            let d = root.path().join("ferry-5");
            fs::create_dir(&d).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
            std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
            d
        } else {
            PathBuf::from("/")
        };
        let before = mode(&theirs);
        let e = prepare_state_dir(&theirs).unwrap_err();
        assert!(matches!(e, StateDirError::NotOurs { .. }), "{e}");
        assert!(e.to_string().contains("belongs to uid"), "{e}");
        assert_eq!(mode(&theirs), before);
    }

    #[test]
    fn planted_links_are_neither_written_through_nor_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ferry-1");
        prepare_state_dir(&dir).unwrap();
        let files = state_files(&dir, Path::new("/mnt/x"));
        let victim = root.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, &files.status).unwrap();
        assert!(write_state_file(&files.status, "unmounted").is_err());
        assert!(read_state_file(&files.status).is_err());
        std::os::unix::fs::symlink(&victim, &files.pid).unwrap();
        assert!(PidFile::write(&files.pid, std::process::id(), Path::new("/mnt/x")).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        // A link at the temporary name is replaced, not followed.
        fs::remove_file(&files.status).unwrap();
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            files.status.file_name().unwrap().to_str().unwrap(),
            std::process::id()
        ));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_state_file(&files.status, "unmounted\n").unwrap();
        assert_eq!(read_state_file(&files.status).unwrap(), "unmounted\n");
        assert_eq!(mode(&files.status), 0o600);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!tmp.exists());
    }

    #[test]
    fn this_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
