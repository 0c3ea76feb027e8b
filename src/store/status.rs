//! What a non-success answer means, as one `StoreError`: the error XML
//! (from the body, or for a bodiless HEAD from OSS's `x-oss-err` header),
//! a bucket that lives in another region, a clock the server refused.
//! Pure: the HTTP client reads the answer, this decides what it says.

use base64::Engine;
use reqwest::header::HeaderMap;
use time::OffsetDateTime;

use super::dialect::Dialect;
use super::error::Detail;
use super::retry::parse_retry_after;
use super::xml::{self, ErrorFields};
use super::{StoreError, StoreErrorKind};

/// The request an answer belongs to, as far as messages need it.
pub struct Asked<'a> {
    pub bucket: Option<&'a str>,
    /// The region the request was signed for, if the scheme has one.
    pub region: Option<&'a str>,
    /// The time the request was signed with.
    pub signed_at: OffsetDateTime,
}

/// A bodiless 401/403 whose Date is this far from the signing time is
/// taken for a clock refusal, as the AWS SDKs do (a HEAD cannot say
/// RequestTimeTooSkewed; S3's limit is 15 minutes).
const SKEW_SUSPECT: time::Duration = time::Duration::minutes(4);

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The error XML of an answer: its body, or OSS's base64 copy in a header
/// when the body is empty (HEAD answers have none).
fn error_xml(dialect: Dialect, headers: &HeaderMap, body: &str) -> Option<ErrorFields> {
    if let Some(f) = xml::parse_error_fields(body) {
        return Some(f);
    }
    if !body.trim().is_empty() {
        return None;
    }
    let encoded = header(headers, dialect.error_header()?)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    xml::parse_error_fields(&String::from_utf8(decoded).ok()?)
}

pub fn error_from_answer(
    dialect: Dialect,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    asked: &Asked<'_>,
) -> StoreError {
    let fields = error_xml(dialect, headers, body).unwrap_or_default();
    let request_id = fields
        .request_id
        .clone()
        .or_else(|| header(headers, dialect.request_id_header()).map(str::to_string));
    let code = fields.code.clone();
    let mut err = StoreError::new(
        StoreError::classify(status, code.as_deref()),
        fields
            .message
            .clone()
            .unwrap_or_else(|| plain_message(status)),
    );
    err.code = code;
    err.request_id = request_id;
    err.status = Some(status);
    err.retry_after = header(headers, "retry-after").and_then(parse_retry_after);
    if let Some(e) = wrong_place(status, headers, &fields, asked) {
        err.kind = StoreErrorKind::Rejected;
        err.message = e.0;
        err = err.with_detail(Detail::WrongRegion {
            region: e.1,
            endpoint: e.2,
        });
    } else if err.code.as_deref() == Some("RequestTimeTooSkewed") {
        let server_time = fields
            .server_time
            .as_deref()
            .and_then(|t| xml::parse_iso8601(t).ok())
            .or_else(|| server_date(headers));
        err = err.with_detail(Detail::ClockSkew { server_time });
    } else if let Some(t) = bodiless_skew(status, headers, &fields, asked) {
        err.message = format!(
            "access denied, and the server's clock ({t}) is far from the request's ({})",
            asked.signed_at
        );
        err = err.with_detail(Detail::ClockSkew {
            server_time: Some(t),
        });
    } else if err.code.as_deref() == Some("InvalidObjectState") {
        // AWS (GLACIER, DEEP_ARCHIVE, archived tiers) and OSS (Archive,
        // ColdArchive) refuse to read an archived object with this code.
        let class = header(headers, dialect.storage_class_header())
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let how = match dialect {
            Dialect::S3 => "aws s3api restore-object",
            Dialect::Oss => "ossutil restore",
        };
        err.kind = StoreErrorKind::Archived;
        err.message = format!(
            "the object is in an archive storage class{class} and must be restored before it can be read ({how}); {}",
            err.message.trim_end_matches('.')
        );
    }
    err
}

