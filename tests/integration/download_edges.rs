//! Downloads stay inside their destination and their own files: links
//! planted in the destination (on the way to a key, or at the key itself)
//! are never written or deleted through, with or without `--delete` and
//! `--follow-symlinks`; destinations whose names are not UTF-8 resume with
//! a checkpoint directory. What reaches the disk is read back directly and
//! what is on the server is checked with the AWS CLI.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::harness::{aws_sha256, files, sha256_file, stderr, unique, write_file, Ferry};

/// Uploads `rels` (each `len` bytes) under a fresh prefix, returns it.
fn seeded(ferry: &Ferry, name: &str, rels: &[(&str, usize)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (i, (r, len)) in rels.iter().enumerate() {
        write_file(&dir.path().join(r), *len, i as u64);
    }
    let prefix = unique(name);
    ferry.ok(&[
        "cp",
        "-r",
        dir.path().to_str().unwrap(),
        &crate::harness::server().url(&format!("{prefix}/")),
    ]);
    prefix
}

/// A destination with `d -> outside/` and `f -> outside/secret` planted.
struct Planted {
    _top: tempfile::TempDir,
    dst: PathBuf,
    outside: PathBuf,
}

fn planted() -> Planted {
    let top = tempfile::tempdir().unwrap();
    let dst = top.path().join("dst");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"keep me").unwrap();
    std::fs::write(outside.join("extra"), b"not ferry's").unwrap();
    symlink(&outside, dst.join("d")).unwrap();
    symlink(outside.join("secret"), dst.join("f")).unwrap();
    Planted {
        _top: top,
        dst,
        outside,
    }
}

fn outside_untouched(p: &Planted) {
    let mut names: Vec<String> = std::fs::read_dir(&p.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["extra", "secret"],
        "files appeared or vanished outside"
    );
    assert_eq!(std::fs::read(p.outside.join("secret")).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read(p.outside.join("extra")).unwrap(),
        b"not ferry's"
    );
}

#[test]
fn a_link_in_the_destination_is_never_written_through() {
    let ferry = Ferry::new();
    // d/passwd is small (one GET), d/big is ranged; f is the final name.
    let prefix = seeded(
        &ferry,
        "links",
        &[
            ("d/passwd", 100),
            ("d/big", 11 << 20),
            ("f", 100),
            ("ok/x", 100),
        ],
    );
    let url = crate::harness::server().url(&format!("{prefix}/"));
    for extra in [&[][..], &["--follow-symlinks"][..], &["-u"][..]] {
        let p = planted();
        let mut args = vec!["cp", "-r", "--bigfile-threshold", "6M", "--part-size", "5M"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&url, p.dst.to_str().unwrap()]);
        let out = ferry.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains("symbolic link"), "{extra:?}: {err}");
        assert!(err.contains("d/passwd") && err.contains("d/big"), "{err}");
        outside_untouched(&p);
        // The others arrived; the link at the final name was replaced by
        // the file, its target left alone.
        assert_eq!(
            sha256_file(&p.dst.join("ok/x")),
            aws_sha256(&format!("{prefix}/ok/x"))
        );
        let f = std::fs::symlink_metadata(p.dst.join("f")).unwrap();
        assert!(f.is_file(), "{extra:?}: f is still a link");
        assert_eq!(
            sha256_file(&p.dst.join("f")),
            aws_sha256(&format!("{prefix}/f"))
        );
        // No temporary left behind anywhere.
        assert!(
            files(&p.dst)
                .iter()
                .all(|f| !f.to_string_lossy().contains(".ferry-")),
            "{:?}",
            files(&p.dst)
        );
    }
}

#[test]
fn delete_never_walks_through_a_link_out_of_the_root() {
    let ferry = Ferry::new();
    let prefix = seeded(&ferry, "link-delete", &[("ok/x", 100)]);
    let url = crate::harness::server().url(&format!("{prefix}/"));
    for extra in [&[][..], &["--follow-symlinks"][..]] {
        let p = planted();
        std::fs::write(p.dst.join("stale"), b"old").unwrap();
        let mut args = vec!["cp", "-r", "-u", "--delete", "--max-delete", "100%"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&url, p.dst.to_str().unwrap()]);
        let out = ferry.run(&args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        outside_untouched(&p);
        // The real extra inside the root went; the links themselves are
        // not regular files of the tree and stay.
        assert!(!p.dst.join("stale").exists(), "{extra:?}");
        assert!(std::fs::symlink_metadata(p.dst.join("d")).is_ok());
        assert!(p.dst.join("ok/x").is_file());
    }
}

