//! Where requests go: a bucket in another region found and followed (the
//! proxy plays AWS's redirects in front of Garage), requester-pays
//! headers, an HTTP proxy from the environment, and HTTPS through a
//! private CA (socat terminates TLS with a certificate openssl made).

use std::process::{Child, Command, Stdio};

use crate::harness::{aws_sha256, server, sha256_file, stderr, unique, write_file, Ferry};
use crate::listing_proxy::{Answered, ListingProxy};

/// The region a request was signed for, from its Authorization header.
fn signed_region(headers: &[(String, String)]) -> Option<String> {
    let auth = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .clone();
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    scope.split('/').nth(2).map(str::to_string)
}

fn real_region() -> String {
    std::env::var("FERRY_TEST_REGION").unwrap_or_else(|_| "garage".into())
}

fn asked_elsewhere(headers: &[(String, String)]) -> bool {
    signed_region(headers).is_some_and(|r| r != real_region())
}

/// As AWS answers a request sent to the wrong region's endpoint: 301
/// PermanentRedirect with `x-amz-bucket-region` (and the XML body, which
/// a HEAD answer lacks).
fn redirect(_: &str, _: &str, h: &[(String, String)]) -> Answered {
    if !asked_elsewhere(h) {
        return None;
    }
    let region = real_region();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code>\
<Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message>\
<Endpoint>s3.{region}.amazonaws.com</Endpoint><RequestId>R</RequestId></Error>"
    );
    Some((
        301,
        vec![
            ("x-amz-bucket-region".into(), region),
            ("Content-Type".into(), "application/xml".into()),
        ],
        body.into_bytes(),
    ))
}

/// As AWS answers a signature scoped to the wrong region on the right
/// endpoint: 400 AuthorizationHeaderMalformed naming the region.
fn malformed(_: &str, _: &str, h: &[(String, String)]) -> Answered {
    if !asked_elsewhere(h) {
        return None;
    }
    let body = format!(
        "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; \
the region is wrong; expecting '{0}'</Message><Region>{0}</Region><RequestId>R</RequestId></Error>",
        real_region()
    );
    // AWS names the region in a header too: a HEAD's answer has no body.
    Some((
        400,
        vec![
            ("x-amz-bucket-region".into(), real_region()),
            ("Content-Type".into(), "application/xml".into()),
        ],
        body.into_bytes(),
    ))
}

/// Answers that name no region (a bare 400 to a HEAD, a bare 301 to
/// anything else, from a server that leaves the header off); only a HEAD
/// on the bucket itself says where.
fn bare_redirect(method: &str, target: &str, h: &[(String, String)]) -> Answered {
    if !asked_elsewhere(h) {
        return None;
    }
    let bucket_only = target.trim_end_matches('/') == format!("/{}", server().bucket);
    if method == "HEAD" && bucket_only {
        return Some((
            301,
            vec![("x-amz-bucket-region".into(), real_region())],
            Vec::new(),
        ));
    }
    let status = if method == "HEAD" { 400 } else { 301 };
    Some((status, Vec::new(), Vec::new()))
}

fn elsewhere_count(proxy: &ListingProxy) -> usize {
    proxy
        .counters
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, h)| asked_elsewhere(h))
        .count()
}

#[test]
fn a_bucket_in_another_region_is_found_and_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 300_000, 41);
    for (case, answer, first_answers) in [
        (
            "301 with x-amz-bucket-region",
            redirect as crate::listing_proxy::Answer,
            1,
        ),
        ("400 AuthorizationHeaderMalformed", malformed, 1),
        // The object's bare answer, then the HEAD on the bucket.
        ("a bare 400 or 301", bare_redirect, 2),
    ] {
        let proxy = ListingProxy::start_answering(&server().endpoint, answer);
        let mut ferry = Ferry::at(&proxy.endpoint);
        // Configured for a region the bucket is not in.
        ferry
            .extra_env
            .push(("AWS_REGION".into(), "eu-north-1".into()));
        let key = format!("{}/f.bin", unique("region"));
        let out = ferry.run(&["cp", src.to_str().unwrap(), &server().url(&key)]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        assert_eq!(aws_sha256(&key), sha256_file(&src), "{case}");
        // Only the first request went to the wrong region: the answer is
        // kept for every later one in the process.
        assert_eq!(elsewhere_count(&proxy), first_answers, "{case}");
        // A download in a new process finds it again, once.
        let back = dir
            .path()
            .join(format!("back-{first_answers}-{}", key.len()));
        let out = ferry.run(&["cp", &server().url(&key), back.to_str().unwrap()]);
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        assert_eq!(sha256_file(&back), sha256_file(&src), "{case}");
        assert_eq!(elsewhere_count(&proxy), 2 * first_answers, "{case}");
    }
}

#[test]
fn requester_pays_goes_on_every_bucket_request() {
    let proxy = ListingProxy::start(&server().endpoint, |s| s.to_string());
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 1000, 42);
    let key = format!("{}/f.bin", unique("payer"));
    ferry.ok(&[
        "cp",
        "--requester-pays",
        src.to_str().unwrap(),
        &server().url(&key),
    ]);
    ferry.ok(&["ls", "--requester-pays", &server().url(&key)]);
    let all = proxy.counters.heads.lock().unwrap().clone();
    assert!(all.len() >= 2);
    for (m, t, h) in &all {
        let payer = h
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-request-payer"))
            .map(|(_, v)| v.as_str());
        assert_eq!(payer, Some("requester"), "{m} {t}");
        // Signed, as S3 requires of every x-amz- header.
        let auth = &h
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .unwrap()
            .1;
        assert!(auth.contains("x-amz-request-payer"), "{m} {t}: {auth}");
    }
    proxy.reset();
    proxy.counters.heads.lock().unwrap().clear();
    ferry.ok(&["ls", &server().url(&key)]);
    let heads = proxy.counters.heads.lock().unwrap();
    assert!(heads.iter().all(|(_, _, h)| !h
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("x-amz-request-payer"))));
}

