//! The inode table and the directory cache. Plain data under one mutex,
//! never held across an await: callers fetch from the store first and
//! apply the result here.
//!
//! A node knows its parent and name, not its key, so renaming a directory
//! is one move here however many nodes sit below it; keys are computed by
//! walking up to the root.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::staging::Staged;
use crate::mtime::Nanos;

pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What the store holds for a file, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub size: u64,
    pub etag: String,
    pub mtime: Nanos,
    /// The mtime came from a HEAD (the `mtime` metadata), not just a
    /// listing's Last-Modified.
    pub from_head: bool,
}

/// One entry of a cached listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    File {
        size: u64,
        etag: String,
        last_modified: Nanos,
    },
    Dir,
}

#[derive(Debug, Clone)]
pub struct Listing {
    pub fetched: Instant,
    pub entries: BTreeMap<String, Listed>,
}

#[derive(Debug)]
pub struct Node {
    pub parent: Ino,
    pub name: String,
    pub kind: Kind,
    /// References the kernel holds (lookups minus forgets).
    pub lookups: u64,
    /// Open file handles.
    pub handles: u32,
    pub remote: Option<RemoteFile>,
    /// When `remote` was last confirmed by the store.
    pub checked: Option<Instant>,
    pub staged: Option<Arc<Staged>>,
    pub children: HashMap<String, Ino>,
    pub listing: Option<Listing>,
    /// False once unlinked or replaced; such a node lives on only while the
    /// kernel or an open handle still refers to it.
    pub attached: bool,
}

impl Node {
    fn new(parent: Ino, name: &str, kind: Kind) -> Node {
        Node {
            parent,
            name: name.to_string(),
            kind,
            lookups: 0,
            handles: 0,
            remote: None,
            checked: None,
            staged: None,
            children: HashMap::new(),
            listing: None,
            attached: true,
        }
    }

    pub fn fresh(&self, ttl: Duration) -> bool {
        self.checked.is_some_and(|t| t.elapsed() < ttl)
    }
}

/// How a cached listing answers "is `name` in this directory?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// No fresh listing: ask the store.
    Unknown,
    Absent,
    Present(Listed),
}

pub struct Tree {
    nodes: HashMap<Ino, Node>,
    next: Ino,
    /// The mount's root prefix ("" or ending in '/').
    prefix: String,
}

impl Tree {
    pub fn new(prefix: &str) -> Tree {
        let mut nodes = HashMap::new();
        let mut root = Node::new(ROOT, "", Kind::Dir);
        root.lookups = 1;
        nodes.insert(ROOT, root);
        Tree {
            nodes,
            next: ROOT + 1,
            prefix: prefix.to_string(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// The object key of a file, or the prefix (ending in '/', or empty for
    /// an empty mount prefix) of a directory.
    pub fn key(&self, ino: Ino) -> Option<String> {
        let mut segs = Vec::new();
        let mut cur = ino;
        let kind = self.nodes.get(&ino)?.kind;
        while cur != ROOT {
            let n = self.nodes.get(&cur)?;
            segs.push(n.name.as_str());
            cur = n.parent;
        }
        segs.reverse();
        let mut key = self.prefix.clone();
        key.push_str(&segs.join("/"));
        if kind == Kind::Dir && ino != ROOT {
            key.push('/');
        }
        Some(key)
    }

    /// A readable path for messages: the key, or `/` for the root.
    pub fn describe(&self, ino: Ino) -> String {
        match self.key(ino) {
            Some(k) if !k.is_empty() => k,
            _ => "/".into(),
        }
    }

    pub fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.nodes.get(&parent)?.children.get(name).copied()
    }

    /// The child called `name`, created (or replaced, if it is of the
    /// other kind) as needed.
    pub fn ensure_child(&mut self, parent: Ino, name: &str, kind: Kind) -> Ino {
        if let Some(ino) = self.child(parent, name) {
            if self.nodes[&ino].kind == kind {
                return ino;
            }
            self.detach(ino);
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, Node::new(parent, name, kind));
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.insert(name.to_string(), ino);
        }
        ino
    }

    /// Removes a node from its directory. It stays in the table while the
    /// kernel or a handle refers to it.
    pub fn detach(&mut self, ino: Ino) {
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        n.attached = false;
        let (parent, name) = (n.parent, n.name.clone());
        if let Some(p) = self.nodes.get_mut(&parent) {
            if p.children.get(&name) == Some(&ino) {
                p.children.remove(&name);
            }
        }
        self.collect(ino);
    }

    /// Moves a node under a new parent and name (rename). Whatever had the
    /// new name must already be detached.
    pub fn move_node(&mut self, ino: Ino, new_parent: Ino, new_name: &str) {
        let Some(n) = self.nodes.get(&ino) else {
            return;
        };
        let (old_parent, old_name) = (n.parent, n.name.clone());
        if let Some(p) = self.nodes.get_mut(&old_parent) {
            if p.children.get(&old_name) == Some(&ino) {
                p.children.remove(&old_name);
            }
        }
        if let Some(old) = self.child(new_parent, new_name) {
            if old != ino {
                self.detach(old);
            }
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.to_string();
        }
        if let Some(p) = self.nodes.get_mut(&new_parent) {
            p.children.insert(new_name.to_string(), ino);
        }
    }

    pub fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        self.collect(ino);
    }

