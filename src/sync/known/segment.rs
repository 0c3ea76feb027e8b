//! One segment file of a sorted cache (the known mtimes of objects, the
//! known digests of files): entries in ascending key order, in
//! checksummed blocks, each key stored as the bytes it does not share with
//! the one before it. What follows the key is the entry type's own
//! ([`Record`]).
//!
//! ```text
//! file    MAGIC block*
//! block   u32 LE payload length, u32 LE CRC-32C of the payload, payload
//! payload record*            (the first record of a block shares nothing)
//! record  varint shared      bytes shared with the previous key
//!         varint n, n bytes  the rest of the key
//!         entry              Record::encode
//! known   u8 flags           1 Last-Modified, 2 mtime, 4 ETag as 16 bytes, 8 stored checksum
//!         ETag               16 bytes (32 lowercase hex digits), or varint n + n bytes
//!         varint size
//!         [zigzag varint Last-Modified seconds] [zigzag varint mtime ns]
//!         [varint n + n bytes: the stored checksum, `NAME=value`]
//! ```
//!
//! A reader ends a segment at the first block that is short, fails its
//! checksum, does not decode or breaks key order; what came before stands.
//! The caches are shortcuts, so a damaged tail costs requests or reads,
//! never a wrong answer.

use std::io::{self, Read, Write};

use crate::checksum::crc::CrcKind;
use crate::mtime::Nanos;

/// The known-mtimes segments; `-2` segments (no stored checksums) read
/// the same way.
pub const MAGIC: &[u8] = b"ferry-known-3\n";
const MAGIC_2: &[u8] = b"ferry-known-2\n";
/// Blocks are cut once their payload passes this; small enough that a
/// reader holds little, large enough that headers cost nothing.
const BLOCK: usize = 32 * 1024;
/// A length above this is damage, not a block ferry wrote.
const MAX_BLOCK: usize = 4 * 1024 * 1024;

const HAS_LM: u8 = 1;
const HAS_MTIME: u8 = 2;
const MD5_ETAG: u8 = 4;
const HAS_SUM: u8 = 8;

/// An entry type a segment holds: its bytes after the key.
pub trait Record: Sized + Clone + Send + 'static {
    /// The first bytes of a segment of these entries.
    const MAGIC: &'static [u8];
    /// Earlier magics (of the same length) whose entries decode alike.
    const ALSO_READS: &'static [&'static [u8]] = &[];
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(cur: &mut Cursor<'_>) -> Option<Self>;
}

/// What the cache keeps per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub etag: String,
    pub size: u64,
    /// Last-Modified in whole seconds, once seen in a listing.
    pub lm: Option<i64>,
    /// The stored mtime, or `None` when the object has no `mtime`
    /// metadata and Last-Modified is its time.
    pub mtime: Option<Nanos>,
    /// The full-object checksum the store keeps, `NAME=value` as
    /// `--checksum` compares it (`CRC64NVME=…`), once a HEAD showed it.
    pub sum: Option<String>,
}

impl Record for Entry {
    const MAGIC: &'static [u8] = MAGIC;
    const ALSO_READS: &'static [&'static [u8]] = &[MAGIC_2];

    fn encode(&self, out: &mut Vec<u8>) {
        let md5 = md5_bytes(&self.etag);
        let flags = if self.lm.is_some() { HAS_LM } else { 0 }
            | if self.mtime.is_some() { HAS_MTIME } else { 0 }
            | if md5.is_some() { MD5_ETAG } else { 0 }
            | if self.sum.is_some() { HAS_SUM } else { 0 };
        out.push(flags);
        match md5 {
            Some(b) => out.extend_from_slice(&b),
            None => put_bytes(out, self.etag.as_bytes()),
        }
        put_varint(out, self.size as u128);
        if let Some(lm) = self.lm {
            put_varint(out, zigzag(lm as i128));
        }
        if let Some(m) = self.mtime {
            put_varint(out, zigzag(m));
        }
        if let Some(s) = &self.sum {
            put_bytes(out, s.as_bytes());
        }
    }

    fn decode(cur: &mut Cursor<'_>) -> Option<Entry> {
        let flags = cur.byte()?;
        let etag = if flags & MD5_ETAG != 0 {
            hex::encode(cur.take(16)?)
        } else {
            cur.string()?
        };
        let size = u64::try_from(cur.varint()?).ok()?;
        let lm = if flags & HAS_LM != 0 {
            Some(i64::try_from(unzigzag(cur.varint()?)).ok()?)
        } else {
            None
        };
        let mtime = if flags & HAS_MTIME != 0 {
            Some(unzigzag(cur.varint()?))
        } else {
            None
        };
        let sum = if flags & HAS_SUM != 0 {
            Some(cur.string()?)
        } else {
            None
        };
        Some(Entry {
            etag,
            size,
            lm,
            mtime,
            sum,
        })
    }
}

