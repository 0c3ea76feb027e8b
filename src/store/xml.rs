//! Request and response bodies of the S3/OSS XML API (both speak the same
//! shapes), and the two date formats the protocol uses.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{
    DeleteFailure, ListEntry, ListPage, ListPartsPage, ListUploadsPage, MultipartUpload, PartInfo,
    StoreError, StoreErrorKind, VersionEntry, VersionsPage,
};
use crate::checksum::{normalize_etag, Algorithm, StoredChecksum};

fn protocol(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Protocol,
        format!("unreadable {what} response: {e}"),
    )
}

/// A document type declaration (`<!DOCTYPE`, any case). No store sends
/// one, and quick-xml's deserializer panics on one between two pieces of
/// text (`<ETag>a<!DOCTYPE x>b</ETag>`), so such a body is refused unread.
fn has_doctype(body: &str) -> bool {
    body.contains("<!D") || body.contains("<!d")
}

fn parse<'de, T: Deserialize<'de>>(what: &str, body: &'de str) -> Result<T, StoreError> {
    if has_doctype(body) {
        return Err(protocol(what, "it holds a document type declaration"));
    }
    quick_xml::de::from_str(body).map_err(|e| protocol(what, e))
}

/// `2009-10-12T17:50:30.000Z`, as used in listings.
pub fn parse_iso8601(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| protocol("timestamp", e))
}

/// `Wed, 12 Oct 2009 17:50:00 GMT`, as used in Last-Modified and Date headers.
pub fn parse_http_date(s: &str) -> Result<OffsetDateTime, StoreError> {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s.trim(), &fmt)
        .map(|t| t.assume_utc())
        .map_err(|e| protocol("date header", e))
}

/// An HTTP date (RFC 7231 IMF-fixdate), as `Expires` carries it.
pub fn format_http_date(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("formatting a UTC date cannot fail")
}

/// Escapes text for an XML element body.
pub fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// How a store encodes a listing under `encoding-type=url`, as its own
/// SDKs decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEncoding {
    /// AWS form-encodes names: a space arrives as `+`, a `+` as `%2B`
    /// (botocore decodes with `unquote_plus`). OSS's Python SDKs decode
    /// with plain `unquote`; Garage writes `%20` and `%2B`, which both
    /// rules read the same.
    pub plus_is_space: bool,
    /// OSS also encodes `NextContinuationToken` (oss2, alibabacloud-oss-v2
    /// and both Go SDKs decode it); S3 tokens are opaque and sent back as
    /// they came (Garage's contain raw `+`, `/` and `=`).
    pub token_encoded: bool,
}

impl ListEncoding {
    pub const S3: ListEncoding = ListEncoding {
        plus_is_space: true,
        token_encoded: false,
    };
    pub const OSS: ListEncoding = ListEncoding {
        plus_is_space: false,
        token_encoded: true,
    };

    /// Names are only decoded when the server says it encoded them; a
    /// server that ignored `encoding-type=url` sends them verbatim.
    fn decode_if(self, encoded: bool, what: &str, s: String) -> Result<String, StoreError> {
        if encoded {
            self.decode(what, s)
        } else {
            Ok(s)
        }
    }

    fn decode(self, what: &str, s: String) -> Result<String, StoreError> {
        let plus = if self.plus_is_space && s.contains('+') {
            s.replace('+', " ")
        } else {
            s
        };
        percent_decode_str(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|e| protocol(what, e))
    }
}

/// The fields of an `<Error>` body ferry acts on.
#[derive(Deserialize, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    #[serde(rename = "Code")]
    pub code: Option<String>,
    #[serde(rename = "Message")]
    pub message: Option<String>,
    #[serde(rename = "RequestId")]
    pub request_id: Option<String>,
    /// AWS, with AuthorizationHeaderMalformed: the region expected.
    #[serde(rename = "Region")]
    pub region: Option<String>,
    /// AWS PermanentRedirect, OSS AccessDenied: where the bucket is served.
    #[serde(rename = "Endpoint")]
    pub endpoint: Option<String>,
    #[serde(rename = "Bucket")]
    pub bucket: Option<String>,
    /// RequestTimeTooSkewed: the server's clock (AWS and OSS).
    #[serde(rename = "ServerTime")]
    pub server_time: Option<String>,
}

