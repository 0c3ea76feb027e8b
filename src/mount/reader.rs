//! Reading an object through an open handle.
//!
//! A read that jumps somewhere new fetches the aligned 512 KiB block(s) it
//! touches, one GET; the kernel splits a large `pread` into 128 KiB
//! requests and reads a little ahead itself, and those follow-up requests
//! land in the same block instead of costing a GET each. Once reads have
//! continued one another four times in a row, they are served from
//! read-ahead windows: ranged GETs that run ahead of the reader, each twice
//! the size of the previous one (1 MiB up to 16 MiB), so a `cat` of a large
//! file streams at the link's speed after a cheap start.
//!
//! A handle reads one version of the object: every GET carries `If-Match`
//! with the ETag the handle started from (the node's, else the first
//! response's). If another client replaced the object, the server answers
//! 412 and the read fails with `Changed` (ESTALE) instead of splicing new
//! bytes after old ones.
//!
//! A handle read from the first byte to the last in order is verified
//! whole: the first read asks (HEAD, beside its GET) for the object's
//! stored CRC, the bytes are hashed as they are handed out, and the read
//! that reaches the end fails with EIO if they do not match. Reads out of
//! order end the check for that handle (nothing to combine them with).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::checksum::Crc;
use crate::store::{GetRequest, ObjectStore, StoreError, StoreErrorKind};
use crate::transfer::verify::Check;
use crate::transfer::MIB;

pub const FIRST_WINDOW: u64 = MIB;
pub const MAX_WINDOW: u64 = 16 * MIB;
/// Reads that are not (yet) sequential fetch the aligned blocks they touch.
pub const BLOCK: u64 = 512 * 1024;
/// Reads in a row that continue one another before read-ahead starts: more
/// than one `pread` and the kernel's own read-ahead behind it produce.
const SEQUENTIAL: u32 = 4;
/// Windows already read past are kept this long behind the reader, because
/// the kernel's concurrent reads can arrive slightly out of order.
const KEEP_BEHIND: u64 = 2 * MIB;
/// Attempts per GET; the store retried the request, this covers bodies
/// that break mid-stream.
const ATTEMPTS: u32 = 3;

struct Window {
    range: Range<u64>,
    data: Fetch,
    /// Read-ahead bytes this window holds against the mount's budget.
    charge: Option<(Arc<ReadAhead>, u64)>,
}

/// Bytes all handles of a mount may hold in read-ahead windows beyond what
/// their reads need right now; without it, many files streamed at once
/// would each hold tens of MiB.
#[derive(Debug)]
pub struct ReadAhead {
    used: AtomicU64,
    limit: u64,
}

impl ReadAhead {
    pub fn new(limit: u64) -> Arc<ReadAhead> {
        Arc::new(ReadAhead {
            used: AtomicU64::new(0),
            limit,
        })
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok()
    }

