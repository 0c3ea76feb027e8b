//! Bad input: one clear line on stderr naming what and where, a non-zero
//! exit code, no panic, no partial file.

use crate::harness::{server, stderr, unique, write_file, Ferry};

fn assert_one_clear_line(out: &std::process::Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ferry: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line expected:\n{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {}", lines[0]);
    }
}

#[test]
fn missing_local_file() {
    let ferry = Ferry::new();
    let out = ferry.run(&["cp", "/definitely/not/here.txt", &server().url("x")]);
    assert_one_clear_line(&out, 1, &["/definitely/not/here.txt", "no such file"]);
}

#[test]
fn directory_without_recursive() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let out = ferry.run(&["cp", dir.path().to_str().unwrap(), &server().url("x/")]);
    assert_one_clear_line(&out, 2, &["is a directory", "-r"]);
}

#[test]
fn malformed_urls() {
    let ferry = Ferry::new();
    let tmp = tempfile::tempdir().unwrap();
    let f = write_file(&tmp.path().join("f"), 1, 1);
    for (url, needle) in [
        ("s3:///key", "bucket name is missing"),
        ("s3://UPPER/key", "invalid bucket name"),
        ("gs://bucket/key", "unsupported scheme"),
    ] {
        let out = ferry.run(&["cp", f.to_str().unwrap(), url]);
        assert_one_clear_line(&out, 2, &[url, needle]);
    }
    let long = format!("s3://bucket/{}", "k".repeat(1100));
    let out = ferry.run(&["ls", &long]);
    assert_one_clear_line(&out, 2, &["1100 bytes", "1024"]);
}

#[test]
fn unknown_bucket() {
    let ferry = Ferry::new();
    let tmp = tempfile::tempdir().unwrap();
    let f = write_file(&tmp.path().join("f"), 10, 1);
    let out = ferry.run(&["cp", f.to_str().unwrap(), "s3://no-such-bucket-ferry/k"]);
    assert_one_clear_line(&out, 1, &["no-such-bucket-ferry", "NoSuchBucket"]);
}

#[test]
fn wrong_credentials_do_not_leak_the_secret() {
    let mut ferry = Ferry::new();
    let secret = "wrongsecretwrongsecretwrongsecret0123456789";
    ferry
        .extra_env
        .push(("AWS_SECRET_ACCESS_KEY".into(), secret.into()));
    let tmp = tempfile::tempdir().unwrap();
    let f = write_file(&tmp.path().join("f"), 10, 1);
    let out = ferry.run(&["--debug", "cp", f.to_str().unwrap(), &server().url("k")]);
    let err = stderr(&out);
    assert!(!err.contains(secret), "secret leaked: {err}");
    assert_one_clear_line(&out, 1, &["s3://"]);
    let line = err
        .lines()
        .find(|l| l.starts_with("ferry: error:"))
        .unwrap();
    assert!(
        line.contains("AccessDenied")
            || line.contains("SignatureDoesNotMatch")
            || line.contains("InvalidAccessKeyId"),
        "{line}"
    );
    // And for a HEAD-based command, whose 403 has no body.
    let out = ferry.run(&["stat", &server().url("k")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains(secret));
}

#[test]
fn missing_credentials() {
    let ferry = Ferry::new();
    let mut cmd = ferry.command(&["ls", &server().url("")]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    assert_one_clear_line(&out, 2, &["no credentials", "AWS_ACCESS_KEY_ID"]);
}

#[test]
fn unreachable_endpoint_is_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let ferry = Ferry::at(&endpoint);
    let out = ferry.run(&["--retries", "2", "ls", &server().url("")]);
    assert_one_clear_line(&out, 1, &[&endpoint, "cannot reach", "after 2 attempts"]);
}

#[test]
fn destination_not_writable_leaves_nothing() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir.path().join("f"), 100, 3);
    let url = server().url(&format!("{}/f", unique("nw")));
    ferry.ok(&["cp", f.to_str().unwrap(), &url]);
    // A regular file where a directory is needed: not writable even as root.
    let blocker = write_file(&dir.path().join("blocker"), 1, 1);
    let dest = blocker.join("sub/out.bin");
    let out = ferry.run(&["cp", &url, dest.to_str().unwrap()]);
    assert_one_clear_line(&out, 1, &["blocker"]);
    assert!(!dest.exists());
}

#[test]
fn missing_object_download_leaves_no_file() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = ferry.run(&[
        "cp",
        &server().url("does/not/exist"),
        dest.to_str().unwrap(),
    ]);
    assert_one_clear_line(&out, 1, &["does/not/exist"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn prefix_download_without_recursive() {
    let ferry = Ferry::new();
    let out = ferry.run(&["cp", &server().url("some/prefix/"), "."]);
    assert_one_clear_line(&out, 2, &["prefix", "-r"]);
}

#[test]
fn bad_part_size_and_config() {
    let ferry = Ferry::new();
    let tmp = tempfile::tempdir().unwrap();
    let f = write_file(&tmp.path().join("f"), 1, 1);
    let out = ferry.run(&[
        "cp",
        "--part-size",
        "1M",
        f.to_str().unwrap(),
        &server().url("k"),
    ]);
    assert_one_clear_line(&out, 2, &["--part-size", "5M"]);
    let cfg = ferry.home.path().join("bad.toml");
    std::fs::write(&cfg, "[profiles.x]\nendpont = \"http://x\"\n").unwrap();
    let out = ferry.run(&["--config", cfg.to_str().unwrap(), "ls", &server().url("")]);
    assert_one_clear_line(&out, 2, &["bad.toml:2:1", "endpont"]);
}