/// The fields of an `<Error>` body, if it is one.
pub fn parse_error_fields(body: &str) -> Option<ErrorFields> {
    if !body.contains("<Error") || has_doctype(body) {
        return None;
    }
    quick_xml::de::from_str(body).ok()
}

/// Code, message and request id of an `<Error>` body, if it is one.
pub fn parse_error(body: &str) -> Option<(Option<String>, Option<String>, Option<String>)> {
    let e = parse_error_fields(body)?;
    Some((e.code, e.message, e.request_id))
}

/// CompleteMultipartUpload and CopyObject may answer 200 with an `<Error>`
/// body; this turns that into an error.
pub fn check_embedded_error(body: &str) -> Result<(), StoreError> {
    let head = body.trim_start();
    let head = head
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>").map(|(_, rest)| rest.trim_start()))
        .unwrap_or(head);
    if head.starts_with("<Error>") || head.starts_with("<Error ") {
        if let Some((code, message, request_id)) = parse_error(body) {
            let mut e = StoreError::new(
                StoreError::classify(500, code.as_deref()),
                message.unwrap_or_default(),
            );
            e.code = code;
            e.request_id = request_id;
            return Err(e);
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct ListBucketResult {
    #[serde(rename = "Contents", default)]
    contents: Vec<Contents>,
    #[serde(rename = "CommonPrefixes", default)]
    common_prefixes: Vec<CommonPrefix>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextContinuationToken")]
    next_continuation_token: Option<String>,
    #[serde(rename = "EncodingType")]
    encoding_type: Option<String>,
}

#[derive(Deserialize)]
struct Contents {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "LastModified")]
    last_modified: String,
    #[serde(rename = "ETag", default)]
    etag: String,
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Deserialize)]
struct CommonPrefix {
    #[serde(rename = "Prefix")]
    prefix: String,
}

pub fn parse_list_objects(body: &str, enc: ListEncoding) -> Result<ListPage, StoreError> {
    let r: ListBucketResult = parse("ListObjectsV2", body)?;
    // Names are only decoded when the server says it encoded them; a
    // server that ignored `encoding-type=url` sends them verbatim.
    let encoded = r.encoding_type.as_deref() == Some("url");
    let decode_if = |what: &str, s: String| enc.decode_if(encoded, what, s);
    let mut objects = Vec::with_capacity(r.contents.len());
    for c in r.contents {
        objects.push(ListEntry {
            key: decode_if("listing key", c.key)?,
            size: c.size,
            etag: normalize_etag(&c.etag).to_string(),
            last_modified: parse_iso8601(&c.last_modified)?,
        });
    }
    let prefixes = r
        .common_prefixes
        .into_iter()
        .map(|p| decode_if("listing prefix", p.prefix))
        .collect::<Result<_, _>>()?;
    let next_token = if r.is_truncated {
        let token = r.next_continuation_token.ok_or_else(|| {
            protocol(
                "ListObjectsV2",
                "truncated listing without a continuation token",
            )
        })?;
        Some(if encoded && enc.token_encoded {
            // Percent-decoding only: a token is not a form value.
            ListEncoding::OSS.decode("continuation token", token)?
        } else {
            token
        })
    } else {
        None
    };
    Ok(ListPage {
        objects,
        prefixes,
        next_token,
    })
}

#[derive(Deserialize)]
struct ListVersionsResult {
    #[serde(rename = "Version", default)]
    versions: Vec<ListedVersion>,
    #[serde(rename = "DeleteMarker", default)]
    markers: Vec<ListedVersion>,
    #[serde(rename = "CommonPrefixes", default)]
    common_prefixes: Vec<CommonPrefix>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextVersionIdMarker")]
    next_version_marker: Option<String>,
    #[serde(rename = "EncodingType")]
    encoding_type: Option<String>,
}

