//! `--delete` never removes what the run could not see. Each case is an
//! ordinary mistake (an unreadable directory, a missing or empty source, a
//! mistyped prefix, a vanished directory under a filter) or a limit; the
//! deletes are counted at a proxy in front of the server (batch deletes
//! are `POST ?delete`, single ones `DELETE`), and what is left is listed by
//! the AWS CLI, never taken from ferry's report.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::harness::{aws, run_unprivileged, server, stderr, unique, wait_for, write_file, Ferry};
use crate::proxy::Proxy;

fn deletes(p: &Proxy) -> usize {
    p.requests()
        .iter()
        .filter(|r| r.method == "DELETE" || (r.method == "POST" && r.target.contains("delete")))
        .count()
}

/// Keys under `prefix/`, relative, as the AWS CLI lists them.
pub(crate) fn remote_keys(prefix: &str) -> Vec<String> {
    let s = server();
    let out = aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &s.bucket,
        "--prefix",
        &format!("{prefix}/"),
        "--query",
        "Contents[].Key",
        "--output",
        "text",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|k| *k != "None")
        .map(|k| k[prefix.len() + 1..].to_string())
        .collect();
    keys.sort();
    keys
}

fn tree(root: &Path, rels: &[&str]) {
    for (i, r) in rels.iter().enumerate() {
        write_file(&root.join(r), 100, i as u64);
    }
}

/// Uploads `rels` under a fresh prefix and returns it.
fn seeded(ferry: &Ferry, name: &str, rels: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), rels);
    let prefix = unique(name);
    ferry.ok(&[
        "cp",
        "-r",
        dir.path().to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);
    prefix
}

fn assert_refused(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "'{needle}' missing from:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unreadable_directory_withholds_every_delete() {
    let ferry = Ferry::new();
    let prefix = seeded(
        &ferry,
        "unreadable-dir",
        &["a.txt", "private/p1", "private/p2", "gone.txt"],
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree(&src, &["a.txt", "private/p1", "private/p2"]);
    let private = src.join("private");
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    for p in [dir.path(), &src] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let proxy = Proxy::start(&server().endpoint, 0);
    let counted = Ferry::at(&proxy.endpoint);
    let out = run_unprivileged(
        &counted,
        ferry.home.path(),
        &[
            "cp",
            "-r",
            "-u",
            "--delete",
            src.to_str().unwrap(),
            &server().url(&format!("{prefix}/")),
        ],
    );
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_refused(&out, 1, "not deleting 1 files");
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(deletes(&proxy), 0, "nothing may be deleted");
    assert_eq!(
        remote_keys(&prefix),
        ["a.txt", "gone.txt", "private/p1", "private/p2"]
    );
}

#[test]
fn a_job_whose_source_is_missing_is_a_usage_error_and_deletes_nothing() {
    let ferry = Ferry::new();
    let prefix = seeded(&ferry, "missing-src", &["a", "b/c"]);
    let proxy = Proxy::start(&server().endpoint, 0);
    let counted = Ferry::at(&proxy.endpoint);
    let cfg = ferry.home.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[jobs.bk]\nsource = \"{}/unplugged-drive\"\ndestination = \"{}\"\ndelete = true\n",
            ferry.home.path().display(),
            server().url(&prefix)
        ),
    )
    .unwrap();
    let out = counted.run(&["--config", cfg.to_str().unwrap(), "run", "bk"]);
    assert_refused(&out, 2, "does not exist");
    assert_eq!(deletes(&proxy), 0);
    assert_eq!(remote_keys(&prefix), ["a", "b/c"]);
    // cp -r likewise.
    let out = counted.run(&[
        "cp",
        "-r",
        "--delete",
        "/definitely/not/here",
        &server().url(&format!("{prefix}/")),
    ]);
    assert_refused(&out, 2, "/definitely/not/here");
    assert_eq!(deletes(&proxy), 0);
}

#[test]
fn a_mistyped_remote_prefix_never_empties_the_local_tree() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["keep1", "sub/keep2"]);
    let ferry = Ferry::new();
    let url = server().url(&format!("{}/", unique("mistyped-prefix")));
    let out = ferry.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        &url,
        dir.path().to_str().unwrap(),
    ]);
    assert_refused(&out, 2, "no objects under this prefix");
    assert!(dir.path().join("keep1").exists() && dir.path().join("sub/keep2").exists());
}

