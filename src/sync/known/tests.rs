use super::*;

fn count_segments(dir: &Path) -> usize {
    segments::list(dir).len()
}

#[test]
fn matches_only_the_same_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = KnownMtimes::load(Some(path.clone()));
    k.record("a", "e1", 5, None, Some(1_700_000_000_000_000_001));
    k.record("b", "e2", 6, Some(100), None);
    k.save(false);
    let k = KnownMtimes::load(Some(path.clone()));
    assert_eq!(k.lookup("a", "e1", 6, 123), None, "size differs");
    assert_eq!(k.lookup("a", "zz", 5, 123), None, "etag differs");
    assert_eq!(
        k.lookup("a", "e1", 5, 123),
        Some(Known::Mtime(1_700_000_000_000_000_001))
    );
    assert_eq!(k.lookup("b", "e2", 6, 101), None, "rewritten since");
    assert_eq!(k.lookup("b", "e2", 6, 100), Some(Known::NoMetadata));
    k.save(false);
    // "a" is now pinned to the Last-Modified it was confirmed with.
    let k = KnownMtimes::load(Some(path.clone()));
    assert_eq!(k.lookup("a", "e1", 5, 124), None);
    assert!(k.lookup("a", "e1", 5, 123).is_some());
}

#[test]
fn damaged_or_foreign_files_are_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join(segments::name(1)), b"garbage").unwrap();
    assert_eq!(
        KnownMtimes::load(Some(path.clone())).lookup("a", "e", 1, 1),
        None
    );
    // The cache path being a file (an old cache, a stray) is no cache.
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::write(&path, b"{}").unwrap();
    let k = KnownMtimes::load(Some(path.clone()));
    assert_eq!(k.lookup("a", "e", 1, 1), None);
    k.record("a", "e", 1, Some(1), None);
    k.save(true);
}

#[test]
fn the_old_single_file_cache_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let old = dir.path().join("k.json");
    std::fs::write(
        &old,
        b"{\"format\":\"ferry-known-mtimes-1\",\"entries\":{}}",
    )
    .unwrap();
    let k = KnownMtimes::load(Some(path));
    k.record("a", "e", 1, Some(1), None);
    k.save(false);
    assert!(!old.exists());
}

#[test]
fn a_no_op_run_writes_nothing_and_one_change_appends_one_small_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..10_000 {
        k.record(&format!("f{i:05}"), "e", i, Some(10), Some(i as Nanos));
    }
    k.save(true);
    assert_eq!(count_segments(&path), 1);
    let base = segments::list(&path)[0].1.clone();
    let base_meta = std::fs::metadata(&base).unwrap();

    // Every key confirmed: nothing to write.
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..10_000 {
        let key = format!("f{i:05}");
        assert_eq!(k.lookup(&key, "e", i, 10), Some(Known::Mtime(i as Nanos)));
    }
    k.save(true);
    assert_eq!(segments::list(&path).len(), 1);

    // One changed object: one small segment beside the untouched base.
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..10_000 {
        k.listed(&format!("f{i:05}"));
    }
    k.record("f00042", "new", 1, None, Some(1));
    k.save(true);
    let segs = segments::list(&path);
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].1, base);
    let now = std::fs::metadata(&base).unwrap();
    assert_eq!(now.len(), base_meta.len());
    assert_eq!(now.modified().unwrap(), base_meta.modified().unwrap());
    assert!(std::fs::metadata(&segs[1].1).unwrap().len() < 200);

    // The newer entry wins.
    let k = KnownMtimes::load(Some(path.clone()));
    assert_eq!(k.lookup("f00041", "e", 41, 10), Some(Known::Mtime(41)));
    assert_eq!(k.lookup("f00042", "e", 42, 10), None);
    assert_eq!(k.lookup("f00042", "new", 1, 10), Some(Known::Mtime(1)));
}

#[test]
fn entries_of_objects_no_longer_listed_are_dropped_after_a_whole_listing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..100 {
        k.record(&format!("f{i:03}"), "e", 1, Some(10), None);
    }
    k.save(true);

    // A partial listing (interrupted, failed) drops nothing.
    let k = KnownMtimes::load(Some(path.clone()));
    k.listed("f000");
    k.save(false);
    let k = KnownMtimes::load(Some(path.clone()));
    assert!(k.lookup("f099", "e", 1, 10).is_some());

    // A whole listing of 70 of them: 30 are gone, a quarter or more.
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..70 {
        k.listed(&format!("f{i:03}"));
    }
    k.save(true);
    assert_eq!(count_segments(&path), 1);
    let k = KnownMtimes::load(Some(path.clone()));
    assert!(k.lookup("f069", "e", 1, 10).is_some());
    assert_eq!(k.lookup("f070", "e", 1, 10), None);

    // A few gone (under a quarter) are left for a later fold.
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..60 {
        k.listed(&format!("f{i:03}"));
    }
    k.save(true);
    let k = KnownMtimes::load(Some(path.clone()));
    assert!(k.lookup("f065", "e", 1, 10).is_some());
}

#[test]
fn a_large_run_spills_and_folds_into_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = KnownMtimes::load_with(Some(path.clone()), 100);
    // Recorded out of order, as concurrent transfers finish.
    for i in (0..2000).rev() {
        k.record(&format!("f{i:05}"), "e", i, None, Some(i as Nanos));
    }
    assert!(
        count_segments(&path) > MAX_SEGMENTS,
        "spilled while running"
    );
    k.save(true);
    assert_eq!(count_segments(&path), 1);
    let k = KnownMtimes::load(Some(path.clone()));
    for i in 0..2000 {
        assert_eq!(
            k.lookup(&format!("f{i:05}"), "e", i, 5),
            Some(Known::Mtime(i as Nanos))
        );
    }
}

#[test]
fn a_lookup_behind_the_cursor_is_a_miss_never_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = KnownMtimes::load(Some(path.clone()));
    k.record("a", "e", 1, Some(1), Some(1));
    k.record("b", "e", 1, Some(1), Some(2));
    k.save(false);
    let k = KnownMtimes::load(Some(path));
    assert_eq!(k.lookup("b", "e", 1, 1), Some(Known::Mtime(2)));
    assert_eq!(k.lookup("a", "e", 1, 1), None);
}

#[test]
fn compaction_policy() {
    assert!(!compaction_due(1, 1000, 0));
    assert!(!compaction_due(MAX_SEGMENTS, 1000, 249));
    assert!(compaction_due(MAX_SEGMENTS + 1, 1000, 0));
    assert!(compaction_due(1, 1000, 250));
    assert!(compaction_due(1, 0, 1));
    assert!(!compaction_due(2, 0, 0));
}

#[test]
fn no_cache_remembers_nothing() {
    let k = KnownMtimes::load(None);
    k.record("a", "e", 1, Some(1), None);
    assert_eq!(k.lookup("a", "e", 1, 1), None);
    k.save(true);
}
