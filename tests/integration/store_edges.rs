//! The store layer's hard edges, each where a real server or one playing
//! AWS/OSS as documented meets ferry: silence versus slowness, a server
//! whose clock is ahead, a bucket in another region, empty bodies, keys
//! over the limit, OSS's bodiless HEAD errors, copies above CopyObject's
//! limit. The responders here answer what AWS or OSS would and forward
//! everything else to Garage.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

use crate::harness::{self, server, sha256, stderr, unique, write_file, Ferry};
use crate::proxy::Proxy;

/// One request as a responder saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the responder did: "forwarded", or the status it answered.
    pub answer: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Reply {
    /// Answer here: status, headers, body (left out for HEAD).
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Pass to the upstream server (one connection per request).
    Forward,
    /// Keep the connection open and never answer.
    Silent,
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A small HTTP/1.1 server that decides per request: answer, forward to
/// Garage, or go silent.
pub struct Responder {
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Responder {
    pub fn start(
        upstream: Option<String>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let upstream = upstream.map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        });
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, h, up) = (s.clone(), handler.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, s, h, up));
            }
        });
        Responder {
            endpoint: format!("http://{addr}"),
            seen,
            stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.seen().iter().filter(|r| r.method == method).count()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        headers,
        body,
        answer: String::new(),
    })
}

fn serve(conn: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, h: Arc<Handler>, up: Option<String>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(mut req) = read_request(&mut r) {
        match h(&req) {
            Reply::Answer(status, headers, body) => {
                req.answer = status.to_string();
                seen.lock().unwrap().push(req.clone());
                let mut head = format!("HTTP/1.1 {status} X\r\n");
                for (k, v) in &headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let body = if req.method == "HEAD" {
                    Vec::new()
                } else {
                    body
                };
                head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
                    return;
                }
            }
            Reply::Forward => {
                req.answer = "forwarded".into();
                seen.lock().unwrap().push(req.clone());
                let Some(up) = &up else { return };
                let Ok(mut server) = TcpStream::connect(up) else {
                    return;
                };
                let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
                for (k, v) in req
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
                {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                // One request per upstream connection: its answer then
                // ends where the connection does.
                head.push_str("connection: close\r\n\r\n");
                if server.write_all(head.as_bytes()).is_err()
                    || server.write_all(&req.body).is_err()
                {
                    return;
                }
                let mut answer = Vec::new();
                let _ = server.read_to_end(&mut answer);
                let _ = out.write_all(&answer);
                return;
            }
            Reply::Silent => {
                seen.lock().unwrap().push(req);
                // Hold the connection until the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(r.get_mut().read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

fn xml_error(code: &str, message: &str, extra: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
<Message>{message}</Message>{extra}<RequestId>RID{code}</RequestId></Error>"
    )
    .into_bytes()
}

/// ferry against `endpoint` with only the environment given: no Garage
/// needed for responders that answer everything themselves.
fn ferry_alone(env: &[(&str, &str)], args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path());
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_deadline(c, 120)
}

fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
    ]
}

fn oss_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OSS_ACCESS_KEY_ID", "LTAI5tEXAMPLE".to_string()),
        ("OSS_ACCESS_KEY_SECRET", "oss-secret-example".to_string()),
        ("OSS_REGION", "cn-hangzhou".to_string()),
        ("OSS_ENDPOINT", endpoint.to_string()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs a command, killing it if it outlives `secs` (a hang is a failure
/// of its own, reported as such rather than as a stuck test run).
fn run_with_deadline(mut c: Command, secs: u64) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !d.load(Ordering::Relaxed) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("wait for ferry");
    done.store(true, Ordering::Relaxed);
    assert!(
        out.status.code().is_some(),
        "ferry did not finish within {secs}s:\n{}",
        stderr(&out)
    );
    out
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("ferry: error:"))
        .map(str::to_string)
        .collect()
}

// ---- 1. Timeouts measure silence, not size ------------------------------

