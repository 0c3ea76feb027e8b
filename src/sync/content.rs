//! Pure: `--checksum`'s comparison of one file with one object of the same
//! size, by the digests both sides can show. The object offers the MD5 its
//! listed ETag has the form of (which under SSE-KMS or SSE-C only looks
//! like one, so a mismatch against it is confirmed with a HEAD before it
//! counts) and the full-object checksum a HEAD showed on an earlier run
//! (kept in the known-mtimes cache); the file offers the digests the
//! digest cache kept for it while it is unchanged. Whatever these settle
//! needs no request and no read; the rest goes to the runner.

use std::ops::Range;

use crate::store::EtagKind;
use crate::sync::known::digests::Sum;
use crate::transfer::verify::Check;

/// What the digests at hand say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Same,
    Differs,
    /// The listed ETag has the MD5's form and the file's MD5 is another:
    /// only the store can say whether the ETag is the MD5.
    Md5Differs,
    /// Nothing both sides show: a HEAD and (or) a read of the file decide.
    Open,
}

pub fn settle(local: &[Sum], listed_etag: &str, stored: Option<&Sum>) -> Settled {
    let find = |name: &str| local.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if let Some((name, theirs)) = stored {
        if let Some(mine) = find(name) {
            return verdict(mine, theirs, Settled::Differs);
        }
    }
    if EtagKind::from_form(listed_etag) == EtagKind::Md5 {
        if let Some(mine) = find(MD5) {
            return verdict(mine, listed_etag, Settled::Md5Differs);
        }
    }
    Settled::Open
}

fn verdict(mine: &str, theirs: &str, otherwise: Settled) -> Settled {
    if mine.eq_ignore_ascii_case(theirs) {
        Settled::Same
    } else {
        otherwise
    }
}

pub const MD5: &str = "MD5";

/// The name a check's digest is kept under: a composite digest depends on
/// where the parts lie, so its name says the first part's length.
pub fn sum_name(check: &Check, bounds: &[Range<u64>]) -> Option<String> {
    Some(match check {
        Check::Crc { kind, .. } => kind.name().to_string(),
        Check::Sha { expected } => expected.algorithm.to_string(),
        Check::Composite { expected, parts } => {
            let first = bounds.first().map_or(0, |r| r.end - r.start);
            format!("{} of {parts} parts/{first}", expected.algorithm)
        }
        Check::Md5 { .. } => MD5.to_string(),
        Check::Size => return None,
    })
}

/// The store's full-object checksum as the known-mtimes cache keeps it
/// (`NAME=value`); composite and MD5 forms are not kept (the one needs the
/// parts' places, the other is the listed ETag itself).
pub fn stored_sum(check: &Check) -> Option<String> {
    match check {
        Check::Crc { kind, expected } => Some(format!("{}={}", kind.name(), kind.show(*expected))),
        Check::Sha { expected } => Some(format!("{}={}", expected.algorithm, expected.to_base64())),
        _ => None,
    }
}

/// `NAME=value` back into its parts.
pub fn parse_stored(s: &str) -> Option<Sum> {
    let (n, v) = s.split_once('=')?;
    Some((n.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::crc::CrcKind;

    const M: &str = "5d41402abc4b2a76b9719d911017c592";

    fn sum(n: &str, v: &str) -> Sum {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn a_stored_checksum_decides_before_the_etag_and_an_md5_mismatch_is_only_a_suspicion() {
        let crc = sum("CRC64NVME", "AAAAAAAAAAE=");
        let local = [sum(MD5, M), crc.clone()];
        assert_eq!(settle(&local, M, None), Settled::Same);
        assert_eq!(
            settle(&local, "00000000000000000000000000000000", None),
            Settled::Md5Differs
        );
        // The stored CRC says equal although the ETag (SSE-KMS) is no MD5.
        assert_eq!(
            settle(&local, "00000000000000000000000000000000", Some(&crc)),
            Settled::Same
        );
        let other = sum("CRC64NVME", "AAAAAAAAAAI=");
        assert_eq!(settle(&local, M, Some(&other)), Settled::Differs);
        // A multipart ETag and nothing stored: open.
        assert_eq!(settle(&local, &format!("{M}-3"), None), Settled::Open);
        // No digest of the file yet: open whatever the object shows.
        assert_eq!(settle(&[], M, Some(&crc)), Settled::Open);
        // A stored checksum the file has no digest by falls to the ETag.
        let sha = sum("SHA256", "x");
        assert_eq!(settle(&local, M, Some(&sha)), Settled::Same);
    }

    #[test]
    fn names_and_stored_forms_agree() {
        let kind = CrcKind::Crc64Nvme;
        let c = Check::Crc {
            kind,
            expected: kind.of_bytes(b"hello"),
        };
        let stored = parse_stored(&stored_sum(&c).unwrap()).unwrap();
        assert_eq!(Some(stored.0.clone()), sum_name(&c, &[]));
        assert_eq!(stored.1, kind.show(kind.of_bytes(b"hello")));
        assert_eq!(sum_name(&Check::Size, &[]), None);
        assert_eq!(stored_sum(&Check::Md5 { etag: M.into() }), None);
    }
}
