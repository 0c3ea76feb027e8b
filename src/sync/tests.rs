//! The drivers and the runner against the in-memory store, plain and
//! behind the fault injector, counting requests at the store: what the
//! integration suite proves against Garage, here without a network and
//! with failures a real server cannot be made to produce on cue.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::filter::Filter;
use super::plan::PlanOptions;
use super::walk::WalkOptions;
use super::*;
use crate::store::faulty::{Fault, FaultyStore, Op, When};
use crate::store::memory::MemoryStore;
use crate::store::{list_all_objects, Body, ObjectStore, PutOptions, StoreErrorKind};
use crate::transfer::{NoProgress, Progress};

#[derive(Default)]
struct Record(Mutex<Vec<Event>>);

impl Observer for Record {
    fn event(&self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
    fn progress(&self, _size: u64) -> Arc<dyn Progress> {
        Arc::new(NoProgress)
    }
}

impl Record {
    fn failures(&self) -> Vec<(String, FailKind)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Failed { key, kind, .. } => Some((key.clone(), *kind)),
                _ => None,
            })
            .collect()
    }
}

/// A memory store with two-key pages (so every listing has several pages)
/// behind a fault injector that counts calls.
fn stores() -> (Arc<MemoryStore>, Arc<FaultyStore>) {
    let mut m = MemoryStore::new();
    m.max_keys = 2;
    let m = Arc::new(m);
    let inner: Arc<dyn ObjectStore> = m.clone();
    (m, Arc::new(FaultyStore::new(inner)))
}

async fn put(store: &dyn ObjectStore, key: &str, data: &[u8]) {
    store
        .put_object("b", key, Body::new(data.to_vec()), &PutOptions::default())
        .await
        .unwrap();
}

async fn keys(store: &dyn ObjectStore) -> Vec<String> {
    list_all_objects(store, "b", "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn options(update: bool, delete: bool) -> SyncOptions {
    SyncOptions {
        plan: PlanOptions {
            update,
            delete,
            ..Default::default()
        },
        deletes: Default::default(),
        dry_run: false,
        jobs: 3,
        walk: WalkOptions::default(),
        rules: Default::default(),
        transfer: Default::default(),
        known_mtimes: None,
        file_digests: None,
        backup: None,
    }
}

fn target(store: Arc<FaultyStore>, root: &Path) -> SyncTarget {
    SyncTarget {
        store,
        bucket: "b".into(),
        prefix: "p/".into(),
        root: root.to_path_buf(),
        cancel: crate::transfer::Cancel::never(),
    }
}

async fn bucket() -> (Arc<MemoryStore>, Arc<FaultyStore>) {
    let (m, f) = stores();
    m.create_bucket("b").await.unwrap();
    (m, f)
}

#[tokio::test]
async fn upload_then_rerun_sends_nothing() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    for rel in ["a-b", "a/x", "a/y/z", "a0", "b.txt"] {
        write(dir.path(), rel, rel.as_bytes());
    }
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let s = sync_up(&t, &options(true, false), &rec).await.unwrap();
    assert_eq!((s.transferred, s.failed), (5, 0));
    assert_eq!(
        keys(f.as_ref()).await,
        ["p/a-b", "p/a/x", "p/a/y/z", "p/a0", "p/b.txt"]
    );
    let puts = f.calls(Op::Put);
    let s = sync_up(&t, &options(true, false), &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped, s.failed), (0, 5, 0));
    assert_eq!(f.calls(Op::Put), puts, "an unchanged tree sends no PUT");
}

#[tokio::test]
async fn upload_delete_removes_extras_but_never_what_the_walk_skipped() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "keep", b"k");
    std::os::unix::fs::symlink("keep", dir.path().join("link")).unwrap();
    for k in ["p/extra", "p/link", "p/zz/old", "other/x"] {
        put(f.as_ref(), k, b"old").await;
    }
    let rec = Record::default();
    let s = sync_up(&target(f.clone(), dir.path()), &options(true, true), &rec)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.deleted, s.warnings), (1, 2, 1));
    // The skipped symlink's object stays; outside the prefix is untouched.
    assert_eq!(keys(f.as_ref()).await, ["other/x", "p/keep", "p/link"]);
}