/// Parts that take several times the idle limit to send (the bandwidth
/// limit makes them slow) still go through: only silence fails a request.
#[test]
fn a_slow_body_is_not_an_idle_connection() {
    let s = server();
    let proxy = Proxy::start(&s.endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    // Two parts of 5 MiB and 1 MiB at 1 MiB/s: the first takes about five
    // idle limits to send, with no response byte until it is all there.
    let file = write_file(&dir.path().join("slow.bin"), 6 << 20, 41);
    let key = unique("edges/slow");
    ferry.ok(&[
        "--idle-timeout",
        "1s",
        "--bwlimit",
        "1M",
        "cp",
        file.to_str().unwrap(),
        &s.url(&key),
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
    ]);
    assert_eq!(
        proxy.count("PUT", "partNumber"),
        2,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        harness::aws_sha256(&key),
        sha256(&std::fs::read(&file).unwrap())
    );
}

/// A server that takes the request and never answers fails it after the
/// idle limit, with a line that says so.
#[test]
fn a_silent_server_fails_within_the_idle_limit() {
    let silent = Responder::start(None, |_| Reply::Silent);
    let env = s3_env(&silent.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir.path().join("f"), 1000, 3);
    for args in [
        vec!["stat", "s3://ferry-test/k"],
        vec!["cp", file.to_str().unwrap(), "s3://ferry-test/k"],
    ] {
        let mut all = vec!["--idle-timeout", "1s", "--retries", "2"];
        all.extend(args.iter());
        let out = ferry_alone(&as_refs(&env), &all);
        assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!("no answer from {}:", silent.endpoint))
                && text.contains("nothing moved for 1s (--idle-timeout)"),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
    // Each attempt reached the server and was held open, then abandoned.
    assert!(silent.seen().len() >= 4, "{:?}", silent.seen());
}

// ---- 2. Clock skew ------------------------------------------------------

/// A proxy whose clock runs `ahead` of this machine's, answering like AWS
/// (403 RequestTimeTooSkewed, its own Date and ServerTime) to any request
/// dated more than a minute from its clock, forwarding the rest to Garage
/// (whose own tolerance is 15 minutes).
fn skewed_proxy(ahead: time::Duration) -> Responder {
    let fmt_amz = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let fmt_http = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    Responder::start(Some(server().endpoint.clone()), move |req| {
        let now = time::OffsetDateTime::now_utc() + ahead;
        let dated = req
            .header("x-amz-date")
            .and_then(|d| time::PrimitiveDateTime::parse(d, fmt_amz).ok())
            .map(|d| d.assume_utc());
        match dated {
            Some(d) if (d - now).abs() <= time::Duration::minutes(1) => Reply::Forward,
            _ => Reply::Answer(
                403,
                vec![
                    ("date".into(), now.format(fmt_http).unwrap()),
                    ("content-type".into(), "application/xml".into()),
                ],
                xml_error(
                    "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                    &format!(
                        "<RequestTime>{}</RequestTime><ServerTime>{}</ServerTime>\
<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>",
                        req.header("x-amz-date").unwrap_or(""),
                        now.format(&time::format_description::well_known::Rfc3339)
                            .unwrap()
                    ),
                ),
            ),
        }
    })
}

#[test]
fn a_server_clock_ten_minutes_ahead_is_followed() {
    let s = server();
    let proxy = skewed_proxy(time::Duration::minutes(10));
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write_file(&dir.path().join(format!("up/f{i}")), 1000 + i, i as u64);
    }
    let prefix = unique("edges/skew");
    let dest = format!("{}/", s.url(&prefix));
    ferry.ok(&[
        "cp",
        "-r",
        "-j",
        "1",
        dir.path().join("up").to_str().unwrap(),
        &dest,
    ]);
    let skewed = |p: &Responder| p.seen().iter().filter(|r| r.answer == "403").count();
    // One refusal taught the client the server's clock; the listing and
    // the three uploads after it were all accepted.
    assert_eq!(skewed(&proxy), 1, "{:#?}", proxy.seen());
    assert!(
        proxy
            .seen()
            .iter()
            .filter(|r| r.answer == "forwarded" && r.method == "PUT")
            .count()
            >= 3
    );
    // A HEAD (no body: only the Date header) and a GET in a new process.
    ferry.ok(&["stat", &s.url(&format!("{prefix}/f1"))]);
    let back = dir.path().join("back");
    ferry.ok(&[
        "cp",
        &s.url(&format!("{prefix}/f2")),
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(dir.path().join("up/f2")).unwrap()
    );
}

