//! `ferry mount` for real: each test mounts its own prefix of the Garage
//! bucket at a temporary mountpoint with the kernel's FUSE, drives it with
//! ordinary programs (find, ls, cp, sha256sum) and std::fs, and checks the
//! bucket with the AWS CLI or ferry's own client. A guard unmounts
//! (`fusermount3 -u -z`) and kills the mount process even when a test fails.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::mount::control::{ferry_mounted, mounted};
use ferry::mtime::{file_mtime, format_mtime};
use ferry::store::{Body, GetRequest, PutOptions};
use ferry::transfer::{upload_file, Cancel, Context, NoProgress, TransferOptions, MIB};
use futures::StreamExt;

use crate::harness::{
    aws_head, aws_listed_parts, aws_sha256, pattern, runtime, server, sha256, sha256_file, unique,
    wait_for, write_file, Ferry,
};
use crate::proxy::Proxy;

/// A running `ferry mount --foreground`; unmounted and killed on drop.
struct Mounted {
    child: Option<Child>,
    mp: PathBuf,
    log: PathBuf,
}

impl Mounted {
    fn start(ferry: &Ferry, prefix: &str, mp: &Path, cache: &Path, extra: &[&str]) -> Mounted {
        // (A dead mount there fails stat; the mount cleans it up.)
        if let Err(e) = std::fs::create_dir(mp) {
            assert!(e.kind() == std::io::ErrorKind::AlreadyExists, "{e}");
        }
        let log = cache.with_extension("log");
        let url = server().url(prefix);
        let mut args = vec![
            "mount",
            url.as_str(),
            mp.to_str().unwrap(),
            "--foreground",
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let child = ferry
            .command(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Mounted {
            child: Some(child),
            mp: mp.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // A dead mount left by a killed process is still in the mount
        // table; the notice says this process's mount is up.
        while !ferry_mounted(mp) || !m.log().contains("ferry: mounted ") {
            if let Ok(Some(st)) = m.child.as_mut().unwrap().try_wait() {
                panic!("ferry mount exited ({st}):\n{}", m.log());
            }
            assert!(Instant::now() < deadline, "not mounted:\n{}", m.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mp.join(rel)
    }

    /// `ferry unmount`, which waits for the mount's uploads; returns its output.
    fn unmount(mut self, ferry: &Ferry) -> String {
        let out = ferry.run(&["unmount", self.mp.to_str().unwrap()]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "ferry unmount: {text}\n{}",
            self.log()
        );
        let mut child = self.child.take().unwrap();
        wait_for(60, "the mount process to exit", || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(child.wait().unwrap().success(), "{}", self.log());
        text
    }

    /// SIGTERM, then the exit status once the process has flushed and gone.
    fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process dies; the kernel mount stays behind, dead.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mp)
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a shell command with a time limit, so a hung mount fails the test
/// instead of hanging it.
fn sh(script: &str) -> String {
    let out = Command::new("timeout")
        .args(["300", "bash", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// A small tree with nested directories, an empty file, a file spanning
/// several parts and nanosecond mtimes.
fn make_tree(root: &Path, big: usize) -> Vec<PathBuf> {
    let files = [
        ("a.txt", 11),
        ("empty", 0),
        ("one/b.bin", 65_536 + 3),
        ("one/two/c.bin", 1_000_000),
        ("one/two/three/d", 1),
        ("with space/e f.txt", 500),
        ("big/large.bin", big),
    ];
    let mut out = Vec::new();
    for (i, (rel, len)) in files.iter().enumerate() {
        let p = write_file(&root.join(rel), *len, 100 + i as u64);
        let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 1000, 123_456_789);
        filetime::set_file_mtime(&p, t).unwrap();
        out.push(p);
    }
    out
}

fn ctx() -> Context {
    Context {
        store: server().store(),
        progress: Arc::new(NoProgress),
        cancel: Cancel::never(),
    }
}

#[test]
fn tree_uploaded_by_cp_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src, 12 * MIB as usize);
    let prefix = unique("mount-read");
    let ferry = Ferry::new();
    ferry.ok(&[
        "cp",
        "-r",
        src.to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);

    let mp = dir.path().join("mnt");
    let m = Mounted::start(&ferry, &prefix, &mp, &dir.path().join("cache"), &[]);
    let mnt = mp.to_str().unwrap();
    let s = src.to_str().unwrap();
    // Names, types, sizes and nanosecond mtimes, as find reports them via stat.
    let files = "-type f -printf '%P|%s|%T@\\n'";
    assert_eq!(
        sorted_lines(&sh(&format!("cd {mnt} && find . {files}"))),
        sorted_lines(&sh(&format!("cd '{s}' && find . {files}")))
    );
    let dirs = "-type d -printf '%P\\n'";
    assert_eq!(
        sorted_lines(&sh(&format!("cd {mnt} && find . {dirs}"))),
        sorted_lines(&sh(&format!("cd '{s}' && find . {dirs}")))
    );
    let listing = sh(&format!("ls -lR {mnt}"));
    for name in [
        "a.txt",
        "empty",
        "b.bin",
        "c.bin",
        "d",
        "e f.txt",
        "large.bin",
    ] {
        assert!(listing.contains(name), "ls -lR lacks {name}:\n{listing}");
    }
    let stat = sh(&format!("stat -c '%s %Y' {mnt}/one/two/c.bin"));
    assert_eq!(stat.trim(), "1000000 1600003000");
    let sums = "find . -type f -print0 | sort -z | xargs -0 sha256sum";
    assert_eq!(
        sh(&format!("cd {mnt} && {sums}")),
        sh(&format!("cd '{s}' && {sums}"))
    );
    m.unmount(&ferry);
}

#[test]
fn random_reads_of_a_256_mib_object_match() {
    let size = 256 * MIB as usize;
    let data = pattern(size, 77);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let prefix = unique("mount-pread");
    let key = format!("{prefix}/big.bin");
    runtime().block_on(async {
        let opts = TransferOptions {
            endpoint_id: server().endpoint.clone(),
            ..Default::default()
        };
        upload_file(&ctx(), &opts, &src, &server().bucket, &key)
            .await
            .unwrap();
    });
    let ferry = Ferry::new();
    let mp = dir.path().join("mnt");
    let m = Mounted::start(&ferry, &prefix, &mp, &dir.path().join("cache"), &[]);

    // Sequential: the whole object through the mount, timed.
    let started = Instant::now();
    let got = sha256_file(&m.path("big.bin"));
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got, sha256(&data));
    eprintln!(
        "mount: sequential read of 256 MiB: {:.1} s, {:.0} MiB/s",
        secs,
        256.0 / secs
    );

    // Random: 1,000 preads at random offsets and lengths.
    let f = std::fs::File::open(m.path("big.bin")).unwrap();
    let started = Instant::now();
    for i in 0..1000u64 {
        let off = rand::random::<u64>() % size as u64;
        let len = 1 + (rand::random::<u64>() % (256 * 1024)) as usize;
        let want = &data[off as usize..(off as usize + len).min(size)];
        let mut buf = vec![0u8; want.len()];
        f.read_exact_at(&mut buf, off)
            .unwrap_or_else(|e| panic!("read {i}: {len} bytes at {off}: {e}"));
        assert!(buf == want, "read {i}: {len} bytes at {off} differ");
    }
    eprintln!(
        "mount: 1,000 random preads: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(f);
    m.unmount(&ferry);
}

#[test]
fn tree_copied_into_the_mount_lands_in_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    // Above the mount's 16 MiB multipart threshold.
    let files = make_tree(&src, 20 * MIB as usize);
    let prefix = unique("mount-write");
    let ferry = Ferry::new();
    let mp = dir.path().join("mnt");
    let m = Mounted::start(&ferry, &prefix, &mp, &dir.path().join("cache"), &[]);
    sh(&format!(
        "cp -r --preserve=timestamps '{}' {}/tree && sync",
        src.display(),
        mp.display()
    ));
    let said = m.unmount(&ferry);
    assert!(said.contains("every upload finished"), "{said}");

    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let key = format!("{prefix}/tree/{}", rel.display());
        assert_eq!(aws_sha256(&key), sha256_file(f), "{key}");
        let head = aws_head(&key);
        let want = format_mtime(file_mtime(&std::fs::metadata(f).unwrap()));
        assert_eq!(head["Metadata"]["mtime"], want.as_str(), "{key}: {head}");
    }
    // The large file went in parts.
    let head = aws_head(&format!("{prefix}/tree/big/large.bin"));
    assert!(head["ETag"].as_str().unwrap().contains("-3"), "{head}");
}

#[test]
fn a_killed_mount_finishes_its_upload_on_the_next_mount() {
    let size = 512 * MIB;
    let part = 8 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("big.bin"), size as usize, 512);
    let prefix = unique("mount-kill");
    let key = format!("{prefix}/big.bin");
    let cache = dir.path().join("cache");
    let mp = dir.path().join("mnt");
    // Slow enough that the kill lands mid-upload.
    let proxy = Proxy::start(&server().endpoint, 12 * MIB);
    let ferry = Ferry::at(&proxy.endpoint);
    let mut first = Mounted::start(&ferry, &prefix, &mp, &cache, &[]);
    // cp's close() blocks while the mount uploads; it fails when the mount dies.
    let mut writer = Command::new("cp")
        .arg(&src)
        .arg(first.path("big.bin"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Late enough that most of the file is on the server: the point is
    // that the remount does not send it again.
    wait_for(180, "most parts on the server", || {
        aws_listed_parts(&key).is_some_and(|p| p.len() >= 48)
    });
    first.kill9();
    let _ = writer.wait();
    let listed = aws_listed_parts(&key).expect("upload still open after the kill");
    let total_parts = size / part;
    assert!(
        (listed.len() as u64) < total_parts,
        "killed too late: {} parts",
        listed.len()
    );

    proxy.reset(0);
    let second = Mounted::start(&ferry, &prefix, &mp, &cache, &[]);
    let store = server().store();
    wait_for(300, "the object to complete", || {
        runtime()
            .block_on(store.head_object(&server().bucket, &key))
            .is_ok_and(|m| m.size == size)
    });
    wait_for(30, "the completion notice", || {
        second.log().contains("finished the interrupted upload")
    });
    let log = second.log();
    assert!(log.contains("dead mount left by a killed process"), "{log}");
    assert!(log.contains("finishing 1 upload(s) left pending"), "{log}");
    assert!(log.contains("resuming"), "{log}");
    let sent = proxy.body_bytes("PUT", "partNumber=");
    let remaining = (total_parts - listed.len() as u64) * part;
    assert!(
        sent <= remaining + 4 * part,
        "re-sent {sent} bytes; {remaining} were missing:\n{log}"
    );
    assert!(sent <= size / 3, "re-sent {sent} of {size} bytes:\n{log}");
    assert_eq!(
        proxy.count("POST", "uploads"),
        0,
        "no new upload was started"
    );
    assert_eq!(aws_sha256(&key), sha256_file(&src));
    eprintln!(
        "mount: killed after {} of {total_parts} parts; the remount sent {} MiB of 512",
        listed.len(),
        sent / MIB
    );
    let said = second.unmount(&ferry);
    assert!(said.contains("every upload finished"), "{said}");
    let pending = std::fs::read_dir(cache.join("pending")).unwrap().count();
    assert_eq!(pending, 0, "journal empty");
}

fn errno_of<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("should have been refused")
        .raw_os_error()
        .unwrap()
}

#[test]
fn operations_follow_semantics_md() {
    let prefix = unique("mount-ops");
    let store = server().store();
    let bucket = server().bucket.clone();
    let rt = runtime();
    let put = |key: &str, data: &[u8], mtime: Option<&str>| {
        let mut opts = PutOptions::default();
        if let Some(m) = mtime {
            opts.metadata.insert("mtime".into(), m.into());
        }
        rt.block_on(store.put_object(
            &bucket,
            &format!("{prefix}/{key}"),
            Body::new(data.to_vec()),
            &opts,
        ))
        .unwrap();
    };
    let get = |key: &str| -> Option<Vec<u8>> {
        rt.block_on(async {
            match store
                .get_object(&bucket, &format!("{prefix}/{key}"), &GetRequest::whole())
                .await
            {
                Ok(o) => Some(o.bytes().await.unwrap().to_vec()),
                Err(e) if e.is_not_found() => None,
                Err(e) => panic!("{e}"),
            }
        })
    };
    let mtime_of = |key: &str| {
        rt.block_on(store.head_object(&bucket, &format!("{prefix}/{key}")))
            .unwrap()
            .metadata
            .get("mtime")
            .cloned()
    };
    put("f.txt", b"0123456789", Some("1500000000.5"));
    put("dir/a", b"A", None);
    put("dir/sub/b", b"B", None);
    put("keep/", b"", None);

    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let m = Mounted::start(
        &ferry,
        &prefix,
        &dir.path().join("mnt"),
        &dir.path().join("cache"),
        &[],
    );
    let p = |rel: &str| m.path(rel);

    // rename of a file: copy + delete, mtime metadata kept.
    std::fs::rename(p("f.txt"), p("g.txt")).unwrap();
    assert_eq!(get("f.txt"), None);
    assert_eq!(get("g.txt").unwrap(), b"0123456789");
    assert_eq!(mtime_of("g.txt").as_deref(), Some("1500000000.5"));
    // rename of a directory: every object below moves.
    std::fs::rename(p("dir"), p("moved")).unwrap();
    assert_eq!((get("dir/a"), get("dir/sub/b")), (None, None));
    assert_eq!(get("moved/a").unwrap(), b"A");
    assert_eq!(get("moved/sub/b").unwrap(), b"B");
    assert_eq!(std::fs::read(p("moved/sub/b")).unwrap(), b"B");
    // mkdir puts a marker; rmdir of an empty directory deletes it; a
    // non-empty one is refused.
    std::fs::create_dir(p("new")).unwrap();
    assert_eq!(get("new/").unwrap(), b"");
    assert_eq!(errno_of(std::fs::remove_dir(p("moved"))), libc::ENOTEMPTY);
    std::fs::remove_dir(p("new")).unwrap();
    assert_eq!(get("new/"), None);
    std::fs::remove_dir(p("keep")).unwrap();
    assert_eq!(get("keep/"), None);
    // unlink.
    std::fs::remove_file(p("moved/a")).unwrap();
    assert_eq!(get("moved/a"), None);
    assert_eq!(errno_of(std::fs::metadata(p("moved/a"))), libc::ENOENT);
    // truncate through an open file and by path.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p("g.txt"))
        .unwrap();
    f.set_len(4).unwrap();
    drop(f);
    assert_eq!(get("g.txt").unwrap(), b"0123");
    let c = std::ffi::CString::new(p("g.txt").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 6) }, 0);
    assert_eq!(get("g.txt").unwrap(), b"0123\0\0");
    // overwrite and append.
    std::fs::write(p("g.txt"), b"new content").unwrap();
    assert_eq!(get("g.txt").unwrap(), b"new content");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(p("g.txt"))
            .unwrap();
        f.write_all(b" + more").unwrap();
    }
    assert_eq!(get("g.txt").unwrap(), b"new content + more");
    assert_eq!(std::fs::read(p("g.txt")).unwrap(), b"new content + more");
    // utimens: CopyObject with the mtime replaced; stat shows it.
    let t = filetime::FileTime::from_unix_time(1_234_567_890, 250_000_000);
    filetime::set_file_mtime(p("g.txt"), t).unwrap();
    assert_eq!(mtime_of("g.txt").as_deref(), Some("1234567890.250000000"));
    let shown =
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(p("g.txt")).unwrap());
    assert_eq!(shown, t);
    assert_eq!(get("g.txt").unwrap(), b"new content + more");

    // Refused operations.
    assert_eq!(
        errno_of(std::fs::hard_link(p("g.txt"), p("h"))),
        libc::EPERM
    );
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("g.txt", p("s"))),
        libc::EPERM
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        errno_of(std::fs::set_permissions(
            p("g.txt"),
            std::fs::Permissions::from_mode(0o600)
        )),
        libc::EPERM
    );
    std::fs::set_permissions(p("g.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        errno_of(std::os::unix::fs::chown(p("g.txt"), Some(4242), None)),
        libc::EPERM
    );
    let name = std::ffi::CString::new("user.x").unwrap();
    // SAFETY: valid path, name and a one-byte value.
    let r = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    assert_eq!(
        (r, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENOTSUP))
    );
    let fifo = std::ffi::CString::new(p("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
    assert_eq!(
        (r, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EPERM))
    );
    let rename2 = |from: &str, to: &str, flags: u32| {
        let (a, b) = (
            std::ffi::CString::new(p(from).to_str().unwrap()).unwrap(),
            std::ffi::CString::new(p(to).to_str().unwrap()).unwrap(),
        );
        // SAFETY: valid NUL-terminated paths relative to nothing (absolute).
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                flags,
            )
        };
        (r, std::io::Error::last_os_error().raw_os_error())
    };
    assert_eq!(
        rename2("g.txt", "moved/sub/b", libc::RENAME_NOREPLACE),
        (-1, Some(libc::EEXIST))
    );
    assert_eq!(
        rename2("g.txt", "moved/sub/b", libc::RENAME_EXCHANGE),
        (-1, Some(libc::EINVAL))
    );
    assert_eq!(get("h"), None);
    assert_eq!(get("s"), None);
    m.unmount(&ferry);

    // --read-only: reads work, every change is EROFS.
    let ro = Mounted::start(
        &ferry,
        &prefix,
        &dir.path().join("ro"),
        &dir.path().join("cache-ro"),
        &["--read-only"],
    );
    assert_eq!(std::fs::read(ro.path("moved/sub/b")).unwrap(), b"B");
    assert_eq!(errno_of(std::fs::write(ro.path("x"), b"x")), libc::EROFS);
    assert_eq!(errno_of(std::fs::create_dir(ro.path("d"))), libc::EROFS);
    assert_eq!(
        errno_of(std::fs::remove_file(ro.path("g.txt"))),
        libc::EROFS
    );
    ro.unmount(&ferry);
}

