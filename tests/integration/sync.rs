//! `ferry cp -r [-u]` against the real server. What was written is counted
//! at a proxy in front of the server (PUT, UploadPart, CreateMultipartUpload
//! requests), never taken from ferry's report.

use std::path::Path;
use std::process::Stdio;

use filetime::FileTime;

use crate::harness::{
    aws, aws_sha256, files, run_unprivileged, server, sha256_file, stderr, unique, wait_for,
    write_file, Ferry,
};
use crate::proxy::Proxy;

fn mtime(p: &Path) -> FileTime {
    FileTime::from_last_modification_time(&std::fs::metadata(p).unwrap())
}

fn assert_same_tree(a: &Path, b: &Path) {
    let fa = files(a);
    assert_eq!(fa, files(b), "same file names");
    for f in fa {
        assert_eq!(
            sha256_file(&a.join(&f)),
            sha256_file(&b.join(&f)),
            "{}",
            f.display()
        );
        assert_eq!(
            mtime(&a.join(&f)),
            mtime(&b.join(&f)),
            "mtime of {}",
            f.display()
        );
    }
}

/// 2,000 files in nested directories, three of them large enough for multipart.
fn big_tree(root: &Path) {
    for i in 0..1997u64 {
        let p = root.join(format!("d{}/e{}/f{i}.dat", i % 7, i % 13));
        write_file(&p, (i as usize * 37) % 3000, i);
        filetime::set_file_mtime(
            &p,
            FileTime::from_unix_time(1_600_000_000 + i as i64, (i * 1000) as u32),
        )
        .unwrap();
    }
    for i in 0..3u64 {
        let p = root.join(format!("large/l{i}.bin"));
        write_file(&p, 12 * 1024 * 1024 + i as usize, 100 + i);
    }
}

const MULTIPART: [&str; 4] = ["--bigfile-threshold", "10M", "--part-size", "5M"];

fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = base.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn tree_round_trip_then_noop_then_exact_changes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    big_tree(&src);
    let url = server().url(&unique("sync2k"));
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let s = src.to_str().unwrap();

    // 1. Up and back into an empty directory.
    ferry.ok(&args(&["cp", "-r", "-j", "16", s, &url], &MULTIPART));
    assert_eq!(proxy.count("POST", "uploads"), 3, "three multipart uploads");
    let back = dir.path().join("back");
    ferry.ok(&args(
        &["cp", "-r", "-j", "16", &url, back.to_str().unwrap()],
        &MULTIPART,
    ));
    assert_same_tree(&src, &back);

    // 2. A rerun with -u writes nothing.
    proxy.reset(0);
    let out = ferry.run(&args(&["cp", "-r", "-u", s, &url, "--json"], &MULTIPART));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        crate::proxy::writes(&proxy).is_empty(),
        "no-op wrote {:?}",
        crate::proxy::writes(&proxy)
    );
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(v["transferred"], 0);
    assert_eq!(v["skipped"], 2000);

    // 3. One file touched, one rewritten with another size and the same mtime.
    let touched = src.join("d1/e1/f1.dat");
    filetime::set_file_mtime(&touched, FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
    let resized = src.join("d2/e2/f2.dat");
    let t = mtime(&resized);
    std::fs::write(&resized, b"a different length").unwrap();
    filetime::set_file_mtime(&resized, t).unwrap();
    proxy.reset(0);
    ferry.ok(&args(&["cp", "-r", "-u", s, &url], &MULTIPART));
    let mut w = crate::proxy::writes(&proxy);
    w.sort();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].ends_with("/d1/e1/f1.dat"), "{w:?}");
    assert!(w[1].ends_with("/d2/e2/f2.dat"), "{w:?}");

    // 4. Down with -u brings exactly those two; then up again sends nothing.
    proxy.reset(0);
    ferry.ok(&args(
        &["cp", "-r", "-u", &url, back.to_str().unwrap()],
        &MULTIPART,
    ));
    let gets = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && !r.target.contains("list-type"))
        .count();
    assert_eq!(gets, 2, "{:?}", proxy.requests());
    assert_same_tree(&src, &back);
    proxy.reset(0);
    ferry.ok(&args(
        &["cp", "-r", "-u", back.to_str().unwrap(), &url],
        &MULTIPART,
    ));
    assert!(
        crate::proxy::writes(&proxy).is_empty(),
        "up→down→up wrote {:?}",
        crate::proxy::writes(&proxy)
    );
}

