//! Flexible checksums on the wire: reading them from response headers and
//! remembering whether an endpoint stores them at all.
//!
//! A server that does not know `x-amz-checksum-*` ignores the header and
//! answers without one, so the first answer to a body that carried a
//! checksum tells; the answer is kept for the life of the store (one per
//! endpoint), so later bodies carry what the endpoint checks.

use std::sync::atomic::{AtomicU8, Ordering};

use reqwest::header::HeaderMap;

use super::ChecksumSupport;
use crate::checksum::{Algorithm, StoredChecksum};

/// Asks HEAD and GET to include the stored checksum.
pub const MODE_HEADER: &str = "x-amz-checksum-mode";
pub const ALGORITHM_HEADER: &str = "x-amz-checksum-algorithm";
pub const TYPE_HEADER: &str = "x-amz-checksum-type";

/// The strongest checksum a response carries.
pub fn stored_from_headers(h: &HeaderMap) -> Option<StoredChecksum> {
    let kind = h.get(TYPE_HEADER).and_then(|v| v.to_str().ok());
    Algorithm::ALL.into_iter().find_map(|a| {
        let v = h.get(a.header())?.to_str().ok()?;
        StoredChecksum::parse(a, v, kind)
    })
}

/// The algorithm a CreateMultipartUpload answer agreed to.
pub fn agreed_algorithm(h: &HeaderMap) -> Option<Algorithm> {
    h.get(ALGORITHM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Algorithm::parse)
}

/// What an endpoint was found to do; the first answer decides.
#[derive(Debug, Default)]
pub struct Learned(AtomicU8);

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

impl Learned {
    pub fn get(&self) -> ChecksumSupport {
        match self.0.load(Ordering::Relaxed) {
            YES => ChecksumSupport::Yes,
            NO => ChecksumSupport::No,
            _ => ChecksumSupport::Unknown,
        }
    }

    pub fn learn(&self, stored: bool) {
        let v = if stored { YES } else { NO };
        let _ = self
            .0
            .compare_exchange(UNKNOWN, v, Ordering::Relaxed, Ordering::Relaxed);
        if self.get() == ChecksumSupport::No && stored {
            // A server that once answered without one and now with one
            // (a proxy in front that changed): believe the checksum.
            self.0.store(YES, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn strongest_header_wins_and_type_is_read() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-checksum-crc32",
            HeaderValue::from_static("DUoRhQ==-2"),
        );
        h.insert("x-amz-checksum-type", HeaderValue::from_static("COMPOSITE"));
        let s = stored_from_headers(&h).unwrap();
        assert_eq!(s.checksum.algorithm, Algorithm::Crc32);
        assert_eq!(
            s.kind,
            crate::checksum::ChecksumType::Composite { parts: 2 }
        );
        h.insert(
            "x-amz-checksum-sha256",
            HeaderValue::from_static("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        );
        h.insert(
            "x-amz-checksum-type",
            HeaderValue::from_static("FULL_OBJECT"),
        );
        assert_eq!(
            stored_from_headers(&h).unwrap().checksum.algorithm,
            Algorithm::Sha256
        );
        assert!(stored_from_headers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn the_first_answer_decides_and_a_checksum_overrules_a_no() {
        let l = Learned::default();
        assert_eq!(l.get(), ChecksumSupport::Unknown);
        l.learn(false);
        assert_eq!(l.get(), ChecksumSupport::No);
        l.learn(true);
        assert_eq!(l.get(), ChecksumSupport::Yes);
        l.learn(false);
        assert_eq!(l.get(), ChecksumSupport::Yes);
    }
}