    /// Drops a node (and, going up, parents) that nothing refers to any more.
    pub fn collect(&mut self, mut ino: Ino) {
        while ino != ROOT && self.collectable(ino) {
            let parent = self.nodes[&ino].parent;
            self.remove_subtree(ino);
            ino = parent;
            if !self.nodes.contains_key(&ino) {
                break;
            }
        }
    }

    fn collectable(&self, ino: Ino) -> bool {
        match self.nodes.get(&ino) {
            None => false,
            Some(n) => {
                n.lookups == 0
                    && n.handles == 0
                    && n.staged.is_none()
                    && n.children.values().all(|c| self.collectable(*c))
            }
        }
    }

    fn remove_subtree(&mut self, ino: Ino) {
        let Some(n) = self.nodes.remove(&ino) else {
            return;
        };
        for c in n.children.values() {
            self.remove_subtree(*c);
        }
        if let Some(p) = self.nodes.get_mut(&n.parent) {
            if p.children.get(&n.name) == Some(&ino) {
                p.children.remove(&n.name);
            }
        }
    }

    pub fn cached(&self, dir: Ino, name: &str, ttl: Duration) -> Cached {
        match self.nodes.get(&dir).and_then(|n| n.listing.as_ref()) {
            Some(l) if l.fetched.elapsed() < ttl => match l.entries.get(name) {
                Some(e) => Cached::Present(e.clone()),
                None => Cached::Absent,
            },
            _ => Cached::Unknown,
        }
    }

    pub fn listing_fresh(&self, dir: Ino, ttl: Duration) -> bool {
        self.nodes
            .get(&dir)
            .and_then(|n| n.listing.as_ref())
            .is_some_and(|l| l.fetched.elapsed() < ttl)
    }

    /// Installs a fresh listing. Nodes whose object changed since they were
    /// last checked are marked stale, so the next stat asks again.
    pub fn set_listing(&mut self, dir: Ino, entries: BTreeMap<String, Listed>) {
        let children: Vec<(String, Ino)> = match self.nodes.get(&dir) {
            Some(n) => n.children.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            None => return,
        };
        for (name, ino) in children {
            if let (Some(Listed::File { etag, .. }), Some(n)) =
                (entries.get(&name), self.nodes.get_mut(&ino))
            {
                if n.remote.as_ref().is_some_and(|r| &r.etag != etag) {
                    n.checked = None;
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&dir) {
            n.listing = Some(Listing {
                fetched: Instant::now(),
                entries,
            });
        }
    }

    /// Keeps a cached listing in step with a change made through the mount.
    pub fn listing_put(&mut self, dir: Ino, name: &str, entry: Option<Listed>) {
        if let Some(l) = self.nodes.get_mut(&dir).and_then(|n| n.listing.as_mut()) {
            match entry {
                Some(e) => {
                    l.entries.insert(name.to_string(), e);
                }
                None => {
                    l.entries.remove(name);
                }
            }
        }
    }

    /// Forgets the cached listings of a directory and everything below it.
    pub fn invalidate_subtree(&mut self, dir: Ino) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            if let Some(n) = self.nodes.get_mut(&d) {
                n.listing = None;
                n.checked = None;
                stack.extend(n.children.values().copied());
            }
        }
    }