#[tokio::test]
async fn a_listing_that_fails_midway_stops_the_sync_and_deletes_nothing() {
    let (_m, f) = bucket().await;
    for k in ["p/1", "p/2", "p/3", "p/4", "p/5"] {
        put(f.as_ref(), k, b"x").await;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1", b"x");
    f.inject(
        Op::List,
        When::Nth(2),
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    let err = sync_up(
        &target(f.clone(), dir.path()),
        &options(true, true),
        &Record::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SyncError::Listing(_)), "{err}");
    assert_eq!(f.calls(Op::DeleteBatch), 0);
    assert_eq!(keys(f.as_ref()).await.len(), 5);

    // Downloads likewise: the local extra survives a failed listing.
    write(dir.path(), "extra", b"e");
    f.clear();
    f.inject(
        Op::List,
        When::Always,
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    let err = sync_down(
        &target(f.clone(), dir.path()),
        &options(true, true),
        &Record::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SyncError::Listing(_)), "{err}");
    assert!(dir.path().join("extra").exists());
}

#[tokio::test]
async fn download_streams_pages_and_reports_keys_a_tree_cannot_hold() {
    let (_m, f) = bucket().await;
    for k in [
        "p/a",
        "p/a.txt",
        "p/a/b",
        "p/c",
        "p/d/e",
        "p/d/../../up",
        "p/f//g",
    ] {
        put(f.as_ref(), k, k.as_bytes()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "stale", b"s");
    let rec = Record::default();
    let s = sync_down(&target(f.clone(), dir.path()), &options(true, true), &rec)
        .await
        .unwrap();
    let mut fails = rec.failures();
    fails.sort();
    assert_eq!(
        fails,
        [
            ("a".to_string(), FailKind::UnsafeKey),
            ("d/../../up".to_string(), FailKind::UnsafeKey),
            ("f//g".to_string(), FailKind::UnsafeKey),
        ]
    );
    // Three keys failed, so --delete withholds its one candidate.
    assert_eq!((s.transferred, s.deleted, s.withheld), (4, 0, 1));
    for rel in ["a.txt", "a/b", "c", "d/e"] {
        let got = std::fs::read(dir.path().join(rel)).unwrap();
        assert_eq!(got, format!("p/{rel}").as_bytes());
    }
    assert!(dir.path().join("stale").exists());
    assert!(f.calls(Op::List) >= 4, "seven keys in two-key pages");
    // Small objects take one GET each and no HEAD.
    assert_eq!(f.calls(Op::Head), 0);
}

#[tokio::test]
async fn download_rerun_with_the_known_cache_needs_no_head() {
    let (_m, f) = bucket().await;
    for k in ["p/1", "p/2", "p/3"] {
        put(f.as_ref(), k, b"data").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(true, false);
    o.known_mtimes = Some(cache.path().join("known"));
    let t = target(f.clone(), dir.path());
    let s = sync_down(&t, &o, &Record::default()).await.unwrap();
    assert_eq!(s.transferred, 3);
    let (gets, heads) = (f.calls(Op::Get), f.calls(Op::Head));
    let s = sync_down(&t, &o, &Record::default()).await.unwrap();
    assert_eq!((s.transferred, s.skipped), (0, 3));
    assert_eq!(f.calls(Op::Get), gets);
    assert_eq!(f.calls(Op::Head), heads, "the cache decides without HEADs");
}

#[tokio::test]
async fn per_file_failures_are_typed_and_the_rest_carry_on() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    for rel in ["1", "2", "3"] {
        write(dir.path(), rel, b"x");
    }
    f.inject(
        Op::Put,
        When::Nth(2),
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    let rec = Record::default();
    let s = sync_up(&target(f.clone(), dir.path()), &options(false, false), &rec)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.failed), (2, 1));
    let fails = rec.failures();
    assert_eq!(fails.len(), 1);
    assert_eq!(fails[0].1, FailKind::Store);
    assert!(["1", "2", "3"].contains(&fails[0].0.as_str()), "{fails:?}");
}

#[tokio::test]
async fn watch_paths_delete_a_vanished_directory_except_what_the_filter_protects() {
    let (_m, f) = bucket().await;
    for k in [
        "p/photos/a.jpg",
        "p/photos/b.raw",
        "p/photos/sub/c.jpg",
        "p/photosx",
        "p/gone",
    ] {
        put(f.as_ref(), k, b"x").await;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "new.txt", b"n");
    let mut o = options(true, true);
    o.walk.filter = Filter::new(&[], &["*.raw".to_string()]).unwrap();
    let rec = Record::default();
    let out = sync_paths(
        &target(f.clone(), dir.path()),
        &["gone".into(), "new.txt".into(), "photos".into()],
        &o,
        &rec,
    )
    .await;
    assert_eq!(out.summary.failed, 0, "{:?}", rec.failures());
    assert_eq!((out.summary.transferred, out.summary.deleted), (1, 3));
    assert_eq!(
        keys(f.as_ref()).await,
        ["p/new.txt", "p/photos/b.raw", "p/photosx"]
    );
}

#[tokio::test]
async fn dry_run_plans_without_touching_either_side() {
    let (_m, f) = bucket().await;
    put(f.as_ref(), "p/extra", b"e").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "new", b"n");
    let mut o = options(true, true);
    o.dry_run = true;
    let rec = Record::default();
    let before = f.calls(Op::Put) + f.calls(Op::DeleteBatch);
    sync_up(&target(f.clone(), dir.path()), &o, &rec)
        .await
        .unwrap();
    let planned: Vec<(String, &str)> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Planned { action, key, .. } => Some((key.clone(), *action)),
            _ => None,
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("new".to_string(), "upload"),
            ("extra".to_string(), "delete")
        ]
    );
    assert_eq!(f.calls(Op::Put) + f.calls(Op::DeleteBatch), before);
    assert_eq!(keys(f.as_ref()).await, ["p/extra"]);
}

