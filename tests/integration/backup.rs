//! `--backup-dir` and `--suffix` against Garage: what a sync replaces or
//! deletes is found afterwards in the backup, byte for byte (checked with
//! the AWS CLI, not ferry), the store-side backups are server-side copies
//! (bodiless PUTs at the proxy, no byte of them sent by ferry), and a
//! backup place that a sync would overwrite is refused before anything
//! happens.

use std::path::Path;

use crate::delete_safety::remote_keys;
use crate::harness::{aws_sha256, server, sha256_file, stderr, unique, write_file, Ferry};
use crate::proxy::Proxy;

fn local(root: &Path) -> String {
    root.to_str().unwrap().to_string()
}

#[test]
fn an_upload_copies_what_it_replaces_or_deletes_to_the_backup_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_file(&root.join("a"), 300_000, 1);
    let gone = write_file(&root.join("d/gone"), 200_000, 2);
    write_file(&root.join("same"), 1000, 3);
    let (old_a, old_gone) = (sha256_file(&a), sha256_file(&gone));
    let prefix = unique("backup-up");
    let url = server().url(&format!("{prefix}/"));
    let old = server().url(&format!("{prefix}-old/"));
    Ferry::new().ok(&["cp", "-r", &local(root), &url]);

    write_file(&a, 310_000, 4);
    std::fs::remove_file(&gone).unwrap();
    write_file(&root.join("n"), 5000, 5);
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);

    // A backup place inside the destination is refused, with nothing done.
    let inside = server().url(&format!("{prefix}/old/"));
    for (place, needle) in [
        (inside.as_str(), "overlaps"),
        ("/tmp/x", "prefix on its store"),
    ] {
        let out = ferry.run(&[
            "cp",
            "-r",
            "-u",
            "--delete",
            "--backup-dir",
            place,
            &local(root),
            &url,
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    assert!(proxy.requests().is_empty(), "refused before any request");

    ferry.ok(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--backup-dir",
        &old,
        &local(root),
        &url,
    ]);
    assert_eq!(remote_keys(&format!("{prefix}-old")), ["a", "d/gone"]);
    assert_eq!(remote_keys(&prefix), ["a", "n", "same"]);
    assert_eq!(aws_sha256(&format!("{prefix}-old/a")), old_a);
    assert_eq!(aws_sha256(&format!("{prefix}-old/d/gone")), old_gone);
    assert_eq!(aws_sha256(&format!("{prefix}/a")), sha256_file(&a));
    // Two server-side copies (PUTs without a body); the only bytes sent
    // are the two changed files'.
    let copies: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.body_len == 0)
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(
        copies.iter().all(|r| r.target.contains("-old/")),
        "{copies:?}"
    );
    assert_eq!(proxy.body_bytes("PUT", &prefix), 310_000 + 5000);
}

#[test]
fn a_download_with_a_suffix_keeps_what_it_replaces_beside_it_and_leaves_those_alone() {
    let src = tempfile::tempdir().unwrap();
    write_file(&src.path().join("a"), 1000, 1);
    write_file(&src.path().join("d/b"), 1000, 2);
    let prefix = unique("backup-down");
    let url = server().url(&format!("{prefix}/"));
    let ferry = Ferry::new();
    ferry.ok(&["cp", "-r", &local(src.path()), &url]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let mine = write_file(&root.join("a"), 500, 7);
    let extra = write_file(&root.join("d/extra"), 600, 8);
    let (mine_sum, extra_sum) = (sha256_file(&mine), sha256_file(&extra));
    filetime::set_file_mtime(&mine, filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();

    let inside = root.join("old");
    let out = ferry.run(&[
        "cp",
        "-r",
        "-u",
        "--delete",
        "--backup-dir",
        &local(&inside),
        &url,
        &local(&root),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("overlaps"), "{}", stderr(&out));
    assert_eq!(sha256_file(&mine), mine_sum, "nothing replaced");

    let args = [
        "cp",
        "-r",
        "-u",
        "--delete",
        "--suffix",
        ".bak",
        &url,
        &local(&root),
    ];
    ferry.ok(&args);
    assert_eq!(sha256_file(&root.join("a.bak")), mine_sum);
    assert_eq!(sha256_file(&root.join("d/extra.bak")), extra_sum);
    assert!(!extra.exists());
    assert_eq!(
        sha256_file(&root.join("a")),
        aws_sha256(&format!("{prefix}/a"))
    );
    assert!(
        !root.join("d/b.bak").exists(),
        "a new file replaced nothing"
    );

    // Again: the backups are not part of the tree, so neither deleted nor
    // backed up a second time.
    let out = ferry.ok(&[&args[..], &["--json"]].concat());
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["transferred"], 0, "{out}");
    assert_eq!(summary["deleted"], 0, "{out}");
    assert_eq!(summary["backed_up"], 0, "{out}");
    assert_eq!(sha256_file(&root.join("a.bak")), mine_sum);
    assert!(root.join("d/extra.bak").exists());
}