/// Another client replaces an object while it is open through the mount:
/// the next read the kernel sends fails with ESTALE rather than returning
/// the new version's bytes after the old one's; reopened, it reads the new
/// version. (Same size, so the kernel's cached size plays no part.)
#[test]
fn an_object_replaced_while_open_fails_reads_with_estale() {
    let prefix = unique("mount-estale");
    let store = server().store();
    let bucket = server().bucket.clone();
    let key = format!("{prefix}/f.bin");
    let rt = runtime();
    let put = |data: Vec<u8>| {
        rt.block_on(store.put_object(&bucket, &key, Body::new(data), &PutOptions::default()))
            .unwrap();
    };
    let old = pattern(4 * MIB as usize, 1);
    let new = pattern(4 * MIB as usize, 2);
    assert_ne!(old, new);
    put(old.clone());
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let m = Mounted::start(
        &ferry,
        &prefix,
        &dir.path().join("mnt"),
        &dir.path().join("cache"),
        &[],
    );
    let f = std::fs::File::open(m.path("f.bin")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, old[..4096]);
    put(new.clone());
    let err = f.read_exact_at(&mut buf, 3 * MIB).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop(f);
    assert_eq!(std::fs::read(m.path("f.bin")).unwrap(), new);
    m.unmount(&ferry);
}

