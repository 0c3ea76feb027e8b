//! Which whole-object check a download makes, and the digests that make it.
//!
//! The strongest the object allows, decided from its HEAD (or GET)
//! headers alone:
//!
//! | the object carries | check |
//! |---|---|
//! | a FULL_OBJECT CRC (CRC-64/NVME, CRC-32C, CRC-32) | per-range CRCs combined, compared with it |
//! | OSS's `x-oss-hash-crc64ecma` | the same with CRC-64/ECMA |
//! | a FULL_OBJECT SHA-1 / SHA-256 | the file hashed in order |
//! | a COMPOSITE checksum (`-N`) | each part's digest from its range (bounds from `HEAD ?partNumber`), then the digest of the digests |
//! | an ETag that is an MD5 (single part, no SSE-KMS / SSE-C) | MD5, on a single GET |
//! | nothing else | size |

use std::fs::File;

use crate::checksum::flexible::{composite_of, Hasher};
use crate::checksum::{Algorithm, Checksum, ChecksumType};
pub use crate::checksum::{Crc, CrcKind};
use crate::store::ObjectMeta;

/// The check one download makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A CRC of the whole object; ranges are hashed as they arrive and
    /// their CRCs combined.
    Crc { kind: CrcKind, expected: u64 },
    /// A SHA of the whole object: hashed in order.
    Sha { expected: Checksum },
    /// S3's COMPOSITE form: the digest of the `parts` parts' digests.
    Composite { expected: Checksum, parts: u32 },
    /// The MD5 a single-part ETag is; made on a single GET only.
    Md5 { etag: String },
    /// Nothing to check but the length.
    Size,
}

impl Check {
    /// The strongest check `meta` allows. `whole_get`: the object arrives
    /// in one GET, so an MD5 ETag can be checked in stream.
    pub fn choose(meta: &ObjectMeta, whole_get: bool) -> Check {
        if let Some(s) = &meta.checksum {
            let crc = CrcKind::of(s.checksum.algorithm).zip(s.checksum.crc_value());
            match (s.kind, crc) {
                (ChecksumType::FullObject, Some((kind, expected))) => {
                    return Check::Crc { kind, expected }
                }
                (ChecksumType::FullObject, None) => {
                    return Check::Sha {
                        expected: s.checksum.clone(),
                    }
                }
                (ChecksumType::Composite { parts }, _) => {
                    return Check::Composite {
                        expected: s.checksum.clone(),
                        parts,
                    }
                }
            }
        }
        if let Some(c) = meta.crc64 {
            return Check::Crc {
                kind: CrcKind::Crc64Ecma,
                expected: c,
            };
        }
        if whole_get && meta.etag_is_md5() {
            return Check::Md5 {
                etag: meta.etag.clone(),
            };
        }
        Check::Size
    }

    /// For `--debug`, `stat` and messages.
    pub fn describe(&self) -> String {
        match self {
            Check::Crc { kind, .. } => format!("{} of the whole object", kind.name()),
            Check::Sha { expected } => format!("{} of the whole object", expected.algorithm),
            Check::Composite { expected, parts } => {
                format!("{} of each of {parts} parts", expected.algorithm)
            }
            Check::Md5 { .. } => "MD5 (the ETag)".into(),
            Check::Size => "size only".into(),
        }
    }

