//! OSS Signature V1 (`OSS ak:signature`, HMAC-SHA1), as oss2 computes it.
//! Only `x-oss-*` headers and the query parameters OSS calls sub-resources
//! are signed, and the resource is `/bucket/key` unencoded whatever the
//! addressing style.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::SignableRequest;
use crate::store::credentials::Credentials;

/// The query parameters that are part of the signed resource: oss2's set,
/// plus `cloudboxes` from alibabacloud-oss-v2. Anything else in the query
/// (`prefix`, `list-type`, `max-keys`, ...) is not signed, but
/// `continuation-token` is.
const SUB_RESOURCES: &[&str] = &[
    "accessPoint",
    "accessPointPolicy",
    "acl",
    "append",
    "asyncFetch",
    "bucketArchiveDirectRead",
    "bucketInfo",
    "callback",
    "callback-var",
    "cloudboxes",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "encryption",
    "endTime",
    "group",
    "httpsConfig",
    "inventory",
    "inventoryId",
    "lifecycle",
    "link",
    "live",
    "location",
    "logging",
    "metaQuery",
    "objectInfo",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "publicAccessBlock",
    "qos",
    "qosInfo",
    "qosRequester",
    "redundancyTransition",
    "referer",
    "regionList",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "requestPayment",
    "requesterQosInfo",
    "resourceGroup",
    "resourcePool",
    "resourcePoolBuckets",
    "resourcePoolInfo",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "stat",
    "status",
    "style",
    "styleName",
    "symlink",
    "tagging",
    "transferAcceleration",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "vod",
    "website",
    "worm",
    "wormExtend",
    "wormId",
    "x-oss-ac-forward-allow",
    "x-oss-ac-source-ip",
    "x-oss-ac-subnet-mask",
    "x-oss-ac-vpc-id",
    "x-oss-access-point-name",
    "x-oss-async-process",
    "x-oss-process",
    "x-oss-redundancy-transition-taskid",
    "x-oss-request-payer",
    "x-oss-target-redundancy-type",
    "x-oss-traffic-limit",
    "x-oss-write-get-object-response",
];

/// Returns, with lower-case names: `date`, `x-oss-security-token` (with a
/// session token) and `authorization`.
pub fn sign(
    req: &SignableRequest<'_>,
    creds: &Credentials,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let date = now
        .to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("a UTC timestamp always formats");

    let mut added = vec![("date".to_owned(), date)];
    if let Some(token) = &creds.session_token {
        added.push(("x-oss-security-token".to_owned(), token.clone()));
    }

    let headers: Vec<(String, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| !added.iter().any(|(a, _)| name.eq_ignore_ascii_case(a)))
        .chain(added.iter())
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name == wanted)
            .map_or("", |(_, value)| *value)
    };

    let mut oss_headers: Vec<&(String, &str)> = headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-oss-"))
        .collect();
    oss_headers.sort_by(|a, b| a.0.cmp(&b.0));

    // oss2 signs `x-oss-date` in place of Date when a request carries one.
    let date_line = match header("x-oss-date") {
        "" => header("date"),
        d => d,
    };
    let mut string_to_sign = format!(
        "{}\n{}\n{}\n{}\n",
        req.method,
        header("content-md5"),
        header("content-type"),
        date_line
    );
    for (name, value) in oss_headers {
        string_to_sign.push_str(name);
        string_to_sign.push(':');
        string_to_sign.push_str(value);
        string_to_sign.push('\n');
    }
    string_to_sign.push_str(&canonical_resource(req));

    let mut mac = Hmac::<Sha1>::new_from_slice(creds.secret_access_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());

    added.push((
        "authorization".to_owned(),
        format!("OSS {}:{signature}", creds.access_key_id),
    ));
    added
}

/// `/bucket/key` (or `/bucket/`, or `/`), unencoded, then the
/// sub-resources sorted by name, with unencoded values.
fn canonical_resource(req: &SignableRequest<'_>) -> String {
    let mut resource = match req.bucket {
        Some(bucket) => format!("/{bucket}/{}", req.key.unwrap_or("")),
        None => "/".to_owned(),
    };
    let mut subs: Vec<&(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| SUB_RESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort();
    for (i, (k, v)) in subs.into_iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(k);
        if !v.is_empty() {
            resource.push('=');
            resource.push_str(v);
        }
    }
    resource
}