fn set_mtime(root: &Path, rel: &str, secs: i64) {
    filetime::set_file_mtime(root.join(rel), filetime::FileTime::from_unix_time(secs, 0)).unwrap();
}

fn compare(mut o: SyncOptions, c: plan::Compare) -> SyncOptions {
    o.plan.compare = c;
    o
}

#[tokio::test]
async fn size_only_sends_what_changed_size_and_asks_for_no_times() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    for rel in ["a", "b", "c"] {
        write(dir.path(), rel, b"12345");
    }
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    sync_up(&t, &options(false, false), &rec).await.unwrap();
    // "a" touched (same size, new time), "b" resized, "c" rewritten in
    // place with other bytes of the same size and an old time.
    set_mtime(dir.path(), "a", 2_000_000_000);
    write(dir.path(), "b", b"123456");
    write(dir.path(), "c", b"abcde");
    set_mtime(dir.path(), "c", 1_000_000_000);
    let (heads, puts) = (f.calls(Op::Head), f.calls(Op::Put));
    let o = compare(options(false, false), plan::Compare::SizeOnly);
    let s = sync_up(&t, &o, &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped, s.failed), (1, 2, 0));
    assert_eq!(f.calls(Op::Put) - puts, 1, "only the resized file");
    assert_eq!(f.calls(Op::Head), heads, "sizes need no HEAD");
    // The time rule would have sent the touched file too.
    let s = sync_up(&t, &options(true, false), &rec).await.unwrap();
    assert_eq!(s.transferred, 1, "{s:?}");
}

fn checksum(cache: &Path) -> SyncOptions {
    let mut o = compare(options(false, false), plan::Compare::Checksum);
    o.file_digests = Some(cache.join("digests"));
    o.known_mtimes = Some(cache.join("known"));
    o
}