/// In a shared /tmp another user can create ferry's runtime directory
/// first, or plant a link there: the mount refuses it with one line and
/// mounts nothing, rather than write its pid and status files where
/// someone else can redirect them.
#[test]
fn a_runtime_dir_that_is_not_ours_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let prefix = unique("mount-rundir");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let mut cases = vec![("link", "is a symbolic link")];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cases.push(("theirs", "belongs to uid 65534"));
    }
    for (case, said) in cases {
        let runtime = dir.path().join(format!("run-{case}"));
        std::fs::create_dir(&runtime).unwrap();
        let planted = runtime.join("ferry");
        if case == "link" {
            std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir(&planted).unwrap();
            std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        }
        let mp = dir.path().join(format!("mnt-{case}"));
        std::fs::create_dir(&mp).unwrap();
        let url = server().url(&prefix);
        let cache = dir.path().join(format!("cache-{case}"));
        let out = ferry
            .command(&[
                "mount",
                url.as_str(),
                mp.to_str().unwrap(),
                "--foreground",
                "--cache-dir",
                cache.to_str().unwrap(),
            ])
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ferry: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{case}: {stderr}");
        assert!(errors[0].contains(said), "{case}: {stderr}");
        assert!(mounted(&mp).is_none(), "{case}: mounted anyway");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "{case}");
    }
}