#[test]
fn killed_tree_upload_resumes_with_per_file_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..4u64 {
        write_file(&src.join(format!("big{i}.bin")), 40 * 1024 * 1024, 200 + i);
    }
    for i in 0..20u64 {
        write_file(&src.join(format!("small/s{i}")), 1000, i);
    }
    let ckpt = dir.path().join("ckpt");
    let prefix = unique("sync-kill");
    let url = server().url(&prefix);
    let proxy = Proxy::start(&server().endpoint, 30 * 1024 * 1024);
    let ferry = Ferry::at(&proxy.endpoint);
    let a = args(
        &[
            "cp",
            "-r",
            "-u",
            src.to_str().unwrap(),
            &url,
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "-j",
            "4",
            "--parallel",
            "2",
        ],
        &MULTIPART,
    );
    let mut child = ferry
        .command(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once several large files have parts on the server.
    wait_for(120, "parts of several large files recorded", || {
        let files_with_parts = std::fs::read_dir(&ckpt)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|b| {
                        ferry::transfer::checkpoint::decode::<
                            ferry::transfer::checkpoint::UploadCheckpoint,
                        >(&b)
                        .ok()
                    })
                    .filter(|c| c.parts.len() >= 2)
                    .count()
            })
            .unwrap_or(0);
        files_with_parts >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let ucps = std::fs::read_dir(&ckpt)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ucp"))
        .count();
    assert!(
        ucps >= 2,
        "one checkpoint per large file in flight, got {ucps}"
    );
    let before = proxy.body_bytes("PUT", "");
    proxy.reset(0);
    ferry.ok(&a);
    let rerun = proxy.body_bytes("PUT", "");
    let total = 4 * 40 * 1024 * 1024 + 20 * 1000;
    assert!(rerun < total as u64, "rerun sent {rerun} of {total}");
    // At most the bytes not yet acknowledged plus one part per slot.
    // At most what the first run had not fully sent, plus one part per slot
    // (4 files × 2 parts in flight when it died).
    assert!(
        rerun <= (total as u64 - before.min(total as u64)) + 4 * 2 * 5 * 1024 * 1024,
        "rerun sent {rerun}, first run {before}"
    );
    for i in 0..4 {
        assert_eq!(
            aws_sha256(&format!("{prefix}/big{i}.bin")),
            sha256_file(&src.join(format!("big{i}.bin")))
        );
    }
    let listing = ferry.ok(&["ls", "-r", "--json", &url]);
    assert_eq!(listing.lines().count(), 24);
}

#[test]
fn filters_symlinks_special_files_and_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("keep.txt"), 10, 1);
    write_file(&src.join("skip.tmp"), 10, 2);
    write_file(&src.join("sub/deep/keep.md"), 10, 3);
    write_file(&src.join("node_modules/pkg/index.js"), 10, 4);
    std::os::unix::fs::symlink(src.join("keep.txt"), src.join("link.txt")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap()
        .success());
    let prefix = unique("filters");
    let url = server().url(&prefix);
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let s = src.to_str().unwrap();

    // Dry run: a plan on stdout, nothing written.
    let out = ferry.run(&[
        "cp",
        "-r",
        "--dry-run",
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules/",
        s,
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("would upload keep.txt (new)"), "{plan}");
    assert!(
        plan.contains("would upload sub/deep/keep.md (new)"),
        "{plan}"
    );
    assert!(
        !plan.contains("skip.tmp") && !plan.contains("node_modules"),
        "{plan}"
    );
    assert!(crate::proxy::writes(&proxy).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("link.txt") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(
        err.contains("fifo") && err.contains("not a regular file"),
        "{err}"
    );

    ferry.ok(&[
        "cp",
        "-r",
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules/",
        s,
        &url,
    ]);
    let keys = ferry.ok(&["ls", "-r", "--json", &url]);
    assert_eq!(keys.lines().count(), 2, "{keys}");

    // --follow-symlinks copies the target's content.
    ferry.ok(&[
        "cp",
        "-r",
        "--follow-symlinks",
        "--include",
        "link.txt",
        s,
        &url,
    ]);
    let link_sha = aws_sha256(&format!("{prefix}/link.txt"));
    assert_eq!(link_sha, sha256_file(&src.join("keep.txt")));

    // --delete removes what the source lacks, only when asked; dry-run first.
    std::fs::remove_file(src.join("keep.txt")).unwrap();
    proxy.reset(0);
    let out = ferry.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--dry-run",
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules/",
        s,
        &url,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("would delete keep.txt"));
    assert_eq!(proxy.count("POST", "delete"), 0);
    ferry.ok(&[
        "cp",
        "-r",
        "-u",
        s,
        &url,
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules/",
    ]);
    assert_eq!(
        ferry.ok(&["ls", "-r", "--json", &url]).lines().count(),
        3,
        "no delete without --delete"
    );
    ferry.ok(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        s,
        &url,
        "--exclude",
        "*.tmp",
        "--exclude",
        "node_modules/",
    ]);
    let keys = ferry.ok(&["ls", "-r", "--json", &url]);
    assert!(
        !keys.contains("\"keep.txt\"") && !keys.contains("/keep.txt\""),
        "{keys}"
    );
    assert!(
        keys.contains("link.txt"),
        "excluded-from-this-run files are not deleted: {keys}"
    );
}