#[tokio::test]
async fn checksum_sends_what_changed_content_whatever_the_times() {
    let (m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    for rel in ["a", "b", "c", "d"] {
        write(dir.path(), rel, b"12345");
        set_mtime(dir.path(), rel, 1_500_000_000);
    }
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    sync_up(&t, &options(false, false), &rec).await.unwrap();
    // "a" touched only; "b" resized; "c" rewritten with other bytes of
    // the same size and its old time put back (what the time rule misses).
    set_mtime(dir.path(), "a", 2_000_000_000);
    write(dir.path(), "b", b"123456");
    write(dir.path(), "c", b"abcde");
    set_mtime(dir.path(), "c", 1_500_000_000);
    let by_time = sync_up(
        &t,
        &{
            let mut o = options(true, false);
            o.dry_run = true;
            o
        },
        &rec,
    )
    .await
    .unwrap();
    assert_eq!(
        by_time.skipped, 2,
        "the time rule would send a and b, not c"
    );
    let (heads, puts) = (f.calls(Op::Head), f.calls(Op::Put));
    let s = sync_up(&t, &checksum(cache.path()), &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped, s.failed), (2, 2, 0), "{s:?}");
    assert_eq!(f.calls(Op::Put) - puts, 2, "b and c");
    // An equal MD5 settles from the listing; a different one is
    // confirmed (under SSE-KMS an ETag only looks like an MD5).
    assert_eq!(f.calls(Op::Head) - heads, 1, "c's mismatch confirmed");
    let stored = |k: &'static str| {
        let m = m.clone();
        async move {
            m.get_object("b", k, &crate::store::GetRequest::whole())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    assert_eq!(&stored("p/c").await[..], b"abcde");
    // Again: nothing to send, and every digest comes from the cache.
    let before = f.calls(Op::Put) + f.calls(Op::Head) + f.calls(Op::Get);
    let s = sync_up(&t, &checksum(cache.path()), &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped), (0, 4));
    assert_eq!(
        f.calls(Op::Put) + f.calls(Op::Head) + f.calls(Op::Get),
        before
    );
    let d = super::known::digests::FileDigests::load(Some(cache.path().join("digests")));
    let walked = |rel: &str| {
        let p = dir.path().join(rel);
        let md = std::fs::metadata(&p).unwrap();
        super::walk::LocalEntry {
            key: rel.into(),
            path: p,
            size: md.len(),
            mtime: crate::mtime::file_mtime(&md),
            id: super::walk::FileId::of(&md),
        }
    };
    for rel in ["a", "b", "c", "d"] {
        let sums = d.lookup(&walked(rel));
        assert!(sums.iter().any(|(n, _)| n == "MD5"), "{rel}: {sums:?}");
    }
}

#[tokio::test]
async fn checksum_downloads_other_content_even_onto_a_newer_file() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    put(f.as_ref(), "p/same", b"hello").await;
    put(f.as_ref(), "p/other", b"hello").await;
    write(dir.path(), "same", b"hello");
    write(dir.path(), "other", b"jello");
    for rel in ["same", "other"] {
        set_mtime(dir.path(), rel, 2_100_000_000);
    }
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let s = sync_down(&t, &checksum(cache.path()), &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped, s.failed), (1, 1, 0), "{s:?}");
    assert_eq!(std::fs::read(dir.path().join("other")).unwrap(), b"hello");
}

#[tokio::test]
async fn ignore_existing_never_replaces_and_still_sends_what_is_new() {
    let (m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "old", b"local, newer");
    put(f.as_ref(), "p/old", b"stored").await;
    write(dir.path(), "new", b"n");
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let o = compare(options(false, false), plan::Compare::IgnoreExisting);
    let s = sync_up(&t, &o, &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped), (1, 1));
    let kept = m
        .get_object("b", "p/old", &crate::store::GetRequest::whole())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&kept[..], b"stored");
}