pub struct Writer<W: Write, E: Record> {
    out: W,
    block: Vec<u8>,
    /// The previous key of the current block (front coding).
    prev: Vec<u8>,
    /// The last key written at all (order check across blocks).
    last: Option<Vec<u8>>,
    count: u64,
    entries: std::marker::PhantomData<E>,
}

impl<W: Write, E: Record> Writer<W, E> {
    pub fn new(mut out: W) -> io::Result<Writer<W, E>> {
        out.write_all(E::MAGIC)?;
        Ok(Writer {
            out,
            block: Vec::with_capacity(BLOCK + 256),
            prev: Vec::new(),
            last: None,
            count: 0,
            entries: std::marker::PhantomData,
        })
    }

    /// Appends an entry; keys must come in strictly ascending byte order.
    pub fn push(&mut self, key: &str, e: &E) -> io::Result<()> {
        let k = key.as_bytes();
        if self.last.as_deref().is_some_and(|l| l >= k) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cache keys out of order",
            ));
        }
        let shared = common_prefix(&self.prev, k);
        put_varint(&mut self.block, shared as u128);
        put_varint(&mut self.block, (k.len() - shared) as u128);
        self.block.extend_from_slice(&k[shared..]);
        e.encode(&mut self.block);
        self.count += 1;
        self.last = Some(k.to_vec());
        if self.block.len() >= BLOCK {
            self.flush_block()?;
        } else {
            self.prev.clear();
            self.prev.extend_from_slice(k);
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let crc = CrcKind::Crc32c.of_bytes(&self.block) as u32;
        self.out
            .write_all(&(self.block.len() as u32).to_le_bytes())?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&self.block)?;
        self.block.clear();
        self.prev.clear();
        Ok(())
    }

    /// Writes the last block; the entry count and the output come back.
    pub fn finish(mut self) -> io::Result<(u64, W)> {
        self.flush_block()?;
        self.out.flush()?;
        Ok((self.count, self.out))
    }
}

/// The entries of one segment in key order.
pub struct Reader<R: Read, E: Record> {
    input: R,
    block: Vec<u8>,
    pos: usize,
    key: Vec<u8>,
    last: Option<Vec<u8>>,
    done: bool,
    entries: std::marker::PhantomData<E>,
}

impl<R: Read, E: Record> Reader<R, E> {
    /// A reader of `input`; anything but a segment of `E` reads as empty.
    pub fn new(mut input: R) -> Reader<R, E> {
        let mut magic = vec![0u8; E::MAGIC.len()];
        let known = input.read_exact(&mut magic).is_ok()
            && (magic == E::MAGIC || E::ALSO_READS.contains(&magic.as_slice()));
        Reader {
            input,
            block: Vec::new(),
            pos: 0,
            key: Vec::new(),
            last: None,
            done: !known,
            entries: std::marker::PhantomData,
        }
    }

    fn next_block(&mut self) -> Option<()> {
        let mut head = [0u8; 8];
        self.input.read_exact(&mut head).ok()?;
        let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
        if len == 0 || len > MAX_BLOCK {
            return None;
        }
        self.block.resize(len, 0);
        self.input.read_exact(&mut self.block).ok()?;
        if CrcKind::Crc32c.of_bytes(&self.block) as u32 != crc {
            return None;
        }
        self.pos = 0;
        self.key.clear();
        Some(())
    }

    fn decode(&mut self) -> Option<(String, E)> {
        let mut cur = Cursor {
            buf: &self.block,
            pos: self.pos,
        };
        let shared = cur.varint()? as usize;
        let rest = cur.varint()? as usize;
        if shared > self.key.len() {
            return None;
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(cur.take(rest)?);
        let entry = E::decode(&mut cur)?;
        self.pos = cur.pos;
        if self
            .last
            .as_deref()
            .is_some_and(|l| l >= self.key.as_slice())
        {
            return None;
        }
        let key = String::from_utf8(self.key.clone()).ok()?;
        self.last = Some(self.key.clone());
        Some((key, entry))
    }
}

impl<R: Read, E: Record> Iterator for Reader<R, E> {
    type Item = (String, E);

