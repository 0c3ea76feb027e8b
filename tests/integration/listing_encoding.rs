//! Awkward key names through listings encoded as each store encodes them
//! under `encoding-type=url`: Garage's (`%20` for a space), AWS's (`+` for
//! a space, via the rewriting `ListingProxy`), and OSS's (URL-encoded
//! continuation tokens, via a fake listing server of ferry's own, as no OSS
//! server runs here). Writes are counted at `crate::proxy::Proxy` in front
//! of Garage; what landed is checked with the AWS CLI.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::harness::{aws, files, server, sha256_file, stderr, unique, write_file, Ferry};
use crate::listing_proxy::{aws_style, ListingProxy};
use crate::proxy::{writes, Proxy};

/// Local paths (relative to the tree's root) with spaces, `+`, `%`, `~`,
/// `&`, `=` and non-ASCII letters in directory and file names. `a b.txt`
/// and `a+b.txt` side by side: a listing that confused them would lose one.
const NAMES: [&str; 8] = [
    "My Docs/a b.txt",
    "My Docs/a+b.txt",
    "My Docs/c+d.txt",
    "x%y/100% & =.txt",
    "déjà vu/~tilde.txt",
    "日本/ファイル.txt",
    "top level + space .txt",
    "plain.txt",
];

/// Keys under `prefix` as the AWS CLI (an independent client) lists them.
fn aws_keys(prefix: &str) -> Vec<String> {
    let out = aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &server().bucket,
        "--prefix",
        prefix,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "aws list-objects-v2: {}",
        stderr(&out)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new(); // nothing listed: the CLI prints nothing at all
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<String> = v["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["Key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

fn summary(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Up, no-op rerun, down, no-op down with `--delete`, `ls -r`, `rm -r`,
/// with ferry talking to `endpoint` and writes counted at `counting`.
fn round_trip(name: &str, endpoint: &str, counting: &Proxy, listing: Option<&ListingProxy>) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for (i, n) in NAMES.iter().enumerate() {
        write_file(&src.join(n), 100 + i * 37, i as u64);
    }
    let base = unique(name);
    let root_prefix = format!("{base}/My Docs Root/");
    let url = server().url(&root_prefix);
    let ferry = Ferry::at(endpoint);
    let s = src.to_str().unwrap();
    let mut expected: Vec<String> = NAMES.iter().map(|n| format!("{root_prefix}{n}")).collect();
    expected.sort();

    // (a) Upload; the exact keys exist, as the AWS CLI sees them.
    let out = ferry.run(&["cp", "-r", s, &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(aws_keys(&format!("{base}/")), expected);

    // (b) A rerun with -u sends nothing: every listed name matches its file.
    counting.reset(0);
    if let Some(l) = listing {
        l.reset();
    }
    let out = ferry.run(&["cp", "-r", "-u", s, &url, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        writes(counting).is_empty(),
        "no-op rerun wrote {:?}",
        writes(counting)
    );
    let v = summary(&out.stdout);
    assert_eq!(v["transferred"], 0, "{v}");
    assert_eq!(v["skipped"], NAMES.len(), "{v}");
    if let Some(l) = listing {
        assert_eq!(l.count("PUT", ""), 0, "the listing proxy saw no PUT either");
        assert!(
            l.lists() > 0,
            "the rerun listed through the rewriting proxy"
        );
        assert!(
            l.rewritten() > 0,
            "the listing really arrived AWS-style (with `+` for spaces)"
        );
    }

    // (c) Down into a fresh directory, byte-exact; again with --delete
    // deletes nothing and sends nothing.
    let back = dir.path().join("back");
    let b = back.to_str().unwrap();
    let out = ferry.run(&["cp", "-r", "-u", "--delete", &url, b, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(files(&back), files(&src), "same file names");
    for f in files(&src) {
        assert_eq!(
            sha256_file(&src.join(&f)),
            sha256_file(&back.join(&f)),
            "{}",
            f.display()
        );
    }
    let out = ferry.run(&["cp", "-r", "-u", "--delete", &url, b, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = summary(&out.stdout);
    assert_eq!(v["deleted"], 0, "{v}");
    assert_eq!(v["transferred"], 0, "{v}");
    assert_eq!(files(&back), files(&src), "nothing deleted locally");

    // (d) ls -r prints the names as they are (spaces, not `+`).
    let listed = ferry.ok(&["ls", "-r", &server().url(&format!("{base}/"))]);
    let mut keys: Vec<String> = listed
        .lines()
        .map(|l| {
            let k = expected
                .iter()
                .find(|k| l.ends_with(&format!("  {k}")))
                .unwrap_or_else(|| panic!("unexpected line {l:?} in:\n{listed}"));
            k.clone()
        })
        .collect();
    keys.sort();
    assert_eq!(keys, expected, "{listed}");

    // (e) rm -r removes them all.
    let out = ferry.run(&["rm", "-r", &server().url(&format!("{base}/"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(aws_keys(&format!("{base}/")), Vec::<String>::new());
}

/// Garage's own encoding (`%20`, `%2B`), bytes forwarded unchanged.
#[test]
fn awkward_names_round_trip_with_garage_listings() {
    let counting = Proxy::start(&server().endpoint, 0);
    round_trip("enc-garage", &counting.endpoint.clone(), &counting, None);
}

/// AWS's encoding (`+` for a space), rewritten in front of Garage.
#[test]
fn awkward_names_round_trip_with_aws_style_listings() {
    let counting = Proxy::start(&server().endpoint, 0);
    let listing = ListingProxy::start(&counting.endpoint, aws_style);
    round_trip("enc-aws", &listing.endpoint, &counting, Some(&listing));
}

// ---- A fake OSS listing server -------------------------------------------

/// The token as the fake server means it, and as OSS sends it under
/// `encoding-type=url`.
/// OSS bucket names are 3 to 63 characters (ferry refuses `b`).
const BUCKET: &str = "bkt";
const RAW_TOKEN: &str = "CgJi+Yw/x==";
const SENT_TOKEN: &str = "CgJi%2BYw%2Fx%3D%3D";

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn contents(key_encoded: &str, size: u64) -> String {
    format!(
        "<Contents><Key>{key_encoded}</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified>\
         <ETag>\"5B3C1E0A8D2F4B6C9E7A1D3F5B7C9E0A\"</ETag><Type>Normal</Type><Size>{size}</Size>\
         <StorageClass>Standard</StorageClass></Contents>"
    )
}

fn listing(is_truncated: bool, token: Option<&str>, entries: &[(&str, u64)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>\
         <Name>bkt</Name><Prefix></Prefix><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType>",
    );
    s.push_str(&format!("<IsTruncated>{is_truncated}</IsTruncated>"));
    if let Some(t) = token {
        s.push_str(&format!(
            "<NextContinuationToken>{t}</NextContinuationToken>"
        ));
    }
    for (k, n) in entries {
        s.push_str(&contents(k, *n));
    }
    s.push_str(&format!(
        "<KeyCount>{}</KeyCount></ListBucketResult>",
        entries.len()
    ));
    s
}

fn oss_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>65A1B2C3D4E5F60718293A4B</RequestId>\
         <HostId>bkt.oss-cn-hangzhou.aliyuncs.com</HostId><EC>0017-00000000</EC></Error>"
    )
}

struct FakeOss {
    endpoint: String,
    /// Request targets in arrival order.
    targets: Arc<Mutex<Vec<String>>>,
}

/// Two pages for bucket `bkt`; the second only for the right token. With
/// `repeat`, page two hands out the same token again.
fn fake_oss(repeat: bool) -> FakeOss {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let targets = Arc::new(Mutex::new(Vec::new()));
    let t = targets.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let t = t.clone();
            std::thread::spawn(move || answer(conn, repeat, &t));
        }
    });
    FakeOss { endpoint, targets }
}

fn http_date() -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc().format(&fmt).unwrap()
}

/// Answers one request and closes the connection.
fn answer(conn: TcpStream, repeat: bool, targets: &Mutex<Vec<String>>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut start = String::new();
    if r.read_line(&mut start).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
            break;
        }
    }
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let seen = {
        let mut t = targets.lock().unwrap();
        t.push(target.clone());
        t.len()
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (status, body) = if seen > 10 {
        // A client that keeps paging is refused, so a loop cannot hang the test.
        (
            "400 Bad Request",
            oss_error("InvalidArgument", "too many listing requests"),
        )
    } else if method != "GET" || path != format!("/{BUCKET}") {
        (
            "404 Not Found",
            oss_error("NoSuchBucket", "The specified bucket does not exist."),
        )
    } else if param("list-type").as_deref() != Some("2") {
        (
            "400 Bad Request",
            oss_error("InvalidArgument", "expected list-type=2"),
        )
    } else {
        match param("continuation-token") {
            None => (
                "200 OK",
                listing(
                    true,
                    Some(SENT_TOKEN),
                    &[("a%20one.txt", 3), ("b%2Btwo.txt", 4)],
                ),
            ),
            Some(t) if t == RAW_TOKEN => (
                "200 OK",
                listing(
                    repeat,
                    repeat.then_some(SENT_TOKEN),
                    &[("c/three.txt", 5), ("d%E6%97%A5.txt", 6)],
                ),
            ),
            Some(t) => (
                "400 Bad Request",
                oss_error(
                    "InvalidArgument",
                    &format!("Invalid continuation-token {t}"),
                ),
            ),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: AliyunOSS\r\nDate: {}\r\n\
         Content-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\
         x-oss-request-id: 65A1B2C3D4E5F60718293A4B\r\n\r\n",
        http_date(),
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body.as_bytes());
    let _ = out.flush();
}

fn oss_ls(fake: &FakeOss) -> std::process::Output {
    let mut ferry = Ferry::at(&fake.endpoint);
    ferry
        .extra_env
        .push(("OSS_ENDPOINT".into(), fake.endpoint.clone()));
    ferry
        .extra_env
        .push(("OSS_REGION".into(), "cn-hangzhou".into()));
    ferry.run(&["--no-sign-request", "ls", "-r", &format!("oss://{BUCKET}/")])
}

/// OSS URL-encodes NextContinuationToken; ferry decodes it once and sends
/// the raw token back, and decodes names without plus-as-space.
#[test]
fn oss_continuation_token_is_decoded_once() {
    let fake = fake_oss(false);
    let out = oss_ls(&fake);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}\n{:?}",
        stderr(&out),
        fake.targets.lock().unwrap()
    );
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.rsplit("  ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a one.txt", "b+two.txt", "c/three.txt", "d日.txt"],
        "{stdout}"
    );
    let targets = fake.targets.lock().unwrap().clone();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(
        targets[0].starts_with(&format!("/{BUCKET}?")),
        "{targets:?}"
    );
    assert!(
        targets[1].contains(&format!("continuation-token={SENT_TOKEN}")),
        "{targets:?}"
    );
}

/// A server that hands out the same token again makes `ls` fail, rather
/// than loop or stop silently.
#[test]
fn oss_repeated_continuation_token_is_an_error() {
    let fake = fake_oss(true);
    let out = oss_ls(&fake);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("repeated continuation token"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.targets.lock().unwrap().len(), 2);
}