// ---- 3. A bucket in another region --------------------------------------

/// A server that redirects whatever region the request is signed for:
/// ferry follows the first answer (re-signing for eu-west-1, as
/// `endpoints` shows succeeding), and the second is one line naming the
/// endpoint to use instead, never a loop.
#[test]
fn a_permanent_redirect_names_the_buckets_region() {
    let aws = Responder::start(None, |req| {
        let body = xml_error(
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified \
endpoint. Please send all future requests to this endpoint.",
            "<Endpoint>ferry-test.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>ferry-test</Bucket>",
        );
        let _ = req;
        Reply::Answer(
            301,
            vec![
                ("x-amz-bucket-region".into(), "eu-west-1".into()),
                ("content-type".into(), "application/xml".into()),
            ],
            body,
        )
    });
    let env = s3_env(&aws.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    for args in [
        vec!["stat", "s3://ferry-test/k"],
        vec!["cp", "s3://ferry-test/k", dest.to_str().unwrap()],
        vec!["ls", "s3://ferry-test/"],
    ] {
        let out = ferry_alone(&as_refs(&env), &args);
        assert_ne!(out.status.code(), Some(0));
        let lines = error_lines(&out);
        assert_eq!(lines.len(), 1, "{}", stderr(&out));
        assert!(
            lines[0].contains("bucket ferry-test")
                && lines[0].contains("eu-west-1")
                && lines[0].contains("--endpoint"),
            "{args:?}: {}",
            lines[0]
        );
        assert!(!lines[0].contains("Moved Permanently"), "{}", lines[0]);
    }
    assert!(!dest.exists());
    // Both shapes were met: HEAD (header only) and GET (body too).
    assert!(
        aws.count("HEAD") >= 1 && aws.count("GET") >= 1,
        "{:?}",
        aws.seen()
    );
    // Each command followed once: twice as many answers as commands' first
    // requests, bounded (no loop).
    assert!(aws.seen().len() <= 12, "{:?}", aws.seen());
}

// ---- 4a. An empty body says so -------------------------------------------

/// AWS answers a PUT without Content-Length with 411; this proxy does
/// the same and forwards the rest to Garage (which would accept it).
fn length_required_proxy(upstream: Option<String>, ok_etag: bool) -> Responder {
    Responder::start(upstream, move |req| {
        let needs = matches!(req.method.as_str(), "PUT" | "POST");
        let has =
            req.header("content-length").is_some() || req.header("transfer-encoding").is_some();
        if needs && !has {
            return Reply::Answer(
                411,
                vec![],
                xml_error(
                    "MissingContentLength",
                    "You must provide the Content-Length HTTP header.",
                    "",
                ),
            );
        }
        if ok_etag {
            // Playing OSS: the MD5 of nothing.
            return Reply::Answer(
                200,
                vec![("etag".into(), "\"D41D8CD98F00B204E9800998ECF8427E\"".into())],
                vec![],
            );
        }
        Reply::Forward
    })
}

#[test]
fn an_empty_upload_carries_content_length_zero() {
    let s = server();
    let strict = length_required_proxy(Some(s.endpoint.clone()), false);
    let ferry = Ferry::at(&strict.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(&dir.path().join("empty"), 0, 0);
    let key = unique("edges/empty");
    ferry.ok(&["cp", empty.to_str().unwrap(), &s.url(&key)]);
    let puts: Vec<Seen> = strict
        .seen()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].header("content-length"), Some("0"));
    assert_eq!(puts[0].answer, "forwarded");

    // OSS's PutObject the same way, through the library.
    let oss = length_required_proxy(None, true);
    let mut cfg = ferry::store::http::HttpStoreConfig::new(
        url::Url::parse(&oss.endpoint).unwrap(),
        ferry::store::dialect::Dialect::Oss,
        ferry::store::sign::Scheme::OssV4 {
            region: "cn-hangzhou".into(),
        },
        ferry::store::dialect::Addressing::Path,
    );
    cfg.credentials = Some(std::sync::Arc::new(s.credentials()));
    let store = ferry::store::http::HttpStore::new(cfg).unwrap();
    harness::runtime()
        .block_on(ferry::store::ObjectStore::put_object(
            &store,
            "b",
            "empty",
            ferry::store::Body::new(Vec::new()),
            &Default::default(),
        ))
        .unwrap();
    assert_eq!(oss.seen()[0].header("content-length"), Some("0"));
}

