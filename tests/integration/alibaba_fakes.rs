//! Stand-ins for what nothing independent plays on loopback: Alibaba's ECS
//! metadata service, its STS (AssumeRole, AssumeRoleWithOIDC) and an OSS
//! bucket listing, each as the SDKs' sources and Alibaba's documentation
//! describe them. They record every request, so tests count and inspect
//! what ferry sent. The RPC signature is checked here with a second,
//! independent implementation of Alibaba's documented algorithm.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Query and form parameters, decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        decode_pairs(q)
            .into_iter()
            .chain(decode_pairs(&self.body))
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

fn decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

pub type Reply = (u16, Vec<(String, String)>, String);
pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

pub struct Fake {
    pub endpoint: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    pub fn start(handler: Handler) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(stream) = conn else { continue };
                let (h, seen) = (handler.clone(), s2.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &h, &seen);
                });
            }
        });
        Fake { endpoint, seen }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: std::net::TcpStream, h: &Handler, seen: &Mutex<Vec<Req>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut start = String::new();
        if r.read_line(&mut start)? == 0 {
            return Ok(());
        }
        let mut parts = start.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0usize);
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let req = Req {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().unwrap().push(req.clone());
        let (status, headers, body) = h(&req);
        let mut head = format!(
            "HTTP/1.1 {status} Fake\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            out.write_all(body.as_bytes())?;
        }
        out.flush()?;
    }
}

fn json(status: u16, body: String) -> Reply {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body,
    )
}

/// An expiry `minutes` from now, in the SDKs' layout.
pub fn expiry_in(minutes: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap()
}

/// The ECS metadata service with one RAM role. With `imdsv2`, a session
/// token is handed out and required; without, token requests are refused
/// as an IMDSv1-only service refuses them. Each answer's keys are new
/// (`STS.ecs-N`) and expire in `minutes`.
pub fn ecs_metadata(role: &'static str, imdsv2: bool, minutes: i64) -> Fake {
    let n = Arc::new(AtomicU64::new(0));
    Fake::start(Arc::new(move |r: &Req| {
        const ROLES: &str = "/latest/meta-data/ram/security-credentials/";
        if r.method == "PUT" && r.path() == "/latest/api/token" {
            if !imdsv2 {
                return (403, vec![], String::new());
            }
            let ttl_given = r
                .header("X-aliyun-ecs-metadata-token-ttl-seconds")
                .is_some();
            return if ttl_given {
                (200, vec![], "session-token-1".into())
            } else {
                (400, vec![], String::new())
            };
        }
        if imdsv2 && r.header("X-aliyun-ecs-metadata-token") != Some("session-token-1") {
            return (401, vec![], String::new());
        }
        match r.path() {
            p if p == ROLES => (200, vec![], format!("{role}\n")),
            p if p == format!("{ROLES}{role}") => {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                json(
                    200,
                    format!(
                        r#"{{"AccessKeyId":"STS.ecs-{k}","AccessKeySecret":"ecs-secret","Expiration":"{}","SecurityToken":"ecs-token-{k}","LastUpdated":"2026-01-01T00:00:00Z","Code":"Success"}}"#,
                        expiry_in(minutes)
                    ),
                )
            }
            _ => (404, vec![], String::new()),
        }
    }))
}

