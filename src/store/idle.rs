//! Timeouts that measure silence, not size: a request fails only when no
//! byte has moved in either direction for the idle limit, however long a
//! large or rate-limited body takes as a whole.
//!
//! Sending: every chunk the connection takes from the request body counts
//! as progress, and a body waiting on our own bandwidth limiter is not the
//! peer's silence. Waiting for the response head counts as silence.
//! Receiving: the limit runs only while the reader is waiting on the
//! connection, so a slow consumer (a disk, `--bwlimit`) never trips it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep};

/// When bytes last moved on one request attempt.
#[derive(Debug)]
pub struct Activity {
    last: Mutex<Instant>,
    /// The body is waiting on our own limiter, not on the peer.
    paused: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            last: Mutex::new(Instant::now()),
            paused: AtomicBool::new(false),
        })
    }

    pub fn touch(&self) {
        *self.last.lock().unwrap() = Instant::now();
    }

    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    pub async fn silent_for(&self, limit: Duration) {
        loop {
            let deadline = if self.paused.load(Ordering::Relaxed) {
                Instant::now() + limit
            } else {
                *self.last.lock().unwrap() + limit
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request body that reports each chunk the connection takes. A body
/// that is `Pending` is waiting on the bandwidth limiter (an in-memory
/// body is otherwise always ready), which pauses the watchdog.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S, E> Stream for Watched<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Being asked for more means the last chunk went out.
        self.activity.touch();
        let r = Pin::new(&mut self.inner).poll_next(cx);
        match &r {
            Poll::Pending => self.activity.set_paused(true),
            Poll::Ready(_) => {
                self.activity.set_paused(false);
                self.activity.touch();
            }
        }
        r
    }
}

/// A response body that fails with `on_idle()` when the connection stays
/// silent for `limit` while the reader waits on it.
pub struct Guarded<S, F> {
    inner: S,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    on_idle: F,
    done: bool,
}

impl<S, F> Guarded<S, F> {
    pub fn new(inner: S, limit: Duration, on_idle: F) -> Self {
        Guarded {
            inner,
            limit,
            timer: None,
            on_idle,
            done: false,
        }
    }
}

impl<S, T, E, F> Stream for Guarded<S, F>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    F: Fn() -> E + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(item) => {
                // The next wait starts when the reader asks again.
                self.timer = None;
                if item.is_none() {
                    self.done = true;
                }
                Poll::Ready(item)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.done = true;
                        Poll::Ready(Some(Err((self.on_idle)())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_paced_by_us_is_not_silence() {
        let activity = Activity::new();
        // A body that yields a chunk every 5 s of our own pacing.
        let slow = futures::stream::iter(0..4).then(|_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ()>(Bytes::from_static(b"x"))
        });
        let body = Watched::new(Box::pin(slow), activity.clone());
        let sent = async { body.collect::<Vec<_>>().await.len() };
        tokio::select! {
            n = sent => assert_eq!(n, 4),
            _ = activity.silent_for(Duration::from_secs(1)) => panic!("watchdog fired on our own pacing"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_the_peer_is_silence() {
        let activity = Activity::new();
        let never = futures::future::pending::<()>();
        tokio::select! {
            _ = never => unreachable!(),
            _ = activity.silent_for(Duration::from_secs(1)) => {}
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_fails_only_while_the_reader_waits() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<u32, &str>>();
        tokio::spawn(async move {
            tx.unbounded_send(Ok(1)).unwrap();
            tokio::time::sleep(Duration::from_millis(10_500)).await;
            tx.unbounded_send(Ok(2)).unwrap();
            // Then silence, with the connection still open.
            futures::future::pending::<()>().await;
        });
        let mut body = Guarded::new(rx, Duration::from_secs(1), || "idle");
        assert_eq!(body.next().await, Some(Ok(1)));
        // A slow consumer: its time away from the stream is not counted.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(body.next().await, Some(Ok(2)));
        assert_eq!(body.next().await, Some(Err("idle")));
        assert_eq!(body.next().await, None);
    }
}