    /// The CRC each range is hashed with as it arrives.
    pub fn range_crc(&self) -> Option<CrcKind> {
        match self {
            Check::Crc { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the finished temporary is read back before it is published
    /// (what cannot be hashed range by range).
    pub fn reads_back(&self, whole_get: bool) -> bool {
        match self {
            Check::Composite { .. } => true,
            Check::Sha { .. } => !whole_get,
            _ => false,
        }
    }
}

/// The digest a check takes of bytes arriving in order (one GET): the
/// MD5 an ETag is, the CRC, or the SHA; none for size or a composite
/// checksum (read back from the file instead).
pub struct InStream(Option<Running>);

enum Running {
    Md5(md5::Md5),
    Crc(Crc),
    Sha(Hasher),
}

impl InStream {
    pub fn new(check: &Check) -> InStream {
        use md5::Digest as _;
        InStream(match check {
            Check::Md5 { .. } => Some(Running::Md5(md5::Md5::new())),
            Check::Crc { kind, .. } => Some(Running::Crc(Crc::new(*kind))),
            Check::Sha { expected } => Some(Running::Sha(Hasher::new(expected.algorithm))),
            Check::Composite { .. } | Check::Size => None,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        use md5::Digest as _;
        match &mut self.0 {
            Some(Running::Md5(h)) => h.update(data),
            Some(Running::Crc(c)) => c.update(data),
            Some(Running::Sha(h)) => h.update(data),
            None => {}
        }
    }

    /// What the bytes fed must match; the mismatch worded for the user.
    pub fn verdict(self, what: &str, check: &Check) -> Result<(), String> {
        self.verdict_then(what, check, "nothing was kept")
    }

    /// As [`InStream::verdict`], saying what became of the data.
    pub fn verdict_then(self, what: &str, check: &Check, then: &str) -> Result<(), String> {
        use md5::Digest as _;
        let mismatch = |what: &str, check: &Check, got: &str, want: &str| {
            mismatch_then(what, check, got, want, then)
        };
        let crc_verdict = |what: &str, check: &Check, got: u64, expected: u64| {
            crc_verdict_then(what, check, got, expected, then)
        };
        let digest_verdict = |what: &str, check: &Check, got: &Checksum, expected: &Checksum| {
            digest_verdict_then(what, check, got, expected, then)
        };
        match (self.0, check) {
            (Some(Running::Md5(h)), Check::Md5 { etag }) => {
                let got = hex::encode(h.finalize());
                if got.eq_ignore_ascii_case(etag) {
                    Ok(())
                } else {
                    Err(mismatch(what, check, &got, etag))
                }
            }
            (Some(Running::Crc(c)), Check::Crc { expected, .. }) => {
                crc_verdict(what, check, c.finish(), *expected)
            }
            (Some(Running::Sha(h)), Check::Sha { expected }) => {
                digest_verdict(what, check, &h.finish(), expected)
            }
            _ => Ok(()),
        }
    }
}

/// A combined CRC against the stored one, values shown as the store
/// writes them.
pub fn crc_verdict(what: &str, check: &Check, got: u64, expected: u64) -> Result<(), String> {
    crc_verdict_then(what, check, got, expected, "nothing was kept")
}

fn crc_verdict_then(
    what: &str,
    check: &Check,
    got: u64,
    expected: u64,
    then: &str,
) -> Result<(), String> {
    if got == expected {
        return Ok(());
    }
    let (got, want) = match check {
        Check::Crc { kind, .. } => (kind.show(got), kind.show(expected)),
        _ => (got.to_string(), expected.to_string()),
    };
    Err(mismatch_then(what, check, &got, &want, then))
}

/// A digest against the stored one.
pub fn digest_verdict(
    what: &str,
    check: &Check,
    got: &Checksum,
    expected: &Checksum,
) -> Result<(), String> {
    digest_verdict_then(what, check, got, expected, "nothing was kept")
}

fn digest_verdict_then(
    what: &str,
    check: &Check,
    got: &Checksum,
    expected: &Checksum,
    then: &str,
) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(mismatch_then(
            what,
            check,
            &got.to_base64(),
            &expected.to_base64(),
            then,
        ))
    }
}

/// A mismatch, worded for the user.
pub fn mismatch(what: &str, check: &Check, got: &str, want: &str) -> String {
    mismatch_then(what, check, got, want, "nothing was kept")
}

fn mismatch_then(what: &str, check: &Check, got: &str, want: &str, then: &str) -> String {
    format!(
        "{what}: downloaded data has {} {got}, the store says {want}; {then}",
        check_name(check)
    )
}

fn check_name(check: &Check) -> String {
    match check {
        Check::Crc { kind, .. } => kind.name().to_string(),
        Check::Sha { expected } | Check::Composite { expected, .. } => {
            expected.algorithm.to_string()
        }
        Check::Md5 { .. } => "MD5".into(),
        Check::Size => "size".into(),
    }
}

/// Reads `len` bytes of `file` at `offset` in order, a MiB at a time.
pub fn each_chunk(
    file: &File,
    offset: u64,
    len: u64,
    mut f: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (1 << 20).min(len.max(1)) as usize];
    let mut done = 0u64;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        file.read_exact_at(&mut buf[..n], offset + done)?;
        f(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// The digest of `len` bytes of `file` at `offset`, read in order.
pub fn digest_range(
    file: &File,
    algorithm: Algorithm,
    offset: u64,
    len: u64,
) -> std::io::Result<Checksum> {
    let mut h = Hasher::new(algorithm);
    each_chunk(file, offset, len, |c| h.update(c))?;
    Ok(h.finish())
}

/// The composite value of parts with these bounds, from the file.
pub fn composite_from_file(
    file: &File,
    algorithm: Algorithm,
    bounds: &[std::ops::Range<u64>],
) -> std::io::Result<(Checksum, Vec<Checksum>)> {
    let parts = bounds
        .iter()
        .map(|r| digest_range(file, algorithm, r.start, r.end - r.start))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((composite_of(algorithm, &parts), parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::StoredChecksum;
    use crate::store::EtagKind;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            size: 10,
            etag: "0123456789abcdef0123456789abcdef".into(),
            last_modified: time::OffsetDateTime::UNIX_EPOCH,
            metadata: Default::default(),
            crc64: None,
            etag_kind: EtagKind::Md5,
            checksum: None,
            content_type: None,
            object: Default::default(),
            version_id: None,
        }
    }

    fn stored(a: Algorithm, kind: ChecksumType) -> Option<StoredChecksum> {
        Some(StoredChecksum {
            checksum: Hasher::new(a).finish(),
            kind,
        })
    }

    #[test]
    fn the_strongest_check_the_object_allows() {
        let mut m = meta();
        assert!(matches!(Check::choose(&m, true), Check::Md5 { .. }));
        assert_eq!(Check::choose(&m, false), Check::Size);
        m.crc64 = Some(7);
        assert_eq!(
            Check::choose(&m, false),
            Check::Crc {
                kind: CrcKind::Crc64Ecma,
                expected: 7
            }
        );
        m.checksum = stored(Algorithm::Crc64Nvme, ChecksumType::FullObject);
        assert!(matches!(
            Check::choose(&m, true),
            Check::Crc {
                kind: CrcKind::Crc64Nvme,
                ..
            }
        ));
        m.checksum = stored(Algorithm::Crc32, ChecksumType::Composite { parts: 3 });
        let c = Check::choose(&m, true);
        assert!(matches!(c, Check::Composite { parts: 3, .. }));
        assert!(c.reads_back(true));
        assert_eq!(c.describe(), "CRC32 of each of 3 parts");
        m.checksum = stored(Algorithm::Sha256, ChecksumType::FullObject);
        let c = Check::choose(&m, false);
        assert!(matches!(c, Check::Sha { .. }));
        assert!(c.reads_back(false) && !c.reads_back(true));
        m.checksum = None;
        m.crc64 = None;
        m.etag_kind = EtagKind::Opaque;
        assert_eq!(Check::choose(&m, true), Check::Size);
    }

    #[test]
    fn in_stream_digests_pass_the_data_and_catch_one_flipped_byte() {
        let data = b"the bytes of an object".to_vec();
        let mut bad = data.clone();
        bad[3] ^= 1;
        let sha = {
            let mut h = Hasher::new(Algorithm::Sha256);
            h.update(&data);
            h.finish()
        };
        let checks = [
            Check::Md5 {
                etag: hex::encode(crate::checksum::md5(&data)).to_uppercase(),
            },
            Check::Crc {
                kind: CrcKind::Crc32c,
                expected: CrcKind::Crc32c.of_bytes(&data),
            },
            Check::Sha { expected: sha },
        ];
        for check in &checks {
            let run = |bytes: &[u8]| {
                let mut d = InStream::new(check);
                for chunk in bytes.chunks(5) {
                    d.update(chunk);
                }
                d.verdict("b/k", check)
            };
            assert_eq!(run(&data), Ok(()), "{check:?}");
            let e = run(&bad).unwrap_err();
            assert!(
                e.starts_with("b/k: downloaded data has ") && e.contains("nothing was kept"),
                "{e}"
            );
        }
        // Size and composite checks take nothing in stream.
        assert_eq!(
            InStream::new(&Check::Size).verdict("b/k", &Check::Size),
            Ok(())
        );
    }

    #[test]
    fn range_crcs_combine_for_every_kind() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for kind in [
            CrcKind::Crc64Ecma,
            CrcKind::Crc64Nvme,
            CrcKind::Crc32c,
            CrcKind::Crc32,
        ] {
            let mut whole = Crc::new(kind);
            whole.update(&data);
            let mut acc = None;
            for chunk in data.chunks(3333) {
                let mut h = Crc::new(kind);
                h.update(chunk);
                acc = Some(match acc {
                    None => h.finish(),
                    Some(a) => kind.combine(a, h.finish(), chunk.len() as u64),
                });
            }
            assert_eq!(acc, Some(whole.finish()), "{kind:?}");
        }
        // OSS's CRC-64 is the one `checksum::crc64` computes.
        let mut h = Crc::new(CrcKind::Crc64Ecma);
        h.update(b"123456789");
        assert_eq!(h.finish(), crate::checksum::crc64(b"123456789"));
    }

    #[test]
    fn composite_from_a_file_matches_the_parts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"aaaabbbbcc").unwrap();
        let f = File::open(&p).unwrap();
        let (whole, parts) =
            composite_from_file(&f, Algorithm::Crc32, &[0..4, 4..8, 8..10]).unwrap();
        let each: Vec<Checksum> = [&b"aaaa"[..], b"bbbb", b"cc"]
            .iter()
            .map(|d| {
                let mut h = Hasher::new(Algorithm::Crc32);
                h.update(d);
                h.finish()
            })
            .collect();
        assert_eq!(parts, each);
        assert_eq!(whole, composite_of(Algorithm::Crc32, &each));
    }
}
