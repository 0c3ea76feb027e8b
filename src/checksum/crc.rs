//! Every CRC ferry computes, from one crate (`crc-fast`, SIMD): S3's
//! CRC-64/NVME, CRC-32C and CRC-32, and OSS's CRC-64/ECMA (the XZ
//! parameters: ECMA-182 polynomial, reflected, init and xorout all ones).
//! All of them combine: the CRC of `a ++ b` follows from the CRCs of both
//! and `b`'s length, which is how parts hashed concurrently become the
//! whole object's CRC without reading anything again.

use crc_fast::CrcAlgorithm;

use super::{Algorithm, Checksum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrcKind {
    Crc64Nvme,
    Crc32c,
    Crc32,
    /// OSS's `x-oss-hash-crc64ecma`.
    Crc64Ecma,
}

impl CrcKind {
    /// S3's algorithm as a CRC; `None` for a SHA.
    pub fn of(a: Algorithm) -> Option<CrcKind> {
        match a {
            Algorithm::Crc64Nvme => Some(CrcKind::Crc64Nvme),
            Algorithm::Crc32c => Some(CrcKind::Crc32c),
            Algorithm::Crc32 => Some(CrcKind::Crc32),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// The S3 algorithm this is; `None` for OSS's.
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            CrcKind::Crc64Nvme => Some(Algorithm::Crc64Nvme),
            CrcKind::Crc32c => Some(Algorithm::Crc32c),
            CrcKind::Crc32 => Some(Algorithm::Crc32),
            CrcKind::Crc64Ecma => None,
        }
    }

    fn crc_fast(self) -> CrcAlgorithm {
        match self {
            CrcKind::Crc64Nvme => CrcAlgorithm::Crc64Nvme,
            CrcKind::Crc32c => CrcAlgorithm::Crc32Iscsi,
            CrcKind::Crc32 => CrcAlgorithm::Crc32IsoHdlc,
            CrcKind::Crc64Ecma => CrcAlgorithm::Crc64Xz,
        }
    }

    pub fn name(self) -> &'static str {
        match self.algorithm() {
            Some(a) => a.name(),
            None => "CRC-64/ECMA",
        }
    }

    /// The CRC of `a ++ b` from `crc(a)`, `crc(b)` and `b.len()`.
    pub fn combine(self, crc1: u64, crc2: u64, len2: u64) -> u64 {
        crc_fast::checksum_combine(self.crc_fast(), crc1, crc2, len2)
    }

    /// The CRC of `data` in one go.
    pub fn of_bytes(self, data: &[u8]) -> u64 {
        crc_fast::checksum(self.crc_fast(), data)
    }

    /// A value as the store writes it: base64 for S3's, a number for OSS's.
    pub fn show(self, v: u64) -> String {
        match self.algorithm() {
            Some(a) => Checksum::crc(a, v).to_base64(),
            None => v.to_string(),
        }
    }
}

/// A running CRC.
#[derive(Clone)]
pub struct Crc {
    kind: CrcKind,
    inner: crc_fast::Digest,
    len: u64,
}

impl Crc {
    pub fn new(kind: CrcKind) -> Crc {
        Crc {
            kind,
            inner: crc_fast::Digest::new(kind.crc_fast()),
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes fed so far: the `len2` a later combine needs.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn kind(&self) -> CrcKind {
        self.kind
    }

    /// The CRC of everything fed so far; the running state goes on.
    pub fn finish(&self) -> u64 {
        self.inner.finalize()
    }

    /// As S3 carries it; `None` for OSS's CRC-64.
    pub fn checksum(&self) -> Option<Checksum> {
        Some(Checksum::crc(self.kind.algorithm()?, self.finish()))
    }
}

impl std::fmt::Debug for Crc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crc")
            .field("kind", &self.kind)
            .field("crc", &format_args!("{:#x}", self.finish()))
            .field("len", &self.len)
            .finish()
    }
}
