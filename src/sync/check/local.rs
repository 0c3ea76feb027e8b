//! The local file's side of a check: the digest a store's checksum is
//! compared with, or its bytes against a GET's. Files are read in order,
//! a MiB at a time, on blocking threads; a file whose size is no longer
//! the walk's is reported as changed, not compared.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use md5::Digest as _;

use crate::checksum::flexible::{composite_of, Hasher};
use crate::transfer::verify::{each_chunk, Check, Crc};

/// Why the file could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it changed while it was read (size {now}, {listed} when walked)")]
    Changed { now: u64, listed: u64 },
}

/// Opens `path`, refusing a file whose size has moved since the walk.
pub fn open(path: &Path, size: u64) -> Result<File, ReadError> {
    let f = File::open(path)?;
    let now = f.metadata()?.len();
    if now != size {
        return Err(ReadError::Changed { now, listed: size });
    }
    Ok(f)
}

/// The MD5 of the file, in hex.
pub fn md5_hex(path: &Path, size: u64) -> Result<String, ReadError> {
    let f = open(path, size)?;
    let mut h = md5::Md5::new();
    each_chunk(&f, 0, size, |c| h.update(c))?;
    Ok(hex::encode(h.finalize()))
}

/// The file's value for `check`, and the store's, both as the store
/// writes them, with the check's name. `bounds`: a composite check's part
/// ranges.
pub struct Digests {
    pub name: String,
    pub local: String,
    pub remote: String,
}

pub fn digests(
    path: &Path,
    size: u64,
    check: &Check,
    bounds: &[Range<u64>],
) -> Result<Option<Digests>, ReadError> {
    let f = open(path, size)?;
    Ok(Some(match check {
        Check::Crc { kind, expected } => {
            let mut c = Crc::new(*kind);
            each_chunk(&f, 0, size, |b| c.update(b))?;
            Digests {
                name: kind.name().into(),
                local: kind.show(c.finish()),
                remote: kind.show(*expected),
            }
        }
        Check::Sha { expected } => {
            let mut h = Hasher::new(expected.algorithm);
            each_chunk(&f, 0, size, |b| h.update(b))?;
            Digests {
                name: expected.algorithm.to_string(),
                local: h.finish().to_base64(),
                remote: expected.to_base64(),
            }
        }
        Check::Composite { expected, parts } => {
            let a = expected.algorithm;
            let each = bounds
                .iter()
                .map(|r| crate::transfer::verify::digest_range(&f, a, r.start, r.end - r.start))
                .collect::<std::io::Result<Vec<_>>>()?;
            Digests {
                name: format!("{a} of {parts} parts"),
                local: format!("{}-{parts}", composite_of(a, &each).to_base64()),
                remote: format!("{}-{parts}", expected.to_base64()),
            }
        }
        Check::Md5 { etag } => {
            let mut h = md5::Md5::new();
            each_chunk(&f, 0, size, |b| h.update(b))?;
            Digests {
                name: "MD5".into(),
                local: hex::encode(h.finalize()),
                remote: etag.clone(),
            }
        }
        Check::Size => return Ok(None),
    }))
}

/// The file read forward in step with a download, a MiB at a time.
pub struct Cursor {
    file: File,
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Cursor {
    pub fn new(file: File) -> Cursor {
        Cursor {
            file,
            buf: vec![0; 1 << 20],
            at: 0,
            len: 0,
        }
    }

    /// Whether the next bytes of the file are `data`; false at its end.
    pub fn matches(&mut self, mut data: &[u8]) -> std::io::Result<bool> {
        while !data.is_empty() {
            if self.at == self.len {
                self.len = self.file.read(&mut self.buf)?;
                self.at = 0;
                if self.len == 0 {
                    return Ok(false);
                }
            }
            let n = data.len().min(self.len - self.at);
            if data[..n] != self.buf[self.at..self.at + n] {
                return Ok(false);
            }
            self.at += n;
            data = &data[n..];
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::CrcKind;

    #[test]
    fn digests_match_the_stores_forms_and_a_moved_size_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(md5_hex(&p, 5).unwrap(), "5d41402abc4b2a76b9719d911017c592");
        let kind = CrcKind::Crc64Nvme;
        let check = Check::Crc {
            kind,
            expected: kind.of_bytes(b"hello"),
        };
        let d = digests(&p, 5, &check, &[]).unwrap().unwrap();
        assert_eq!(d.local, d.remote);
        assert!(matches!(
            md5_hex(&p, 4),
            Err(ReadError::Changed { now: 5, listed: 4 })
        ));
        assert!(digests(&p, 5, &Check::Size, &[]).unwrap().is_none());
    }

    #[test]
    fn a_cursor_follows_the_file_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut c = Cursor::new(File::open(&p).unwrap());
        for chunk in data.chunks(700_001) {
            assert!(c.matches(chunk).unwrap());
        }
        assert!(!c.matches(b"x").unwrap(), "past the end");
        let mut c = Cursor::new(File::open(&p).unwrap());
        let mut wrong = data[..2_000_000].to_vec();
        wrong[1_500_000] ^= 1;
        assert!(!c.matches(&wrong).unwrap());
    }
}
