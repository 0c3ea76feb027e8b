//! S3's flexible checksums (`x-amz-checksum-*`): what the client sends with
//! a body, the server verifies on arrival and stores, and HEAD/GET return
//! with `x-amz-checksum-mode: ENABLED`.
//!
//! A stored checksum is either of the whole object (`FULL_OBJECT`: a single
//! PUT, or a multipart upload whose CRC was combined across parts) or
//! `COMPOSITE`: the checksum of the parts' concatenated raw digests, written
//! `BASE64-N`. CRCs combine, so a FULL_OBJECT CRC of a multipart object is
//! checked from per-range CRCs computed concurrently; SHAs do not, and are
//! hashed in order.

use base64::Engine as _;
use sha1::Digest as _;

use super::crc::{Crc, CrcKind};

/// The algorithms S3 stores. ferry sends only the CRCs; the SHAs are
/// verified when another tool stored them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Crc64Nvme,
    Crc32c,
    Crc32,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// Strongest first: the order a response carrying several is read in.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Sha256,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Crc32c,
        Algorithm::Crc32,
    ];

    /// The name S3 uses in `x-amz-checksum-algorithm` and `ChecksumAlgorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc32 => "CRC32",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header a value travels in.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The element a value travels in inside XML bodies (ListParts,
    /// CompleteMultipartUpload).
    pub fn xml_element(self) -> &'static str {
        match self {
            Algorithm::Crc64Nvme => "ChecksumCRC64NVME",
            Algorithm::Crc32c => "ChecksumCRC32C",
            Algorithm::Crc32 => "ChecksumCRC32",
            Algorithm::Sha1 => "ChecksumSHA1",
            Algorithm::Sha256 => "ChecksumSHA256",
        }
    }

    /// Bytes of a raw digest.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc64Nvme => 8,
            Algorithm::Crc32c | Algorithm::Crc32 => 4,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    pub fn is_crc(self) -> bool {
        CrcKind::of(self).is_some()
    }

    /// `CRC64NVME`, `crc64nvme`, `crc-64-nvme`… as a user or a server may
    /// write it.
    pub fn parse(s: &str) -> Option<Algorithm> {
        let norm: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Algorithm::ALL.into_iter().find(|a| a.name() == norm)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What uploads digest bodies with (`--checksum-algorithm`, a
/// profile's `checksum_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumChoice {
    /// CRC-64/NVME where the store keeps it, MD5 where it does not.
    #[default]
    Auto,
    Crc(Algorithm),
    Md5,
}

impl ChecksumChoice {
    pub const NAMES: &'static str = "crc64nvme, crc32c, crc32 or md5";

    pub fn parse(s: &str) -> Option<ChecksumChoice> {
        if s.eq_ignore_ascii_case("md5") {
            return Some(ChecksumChoice::Md5);
        }
        if s.eq_ignore_ascii_case("auto") {
            return Some(ChecksumChoice::Auto);
        }
        Algorithm::parse(s)
            .filter(|a| a.is_crc())
            .map(ChecksumChoice::Crc)
    }

    /// The flexible checksum this choice sends, where the store takes one.
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            ChecksumChoice::Auto => Some(Algorithm::Crc64Nvme),
            ChecksumChoice::Crc(a) => Some(a),
            ChecksumChoice::Md5 => None,
        }
    }
}

/// One checksum value: the algorithm and its raw digest (big-endian for
/// the CRCs, as S3 encodes them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    /// A CRC value as [`Crc::finish`] returns it.
    pub fn crc(algorithm: Algorithm, value: u64) -> Checksum {
        let width = algorithm.digest_len().min(8);
        Checksum {
            algorithm,
            digest: value.to_be_bytes()[8 - width..].to_vec(),
        }
    }

    /// The base64 form of headers and XML; `None` unless it decodes to a
    /// digest of the algorithm's length.
    pub fn from_base64(algorithm: Algorithm, s: &str) -> Option<Checksum> {
        let digest = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()?;
        (digest.len() == algorithm.digest_len()).then_some(Checksum { algorithm, digest })
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.digest)
    }

    /// The CRC as a number, for combining.
    pub fn crc_value(&self) -> Option<u64> {
        if !self.algorithm.is_crc() {
            return None;
        }
        let mut b = [0u8; 8];
        let n = self.digest.len().min(8);
        b[8 - n..].copy_from_slice(&self.digest[..n]);
        Some(u64::from_be_bytes(b))
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algorithm, self.to_base64())
    }
}

