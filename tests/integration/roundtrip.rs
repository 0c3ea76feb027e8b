//! `ferry cp` up and back through the real server: byte-exact content and
//! restored modification times, for the sizes that take different paths
//! (empty, tiny, single PUT, multipart).

use std::path::Path;

use filetime::FileTime;

use crate::harness::{server, sha256_file, unique, write_file, Ferry};

fn mtime(p: &Path) -> FileTime {
    FileTime::from_last_modification_time(&std::fs::metadata(p).unwrap())
}

fn round_trip(len: usize, extra: &[&str]) {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("src.bin"), len, len as u64 + 7);
    // A distinctive mtime with nanoseconds, in the past.
    let t = FileTime::from_unix_time(1_600_000_000, 123_456_789);
    filetime::set_file_mtime(&src, t).unwrap();
    let key = format!("{}/file.bin", unique("rt"));
    let url = server().url(&key);
    let mut up = vec!["cp", src.to_str().unwrap(), &url];
    up.extend_from_slice(extra);
    ferry.ok(&up);
    let stat = ferry.ok(&["stat", "--json", &url]);
    let v: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(v["size"], len as u64);
    assert_eq!(v["metadata"]["mtime"], "1600000000.123456789");

    let back = dir.path().join("out/back.bin");
    let mut down = vec!["cp", &url, back.to_str().unwrap()];
    down.extend_from_slice(extra);
    ferry.ok(&down);
    assert_eq!(
        sha256_file(&back),
        sha256_file(&src),
        "content of {len}-byte file"
    );
    assert_eq!(mtime(&back), t, "mtime restored");
    // Nothing but the result is left beside it.
    let names: Vec<_> = std::fs::read_dir(back.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn zero_bytes() {
    round_trip(0, &[]);
}

#[test]
fn one_byte() {
    round_trip(1, &[]);
}

#[test]
fn five_mib_single_put() {
    round_trip(5 * 1024 * 1024, &[]);
}

#[test]
fn five_mib_multipart_when_threshold_is_lower() {
    round_trip(
        5 * 1024 * 1024 + 3,
        &["--bigfile-threshold", "1M", "--part-size", "5M"],
    );
}

#[test]
fn two_hundred_mib_multipart() {
    round_trip(200 * 1024 * 1024, &[]);
}

#[test]
fn directory_round_trip() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    let files = [
        ("a.txt", 10),
        ("sub/b.bin", 70_000),
        ("sub/deeper/c", 0),
        ("sp ace/ü.txt", 5),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let p = write_file(&src.join(name), *len, i as u64);
        filetime::set_file_mtime(&p, FileTime::from_unix_time(1_500_000_000 + i as i64, 5))
            .unwrap();
    }
    let prefix = unique("tree");
    let url = server().url(&prefix);
    ferry.ok(&["cp", "-r", src.to_str().unwrap(), &url]);
    let listing = ferry.ok(&["ls", "-r", "--json", &url]);
    assert_eq!(listing.lines().count(), files.len(), "{listing}");
    let back = dir.path().join("back");
    ferry.ok(&["cp", "-r", &url, back.to_str().unwrap()]);
    for (name, _) in files {
        assert_eq!(
            sha256_file(&back.join(name)),
            sha256_file(&src.join(name)),
            "{name}"
        );
        assert_eq!(mtime(&back.join(name)), mtime(&src.join(name)), "{name}");
    }
}

#[test]
fn uploads_carry_a_content_type_guessed_from_the_name() {
    let ferry = crate::harness::Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = crate::harness::unique("ctype");
    let files = [
        ("index.html", 100, "text/html"),
        ("data.json", 100, "application/json"),
        ("clip.mp4", 11 << 20, "video/mp4"),
    ];
    for (name, len, _) in files {
        crate::harness::write_file(&dir.path().join(name), len, 1);
    }
    std::fs::write(dir.path().join("noext"), b"x").unwrap();
    ferry.ok(&[
        "cp",
        "-r",
        "--bigfile-threshold",
        "6M",
        "--part-size",
        "5M",
        dir.path().to_str().unwrap(),
        &crate::harness::server().url(&format!("{prefix}/")),
    ]);
    let content_type = |name: &str| {
        let out = crate::harness::aws(&[
            "s3api",
            "head-object",
            "--bucket",
            &crate::harness::server().bucket,
            "--key",
            &format!("{prefix}/{name}"),
            "--query",
            "ContentType",
            "--output",
            "text",
        ]);
        assert!(out.status.success(), "{}", crate::harness::stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for (name, _, want) in files {
        assert_eq!(content_type(name), want, "{name}");
    }
    // Unknown: the store's default, not a guess.
    let none = content_type("noext");
    assert!(
        none == "binary/octet-stream" || none == "application/octet-stream" || none == "None",
        "{none}"
    );
}
