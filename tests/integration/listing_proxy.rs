//! An HTTP-aware proxy in front of the server that rewrites ListObjectsV2
//! response bodies, so tests can show ferry a listing encoded the way
//! another store (AWS) encodes it while the objects live on Garage.
//!
//! Each client request is read whole, sent upstream on a fresh connection
//! with `Connection: close`, and the whole response read back (de-chunked).
//! Every request header is forwarded unchanged (ferry signs `Host`); only
//! the bodies of `list-type=2` responses are rewritten, with a corrected
//! `Content-Length`. The client's connection is kept alive between requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What AWS sends where Garage sends `%20`: under `encoding-type=url` AWS
/// form-encodes names, so a space arrives as `+` (and a literal `+` as
/// `%2B`, which Garage already sends).
pub fn aws_style(body: &str) -> String {
    body.replace("%20", "+")
}

/// Method, target and header fields of one request.
pub type RequestHead = (String, String, Vec<(String, String)>);

#[derive(Default)]
pub struct ListingCounters {
    /// ListObjectsV2 requests forwarded.
    pub lists: AtomicU64,
    /// Listing responses whose body the rewrite actually changed.
    pub rewritten: AtomicU64,
    /// Method and target of every request forwarded.
    pub requests: Mutex<Vec<(String, String)>>,
    /// Method, target and header fields of every request forwarded.
    pub heads: Mutex<Vec<RequestHead>>,
    stop: AtomicBool,
}

pub struct ListingProxy {
    pub endpoint: String,
    pub counters: Arc<ListingCounters>,
}

impl ListingProxy {
    pub fn start(upstream: &str, rewrite: fn(&str) -> String) -> ListingProxy {
        Self::start_with(upstream, rewrite, |_, _, _, _| {})
    }

    /// As `start`, with `respond` given every response (request method and
    /// target, response headers, body) to change as another store would.
    pub fn start_with(
        upstream: &str,
        rewrite: fn(&str) -> String,
        respond: Respond,
    ) -> ListingProxy {
        Self::start_full(upstream, rewrite, respond, |_, _, _| {})
    }

    /// As `start_with`, with `request` given every request body (method,
    /// target, body) before it goes upstream: a wire that breaks bytes.
    pub fn start_full(
        upstream: &str,
        rewrite: fn(&str) -> String,
        respond: Respond,
        request: RequestHook,
    ) -> ListingProxy {
        Self::start_hooked(upstream, (rewrite, respond, request, |_, _, _| None))
    }

    /// A proxy that answers some requests itself, as another store would
    /// (a redirect to the bucket's region), and forwards the rest.
    pub fn start_answering(upstream: &str, answer: Answer) -> ListingProxy {
        Self::start_hooked(
            upstream,
            (|s| s.to_string(), |_, _, _, _| {}, |_, _, _| {}, answer),
        )
    }

    fn start_hooked(upstream: &str, hooks: Hooks) -> ListingProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(ListingCounters::default());
        let c = counters.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if c.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (c, upstream) = (c.clone(), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, hooks, &c));
            }
        });
        ListingProxy {
            endpoint: format!("http://{addr}"),
            counters,
        }
    }

    pub fn lists(&self) -> u64 {
        self.counters.lists.load(Ordering::Relaxed)
    }

    pub fn rewritten(&self) -> u64 {
        self.counters.rewritten.load(Ordering::Relaxed)
    }

    /// Requests whose method is `method` and whose target contains `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.counters
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, t)| m == method && t.contains(needle))
            .count()
    }

    /// The header fields of the requests whose method is `method` and
    /// whose target contains `needle`, names lower-cased.
    pub fn headers_of(&self, method: &str, needle: &str) -> Vec<Vec<(String, String)>> {
        self.counters
            .heads
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, t, _)| m == method && t.contains(needle))
            .map(|(_, _, h)| {
                h.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .collect()
    }

    pub fn reset(&self) {
        self.counters.requests.lock().unwrap().clear();
        self.counters.lists.store(0, Ordering::Relaxed);
        self.counters.rewritten.store(0, Ordering::Relaxed);
    }
}

impl Drop for ListingProxy {
    fn drop(&mut self) {
        self.counters.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// One parsed message head: the start line and the header fields in order.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn is_chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.get("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    fn bytes(&self) -> Vec<u8> {
        let mut s = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// Reads a head up to CRLFCRLF; `None` on a clean EOF before any byte.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head { start, headers }))
}

/// A chunked body as it came (framing included), for forwarding verbatim.
fn read_chunked_raw(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        raw.extend_from_slice(line.as_bytes());
        let size_hex = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    raw.extend_from_slice(t.as_bytes());
                    return Ok(raw);
                }
                raw.extend_from_slice(t.as_bytes());
            }
        }
        let mut data = vec![0u8; size + 2];
        r.read_exact(&mut data)?;
        raw.extend_from_slice(&data);
    }
}

/// Removes chunked framing from a complete body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&body[..eol]);
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        body = &body[eol + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body[size..].strip_prefix(b"\r\n").unwrap_or(&body[size..]);
    }
    out
}

/// A response hook: method, target, headers, body.
pub type Respond = fn(&str, &str, &mut Vec<(String, String)>, &mut Vec<u8>);