#[test]
fn download_refuses_escaping_keys_and_reports_clashes() {
    let prefix = unique("escape");
    let s = server();
    let store = s.store();
    let put = |key: String| {
        crate::harness::runtime()
            .block_on(store.put_object(
                &s.bucket,
                &key,
                ferry::store::Body::new(&b"data"[..]),
                &Default::default(),
            ))
            .unwrap();
    };
    put(format!("{prefix}/ok.txt"));
    put(format!("{prefix}//abs"));
    put(format!("{prefix}/dir/a\\b"));
    put(format!("{prefix}/clash"));
    put(format!("{prefix}/clash/inner"));
    // A real `..` key, written by an independent client.
    let dotdot = format!("{prefix}/../../escaped-by-dotdot");
    let tmp = tempfile::tempdir().unwrap();
    let f = write_file(&tmp.path().join("x"), 4, 4);
    let _ = aws(&[
        "s3api",
        "put-object",
        "--bucket",
        &s.bucket,
        "--key",
        &dotdot,
        "--body",
        f.to_str().unwrap(),
    ]);

    let dest = tmp.path().join("nested/dest");
    let ferry = Ferry::new();
    let out = ferry.run(&["cp", "-r", &s.url(&prefix), dest.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused") && err.contains("absolute"), "{err}");
    assert!(err.contains("backslash"), "{err}");
    assert!(err.contains("both an object and a prefix"), "{err}");
    assert!(dest.join("ok.txt").exists());
    assert!(dest.join("clash/inner").exists());
    // Nothing was written outside the destination.
    let outside: Vec<_> = walkdir::WalkDir::new(tmp.path())
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && !e.path().starts_with(&dest) && e.path() != f)
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn unreadable_file_is_reported_and_others_continue() {
    // Root reads everything, so run ferry as an unprivileged user.
    if !std::process::Command::new("setpriv")
        .arg("--help")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        panic!("setpriv (util-linux) is needed for this test");
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for n in ["a.txt", "b.txt", "c.txt"] {
        write_file(&src.join(n), 100, 1);
    }
    let secret = src.join("b.txt");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    for p in [dir.path(), &src] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let ferry = Ferry::new();
    let url = server().url(&unique("unreadable"));
    let out = run_unprivileged(
        &ferry,
        ferry.home.path(),
        &["cp", "-r", src.to_str().unwrap(), &url],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("b.txt") && err.contains("ermission denied"),
        "{err}"
    );
    let keys = ferry.ok(&["ls", "-r", "--json", &url]);
    assert_eq!(
        keys.lines().count(),
        2,
        "the other files were uploaded: {keys}"
    );
}

/// `--size-only` and `--ignore-existing` decide from the listing alone:
/// no HEAD, and only what they say is sent (counted at the proxy).
#[test]
fn size_only_and_ignore_existing_send_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    for i in 0..20u64 {
        write_file(&root.join(format!("f{i}")), 100, i);
    }
    let prefix = unique("modes");
    let url = server().url(&prefix);
    let r = root.to_str().unwrap();
    Ferry::new().ok(&["cp", "-r", r, &url]);
    // Every file rebuilt with a new time; one also changes size.
    let later = FileTime::from_unix_time(2_000_000_000, 0);
    for i in 0..20u64 {
        let p = root.join(format!("f{i}"));
        write_file(&p, if i == 7 { 101 } else { 100 }, i + 100);
        filetime::set_file_mtime(&p, later).unwrap();
    }
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    ferry.ok(&["cp", "-r", "--size-only", r, &url]);
    assert_eq!(proxy.count("PUT", ""), 1, "only the resized file");
    assert_eq!(proxy.count("HEAD", ""), 0);
    assert_eq!(
        aws_sha256(&format!("{prefix}/f7")),
        sha256_file(&root.join("f7"))
    );

    // --ignore-existing: the changed contents stay unsent; a new file goes.
    write_file(&root.join("new"), 5, 1);
    let before = proxy.requests().len();
    ferry.ok(&["cp", "-r", "--ignore-existing", r, &url]);
    let reqs = &proxy.requests()[before..];
    let puts: Vec<&str> = reqs
        .iter()
        .filter(|q| q.method == "PUT")
        .map(|q| q.target.as_str())
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(puts[0].ends_with("/new"), "{puts:?}");
    assert_eq!(reqs.iter().filter(|q| q.method == "HEAD").count(), 0);
}

/// `--files-from` sends exactly the listed files and deletes nothing it
/// does not list; `--exclude-from` reads its patterns from a file.
#[test]
fn files_from_and_rule_files_narrow_a_tree_copy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    for rel in ["a/one.txt", "a/two.log", "b/three.txt", "c/four.txt"] {
        write_file(&root.join(rel), 50, rel.len() as u64);
    }
    let prefix = unique("files-from");
    let url = server().url(&prefix);
    // The store has an object the list names but the tree lacks, and one
    // the list does not name.
    let other = dir.path().join("o");
    write_file(&other, 10, 9);
    for key in ["gone.txt", "unlisted.txt"] {
        let out = aws(&[
            "s3",
            "cp",
            "--only-show-errors",
            other.to_str().unwrap(),
            &format!("s3://{}/{prefix}/{key}", server().bucket),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let list = dir.path().join("list");
    std::fs::write(
        &list,
        "# what to send\n./a/one.txt\na/two.log\nc/four.txt\ngone.txt\n",
    )
    .unwrap();
    let rules = dir.path().join("rules");
    std::fs::write(&rules, "*.log\n").unwrap();
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let args = |delete: bool| {
        let mut a = vec!["cp", "-r", "-u"];
        if delete {
            a.push("--delete");
        }
        a.extend([
            "--files-from",
            list.to_str().unwrap(),
            "--exclude-from",
            rules.to_str().unwrap(),
            root.to_str().unwrap(),
            &url,
        ]);
        a
    };
    let out = ferry.run(&args(true));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--files-from"), "{}", stderr(&out));
    assert!(proxy.requests().is_empty(), "refused before any request");
    let out = ferry.run(&args(false));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gone.txt") && stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
    let mut puts: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|q| q.method == "PUT")
        .map(|q| {
            q.target
                .rsplit(&format!("{prefix}/"))
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    puts.sort();
    assert_eq!(
        puts,
        ["a/one.txt", "c/four.txt"],
        "the listed files, less the excluded log"
    );
    // The listing covers the list's directories only (top, a/, c/), one
    // delimited LIST each, never the whole prefix.
    let lists = |p: &Proxy| -> Vec<String> {
        p.requests()
            .iter()
            .filter(|q| q.method == "GET" && q.target.contains("list-type=2"))
            .map(|q| q.target.clone())
            .collect()
    };
    let up_lists = lists(&proxy);
    assert_eq!(up_lists.len(), 3, "{up_lists:?}");
    assert!(
        up_lists.iter().all(|t| t.contains("delimiter=%2F")),
        "{up_lists:?}"
    );

    // Downloading by the same list: the listed objects arrive, nothing
    // else, from the same three listings; no local walk beyond the list.
    let down = dir.path().join("down");
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let out = ferry.run(&[
        "cp",
        "-r",
        "--files-from",
        list.to_str().unwrap(),
        &url,
        down.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got: Vec<String> = files(&down)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        ["a/one.txt", "c/four.txt", "gone.txt"],
        "the log was never sent"
    );
    assert_eq!(
        std::fs::read(down.join("a/one.txt")).unwrap(),
        std::fs::read(root.join("a/one.txt")).unwrap()
    );
    assert_eq!(lists(&proxy).len(), 3, "{:?}", lists(&proxy));
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "../escape\n").unwrap();
    let out = ferry.run(&[
        "cp",
        "-r",
        "--files-from",
        bad.to_str().unwrap(),
        root.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

/// The traced run's log: `strace -ff` writes one file per thread
/// (`LOG.TID`), so no call is split across lines by another thread's.
fn trace_text(log: &Path) -> String {
    let name = log.file_name().unwrap().to_str().unwrap();
    let mut text = String::new();
    for entry in std::fs::read_dir(log.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name();
        if file
            .to_str()
            .is_some_and(|f| f.starts_with(&format!("{name}.")))
        {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    text
}

/// Removes the last traced run's logs so the next run's stand alone.
fn clear_trace(log: &Path) {
    let name = log.file_name().unwrap().to_str().unwrap();
    for entry in std::fs::read_dir(log.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_str()
            .is_some_and(|f| f.starts_with(&format!("{name}.")))
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
}

/// Bytes read from files under `root` by the traced run. strace's `-y`
/// names each descriptor's file beside its number (`read(7</dir/f>, …)`),
/// so a read is counted by the file it read, whatever the descriptor's
/// number was reused for before or after.
fn file_bytes_read(log: &Path, root: &Path) -> u64 {
    let text = trace_text(log);
    let under = format!("<{}/", root.to_str().unwrap());
    let mut total = 0;
    for line in text.lines() {
        let Some((call, args)) = line.split_once('(') else {
            continue;
        };
        if !["read", "pread64", "readv", "preadv", "preadv2"].contains(&call.trim()) {
            continue;
        }
        let fd = args.split(", ").next().unwrap_or("");
        if fd.contains(&under) {
            total += line
                .rsplit_once(") = ")
                .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// `--checksum`: a rebuilt tree (every file with a new time) sends only
/// the file whose content changed, even one whose size and time match;
/// the next run over the unchanged tree sends only LISTs and reads no
/// byte of any file (counted with strace), the digests coming from the
/// cache and, for the multipart object, the checksum a HEAD showed once.
#[test]
fn checksum_sends_changed_content_and_a_no_op_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    for i in 0..6u64 {
        write_file(&root.join(format!("d/f{i}")), 100_000, i);
    }
    write_file(&root.join("big"), 20 << 20, 99);
    let prefix = unique("checksum");
    let url = server().url(&prefix);
    let r = root.to_str().unwrap();
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    ferry.ok(&[
        "cp",
        "-r",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        r,
        &url,
    ]);
    assert_eq!(proxy.count("POST", "uploads"), 1, "big went up in parts");
    // A rebuild: every file rewritten with a new time; f3 with other bytes
    // of the same size, then given the same time as the rest.
    let later = FileTime::from_unix_time(2_000_000_000, 0);
    for i in 0..6u64 {
        let p = root.join(format!("d/f{i}"));
        write_file(&p, 100_000, if i == 3 { 1000 } else { i });
        filetime::set_file_mtime(&p, later).unwrap();
    }
    write_file(&root.join("big"), 20 << 20, 99);
    filetime::set_file_mtime(root.join("big"), later).unwrap();
    let before = proxy.requests().len();
    let out = ferry.ok(&["cp", "-r", "--checksum", "--json", r, &url]);
    let reqs = &proxy.requests()[before..];
    let puts: Vec<&str> = reqs
        .iter()
        .filter(|q| q.method == "PUT" || q.method == "POST")
        .map(|q| q.target.as_str())
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}\n{out}");
    assert!(puts[0].contains("/d/f3"), "{puts:?}");
    assert_eq!(
        aws_sha256(&format!("{prefix}/d/f3")),
        sha256_file(&root.join("d/f3"))
    );
    // `-u` would have sent all seven (every file is newer).
    let dry = ferry.ok(&["cp", "-r", "-u", "--dry-run", r, &url]);
    assert_eq!(dry.matches("upload").count(), 7, "{dry}");

    // The no-op: traced, through the proxy.
    let log = dir.path().join("strace.log");
    let before = proxy.requests().len();
    let cmd = ferry.command(&["cp", "-r", "--checksum", r, &url]);
    let mut traced = std::process::Command::new("strace");
    traced
        .args([
            "-ff",
            "-y",
            "-qq",
            "-e",
            "trace=openat,read,pread64,readv,preadv,preadv2,close",
        ])
        .arg("-o")
        .arg(&log)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            traced.env(k, v);
        }
    }
    let out = traced
        .output()
        .expect("run strace (scripts/test.sh installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = &proxy.requests()[before..];
    assert!(!reqs.is_empty());
    for q in reqs {
        assert!(
            q.method == "GET" && q.target.contains("list-type=2"),
            "a no-op --checksum run sent {} {}",
            q.method,
            q.target
        );
    }
    // The traced run did open the tree's directories: the log is sound.
    let text = trace_text(&log);
    assert!(
        text.contains(&format!("\"{r}/d\"")),
        "the walk is in the log"
    );
    assert_eq!(file_bytes_read(&log, &root), 0, "no file data read");
    // And the count is real: the same trace of a run that must read.
    write_file(&root.join("d/f1"), 100_000, 555);
    filetime::set_file_mtime(root.join("d/f1"), later).unwrap();
    clear_trace(&log);
    let out = traced.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        file_bytes_read(&log, &root) >= 100_000,
        "f1 was hashed and sent"
    );
}
