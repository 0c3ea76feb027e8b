//! Versioned buckets, which Garage does not keep: moto's S3 plays the
//! store, the AWS CLI is the independent client that names the versions
//! and reads them back.

use std::path::Path;

use crate::credentials::Moto;
use crate::harness::{sha256_file, stderr, write_file};
use crate::moto_s3::{aws_at, ferry_at};
use crate::proxy::Proxy;

fn versioned_bucket(moto: &Moto, bucket: &str) {
    aws_at(moto, &["s3api", "create-bucket", "--bucket", bucket]);
    aws_at(
        moto,
        &[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            "Status=Enabled",
        ],
    );
}

/// `aws s3api list-object-versions` under `prefix`.
fn aws_versions(moto: &Moto, bucket: &str, prefix: &str) -> serde_json::Value {
    aws_at(
        moto,
        &[
            "s3api",
            "list-object-versions",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
        ],
    )
}

/// (key, version id, is latest, is a delete marker), as the AWS CLI lists
/// them, newest first within a key.
fn listed(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, String, bool, bool)> {
    let v = aws_versions(moto, bucket, prefix);
    let mut out = Vec::new();
    for (field, marker) in [("Versions", false), ("DeleteMarkers", true)] {
        for e in v[field].as_array().into_iter().flatten() {
            out.push((
                e["Key"].as_str().unwrap().to_string(),
                e["VersionId"].as_str().unwrap().to_string(),
                e["IsLatest"].as_bool().unwrap(),
                marker,
            ));
        }
    }
    out
}

/// The SHA-256 of what the AWS CLI reads: the current object, or a version.
fn aws_sha(moto: &Moto, bucket: &str, key: &str, version: Option<&str>, dir: &Path) -> String {
    let out = dir.join("aws-read");
    let mut args = vec!["s3api", "get-object", "--bucket", bucket, "--key", key];
    if let Some(v) = version {
        args.extend(["--version-id", v]);
    }
    args.push(out.to_str().unwrap());
    aws_at(moto, &args);
    sha256_file(&out)
}