/// A `<Version>` or a `<DeleteMarker>` (which has no size or ETag).
#[derive(Deserialize)]
struct ListedVersion {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId")]
    version_id: String,
    #[serde(rename = "IsLatest", default)]
    is_latest: bool,
    #[serde(rename = "LastModified")]
    last_modified: String,
    #[serde(rename = "ETag", default)]
    etag: String,
    #[serde(rename = "Size", default)]
    size: u64,
}

/// One page of ListObjectVersions. Versions and delete markers are
/// separate elements, interleaved on AWS and grouped on other servers;
/// the page is put in one order: by key, the latest first, then newest
/// first by time (ties keep the server's order).
pub fn parse_list_versions(body: &str, enc: ListEncoding) -> Result<VersionsPage, StoreError> {
    let r: ListVersionsResult = parse("ListObjectVersions", body)?;
    let encoded = r.encoding_type.as_deref() == Some("url");
    let decode_if = |what: &str, s: String| enc.decode_if(encoded, what, s);
    let mut versions = Vec::with_capacity(r.versions.len() + r.markers.len());
    let listed = r
        .versions
        .into_iter()
        .map(|v| (v, false))
        .chain(r.markers.into_iter().map(|v| (v, true)));
    for (v, delete_marker) in listed {
        versions.push(VersionEntry {
            key: decode_if("listing key", v.key)?,
            version_id: v.version_id,
            is_latest: v.is_latest,
            delete_marker,
            size: v.size,
            etag: normalize_etag(&v.etag).to_string(),
            last_modified: parse_iso8601(&v.last_modified)?,
        });
    }
    versions.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then(b.is_latest.cmp(&a.is_latest))
            .then(b.last_modified.cmp(&a.last_modified))
    });
    let prefixes = r
        .common_prefixes
        .into_iter()
        .map(|p| decode_if("listing prefix", p.prefix))
        .collect::<Result<_, _>>()?;
    let next = if r.is_truncated {
        let key = r.next_key_marker.ok_or_else(|| {
            protocol(
                "ListObjectVersions",
                "truncated listing without a next key marker",
            )
        })?;
        Some((
            decode_if("next key marker", key)?,
            r.next_version_marker.unwrap_or_default(),
        ))
    } else {
        None
    };
    Ok(VersionsPage {
        versions,
        prefixes,
        next,
    })
}

#[derive(Deserialize)]
struct ListPartsResult {
    #[serde(rename = "Part", default)]
    parts: Vec<Part>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextPartNumberMarker")]
    next_marker: Option<u32>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "PartNumber")]
    part_number: u32,
    #[serde(rename = "ETag", default)]
    etag: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "ChecksumCRC64NVME")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC32")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    sha256: Option<String>,
    #[serde(rename = "ChecksumType")]
    checksum_type: Option<String>,
}

/// The `Checksum*` elements S3 puts beside an ETag (ListParts parts,
/// CompleteMultipartUpload and CopyObject results); written out in each
/// struct because serde's `flatten` would make every sibling a string.
macro_rules! stored_checksum {
    ($r:expr) => {
        stored_of(
            [
                (Algorithm::Sha256, &$r.sha256),
                (Algorithm::Crc64Nvme, &$r.crc64nvme),
                (Algorithm::Sha1, &$r.sha1),
                (Algorithm::Crc32c, &$r.crc32c),
                (Algorithm::Crc32, &$r.crc32),
            ],
            $r.checksum_type.as_deref(),
        )
    };
}

/// The strongest value present, with its `-N` and type as given.
fn stored_of(
    values: [(Algorithm, &Option<String>); 5],
    kind: Option<&str>,
) -> Option<StoredChecksum> {
    values
        .into_iter()
        .find_map(|(a, v)| StoredChecksum::parse(a, v.as_deref()?, kind))
}

pub fn parse_list_parts(body: &str) -> Result<ListPartsPage, StoreError> {
    let r: ListPartsResult = parse("ListParts", body)?;
    let parts = r
        .parts
        .into_iter()
        .map(|p| {
            let etag = normalize_etag(&p.etag).to_string();
            PartInfo {
                part_number: p.part_number,
                // A listing carries no encryption headers, so only the
                // form: resume reuses a part whose ETag equals the MD5 it
                // computed, and never fails one on this.
                etag_kind: super::EtagKind::from_form(&etag),
                etag,
                size: p.size,
                checksum: stored_checksum!(p).map(|s| s.checksum),
            }
        })
        .collect::<Vec<_>>();
    let next_marker = if r.is_truncated {
        // Some servers omit the marker; the last listed part number serves.
        r.next_marker.or(parts.last().map(|p| p.part_number))
    } else {
        None
    };
    Ok(ListPartsPage { parts, next_marker })
}

