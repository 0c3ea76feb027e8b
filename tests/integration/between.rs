//! `cp -r [-u] URL URL` against Garage: between two buckets of one
//! endpoint every object is a server-side copy (bodiless PUTs at the
//! proxy, no GET), across endpoints it streams through ferry (the bytes
//! counted at the proxy in front of the destination, none read through
//! it), and either way the copies are checked with the AWS CLI and a
//! rerun sends nothing.

use std::path::Path;

use crate::harness::{aws, server, sha256_file, stderr, unique, write_file, Ferry};
use crate::proxy::Proxy;

/// SHA-256 of `s3://bucket/key` as the AWS CLI downloads it.
fn sha_in(bucket: &str, key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("obj");
    let url = format!("s3://{bucket}/{key}");
    let out = aws(&["s3", "cp", &url, dest.to_str().unwrap()]);
    assert!(out.status.success(), "aws s3 cp {url}: {}", stderr(&out));
    sha256_file(&dest)
}

fn head_in(bucket: &str, key: &str) -> serde_json::Value {
    let out = aws(&[
        "s3api",
        "head-object",
        "--bucket",
        bucket,
        "--key",
        key,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "head {bucket}/{key}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A tree with a page, a multipart-sized file and a few small ones,
/// uploaded under a fresh prefix of the test bucket.
fn source_tree(ferry: &Ferry, root: &Path) -> (String, Vec<(&'static str, String)>) {
    let rels = ["index.html", "big.bin", "d/a.txt", "d/e/b.txt"];
    let sizes = [2_000, 12 << 20, 300, 0];
    let mut sums = Vec::new();
    for (rel, size) in rels.iter().zip(sizes) {
        let p = write_file(&root.join(rel), size, size as u64 + 1);
        sums.push((*rel, sha256_file(&p)));
    }
    let prefix = unique("between-src");
    ferry.ok(&[
        "cp",
        "-r",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        root.to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);
    (prefix, sums)
}

#[test]
fn a_tree_copies_between_buckets_server_side_and_a_rerun_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let (prefix, sums) = source_tree(&ferry, dir.path());
    let other = format!("between-{:08x}", rand::random::<u32>());
    ferry.ok(&["mb", &format!("s3://{other}")]);
    let src = server().url(&format!("{prefix}/"));
    let dst = format!("s3://{other}/q/");
    let proxy = Proxy::start(&server().endpoint, 0);
    let through = Ferry::at(&proxy.endpoint);

    through.ok(&["cp", "-r", "-u", &src, &dst]);
    let reqs = proxy.requests();
    let puts: Vec<_> = reqs.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), sums.len(), "{puts:?}");
    assert!(
        puts.iter().all(|r| r.body_len == 0),
        "server-side: {puts:?}"
    );
    assert_eq!(
        proxy.count("GET", &format!("/{prefix}/")),
        0,
        "no byte read"
    );
    for (rel, sum) in &sums {
        assert_eq!(&sha_in(&other, &format!("q/{rel}")), sum, "{rel}");
    }
    let (a, b) = (
        head_in(&server().bucket, &format!("{prefix}/index.html")),
        head_in(&other, "q/index.html"),
    );
    assert_eq!(a["Metadata"]["mtime"], b["Metadata"]["mtime"]);
    assert_eq!(b["ContentType"], "text/html");

    // Overlapping prefixes are refused before anything is sent.
    let out = through.run(&["cp", "-r", &src, &format!("{src}copy/")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("overlap"), "{}", stderr(&out));

    proxy.reset(0);
    let out = through.ok(&["cp", "-r", "-u", "--json", &src, &dst]);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["transferred"], 0, "{out}");
    let sent: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" || !r.target.contains("list-type"))
        .filter(|r| r.method != "HEAD")
        .collect();
    assert!(sent.is_empty(), "a rerun only lists (and HEADs): {sent:?}");

    // A removed source object goes with --delete; nothing else moves.
    aws(&["s3", "rm", &server().url(&format!("{prefix}/d/a.txt"))]);
    proxy.reset(0);
    through.ok(&["cp", "-r", "-u", "--delete", &src, &dst]);
    assert_eq!(proxy.count("PUT", ""), 0);
    let out = aws(&["s3", "ls", "--recursive", &format!("s3://{other}/q/")]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listed.contains("d/a.txt") && listed.contains("d/e/b.txt"),
        "{listed}"
    );
}

#[test]
fn a_tree_copies_across_endpoints_through_memory_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let (prefix, sums) = source_tree(&ferry, dir.path());
    let src = server().url(&format!("{prefix}/"));
    let dst_prefix = unique("between-dst");
    let dst = server().url(&format!("{dst_prefix}/"));
    // The destination is reached through the proxy, the source directly:
    // two endpoints, so nothing can be copied server-side.
    let proxy = Proxy::start(&server().endpoint, 0);
    let through = Ferry::at(&proxy.endpoint);
    let args = [
        "cp",
        "-r",
        "-u",
        "--part-size",
        "5M",
        "--source-endpoint",
        &server().endpoint,
        &src,
        &dst,
    ];
    through.ok(&args);
    let total: u64 = 2_000 + (12 << 20) + 300;
    assert_eq!(
        proxy.body_bytes("PUT", &dst_prefix),
        total,
        "every byte sent once"
    );
    assert_eq!(
        proxy.count("GET", &format!("/{prefix}/")),
        0,
        "the source is read directly"
    );
    assert!(proxy.count("POST", "uploads") >= 1, "the big one in parts");
    for (rel, sum) in &sums {
        assert_eq!(
            &sha_in(&server().bucket, &format!("{dst_prefix}/{rel}")),
            sum,
            "{rel}"
        );
    }
    let (a, b) = (
        head_in(&server().bucket, &format!("{prefix}/big.bin")),
        head_in(&server().bucket, &format!("{dst_prefix}/big.bin")),
    );
    assert_eq!(a["Metadata"]["mtime"], b["Metadata"]["mtime"]);
    let page = head_in(&server().bucket, &format!("{dst_prefix}/index.html"));
    assert_eq!(page["ContentType"], "text/html");

    proxy.reset(0);
    through.ok(&args);
    assert_eq!(proxy.count("PUT", ""), 0, "a rerun sends nothing");
    assert_eq!(proxy.count("POST", ""), 0);
}

/// Watch mode turns a rename into a server-side copy and a delete: a
/// 100 MiB file renamed moves no file data (bytes counted at the proxy).
#[test]
fn a_watched_rename_of_a_large_file_moves_no_data() {
    use crate::delete_safety::remote_keys;
    use crate::harness::wait_for;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let big = write_file(&src.join("video.bin"), 100 << 20, 5);
    write_file(&src.join("small.txt"), 10, 6);
    let sum = sha256_file(&big);
    let prefix = unique("watch-rename");
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let mut child = ferry
        .command(&[
            "cp",
            "-r",
            "-u",
            "--delete",
            "--watch",
            src.to_str().unwrap(),
            &server().url(&format!("{prefix}/")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(120, "the first pass", || {
        remote_keys(&prefix) == ["small.txt", "video.bin"]
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    // The watcher keeps its connections: count from here rather than reset.
    let before = proxy.requests().len();
    std::fs::rename(&big, src.join("archive-video.bin")).unwrap();
    wait_for(60, "the rename carried out", || {
        remote_keys(&prefix) == ["archive-video.bin", "small.txt"]
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let reqs = proxy.requests().split_off(before);
    let sent: u64 = reqs.iter().map(|r| r.body_len).sum();
    assert!(sent < 64 * 1024, "{sent} bytes sent for a rename");
    let copies = reqs
        .iter()
        .filter(|r| r.method == "PUT" && r.body_len == 0)
        .count();
    assert_eq!(copies, 1, "one server-side copy");
    assert_eq!(
        &sha_in(&server().bucket, &format!("{prefix}/archive-video.bin")),
        &sum
    );
}

/// `check URL URL`: a copy between prefixes is the same by its listings
/// alone (a server-side copy keeps the ETag: no object read); a changed
/// object of the same size differs by MD5, and by bytes with `--download`;
/// an object only in the destination is extra (not with `--one-way`); a
/// source on another endpoint is reached there.
#[test]
fn check_compares_two_prefixes_by_listings_then_the_stores_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::new();
    let (prefix, _) = source_tree(&ferry, dir.path());
    let src = server().url(&format!("{prefix}/"));
    let dst_prefix = unique("check-dst");
    let dst = server().url(&format!("{dst_prefix}/"));
    ferry.ok(&["cp", "-r", &src, &dst]);
    let proxy = Proxy::start(&server().endpoint, 0);
    let through = Ferry::at(&proxy.endpoint);
    let findings = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let out = through.ok(&["check", "--json", "--matched", &src, &dst]);
    let rows = findings(&out);
    let same = rows.iter().filter(|r| r["finding"] == "same").count();
    assert_eq!(same, 4, "{out}");
    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && !q.target.contains("list-type=2"))
        .collect();
    assert!(gets.is_empty(), "no object read: {gets:?}");
    assert!(proxy.count("HEAD", "") <= 2, "at most the multipart pair");

    // d/a.txt replaced in the destination by other bytes of its size.
    let other = write_file(&dir.path().join("other"), 300, 999);
    let key = format!("{dst_prefix}/d/a.txt");
    let put = aws(&["s3", "cp", other.to_str().unwrap(), &server().url(&key)]);
    assert!(put.status.success(), "{}", stderr(&put));
    let extra = aws(&[
        "s3",
        "cp",
        other.to_str().unwrap(),
        &server().url(&format!("{dst_prefix}/extra.txt")),
    ]);
    assert!(extra.status.success());
    let out = through.run(&["check", "--json", &src, &dst]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = findings(&String::from_utf8_lossy(&out.stdout));
    let of = |rows: &[serde_json::Value], k: &str| {
        rows.iter()
            .find(|r| r["key"] == k)
            .map(|r| r["finding"].as_str().unwrap().to_string())
    };
    assert_eq!(of(&rows, "d/a.txt").as_deref(), Some("differs"), "{rows:?}");
    assert_eq!(of(&rows, "extra.txt").as_deref(), Some("extra"), "{rows:?}");
    let why = rows.iter().find(|r| r["key"] == "d/a.txt").unwrap()["why"].clone();
    assert!(why.as_str().unwrap().contains("MD5"), "{why}");

    // --download reads both and finds it too; --one-way drops the extra.
    let out = through.run(&["check", "--json", "--download", "--one-way", &src, &dst]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = findings(&text);
    assert_eq!(of(&rows, "d/a.txt").as_deref(), Some("differs"), "{text}");
    assert_eq!(of(&rows, "extra.txt"), None, "{text}");
    let summary = rows.last().unwrap();
    assert!(summary["summary"]["bytes_downloaded"].as_u64().unwrap() >= 2 * (12 << 20));

    // The source through another endpoint: its LISTs go there.
    proxy.reset(0);
    let direct = Ferry::new();
    let out = direct.run(&["check", "--source-endpoint", &proxy.endpoint, &src, &dst]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(proxy.count("GET", "list-type=2") >= 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("d/a.txt"));
}
