//! Object options where a server keeps them all: moto's S3 (with its KMS)
//! stores server-side encryption with a KMS key, storage classes, tags and
//! ACLs, which Garage accepts and drops. Uploads in one PUT and in parts
//! are read back with the AWS CLI, and downloaded again by ferry.

use std::process::Command;

use crate::credentials::Moto;
use crate::harness::{sha256_file, stderr, write_file, Ferry};

const BUCKET: &str = "ferry-moto";

pub(crate) fn aws_at(moto: &Moto, args: &[&str]) -> serde_json::Value {
    let out = Command::new("aws")
        .args(args)
        .args(["--endpoint-url", &moto.url, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the AWS CLI");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

pub(crate) fn ferry_at(moto: &Moto) -> Ferry {
    let mut f = Ferry::at(&moto.url);
    f.extra_env.extend([
        ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]);
    f
}

#[test]
fn kms_encryption_storage_class_tags_and_acls_are_kept_single_and_multipart() {
    let moto = Moto::start();
    aws_at(&moto, &["s3api", "create-bucket", "--bucket", BUCKET]);
    let key_id = aws_at(&moto, &["kms", "create-key", "--description", "ferry"])["KeyMetadata"]
        ["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let ferry = ferry_at(&moto);
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("page.html", 2000usize), ("big.bin", 11 << 20)] {
        let src = write_file(&dir.path().join(name), len, 61);
        let url = format!("s3://{BUCKET}/{name}");
        let out = ferry.run(&[
            "cp",
            "--bigfile-threshold",
            "5M",
            "--part-size",
            "5M",
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            &key_id,
            "--storage-class",
            "STANDARD_IA",
            "--tag",
            "team=web",
            "--tag",
            "tier=warm",
            "--acl",
            "public-read",
            "--metadata",
            "owner=ops",
            src.to_str().unwrap(),
            &url,
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let head = aws_at(
            &moto,
            &["s3api", "head-object", "--bucket", BUCKET, "--key", name],
        );
        assert_eq!(head["ServerSideEncryption"], "aws:kms", "{name}: {head}");
        assert!(
            head["SSEKMSKeyId"]
                .as_str()
                .is_some_and(|k| k.contains(&key_id)),
            "{name}: {head}"
        );
        assert_eq!(head["StorageClass"], "STANDARD_IA", "{name}: {head}");
        assert_eq!(head["Metadata"]["owner"], "ops", "{name}: {head}");
        if name.ends_with(".html") {
            assert_eq!(head["ContentType"], "text/html", "{name}: {head}");
        }
        let tags = aws_at(
            &moto,
            &[
                "s3api",
                "get-object-tagging",
                "--bucket",
                BUCKET,
                "--key",
                name,
            ],
        );
        let mut set: Vec<(String, String)> = tags["TagSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["Key"].as_str().unwrap().into(),
                    t["Value"].as_str().unwrap().into(),
                )
            })
            .collect();
        set.sort();
        assert_eq!(
            set,
            [
                ("team".into(), "web".into()),
                ("tier".into(), "warm".into())
            ],
            "{name}"
        );
        let acl = aws_at(
            &moto,
            &["s3api", "get-object-acl", "--bucket", BUCKET, "--key", name],
        );
        let public = acl["Grants"].as_array().unwrap().iter().any(|g| {
            g["Grantee"]["URI"]
                .as_str()
                .is_some_and(|u| u.ends_with("/global/AllUsers"))
                && g["Permission"] == "READ"
        });
        assert!(public, "{name}: {acl}");
        // And back, checked by ferry however the server computes its ETag.
        let back = dir.path().join(format!("back-{name}"));
        let out = ferry.run(&["cp", &url, back.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(sha256_file(&back), sha256_file(&src), "{name}");
    }
    // AES256 (SSE-S3), and a server-side copy keeps it and the class.
    let src = write_file(&dir.path().join("plain.txt"), 500, 62);
    ferry.ok(&[
        "cp",
        "--sse",
        "AES256",
        "--storage-class",
        "ONEZONE_IA",
        src.to_str().unwrap(),
        &format!("s3://{BUCKET}/plain.txt"),
    ]);
    ferry.ok(&[
        "cp",
        &format!("s3://{BUCKET}/plain.txt"),
        &format!("s3://{BUCKET}/copy.txt"),
    ]);
    for key in ["plain.txt", "copy.txt"] {
        let head = aws_at(
            &moto,
            &["s3api", "head-object", "--bucket", BUCKET, "--key", key],
        );
        assert_eq!(head["ServerSideEncryption"], "AES256", "{key}: {head}");
        assert_eq!(head["StorageClass"], "ONEZONE_IA", "{key}: {head}");
    }
}
