//! AWS Signature Version 4, in the Authorization header, with S3's rules:
//! the canonical URI is the path exactly as sent (S3 never normalises or
//! double-encodes it), and the payload hash is always sent as
//! `x-amz-content-sha256`, so it is always signed.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::{Payload, SignableRequest};
use crate::store::credentials::Credentials;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Headers never signed, as botocore: a proxy or the HTTP client may
/// rewrite or drop them, which would break a signature that covered them.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Returns, with lower-case names: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` (with a session token) and `authorization`.
pub fn sign(
    req: &SignableRequest<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    payload: &Payload<'_>,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let amz_date = amz_date(now);
    let payload_hash = match payload {
        Payload::Unsigned => UNSIGNED_PAYLOAD,
        Payload::Sha256(hex) => hex,
    };

    let mut added = vec![
        ("x-amz-date".to_owned(), amz_date.clone()),
        ("x-amz-content-sha256".to_owned(), payload_hash.to_owned()),
    ];
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token".to_owned(), token.clone()));
    }

    // A caller-supplied copy of a header this function sets would be
    // signed twice (joined with a comma) and then sent twice.
    let mut headers: Vec<(&str, &str)> = vec![("host", req.host)];
    headers.extend(
        req.headers
            .iter()
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("host")
                    && !added.iter().any(|(a, _)| name.eq_ignore_ascii_case(a))
            })
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    headers.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));

    let auth = authorization(
        &Signing {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: &headers,
            payload_hash,
            amz_date: &amz_date,
            region,
            service,
        },
        creds,
    );
    added.push(("authorization".to_owned(), auth));
    added
}

/// The parts of a request that go into a SigV4 signature, with every header
/// to sign (Host and `x-amz-date` included) already present. Split from
/// [`sign`] so AWS's generic test suite, whose requests carry no
/// `x-amz-content-sha256`, can be checked too.
pub(super) struct Signing<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_hash: &'a str,
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

pub(super) fn authorization(s: &Signing<'_>, creds: &Credentials) -> String {
    let (canonical_headers, signed_headers) = canonical_headers(s.headers);
    let path = if s.path.is_empty() { "/" } else { s.path };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        s.method,
        path,
        canonical_query(s.query),
        canonical_headers,
        signed_headers,
        s.payload_hash
    );

    let date = &s.amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", s.region, s.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        s.amz_date,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );

    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, s.region.as_bytes());
    let k_service = hmac(&k_region, s.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));

    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

/// `20150830T123600Z`, the timestamp form both SigV4 and OSS V4 use.
pub(super) fn amz_date(now: OffsetDateTime) -> String {
    now.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a UTC timestamp always formats")
}

pub(super) fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`), with upper-case hex, as SigV4 and OSS V4 both
/// require; `/` is kept when `keep_slash`. A query sent on the wire should be
/// encoded this way too, so that what is signed is what the server sees.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

/// Encoded pairs sorted by key then value; a parameter without a value
/// still gets its `=`, as SigV4 requires.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Returns the canonical header block (each line ending in `\n`) and the
/// signed-header list. Repeated names are joined with `,` in the order given.
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        if UNSIGNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = trim_all(value);
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));

    let mut block = String::new();
    for (name, value) in &merged {
        block.push_str(name);
        block.push(':');
        block.push_str(value);
        block.push('\n');
    }
    let signed = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, signed)
}

/// SigV4's Trimall: no leading or trailing whitespace, and every inner run
/// of whitespace becomes one space.
fn trim_all(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}
