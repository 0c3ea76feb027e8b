//! OSS Signature V4 (`OSS4-HMAC-SHA256`) in the Authorization header, as
//! oss2 and alibabacloud-oss-v2 compute it. It differs from AWS SigV4 in ways
//! that each break a signature if copied from SigV4: the canonical URI is
//! `/bucket/key` encoded from the unencoded names whatever the addressing
//! style, a query parameter without a value is signed without `=`, only
//! `x-oss-*`, `Content-Type` and `Content-MD5` are signed (so no signed-header
//! list is sent), and the key derivation starts from `aliyun_v4` + secret.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::sigv4::{amz_date, hmac, uri_encode};
use super::SignableRequest;
use crate::store::credentials::Credentials;

const ALGORITHM: &str = "OSS4-HMAC-SHA256";
const PRODUCT: &str = "oss";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// `region` is the OSS region ID (`cn-hangzhou`), not the endpoint's
/// `oss-cn-hangzhou`. Returns, with lower-case names: `x-oss-date`,
/// `x-oss-content-sha256`, `x-oss-security-token` (with a session token) and
/// `authorization`.
pub fn sign(
    req: &SignableRequest<'_>,
    creds: &Credentials,
    region: &str,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let datetime = amz_date(now);
    let date = &datetime[..8];

    let mut added = vec![
        ("x-oss-date".to_owned(), datetime.clone()),
        (
            "x-oss-content-sha256".to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ),
    ];
    if let Some(token) = &creds.session_token {
        added.push(("x-oss-security-token".to_owned(), token.clone()));
    }

    let mut signed: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(name, _)| !added.iter().any(|(a, _)| name.eq_ignore_ascii_case(a)))
        .chain(added.iter())
        .filter_map(|(name, value)| {
            let name = name.trim().to_ascii_lowercase();
            is_signed(&name).then(|| (name, value.trim().to_owned()))
        })
        .collect();
    signed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    for (i, (name, value)) in signed.iter().enumerate() {
        // Repeated names share one line, values joined by `,`, as an HTTP
        // server folds them.
        if i > 0 && signed[i - 1].0 == *name {
            canonical_headers.pop();
            canonical_headers.push(',');
        } else {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n\n{}",
        req.method,
        canonical_uri(req.bucket, req.key),
        canonical_query(req.query),
        canonical_headers,
        UNSIGNED_PAYLOAD
    );

    let scope = format!("{date}/{region}/{PRODUCT}/aliyun_v4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{datetime}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );

    let k_date = hmac(
        format!("aliyun_v4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_product = hmac(&k_region, PRODUCT.as_bytes());
    let k_signing = hmac(&k_product, b"aliyun_v4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));

    added.push((
        "authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{scope},Signature={signature}",
            creds.access_key_id
        ),
    ));
    added
}

fn is_signed(lower_name: &str) -> bool {
    lower_name.starts_with("x-oss-") || lower_name == "content-type" || lower_name == "content-md5"
}

/// `/`, `/bucket/` or `/bucket/key`, encoded with `/` kept.
fn canonical_uri(bucket: Option<&str>, key: Option<&str>) -> String {
    let mut uri = String::from("/");
    if let Some(bucket) = bucket {
        uri.push_str(bucket);
        uri.push('/');
    }
    if let Some(key) = key {
        uri.push_str(key);
    }
    uri_encode(&uri, true)
}

fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}