    /// Whether a node or anything below it has staged data, i.e. local
    /// state a listing of the store would not show.
    pub fn has_local_state(&self, ino: Ino) -> bool {
        match self.nodes.get(&ino) {
            None => false,
            Some(n) => {
                n.staged.as_ref().is_some_and(|s| !s.meta().discarded)
                    || n.children.values().any(|c| self.has_local_state(*c))
            }
        }
    }

    /// Whether any file below a directory is being written or uploaded.
    pub fn has_dirty_below(&self, ino: Ino) -> bool {
        match self.nodes.get(&ino) {
            None => false,
            Some(n) => {
                n.staged.as_ref().is_some_and(|s| s.meta().dirty())
                    || n.children.values().any(|c| self.has_dirty_below(*c))
            }
        }
    }

    /// Every attached node with staged data (for shutdown).
    pub fn staged_nodes(&self) -> Vec<(Ino, Arc<Staged>)> {
        self.nodes
            .iter()
            .filter_map(|(i, n)| n.staged.clone().map(|s| (*i, s)))
            .collect()
    }

    /// Whether `ino` is `anc` or lies below it.
    pub fn is_within(&self, mut ino: Ino, anc: Ino) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            if ino == ROOT {
                return false;
            }
            match self.nodes.get(&ino) {
                Some(n) => ino = n.parent,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_renames() {
        let mut t = Tree::new("p/");
        let a = t.ensure_child(ROOT, "a", Kind::Dir);
        let f = t.ensure_child(a, "f.txt", Kind::File);
        assert_eq!(t.key(a).unwrap(), "p/a/");
        assert_eq!(t.key(f).unwrap(), "p/a/f.txt");
        assert_eq!(t.key(ROOT).unwrap(), "p/");
        let b = t.ensure_child(ROOT, "b", Kind::Dir);
        t.get_mut(b).unwrap().lookups = 1;
        t.get_mut(a).unwrap().lookups = 1;
        t.move_node(a, b, "moved");
        assert_eq!(t.key(f).unwrap(), "p/b/moved/f.txt");
        assert_eq!(t.child(ROOT, "a"), None);
        assert!(t.is_within(f, b));
        assert!(!t.is_within(b, a));
    }

    #[test]
    fn forgotten_nodes_are_collected() {
        let mut t = Tree::new("");
        let d = t.ensure_child(ROOT, "d", Kind::Dir);
        t.get_mut(d).unwrap().lookups = 2;
        let f = t.ensure_child(d, "f", Kind::File);
        t.get_mut(f).unwrap().lookups = 1;
        t.forget(d, 2);
        assert!(t.get(d).is_some(), "a child still referenced keeps it");
        t.forget(f, 1);
        assert!(t.get(f).is_none());
        assert!(t.get(d).is_none(), "collected upwards");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn kind_change_replaces_the_node() {
        let mut t = Tree::new("");
        let f = t.ensure_child(ROOT, "x", Kind::File);
        t.get_mut(f).unwrap().lookups = 1;
        let d = t.ensure_child(ROOT, "x", Kind::Dir);
        assert_ne!(f, d);
        assert!(!t.get(f).unwrap().attached);
        assert_eq!(t.child(ROOT, "x"), Some(d));
    }

    #[test]
    fn listing_cache_answers_until_it_expires() {
        let mut t = Tree::new("");
        let ttl = Duration::from_secs(60);
        assert_eq!(t.cached(ROOT, "a", ttl), Cached::Unknown);
        let mut e = BTreeMap::new();
        e.insert("a".to_string(), Listed::Dir);
        t.set_listing(ROOT, e);
        assert_eq!(t.cached(ROOT, "a", ttl), Cached::Present(Listed::Dir));
        assert_eq!(t.cached(ROOT, "b", ttl), Cached::Absent);
        t.listing_put(ROOT, "b", Some(Listed::Dir));
        assert_eq!(t.cached(ROOT, "b", ttl), Cached::Present(Listed::Dir));
        assert_eq!(t.cached(ROOT, "a", Duration::ZERO), Cached::Unknown);
    }
}
