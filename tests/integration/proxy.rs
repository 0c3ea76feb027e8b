//! A TCP proxy in front of the server that records every request it
//! forwards (method, target, body length) and the response bytes it returns,
//! optionally throttled. Tests count what the server received here, never
//! trusting ferry's own report.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub body_len: u64,
}

/// The targets of the writes the server received: PUTs (objects and
/// parts) and CreateMultipartUpload POSTs.
pub fn writes(p: &Proxy) -> Vec<String> {
    p.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || (r.method == "POST" && r.target.contains("uploads")))
        .map(|r| r.target)
        .collect()
}

#[derive(Default)]
pub struct Counters {
    pub requests: Mutex<Vec<Request>>,
    pub response_bytes: AtomicU64,
    /// Bytes per second over all connections together; 0 = unlimited.
    pub rate: AtomicU64,
    /// When the shared link is free again (the throttle's schedule).
    pub free_at: Mutex<Option<std::time::Instant>>,
    pub stop: AtomicBool,
    /// Connections whose server side is still open.
    pub active: AtomicU64,
    /// Simulated outage: new connections are dropped, open ones cut.
    pub down: AtomicBool,
    /// Connections dropped because of the outage.
    pub refused: AtomicU64,
    /// A one-shot cut: the first request whose target contains this stops
    /// being forwarded once its head (and what came with it) is through.
    pub cut: Mutex<Option<String>>,
    /// Set once the cut took place.
    pub cut_done: AtomicBool,
}

pub struct Proxy {
    pub endpoint: String,
    pub counters: Arc<Counters>,
}

impl Proxy {
    pub fn start(upstream: &str, rate: u64) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        counters.rate.store(rate, Ordering::Relaxed);
        let c = counters.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if c.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if c.down.load(Ordering::Relaxed) {
                    c.refused.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                c.active.fetch_add(1, Ordering::SeqCst);
                let (c1, c2) = (c.clone(), c.clone());
                let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || upstream_pump(client, server, c1));
                std::thread::spawn(move || downstream_pump(server2, client2, c2));
            }
        });
        Proxy {
            endpoint: format!("http://{addr}"),
            counters,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.counters.requests.lock().unwrap().clone()
    }

    /// Body bytes of requests whose method is `method` and whose target
    /// contains `needle`.
    pub fn body_bytes(&self, method: &str, needle: &str) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.target.contains(needle))
            .map(|r| r.body_len)
            .sum()
    }

    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.target.contains(needle))
            .count()
    }

    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Starts or ends a simulated server outage.
    pub fn set_down(&self, down: bool) {
        self.counters.down.store(down, Ordering::Relaxed);
    }

    /// Forget what was counted so far and change the rate: the next run
    /// goes through the same endpoint (the same command) but is counted alone.
    pub fn reset(&self, rate: u64) {
        // Bytes still draining from a killed client's connections belong to
        // the old run; wait for those connections to close first.
        crate::harness::wait_for(30, "old connections to close", || {
            self.counters.active.load(Ordering::SeqCst) == 0
        });
        self.counters.requests.lock().unwrap().clear();
        self.counters.response_bytes.store(0, Ordering::Relaxed);
        self.counters.rate.store(rate, Ordering::Relaxed);
    }

    /// Arms the cut: the next request whose target contains `needle`
    /// reaches the server with only the start of its body, and the rest
    /// of that connection is held (no answer), as when the client dies in
    /// the middle of a part. [`Proxy::was_cut`] tells when it happened.
    pub fn cut_body_of(&self, needle: &str) {
        *self.counters.cut.lock().unwrap() = Some(needle.to_string());
    }

    pub fn was_cut(&self) -> bool {
        self.counters.cut_done.load(Ordering::SeqCst)
    }

    pub fn response_bytes(&self) -> u64 {
        self.counters.response_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.counters.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

fn throttle(c: &Counters, n: usize) {
    let rate = c.rate.load(Ordering::Relaxed);
    if rate == 0 {
        return;
    }
    // One schedule for all connections, so parallel parts share the rate.
    let wake = {
        let mut free = c.free_at.lock().unwrap();
        let now = std::time::Instant::now();
        let start = free.filter(|t| *t > now).unwrap_or(now);
        let done = start + Duration::from_secs_f64(n as f64 / rate as f64);
        *free = Some(done);
        done
    };
    let now = std::time::Instant::now();
    if wake > now {
        std::thread::sleep(wake - now);
    }
}

/// How much of a cut request's body still reaches the server.
const CUT_AFTER: usize = 1 << 20;

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Client to server: parse request heads to record each request, forward
/// everything byte for byte.
fn upstream_pump(mut client: TcpStream, mut server: TcpStream, c: Arc<Counters>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut body_left: u64 = 0;
    let mut held = false;
    // Body bytes a cut request still gets before the hold: some of the
    // part reaches the server, as when a client dies mid-upload.
    let mut pass_left: usize = CUT_AFTER;
    loop {
        // Parse as many complete heads as the buffer holds.
        loop {
            if body_left > 0 {
                let take = (body_left as usize).min(buf.len());
                if take == 0 {
                    break;
                }
                buf.drain(..take);
                body_left -= take as u64;
                continue;
            }
            let Some(end) = find_head_end(&buf) else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or("").split(' ');
            let method = first.next().unwrap_or("").to_string();
            let target = first.next().unwrap_or("").to_string();
            let len: u64 = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            {
                let mut cut = c.cut.lock().unwrap();
                if cut.as_deref().is_some_and(|n| target.contains(n)) {
                    *cut = None;
                    held = true;
                    c.cut_done.store(true, Ordering::SeqCst);
                }
            }
            c.requests.lock().unwrap().push(Request {
                method,
                target,
                body_len: len,
            });
            buf.drain(..end);
            body_left = len;
        }
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if c.down.load(Ordering::Relaxed) {
            break;
        }
        if held {
            // Then read and drop: the client sees its body taken, the
            // server gets no more of it until the client goes away.
            let through = n.min(pass_left);
            pass_left -= through;
            if through > 0 && server.write_all(&chunk[..through]).is_err() {
                break;
            }
            continue;
        }
        throttle(&c, n);
        if server.write_all(&chunk[..n]).is_err() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if held {
        // The server is left with a request cut short: close it hard.
        let _ = server.shutdown(Shutdown::Both);
    }
    let _ = server.shutdown(Shutdown::Write);
    if c.down.load(Ordering::Relaxed) {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
}

fn downstream_pump(mut server: TcpStream, mut client: TcpStream, c: Arc<Counters>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match server.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if c.down.load(Ordering::Relaxed) {
            break;
        }
        throttle(&c, n);
        c.response_bytes.fetch_add(n as u64, Ordering::Relaxed);
        if client.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    let _ = server.shutdown(Shutdown::Both);
    c.active.fetch_sub(1, Ordering::SeqCst);
}
