//! `--bwlimit`: one schedule shared by every request of a store, so the
//! limit holds for the whole process however many parts are in flight.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;

/// A token bucket kept as "when the link is free again": each chunk books
/// its transmission time after the previous one and waits for its slot.
/// Up to `BURST` of idle time is forgiven, so short pauses don't bank an
/// unbounded credit.
#[derive(Debug)]
pub struct Bandwidth {
    bytes_per_sec: u64,
    free_at: Mutex<Option<Instant>>,
}

const BURST: Duration = Duration::from_millis(250);
/// Chunk size for paced bodies: small enough for a smooth rate, large
/// enough that pacing costs nothing measurable.
pub const CHUNK: usize = 64 * 1024;

impl Bandwidth {
    pub fn new(bytes_per_sec: u64) -> Self {
        Bandwidth {
            bytes_per_sec: bytes_per_sec.max(1),
            free_at: Mutex::new(None),
        }
    }

    pub fn rate(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Waits until `n` more bytes may pass.
    pub async fn take(&self, n: usize) {
        let wake = {
            let mut free = self.free_at.lock().unwrap();
            let now = Instant::now();
            let earliest = now.checked_sub(BURST).unwrap_or(now);
            let start = free.filter(|t| *t > earliest).unwrap_or(earliest);
            let done = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
            *free = Some(done);
            done
        };
        tokio::time::sleep_until(wake).await;
    }
}

/// The body as a paced stream of chunks.
pub fn paced(
    data: Bytes,
    bw: std::sync::Arc<Bandwidth>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(CHUNK)
        .map(|i| data.slice(i..(i + CHUNK).min(data.len())))
        .collect();
    futures::stream::iter(chunks).then(move |c| {
        let bw = bw.clone();
        async move {
            bw.take(c.len()).await;
            Ok(c)
        }
    })
}

use futures::StreamExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let bw = Bandwidth::new(1024 * 1024);
        let start = Instant::now();
        for _ in 0..16 {
            bw.take(256 * 1024).await;
        }
        // 4 MiB at 1 MiB/s, less the forgiven burst.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(3700) && took <= Duration::from_millis(4100),
            "{took:?}"
        );
    }
}
