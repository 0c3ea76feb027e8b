//! End-to-end checksums against the real server: what ferry sends is
//! stored and read back by an independent client; a body broken on the
//! wire is refused and sent again; a broken download leaves nothing; and
//! objects written by other tools are verified as strongly as they allow.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry::checksum::{Crc, CrcKind};

use crate::harness::{
    aws, aws_head, aws_head_with, server, sha256_file, stderr, unique, write_file, Ferry,
};
use crate::listing_proxy::ListingProxy;

pub fn nvme_base64(data: &[u8]) -> String {
    let mut c = Crc::new(CrcKind::Crc64Nvme);
    c.update(data);
    c.checksum().unwrap().to_base64()
}

/// Uploads `src` to `key` with `extra` flags, in 5 MiB parts from 5 MiB on,
/// so small test files exercise multipart.
pub fn upload_in_parts(ferry: &Ferry, extra: &[&str], src: &std::path::Path, key: &str) {
    let mut args = vec!["cp", "--bigfile-threshold", "5M", "--part-size", "5M"];
    args.extend_from_slice(extra);
    let url = server().url(key);
    args.extend([src.to_str().unwrap(), url.as_str()]);
    ferry.ok(&args);
}

/// What the debug log says the download was verified by.
fn verified_by(out: &std::process::Output) -> String {
    let err = stderr(out);
    err.lines()
        .find_map(|l| {
            l.split_once("verified by ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no verification in the log:\n{err}"))
}

fn download(ferry: &Ferry, url: &str, dest: &std::path::Path) -> std::process::Output {
    let out = ferry.run(&["--debug", "cp", url, dest.to_str().unwrap()]);
    assert!(out.status.success(), "download: {}", stderr(&out));
    out
}

#[test]
fn uploads_carry_crc64nvme_that_the_aws_cli_reads_back_and_downloads_verify() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("checksums");
    for (name, len) in [
        ("empty", 0usize),
        ("one", 1),
        ("single", 3 << 20),
        ("multi", 13 << 20),
    ] {
        let src = write_file(&dir.path().join(name), len, len as u64 + 7);
        let key = format!("{prefix}/{name}");
        upload_in_parts(&ferry, &[], &src, &key);
        let head = aws_head(&key);
        let data = std::fs::read(&src).unwrap();
        assert_eq!(
            head["ChecksumCRC64NVME"].as_str(),
            Some(nvme_base64(&data).as_str()),
            "{name}: {head}"
        );
        assert_eq!(head["ChecksumType"].as_str(), Some("FULL_OBJECT"), "{name}");
        let back = dir.path().join(format!("{name}.back"));
        let out = download(&ferry, &server().url(&key), &back);
        assert_eq!(verified_by(&out), "CRC64NVME of the whole object", "{name}");
        assert_eq!(sha256_file(&back), sha256_file(&src), "{name}");
        let stat = ferry.ok(&["stat", &server().url(&key)]);
        assert!(
            stat.contains("download check: CRC64NVME of the whole object"),
            "{stat}"
        );
    }
}

/// Set once the proxy has broken one part's body.
static BROKE_A_PART: AtomicBool = AtomicBool::new(false);

#[allow(clippy::ptr_arg)]
fn break_part_two_once(method: &str, target: &str, body: &mut Vec<u8>) {
    if method == "PUT"
        && target.contains("partNumber=2")
        && !body.is_empty()
        && !BROKE_A_PART.swap(true, Ordering::SeqCst)
    {
        let mid = body.len() / 2;
        body[mid] ^= 0x01;
    }
}

#[test]
fn a_part_broken_on_the_wire_is_refused_by_its_checksum_and_sent_again() {
    let proxy = ListingProxy::start_full(
        &server().endpoint,
        |b| b.to_string(),
        |_, _, _, _| {},
        break_part_two_once,
    );
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("big"), 12 << 20, 99);
    let key = unique("checksums-wire");
    let out = ferry.run(&[
        "--debug",
        "cp",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        src.to_str().unwrap(),
        &server().url(&key),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        BROKE_A_PART.load(Ordering::SeqCst),
        "the proxy broke nothing"
    );
    // Refused once for its checksum, then sent again: two PUTs of part 2.
    assert_eq!(proxy.count("PUT", "partNumber=2"), 2);
    assert!(stderr(&out).contains("Digest"), "{}", stderr(&out));
    let head = aws_head(&key);
    assert_eq!(
        head["ChecksumCRC64NVME"].as_str(),
        Some(nvme_base64(&std::fs::read(&src).unwrap()).as_str())
    );
    assert_eq!(crate::harness::aws_sha256(&key), sha256_file(&src));
}

#[allow(clippy::ptr_arg)]
fn break_get_bodies(method: &str, _t: &str, _h: &mut Vec<(String, String)>, body: &mut Vec<u8>) {
    if method == "GET" && body.len() > 1000 && !body.starts_with(b"<?xml") {
        let i = body.len() / 3;
        body[i] ^= 0x80;
    }
}

