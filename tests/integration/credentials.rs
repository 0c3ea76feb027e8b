//! Credentials from where deployed machines keep them, through the AWS
//! SDK's providers, seen at the wire: the key id and session token each
//! request to the server is signed with. moto plays STS (web identity) and
//! the EC2 instance metadata service (IMDSv2); a small server of the test's
//! own plays the container credentials endpoint (ECS / EKS Pod Identity),
//! which moto does not, and counts how often it is asked.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{server, stderr, unique, Ferry};
use crate::listing_proxy::ListingProxy;

/// moto's server on a free port of 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (scripts/test.sh installs moto[server])");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ferry with no keys of its own, pointed at a proxy in front of Garage.
fn keyless(proxy: &ListingProxy) -> Ferry {
    Ferry::at(&proxy.endpoint)
}

fn without_keys(c: &mut Command) -> &mut Command {
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        // No instance metadata unless a test gives one.
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// The access key ids and whether a session token came along, per request.
fn signed_with(proxy: &ListingProxy) -> Vec<(String, bool)> {
    proxy
        .headers_of("GET", "")
        .into_iter()
        .chain(proxy.headers_of("PUT", ""))
        .chain(proxy.headers_of("HEAD", ""))
        .map(|h| {
            let auth = h
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let key = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or_default()
                .to_string();
            (key, h.iter().any(|(k, _)| k == "x-amz-security-token"))
        })
        .collect()
}

#[test]
fn web_identity_credentials_come_from_sts() {
    let moto = Moto::start();
    let proxy = ListingProxy::start(&server().endpoint, |b| b.to_string());
    let ferry = keyless(&proxy);
    let token = ferry.home.path().join("token");
    std::fs::write(&token, "a-kubernetes-service-account-token").unwrap();
    let run = |args: &[&str]| {
        let mut c = ferry.command(args);
        without_keys(&mut c)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ferry")
            .env("AWS_ROLE_SESSION_NAME", "ferry-test")
            .env("AWS_ENDPOINT_URL_STS", &moto.url)
            .output()
            .unwrap()
    };
    let show = run(&["config", "show"]);
    let text = String::from_utf8_lossy(&show.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("s3://"))
        .unwrap_or_default();
    assert!(
        line.contains("the AWS SDK's chain: web identity") && line.contains("key ASIA"),
        "{text}{}",
        stderr(&show)
    );
    // Requests are signed with the role's temporary keys and token; Garage
    // does not know them and says so (the point is what was sent).
    let out = run(&["ls", &server().url(&unique("creds"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sent = signed_with(&proxy);
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|(k, t)| k.starts_with("ASIA") && *t),
        "{sent:?}"
    );
}

/// What IMDSv2 answers a token request with and moto leaves out: the
/// token's lifetime (AWS documents the header; the SDK requires it).
#[allow(clippy::ptr_arg)]
fn token_ttl(method: &str, target: &str, headers: &mut Vec<(String, String)>, _: &mut Vec<u8>) {
    if method == "PUT" && target.starts_with("/latest/api/token") {
        headers.push((
            "x-aws-ec2-metadata-token-ttl-seconds".into(),
            "21600".into(),
        ));
    }
}

#[test]
fn instance_metadata_credentials_come_from_imdsv2() {
    let moto = Moto::start();
    let imds = ListingProxy::start_with(&moto.url, |b| b.to_string(), token_ttl);
    let proxy = ListingProxy::start(&server().endpoint, |b| b.to_string());
    let ferry = keyless(&proxy);
    let mut c = ferry.command(&["ls", &server().url(&unique("creds"))]);
    without_keys(&mut c)
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sent = signed_with(&proxy);
    assert!(!sent.is_empty());
    // moto's instance role answers with these.
    assert!(sent.iter().all(|(k, t)| k == "test-key" && *t), "{sent:?}");
}

/// ECS / EKS Pod Identity: credentials from a local endpoint with an
/// authorization token; each answer expires in four minutes, inside
/// ferry's five-minute margin, so every request fetches anew.
fn container_endpoint(hits: Arc<AtomicU64>) -> String {
    container_endpoint_with(hits, None)
}

/// As `container_endpoint`, handing out `keys` (e.g. the server's own, so
/// requests signed with them succeed) instead of a new key id each time.
fn container_endpoint_with(hits: Arc<AtomicU64>, keys: Option<(String, String)>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if line
                    .to_ascii_lowercase()
                    .starts_with("authorization: pod-token")
                {
                    authorized = true;
                }
            }
            let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = time::OffsetDateTime::now_utc() + time::Duration::minutes(4);
            let exp = exp
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let (id, secret) = keys
                .clone()
                .unwrap_or_else(|| (format!("AKIDCONTAINER{n}"), format!("s{n}")));
            let body = if authorized {
                format!("{{\"AccessKeyId\":\"{id}\",\"SecretAccessKey\":\"{secret}\",\"Token\":\"t{n}\",\"Expiration\":\"{exp}\"}}")
            } else {
                "{}".to_string()
            };
            let status = if authorized {
                "200 OK"
            } else {
                "401 Unauthorized"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/v2/credentials")
}

#[test]
fn container_credentials_are_fetched_again_before_they_expire() {
    let hits = Arc::new(AtomicU64::new(0));
    let uri = container_endpoint(hits.clone());
    let proxy = ListingProxy::start(&server().endpoint, |b| b.to_string());
    let ferry = keyless(&proxy);
    // `stat` of an object makes two requests when refused: HEAD, then a
    // one-byte GET for the reason a HEAD cannot carry.
    let mut c = ferry.command(&["stat", &server().url(&unique("creds"))]);
    without_keys(&mut c)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sent = signed_with(&proxy);
    assert!(sent.len() >= 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(k, t)| k.starts_with("AKIDCONTAINER") && *t),
        "{sent:?}"
    );
    // Fetched again for later requests: more than one key id went out.
    let mut keys: Vec<&String> = sent.iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    assert!(keys.len() >= 2, "{keys:?}");
    assert!(hits.load(Ordering::SeqCst) >= 2);
}

#[test]
fn a_credential_process_in_the_aws_config_profile_is_run() {
    let proxy = ListingProxy::start(&server().endpoint, |b| b.to_string());
    let ferry = keyless(&proxy);
    let script = ferry.home.path().join("creds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"sp\"}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = ferry.home.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile build]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let mut c = ferry.command(&["ls", &server().url(&unique("creds"))]);
    without_keys(&mut c)
        .env("AWS_CONFIG_FILE", &config)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            ferry.home.path().join("none"),
        )
        .env("AWS_PROFILE", "build");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sent = signed_with(&proxy);
    assert!(
        !sent.is_empty() && sent.iter().all(|(k, _)| k == "AKIDPROCESS"),
        "{sent:?}"
    );
}

/// Temporary keys that run out every few requests, for a whole multipart
/// upload and for a watch: the server's own keys, handed out by the
/// container endpoint with a four-minute expiry, so ferry fetches them
/// again before nearly every request, and every request still succeeds.
#[test]
fn keys_refreshed_in_the_middle_of_a_multipart_upload_and_a_watch() {
    let hits = Arc::new(AtomicU64::new(0));
    let s = server();
    let uri = container_endpoint_with(
        hits.clone(),
        Some((s.access_key.clone(), s.secret_key.clone())),
    );
    let ferry = Ferry::new();
    let with_container = |c: &mut Command| {
        without_keys(c)
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token");
    };
    let dir = tempfile::tempdir().unwrap();
    let big = crate::harness::write_file(&dir.path().join("big.bin"), 21 << 20, 71);
    let key = format!("{}/big.bin", unique("refresh"));
    let mut c = ferry.command(&[
        "cp",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        "--parallel",
        "2",
        big.to_str().unwrap(),
        &s.url(&key),
    ]);
    with_container(&mut c);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        crate::harness::aws_sha256(&key),
        crate::harness::sha256_file(&big)
    );
    // Create, five parts, complete (and the checks around them): each
    // asked for keys anew.
    assert!(
        hits.load(Ordering::SeqCst) >= 7,
        "{} fetches",
        hits.load(Ordering::SeqCst)
    );

    // A watch keeps signing with fresh keys as files change.
    let tree = dir.path().join("tree");
    crate::harness::write_file(&tree.join("first.txt"), 100, 72);
    let prefix = unique("refresh-watch");
    let mut c = ferry.command(&[
        "cp",
        "-r",
        "-u",
        tree.to_str().unwrap(),
        &s.url(&prefix),
        "--watch",
    ]);
    with_container(&mut c);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let present = |k: &str| {
        crate::harness::aws(&["s3api", "head-object", "--bucket", &s.bucket, "--key", k])
            .status
            .success()
    };
    crate::harness::wait_for(60, "the first pass", || {
        present(&format!("{prefix}/first.txt"))
    });
    let before = hits.load(Ordering::SeqCst);
    for i in 0..3 {
        let name = format!("later-{i}.txt");
        let f = crate::harness::write_file(&tree.join(&name), 1000 + i, 73 + i as u64);
        crate::harness::wait_for(60, "a change uploaded", || {
            present(&format!("{prefix}/{name}"))
        });
        assert_eq!(
            crate::harness::aws_sha256(&format!("{prefix}/{name}")),
            crate::harness::sha256_file(&f)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        hits.load(Ordering::SeqCst) >= before + 3,
        "keys fetched again during the watch"
    );
}

#[test]
fn a_refused_token_is_one_clear_line() {
    let hits = Arc::new(AtomicU64::new(0));
    let uri = container_endpoint(hits);
    let ferry = Ferry::new();
    let mut c = ferry.command(&["ls", &server().url(&unique("creds"))]);
    without_keys(&mut c)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "a-revoked-token");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no credentials for s3://") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("a-revoked-token"), "{err}");
}