/// The (version id, size) of each version of `key` that is not a delete
/// marker. Moto's LastModified has whole seconds, so two versions written
/// in one second cannot be told apart by time: callers tell them by size.
fn data_versions(moto: &Moto, bucket: &str, key: &str) -> Vec<(String, u64)> {
    let v = aws_versions(moto, bucket, key);
    v["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["Key"] == key)
        .map(|e| {
            (
                e["VersionId"].as_str().unwrap().to_string(),
                e["Size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// ls, stat, cp and cat of one version; a delete marker named in words;
/// a version restored in place; a delete marker removed to undelete.
#[test]
fn versions_are_listed_read_restored_and_undeleted() {
    let moto = Moto::start();
    let bucket = "ferry-versions";
    versioned_bucket(&moto, bucket);
    let proxy = Proxy::start(&moto.url, 0);
    let mut ferry = ferry_at(&moto);
    ferry.endpoint = proxy.endpoint.clone();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/doc.bin");
    let mp = ["--bigfile-threshold", "5M", "--part-size", "5M"];
    // Two versions in parts (so reads of one are ranged), then a delete.
    let v1 = write_file(&dir.path().join("v1"), 12 << 20, 1);
    let v2 = write_file(&dir.path().join("v2"), 11 << 20, 2);
    for f in [&v1, &v2] {
        let mut args = vec!["cp"];
        args.extend(mp);
        args.extend([f.to_str().unwrap(), &url]);
        ferry.ok(&args);
    }
    ferry.ok(&["rm", &url]);
    let ids = data_versions(&moto, bucket, "doc.bin");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let id_of = |size: u64| {
        ids.iter()
            .find(|v| v.1 == size)
            .unwrap_or_else(|| panic!("no version of {size} bytes: {ids:?}"))
            .0
            .clone()
    };
    let (id1, id2) = (id_of(12 << 20), id_of(11 << 20));
    let marker = listed(&moto, bucket, "doc.bin")
        .into_iter()
        .find(|v| v.3)
        .expect("rm left a delete marker")
        .1;

    // ls --versions shows what the AWS CLI shows, the marker latest.
    let out = ferry.ok(&["ls", "--versions", "--json", &format!("s3://{bucket}/")]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours: Vec<(String, bool, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["version_id"].as_str().unwrap().to_string(),
                r["is_latest"].as_bool().unwrap(),
                r["delete_marker"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours[0], (marker.clone(), true, true), "{out}");
    let mut rest: Vec<&String> = ours[1..].iter().map(|r| &r.0).collect();
    rest.sort();
    let mut want = vec![&id1, &id2];
    want.sort();
    assert_eq!(rest, want, "{out}");
    assert_eq!(
        rows[1]["size"],
        11 << 20,
        "newest data version second: {out}"
    );

    // stat of one version.
    let out = ferry.ok(&["stat", "--json", "--version-id", &id1, &url]);
    let stat: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stat["size"], 12 << 20);
    assert_eq!(stat["version_id"].as_str(), Some(id1.as_str()));

    // cp of the older version: every GET names it.
    proxy.reset(0);
    let got = dir.path().join("got-v1");
    let mut args = vec!["cp", "--version-id", &id1];
    args.extend(mp);
    args.extend([url.as_str(), got.to_str().unwrap()]);
    ferry.ok(&args);
    assert_eq!(sha256_file(&got), sha256_file(&v1));
    let gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET")
        .map(|q| q.target)
        .collect();
    assert!(gets.len() >= 3, "a ranged download: {gets:?}");
    for g in &gets {
        assert!(g.contains(&format!("versionId={id1}")), "{g}");
    }
    // cat of the newer one.
    let out = ferry
        .command(&["cat", "--version-id", &id2, &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, std::fs::read(&v2).unwrap());

    // The marker has no data: said so, exit 1, no file made.
    let none = dir.path().join("from-marker");
    let out = ferry.run(&["cp", "--version-id", &marker, &url, none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("delete marker"), "{}", stderr(&out));
    assert!(!none.exists());
    let out = ferry.run(&["stat", "--version-id", "no-such-version", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no version no-such-version"),
        "{}",
        stderr(&out)
    );

    // Removing the marker undeletes: the AWS CLI reads v2 as current.
    let out = ferry.run(&["rm", "--version-id", &marker, &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("current again"), "{}", stderr(&out));
    assert_eq!(
        aws_sha(&moto, bucket, "doc.bin", None, dir.path()),
        sha256_file(&v2)
    );
    // A second removal of the same marker is a typo caught, not "deleted".
    let out = ferry.run(&["rm", "--version-id", &marker, &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no version"), "{}", stderr(&out));

    // Restoring v1 in place: a server-side copy, v1 current, v2 kept.
    proxy.reset(0);
    ferry.ok(&["cp", "--version-id", &id1, &url, &url]);
    let copies: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|q| q.method == "PUT")
        .collect();
    assert_eq!(copies.len(), 1, "one CopyObject");
    assert_eq!(copies[0].body_len, 0, "no byte through ferry");
    assert_eq!(
        aws_sha(&moto, bucket, "doc.bin", None, dir.path()),
        sha256_file(&v1)
    );
    assert_eq!(
        aws_sha(&moto, bucket, "doc.bin", Some(&id2), dir.path()),
        sha256_file(&v2)
    );
    assert_eq!(data_versions(&moto, bucket, "doc.bin").len(), 3);
}

/// `rm --versions` takes exactly the key's versions, never a neighbour's
/// that the listing by prefix also shows; `-r --versions` takes every
/// version under a prefix across listing pages; `--dry-run` takes none.
#[test]
fn rm_versions_deletes_exactly_what_it_names() {
    let moto = Moto::start();
    let bucket = "ferry-rm-versions";
    versioned_bucket(&moto, bucket);
    let ferry = ferry_at(&moto);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir.path().join("f"), 100, 1);
    let f = f.to_str().unwrap();
    for key in ["a.txt", "a.txt", "a.txt.bak", "a.txt.bak"] {
        ferry.ok(&["cp", f, &format!("s3://{bucket}/{key}")]);
    }
    let url = format!("s3://{bucket}/a.txt");
    let out = ferry.ok(&["rm", "--versions", "--dry-run", &url]);
    assert_eq!(out.matches("would delete").count(), 2, "{out}");
    assert_eq!(
        listed(&moto, bucket, "").len(),
        4,
        "a dry run deletes nothing"
    );
    ferry.ok(&["rm", "--versions", &url]);
    let left = listed(&moto, bucket, "");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|v| v.0 == "a.txt.bak"), "{left:?}");
    let out = ferry.run(&["rm", "--versions", &url]);
    assert_eq!(out.status.code(), Some(1), "nothing left to delete is said");
    assert!(stderr(&out).contains("has no versions"), "{}", stderr(&out));

    // 1,100 versions (two listing pages, two batch deletes) under tree/.
    let tree = dir.path().join("tree");
    for i in 0..550 {
        write_file(&tree.join(format!("f{i:04}")), 10, i);
    }
    let t = tree.to_str().unwrap();
    let turl = format!("s3://{bucket}/tree/");
    ferry.ok(&["cp", "-r", t, &turl]);
    for i in 0..550 {
        write_file(&tree.join(format!("f{i:04}")), 11, i + 1000);
    }
    ferry.ok(&["cp", "-r", t, &turl]);
    assert_eq!(listed(&moto, bucket, "tree/").len(), 1100);
    let out = ferry.run(&["rm", "-r", "--versions", &turl]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("deleted 1100 versions"),
        "{}",
        stderr(&out)
    );
    assert!(listed(&moto, bucket, "tree/").is_empty());
    assert_eq!(listed(&moto, bucket, "").len(), 2, "a.txt.bak untouched");
}

/// A store that keeps no versions says so at once, without retries.
#[test]
fn a_store_without_versions_says_so_once() {
    let proxy = Proxy::start(&crate::harness::server().endpoint, 0);
    let ferry = crate::harness::Ferry::at(&proxy.endpoint);
    let out = ferry.run(&["ls", "--versions", &crate::harness::server().url("")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ListObjectVersions"),
        "{}",
        stderr(&out)
    );
    assert_eq!(proxy.requests().len(), 1, "not retried");
}