#[test]
fn a_download_broken_on_the_wire_is_caught_and_leaves_nothing() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let key = unique("checksums-get");
    for (name, len) in [("small", 200_000usize), ("ranged", 11 << 20)] {
        let src = write_file(&dir.path().join(name), len, 5);
        let k = format!("{key}/{name}");
        upload_in_parts(&ferry, &[], &src, &k);
        let proxy =
            ListingProxy::start_with(&server().endpoint, |b| b.to_string(), break_get_bodies);
        let out_dir = dir.path().join(format!("out-{name}"));
        std::fs::create_dir(&out_dir).unwrap();
        let dest = out_dir.join("file");
        let out = Ferry::at(&proxy.endpoint).run(&[
            "cp",
            "--bigfile-threshold",
            "5M",
            "--part-size",
            "5M",
            &server().url(&k),
            dest.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("CRC64NVME") && err.contains("the store says"),
            "{name}: {err}"
        );
        // Neither the file nor a temporary is left.
        let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

fn rclone(args: &[&str]) -> std::process::Output {
    let s = server();
    Command::new("rclone")
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_G_TYPE", "s3")
        .env("RCLONE_CONFIG_G_PROVIDER", "Other")
        .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", &s.access_key)
        .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", &s.secret_key)
        .env("RCLONE_CONFIG_G_ENDPOINT", &s.endpoint)
        .env("RCLONE_CONFIG_G_REGION", &s.region)
        .env("RCLONE_CONFIG_G_FORCE_PATH_STYLE", "true")
        .output()
        .expect("rclone (scripts/test.sh installs it)")
}

#[test]
fn objects_other_tools_wrote_are_verified_as_strongly_as_they_allow() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("checksums-peers");
    let src = write_file(&dir.path().join("src"), 20 << 20, 3);

    // The AWS CLI: multipart with its default CRC32, composite.
    let key = format!("{prefix}/aws");
    let out = aws(&["s3", "cp", src.to_str().unwrap(), &server().url(&key)]);
    assert!(out.status.success(), "aws s3 cp: {}", stderr(&out));
    let head = aws_head(&key);
    let parts: u32 = head["ETag"]
        .as_str()
        .and_then(|e| e.trim_matches('"').rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok())
        .expect("a multipart ETag");
    let back = dir.path().join("aws.back");
    let out = download(&ferry, &server().url(&key), &back);
    assert_eq!(verified_by(&out), format!("CRC32 of each of {parts} parts"));
    assert_eq!(sha256_file(&back), sha256_file(&src));

    // rclone (this version sends no checksum): multipart has only its size,
    // a single part its MD5 ETag.
    let key = format!("{prefix}/rclone");
    let out = rclone(&[
        "copyto",
        "--s3-upload-cutoff",
        "5M",
        "--s3-chunk-size",
        "5M",
        src.to_str().unwrap(),
        &format!("g:{}/{key}", server().bucket),
    ]);
    assert!(out.status.success(), "rclone: {}", stderr(&out));
    assert!(aws_head(&key)["ChecksumCRC32"].is_null());
    let back = dir.path().join("rclone.back");
    let out = download(&ferry, &server().url(&key), &back);
    assert_eq!(verified_by(&out), "size only");
    assert_eq!(sha256_file(&back), sha256_file(&src));

    let small = write_file(&dir.path().join("small"), 100_000, 4);
    let key = format!("{prefix}/rclone-small");
    let out = rclone(&[
        "copyto",
        small.to_str().unwrap(),
        &format!("g:{}/{key}", server().bucket),
    ]);
    assert!(out.status.success(), "rclone: {}", stderr(&out));
    let back = dir.path().join("rclone-small.back");
    let out = download(&ferry, &server().url(&key), &back);
    assert_eq!(verified_by(&out), "MD5 (the ETag)");
}

#[test]
fn sse_c_objects_round_trip_verified_by_their_checksum() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sse-c.key");
    std::fs::write(&key_file, crate::harness::pattern(32, 77)).unwrap();
    let key_arg = key_file.to_str().unwrap();
    let prefix = unique("checksums-ssec");
    for (name, len) in [("single", 1usize << 20), ("multi", 12 << 20)] {
        let src = write_file(&dir.path().join(name), len, 31);
        let key = format!("{prefix}/{name}");
        upload_in_parts(&ferry, &["--sse-c-key-file", key_arg], &src, &key);
        // The AWS CLI reads the checksum back with the same key.
        let customer_key = format!("fileb://{key_arg}");
        let head = aws_head_with(
            &key,
            &[
                "--sse-customer-algorithm",
                "AES256",
                "--sse-customer-key",
                &customer_key,
            ],
        );
        let data = std::fs::read(&src).unwrap();
        assert_eq!(
            head["ChecksumCRC64NVME"].as_str(),
            Some(nvme_base64(&data).as_str()),
            "{name}: {head}"
        );
        assert_eq!(head["SSECustomerAlgorithm"].as_str(), Some("AES256"));
        // The ETag is not the data's MD5 under SSE-C; the checksum is what
        // the download is verified by.
        let back = dir.path().join(format!("{name}.back"));
        let out = ferry.run(&[
            "--sse-c-key-file",
            key_arg,
            "--debug",
            "cp",
            "--bigfile-threshold",
            "5M",
            &server().url(&key),
            back.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(verified_by(&out), "CRC64NVME of the whole object", "{name}");
        assert_eq!(sha256_file(&back), sha256_file(&src), "{name}");
        // Without the key: one line, exit 1, nothing written.
        let nokey = dir.path().join(format!("{name}.nokey"));
        let out = ferry.run(&["cp", &server().url(&key), nokey.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(!nokey.exists());
        assert!(!stderr(&out).contains(&nvme_base64(&data)));
    }
    // A key file that holds no key is a usage error naming the file.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, b"short").unwrap();
    let out = ferry.run(&[
        "--sse-c-key-file",
        bad.to_str().unwrap(),
        "ls",
        &server().url(""),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.key"), "{}", stderr(&out));
}