fn non_utf8(parent: &Path, stem: &[u8]) -> PathBuf {
    let mut name = stem.to_vec();
    name.extend_from_slice(b"-\xff\xfe");
    parent.join(std::ffi::OsStr::from_bytes(&name))
}

#[test]
fn paths_that_are_not_utf8_work_with_a_checkpoint_dir() {
    let ferry = Ferry::new();
    let top = tempfile::tempdir().unwrap();
    let cps = top.path().join("cps");
    let src_dir = non_utf8(top.path(), b"src");
    let src = write_file(&src_dir.join("big"), 11 << 20, 9);
    let key = format!("{}/big", unique("non-utf8"));
    let url = crate::harness::server().url(&key);
    let cp = ["--checkpoint-dir", cps.to_str().unwrap()];
    let small = ["--bigfile-threshold", "6M", "--part-size", "5M"];
    let mut up: Vec<&str> = vec!["cp"];
    up.extend_from_slice(&cp);
    up.extend_from_slice(&small);
    let src_arg = src.as_os_str();
    let out = ferry.command(&up).arg(src_arg).arg(&url).output().unwrap();
    assert!(out.status.success(), "upload: {}", stderr(&out));
    assert_eq!(aws_sha256(&key), sha256_file(&src));
    let dst = non_utf8(top.path(), b"dst");
    std::fs::create_dir_all(&dst).unwrap();
    let mut down: Vec<&str> = vec!["cp"];
    down.extend_from_slice(&cp);
    down.extend_from_slice(&small);
    let out = ferry
        .command(&down)
        .arg(&url)
        .arg(dst.join("big"))
        .output()
        .unwrap();
    assert!(out.status.success(), "download: {}", stderr(&out));
    assert_eq!(sha256_file(&dst.join("big")), sha256_file(&src));
    assert_eq!(
        std::fs::read_dir(&cps).unwrap().count(),
        0,
        "checkpoints left"
    );
}

/// A ferry download left running slowly in the background.
fn slow_download(ferry: &Ferry, url: &str, dest: &Path, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "--bwlimit",
        "1M",
        "cp",
        "--bigfile-threshold",
        "6M",
        "--part-size",
        "5M",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    ferry
        .command(&args)
        .arg(dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn temps_in(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".ferry-"))
        .collect()
}

