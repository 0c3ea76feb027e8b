//! The addresses of one store: a single endpoint, or the S3 APIs of a
//! cluster's nodes (Garage, Ceph, MinIO), which all serve the same
//! buckets. Requests take them in turn; a node that stopped answering is
//! passed over for a while, so a dead node costs one failed attempt, not
//! one per request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use url::Url;

/// How long a node that stopped answering is passed over while others
/// answer: long enough not to feed it every request, short enough that a
/// restarted node gets its share back soon.
pub const NODE_PAUSE: Duration = Duration::from_secs(10);

/// One address, and until when it is left alone (milliseconds since the
/// set was made).
pub struct Node {
    pub scheme: String,
    /// `host[:port]`, as the Host header and the signature want it.
    pub host: String,
    /// The URL without a trailing slash, for messages.
    pub shown: String,
    avoid_until_ms: AtomicU64,
}

pub struct Nodes {
    nodes: Vec<Node>,
    next: AtomicUsize,
    started: Instant,
}

fn node_of(url: &Url) -> Node {
    let host = match url.port() {
        Some(p) => format!("{}:{}", url.host_str().unwrap_or_default(), p),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    Node {
        scheme: url.scheme().to_string(),
        shown: url.as_str().trim_end_matches('/').to_string(),
        host,
        avoid_until_ms: AtomicU64::new(0),
    }
}

impl Nodes {
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a Url>) -> Nodes {
        let nodes: Vec<Node> = urls.into_iter().map(node_of).collect();
        assert!(!nodes.is_empty(), "a store has at least one endpoint");
        Nodes {
            nodes,
            next: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    pub fn get(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn all(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// How many addresses (never none).
    pub fn count(&self) -> usize {
        self.nodes.len()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The node for the next request: in turn among those answering; when
    /// none is, the one whose pause ends first (it may be back).
    pub fn pick(&self) -> usize {
        let n = self.nodes.len();
        if n == 1 {
            return 0;
        }
        let now = self.elapsed_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let until = |i: usize| self.nodes[i].avoid_until_ms.load(Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| until(i) <= now)
            .unwrap_or_else(|| (0..n).min_by_key(|&i| until(i)).unwrap_or(0))
    }

    /// After a node failed to answer: pass it over for a while, and say
    /// whether another node may take the request now. A single endpoint
    /// is never passed over: there is nowhere else to go.
    pub fn avoid(&self, i: usize) -> bool {
        if self.nodes.len() == 1 {
            return false;
        }
        let now = self.elapsed_ms();
        let pause = u64::try_from(NODE_PAUSE.as_millis()).unwrap_or(u64::MAX);
        self.nodes[i]
            .avoid_until_ms
            .store(now.saturating_add(pause), Ordering::Relaxed);
        tracing::debug!(node = %self.nodes[i].shown, "not answering; trying the store's other nodes");
        self.nodes
            .iter()
            .any(|n| n.avoid_until_ms.load(Ordering::Relaxed) <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: u16) -> Vec<Url> {
        (1..=n)
            .map(|p| Url::parse(&format!("http://127.0.0.1:{p}/")).unwrap())
            .collect()
    }

    #[test]
    fn in_turn_and_passing_over_one_that_failed() {
        let u = urls(3);
        let s = Nodes::new(&u);
        let turn: Vec<usize> = (0..6).map(|_| s.pick()).collect();
        assert_eq!(turn, [0, 1, 2, 0, 1, 2]);
        let tick = || std::thread::sleep(Duration::from_millis(3));
        assert!(s.avoid(1), "others still answer");
        tick();
        assert!((0..6).all(|_| s.pick() != 1));
        assert!(s.avoid(0));
        tick();
        assert!((0..4).all(|_| s.pick() == 2));
        // None answering: the one passed over first is tried again first.
        assert!(!s.avoid(2));
        assert_eq!(s.pick(), 1);
        assert_eq!(s.get(2).host, "127.0.0.1:3");
        assert_eq!(s.get(2).shown, "http://127.0.0.1:3");
    }

    #[test]
    fn a_single_endpoint_is_always_the_one() {
        let u = urls(1);
        let one = Nodes::new(&u);
        assert!(!one.avoid(0));
        assert_eq!(one.pick(), 0);
        assert_eq!(one.pick(), 0);
    }
}
