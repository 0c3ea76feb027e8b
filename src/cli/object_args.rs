//! Pure: the object options of the command line, checked against the
//! store's dialect before anything is sent. A misspelt storage class or
//! ACL is a usage error naming what the store accepts, not a 400 after
//! the first file.

use super::args::ObjectArgs;
use crate::mtime::MTIME_KEY;
use crate::store::dialect::Dialect;
use crate::store::{Encryption, Metadata, ObjectOptions};
use crate::transfer::ContentType;

/// What uploads carry, from the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub content_type: ContentType,
    pub metadata: Metadata,
    pub object: ObjectOptions,
}

pub fn resolve(a: &ObjectArgs, dialect: Dialect) -> Result<Resolved, String> {
    let content_type = match (&a.content_type, a.no_guess_mime_type) {
        (Some(t), _) => ContentType::Fixed(header_value("--content-type", t)?),
        (None, true) => ContentType::None,
        (None, false) => ContentType::Guess,
    };
    let storage_class = a
        .storage_class
        .as_deref()
        .map(|c| one_of("--storage-class", c, dialect.storage_classes(), dialect))
        .transpose()?;
    let acl = a
        .acl
        .as_deref()
        .map(|c| one_of("--acl", c, dialect.canned_acls(), dialect))
        .transpose()?;
    let encryption = match a.sse.as_deref() {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("AES256") => {
            if a.sse_kms_key_id.is_some() {
                return Err("--sse-kms-key-id goes with --sse aws:kms, not AES256".into());
            }
            Some(Encryption::Aes256)
        }
        Some(s) if s.eq_ignore_ascii_case("aws:kms") || s.eq_ignore_ascii_case("kms") => {
            Some(Encryption::Kms {
                key_id: a
                    .sse_kms_key_id
                    .as_deref()
                    .map(|k| header_value("--sse-kms-key-id", k))
                    .transpose()?,
            })
        }
        Some(s) => {
            return Err(format!(
                "--sse {s}: use AES256 or aws:kms (KMS on OSS); customer keys are --sse-c-key-file"
            ))
        }
    };
    let mut metadata = Metadata::new();
    for m in &a.metadata {
        let (k, v) = pair("--metadata", m)?;
        let k = k.to_ascii_lowercase();
        if !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!(
                "--metadata {m}: a key is letters, digits, '-', '_' and '.' (it becomes a header name)"
            ));
        }
        if k == MTIME_KEY {
            return Err(format!(
                "--metadata {m}: '{MTIME_KEY}' is the file's modification time, which ferry sets"
            ));
        }
        metadata.insert(k, header_value("--metadata", v)?);
    }
    let expires = a
        .expires
        .as_deref()
        .map(|e| {
            crate::store::xml::parse_http_date(e)
                .or_else(|_| crate::store::xml::parse_iso8601(e))
                .map(crate::store::xml::format_http_date)
                .map_err(|_| {
                    format!("--expires {e}: give an HTTP date or RFC 3339 (2027-01-01T00:00:00Z)")
                })
        })
        .transpose()?;
    let tagging = if a.tag.is_empty() {
        None
    } else {
        let mut parts = Vec::new();
        for t in &a.tag {
            let (k, v) = pair("--tag", t)?;
            parts.push(format!("{}={}", form(k), form(v)));
        }
        Some(parts.join("&"))
    };
    let plain =
        |flag: &str, v: &Option<String>| v.as_deref().map(|s| header_value(flag, s)).transpose();
    Ok(Resolved {
        content_type,
        metadata,
        object: ObjectOptions {
            storage_class,
            encryption,
            acl,
            cache_control: plain("--cache-control", &a.cache_control)?,
            content_disposition: plain("--content-disposition", &a.content_disposition)?,
            content_encoding: plain("--content-encoding", &a.content_encoding)?,
            expires,
            tagging,
        },
    })
}