/// A request hook: method, target, body.
pub type RequestHook = fn(&str, &str, &mut Vec<u8>);

/// What an answer hook answers with instead of forwarding: a status,
/// header fields and a body; `None` forwards the request.
pub type Answered = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

/// An answer hook: method, target and header fields of a request; a
/// status, header fields and body to answer with instead of forwarding.
pub type Answer = fn(&str, &str, &[(String, String)]) -> Answered;

/// What the proxy changes: listing bodies, responses, requests, and the
/// requests it answers itself.
type Hooks = (fn(&str) -> String, Respond, RequestHook, Answer);

fn serve(client: TcpStream, upstream: &str, hooks: Hooks, c: &ListingCounters) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
    let mut out = client.try_clone().unwrap();
    let mut reader = BufReader::new(client);
    while let Ok(true) = one_exchange(&mut reader, &mut out, upstream, hooks, c) {}
    let _ = out.shutdown(Shutdown::Both);
}

/// Forwards one request and its response; `Ok(true)` if the client's
/// connection stays open for another.
fn one_exchange(
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
    upstream: &str,
    (rewrite, respond, request, answer): Hooks,
    c: &ListingCounters,
) -> std::io::Result<bool> {
    let Some(mut req) = read_head(reader)? else {
        return Ok(false);
    };
    let mut parts = req.start.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let is_list = target.contains("list-type=2");
    if is_list {
        c.lists.fetch_add(1, Ordering::Relaxed);
    }
    c.requests
        .lock()
        .unwrap()
        .push((method.clone(), target.clone()));
    c.heads
        .lock()
        .unwrap()
        .push((method.clone(), target.clone(), req.headers.clone()));
    let client_keeps_alive = !req
        .get("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    // A client waiting for 100 Continue gets it from us; the upstream's
    // own interim response is dropped below.
    if req
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = if req.is_chunked() {
        read_chunked_raw(reader)?
    } else {
        let mut b = vec![0u8; req.content_length().unwrap_or(0)];
        reader.read_exact(&mut b)?;
        request(&method, &target, &mut b);
        b
    };
    if let Some((code, headers, body)) = answer(&method, &target, &req.headers) {
        let mut resp = Head {
            start: format!("HTTP/1.1 {code} Answered"),
            headers,
        };
        let bodiless = method == "HEAD" || code == 204 || code == 304;
        let body = if bodiless { Vec::new() } else { body };
        if !bodiless {
            resp.set("Content-Length", &body.len().to_string());
        }
        if !client_keeps_alive {
            resp.set("Connection", "close");
        }
        out.write_all(&resp.bytes())?;
        out.write_all(&body)?;
        out.flush()?;
        return Ok(client_keeps_alive);
    }
    req.remove("keep-alive");
    req.set("Connection", "close");

    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    up.write_all(&req.bytes())?;
    up.write_all(&body)?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw)?;

    // Skip interim (1xx) responses, keep the final one.
    let mut rest: &[u8] = &raw;
    let (mut resp, body_start) = loop {
        let mut r = BufReader::new(rest);
        let Some(head) = read_head(&mut r)? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let used = rest.len() - r.buffer().len() - r.get_ref().len();
        let status: u16 = head
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            rest = &rest[used..];
            continue;
        }
        break (head, used);
    };
    let status: u16 = resp
        .start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = rest[body_start..].to_vec();
    if resp.is_chunked() {
        body = dechunk(&body);
        resp.remove("transfer-encoding");
        resp.set("Content-Length", &body.len().to_string());
    }
    let bodiless = method == "HEAD" || status == 204 || status == 304;
    if !bodiless {
        if let Some(n) = resp.content_length() {
            body.truncate(n);
        }
        if is_list && status == 200 {
            let text = String::from_utf8_lossy(&body).into_owned();
            let new = rewrite(&text);
            if new != text {
                c.rewritten.fetch_add(1, Ordering::Relaxed);
            }
            body = new.into_bytes();
        }
        respond(&method, &target, &mut resp.headers, &mut body);
        // Always framed by length, so the client's connection can stay open.
        resp.set("Content-Length", &body.len().to_string());
    } else {
        body.clear();
        respond(&method, &target, &mut resp.headers, &mut body);
    }
    // A hook answers with another status through a `:status` field.
    if let Some(code) = resp.get(":status").map(str::to_string) {
        resp.remove(":status");
        resp.start = format!("HTTP/1.1 {code} Hooked");
    }
    resp.remove("connection");
    resp.remove("keep-alive");
    if !client_keeps_alive {
        resp.set("Connection", "close");
    }
    out.write_all(&resp.bytes())?;
    out.write_all(&body)?;
    out.flush()?;
    Ok(client_keeps_alive)
}

#[test]
fn dechunk_joins_chunks_and_ignores_extensions_and_trailers() {
    let body = b"4\r\n<Lis\r\na;ext=1\r\ntBucketRes\r\n0\r\nX-Trailer: y\r\n\r\n";
    assert_eq!(dechunk(body), b"<ListBucketRes");
    let mut r = BufReader::new(&body[..]);
    assert_eq!(read_chunked_raw(&mut r).unwrap(), body.to_vec());
}