#[test]
fn a_killed_downloads_temporary_is_listed_and_cleaned_but_a_live_or_resumable_one_is_kept() {
    let ferry = Ferry::new();
    let prefix = seeded(&ferry, "leftover", &[("big", 11 << 20)]);
    let url = crate::harness::server().url(&format!("{prefix}/big"));
    let top = tempfile::tempdir().unwrap();
    let (plain, resumable, cps) = (
        top.path().join("plain"),
        top.path().join("resumable"),
        top.path().join("cps"),
    );
    for d in [&plain, &resumable] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut killed = slow_download(&ferry, &url, &plain.join("big"), &[]);
    let mut resumed = slow_download(
        &ferry,
        &url,
        &resumable.join("big"),
        &["--checkpoint-dir", cps.to_str().unwrap()],
    );
    crate::harness::wait_for(30, "both temporaries", || {
        temps_in(&plain).len() == 1 && temps_in(&resumable).len() == 1
    });
    // While they run, both are in use: listed as such, never removed.
    let root = top.path().to_str().unwrap();
    let listed = ferry.ok(&["checkpoint", "ls", root]);
    assert_eq!(
        listed.matches("in use by a running download").count(),
        2,
        "{listed}"
    );
    ferry.ok(&["checkpoint", "clean", "--all", root]);
    assert_eq!(temps_in(top.path()).len(), 2);
    killed.kill().unwrap();
    killed.wait().unwrap();
    resumed.kill().unwrap();
    resumed.wait().unwrap();
    let listed = ferry.ok(&[
        "checkpoint",
        "ls",
        "--checkpoint-dir",
        cps.to_str().unwrap(),
        root,
    ]);
    assert_eq!(listed.matches("temp     ").count(), 2, "{listed}");
    assert!(
        listed.contains("a resumable checkpoint needs it"),
        "{listed}"
    );
    // The next tree download into that directory names the orphan.
    let tree_url = crate::harness::server().url(&format!("{prefix}/"));
    let out = ferry.run(&["cp", "-r", "-u", &tree_url, plain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 temporary file(s) (11.0 MiB) left by interrupted downloads"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(plain.join("big")).unwrap();
    // clean removes the orphan and keeps what the checkpoint vouches for.
    let out = ferry.run(&[
        "checkpoint",
        "clean",
        "--checkpoint-dir",
        cps.to_str().unwrap(),
        root,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(temps_in(&plain).is_empty(), "{:?}", temps_in(&plain));
    assert_eq!(temps_in(&resumable).len(), 1);
    // ... which then resumes.
    let out = ferry
        .command(&[
            "cp",
            "--bigfile-threshold",
            "6M",
            "--part-size",
            "5M",
            "--checkpoint-dir",
            cps.to_str().unwrap(),
            &url,
        ])
        .arg(resumable.join("big"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sha256_file(&resumable.join("big")),
        aws_sha256(&format!("{prefix}/big"))
    );
    assert!(temps_in(top.path()).is_empty());
}

/// What SSE-KMS does to ETags, played in front of Garage: every ETag a
/// response carries (header or CompleteMultipartUpload/CopyObject XML) is
/// replaced by hex of the right length that is no MD5, and the response
/// says `x-amz-server-side-encryption: aws:kms`, as AWS documents. A
/// part's ETag keeps its value (the proxy cannot map it back in the
/// CompleteMultipartUpload that quotes it) but is marked encrypted too.
fn kms(_method: &str, target: &str, headers: &mut Vec<(String, String)>, body: &mut Vec<u8>) {
    if target.contains("partNumber=") {
        headers.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
        return;
    }
    let opaque = |etag: &str| {
        let digest = crate::harness::sha256(format!("kms:{etag}").as_bytes());
        let suffix = etag
            .trim_matches('"')
            .split_once('-')
            .map(|(_, n)| format!("-{n}"))
            .unwrap_or_default();
        format!("\"{}{suffix}\"", &digest[..32])
    };
    let mut touched = false;
    for (k, v) in headers.iter_mut() {
        if k.eq_ignore_ascii_case("etag") {
            *v = opaque(v);
            touched = true;
        }
    }
    let text = String::from_utf8_lossy(body).into_owned();
    if let (Some(a), Some(b)) = (text.find("<ETag>"), text.find("</ETag>")) {
        if !text.contains("ListPartsResult") && !text.contains("ListBucketResult") {
            let etag = text[a + 6..b].replace("&quot;", "\"");
            let new = format!(
                "{}<ETag>{}</ETag>{}",
                &text[..a],
                opaque(&etag),
                &text[b + 7..]
            );
            *body = new.into_bytes();
            touched = true;
        }
    }
    if touched {
        headers.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
    }
}

#[test]
fn etags_that_are_not_md5s_fail_nothing_and_delete_nothing() {
    let proxy = crate::listing_proxy::ListingProxy::start_with(
        &crate::harness::server().endpoint,
        |s| s.to_string(),
        kms,
    );
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(&dir.path().join("small"), 1000, 1);
    let big = write_file(&dir.path().join("big"), 11 << 20, 2);
    let prefix = unique("kms");
    for f in [&small, &big] {
        let key = format!("{prefix}/{}", f.file_name().unwrap().to_string_lossy());
        let url = crate::harness::server().url(&key);
        let out = ferry.run(&[
            "cp",
            "--bigfile-threshold",
            "6M",
            "--part-size",
            "5M",
            f.to_str().unwrap(),
            &url,
        ]);
        assert!(out.status.success(), "upload {key}: {}", stderr(&out));
        // Kept on the server, whole.
        assert_eq!(aws_sha256(&key), sha256_file(f));
    }
    // A single-GET download checks no MD5 against an opaque ETag.
    let back = dir.path().join("small.back");
    let url = crate::harness::server().url(&format!("{prefix}/small"));
    let out = ferry.command(&["cp", &url]).arg(&back).output().unwrap();
    assert!(out.status.success(), "download: {}", stderr(&out));
    assert_eq!(sha256_file(&back), sha256_file(&small));
}