/// What a stored checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// The object's bytes, whatever way they were uploaded.
    FullObject,
    /// The checksum of the `parts` parts' digests, concatenated.
    Composite { parts: u32 },
}

/// A checksum as the store keeps it for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChecksum {
    pub checksum: Checksum,
    pub kind: ChecksumType,
}

impl StoredChecksum {
    /// From a response: the value (`BASE64` or `BASE64-N`) and the
    /// `x-amz-checksum-type` header if any. Without the header a `-N`
    /// suffix means composite, as S3 wrote it before the header existed.
    pub fn parse(
        algorithm: Algorithm,
        value: &str,
        type_header: Option<&str>,
    ) -> Option<StoredChecksum> {
        let value = value.trim();
        let (b64, parts) = match value.rsplit_once('-') {
            Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                (b, Some(n.parse::<u32>().ok().filter(|&n| n > 0)?))
            }
            _ => (value, None),
        };
        let checksum = Checksum::from_base64(algorithm, b64)?;
        let composite = match type_header.map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case("COMPOSITE") => true,
            Some(t) if t.eq_ignore_ascii_case("FULL_OBJECT") => false,
            _ => parts.is_some(),
        };
        let kind = match (composite, parts) {
            (true, Some(parts)) => ChecksumType::Composite { parts },
            // A composite value must say how many parts it covers.
            (true, None) => return None,
            (false, _) => ChecksumType::FullObject,
        };
        Some(StoredChecksum { checksum, kind })
    }

    /// As S3 writes it, for messages and `stat`.
    pub fn display_value(&self) -> String {
        match self.kind {
            ChecksumType::FullObject => self.checksum.to_base64(),
            ChecksumType::Composite { parts } => format!("{}-{parts}", self.checksum.to_base64()),
        }
    }
}

/// The CRC of `a ++ b` from `crc(a)`, `crc(b)` and `b.len()`; `None` for a
/// SHA.
pub fn crc_combine(algorithm: Algorithm, crc1: u64, crc2: u64, len2: u64) -> Option<u64> {
    Some(CrcKind::of(algorithm)?.combine(crc1, crc2, len2))
}

/// The CRC of `data` in one go; `None` for a SHA.
pub fn crc_of(algorithm: Algorithm, data: &[u8]) -> Option<u64> {
    Some(CrcKind::of(algorithm)?.of_bytes(data))
}

/// Any of the five, streaming.
#[derive(Clone)]
pub enum Hasher {
    Crc(Crc),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            crc => Hasher::Crc(Crc::new(
                CrcKind::of(crc).expect("every other algorithm is a CRC"),
            )),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(c) => c.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Crc(c) => c.checksum().expect("an S3 CRC"),
            Hasher::Sha1(h) => Checksum {
                algorithm: Algorithm::Sha1,
                digest: h.finalize().to_vec(),
            },
            Hasher::Sha256(h) => Checksum {
                algorithm: Algorithm::Sha256,
                digest: h.finalize().to_vec(),
            },
        }
    }
}

