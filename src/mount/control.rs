//! What `ferry mount` and `ferry unmount` share outside the kernel: a pid
//! file and a status file per mountpoint (so unmount can wait for the
//! mount's final uploads and print its report), the cache-dir lock, and
//! mount-table queries.

use std::fs::{self, File};
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

/// Removes the pid file when the mount process ends normally.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn write(path: &Path, pid: u32, mountpoint: &Path) -> std::io::Result<PidFile> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d)?;
        }
        fs::write(path, format!("{pid}\n{}\n", mountpoint.display()))?;
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
    let text = fs::read_to_string(path).ok()?;
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

/// The file-system type mounted at `mountpoint` ("fuse.ferry"), if any.
pub fn mounted_type(mountpoint: &Path) -> Option<String> {
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
        fields.get(sep + 1).map(|s| s.to_string())
    })
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
    fn absolute_trims_slashes() {
        assert_eq!(absolute(Path::new("/mnt/x/")), PathBuf::from("/mnt/x"));
        assert_eq!(absolute(Path::new("/")), PathBuf::from("/"));
        let a = state_files(Path::new("/run/f"), Path::new("/mnt/x/"));
        let b = state_files(Path::new("/run/f"), Path::new("/mnt/x"));
        assert_eq!(a.pid, b.pid);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