#[test]
fn an_http_proxy_from_the_environment_carries_the_requests() {
    let proxy = ListingProxy::start(&server().endpoint, |s| s.to_string());
    // The endpoint is the server itself; the proxy is only in HTTP_PROXY.
    let mut ferry = Ferry::new();
    ferry
        .extra_env
        .push(("HTTP_PROXY".into(), proxy.endpoint.clone()));
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 5000, 43);
    let key = format!("{}/f.bin", unique("httpproxy"));
    ferry.ok(&["cp", src.to_str().unwrap(), &server().url(&key)]);
    assert_eq!(aws_sha256(&key), sha256_file(&src));
    assert!(
        proxy.count("PUT", &key) >= 1,
        "the upload went through the proxy"
    );
    // NO_PROXY names the server: nothing goes through the proxy.
    proxy.reset();
    let host = server()
        .endpoint
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    ferry.extra_env.push(("NO_PROXY".into(), host));
    ferry.ok(&["ls", &server().url(&key)]);
    assert_eq!(proxy.counters.requests.lock().unwrap().len(), 0);
}

/// A CA, a certificate for 127.0.0.1 signed by it, and socat serving TLS
/// with it in front of the server.
struct TlsFront {
    child: Child,
    endpoint: String,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_front() -> TlsFront {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ferry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
    ]);
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "srv.pem",
        "-extfile",
        "ext",
    ]);
    let both = [
        std::fs::read(p("srv.pem")).unwrap(),
        std::fs::read(p("srv.key")).unwrap(),
    ]
    .concat();
    std::fs::write(p("srv-both.pem"), both).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = server().endpoint.trim_start_matches("http://").to_string();
    let child = Command::new("socat")
        .arg(format!(
            "openssl-listen:{port},bind=127.0.0.1,reuseaddr,fork,cert={},verify=0",
            p("srv-both.pem").display()
        ))
        .arg(format!("tcp:{upstream}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    TlsFront {
        child,
        endpoint: format!("https://127.0.0.1:{port}"),
        ca: p("ca.pem"),
        _dir: dir,
    }
}

#[test]
fn https_through_a_private_ca_needs_its_bundle() {
    let front = tls_front();
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 70_000, 44);
    let key = format!("{}/f.bin", unique("tls"));
    let ferry = Ferry::at(&front.endpoint);
    // Not trusted: one line about the certificate, nothing sent.
    let out = ferry.run(&["cp", src.to_str().unwrap(), &server().url(&key)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // --ca-bundle, then AWS_CA_BUNDLE.
    let ca = front.ca.to_str().unwrap();
    ferry.ok(&[
        "cp",
        "--ca-bundle",
        ca,
        src.to_str().unwrap(),
        &server().url(&key),
    ]);
    assert_eq!(aws_sha256(&key), sha256_file(&src));
    let mut by_env = Ferry::at(&front.endpoint);
    by_env.extra_env.push(("AWS_CA_BUNDLE".into(), ca.into()));
    let back = dir.path().join("back.bin");
    by_env.ok(&["cp", &server().url(&key), back.to_str().unwrap()]);
    assert_eq!(sha256_file(&back), sha256_file(&src));
    // A file that holds no certificate: a usage error naming it.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let out = ferry.run(&[
        "ls",
        "--ca-bundle",
        junk.to_str().unwrap(),
        &server().url(&key),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("junk.pem"), "{}", stderr(&out));
}

#[test]
fn a_store_whose_endpoints_all_refuse_is_one_line_saying_so() {
    // Two ports nothing listens on: every attempt fails at once.
    let closed: Vec<String> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        })
        .collect();
    let ferry = Ferry::new();
    let out = ferry.run(&[
        "--endpoint",
        &closed[0],
        "--endpoint",
        &closed[1],
        "--retries",
        "3",
        "ls",
        &server().url("nothing/"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("(after 3 attempts); none of the store's 2 endpoints answered"),
        "{err}"
    );
}

/// A tree copied with 16 files in flight to a bucket in another region:
/// byte-exact, and the redirect is answered about once, not per file.
/// (Here the listing learns the region before the uploads start; requests
/// told "elsewhere" at the same moment are covered by the store reading
/// the learned place before deciding, which this does not force.)
#[test]
fn a_parallel_tree_copy_to_another_region() {
    let proxy = ListingProxy::start_answering(&server().endpoint, redirect);
    let mut ferry = Ferry::at(&proxy.endpoint);
    ferry
        .extra_env
        .push(("AWS_REGION".into(), "eu-north-1".into()));
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..24)
        .map(|i| {
            write_file(
                &dir.path().join(format!("t/f{i}.bin")),
                20_000 + i,
                200 + i as u64,
            )
        })
        .collect();
    let prefix = unique("region-par");
    let out = ferry.run(&[
        "cp",
        "-r",
        "-j",
        "16",
        dir.path().join("t").to_str().unwrap(),
        &server().url(&prefix),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, f) in files.iter().enumerate() {
        assert_eq!(aws_sha256(&format!("{prefix}/f{i}.bin")), sha256_file(f));
    }
    assert!(elsewhere_count(&proxy) <= 17, "{}", elsewhere_count(&proxy));
}