    #[cfg(test)]
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// A range's bytes and the ETag of the response that carried them.
type Fetched = (Bytes, String);

enum Fetch {
    Pending(tokio::task::JoinHandle<Result<Fetched, StoreError>>),
    Ready(Fetched),
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Fetch::Pending(h) = &self.data {
            h.abort();
        }
        if let Some((budget, n)) = self.charge.take() {
            budget.used.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

impl Window {
    async fn bytes(&mut self) -> Result<Fetched, StoreError> {
        if let Fetch::Pending(h) = &mut self.data {
            let got = h.await.unwrap_or_else(|e| {
                Err(StoreError::new(
                    StoreErrorKind::Network,
                    format!("read-ahead task failed: {e}"),
                ))
            })?;
            self.data = Fetch::Ready(got);
        }
        match &self.data {
            Fetch::Ready(b) => Ok(b.clone()),
            Fetch::Pending(_) => unreachable!("resolved above"),
        }
    }
}

/// One GET of a range, with the whole body, retried if the body breaks;
/// only of version `if_match` when given. Returns the response's ETag too.
pub async fn fetch_range(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    range: Range<u64>,
    if_match: Option<&str>,
) -> Result<Fetched, StoreError> {
    let want = range.end - range.start;
    let mut attempt = 1;
    loop {
        let got = match store
            .get_object(
                bucket,
                key,
                &GetRequest::range(range.clone()).if_match(if_match),
            )
            .await
        {
            Ok(out) => {
                let etag = out.meta.etag.clone();
                out.bytes().await.map(|b| (b, etag))
            }
            Err(e) => Err(e),
        };
        match got {
            Ok((b, etag)) if b.len() as u64 == want => return Ok((b, etag)),
            Ok((b, _)) => {
                return Err(StoreError::new(
                    StoreErrorKind::Truncated,
                    format!("{key}: asked for {want} bytes, got {}", b.len()),
                ))
            }
            Err(e) if e.worth_another_try() && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The whole-object check of a handle read in order.
enum InOrder {
    /// The HEAD that says what to check, asked at the first read.
    Asking(tokio::task::JoinHandle<Result<crate::store::ObjectMeta, StoreError>>),
    /// Hashing: the bytes handed out so far, all of them from offset 0.
    Hashing {
        crc: Box<Crc>,
        expected: u64,
        pos: u64,
    },
    /// Nothing (more) to check.
    Off,
}

/// Read state of one open handle on a remote object.
pub struct RemoteReader {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
    size: u64,
    /// The version this handle reads; `None` until a response names it
    /// when the node knew no ETag.
    etag: Option<String>,
    /// Set once the object was found replaced: every later read fails the
    /// same way, without asking again.
    changed: bool,
    windows: VecDeque<Window>,
    next_len: u64,
    /// Where the previous read ended: a read starting here continues it.
    expect: Option<u64>,
    /// Reads in a row that continued the one before.
    streak: u32,
    budget: Arc<ReadAhead>,
    in_order: InOrder,
    /// GETs issued, for tests and statistics.
    pub gets: u64,
    /// Whether a read reached the end in order and matched the stored CRC.
    pub verified: bool,
}

impl RemoteReader {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        bucket: &str,
        key: &str,
        size: u64,
        etag: Option<&str>,
        budget: Arc<ReadAhead>,
    ) -> Self {
        RemoteReader {
            budget,
            store,
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
            etag: etag.filter(|e| !e.is_empty()).map(str::to_string),
            changed: false,
            windows: VecDeque::new(),
            next_len: FIRST_WINDOW,
            expect: None,
            streak: 0,
            in_order: InOrder::Off,
            gets: 0,
            verified: false,
        }
    }

    /// Whether this reader reads `key` (a rename through the mount makes a
    /// new one). A new version under the same key does not: the handle
    /// keeps reading the version it started with, or fails.
    pub fn reads(&self, key: &str) -> bool {
        self.key == key
    }

    fn changed_error(&self) -> StoreError {
        StoreError::new(
            StoreErrorKind::Changed,
            format!(
                "{}: the object was replaced while open; reopen it to read the new version",
                self.key
            ),
        )
    }

    fn covered(&self, off: u64) -> bool {
        match (self.windows.front(), self.windows.back()) {
            (Some(f), Some(b)) => off >= f.range.start && off < b.range.end,
            _ => false,
        }
    }

    fn spawn_window(&mut self, start: u64, len: u64, charge: Option<(Arc<ReadAhead>, u64)>) {
        let len = len.min(self.size - start);
        let range = start..start + len;
        let (store, bucket, key) = (self.store.clone(), self.bucket.clone(), self.key.clone());
        let etag = self.etag.clone();
        let r = range.clone();
        let h = tokio::spawn(async move {
            fetch_range(store.as_ref(), &bucket, &key, r, etag.as_deref()).await
        });
        self.gets += 1;
        self.windows.push_back(Window {
            range,
            data: Fetch::Pending(h),
            charge,
        });
    }

    pub async fn read(&mut self, off: u64, len: u32) -> Result<Bytes, StoreError> {
        if self.changed {
            return Err(self.changed_error());
        }
        let end = (off + len as u64).min(self.size);
        if off >= end {
            return Ok(Bytes::new());
        }
        if self.expect.is_none() && off == 0 && self.size > 0 {
            let (store, bucket, key) = (self.store.clone(), self.bucket.clone(), self.key.clone());
            self.in_order = InOrder::Asking(tokio::spawn(async move {
                store.head_object(&bucket, &key).await
            }));
        }
        let continues = self.expect == Some(off) || (self.expect.is_none() && off == 0);
        self.streak = if continues { self.streak + 1 } else { 0 };
        self.expect = Some(end);
        while self
            .windows
            .front()
            .is_some_and(|w| w.range.end + KEEP_BEHIND <= off)
        {
            self.windows.pop_front();
        }
        if !self.covered(off) {
            // Somewhere new: read-ahead starts over from the smallest window.
            self.windows.clear();
            self.next_len = FIRST_WINDOW;
        }
        let mut next = self
            .windows
            .back()
            .map_or(off / BLOCK * BLOCK, |w| w.range.end);
        if self.streak >= SEQUENTIAL {
            // Cover the read, plus two (growing) windows beyond it, so one GET
            // is always in flight while the reader consumes another.
            let target = (end + 2 * self.next_len).min(self.size);
            while next < target {
                let len = self.next_len.min(self.size - next);
                // Windows the read itself needs are always fetched; those
                // purely ahead of it only while the mount's budget allows.
                let charge = if next >= end {
                    if !self.budget.try_take(len) {
                        break;
                    }
                    Some((self.budget.clone(), len))
                } else {
                    None
                };
                self.spawn_window(next, len, charge);
                self.next_len = (self.next_len * 2).min(MAX_WINDOW);
                next += len;
            }
        } else {
            // Just the aligned blocks the read touches: the kernel's next
            // requests (the rest of a large pread, its own read-ahead) fall
            // in the same block instead of costing a GET each.
            while next < end {
                self.spawn_window(next, BLOCK, None);
                next += BLOCK.min(self.size - next);
            }
        }
        let mut out = BytesMut::with_capacity((end - off) as usize);
        for i in 0..self.windows.len() {
            let (ws, we) = (self.windows[i].range.start, self.windows[i].range.end);
            if we <= off || ws >= end {
                continue;
            }
            let got = match self.windows[i].bytes().await {
                // Windows spawned before any response named the version
                // carried no If-Match: compare instead.
                Ok((_, etag))
                    if !etag.is_empty() && self.etag.as_ref().is_some_and(|w| *w != etag) =>
                {
                    Err(self.changed_error())
                }
                Ok((data, etag)) => {
                    if self.etag.is_none() && !etag.is_empty() {
                        self.etag = Some(etag);
                    }
                    Ok(data)
                }
                Err(e) => Err(e),
            };
            let data = match got {
                Ok(d) => d,
                Err(e) => {
                    // Forget the failed window so the next read retries it.
                    self.windows.clear();
                    self.next_len = FIRST_WINDOW;
                    if e.kind == StoreErrorKind::Changed {
                        self.changed = true;
                    }
                    return Err(e);
                }
            };
            let from = (off.max(ws) - ws) as usize;
            let to = (end.min(we) - ws) as usize;
            out.extend_from_slice(&data[from..to]);
        }
        let out = out.freeze();
        self.check_in_order(off, &out).await?;
        Ok(out)
    }

    /// Hashes what a read hands out while reads go in order from 0; at the
    /// end, the CRC must be the stored one.
    async fn check_in_order(&mut self, off: u64, data: &[u8]) -> Result<(), StoreError> {
        if let InOrder::Asking(h) = &mut self.in_order {
            let head = h.await.ok().and_then(Result::ok);
            self.in_order = match head {
                // Only the version this handle reads, and only a check
                // that combines (a stored FULL_OBJECT CRC or OSS's CRC-64).
                Some(m) if self.etag.as_deref().is_none_or(|e| e == m.etag) => {
                    match Check::choose(&m, false) {
                        Check::Crc { kind, expected } => InOrder::Hashing {
                            crc: Box::new(Crc::new(kind)),
                            expected,
                            pos: 0,
                        },
                        _ => InOrder::Off,
                    }
                }
                _ => InOrder::Off,
            };
        }
        let InOrder::Hashing { crc, expected, pos } = &mut self.in_order else {
            return Ok(());
        };
        if off != *pos {
            self.in_order = InOrder::Off;
            return Ok(());
        }
        crc.update(data);
        *pos += data.len() as u64;
        if *pos < self.size {
            return Ok(());
        }
        let (got, want, kind) = (crc.finish(), *expected, crc.kind());
        self.in_order = InOrder::Off;
        if got != want {
            return Err(StoreError::new(
                StoreErrorKind::Integrity,
                format!(
                    "{}: the data read has {} {}, the store says {}",
                    self.key,
                    kind.name(),
                    kind.show(got),
                    kind.show(want)
                ),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{Body, PutOptions};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_file_read_in_order_is_verified_whole_and_bit_rot_is_an_error() {
        let store = MemoryStore::with_bucket("b");
        let d = data((3 * MIB) as usize + 17);
        for key in ["good", "rotten"] {
            store
                .put_object("b", key, Body::new(d.clone()), &PutOptions::default())
                .await
                .unwrap();
        }
        store.corrupt("b", "rotten", 2 * MIB as usize);
        async fn read_all(
            store: Arc<MemoryStore>,
            key: &str,
            len: u64,
        ) -> (bool, Result<(), StoreError>, u64) {
            let mut r = RemoteReader::new(store, "b", key, len, None, ReadAhead::new(64 * MIB));
            let mut off = 0u64;
            while off < len {
                match r.read(off, 128 * 1024).await {
                    Ok(b) => off += b.len() as u64,
                    Err(e) => return (r.verified, Err(e), off),
                }
            }
            (r.verified, Ok(()), off)
        }
        let len = d.len() as u64;
        let (verified, last, _) = read_all(store.clone(), "good", len).await;
        assert!(verified && last.is_ok());
        let (verified, last, off) = read_all(store.clone(), "rotten", len).await;
        let e = last.unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Integrity, "{e}");
        assert!(e.message.contains("CRC64NVME"), "{e}");
        // Caught at the read that reaches the end, not before.
        assert!(!verified && off + 128 * 1024 >= d.len() as u64);
        // Out of order: nothing to check, nothing claimed.
        let mut r = RemoteReader::new(
            store.clone(),
            "b",
            "good",
            d.len() as u64,
            None,
            ReadAhead::new(64 * MIB),
        );
        r.read(MIB, 1000).await.unwrap();
        r.read(0, 1000).await.unwrap();
        assert!(!r.verified);
    }

    #[tokio::test]
    async fn sequential_reads_grow_the_window_and_random_reads_fetch_blocks() {
        let store = MemoryStore::with_bucket("b");
        let d = data((40 * MIB) as usize);
        store
            .put_object("b", "k", Body::new(d.clone()), &PutOptions::default())
            .await
            .unwrap();
        let budget = ReadAhead::new(64 * MIB);
        let mut r = RemoteReader::new(
            store.clone(),
            "b",
            "k",
            d.len() as u64,
            None,
            budget.clone(),
        );
        let chunk = 128 * 1024u32;
        let mut off = 0u64;
        while off < d.len() as u64 {
            let got = r.read(off, chunk).await.unwrap();
            let end = (off as usize + chunk as usize).min(d.len());
            assert_eq!(&got[..], &d[off as usize..end]);
            off += chunk as u64;
        }
        // One block, then 1+2+4+8+16+16 MiB windows cover 40 MiB: a handful
        // of GETs, not 320.
        assert!(r.gets <= 8, "{} GETs", r.gets);

        drop(r);
        assert_eq!(budget.in_use(), 0, "windows give their budget back");
        let mut r = RemoteReader::new(
            store.clone(),
            "b",
            "k",
            d.len() as u64,
            None,
            budget.clone(),
        );
        for (o, l) in [
            (5_000_000u64, 10u32),
            (123, 4096),
            (39 * MIB, 128 * 1024),
            (39 * MIB + 128 * 1024, 128 * 1024),
        ] {
            let got = r.read(o, l).await.unwrap();
            let end = (o as usize + l as usize).min(d.len());
            assert_eq!(&got[..], &d[o as usize..end]);
        }
        assert_eq!(r.gets, 3, "one block per jump; reads within it are free");
        assert!(r.read(d.len() as u64, 10).await.unwrap().is_empty());
    }

    /// With no ETag to start from, the first response's pins the version.
    #[tokio::test]
    async fn the_first_response_pins_the_version() {
        let store = MemoryStore::with_bucket("b");
        let put = |d: Vec<u8>| {
            let store = store.clone();
            async move {
                store
                    .put_object("b", "k", Body::new(d), &PutOptions::default())
                    .await
                    .unwrap()
            }
        };
        put(data((2 * MIB) as usize)).await;
        let mut r = RemoteReader::new(store.clone(), "b", "k", 2 * MIB, None, ReadAhead::new(0));
        r.read(0, 10).await.unwrap();
        put(vec![7; (2 * MIB) as usize]).await;
        let e = r.read(MIB, 10).await.unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Changed, "{e}");
    }

    #[tokio::test]
    async fn read_ahead_stays_within_the_budget() {
        let store = MemoryStore::with_bucket("b");
        let d = data((8 * MIB) as usize);
        store
            .put_object("b", "k", Body::new(d.clone()), &PutOptions::default())
            .await
            .unwrap();
        let budget = ReadAhead::new(0);
        let mut r = RemoteReader::new(
            store.clone(),
            "b",
            "k",
            d.len() as u64,
            None,
            budget.clone(),
        );
        let chunk = 128 * 1024u32;
        let mut off = 0u64;
        while off < d.len() as u64 {
            let got = r.read(off, chunk).await.unwrap();
            assert_eq!(&got[..], &d[off as usize..off as usize + chunk as usize]);
            off += chunk as u64;
        }
        assert_eq!(budget.in_use(), 0);
    }
}