fn percent_encode(s: &str) -> String {
    // RFC 3986 unreserved characters stay, everything else is %XX.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Alibaba's RPC signature, written from its documentation (not from
/// ferry's signer), for the fake STS to check requests with.
fn rpc_signature(method: &str, params: &[(String, String)], secret: &str) -> String {
    let mut p: Vec<_> = params.iter().filter(|(k, _)| k != "Signature").collect();
    p.sort();
    let canonical: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let to_sign = format!("{method}&%2F&{}", percent_encode(&canonical.join("&")));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn sts_error(status: u16, code: &str, message: &str) -> Reply {
    json(
        status,
        format!(
            r#"{{"RequestId":"REQ-1","HostId":"sts.aliyuncs.com","Code":"{code}","Message":"{message}"}}"#
        ),
    )
}

/// STS: AssumeRoleWithOIDC accepts `oidc_token` only; AssumeRole accepts
/// requests signed with the AccessKey `source_id` / `source_secret`. Keys
/// handed out are `STS.role-N`, expiring in `minutes`.
pub fn sts(
    oidc_token: &'static str,
    source_id: &'static str,
    source_secret: &'static str,
    minutes: i64,
) -> Fake {
    let n = Arc::new(AtomicU64::new(0));
    Fake::start(Arc::new(move |r: &Req| {
        if r.method != "POST" {
            return sts_error(405, "MethodNotAllowed", "POST only");
        }
        if r.param("Version").as_deref() != Some("2015-04-01")
            || r.param("Format").as_deref() != Some("JSON")
        {
            return sts_error(400, "MissingParameter", "Version and Format are required");
        }
        match r.param("Action").as_deref() {
            Some("AssumeRoleWithOIDC") => {
                if r.header("Authorization").is_some() || r.param("Signature").is_some() {
                    return sts_error(400, "InvalidParameter", "AssumeRoleWithOIDC is not signed");
                }
                if r.param("OIDCProviderArn").is_none() || r.param("RoleSessionName").is_none() {
                    return sts_error(
                        400,
                        "MissingParameter",
                        "OIDCProviderArn and RoleSessionName are required",
                    );
                }
                if r.param("OIDCToken").as_deref() != Some(oidc_token) {
                    return sts_error(
                        401,
                        "AuthenticationFail.OIDCToken.Expired",
                        "The OIDC token has expired.",
                    );
                }
            }
            Some("AssumeRole") => {
                let params = r.params();
                let given = r.param("Signature").unwrap_or_default();
                if r.param("AccessKeyId").as_deref() != Some(source_id) {
                    return sts_error(
                        404,
                        "InvalidAccessKeyId.NotFound",
                        "Specified access key is not found.",
                    );
                }
                if given != rpc_signature("POST", &params, source_secret) {
                    return sts_error(
                        400,
                        "SignatureDoesNotMatch",
                        "Specified signature is not matched with our calculation.",
                    );
                }
                if r.param("SignatureNonce").is_none_or(|s| s.is_empty()) {
                    return sts_error(400, "MissingSignatureNonce", "SignatureNonce is mandatory.");
                }
            }
            _ => return sts_error(400, "InvalidAction.NotFound", "no such action"),
        }
        let Some(role) = r.param("RoleArn") else {
            return sts_error(400, "MissingRoleArn", "RoleArn is mandatory.");
        };
        let k = n.fetch_add(1, Ordering::SeqCst) + 1;
        json(
            200,
            format!(
                r#"{{"RequestId":"REQ-{k}","AssumedRoleUser":{{"Arn":"{role}/s","AssumedRoleId":"1:s"}},"Credentials":{{"SecurityToken":"role-token-{k}","AccessKeyId":"STS.role-{k}","AccessKeySecret":"role-secret","Expiration":"{}"}}}}"#,
                expiry_in(minutes)
            ),
        )
    }))
}

/// An OSS bucket listing of `pages` pages of one key each, recording who
/// signed each request (OSS V4's Credential= key id, or V1's `OSS id:`).
pub fn oss_listing(pages: u32) -> Fake {
    Fake::start(Arc::new(move |r: &Req| {
        let page: u32 = r
            .param("continuation-token")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let more = page + 1 < pages;
        let next = if more {
            format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                page + 1
            )
        } else {
            String::new()
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>ferry-oss</Name><Prefix></Prefix>\
<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>{more}</IsTruncated>{next}\
<Contents><Key>key-{page}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"0123456789abcdef0123456789abcdef\"</ETag>\
<Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass></Contents><KeyCount>1</KeyCount></ListBucketResult>"
        );
        (
            200,
            vec![("Content-Type".into(), "application/xml".into())],
            body,
        )
    }))
}

/// The access key id an OSS request was signed with, and its STS token.
pub fn oss_signer(r: &Req) -> (String, Option<String>) {
    let auth = r.header("Authorization").unwrap_or("");
    let id = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string();
    (id, r.header("x-oss-security-token").map(str::to_string))
}

#[test]
fn the_fake_sts_checks_signatures_as_documented() {
    // Alibaba's worked example: the fake's own signer must agree with it.
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let params = [
        p("AccessKeyId", "testid"),
        p("Action", "DescribeRegions"),
        p("Format", "XML"),
        p("SignatureMethod", "HMAC-SHA1"),
        p("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        p("SignatureVersion", "1.0"),
        p("Timestamp", "2016-02-23T12:46:24Z"),
        p("Version", "2014-05-26"),
    ];
    assert_eq!(
        rpc_signature("GET", &params, "testsecret"),
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    );
}