#[tokio::test]
async fn size_and_age_rules_neither_send_nor_delete_outside_them() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let now = (crate::mtime::now() / 1_000_000_000) as i64;
    let day = 86_400;
    // Inside: small and recent. Outside: large, or old.
    write(dir.path(), "small-recent", b"s");
    set_mtime(dir.path(), "small-recent", now - day);
    write(dir.path(), "large-recent", &[7; 500]);
    set_mtime(dir.path(), "large-recent", now - day);
    write(dir.path(), "small-old", b"o");
    set_mtime(dir.path(), "small-old", now - 90 * day);
    // The store has an older large copy of "large-recent" (not to be
    // deleted: the source has it), an object only it has that is inside
    // the rules (deleted) and one outside them (kept).
    put(f.as_ref(), "p/large-recent", &[1; 400]).await;
    put(f.as_ref(), "p/gone-small", b"g").await;
    put(f.as_ref(), "p/gone-large", &[2; 300]).await;
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let mut o = options(true, true);
    o.rules = file_rules::FileRules::parse(None, Some(100), None, Some("30d"), crate::mtime::now())
        .unwrap();
    let s = sync_up(&t, &o, &rec).await.unwrap();
    assert_eq!(
        (s.transferred, s.deleted, s.failed),
        (1, 1, 0),
        "{:?}",
        rec.failures()
    );
    assert_eq!(
        keys(f.as_ref()).await,
        ["p/gone-large", "p/large-recent", "p/small-recent"]
    );
}

#[tokio::test]
async fn a_download_takes_only_objects_inside_the_rules_and_keeps_files_outside() {
    let (_m, f) = bucket().await;
    put(f.as_ref(), "p/big", &[3; 200]).await;
    put(f.as_ref(), "p/tiny", b"t").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "local-tiny", b"l");
    write(dir.path(), "local-big", &[4; 300]);
    let t = target(f.clone(), dir.path());
    let rec = Record::default();
    let mut o = options(true, true);
    o.rules.min_size = Some(100);
    let s = sync_down(&t, &o, &rec).await.unwrap();
    assert_eq!((s.transferred, s.deleted, s.failed), (1, 1, 0));
    assert!(dir.path().join("big").exists());
    assert!(!dir.path().join("tiny").exists(), "below --min-size");
    assert!(
        dir.path().join("local-tiny").exists(),
        "outside the rules: kept"
    );
    assert!(
        !dir.path().join("local-big").exists(),
        "inside the rules and gone: deleted"
    );
}

