//! `ferry check` against the real server, on a tree the AWS CLI wrote
//! (an independent writer: its single-part ETags and multipart checksums,
//! not ferry's). Requests are counted at a proxy: an unchanged tree costs
//! listings and one HEAD per multipart object, never a GET.

use std::path::Path;

use crate::harness::{aws, server, stderr, unique, write_file, Ferry};
use crate::proxy::Proxy;

/// Findings other than `same`, as (finding, key), sorted.
fn findings(stdout: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j.get("finding").is_some())
        .map(|j| {
            (
                j["finding"].as_str().unwrap().to_string(),
                j["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn aws_put(local: &Path, key: &str) {
    let s = server();
    let out = aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        local.to_str().unwrap(),
        &format!("s3://{}/{key}", s.bucket),
    ]);
    assert!(out.status.success(), "aws s3 cp: {}", stderr(&out));
}

#[test]
fn a_tree_the_aws_cli_wrote_checks_the_same_and_each_difference_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    for i in 0..40u64 {
        write_file(
            &root.join(format!("d{}/f{i}", i % 4)),
            100 + i as usize * 13,
            i,
        );
    }
    // Above the AWS CLI's 8 MiB threshold: a multipart object.
    write_file(&root.join("large.bin"), 12 << 20, 99);
    let prefix = unique("check");
    let s = server();
    let out = aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        root.to_str().unwrap(),
        &format!("s3://{}/{prefix}/", s.bucket),
    ]);
    assert!(out.status.success(), "aws s3 cp: {}", stderr(&out));

    let url = server().url(&prefix);
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let r = root.to_str().unwrap();
    let out = ferry.run(&["check", "--json", "--matched", r, &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let same = findings(&stdout);
    assert_eq!(same.len(), 41, "{stdout}");
    assert!(same.iter().all(|(f, _)| f == "same"), "{stdout}");
    // The small objects' ETags are MD5s (no request); the multipart one is
    // checked by the COMPOSITE CRC-32 the AWS CLI gave it, whose two parts'
    // bounds come from `HEAD ?partNumber`.
    assert_eq!(proxy.count("GET", "list-type=2"), 1);
    assert_eq!(
        proxy.count("HEAD", ""),
        3,
        "the multipart object: HEAD, then each part's"
    );
    assert_eq!(proxy.count("HEAD", "partNumber"), 2);
    assert!(stdout.contains(r#""by":"CRC32 of 2 parts""#), "{stdout}");
    assert_eq!(proxy.count("GET", "") - 1, 0, "no object read");
    assert!(
        !stdout.contains(r#""by":"size""#),
        "every object compared by content: {stdout}"
    );

    // One of each difference: same-size edits on either side, an object
    // gone, a file only here, an object only there.
    write_file(&root.join("d1/f1"), 100 + 13, 1_001);
    let other = dir.path().join("other");
    write_file(&other, 100 + 2 * 13, 1_002);
    aws_put(&other, &format!("{prefix}/d2/f2"));
    let gone = aws(&[
        "s3",
        "rm",
        "--only-show-errors",
        &format!("s3://{}/{prefix}/d3/f3", s.bucket),
    ]);
    assert!(gone.status.success(), "{}", stderr(&gone));
    write_file(&root.join("new-here"), 10, 5);
    aws_put(&other, &format!("{prefix}/new-there"));

    let before = proxy.requests().len();
    let out = ferry.run(&["check", "--json", r, &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        findings(&String::from_utf8_lossy(&out.stdout)),
        pairs(&[
            ("differs", "d1/f1"),
            ("differs", "d2/f2"),
            ("extra", "new-there"),
            ("missing", "d3/f3"),
            ("missing", "new-here"),
        ])
    );
    // Each same-size difference confirmed by one HEAD (beside the
    // multipart object's three); still no GET.
    let reqs = &proxy.requests()[before..];
    assert_eq!(reqs.iter().filter(|q| q.method == "HEAD").count(), 3 + 2);
    assert_eq!(
        reqs.iter()
            .filter(|q| q.method == "GET" && !q.target.contains("list-type"))
            .count(),
        0
    );

    // Seen from the store's side the one-sided keys swap names; --one-way
    // drops what only the destination has.
    let out = ferry.run(&["check", "--json", "--one-way", &url, r]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        findings(&String::from_utf8_lossy(&out.stdout)),
        pairs(&[
            ("differs", "d1/f1"),
            ("differs", "d2/f2"),
            ("missing", "new-there"),
        ])
    );

    // --size-only cannot see same-size edits; --download reads and finds
    // them (one GET per object of equal size).
    let out = ferry.run(&["check", "--json", "--size-only", r, &url]);
    let f = findings(&String::from_utf8_lossy(&out.stdout));
    assert!(!f.iter().any(|(k, _)| k == "differs"), "{f:?}");
    let before = proxy.requests().len();
    let out = ferry.run(&["check", "--json", "--download", r, &url]);
    assert_eq!(out.status.code(), Some(1));
    let f = findings(&String::from_utf8_lossy(&out.stdout));
    assert!(f.contains(&("differs".into(), "d1/f1".into())), "{f:?}");
    assert!(f.contains(&("differs".into(), "d2/f2".into())), "{f:?}");
    let gets = proxy.requests()[before..]
        .iter()
        .filter(|q| q.method == "GET" && !q.target.contains("list-type"))
        .count();
    assert_eq!(gets, 40, "every pair: 39 small objects and the large one");

    // Human output: one line each, and the summary on stderr.
    let out = ferry.run(&["check", r, &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("differs   d1/f1"), "{text}");
    assert!(
        stderr(&out).contains("check: differences: 38 same, 2 differ"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_refuses_what_it_cannot_compare() {
    let ferry = Ferry::new();
    let url = server().url(&unique("check-bad"));
    let out = ferry.run(&["check", "/nonexistent/tree", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/tree: no such directory"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ferry.run(&["check", d, d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("both are local"), "{}", stderr(&out));
}

/// `check --fast`: sizes, then the stored mtimes one HEAD per file shows;
/// a file touched without a content change differs by time (the content
/// check calls it the same), and no object is read (no GET at the proxy).
#[test]
fn fast_check_compares_times_and_reads_no_object() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (i, rel) in ["a", "b", "d/c"].iter().enumerate() {
        write_file(&root.join(rel), 2000 + i, i as u64);
    }
    let prefix = unique("check-fast");
    let url = server().url(&format!("{prefix}/"));
    let ferry = Ferry::new();
    ferry.ok(&["cp", "-r", root.to_str().unwrap(), &url]);
    let proxy = Proxy::start(&server().endpoint, 0);
    let through = Ferry::at(&proxy.endpoint);
    let tree = root.to_str().unwrap();
    through.ok(&["check", "--fast", "--json", tree, &url]);
    assert_eq!(proxy.count("GET", &format!("/{prefix}/")), 0);
    assert_eq!(
        proxy.count("HEAD", ""),
        3,
        "one HEAD per file of equal size"
    );

    let later = filetime::FileTime::from_unix_time(crate::harness::now_secs() + 3600, 0);
    filetime::set_file_mtime(root.join("b"), later).unwrap();
    let out = through.run(&["check", "--fast", "--json", tree, &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(findings(&stdout), pairs(&[("differs", "b")]));
    // By content the touched file is the same.
    through.ok(&["check", "--json", tree, &url]);
}
