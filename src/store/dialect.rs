//! What differs between S3 and OSS on the wire, beyond signing: header
//! prefixes, metadata, copy headers and checksums. Everything else (paths,
//! query parameters, XML bodies) is shared, which is why one HTTP client
//! serves both.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    S3,
    Oss,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::S3 => "s3",
            Dialect::Oss => "oss",
        }
    }

    /// How listings under `encoding-type=url` are to be decoded.
    pub fn list_encoding(self) -> super::xml::ListEncoding {
        match self {
            Dialect::S3 => super::xml::ListEncoding::S3,
            Dialect::Oss => super::xml::ListEncoding::OSS,
        }
    }

    /// Prefix of the vendor headers: `x-amz-` or `x-oss-`.
    pub fn header_prefix(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-",
            Dialect::Oss => "x-oss-",
        }
    }

    pub fn meta_prefix(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-meta-",
            Dialect::Oss => "x-oss-meta-",
        }
    }

    pub fn copy_source_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-copy-source",
            Dialect::Oss => "x-oss-copy-source",
        }
    }

    pub fn metadata_directive_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-metadata-directive",
            Dialect::Oss => "x-oss-metadata-directive",
        }
    }

    pub fn request_id_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-request-id",
            Dialect::Oss => "x-oss-request-id",
        }
    }

    /// OSS reports the whole object's CRC-64/XZ; S3 has no equivalent header.
    pub fn crc64_header(self) -> Option<&'static str> {
        match self {
            Dialect::S3 => None,
            Dialect::Oss => Some("x-oss-hash-crc64ecma"),
        }
    }
}

/// How a bucket is named in a request URL; chosen per endpoint, the same
/// for both dialects.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// `http://endpoint/bucket/key`: what local servers and IP endpoints need.
    Path,
    /// `https://bucket.endpoint/key`: what AWS and OSS prefer.
    Virtual,
}