/// The checksum of a composite object from its parts' checksums: the
/// algorithm over the concatenated raw digests.
pub fn composite_of(algorithm: Algorithm, parts: &[Checksum]) -> Checksum {
    let mut h = Hasher::new(algorithm);
    for p in parts {
        h.update(&p.digest);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn check_values() {
        // The catalogue's check values for "123456789".
        let data = b"123456789";
        assert_eq!(
            crc_of(Algorithm::Crc64Nvme, data),
            Some(0xAE8B_1486_0A79_9888)
        );
        assert_eq!(crc_of(Algorithm::Crc32c, data), Some(0xE306_9283));
        assert_eq!(crc_of(Algorithm::Crc32, data), Some(0xCBF4_3926));
        assert_eq!(crc_of(Algorithm::Sha1, data), None);
    }

    #[test]
    fn base64_forms_match_what_s3_returns() {
        // The empty object's checksums as S3 (and botocore) write them.
        let empty = |a| Hasher::new(a).finish().to_base64();
        assert_eq!(empty(Algorithm::Crc64Nvme), "AAAAAAAAAAA=");
        assert_eq!(empty(Algorithm::Crc32), "AAAAAA==");
        assert_eq!(
            empty(Algorithm::Sha256),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        // botocore's CRC32 of b"hello world" is 0x0d4a1185.
        let mut h = Hasher::new(Algorithm::Crc32);
        h.update(b"hello world");
        assert_eq!(h.finish().to_base64(), "DUoRhQ==");
    }

    #[test]
    fn parse_stored_values() {
        let full = StoredChecksum::parse(Algorithm::Crc64Nvme, "AAAAAAAAAAA=", None).unwrap();
        assert_eq!(full.kind, ChecksumType::FullObject);
        let comp = StoredChecksum::parse(Algorithm::Crc32, "DUoRhQ==-3", None).unwrap();
        assert_eq!(comp.kind, ChecksumType::Composite { parts: 3 });
        assert_eq!(comp.display_value(), "DUoRhQ==-3");
        // The header wins over the form.
        let typed = StoredChecksum::parse(Algorithm::Crc32, "DUoRhQ==-3", Some("FULL_OBJECT"));
        assert_eq!(typed.unwrap().kind, ChecksumType::FullObject);
        // Wrong length, garbage, a composite without a count, "-0".
        assert!(StoredChecksum::parse(Algorithm::Crc64Nvme, "DUoRhQ==", None).is_none());
        assert!(StoredChecksum::parse(Algorithm::Crc32, "not base64!", None).is_none());
        assert!(StoredChecksum::parse(Algorithm::Crc32, "DUoRhQ==", Some("COMPOSITE")).is_none());
        assert!(StoredChecksum::parse(Algorithm::Crc32, "DUoRhQ==-0", None).is_none());
    }

    #[test]
    fn algorithm_names() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(Algorithm::parse(&a.name().to_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::parse("crc-64-nvme"), Some(Algorithm::Crc64Nvme));
        assert_eq!(Algorithm::parse("md5"), None);
    }

    #[test]
    fn composite_matches_an_independent_computation() {
        // S3's composite CRC32: CRC32 over the parts' big-endian CRC32s.
        let parts: [&[u8]; 3] = [b"first part", b"second", b"3"];
        let sums: Vec<Checksum> = parts
            .iter()
            .map(|p| Checksum::crc(Algorithm::Crc32, crc_of(Algorithm::Crc32, p).unwrap()))
            .collect();
        let mut concat = Vec::new();
        for p in parts {
            concat.extend_from_slice(&crc_of(Algorithm::Crc32, p).unwrap().to_be_bytes()[4..]);
        }
        let want = crc_of(Algorithm::Crc32, &concat).unwrap();
        assert_eq!(
            composite_of(Algorithm::Crc32, &sums),
            Checksum::crc(Algorithm::Crc32, want)
        );
    }

    proptest! {
        #[test]
        fn crcs_combine_and_stream(
            a in proptest::collection::vec(any::<u8>(), 0..2000),
            b in proptest::collection::vec(any::<u8>(), 0..2000),
            cut in 0usize..2000,
        ) {
            let ab = [a.as_slice(), b.as_slice()].concat();
            for alg in [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Crc32] {
                let whole = crc_of(alg, &ab).unwrap();
                let joined = crc_combine(alg, crc_of(alg, &a).unwrap(), crc_of(alg, &b).unwrap(), b.len() as u64).unwrap();
                prop_assert_eq!(joined, whole);
                let mut c = Crc::new(CrcKind::of(alg).unwrap());
                let cut = cut.min(ab.len());
                c.update(&ab[..cut]);
                c.update(&ab[cut..]);
                prop_assert_eq!(c.finish(), whole);
                let sum = c.checksum().unwrap();
                prop_assert_eq!(sum.crc_value(), Some(whole));
                prop_assert_eq!(Checksum::from_base64(alg, &sum.to_base64()), Some(sum));
            }
        }
    }
}