#[test]
fn an_empty_source_deletes_only_when_asked_to() {
    let ferry = Ferry::new();
    let prefix = seeded(&ferry, "empty-src", &["x", "y/z"]);
    let empty = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server().endpoint, 0);
    let counted = Ferry::at(&proxy.endpoint);
    let url = server().url(&format!("{prefix}/"));
    let out = counted.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        empty.path().to_str().unwrap(),
        &url,
    ]);
    assert_refused(&out, 1, "the source is empty");
    assert_eq!(deletes(&proxy), 0);
    assert_eq!(remote_keys(&prefix), ["x", "y/z"]);
    // --dry-run says the same and changes nothing.
    let out = counted.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--dry-run",
        empty.path().to_str().unwrap(),
        &url,
    ]);
    assert_refused(&out, 1, "not deleting 2 files");
    assert_eq!(deletes(&proxy), 0);
    // The explicit opt-in empties it.
    counted.ok(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--allow-empty-source",
        empty.path().to_str().unwrap(),
        &url,
    ]);
    assert_eq!(deletes(&proxy), 1, "one batch delete");
    assert!(remote_keys(&prefix).is_empty());
}

#[test]
fn max_delete_as_a_count_and_as_a_share_refuses_the_whole_batch() {
    let all: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let ferry = Ferry::new();
    let prefix = seeded(&ferry, "max-delete", &refs);
    // The source keeps 9 of 20: 11 would go.
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), &refs[..9]);
    let proxy = Proxy::start(&server().endpoint, 0);
    let counted = Ferry::at(&proxy.endpoint);
    let url = server().url(&format!("{prefix}/"));
    let s = src.path().to_str().unwrap();
    for limit in ["10", "50%"] {
        let out = counted.run(&["cp", "-r", "-u", "--delete", "--max-delete", limit, s, &url]);
        assert_refused(&out, 1, &format!("more than --max-delete {limit}"));
        assert_eq!(deletes(&proxy), 0, "limit {limit}");
        assert_eq!(remote_keys(&prefix).len(), 20);
    }
    // Transfers still happen under a refused delete.
    write_file(&src.path().join("new"), 10, 99);
    let out = counted.run(&["cp", "-r", "-u", "--delete", "--max-delete", "10", s, &url]);
    assert_refused(&out, 1, "not deleting 11 of 20 files");
    assert!(remote_keys(&prefix).contains(&"new".to_string()));
    // Within the limit the batch goes.
    counted.ok(&["cp", "-r", "-u", "--delete", "--max-delete", "11", s, &url]);
    assert_eq!(remote_keys(&prefix).len(), 10);
    // A bad limit is a usage error.
    let out = counted.run(&["cp", "-r", "--delete", "--max-delete", "lots", s, &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn watch_keeps_what_the_filter_protects_when_a_directory_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree(&src, &["photos/a.jpg", "photos/sub/b.jpg", "keep.txt"]);
    let prefix = unique("watch-excl");
    // Excluded objects already in the bucket (from another machine, say).
    let elsewhere = tempfile::tempdir().unwrap();
    tree(
        elsewhere.path(),
        &["photos/raw1.raw", "photos/sub/raw2.raw"],
    );
    let ferry = Ferry::new();
    ferry.ok(&[
        "cp",
        "-r",
        elsewhere.path().to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);
    let cfg = ferry.home.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[jobs.w]\nsource = \"{}\"\ndestination = \"{}\"\ndelete = true\ndebounce = \"300ms\"\nexclude = [\"*.raw\"]\n",
            src.display(),
            server().url(&prefix)
        ),
    )
    .unwrap();
    let mut child = ferry
        .command(&["--config", cfg.to_str().unwrap(), "watch", "w"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let want_before = [
        "keep.txt",
        "photos/a.jpg",
        "photos/raw1.raw",
        "photos/sub/b.jpg",
        "photos/sub/raw2.raw",
    ];
    wait_for(60, "first pass", || remote_keys(&prefix) == want_before);
    std::fs::remove_dir_all(src.join("photos")).unwrap();
    wait_for(60, "vanished directory handled", || {
        remote_keys(&prefix) == ["keep.txt", "photos/raw1.raw", "photos/sub/raw2.raw"]
    });
    // And it stays so (no later pass deletes the protected objects).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        remote_keys(&prefix),
        ["keep.txt", "photos/raw1.raw", "photos/sub/raw2.raw"]
    );
}

/// `--max-size` and `--max-age` with `--delete`: what they leave out is
/// neither sent nor deleted, on either side; only an object inside them
/// whose file is gone goes.
#[test]
fn size_and_age_rules_never_delete_what_they_leave_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    let prefix = unique("rules");
    let url = server().url(&prefix);
    let s = server();
    // Objects the AWS CLI wrote: a large one and a small one the tree
    // lacks, and an old copy of a file the tree has.
    let other = dir.path().join("o");
    for (name, len) in [
        ("gone-large", 5000),
        ("gone-small", 10),
        ("kept-large", 4000),
    ] {
        write_file(&other, len, 1);
        let out = aws(&[
            "s3",
            "cp",
            "--only-show-errors",
            other.to_str().unwrap(),
            &format!("s3://{}/{prefix}/{name}", s.bucket),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    write_file(&root.join("kept-large"), 6000, 2);
    write_file(&root.join("small-new"), 20, 3);
    write_file(&root.join("small-old"), 20, 4);
    let old = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_file_mtime(root.join("small-old"), old).unwrap();
    let proxy = Proxy::start(&s.endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let r = root.to_str().unwrap();
    let out = ferry.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--max-size",
        "1K",
        "--max-age",
        "30d",
        r,
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        remote_keys(&prefix),
        ["gone-large", "kept-large", "small-new"],
        "gone-small deleted; the large copies and the old file's absence left alone"
    );
    assert_eq!(proxy.count("PUT", ""), 1, "only small-new is sent");
    assert_eq!(deletes(&proxy), 1);
    // A bad age is a usage error before anything is sent.
    let out = ferry.run(&["cp", "-r", "--max-age", "last week", r, &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--max-age"), "{}", stderr(&out));
}

/// Watch mode with rule files: what `--exclude-from` names is neither sent
/// when it appears nor deleted when it vanishes, in the changed-path
/// passes as in the first full pass.
#[test]
fn watch_follows_rule_files_for_changes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree(&src, &["keep.txt", "old.tmp"]);
    let rules = dir.path().join("rules");
    std::fs::write(&rules, "# scratch files\n*.tmp\ncache/\n").unwrap();
    let prefix = unique("watch-rules");
    // An excluded object already at the destination.
    let elsewhere = tempfile::tempdir().unwrap();
    tree(elsewhere.path(), &["remote.tmp"]);
    let ferry = Ferry::new();
    ferry.ok(&[
        "cp",
        "-r",
        elsewhere.path().to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);
    let mut child = ferry
        .command(&[
            "cp",
            "-r",
            "-u",
            "--delete",
            "--watch",
            "--exclude-from",
            rules.to_str().unwrap(),
            src.to_str().unwrap(),
            &server().url(&format!("{prefix}/")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60, "first pass", || {
        remote_keys(&prefix) == ["keep.txt", "remote.tmp"]
    });
    write_file(&src.join("new.txt"), 10, 1);
    write_file(&src.join("scratch.tmp"), 10, 2);
    write_file(&src.join("cache/blob"), 10, 3);
    std::fs::remove_file(src.join("old.tmp")).unwrap();
    wait_for(60, "the change sent", || {
        remote_keys(&prefix) == ["keep.txt", "new.txt", "remote.tmp"]
    });
    // Removing an excluded file deletes nothing, nor does a later pass.
    std::fs::remove_file(src.join("scratch.tmp")).unwrap();
    std::fs::remove_file(src.join("keep.txt")).unwrap();
    wait_for(60, "the delete made", || {
        remote_keys(&prefix) == ["new.txt", "remote.tmp"]
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(remote_keys(&prefix), ["new.txt", "remote.tmp"]);
}
