//! What each upload body is digested with, and the one pass that reads
//! and digests it.
//!
//! The digest lets the server refuse a body that broke on the way and lets
//! ferry check what was stored. MD5 costs about 2.3 CPU-seconds per GiB,
//! CRC-64/NVME with SIMD a small fraction of that, so MD5 is computed only
//! where nothing better is checked: on S3-compatible stores that do not
//! store flexible checksums (learned from the first answer), or when the
//! user asks for it. OSS checks its CRC-64/ECMA.

use std::fs::File;

use bytes::Bytes;
use md5::{Digest as _, Md5};

pub use crate::checksum::ChecksumChoice;
use crate::checksum::{Algorithm, Checksum, Crc, CrcKind};
use crate::store::{Body, ChecksumSupport};

/// The digests one body is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    pub md5: bool,
    pub checksum: Option<Algorithm>,
    /// OSS's CRC-64/ECMA, checked against `x-oss-hash-crc64ecma`.
    pub crc64: bool,
}

/// Where a body goes: an OSS endpoint (CRC-64/ECMA), or an S3 one and what
/// it is known to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Oss,
    S3(ChecksumSupport),
}

/// A single PUT. On an endpoint not yet heard from, both: the MD5 guards
/// the body if the checksum header is ignored, and the answer tells which
/// the next bodies need.
pub fn for_put(choice: ChecksumChoice, at: Endpoint) -> Want {
    match at {
        Endpoint::Oss => Want {
            md5: choice == ChecksumChoice::Md5,
            checksum: None,
            crc64: true,
        },
        Endpoint::S3(support) => {
            let checksum = choice
                .algorithm()
                .filter(|_| support != ChecksumSupport::No);
            Want {
                md5: checksum.is_none() || support == ChecksumSupport::Unknown,
                checksum,
                crc64: false,
            }
        }
    }
}

/// The checksum to declare at CreateMultipartUpload.
pub fn for_create(choice: ChecksumChoice, at: Endpoint) -> Option<Algorithm> {
    match at {
        Endpoint::Oss | Endpoint::S3(ChecksumSupport::No) => None,
        Endpoint::S3(_) => choice.algorithm(),
    }
}

/// A part, once the upload's algorithm is settled: the one the server
/// agreed to, or none (then Content-MD5, as stores without checksums need).
pub fn for_part(choice: ChecksumChoice, at: Endpoint, agreed: Option<Algorithm>) -> Want {
    match at {
        Endpoint::Oss => for_put(choice, at),
        Endpoint::S3(_) => Want {
            md5: agreed.is_none() || choice == ChecksumChoice::Md5,
            checksum: agreed,
            crc64: false,
        },
    }
}

/// A body read from a file with its digests.
#[derive(Debug, Clone)]
pub struct Digested {
    pub data: Bytes,
    pub md5: Option<[u8; 16]>,
    pub checksum: Option<Checksum>,
    pub crc64: Option<u64>,
}

impl Digested {
    /// The request body; clones share the buffer, so a retry costs no copy.
    pub fn body(&self) -> Body {
        Body {
            data: self.data.clone(),
            md5: self.md5,
            checksum: self.checksum.clone(),
        }
    }

    pub fn md5_hex(&self) -> String {
        self.md5.map(hex::encode).unwrap_or_default()
    }
}

/// Reads `len` bytes at `offset` and digests them in the same pass, chunk
/// by chunk, so the data is hashed while it is still in cache.
pub fn read_and_digest(
    file: &File,
    offset: u64,
    len: u64,
    want: Want,
) -> std::io::Result<Digested> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(digest(buf, want))
}

