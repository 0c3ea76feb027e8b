//! Where data lives: a local path or an object URL (`s3://bucket/key`,
//! `oss://bucket/key`). Parsing validates early so that a typo is reported
//! before any network traffic.

use std::fmt;
use std::path::PathBuf;

use crate::store::dialect::Dialect;

/// S3 and OSS both cap keys at 1024 bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Remote(RemoteUrl),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    pub dialect: Dialect,
    pub bucket: String,
    /// May be empty (the bucket root) or end with `/` (a "directory").
    pub key: String,
}

impl RemoteUrl {
    pub fn with_key(&self, key: impl Into<String>) -> RemoteUrl {
        RemoteUrl {
            dialect: self.dialect,
            bucket: self.bucket.clone(),
            key: key.into(),
        }
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.dialect.name(), self.bucket, self.key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("{0}: a URL must be valid UTF-8")]
    NotText(String),
    #[error("{url}: unsupported scheme '{scheme}' (use s3://, oss:// or a local path)")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("{url}: the bucket name is missing (expected {scheme}://BUCKET/KEY)")]
    EmptyBucket { url: String, scheme: String },
    #[error("{url}: invalid bucket name '{bucket}': {reason}")]
    BadBucket {
        url: String,
        bucket: String,
        reason: &'static str,
    },
    #[error("{url}: the key is {len} bytes long; the limit is {MAX_KEY_LEN}")]
    KeyTooLong { url: String, len: usize },
    #[error("{url}: the key contains a control character")]
    KeyControlChar { url: String },
    #[error("{url}: keys with '.' or '..' path segments are not supported (HTTP clients and servers rewrite them)")]
    KeyDotSegment { url: String },
    #[error("empty path")]
    Empty,
}

impl Location {
    /// As [`Location::parse`], for a command-line argument: a local path may
    /// be any bytes (Unix names need not be UTF-8); a URL must be text.
    pub fn parse_os(s: &std::ffi::OsStr) -> Result<Location, LocationError> {
        match s.to_str() {
            Some(text) => Location::parse(text),
            None if s.as_encoded_bytes().windows(3).any(|w| w == b"://") => {
                Err(LocationError::NotText(s.to_string_lossy().into_owned()))
            }
            None => Ok(Location::Local(PathBuf::from(s))),
        }
    }

    pub fn parse(s: &str) -> Result<Location, LocationError> {
        if s.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let dialect = match scheme.to_ascii_lowercase().as_str() {
            "s3" => Dialect::S3,
            "oss" => Dialect::Oss,
            // A Windows-style or odd local name never contains "://"; anything
            // that does is a URL we do not speak.
            _ => {
                return Err(LocationError::UnsupportedScheme {
                    url: s.to_string(),
                    scheme: scheme.to_string(),
                })
            }
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LocationError::EmptyBucket {
                url: s.to_string(),
                scheme: dialect.name().to_string(),
            });
        }
        validate_bucket(bucket).map_err(|reason| LocationError::BadBucket {
            url: s.to_string(),
            bucket: bucket.to_string(),
            reason,
        })?;
        validate_key(key).map_err(|e| match e {
            KeyProblem::TooLong(len) => LocationError::KeyTooLong {
                url: s.to_string(),
                len,
            },
            KeyProblem::Control => LocationError::KeyControlChar { url: s.to_string() },
            KeyProblem::DotSegment => LocationError::KeyDotSegment { url: s.to_string() },
        })?;
        Ok(Location::Remote(RemoteUrl {
            dialect,
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }

    pub fn as_remote(&self) -> Option<&RemoteUrl> {
        match self {
            Location::Remote(r) => Some(r),
            Location::Local(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(r) => r.fmt(f),
        }
    }
}

/// The rules S3 and OSS share for new buckets: 3-63 characters of
/// lower-case letters, digits, `-` and `.`, starting and ending with a
/// letter or digit.
pub fn validate_bucket(b: &str) -> Result<(), &'static str> {
    if b.len() < 3 || b.len() > 63 {
        return Err("must be 3 to 63 characters long");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
    {
        return Err("only lower-case letters, digits, '-' and '.' are allowed");
    }
    let first = b.as_bytes()[0];
    let last = b.as_bytes()[b.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("must start and end with a letter or digit");
    }
    if b.contains("..") {
        return Err("must not contain '..'");
    }
    Ok(())
}

pub enum KeyProblem {
    TooLong(usize),
    Control,
    DotSegment,
}

pub fn validate_key(k: &str) -> Result<(), KeyProblem> {
    if k.len() > MAX_KEY_LEN {
        return Err(KeyProblem::TooLong(k.len()));
    }
    if k.chars().any(|c| c.is_control()) {
        return Err(KeyProblem::Control);
    }
    if k.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(KeyProblem::DotSegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> RemoteUrl {
        match Location::parse(s).unwrap() {
            Location::Remote(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_remote_and_local() {
        let r = remote("s3://my-bucket/a/b c.txt");
        assert_eq!(
            (r.dialect, r.bucket.as_str(), r.key.as_str()),
            (Dialect::S3, "my-bucket", "a/b c.txt")
        );
        let r = remote("oss://bkt");
        assert_eq!((r.dialect, r.key.as_str()), (Dialect::Oss, ""));
        assert_eq!(remote("OSS://bkt/dir/").key, "dir/");
        assert_eq!(
            Location::parse("./x/y").unwrap(),
            Location::Local(PathBuf::from("./x/y"))
        );
        assert_eq!(remote("s3://b.c-d/k").to_string(), "s3://b.c-d/k");
    }

    #[test]
    fn rejects_bad_urls_with_clear_messages() {
        let cases = [
            ("http://x/y", "unsupported scheme 'http'"),
            ("s3:///key", "bucket name is missing"),
            ("s3://", "bucket name is missing"),
            ("s3://My_Bucket/k", "only lower-case letters"),
            ("s3://ab/k", "3 to 63"),
            ("s3://-abc/k", "start and end"),
            ("s3://a..b/k", "'..'"),
            ("oss://bkt/a\nb", "control character"),
            ("s3://bkt/a/../b", "'..' path segments"),
        ];
        for (url, expect) in cases {
            let msg = Location::parse(url).unwrap_err().to_string();
            assert!(msg.contains(expect), "{url}: {msg}");
        }
        let long = format!("s3://bkt/{}", "k".repeat(1025));
        assert!(Location::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("1025 bytes"));
        assert!(Location::parse(&format!("s3://bkt/{}", "k".repeat(1024))).is_ok());
        assert_eq!(Location::parse(""), Err(LocationError::Empty));
    }
}