async fn content(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    store
        .get_object("b", key, &crate::store::GetRequest::whole())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn backup_to(o: SyncOptions, place: backup::BackupPlace, suffix: &str) -> SyncOptions {
    SyncOptions {
        backup: Some(backup::BackupOptions {
            place,
            suffix: suffix.into(),
        }),
        ..o
    }
}

/// A tree uploaded, then one file rewritten, one removed and one added.
async fn uploaded_then_changed(f: &Arc<FaultyStore>, root: &Path) -> SyncTarget {
    for rel in ["a", "gone", "same"] {
        write(root, rel, format!("old {rel}").as_bytes());
        set_mtime(root, rel, 1_500_000_000);
    }
    let t = target(f.clone(), root);
    sync_up(&t, &options(true, false), &Record::default())
        .await
        .unwrap();
    write(root, "a", b"new a");
    set_mtime(root, "a", 1_600_000_000);
    std::fs::remove_file(root.join("gone")).unwrap();
    write(root, "n", b"new n");
    t
}

#[tokio::test]
async fn an_upload_copies_what_it_replaces_or_deletes_to_the_backup_first() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let t = uploaded_then_changed(&f, dir.path()).await;
    let place = backup::BackupPlace::Store {
        bucket: "b".into(),
        prefix: "old/".into(),
    };
    let o = backup_to(options(true, true), place, "");
    let rec = Record::default();
    let (copies, puts) = (f.calls(Op::Copy), f.calls(Op::Put));
    let s = sync_up(&t, &o, &rec).await.unwrap();
    assert_eq!(rec.failures(), []);
    assert_eq!((s.transferred, s.deleted, s.backed_up), (2, 1, 2));
    assert_eq!(f.calls(Op::Copy) - copies, 2, "server-side copies");
    assert_eq!(f.calls(Op::Put) - puts, 2, "only a and n are sent");
    assert_eq!(
        keys(f.as_ref()).await,
        ["old/a", "old/gone", "p/a", "p/n", "p/same"]
    );
    assert_eq!(content(f.as_ref(), "old/a").await, b"old a");
    assert_eq!(content(f.as_ref(), "old/gone").await, b"old gone");
    assert_eq!(content(f.as_ref(), "p/a").await, b"new a");
    let said: Vec<(String, String)> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BackedUp { key, to } => Some((key.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert!(
        said.contains(&("gone".into(), "b/old/gone".into())),
        "{said:?}"
    );
}

#[tokio::test]
async fn a_failed_backup_leaves_its_object_alone_and_the_rest_go_on() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let t = uploaded_then_changed(&f, dir.path()).await;
    let place = backup::BackupPlace::Store {
        bucket: "b".into(),
        prefix: "p/".into(),
    };
    let o = backup_to(options(true, true), place, ".bak");
    f.inject(
        Op::Copy,
        When::Always,
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    let rec = Record::default();
    let s = sync_up(&t, &o, &rec).await.unwrap();
    let mut fails = rec.failures();
    fails.sort();
    assert_eq!(fails, [("a".into(), FailKind::Store)]);
    // The failure withholds every delete, as any failure does.
    assert_eq!(
        (s.transferred, s.deleted, s.withheld, s.backed_up),
        (1, 0, 1, 0)
    );
    assert_eq!(content(f.as_ref(), "p/a").await, b"old a", "not replaced");
    assert_eq!(keys(f.as_ref()).await, ["p/a", "p/gone", "p/n", "p/same"]);
    // With the copies back, the next run makes both backups, beside the
    // objects under the suffix.
    f.clear();
    let s = sync_up(&t, &o, &rec).await.unwrap();
    assert_eq!((s.transferred, s.deleted, s.backed_up), (1, 1, 2));
    assert_eq!(
        keys(f.as_ref()).await,
        ["p/a", "p/a.bak", "p/gone.bak", "p/n", "p/same"]
    );
    assert_eq!(content(f.as_ref(), "p/a.bak").await, b"old a");
}

#[tokio::test]
async fn a_download_keeps_what_it_replaces_or_deletes_in_the_backup_directory() {
    let (_m, f) = bucket().await;
    put(f.as_ref(), "p/a", b"remote a").await;
    put(f.as_ref(), "p/d/b", b"remote b").await;
    let dir = tempfile::tempdir().unwrap();
    let bak = tempfile::tempdir().unwrap();
    write(dir.path(), "a", b"local a");
    write(dir.path(), "d/extra", b"local extra");
    set_mtime(dir.path(), "a", 1_000_000_000);
    let place = backup::BackupPlace::Local(bak.path().join("old"));
    let o = backup_to(options(true, true), place, "~");
    let rec = Record::default();
    let s = sync_down(&target(f.clone(), dir.path()), &o, &rec)
        .await
        .unwrap();
    assert_eq!(rec.failures(), []);
    assert_eq!((s.transferred, s.deleted, s.backed_up), (2, 1, 2));
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"remote a");
    assert!(!dir.path().join("d/extra").exists());
    assert_eq!(
        std::fs::read(bak.path().join("old/a~")).unwrap(),
        b"local a"
    );
    assert_eq!(
        std::fs::read(bak.path().join("old/d/extra~")).unwrap(),
        b"local extra"
    );
    // A new file replaced nothing: nothing of it is in the backup.
    assert!(!bak.path().join("old/d/b~").exists());
}

#[tokio::test]
async fn a_dry_run_says_what_it_would_back_up() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let t = uploaded_then_changed(&f, dir.path()).await;
    let place = backup::BackupPlace::Store {
        bucket: "b".into(),
        prefix: "old/".into(),
    };
    let mut o = backup_to(options(true, true), place, "");
    o.dry_run = true;
    let rec = Record::default();
    let copies = f.calls(Op::Copy);
    sync_up(&t, &o, &rec).await.unwrap();
    let mut planned: Vec<(String, &str)> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Planned { action, key, .. } => Some((key.clone(), *action)),
            _ => None,
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            ("a".to_string(), "back up"),
            ("a".to_string(), "upload"),
            ("gone".to_string(), "back up"),
            ("gone".to_string(), "delete"),
            ("n".to_string(), "upload"),
        ]
    );
    assert_eq!(f.calls(Op::Copy), copies);
}