/// One of the store's names, matched without regard to case and given
/// back in the store's spelling.
fn one_of(flag: &str, v: &str, names: &[&str], dialect: Dialect) -> Result<String, String> {
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(v))
        .map(|n| n.to_string())
        .ok_or_else(|| {
            format!(
                "{flag} {v}: {} accepts {}",
                dialect.name(),
                names.join(", ")
            )
        })
}

fn pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(format!("{flag} {s}: write KEY=VALUE")),
    }
}

/// A value that can travel in a header: visible ASCII and spaces (S3
/// documents user metadata as US-ASCII; a line break would end the
/// header).
fn header_value(flag: &str, v: &str) -> Result<String, String> {
    if v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{flag}: {:?} holds characters a header cannot carry (use ASCII)",
            v
        ))
    }
}

/// `application/x-www-form-urlencoded`, as S3 and OSS read `x-*-tagging`.
fn form(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ObjectArgs {
        ObjectArgs::default()
    }

    #[test]
    fn names_are_checked_against_the_dialect_and_spelt_its_way() {
        let a = ObjectArgs {
            storage_class: Some("standard_ia".into()),
            acl: Some("BUCKET-OWNER-FULL-CONTROL".into()),
            ..args()
        };
        let r = resolve(&a, Dialect::S3).unwrap();
        assert_eq!(r.object.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(r.object.acl.as_deref(), Some("bucket-owner-full-control"));
        let e = resolve(&a, Dialect::Oss).unwrap_err();
        assert!(e.contains("oss accepts Standard, IA"), "{e}");
        let oss = ObjectArgs {
            storage_class: Some("coldarchive".into()),
            ..args()
        };
        assert_eq!(
            resolve(&oss, Dialect::Oss)
                .unwrap()
                .object
                .storage_class
                .as_deref(),
            Some("ColdArchive")
        );
    }

    #[test]
    fn encryption_metadata_tags_and_dates() {
        let a = ObjectArgs {
            sse: Some("aws:kms".into()),
            sse_kms_key_id: Some("alias/backup".into()),
            metadata: vec!["Owner=ops team".into(), "x=1=2".into()],
            tag: vec!["project=a b".into(), "k&=v/1".into()],
            expires: Some("2027-01-01T00:00:00Z".into()),
            no_guess_mime_type: true,
            ..args()
        };
        let r = resolve(&a, Dialect::S3).unwrap();
        assert_eq!(
            r.object.encryption,
            Some(Encryption::Kms {
                key_id: Some("alias/backup".into())
            })
        );
        assert_eq!(
            r.metadata.get("owner").map(String::as_str),
            Some("ops team")
        );
        assert_eq!(r.metadata.get("x").map(String::as_str), Some("1=2"));
        assert_eq!(
            r.object.tagging.as_deref(),
            Some("project=a%20b&k%26=v%2F1")
        );
        assert_eq!(
            r.object.expires.as_deref(),
            Some("Fri, 01 Jan 2027 00:00:00 GMT")
        );
        assert_eq!(r.content_type, ContentType::None);
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        let cases = [
            ObjectArgs {
                sse: Some("rot13".into()),
                ..args()
            },
            ObjectArgs {
                sse: Some("AES256".into()),
                sse_kms_key_id: Some("k".into()),
                ..args()
            },
            ObjectArgs {
                metadata: vec!["mtime=1".into()],
                ..args()
            },
            ObjectArgs {
                metadata: vec!["bad key=1".into()],
                ..args()
            },
            ObjectArgs {
                metadata: vec!["k=line\nbreak".into()],
                ..args()
            },
            ObjectArgs {
                tag: vec!["=v".into()],
                ..args()
            },
            ObjectArgs {
                expires: Some("tomorrow".into()),
                ..args()
            },
            ObjectArgs {
                cache_control: Some("max-age=1\r\nx-amz-acl: public-read".into()),
                ..args()
            },
        ];
        for a in cases {
            let e = resolve(&a, Dialect::S3).unwrap_err();
            assert!(e.starts_with("--"), "{e}");
        }
    }
}