// ---- 4b. Keys over the limit ---------------------------------------------

#[test]
fn a_key_over_the_limit_fails_alone_and_is_never_sent() {
    let s = server();
    let proxy = Proxy::start(&s.endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let deep: std::path::PathBuf = (0..5).map(|i| format!("{i}{}", "d".repeat(200))).collect();
    write_file(&up.join(&deep).join("long.txt"), 10, 1);
    write_file(&up.join("a.txt"), 10, 2);
    write_file(&up.join("z.txt"), 10, 3);
    let prefix = unique("edges/long");
    let out = ferry.run(&[
        "cp",
        "-r",
        up.to_str().unwrap(),
        &format!("{}/", s.url(&prefix)),
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("allows at most 1024"), "{text}");
    assert!(text.contains("long.txt"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let writes = crate::proxy::writes(&proxy);
    assert!(
        writes.iter().all(|t| !t.contains("long.txt")),
        "the long key went out: {writes:?}"
    );
    assert_eq!(writes.len(), 2, "{writes:?}");
    let store = s.store();
    let rt = harness::runtime();
    for k in ["a.txt", "z.txt"] {
        rt.block_on(store.head_object(&s.bucket, &format!("{prefix}/{k}")))
            .unwrap();
    }
}

// ---- 4c. OSS's HEAD errors ------------------------------------------------

/// Plays OSS for HEAD: no body, the error XML base64-encoded in
/// `x-oss-err`. Any GET is counted and refused.
fn oss_head_errors() -> Responder {
    Responder::start(None, |req| {
        let (status, code, message) = if req.target.contains("denied") {
            (
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
            )
        } else {
            (404, "NoSuchKey", "The specified key does not exist.")
        };
        let xml = xml_error(
            code,
            message,
            "<HostId>b.oss-cn-hangzhou.aliyuncs.com</HostId><EC>0026-00000001</EC>",
        );
        let headers = vec![
            ("x-oss-request-id".into(), "5C3D9175B6FC201293AD4890".into()),
            (
                "x-oss-err".into(),
                base64::engine::general_purpose::STANDARD.encode(&xml),
            ),
            ("x-oss-ec".into(), "0026-00000001".into()),
        ];
        Reply::Answer(
            status,
            headers,
            if req.method == "HEAD" { vec![] } else { xml },
        )
    })
}

#[test]
fn oss_head_errors_are_read_from_x_oss_err() {
    let oss = oss_head_errors();
    let env = oss_env(&oss.endpoint);
    let out = ferry_alone(&as_refs(&env), &["stat", "oss://bkt/missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    assert!(
        lines[0].contains("NoSuchKey: The specified key does not exist."),
        "{}",
        lines[0]
    );
    let out = ferry_alone(&as_refs(&env), &["stat", "oss://bkt/denied"]);
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    assert!(
        lines[0].contains("AccessDenied: You have no right to access this object"),
        "{}",
        lines[0]
    );
    // The header said it all: no GET to learn what the HEAD meant.
    assert_eq!(oss.count("GET"), 0, "{:?}", oss.seen());
    assert_eq!(oss.count("HEAD"), 2);
}

// ---- 4d. Copies above CopyObject's limit ---------------------------------

#[test]
fn a_copy_above_the_single_copy_limit_goes_multipart() {
    use ferry::store::{copy_object_any_size, CopyLimits, Metadata, PutOptions};
    let s = server();
    let proxy = Proxy::start(&s.endpoint, 0);
    let store = s.store_at(&proxy.endpoint);
    let rt = harness::runtime();
    let data = harness::pattern(12 << 20, 77);
    let src = unique("edges/copy-src");
    let md: Metadata = [("mtime".to_string(), "1700000000.5".to_string())].into();
    rt.block_on(store.put_object(
        &s.bucket,
        &src,
        ferry::store::Body::new(data.clone()),
        &PutOptions {
            metadata: md.clone(),
            content_type: None,
            checksum: None,
            object: Default::default(),
        },
    ))
    .unwrap();
    // A limit lowered to 5 MiB stands for OSS's 1 GiB (and S3's 5 GiB).
    let limits = CopyLimits {
        max_single: 5 << 20,
        part_size: 5 << 20,
    };
    let dst = unique("edges/copy-dst");
    let before = proxy.requests().len();
    rt.block_on(copy_object_any_size(
        store.as_ref(),
        &s.bucket,
        &src,
        &s.bucket,
        &dst,
        None,
        &limits,
    ))
    .unwrap();
    // Three UploadPartCopy requests (5 + 5 + 2 MiB), no CopyObject, no
    // body bytes sent by the client.
    let puts: Vec<_> = proxy.requests()[before..]
        .iter()
        .filter(|r| r.method == "PUT")
        .cloned()
        .collect();
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts
        .iter()
        .all(|r| r.target.contains("partNumber=") && r.body_len == 0));
    // An independent client sees the same bytes and the source's metadata.
    assert_eq!(harness::aws_sha256(&dst), sha256(&data));
    let v = harness::aws_head(&dst);
    assert_eq!(v["Metadata"]["mtime"], "1700000000.5", "{v}");
    assert_eq!(v["ContentLength"], 12 << 20);
    assert!(v["ETag"].as_str().unwrap().ends_with("-3\""), "{v}");

    // Replaced metadata when asked.
    let dst2 = unique("edges/copy-dst2");
    let new: Metadata = [("mtime".to_string(), "5".to_string())].into();
    rt.block_on(copy_object_any_size(
        store.as_ref(),
        &s.bucket,
        &src,
        &s.bucket,
        &dst2,
        Some(&new),
        &limits,
    ))
    .unwrap();
    let v = harness::aws_head(&dst2);
    assert_eq!(v["Metadata"]["mtime"], "5", "{v}");
    assert_eq!(harness::aws_sha256(&dst2), sha256(&data));
}

// ---- Retries are what --retries says ---------------------------------------

/// A server that throttles every UploadPart (503 SlowDown) and serves the
/// rest: each part is sent exactly `--retries` times in all (the part
/// loop does not multiply the HTTP layer's attempts), and the line says
/// how many.
#[test]
fn retries_cap_every_request_of_a_multipart_upload() {
    let throttle = Responder::start(Some(server().endpoint.clone()), |req| {
        if req.method == "PUT" && req.target.contains("partNumber=") {
            return Reply::Answer(
                503,
                vec![("content-type".into(), "application/xml".into())],
                xml_error("SlowDown", "Please reduce your request rate.", ""),
            );
        }
        Reply::Forward
    });
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("big.bin"), 12 << 20, 81);
    let ferry = Ferry::at(&throttle.endpoint);
    let key = format!("{}/big.bin", unique("retries"));
    let out = ferry.run(&[
        "cp",
        "--retries",
        "3",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        "--parallel",
        "1",
        src.to_str().unwrap(),
        &server().url(&key),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = error_lines(&out);
    assert!(
        lines.iter().any(|l| l.contains("(after 3 attempts)")),
        "{}",
        stderr(&out)
    );
    let mut per_part = std::collections::BTreeMap::<String, usize>::new();
    for r in throttle
        .seen()
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("partNumber="))
    {
        let n = r
            .target
            .split("partNumber=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        *per_part.entry(n).or_default() += 1;
    }
    assert!(!per_part.is_empty());
    assert!(per_part.values().all(|&n| n == 3), "{per_part:?}");
}