fn prefix_target(store: Arc<FaultyStore>, prefix: &str) -> SyncTarget {
    SyncTarget {
        prefix: prefix.into(),
        root: Default::default(),
        ..target(store, Path::new(""))
    }
}

#[tokio::test]
async fn a_copy_between_prefixes_of_one_store_is_server_side_and_a_rerun_only_lists() {
    let (_m, f) = bucket().await;
    for k in ["src/a", "src/d/b", "src/c"] {
        put(f.as_ref(), k, k.as_bytes()).await;
    }
    put(f.as_ref(), "dst/extra", b"x").await;
    put(f.as_ref(), "dst/c", b"other").await;
    let (src, dst) = (
        prefix_target(f.clone(), "src/"),
        prefix_target(f.clone(), "dst/"),
    );
    let between = BetweenOptions {
        same_dialect: true,
        ..Default::default()
    };
    let o = options(false, true);
    let rec = Record::default();
    let (puts, gets) = (f.calls(Op::Put), f.calls(Op::Get));
    let s = sync_between(&src, &dst, between.clone(), &o, &rec)
        .await
        .unwrap();
    assert_eq!(rec.failures(), []);
    assert_eq!((s.transferred, s.deleted), (3, 1));
    assert_eq!(f.calls(Op::Copy), 3, "server-side");
    assert_eq!(
        (f.calls(Op::Put), f.calls(Op::Get)),
        (puts, gets),
        "no byte through ferry"
    );
    assert_eq!(
        keys(f.as_ref()).await,
        ["dst/a", "dst/c", "dst/d/b", "src/a", "src/c", "src/d/b"]
    );
    assert_eq!(content(f.as_ref(), "dst/c").await, b"src/c");
    // -u again: equal ETags and sizes settle every pair from the listings.
    let before = f.calls(Op::Copy) + f.calls(Op::Head);
    let s = sync_between(&src, &dst, between, &options(true, true), &rec)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.skipped, s.deleted), (0, 3, 0));
    assert_eq!(f.calls(Op::Copy) + f.calls(Op::Head), before);
}

#[tokio::test]
async fn a_copy_between_stores_streams_with_the_objects_metadata() {
    let (_m, a) = bucket().await;
    let (_n, b) = bucket().await;
    let mut meta = crate::store::Metadata::new();
    meta.insert("owner".into(), "ops".into());
    let with = PutOptions {
        metadata: meta,
        content_type: Some("text/html".into()),
        ..Default::default()
    };
    a.put_object("b", "p/index.html", Body::new(b"<p>hi</p>".to_vec()), &with)
        .await
        .unwrap();
    put(a.as_ref(), "p/big", &vec![7u8; 12 << 20]).await;
    put(b.as_ref(), "q/old", b"old").await;
    let (src, dst) = (
        prefix_target(a.clone(), "p/"),
        prefix_target(b.clone(), "q/"),
    );
    let mut o = options(true, true);
    o.transfer.part_size = Some(5 << 20);
    o.backup = Some(backup::BackupOptions {
        place: backup::BackupPlace::Store {
            bucket: "b".into(),
            prefix: "attic/".into(),
        },
        suffix: String::new(),
    });
    let between = BetweenOptions::default();
    let rec = Record::default();
    let s = sync_between(&src, &dst, between.clone(), &o, &rec)
        .await
        .unwrap();
    assert_eq!(rec.failures(), []);
    assert_eq!((s.transferred, s.deleted, s.backed_up), (2, 1, 1));
    assert_eq!(a.calls(Op::Copy) + b.calls(Op::Copy), 1, "only the backup");
    assert_eq!(
        keys(b.as_ref()).await,
        ["attic/old", "q/big", "q/index.html"]
    );
    assert_eq!(content(b.as_ref(), "q/big").await, vec![7u8; 12 << 20]);
    assert!(b.calls(Op::UploadPart) >= 3, "the big one went in parts");
    let m = b.head_object("b", "q/index.html").await.unwrap();
    assert_eq!(m.metadata["owner"], "ops");
    assert_eq!(m.content_type.as_deref(), Some("text/html"));
    assert!(m.metadata.contains_key(crate::mtime::MTIME_KEY));
    // Again: the small object by its ETag; the big one (in parts, so
    // another ETag) by the times both HEADs show.
    let heads = a.calls(Op::Head) + b.calls(Op::Head);
    let s = sync_between(&src, &dst, between, &o, &rec).await.unwrap();
    assert_eq!((s.transferred, s.skipped), (0, 2));
    assert_eq!(a.calls(Op::Head) + b.calls(Op::Head) - heads, 2);
}