/// Digests a body already in memory (a part read from a stream).
pub fn digest(buf: Vec<u8>, want: Want) -> Digested {
    let mut md5 = want.md5.then(Md5::new);
    let mut crc = want.checksum.and_then(CrcKind::of).map(Crc::new);
    let mut crc64 = want.crc64.then(|| Crc::new(CrcKind::Crc64Ecma));
    for chunk in buf.chunks(256 * 1024) {
        if let Some(m) = md5.as_mut() {
            m.update(chunk);
        }
        if let Some(c) = crc.as_mut() {
            c.update(chunk);
        }
        if let Some(c) = crc64.as_mut() {
            c.update(chunk);
        }
    }
    Digested {
        data: Bytes::from(buf),
        md5: md5.map(|m| m.finalize().into()),
        checksum: crc.and_then(|c| c.checksum()),
        crc64: crc64.map(|c| c.finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChecksumSupport::*;

    const NVME: Option<Algorithm> = Some(Algorithm::Crc64Nvme);

    #[test]
    fn auto_sends_a_crc_alone_where_the_store_keeps_it() {
        let auto = ChecksumChoice::Auto;
        let want = |md5, checksum, crc64| Want {
            md5,
            checksum,
            crc64,
        };
        assert_eq!(for_put(auto, Endpoint::S3(Yes)), want(false, NVME, false));
        assert_eq!(
            for_put(auto, Endpoint::S3(Unknown)),
            want(true, NVME, false)
        );
        assert_eq!(for_put(auto, Endpoint::S3(No)), want(true, None, false));
        assert_eq!(for_put(auto, Endpoint::Oss), want(false, None, true));
        assert_eq!(
            for_put(ChecksumChoice::Md5, Endpoint::Oss),
            want(true, None, true)
        );
        assert_eq!(
            for_put(ChecksumChoice::Md5, Endpoint::S3(Yes)),
            want(true, None, false)
        );
        let crc32 = ChecksumChoice::Crc(Algorithm::Crc32);
        assert_eq!(
            for_put(crc32, Endpoint::S3(Yes)),
            want(false, Some(Algorithm::Crc32), false)
        );
    }

    #[test]
    fn parts_follow_what_the_server_agreed_to() {
        let auto = ChecksumChoice::Auto;
        assert_eq!(for_create(auto, Endpoint::S3(Unknown)), NVME);
        assert_eq!(for_create(auto, Endpoint::S3(No)), None);
        assert_eq!(for_create(auto, Endpoint::Oss), None);
        assert_eq!(for_create(ChecksumChoice::Md5, Endpoint::S3(Yes)), None);
        let p = for_part(auto, Endpoint::S3(Unknown), NVME);
        assert!(!p.md5 && p.checksum == NVME);
        let p = for_part(auto, Endpoint::S3(Unknown), None);
        assert!(p.md5 && p.checksum.is_none());
    }

    #[test]
    fn choice_names() {
        assert_eq!(ChecksumChoice::parse("md5"), Some(ChecksumChoice::Md5));
        assert_eq!(
            ChecksumChoice::parse("CRC64NVME"),
            Some(ChecksumChoice::Crc(Algorithm::Crc64Nvme))
        );
        assert_eq!(
            ChecksumChoice::parse("crc32c"),
            Some(ChecksumChoice::Crc(Algorithm::Crc32c))
        );
        // SHAs are checked on download, never sent.
        assert_eq!(ChecksumChoice::parse("sha256"), None);
        assert_eq!(ChecksumChoice::parse("crc16"), None);
    }

    #[test]
    fn one_pass_gives_every_digest_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        let all = Want {
            md5: true,
            checksum: Some(Algorithm::Crc32),
            crc64: true,
        };
        let d = read_and_digest(&f, 1, 9, all).unwrap();
        assert_eq!(&d.data[..], b"123456789");
        assert_eq!(d.md5, Some(crate::checksum::md5(b"123456789")));
        assert_eq!(d.checksum.unwrap().crc_value(), Some(0xCBF4_3926));
        assert_eq!(d.crc64, Some(0x995D_C9BB_DF19_39FA));
        let none = read_and_digest(&f, 0, 3, Want::default()).unwrap();
        assert!(none.md5.is_none() && none.checksum.is_none() && none.crc64.is_none());
    }
}
