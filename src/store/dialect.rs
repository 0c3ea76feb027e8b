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

    pub fn storage_class_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-storage-class",
            Dialect::Oss => "x-oss-storage-class",
        }
    }

    pub fn acl_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-acl",
            Dialect::Oss => "x-oss-object-acl",
        }
    }

    pub fn tagging_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-tagging",
            Dialect::Oss => "x-oss-tagging",
        }
    }

    /// Server-side encryption: the header, and the values for AES256 and
    /// KMS; then the header naming a KMS key.
    pub fn encryption_headers(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Dialect::S3 => (
                "x-amz-server-side-encryption",
                "AES256",
                "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id",
            ),
            Dialect::Oss => (
                "x-oss-server-side-encryption",
                "AES256",
                "KMS",
                "x-oss-server-side-encryption-key-id",
            ),
        }
    }

    /// The storage classes the store documents, in its spelling.
    pub fn storage_classes(self) -> &'static [&'static str] {
        match self {
            Dialect::S3 => &[
                "STANDARD",
                "REDUCED_REDUNDANCY",
                "STANDARD_IA",
                "ONEZONE_IA",
                "INTELLIGENT_TIERING",
                "GLACIER",
                "DEEP_ARCHIVE",
                "GLACIER_IR",
                "OUTPOSTS",
                "SNOW",
                "EXPRESS_ONEZONE",
            ],
            Dialect::Oss => &[
                "Standard",
                "IA",
                "Archive",
                "ColdArchive",
                "DeepColdArchive",
            ],
        }
    }

    /// The canned ACLs the store documents for objects.
    pub fn canned_acls(self) -> &'static [&'static str] {
        match self {
            Dialect::S3 => &[
                "private",
                "public-read",
                "public-read-write",
                "authenticated-read",
                "aws-exec-read",
                "bucket-owner-read",
                "bucket-owner-full-control",
            ],
            Dialect::Oss => &["default", "private", "public-read", "public-read-write"],
        }
    }

    /// The header naming the version an answer is about.
    pub fn version_id_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-version-id",
            Dialect::Oss => "x-oss-version-id",
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

    /// The byte range of an UploadPartCopy.
    pub fn copy_source_range_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-copy-source-range",
            Dialect::Oss => "x-oss-copy-source-range",
        }
    }

    /// Makes a copy fail (412) if the source is no longer this version.
    pub fn copy_source_if_match_header(self) -> &'static str {
        match self {
            Dialect::S3 => "x-amz-copy-source-if-match",
            Dialect::Oss => "x-oss-copy-source-if-match",
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

    /// Where a bodiless error answer (HEAD) carries its error XML: OSS
    /// repeats it base64-encoded in `x-oss-err`; S3 sends nothing.
    pub fn error_header(self) -> Option<&'static str> {
        match self {
            Dialect::S3 => None,
            Dialect::Oss => Some("x-oss-err"),
        }
    }

    /// Longest key in bytes: S3 takes 1024, OSS 1023.
    pub fn max_key_len(self) -> usize {
        match self {
            Dialect::S3 => 1024,
            Dialect::Oss => 1023,
        }
    }

    /// Largest object one CopyObject may copy: 5 GiB on S3, 1 GiB on OSS.
    /// Larger ones need a multipart copy.
    pub fn max_single_copy(self) -> u64 {
        match self {
            Dialect::S3 => 5 << 30,
            Dialect::Oss => 1 << 30,
        }
    }

    /// A key the dialect cannot name is refused before anything is sent,
    /// naming the key, so that one item fails and the others go on.
    pub fn check_key(self, key: &str) -> Result<(), super::StoreError> {
        let max = self.max_key_len();
        if !key.is_empty() && key.len() <= max {
            return Ok(());
        }
        let why = if key.is_empty() {
            "an object key cannot be empty".to_string()
        } else {
            format!(
                "the key is {} bytes; {} allows at most {max}",
                key.len(),
                self.name()
            )
        };
        Err(
            super::StoreError::new(super::StoreErrorKind::Rejected, why).with_detail(
                super::error::Detail::InvalidKey {
                    len: key.len(),
                    max,
                },
            ),
        )
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