#[tokio::test]
async fn a_streamed_copy_whose_source_breaks_leaves_no_object() {
    let (_m, a) = bucket().await;
    let (_n, b) = bucket().await;
    put(a.as_ref(), "p/big", &vec![1u8; 12 << 20]).await;
    // The first range arrives whole, the others break off: the upload has
    // begun (a part sent) when the source fails.
    a.inject(Op::Get, When::Calls(2..1000), Fault::TruncateBody(100_000));
    let (src, dst) = (
        prefix_target(a.clone(), "p/"),
        prefix_target(b.clone(), "q/"),
    );
    let mut o = options(false, false);
    o.transfer.part_size = Some(5 << 20);
    o.transfer.bigfile_threshold = 5 << 20;
    let rec = Record::default();
    let s = sync_between(&src, &dst, BetweenOptions::default(), &o, &rec)
        .await
        .unwrap();
    assert_eq!((s.transferred, s.failed), (0, 1));
    assert!(keys(b.as_ref()).await.is_empty(), "nothing half-copied");
    let uploads = b
        .list_multipart_uploads("b", "", None)
        .await
        .unwrap()
        .uploads
        .len();
    assert_eq!(uploads, 0, "the multipart upload was aborted");
    assert_eq!(b.calls(Op::CreateUpload), 1);
    assert!(b.calls(Op::UploadPart) >= 1);
    assert_eq!(b.calls(Op::Abort), 1);
    assert_eq!(b.calls(Op::Complete), 0);
}

#[tokio::test]
async fn a_watched_rename_is_a_server_side_copy_and_a_look_alike_is_uploaded() {
    let (_m, f) = bucket().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a", &vec![3u8; 100_000]);
    write(dir.path(), "c", b"12345");
    let t = target(f.clone(), dir.path());
    let o = options(true, true);
    sync_up(&t, &o, &Record::default()).await.unwrap();
    std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
    // Gone "c" and a new "d" of its size but other bytes: not a rename.
    std::fs::remove_file(dir.path().join("c")).unwrap();
    write(dir.path(), "d", b"abcde");
    let (puts, copies) = (f.calls(Op::Put), f.calls(Op::Copy));
    let rec = Record::default();
    let rels = ["a", "b", "c", "d"].map(String::from);
    let out = sync_paths(&t, &rels, &o, &rec).await;
    assert_eq!(rec.failures(), []);
    assert_eq!((out.summary.transferred, out.summary.deleted), (2, 2));
    assert_eq!(f.calls(Op::Copy) - copies, 1, "b copied from a");
    assert_eq!(f.calls(Op::Put) - puts, 1, "only d sent");
    assert_eq!(keys(f.as_ref()).await, ["p/b", "p/d"]);
    assert_eq!(content(f.as_ref(), "p/b").await, vec![3u8; 100_000]);
    assert_eq!(content(f.as_ref(), "p/d").await, b"abcde");
}