fn server_date(headers: &HeaderMap) -> Option<OffsetDateTime> {
    header(headers, "date").and_then(|d| xml::parse_http_date(d).ok())
}

fn bodiless_skew(
    status: u16,
    headers: &HeaderMap,
    f: &ErrorFields,
    asked: &Asked<'_>,
) -> Option<OffsetDateTime> {
    if f.code.is_some() || !matches!(status, 401 | 403) {
        return None;
    }
    let t = server_date(headers)?;
    ((t - asked.signed_at).abs() > SKEW_SUSPECT).then_some(t)
}

/// The message of an answer without error XML; `Display` already shows
/// the status number.
fn plain_message(status: u16) -> String {
    match status {
        404 => "not found".to_string(),
        403 => "access denied".to_string(),
        _ => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("the server gave no details")
            .to_string(),
    }
}

/// A bucket asked for in the wrong region or through the wrong endpoint,
/// as the SDKs detect it: a 301/307 (PermanentRedirect, TemporaryRedirect),
/// `x-amz-bucket-region` (the only clue a HEAD answer carries), a 400
/// AuthorizationHeaderMalformed naming the expected `<Region>`, or OSS's
/// AccessDenied naming the `<Endpoint>` to use. The message says what to
/// change; ferry does not follow redirects, so the fix stays visible.
fn wrong_place(
    status: u16,
    headers: &HeaderMap,
    f: &ErrorFields,
    asked: &Asked<'_>,
) -> Option<(String, Option<String>, Option<String>)> {
    let redirect = matches!(status, 301 | 302 | 307)
        || matches!(
            f.code.as_deref(),
            Some("PermanentRedirect") | Some("TemporaryRedirect")
        );
    let region = header(headers, "x-amz-bucket-region")
        .map(str::to_string)
        .or_else(|| f.region.clone());
    let malformed_region =
        f.code.as_deref() == Some("AuthorizationHeaderMalformed") && f.region.is_some();
    // A HEAD's 400 has no body; AWS names the bucket's region in the header.
    let header_elsewhere = status == 400
        && f.code.is_none()
        && header(headers, "x-amz-bucket-region").is_some_and(|r| Some(r) != asked.region);
    let malformed_region = malformed_region || header_elsewhere;
    let oss_endpoint = f.code.as_deref() == Some("AccessDenied") && f.endpoint.is_some();
    if !(redirect || malformed_region || oss_endpoint) {
        return None;
    }
    let bucket = asked
        .bucket
        .map(str::to_string)
        .or_else(|| f.bucket.clone())
        .unwrap_or_else(|| "the bucket".into());
    let endpoint = f.endpoint.as_deref().map(|e| {
        // AWS names the bucket's virtual host; the flag wants the service's.
        e.strip_prefix(&format!("{bucket}."))
            .unwrap_or(e)
            .to_string()
    });
    let message = match (&region, &endpoint) {
        (Some(r), _) if Some(r.as_str()) != asked.region => {
            let ours = asked.region.unwrap_or("the configured one");
            format!(
                "bucket {bucket} is in region {r}, not {ours}; use --region {r} \
                 (with an endpoint in {r} if you set one)"
            )
        }
        (_, Some(e)) => format!(
            "bucket {bucket} must be addressed through endpoint {e}; use --endpoint {e}"
        ),
        (Some(r), None) => format!(
            "bucket {bucket} is in region {r} but the server redirects this request; check --endpoint"
        ),
        (None, None) => {
            let to = header(headers, "location")
                .map(|l| format!(" to {l}"))
                .unwrap_or_default();
            format!(
                "the server redirects requests for bucket {bucket}{to}; \
                 check --region and --endpoint"
            )
        }
    };
    Some((message, region, endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const ASKED: Asked<'static> = Asked {
        bucket: Some("ferry-test"),
        region: Some("us-east-1"),
        // Tue, 02 Jan 2024 03:04:05 GMT
        signed_at: time::macros::datetime!(2024-01-02 03:04:05 UTC),
    };

    #[test]
    fn an_archived_object_says_how_to_restore_it() {
        // AWS: 403 InvalidObjectState for a GLACIER object not restored;
        // OSS answers an Archive object the same way.
        let body = "<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class</Message></Error>";
        let h = headers(&[("x-amz-storage-class", "DEEP_ARCHIVE")]);
        let e = error_from_answer(Dialect::S3, 403, &h, body, &ASKED);
        assert_eq!(e.kind, StoreErrorKind::Archived);
        assert!(!e.is_retryable());
        let m = e.to_string();
        assert!(
            m.contains("(DEEP_ARCHIVE)") && m.contains("aws s3api restore-object"),
            "{m}"
        );
        let h = headers(&[("x-oss-storage-class", "ColdArchive")]);
        let m = error_from_answer(Dialect::Oss, 403, &h, body, &ASKED).to_string();
        assert!(
            m.contains("(ColdArchive)") && m.contains("ossutil restore"),
            "{m}"
        );
    }

    #[test]
    fn a_redirect_names_the_buckets_region() {
        // GET: AWS's body and header.
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code>\
<Message>The bucket you are attempting to access must be addressed using the specified endpoint. \
Please send all future requests to this endpoint.</Message><Endpoint>ferry-test.s3.eu-west-1.amazonaws.com</Endpoint>\
<Bucket>ferry-test</Bucket><RequestId>R1</RequestId><HostId>H</HostId></Error>";
        let h = headers(&[("x-amz-bucket-region", "eu-west-1")]);
        let e = error_from_answer(Dialect::S3, 301, &h, body, &ASKED);
        assert_eq!(e.kind, StoreErrorKind::Rejected);
        assert!(!e.is_retryable());
        assert_eq!(
            e.detail(),
            Some(&Detail::WrongRegion {
                region: Some("eu-west-1".into()),
                endpoint: Some("s3.eu-west-1.amazonaws.com".into())
            })
        );
        let line = e.to_string();
        assert!(
            line.contains(
                "bucket ferry-test is in region eu-west-1, not us-east-1; use --region eu-west-1"
            ),
            "{line}"
        );
        // HEAD: no body, only the header.
        let e = error_from_answer(Dialect::S3, 301, &h, "", &ASKED);
        assert!(
            e.to_string()
                .contains("is in region eu-west-1, not us-east-1"),
            "{e}"
        );
        assert!(!e.to_string().contains("Moved Permanently"), "{e}");
    }

    #[test]
    fn a_wrong_region_in_the_signature_is_named_too() {
        let body =
            "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' \
is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
        let e = error_from_answer(Dialect::S3, 400, &HeaderMap::new(), body, &ASKED);
        assert!(e.to_string().contains("use --region eu-west-1"), "{e}");
    }

    #[test]
    fn a_heads_bare_400_names_the_region_in_its_header() {
        let h = headers(&[("x-amz-bucket-region", "eu-west-1")]);
        let e = error_from_answer(Dialect::S3, 400, &h, "", &ASKED);
        assert!(e.to_string().contains("use --region eu-west-1"), "{e}");
        assert!(
            matches!(e.detail(), Some(Detail::WrongRegion { region: Some(r), .. }) if r == "eu-west-1")
        );
        // The header naming the region asked for is no redirect.
        let same = headers(&[("x-amz-bucket-region", "us-east-1")]);
        let e = error_from_answer(Dialect::S3, 400, &same, "", &ASKED);
        assert!(e.detail().is_none(), "{e}");
    }

    #[test]
    fn oss_names_the_endpoint_to_use() {
        let body =
            "<Error><Code>AccessDenied</Code><Message>The bucket you are attempting to access \
must be addressed using the specified endpoint.</Message><Bucket>b1</Bucket>\
<Endpoint>oss-cn-beijing.aliyuncs.com</Endpoint></Error>";
        let asked = Asked {
            bucket: Some("b1"),
            region: Some("cn-hangzhou"),
            ..ASKED
        };
        let e = error_from_answer(Dialect::Oss, 403, &HeaderMap::new(), body, &asked);
        assert!(
            e.to_string()
                .contains("use --endpoint oss-cn-beijing.aliyuncs.com"),
            "{e}"
        );
        assert_eq!(
            e.detail(),
            Some(&Detail::WrongRegion {
                region: None,
                endpoint: Some("oss-cn-beijing.aliyuncs.com".into())
            })
        );
        // An AccessDenied without an endpoint stays what it is.
        let plain = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        let e = error_from_answer(Dialect::Oss, 403, &HeaderMap::new(), plain, &asked);
        assert_eq!(e.kind, StoreErrorKind::AccessDenied);
        assert!(e.detail().is_none());
    }

    #[test]
    fn an_oss_head_error_comes_from_x_oss_err() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
<Message>The specified key does not exist.</Message><RequestId>5C3D</RequestId></Error>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let h = headers(&[("x-oss-err", &b64), ("x-oss-request-id", "5C3D")]);
        let e = error_from_answer(Dialect::Oss, 404, &h, "", &ASKED);
        assert_eq!(e.code.as_deref(), Some("NoSuchKey"));
        assert_eq!(e.kind, StoreErrorKind::NotFound);
        assert!(
            e.to_string()
                .contains("NoSuchKey: The specified key does not exist."),
            "{e}"
        );
        // Garbage in the header is ignored, never a panic.
        let h = headers(&[("x-oss-err", "%%%not base64")]);
        let e = error_from_answer(Dialect::Oss, 404, &h, "", &ASKED);
        assert_eq!(e.to_string(), "HTTP 404: not found");
        // S3 has no such header: not looked at.
        let h = headers(&[("x-oss-err", &b64)]);
        assert!(error_from_answer(Dialect::S3, 404, &h, "", &ASKED)
            .code
            .is_none());
    }

    #[test]
    fn skew_carries_the_servers_time() {
        let aws = "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request \
time and the current time is too large.</Message><RequestTime>20240102T030405Z</RequestTime>\
<ServerTime>2024-01-02T03:14:05Z</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds></Error>";
        let e = error_from_answer(Dialect::S3, 403, &HeaderMap::new(), aws, &ASKED);
        assert_eq!(e.kind, StoreErrorKind::Rejected);
        let want = xml::parse_iso8601("2024-01-02T03:14:05Z").unwrap();
        assert_eq!(
            e.detail(),
            Some(&Detail::ClockSkew {
                server_time: Some(want)
            })
        );
        // A HEAD answer: only the Date header, ten minutes ahead.
        let h = headers(&[("date", "Tue, 02 Jan 2024 03:14:05 GMT")]);
        let e = error_from_answer(Dialect::S3, 403, &h, "", &ASKED);
        assert_eq!(
            e.detail(),
            Some(&Detail::ClockSkew {
                server_time: Some(want)
            })
        );
        // A bare 403 from a server whose clock agrees is just a 403.
        let h1 = headers(&[("date", "Tue, 02 Jan 2024 03:05:05 GMT")]);
        let e = error_from_answer(Dialect::S3, 403, &h1, "", &ASKED);
        assert_eq!(e.detail(), None, "{e}");
        assert_eq!(e.kind, StoreErrorKind::AccessDenied);
        let e = error_from_answer(
            Dialect::Oss,
            403,
            &h,
            "<Error><Code>RequestTimeTooSkewed</Code></Error>",
            &ASKED,
        );
        assert_eq!(
            e.detail(),
            Some(&Detail::ClockSkew {
                server_time: Some(want)
            })
        );
    }

    #[test]
    fn a_plain_error_without_body_is_unchanged() {
        let e = error_from_answer(Dialect::S3, 503, &HeaderMap::new(), "", &ASKED);
        assert_eq!(e.to_string(), "HTTP 503: Service Unavailable");
        assert!(e.is_retryable());
    }
}