#[test]
fn a_directory_of_10000_objects_lists_completely() {
    let prefix = unique("mount-10k");
    let store = server().store();
    let bucket = server().bucket.clone();
    let started = Instant::now();
    runtime().block_on(async {
        let results: Vec<_> = futures::stream::iter(0..10_000)
            .map(|i| {
                let (store, bucket) = (store.clone(), bucket.clone());
                let key = format!("{prefix}/many/f{i:05}");
                async move {
                    store
                        .put_object(&bucket, &key, Body::new(Vec::new()), &PutOptions::default())
                        .await
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        assert!(results.iter().all(|r| r.is_ok()));
    });
    eprintln!(
        "mount: created 10,000 objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let m = Mounted::start(
        &ferry,
        &prefix,
        &dir.path().join("mnt"),
        &dir.path().join("cache"),
        &[],
    );
    let started = Instant::now();
    let names: Vec<String> = std::fs::read_dir(m.path("many"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    eprintln!(
        "mount: listed 10,000 entries in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let want: std::collections::BTreeSet<String> =
        (0..10_000).map(|i| format!("f{i:05}")).collect();
    let got: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(names.len(), 10_000, "no duplicates");
    assert_eq!(got, want);
    // ls agrees, from the cache.
    let ls = sh(&format!("ls {} | wc -l", m.path("many").display()));
    assert_eq!(ls.trim(), "10000");
    m.unmount(&ferry);
}

#[test]
fn sigterm_flushes_pending_uploads_or_says_what_it_could_not() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 8 * MIB as usize, 8);
    let prefix = unique("mount-term");
    let proxy = Proxy::start(&server().endpoint, 4 * MIB);
    let ferry = Ferry::at(&proxy.endpoint);
    let copy_in = |m: &Mounted, name: &str| {
        Command::new("cp")
            .arg(&src)
            .arg(m.path(name))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let uploading = |key: &str| {
        let key = format!("{prefix}/{key}");
        wait_for(60, "the upload to start", || proxy.count("PUT", &key) >= 1);
    };
    let store = server().store();
    let stored = |key: &str| {
        runtime()
            .block_on(store.head_object(&server().bucket, &format!("{prefix}/{key}")))
            .ok()
    };

    // Enough time: the signal detaches the busy mount, the upload ends,
    // cp's close returns, and the process exits cleanly.
    let mut m = Mounted::start(
        &ferry,
        &prefix,
        &dir.path().join("a"),
        &dir.path().join("ca"),
        &[],
    );
    let mut cp = copy_in(&m, "ok.bin");
    uploading("ok.bin");
    let st = m.terminate(120);
    let log = m.log();
    assert!(st.success(), "{log}");
    assert!(cp.wait().unwrap().success(), "close saw the upload succeed");
    assert!(log.contains("busy: detaching"), "{log}");
    assert!(log.contains("every upload finished"), "{log}");
    assert_eq!(stored("ok.bin").map(|h| h.size), Some(8 * MIB));

    // Too little time: named, kept in the journal, exit status 1, and the
    // next mount with the cache dir uploads it.
    proxy.reset(2 * MIB);
    let cache = dir.path().join("cb");
    let mp = dir.path().join("b");
    let mut m = Mounted::start(&ferry, &prefix, &mp, &cache, &["--flush-timeout", "1"]);
    let mut cp = copy_in(&m, "late.bin");
    uploading("late.bin");
    let st = m.terminate(60);
    let log = m.log();
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(log.contains("could not be uploaded in time"), "{log}");
    assert!(log.contains(&format!("{prefix}/late.bin")), "{log}");
    let _ = cp.wait();
    proxy.reset(0);
    let again = Mounted::start(&ferry, &prefix, &mp, &cache, &[]);
    wait_for(120, "the pending upload to finish", || {
        again.log().contains("finished the interrupted upload")
    });
    assert_eq!(
        runtime()
            .block_on(async {
                let o = store
                    .get_object(
                        &server().bucket,
                        &format!("{prefix}/late.bin"),
                        &GetRequest::whole(),
                    )
                    .await?;
                o.bytes().await
            })
            .map(|b| sha256(&b))
            .unwrap(),
        sha256_file(&src)
    );
    again.unmount(&ferry);
}

/// Files written through the mount are stored as `cp` stores them: with
/// the mount's object options and a guessed Content-Type, carrying
/// CRC-64/NVME; a file read back in order is verified against it; a rename
/// (a server-side copy) keeps all of it.
#[test]
fn files_written_through_the_mount_carry_its_object_options_and_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("mount-object");
    let ferry = Ferry::new();
    let mp = dir.path().join("mnt");
    let m = Mounted::start(
        &ferry,
        &prefix,
        &mp,
        &dir.path().join("cache"),
        &["--cache-control", "max-age=7", "--metadata", "origin=mount"],
    );
    let data = crate::harness::pattern(3 << 20, 8);
    std::fs::write(m.path("page.html"), &data).unwrap();
    sh(&format!("mv {0}/page.html {0}/moved.html", mp.display()));
    // Read back in order through the mount (the check is on this path).
    assert_eq!(std::fs::read(m.path("moved.html")).unwrap(), data);
    m.unmount(&ferry);
    let head = aws_head(&format!("{prefix}/moved.html"));
    assert_eq!(head["CacheControl"].as_str(), Some("max-age=7"), "{head}");
    assert_eq!(head["ContentType"].as_str(), Some("text/html"), "{head}");
    assert_eq!(head["Metadata"]["origin"].as_str(), Some("mount"), "{head}");
    assert_eq!(
        head["ChecksumCRC64NVME"].as_str(),
        Some(crate::checksums::nvme_base64(&data).as_str()),
        "{head}"
    );
}
