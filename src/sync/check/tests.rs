//! `check` against the in-memory store behind the counting fault
//! injector: what it finds, and which requests each finding costs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::store::faulty::{FaultyStore, Op};
use crate::store::memory::MemoryStore;
use crate::store::{Body, ObjectStore, PutOptions};
use crate::transfer::Cancel;

#[derive(Default)]
struct Record(Mutex<Vec<Finding>>);

impl CheckObserver for Record {
    fn finding(&self, f: &Finding) {
        self.0.lock().unwrap().push(f.clone());
    }
}

impl Record {
    /// Every finding but `Same`, by key, sorted.
    fn problems(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|f| match f {
                Finding::Same { .. } => None,
                Finding::Differs { key, .. } => Some((key.clone(), "differs")),
                Finding::Missing { key } => Some((key.clone(), "missing")),
                Finding::Extra { key } => Some((key.clone(), "extra")),
                Finding::SizeOnly { key, .. } => Some((key.clone(), "size-only")),
                Finding::Failed { key, .. } => Some((key.clone(), "failed")),
                Finding::Warning { path, .. } => Some((path.clone(), "warning")),
            })
            .collect();
        v.sort();
        v
    }

    fn same_by(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|f| match f {
                Finding::Same { key, by } => Some(format!("{key}:{by}")),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }
}

async fn setup(m: MemoryStore) -> (Arc<MemoryStore>, Arc<FaultyStore>) {
    let mut m = m;
    m.max_keys = 2;
    let m = Arc::new(m);
    m.create_bucket("b").await.unwrap();
    let inner: Arc<dyn ObjectStore> = m.clone();
    (m, Arc::new(FaultyStore::new(inner)))
}