    fn next(&mut self) -> Option<(String, E)> {
        if self.done {
            return None;
        }
        if self.pos >= self.block.len() && self.next_block().is_none() {
            self.done = true;
            return None;
        }
        let item = self.decode();
        if item.is_none() {
            self.done = true;
        }
        item
    }
}

/// Reading one record's bytes.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[cfg(test)]
    pub fn over(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    #[cfg(test)]
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    pub fn varint(&mut self) -> Option<u128> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u128);
    out.extend_from_slice(b);
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

pub fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// An ETag of exactly 32 lowercase hex digits (a plain MD5), as its bytes;
/// anything else (multipart, uppercase, SSE) is kept as written.
pub fn md5_bytes(etag: &str) -> Option<[u8; 16]> {
    let b = etag.as_bytes();
    if b.len() != 32 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(etag, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(etag: &str, size: u64, lm: Option<i64>, mtime: Option<Nanos>) -> Entry {
        Entry {
            etag: etag.into(),
            size,
            lm,
            mtime,
            sum: None,
        }
    }

    fn write(entries: &[(String, Entry)]) -> Vec<u8> {
        let mut w: Writer<_, Entry> = Writer::new(Vec::new()).unwrap();
        for (k, e) in entries {
            w.push(k, e).unwrap();
        }
        w.finish().unwrap().1
    }

    #[test]
    fn round_trips_across_blocks() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let entries: Vec<(String, Entry)> = (0..5000)
            .map(|i| {
                let e = match i % 4 {
                    0 => Entry {
                        sum: Some(format!("CRC64NVME={i:016x}")),
                        ..entry(md5, i, Some(1_700_000_000 + i as i64), Some(-5))
                    },
                    1 => entry("0123456789ABCDEF0123456789ABCDEF", 0, None, None),
                    2 => entry("abc-3", u64::MAX, Some(i64::MIN), Some(i128::MAX)),
                    _ => entry("", 7, Some(-1), Some(i128::MIN)),
                };
                (format!("dir/{:02}/file-{i:06}.bin", i % 7), e)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let bytes = write(&entries);
        assert!(bytes.len() > 2 * BLOCK, "several blocks: {}", bytes.len());
        let back: Vec<(String, Entry)> = Reader::new(&bytes[..]).collect();
        assert_eq!(back, entries);
        // A `-2` segment (no checksums) reads as it was written.
        let old: Vec<(String, Entry)> = entries
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    Entry {
                        sum: None,
                        ..e.clone()
                    },
                )
            })
            .collect();
        let mut bytes = write(&old);
        bytes[..MAGIC.len()].copy_from_slice(MAGIC_2);
        let back: Vec<(String, Entry)> = Reader::new(&bytes[..]).collect();
        assert_eq!(back, old);
    }

    #[test]
    fn refuses_keys_out_of_order() {
        let mut w: Writer<_, Entry> = Writer::new(Vec::new()).unwrap();
        let e = entry("x", 1, None, None);
        w.push("b", &e).unwrap();
        assert!(w.push("b", &e).is_err());
        assert!(w.push("a", &e).is_err());
    }

    #[test]
    fn damage_ends_the_segment_at_the_last_good_block() {
        let entries: Vec<(String, Entry)> = (0..4000)
            .map(|i| (format!("k{i:08}"), entry("e", i, Some(1), None)))
            .collect();
        let bytes = write(&entries);
        let whole: Vec<(String, Entry)> = Reader::new(&bytes[..]).collect();
        assert_eq!(whole.len(), 4000);
        // A flipped byte in the second block: the first block survives.
        let first_len = u32::from_le_bytes(bytes[MAGIC.len()..MAGIC.len() + 4].try_into().unwrap());
        let mut bad = bytes.clone();
        let at = MAGIC.len() + 8 + first_len as usize + 20;
        bad[at] ^= 0x40;
        let got: Vec<(String, Entry)> = Reader::new(&bad[..]).collect();
        assert!(!got.is_empty() && got.len() < 4000, "{}", got.len());
        assert_eq!(got[..], whole[..got.len()]);
        // A torn tail likewise.
        let torn: Vec<(String, Entry)> = Reader::new(&bytes[..bytes.len() - 3]).collect();
        assert!(torn.len() < 4000 && torn[..] == whole[..torn.len()]);
        // Not a segment at all.
        assert_eq!(Reader::<_, Entry>::new(&b"{\"format\":1}"[..]).count(), 0);
    }

    #[test]
    fn a_million_entries_are_compact() {
        // The shape the benchmark uses: 1,000 directories of 1,000 files.
        let mut w: Writer<_, Entry> = Writer::new(Vec::new()).unwrap();
        for d in 0..1000 {
            for f in 0..1000 {
                let key = format!("photos/d{d:04}/f{f:04}.jpg");
                let etag = format!("{:032x}", (d * 1000 + f) as u128 * 0x9e3779b97f4a7c15);
                let e = entry(
                    &etag,
                    1024,
                    Some(1_764_000_000),
                    Some(1_764_000_000_123_456_789),
                );
                w.push(&key, &e).unwrap();
            }
        }
        let (n, bytes) = w.finish().unwrap();
        assert_eq!(n, 1_000_000);
        // 16 of ETag, 9 of mtime, 5 of Last-Modified, 2 of size, a few of key.
        assert!(bytes.len() < 45_000_000, "{} bytes", bytes.len());
    }
}
