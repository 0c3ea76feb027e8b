//! Checksums used to prove that what landed in the store is what we sent.
//!
//! Three families matter:
//!
//! * S3's flexible checksums ([`flexible`]): CRC-64/NVME, CRC-32C and
//!   CRC-32 sent with each body and stored with the object, SHA-1 and
//!   SHA-256 when another tool stored them.
//! * CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones).
//!   Alibaba Cloud OSS reports it for every object in
//!   `x-oss-hash-crc64ecma`, including multipart objects, so it is the one
//!   whole-object checksum we can verify there. Parts are uploaded
//!   concurrently, so the per-part CRCs are folded together with
//!   [`crc64_combine`] instead of re-reading the file. Every CRC is in
//!   [`crc`].
//! * MD5-based ETags as S3 (and Garage, MinIO, ...) compute them: the plain
//!   hex MD5 for a single PUT, and `hex(md5(md5_1 || ... || md5_n))-n` for a
//!   multipart upload. `Content-MD5` lets the server reject a corrupted
//!   request body before it is stored.

pub mod crc;
pub mod flexible;

use base64::Engine as _;
use md5::{Digest as _, Md5};

pub use crc::{Crc, CrcKind};
pub use flexible::{Algorithm, Checksum, ChecksumChoice, ChecksumType, StoredChecksum};

/// CRC-64/XZ (OSS's CRC-64/ECMA) of `data` in one go.
pub fn crc64(data: &[u8]) -> u64 {
    CrcKind::Crc64Ecma.of_bytes(data)
}

/// Given `crc1 = crc64(a)` and `crc2 = crc64(b)` with `len2 = b.len()`,
/// return `crc64(a ++ b)` without touching the data.
pub fn crc64_combine(crc1: u64, crc2: u64, len2: u64) -> u64 {
    CrcKind::Crc64Ecma.combine(crc1, crc2, len2)
}

/// Raw MD5 digest of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The ETag S3 gives an object stored by a single (non-multipart,
/// non-SSE-KMS) PUT: lowercase hex MD5, no quotes.
pub fn md5_etag(data: &[u8]) -> String {
    hex::encode(md5(data))
}

/// The ETag S3 gives a completed multipart upload: the hex MD5 of the
/// concatenated binary part MD5s, then `-` and the part count. No quotes.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for d in part_md5s {
        h.update(d);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// Strip a weak-validator `W/` prefix and surrounding double quotes, so