#[derive(Deserialize)]
struct InitiateResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

pub fn parse_initiate(body: &str) -> Result<String, StoreError> {
    let r: InitiateResult = parse("CreateMultipartUpload", body)?;
    Ok(r.upload_id)
}

#[derive(Deserialize)]
struct EtagResult {
    #[serde(rename = "ETag", default)]
    etag: String,
    #[serde(rename = "ChecksumCRC64NVME")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC32")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    sha256: Option<String>,
    #[serde(rename = "ChecksumType")]
    checksum_type: Option<String>,
}

/// The ETag of a CompleteMultipartUpload or CopyObject result, and the
/// flexible checksum it reports.
pub fn parse_etag_result(
    what: &str,
    body: &str,
) -> Result<(String, Option<StoredChecksum>), StoreError> {
    check_embedded_error(body)?;
    let r: EtagResult = parse(what, body)?;
    let stored = stored_checksum!(r);
    Ok((normalize_etag(&r.etag).to_string(), stored))
}

#[derive(Deserialize)]
struct ListUploadsResult {
    #[serde(rename = "Upload", default)]
    uploads: Vec<Upload>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
struct Upload {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated")]
    initiated: String,
}

pub fn parse_list_uploads(body: &str) -> Result<ListUploadsPage, StoreError> {
    let r: ListUploadsResult = parse("ListMultipartUploads", body)?;
    let mut uploads = Vec::with_capacity(r.uploads.len());
    for u in r.uploads {
        uploads.push(MultipartUpload {
            key: u.key,
            upload_id: u.upload_id,
            initiated: parse_iso8601(&u.initiated)?,
        });
    }
    let next = if r.is_truncated {
        Some((
            r.next_key_marker.unwrap_or_default(),
            r.next_upload_id_marker.unwrap_or_default(),
        ))
    } else {
        None
    };
    Ok(ListUploadsPage { uploads, next })
}

#[derive(Deserialize)]
struct DeleteResult {
    #[serde(rename = "Error", default)]
    errors: Vec<DeleteError>,
}

#[derive(Deserialize)]
struct DeleteError {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

pub fn parse_delete_result(body: &str) -> Result<Vec<DeleteFailure>, StoreError> {
    let r: DeleteResult = parse("DeleteObjects", body)?;
    Ok(r.errors
        .into_iter()
        .map(|e| DeleteFailure {
            key: e.key,
            code: e.code,
            message: e.message,
        })
        .collect())
}

pub fn complete_body(parts: &[super::CompletedPart]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for p in parts {
        let checksum = match &p.checksum {
            Some(c) => format!(
                "<{e}>{}</{e}>",
                c.to_base64(),
                e = c.algorithm.xml_element()
            ),
            None => String::new(),
        };
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>\"{}\"</ETag>{checksum}</Part>",
            p.part_number,
            escape(&p.etag)
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

pub fn delete_versions_body(versions: &[super::VersionRef]) -> String {
    let mut s = String::from("<Delete><Quiet>true</Quiet>");
    for v in versions {
        s.push_str(&format!(
            "<Object><Key>{}</Key><VersionId>{}</VersionId></Object>",
            escape(&v.key),
            escape(&v.version_id)
        ));
    }
    s.push_str("</Delete>");
    s
}

pub fn delete_body(keys: &[String]) -> String {
    let mut s = String::from("<Delete><Quiet>true</Quiet>");
    for k in keys {
        s.push_str(&format!("<Object><Key>{}</Key></Object>", escape(k)));
    }
    s.push_str("</Delete>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listing_with_prefixes_and_url_encoding() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>b</Name><Prefix>a%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>
<Contents><Key>a/x%20y</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>"abc"</ETag><Size>5</Size></Contents>
<CommonPrefixes><Prefix>a/d%2B/</Prefix></CommonPrefixes>
<Contents><Key>a/z</Key><LastModified>2024-01-02T03:04:05Z</LastModified><ETag>&quot;def&quot;</ETag><Size>0</Size></Contents>
<NextContinuationToken>tok</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list_objects(body, ListEncoding::S3).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "a/x y");
        assert_eq!(page.objects[0].etag, "abc");
        assert_eq!(page.objects[1].etag, "def");
        assert_eq!(page.prefixes, vec!["a/d+/".to_string()]);
        assert_eq!(page.next_token.as_deref(), Some("tok"));
    }

    #[test]
    fn each_store_decodes_as_its_sdk_does() {
        let body = |key: &str, token: &str| {
            format!(
                "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>\
<Contents><Key>{key}</Key><LastModified>2024-01-02T03:04:05Z</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>\
<CommonPrefixes><Prefix>My+Docs%2F</Prefix></CommonPrefixes>\
<NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>"
            )
        };
        // AWS: `+` is a space, `%2B` a plus; the token is opaque.
        let aws = parse_list_objects(&body("a+b%2Bc%C3%A9", "1+/x="), ListEncoding::S3).unwrap();
        assert_eq!(aws.objects[0].key, "a b+cé");
        assert_eq!(aws.prefixes, ["My Docs/"]);
        assert_eq!(aws.next_token.as_deref(), Some("1+/x="));
        // OSS: plain percent-decoding, token decoded too.
        let oss =
            parse_list_objects(&body("a%20b%2Bc", "CgJi%2BYw%2F%3D"), ListEncoding::OSS).unwrap();
        assert_eq!(oss.objects[0].key, "a b+c");
        assert_eq!(oss.prefixes, ["My+Docs/"]);
        assert_eq!(oss.next_token.as_deref(), Some("CgJi+Yw/="));
    }

    #[test]
    fn verbatim_keys_when_server_did_not_encode() {
        let body = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>100%25</Key>\
<LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents></ListBucketResult>";
        let page = parse_list_objects(body, ListEncoding::S3).unwrap();
        assert_eq!(page.objects[0].key, "100%25");
        assert!(page.next_token.is_none());
    }

    #[test]
    fn parses_list_parts_pages() {
        let body = "<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>\
<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag><Size>5242880</Size></Part>\
<Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag><Size>7</Size></Part></ListPartsResult>";
        let page = parse_list_parts(body).unwrap();
        assert_eq!(page.parts.len(), 2);
        assert_eq!(page.parts[1].size, 7);
        assert_eq!(page.next_marker, Some(2));
    }

    #[test]
    fn error_inside_200_is_an_error() {
        let body = "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>boom</Message><RequestId>r1</RequestId></Error>";
        let err = parse_etag_result("CompleteMultipartUpload", body).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("InternalError"));
        assert!(err.is_retryable());
        assert_eq!(
            parse_etag_result(
                "CopyObject",
                "<CopyObjectResult><ETag>\"x\"</ETag></CopyObjectResult>"
            )
            .unwrap()
            .0,
            "x"
        );
    }

    #[test]
    fn a_doctype_inside_text_is_an_error_not_a_panic() {
        let body = "<InitiateMultipartUploadResult><UploadId>a<!DOCTYPE x>b</UploadId></InitiateMultipartUploadResult>";
        let err = parse_initiate(body).unwrap_err();
        assert!(err.to_string().contains("document type"), "{err}");
        let body = "<Error><Code>a<!doctype x>b</Code></Error>";
        assert_eq!(parse_error(body), None);
        assert!(parse_etag_result("CopyObject", body).is_err());
    }

    #[test]
    fn http_dates_round_trip() {
        let t = parse_http_date("Mon, 12 Oct 2009 17:50:00 GMT").unwrap();
        assert_eq!(format_http_date(t), "Mon, 12 Oct 2009 17:50:00 GMT");
    }

    #[test]
    fn bodies_escape_keys() {
        assert_eq!(
            delete_body(&["a&b<".into()]),
            "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b&lt;</Key></Object></Delete>"
        );
    }
}