async fn put(store: &dyn ObjectStore, key: &str, data: &[u8]) {
    store
        .put_object("b", key, Body::new(data.to_vec()), &PutOptions::default())
        .await
        .unwrap();
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn target(store: Arc<FaultyStore>, root: &Path) -> SyncTarget {
    SyncTarget {
        store,
        bucket: "b".into(),
        prefix: "p/".into(),
        root: root.to_path_buf(),
        cancel: Cancel::never(),
    }
}

fn opts(depth: Depth, one_way: bool) -> CheckOptions {
    CheckOptions {
        depth,
        one_way,
        jobs: 3,
        walk: Default::default(),
    }
}

/// Both sides: `same` equal, and one of each kind of difference.
async fn trees(f: &FaultyStore, root: &Path) {
    for (rel, data) in [("a/x", "one"), ("a/y", "two"), ("b", "three")] {
        write(root, rel, data.as_bytes());
        put(f, &format!("p/{rel}"), data.as_bytes()).await;
    }
    write(root, "changed", b"local");
    put(f, "p/changed", b"store").await;
    write(root, "longer", b"local!");
    put(f, "p/longer", b"store").await;
    write(root, "only-here", b"h");
    put(f, "p/only-there", b"t").await;
}

#[tokio::test]
async fn md5_etags_decide_from_the_listing_and_a_difference_is_confirmed() {
    let (_m, f) = setup(MemoryStore::default()).await;
    let dir = tempfile::tempdir().unwrap();
    trees(&f, dir.path()).await;
    let rec = Record::default();
    let t = target(f.clone(), dir.path());
    let s = check_tree(&t, Direction::Up, &opts(Depth::Content, false), &rec)
        .await
        .unwrap();
    assert_eq!(
        rec.problems(),
        [
            ("changed".to_string(), "differs"),
            ("longer".into(), "differs"),
            ("only-here".into(), "missing"),
            ("only-there".into(), "extra"),
        ]
    );
    assert_eq!(rec.same_by(), ["a/x:MD5", "a/y:MD5", "b:MD5"]);
    assert_eq!((s.same, s.differ, s.missing, s.extra), (3, 2, 1, 1));
    assert!(!s.all_same());
    // The one same-size difference is confirmed by one HEAD (the ETag
    // could have been an SSE-KMS one); the size difference needs none.
    assert_eq!(f.calls(Op::Head), 1);
    assert_eq!(f.calls(Op::Get), 0);

    // --one-way: what only the destination has is not a finding; and the
    // same tree seen from the store's side calls it missing instead.
    let rec = Record::default();
    check_tree(&t, Direction::Up, &opts(Depth::Content, true), &rec)
        .await
        .unwrap();
    assert!(!rec.problems().iter().any(|(_, k)| *k == "extra"));
    let rec = Record::default();
    check_tree(&t, Direction::Down, &opts(Depth::Content, false), &rec)
        .await
        .unwrap();
    let p = rec.problems();
    assert!(p.contains(&("only-there".into(), "missing")), "{p:?}");
    assert!(p.contains(&("only-here".into(), "extra")), "{p:?}");
}

#[tokio::test]
async fn an_equal_tree_costs_listings_only() {
    let (_m, f) = setup(MemoryStore::default()).await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..9 {
        let rel = format!("d{}/f{i}", i % 3);
        write(dir.path(), &rel, rel.as_bytes());
        put(f.as_ref(), &format!("p/{rel}"), rel.as_bytes()).await;
    }
    write(dir.path(), "empty", b"");
    put(f.as_ref(), "p/empty", b"").await;
    let lists = f.calls(Op::List);
    let rec = Record::default();
    let t = target(f.clone(), dir.path());
    let s = check_tree(&t, Direction::Up, &opts(Depth::Content, false), &rec)
        .await
        .unwrap();
    assert!(s.all_same(), "{s:?} {:?}", rec.problems());
    assert_eq!(s.same, 10);
    assert_eq!(f.calls(Op::Head) + f.calls(Op::Get), 0);
    // Ten keys, two a page.
    assert_eq!(f.calls(Op::List) - lists, 5);
}

#[tokio::test]
async fn etags_that_only_look_like_md5s_fall_back_to_the_stored_checksum() {
    let mut m = MemoryStore::default();
    m.kms_etags = true;
    let (_m, f) = setup(m).await;
    let dir = tempfile::tempdir().unwrap();
    trees(&f, dir.path()).await;
    let rec = Record::default();
    let t = target(f.clone(), dir.path());
    let s = check_tree(&t, Direction::Up, &opts(Depth::Content, false), &rec)
        .await
        .unwrap();
    // The three equal files do not match their ETags, yet are the same
    // by the CRC-64/NVME the store keeps; the changed one differs by it.
    assert_eq!(
        rec.same_by(),
        ["a/x:CRC64NVME", "a/y:CRC64NVME", "b:CRC64NVME"]
    );
    assert!(rec.problems().contains(&("changed".into(), "differs")));
    assert_eq!((s.same, s.differ), (3, 2));
    assert_eq!(f.calls(Op::Head), 4);
}

#[tokio::test]
async fn a_store_that_keeps_no_digest_is_compared_by_size_or_read() {
    let mut m = MemoryStore::default();
    m.kms_etags = true;
    m.checksums = false;
    let (m, f) = setup(m).await;
    let dir = tempfile::tempdir().unwrap();
    trees(&f, dir.path()).await;
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let s = check_tree(&t, Direction::Up, &opts(Depth::Content, false), &rec)
        .await
        .unwrap();
    // Nothing tells the same-size files apart: said, and not a pass.
    assert_eq!((s.same, s.size_only, s.differ), (0, 4, 1));
    // --download reads them: the changed one differs, the rest are the
    // same, and a byte flipped in the store is found.
    m.corrupt("b", "p/a/y", 1);
    let rec = Record::default();
    let gets = f.calls(Op::Get);
    let s = check_tree(&t, Direction::Up, &opts(Depth::Download, false), &rec)
        .await
        .unwrap();
    assert_eq!(rec.same_by(), ["a/x:bytes", "b:bytes"]);
    let p = rec.problems();
    assert!(p.contains(&("a/y".into(), "differs")), "{p:?}");
    assert!(p.contains(&("changed".into(), "differs")), "{p:?}");
    assert_eq!(f.calls(Op::Get) - gets, 4);
    // Every byte received is counted, the differing objects' too.
    assert_eq!(s.bytes_downloaded, 3 + 3 + 5 + 5);
}

#[tokio::test]
async fn size_only_reads_nothing_and_links_are_not_compared() {
    let (_m, f) = setup(MemoryStore::default()).await;
    let dir = tempfile::tempdir().unwrap();
    trees(&f, dir.path()).await;
    std::os::unix::fs::symlink("b", dir.path().join("link")).unwrap();
    put(f.as_ref(), "p/link", b"three").await;
    let rec = Record::default();
    let t = target(f.clone(), dir.path());
    let s = check_tree(&t, Direction::Up, &opts(Depth::SizeOnly, false), &rec)
        .await
        .unwrap();
    // "changed" has the same size: by size alone it is the same.
    assert_eq!((s.same, s.differ, s.warnings), (4, 1, 1));
    assert_eq!(f.calls(Op::Head) + f.calls(Op::Get), 0);
}

#[tokio::test]
async fn a_missing_root_is_refused_before_anything_is_listed() {
    let (_m, f) = setup(MemoryStore::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let t = target(f.clone(), &dir.path().join("nope"));
    let err = check_tree(
        &t,
        Direction::Up,
        &opts(Depth::Content, false),
        &Record::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert_eq!(f.calls(Op::List), 0);
}