/// ETags from headers, XML bodies and our own state compare equal.
pub fn normalize_etag(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// Value for a `Content-MD5` request header (RFC 1864: base64 of the raw
/// digest, not of its hex form).
pub fn content_md5_base64(digest: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reflected form of the ECMA-182 polynomial 0x42F0E1EBA9EA3693.
    const POLY: u64 = 0xC96C_5795_D787_0F42;

    #[test]
    fn crc64_check_value() {
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    /// Bit-at-a-time reference, independent of crc-fast's tables/SIMD.
    fn crc64_reference(data: &[u8]) -> u64 {
        let mut crc = !0u64;
        for &b in data {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc64_matches_reference_across_sizes() {
        // Covers the short-input and SIMD paths and the boundary between.
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for n in [
            0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 5000,
        ] {
            assert_eq!(crc64(&data[..n]), crc64_reference(&data[..n]), "n={n}");
        }
    }

    #[test]
    fn crc64_streaming_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i ^ (i >> 3)) as u8).collect();
        let mut c = Crc::new(CrcKind::Crc64Ecma);
        for chunk in data.chunks(333) {
            c.update(chunk);
        }
        assert_eq!(c.len(), data.len() as u64);
        assert_eq!(c.finish(), crc64(&data));
        // finish() must not disturb the running state.
        c.update(b"x");
        let mut whole = data.clone();
        whole.push(b'x');
        assert_eq!(c.finish(), crc64(&whole));
    }

    #[test]
    fn crc64_combine_known() {
        let a = b"12345";
        let b = b"6789";
        assert_eq!(
            crc64_combine(crc64(a), crc64(b), b.len() as u64),
            0x995D_C9BB_DF19_39FA
        );
        assert_eq!(crc64_combine(crc64(a), crc64(b""), 0), crc64(a));
        assert_eq!(crc64_combine(0, crc64(b), 4), crc64(b));
    }

    #[test]
    fn crc64_combine_many_parts() {
        // The way a multipart upload uses it: fold part CRCs left to right.
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut acc = 0u64;
        for part in data.chunks(8191) {
            acc = crc64_combine(acc, crc64(part), part.len() as u64);
        }
        assert_eq!(acc, crc64(&data));
    }

    #[test]
    fn crc64_combine_huge_len_is_consistent() {
        // Shifting by len1 then len2 zero bytes equals shifting by len1+len2:
        // exercises the high bits of len2 without allocating gigabytes.
        let c = crc64(b"seed");
        let (l1, l2) = (5u64 << 40, (1u64 << 62) + 12345);
        let zero1 = crc64_combine(c, 0, l1);
        assert_eq!(crc64_combine(zero1, 0, l2), crc64_combine(c, 0, l1 + l2));
        assert_eq!(
            crc64_combine(c, 0, u64::MAX),
            crc64_combine(crc64_combine(c, 0, u64::MAX - 1), 0, 1)
        );
    }

    proptest! {
        #[test]
        fn crc64_combine_prop(
            a in proptest::collection::vec(any::<u8>(), 0..3000),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut ab = a.clone();
            ab.extend_from_slice(&b);
            prop_assert_eq!(crc64_combine(crc64(&a), crc64(&b), b.len() as u64), crc64(&ab));
        }

        #[test]
        fn crc64_combine_three_way_prop(
            a in proptest::collection::vec(any::<u8>(), 0..500),
            b in proptest::collection::vec(any::<u8>(), 0..500),
            c in proptest::collection::vec(any::<u8>(), 0..500),
        ) {
            let whole = [a.as_slice(), b.as_slice(), c.as_slice()].concat();
            let left = crc64_combine(crc64_combine(crc64(&a), crc64(&b), b.len() as u64), crc64(&c), c.len() as u64);
            let bc = crc64_combine(crc64(&b), crc64(&c), c.len() as u64);
            let right = crc64_combine(crc64(&a), bc, (b.len() + c.len()) as u64);
            prop_assert_eq!(left, crc64(&whole));
            prop_assert_eq!(right, crc64(&whole));
        }
    }

    #[test]
    fn md5_etag_known() {
        assert_eq!(md5_etag(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_etag(b"hello\n"), "b1946ac92492d2347c6235b4d2611184");
    }

    #[test]
    fn multipart_etag_matches_garage() {
        // ETags Garage 2.5 returned for these uploads (S3 computes the same).
        let a = md5(&vec![b'a'; 5 << 20]);
        let b = md5(&vec![b'b'; 1 << 20]);
        let c = md5(&[b'c'; 1000]);
        assert_eq!(
            multipart_etag(&[a, b]),
            "88fc978485924ccd87ceb19c90195b35-2"
        );
        assert_eq!(
            multipart_etag(&[a, b, c]),
            "1028eae87b159d2a47670bfa418688b0-3"
        );
        // Part ETags are plain MD5s, as for a single PUT.
        assert_eq!(hex::encode(a), "79b281060d337b9b2b84ccf390adcf74");
        // A one-part multipart upload is still "-1", not the plain MD5.
        assert_eq!(multipart_etag(&[a]), format!("{}-1", md5_etag(&a)));
    }

    #[test]
    fn normalize_etag_cases() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc-2\""), "abc-2");
        assert_eq!(normalize_etag("abc"), "abc");
        assert_eq!(normalize_etag(" \"abc\" "), "abc");
        assert_eq!(normalize_etag("&quot;abc&quot;"), "&quot;abc&quot;");
        assert_eq!(normalize_etag("\"abc"), "\"abc");
        assert_eq!(normalize_etag("\"\""), "");
    }

    #[test]
    fn content_md5_header() {
        // RFC 1864 example style: base64 of the 16 raw bytes.
        assert_eq!(content_md5_base64(&md5(b"")), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
