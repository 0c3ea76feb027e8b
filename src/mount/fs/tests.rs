//! The model against the in-memory store: every operation of
//! SEMANTICS.md, the journal across a simulated crash, and errno mapping.

use std::sync::{Arc, Mutex};

use super::*;
use crate::store::faulty::{Fault, FaultyStore, Op, When};
use crate::store::memory::MemoryStore;
use crate::store::{GetRequest, Metadata, StoreErrorKind};

const B: &str = "bucket";

struct Env {
    fs: Arc<MountFs>,
    store: Arc<dyn ObjectStore>,
    notes: Arc<Mutex<Vec<String>>>,
    _cache: Option<tempfile::TempDir>,
}

fn config() -> MountConfig {
    let mut cfg = MountConfig::new(B, "m");
    cfg.uid = 1000;
    cfg.gid = 1000;
    cfg.list_ttl = Duration::from_secs(60);
    cfg.transfer.endpoint_id = "mem://".into();
    cfg.transfer.bigfile_threshold = 6 * MIB;
    cfg.transfer.part_size = Some(5 * MIB);
    cfg
}

fn env_at(store: Arc<dyn ObjectStore>, cache: &std::path::Path, cfg: MountConfig) -> Env {
    let mut cfg = cfg;
    cfg.transfer.checkpoint_dir = Some(cache.join("checkpoints"));
    let journal = Journal::open(cache, "mem://", B).unwrap();
    let notes = Arc::new(Mutex::new(Vec::new()));
    let n = notes.clone();
    let fs = MountFs::new(
        cfg,
        store.clone(),
        journal,
        Arc::new(move |m: &str| n.lock().unwrap().push(m.to_string())),
    );
    Env {
        fs,
        store,
        notes,
        _cache: None,
    }
}

fn env_on(store: Arc<dyn ObjectStore>, cache: tempfile::TempDir, cfg: MountConfig) -> Env {
    let mut e = env_at(store, cache.path(), cfg);
    e._cache = Some(cache);
    e
}

fn env() -> Env {
    env_on(
        MemoryStore::with_bucket(B),
        tempfile::tempdir().unwrap(),
        config(),
    )
}

async fn put(store: &dyn ObjectStore, key: &str, data: &[u8], mtime: Option<&str>) {
    let mut md = Metadata::new();
    if let Some(m) = mtime {
        md.insert("mtime".into(), m.into());
    }
    store
        .put_object(
            B,
            key,
            Body::new(data.to_vec()),
            &PutOptions {
                metadata: md,
                content_type: None,
                checksum: None,
                object: Default::default(),
            },
        )
        .await
        .unwrap();
}

async fn get(store: &dyn ObjectStore, key: &str) -> Option<Vec<u8>> {
    match store.get_object(B, key, &GetRequest::whole()).await {
        Ok(o) => Some(o.bytes().await.unwrap().to_vec()),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("{e}"),
    }
}

async fn mtime_meta(store: &dyn ObjectStore, key: &str) -> Option<String> {
    store
        .head_object(B, key)
        .await
        .unwrap()
        .metadata
        .get("mtime")
        .cloned()
}

impl Env {
    async fn path(&self, path: &str) -> Result<Attr, FsError> {
        let mut cur = ROOT;
        let mut attr = self.fs.getattr(ROOT).await?;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            attr = self.fs.lookup(cur, seg).await?;
            cur = attr.ino;
        }
        Ok(attr)
    }

    async fn names(&self, dir: Ino) -> Vec<String> {
        let fh = self.fs.opendir(dir).await.unwrap();
        let e = self.fs.readdir(fh).unwrap();
        self.fs.releasedir(fh);
        e.iter()
            .map(|e| e.name.clone())
            .filter(|n| n != "." && n != "..")
            .collect()
    }

    async fn write_new(&self, parent: Ino, name: &str, data: &[u8]) -> Result<Ino, FsError> {
        let (a, fh) = self.fs.create(parent, name).await?;
        for (i, chunk) in data.chunks(128 * 1024).enumerate() {
            self.fs.write(fh, (i * 128 * 1024) as u64, chunk).await?;
        }
        let flushed = self.fs.flush(fh).await;
        self.fs.release(fh).await?;
        flushed.map(|_| a.ino)
    }

    async fn read_all(&self, ino: Ino) -> Vec<u8> {
        let fh = self.fs.open(ino, false, false).await.unwrap();
        let mut out = Vec::new();
        loop {
            let b = self
                .fs
                .read(fh, out.len() as u64, 128 * 1024)
                .await
                .unwrap();
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        self.fs.release(fh).await.unwrap();
        out
    }
}

#[tokio::test]
async fn listing_shows_files_dirs_and_markers_with_stored_mtimes() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/a.txt", b"hello", Some("1700000000.123456789")).await;
    put(s, "m/sub/", b"", None).await; // a directory marker
    put(s, "m/sub/x", b"x", None).await;
    put(s, "m/implicit/deep/y", b"y", None).await;
    put(s, "m/both", b"file", None).await; // shadowed by the directory below
    put(s, "m/both/z", b"z", None).await;
    put(s, "m/bad//name", b"", None).await; // cannot be a path: hidden
    put(s, "other/outside", b"", None).await;
    assert_eq!(
        e.names(ROOT).await,
        ["a.txt", "bad", "both", "implicit", "sub"]
    );
    let a = e.path("a.txt").await.unwrap();
    assert_eq!((a.kind, a.size), (Kind::File, 5));
    assert_eq!(a.mtime, 1_700_000_000_123_456_789);
    assert_eq!((a.perm, a.uid, a.gid), (0o644, 1000, 1000));
    assert_eq!(e.path("both").await.unwrap().kind, Kind::Dir);
    assert_eq!(e.path("implicit/deep/y").await.unwrap().size, 1);
    let sub = e.path("sub").await.unwrap();
    assert_eq!(e.names(sub.ino).await, ["x"], "the marker is not an entry");
    assert_eq!(
        e.names(e.path("bad").await.unwrap().ino).await,
        Vec::<String>::new()
    );
    assert_eq!(e.path("nope").await.unwrap_err().errno, libc::ENOENT);
    assert_eq!(e.path("a.txt/x").await.unwrap_err().errno, libc::ENOTDIR);
    assert_eq!(e.read_all(a.ino).await, b"hello");
}

#[tokio::test]
async fn lookups_without_a_listing_ask_the_store() {
    let e = env();
    put(e.store.as_ref(), "m/d/f", b"abc", Some("1600000000")).await;
    // No readdir first: HEAD + LIST probes.
    let d = e.path("d").await.unwrap();
    assert_eq!(d.kind, Kind::Dir);
    let f = e.path("d/f").await.unwrap();
    assert_eq!((f.size, f.mtime), (3, 1_600_000_000_000_000_000));
}

#[tokio::test]
async fn many_pages_list_completely() {
    let mut mem = MemoryStore::default();
    mem.max_keys = 100;
    let mem: Arc<dyn ObjectStore> = Arc::new(mem);
    mem.create_bucket(B).await.unwrap();
    let e = env_on(mem, tempfile::tempdir().unwrap(), config());
    for i in 0..2_500 {
        put(e.store.as_ref(), &format!("m/big/f{i:05}"), b"", None).await;
    }
    let d = e.path("big").await.unwrap();
    let names = e.names(d.ino).await;
    assert_eq!(names.len(), 2_500);
    assert_eq!(names[0], "f00000");
    assert_eq!(names[2_499], "f02499");
}

#[tokio::test]
async fn written_files_upload_on_close_with_mtime_and_show_before() {
    let e = env();
    let d = e.fs.mkdir(ROOT, "dir").await.unwrap();
    assert!(
        get(e.store.as_ref(), "m/dir/").await.is_some(),
        "mkdir puts a marker"
    );
    let (a, fh) = e.fs.create(d.ino, "new.txt").await.unwrap();
    e.fs.write(fh, 0, b"hello ").await.unwrap();
    e.fs.write(fh, 6, b"world").await.unwrap();
    // Visible, with its size, before any upload.
    assert_eq!(e.names(d.ino).await, ["new.txt"]);
    assert_eq!(e.fs.getattr(a.ino).await.unwrap().size, 11);
    assert!(get(e.store.as_ref(), "m/dir/new.txt").await.is_none());
    let t = 1_650_000_000_000_000_000;
    e.fs.setattr(
        a.ino,
        SetAttr {
            mtime: Some(t),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert_eq!(
        get(e.store.as_ref(), "m/dir/new.txt").await.unwrap(),
        b"hello world"
    );
    assert_eq!(
        mtime_meta(e.store.as_ref(), "m/dir/new.txt")
            .await
            .as_deref(),
        Some("1650000000")
    );
    let a = e.path("dir/new.txt").await.unwrap();
    assert_eq!((a.size, a.mtime), (11, t));
    assert!(
        e.fs.journal.scan().0.is_empty(),
        "journal entry removed once uploaded"
    );
    // An empty new file is an empty object.
    e.write_new(ROOT, "empty", b"").await.unwrap();
    assert_eq!(get(e.store.as_ref(), "m/empty").await.unwrap(), b"");
}

#[tokio::test]
async fn large_files_upload_in_parts() {
    let e = env();
    let data: Vec<u8> = (0..13 * MIB as usize).map(|i| (i % 253) as u8).collect();
    let ino = e.write_new(ROOT, "big", &data).await.unwrap();
    let head = e.store.head_object(B, "m/big").await.unwrap();
    assert!(head.etag.ends_with("-3"), "multipart: {}", head.etag);
    assert_eq!(get(e.store.as_ref(), "m/big").await.unwrap(), data);
    assert_eq!(e.read_all(ino).await, data);
}

#[tokio::test]
async fn overwrite_append_and_modify_in_place() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/f", b"0123456789", Some("1500000000")).await;
    let f = e.path("f").await.unwrap();
    // Write in the middle: the object is downloaded first.
    let fh = e.fs.open(f.ino, true, false).await.unwrap();
    e.fs.write(fh, 2, b"ab").await.unwrap();
    e.fs.release(fh).await.unwrap(); // release alone uploads too
    assert_eq!(get(s, "m/f").await.unwrap(), b"01ab456789");
    // Append (the kernel passes the end offset).
    let fh = e.fs.open(f.ino, true, false).await.unwrap();
    e.fs.write(fh, 10, b"++").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert_eq!(get(s, "m/f").await.unwrap(), b"01ab456789++");
    // O_TRUNC: no download, new content only.
    let fh = e.fs.open(f.ino, true, true).await.unwrap();
    e.fs.write(fh, 0, b"new").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert_eq!(get(s, "m/f").await.unwrap(), b"new");
    assert_eq!(e.fs.getattr(f.ino).await.unwrap().size, 3);
}

#[tokio::test]
async fn truncate_of_a_closed_file_uploads_at_once() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/t", b"0123456789", None).await;
    let t = e.path("t").await.unwrap();
    let a =
        e.fs.setattr(
            t.ino,
            SetAttr {
                size: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 4);
    assert_eq!(get(s, "m/t").await.unwrap(), b"0123");
    e.fs.setattr(
        t.ino,
        SetAttr {
            size: Some(6),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(get(s, "m/t").await.unwrap(), b"0123\0\0");
}

/// close(2) returns before the kernel sends release, so truncate(2) right
/// after close can arrive while the writer still counts as open.
#[tokio::test]
async fn truncate_by_path_uploads_at_once_even_with_a_writer_open() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/w", b"0123456789", None).await;
    let w = e.path("w").await.unwrap();
    let fh = e.fs.open(w.ino, true, false).await.unwrap();
    e.fs.write(fh, 0, b"ab").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    assert_eq!(get(s, "m/w").await.unwrap(), b"ab23456789");
    let by_path = SetAttr {
        size: Some(3),
        ..Default::default()
    };
    e.fs.setattr(w.ino, by_path).await.unwrap();
    assert_eq!(get(s, "m/w").await.unwrap(), b"ab2");
    // Through the handle the change waits for that handle's upload.
    let by_handle = SetAttr {
        size: Some(1),
        via_handle: true,
        ..Default::default()
    };
    e.fs.setattr(w.ino, by_handle).await.unwrap();
    assert_eq!(get(s, "m/w").await.unwrap(), b"ab2");
    e.fs.release(fh).await.unwrap();
    assert_eq!(get(s, "m/w").await.unwrap(), b"a");
}

#[tokio::test]
async fn utimens_replaces_the_mtime_metadata_and_keeps_the_rest() {
    let e = env();
    let s = e.store.as_ref();
    let mut md = Metadata::new();
    md.insert("mtime".into(), "1".into());
    md.insert("owner".into(), "me".into());
    s.put_object(
        B,
        "m/u",
        Body::new(b"data".to_vec()),
        &PutOptions {
            metadata: md,
            content_type: None,
            checksum: None,
            object: Default::default(),
        },
    )
    .await
    .unwrap();
    let u = e.path("u").await.unwrap();
    let t = 1_234_567_890_500_000_000;
    let a =
        e.fs.setattr(
            u.ino,
            SetAttr {
                mtime: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.mtime, t);
    let head = s.head_object(B, "m/u").await.unwrap();
    assert_eq!(head.metadata.get("mtime").unwrap(), "1234567890.500000000");
    assert_eq!(head.metadata.get("owner").unwrap(), "me");
    assert_eq!(get(s, "m/u").await.unwrap(), b"data");
}

#[tokio::test]
async fn permissions_and_owners_are_fixed() {
    let e = env();
    put(e.store.as_ref(), "m/p", b"", None).await;
    let p = e.path("p").await.unwrap();
    let chmod = |mode| SetAttr {
        mode: Some(mode),
        ..Default::default()
    };
    assert_eq!(
        e.fs.setattr(p.ino, chmod(0o100600)).await.unwrap_err(),
        FsError::quiet(libc::EPERM)
    );
    e.fs.setattr(p.ino, chmod(0o100644)).await.unwrap();
    let chown = SetAttr {
        uid: Some(0),
        ..Default::default()
    };
    assert_eq!(
        e.fs.setattr(p.ino, chown).await.unwrap_err().errno,
        libc::EPERM
    );
    let same = SetAttr {
        uid: Some(1000),
        gid: Some(1000),
        ..Default::default()
    };
    e.fs.setattr(p.ino, same).await.unwrap();
}

#[tokio::test]
async fn rename_files_and_directories() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/a", b"A", Some("1400000000")).await;
    put(s, "m/d/x", b"X", None).await;
    put(s, "m/d/sub/y", b"Y", None).await;
    put(s, "m/d/", b"", None).await;
    put(s, "m/c", b"C", None).await;
    e.names(ROOT).await;
    // A file: copy + delete, metadata kept.
    e.fs.rename(ROOT, "a", ROOT, "b", false).await.unwrap();
    assert!(get(s, "m/a").await.is_none());
    assert_eq!(get(s, "m/b").await.unwrap(), b"A");
    assert_eq!(mtime_meta(s, "m/b").await.as_deref(), Some("1400000000"));
    assert_eq!(e.path("a").await.unwrap_err().errno, libc::ENOENT);
    assert_eq!(e.path("b").await.unwrap().mtime, 1_400_000_000_000_000_000);
    // Over an existing file, unless RENAME_NOREPLACE.
    assert_eq!(
        e.fs.rename(ROOT, "b", ROOT, "c", true)
            .await
            .unwrap_err()
            .errno,
        libc::EEXIST
    );
    e.fs.rename(ROOT, "b", ROOT, "c", false).await.unwrap();
    assert_eq!(get(s, "m/c").await.unwrap(), b"A");
    // A directory: every object below moves.
    let d = e.path("d").await.unwrap();
    e.fs.rename(ROOT, "d", ROOT, "e", false).await.unwrap();
    for (old, new) in [
        ("m/d/x", "m/e/x"),
        ("m/d/sub/y", "m/e/sub/y"),
        ("m/d/", "m/e/"),
    ] {
        assert!(get(s, old).await.is_none(), "{old}");
        assert!(get(s, new).await.is_some(), "{new}");
    }
    assert_eq!(e.names(d.ino).await, ["sub", "x"], "same inode, new place");
    assert_eq!(e.path("e/sub/y").await.unwrap().size, 1);
    // Into itself: refused.
    let sub = e.path("e/sub").await.unwrap();
    assert_eq!(
        e.fs.rename(ROOT, "e", sub.ino, "inner", false)
            .await
            .unwrap_err()
            .errno,
        libc::EINVAL
    );
    // Onto a non-empty directory: refused.
    put(s, "m/full/z", b"", None).await;
    assert_eq!(
        e.fs.rename(ROOT, "e", ROOT, "full", false)
            .await
            .unwrap_err()
            .errno,
        libc::ENOTEMPTY
    );
}

#[tokio::test]
async fn directory_renames_are_bounded() {
    let mut cfg = config();
    cfg.rename_limit = 3;
    let e = env_on(
        MemoryStore::with_bucket(B),
        tempfile::tempdir().unwrap(),
        cfg,
    );
    for i in 0..4 {
        put(e.store.as_ref(), &format!("m/d/{i}"), b"", None).await;
    }
    let err = e.fs.rename(ROOT, "d", ROOT, "e", false).await.unwrap_err();
    assert_eq!(err.errno, libc::EXDEV, "mv then copies file by file");
    assert!(
        get(e.store.as_ref(), "m/d/0").await.is_some(),
        "nothing moved"
    );
}

#[tokio::test]
async fn renaming_a_file_being_written_moves_its_pending_upload() {
    let e = env();
    let (a, fh) = e.fs.create(ROOT, "tmp").await.unwrap();
    e.fs.write(fh, 0, b"content").await.unwrap();
    e.fs.rename(ROOT, "tmp", ROOT, "final", false)
        .await
        .unwrap();
    assert_eq!(e.fs.journal.scan().0[0].manifest.key, "m/final");
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert!(get(e.store.as_ref(), "m/tmp").await.is_none());
    assert_eq!(get(e.store.as_ref(), "m/final").await.unwrap(), b"content");
    assert_eq!(e.path("final").await.unwrap().ino, a.ino);
}

#[tokio::test]
async fn unlink_and_rmdir() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/f", b"F", None).await;
    put(s, "m/d/g", b"G", None).await;
    e.fs.unlink(ROOT, "f").await.unwrap();
    assert!(get(s, "m/f").await.is_none());
    assert_eq!(e.path("f").await.unwrap_err().errno, libc::ENOENT);
    assert_eq!(
        e.fs.rmdir(ROOT, "d").await.unwrap_err().errno,
        libc::ENOTEMPTY
    );
    let d = e.path("d").await.unwrap();
    e.fs.unlink(d.ino, "g").await.unwrap();
    // The implicit directory is gone with its last object; a marked one
    // stays until rmdir.
    let m = e.fs.mkdir(ROOT, "m2").await.unwrap();
    assert_eq!(
        e.fs.mkdir(ROOT, "m2").await.unwrap_err().errno,
        libc::EEXIST
    );
    let (_, fh) = e.fs.create(m.ino, "pending").await.unwrap();
    assert_eq!(
        e.fs.rmdir(ROOT, "m2").await.unwrap_err().errno,
        libc::ENOTEMPTY,
        "a file not uploaded yet counts"
    );
    // Unlinked while open: never uploaded.
    e.fs.unlink(m.ino, "pending").await.unwrap();
    e.fs.write(fh, 0, b"late").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert!(get(s, "m/m2/pending").await.is_none());
    e.fs.rmdir(ROOT, "m2").await.unwrap();
    assert!(get(s, "m/m2/").await.is_none());
    assert_eq!(e.path("m2").await.unwrap_err().errno, libc::ENOENT);
}

#[tokio::test]
async fn read_only_mounts_refuse_changes() {
    let mut cfg = config();
    cfg.read_only = true;
    let e = env_on(
        MemoryStore::with_bucket(B),
        tempfile::tempdir().unwrap(),
        cfg,
    );
    put(e.store.as_ref(), "m/f", b"F", None).await;
    let f = e.path("f").await.unwrap();
    let rofs = |r: Result<_, FsError>| assert_eq!(r.err().map(|e| e.errno), Some(libc::EROFS));
    rofs(e.fs.create(ROOT, "x").await.map(|_| ()));
    rofs(e.fs.mkdir(ROOT, "x").await.map(|_| ()));
    rofs(e.fs.unlink(ROOT, "f").await);
    rofs(e.fs.rename(ROOT, "f", ROOT, "g", false).await);
    rofs(e.fs.open(f.ino, true, false).await.map(|_| ()));
    assert_eq!(e.read_all(f.ino).await, b"F");
}

#[tokio::test]
async fn store_errors_become_errno_and_are_logged_once() {
    let mem = MemoryStore::with_bucket(B);
    let faulty = Arc::new(FaultyStore::new(mem));
    faulty.inject(
        Op::Head,
        When::Always,
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    faulty.inject(
        Op::List,
        When::Always,
        Fault::Fail(StoreErrorKind::AccessDenied),
    );
    let e = env_on(faulty.clone(), tempfile::tempdir().unwrap(), config());
    assert_eq!(e.path("x").await.unwrap_err().errno, libc::EACCES);
    faulty.clear();
    faulty.inject(Op::Put, When::Always, Fault::Fail(StoreErrorKind::Network));
    assert_eq!(
        e.write_new(ROOT, "n", b"data").await.unwrap_err().errno,
        libc::EIO,
        "close reports the failed upload"
    );
    // The data is still there, readable, and journaled as ready.
    let n = e.path("n").await.unwrap();
    assert_eq!(e.read_all(n.ino).await, b"data");
    let (found, _) = e.fs.journal.scan();
    assert_eq!(found[0].manifest.state, EntryState::Ready);
}

#[tokio::test]
async fn a_crashed_mount_is_finished_by_the_next_one() {
    let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
    let faulty = Arc::new(FaultyStore::new(mem.clone()));
    let cache = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..12 * MIB as usize).map(|i| (i % 251) as u8).collect();
    {
        let e = env_at(faulty.clone(), cache.path(), config());
        // Every part after the second fails: the upload stops half-way,
        // parts stay on the server and the checkpoint records them.
        faulty.inject(
            Op::UploadPart,
            When::Calls(3..100),
            Fault::Fail(StoreErrorKind::Network),
        );
        let d = e.fs.mkdir(ROOT, "d").await.unwrap();
        assert!(e.write_new(d.ino, "big", &data).await.is_err());
        // And a file that was never closed.
        let (_, fh) = e.fs.create(ROOT, "open").await.unwrap();
        e.fs.write(fh, 0, b"half").await.unwrap();
        // Crash: nothing shuts down, nothing is dropped.
        std::mem::forget(e);
    }
    let sent_before = faulty.bytes_sent();
    faulty.clear();
    let e = env_at(faulty.clone(), cache.path(), config());
    let report = e.fs.recover();
    assert_eq!(
        report.resumed,
        vec![("m/d/big".to_string(), data.len() as u64)]
    );
    assert_eq!(report.set_aside.len(), 1);
    assert_eq!(std::fs::read(&report.set_aside[0].1).unwrap(), b"half");
    // Visible at once, with the new content, while it uploads.
    let big = e.path("d/big").await.unwrap();
    assert_eq!(big.size, data.len() as u64);
    let left = e.fs.shutdown(Duration::from_secs(30)).await;
    assert!(left.unflushed.is_empty(), "{left:?}");
    assert_eq!(get(mem.as_ref(), "m/d/big").await.unwrap(), data);
    let resent = faulty.bytes_sent() - sent_before;
    assert!(
        resent <= data.len() as u64 / 2,
        "resumed: only the missing part was sent ({resent} bytes)"
    );
    let notes = e.notes.lock().unwrap().join("\n");
    assert!(
        notes.contains("finished the interrupted upload of m/d/big"),
        "{notes}"
    );
    assert!(e.fs.journal.scan().0.is_empty());
}

/// A handle reads one version: after another client replaced the object,
/// the next read that needs the store fails with ESTALE instead of
/// returning new bytes after old ones, and a reopen reads the new version.
#[tokio::test]
async fn a_handle_never_mixes_two_versions_of_an_object() {
    let e = env();
    let s = e.store.as_ref();
    let old: Vec<u8> = (0..2 * MIB as usize).map(|i| (i % 251) as u8).collect();
    let new: Vec<u8> = (0..3 * MIB as usize).map(|i| (i % 241) as u8).collect();
    put(s, "m/v", &old, None).await;
    // Listed and looked up: the mount trusts what it knows for the TTL.
    assert_eq!(e.names(ROOT).await, ["v"]);
    let v = e.path("v").await.unwrap();
    let fh = e.fs.open(v.ino, false, false).await.unwrap();
    let first = e.fs.read(fh, 0, 128 * 1024).await.unwrap();
    assert_eq!(&first[..], &old[..128 * 1024]);
    put(s, "m/v", &new, None).await; // another client
    let err = e.fs.read(fh, MIB, 128 * 1024).await.unwrap_err();
    assert_eq!(err.errno, libc::ESTALE, "{err}");
    // Nor does the handle come back to life.
    assert_eq!(
        e.fs.read(fh, 0, 128 * 1024).await.unwrap_err().errno,
        libc::ESTALE
    );
    e.fs.release(fh).await.unwrap();
    assert_eq!(e.path("v").await.unwrap().size, new.len() as u64);
    assert_eq!(e.read_all(v.ino).await, new);
}

/// The kernel sends release after close(2) has returned, so a truncate by
/// path can run alongside the release of the last handle. The release must
/// not drop the staged copy the truncate is about to change: the change
/// would land in a copy nobody uploads, and the call would report success.
#[tokio::test]
async fn truncate_by_path_racing_the_last_release_is_uploaded() {
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/w", b"0123456789", None).await;
    let w = e.path("w").await.unwrap();
    let fh = e.fs.open(w.ino, true, false).await.unwrap();
    e.fs.write(fh, 0, b"ab").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    let staged = e.fs.tree().get(w.ino).unwrap().staged.clone().unwrap();
    // A write through another descriptor is in progress: both the release
    // and the truncate queue behind it, the release first.
    let busy = staged.io.write().await;
    let fs = e.fs.clone();
    let release = tokio::spawn(async move { fs.release(fh).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let fs = e.fs.clone();
    let truncate = tokio::spawn(async move {
        let by_path = SetAttr {
            size: Some(3),
            ..Default::default()
        };
        fs.setattr(w.ino, by_path).await
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    drop(busy);
    release.await.unwrap().unwrap();
    assert_eq!(truncate.await.unwrap().unwrap().size, 3);
    assert_eq!(get(s, "m/w").await.unwrap(), b"ab2");
    assert!(e.fs.journal.scan().0.is_empty(), "nothing left half-done");
    assert_eq!(e.read_all(w.ino).await, b"ab2");
}

/// What the mount shows at `path` once its caches expired: its content, or
/// None if it does not exist. Each step is asked twice, by a lookup with
/// no listing to go by (HEAD + LIST) and by a fresh directory listing, and
/// the two must agree.
async fn shown(e: &Env, path: &str) -> Option<Vec<u8>> {
    let mut cur = ROOT;
    for seg in path.split('/') {
        e.fs.tree().invalidate_subtree(ROOT);
        let probed = e.fs.lookup(cur, seg).await;
        let listed = e.names(cur).await.iter().any(|n| n == seg);
        match probed {
            Ok(a) => {
                assert!(listed, "{path}: {seg} found but not listed");
                cur = a.ino;
            }
            Err(err) if err.errno == libc::ENOENT => {
                assert!(!listed, "{path}: {seg} listed but not found");
                return None;
            }
            Err(err) => panic!("{path}: {err}"),
        }
    }
    Some(e.read_all(cur).await)
}

/// A rename of an uploaded file with a fault at each step: the data stays
/// under the old or the new key, and the mount, the answer and (after the
/// unmount's retry) the bucket agree on which. A failed copy undoes the
/// rename, a lost copy answer too; once the copy is made it stands.
#[tokio::test]
async fn renaming_an_uploaded_file_keeps_its_data_whatever_step_fails() {
    use StoreErrorKind::Network;
    for (op, fault, stands) in [
        (Op::Copy, Fault::Fail(Network), false),
        (Op::Copy, Fault::FailAfter(Network), false),
        (Op::Delete, Fault::Fail(Network), true),
        (Op::Delete, Fault::FailAfter(Network), true),
    ] {
        let case = format!("{op:?} {fault:?}");
        let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let e = env_on(faulty.clone(), tempfile::tempdir().unwrap(), config());
        put(mem.as_ref(), "m/a", b"A", None).await;
        e.names(ROOT).await;
        faulty.inject(op, When::Nth(1), fault);
        let r = e.fs.rename(ROOT, "a", ROOT, "b", false).await;
        assert_eq!(r.is_ok(), stands, "{case}: {r:?}");
        if let Err(err) = &r {
            assert_eq!(err.errno, libc::EIO, "{case}");
        }
        let (old, new) = (
            get(mem.as_ref(), "m/a").await,
            get(mem.as_ref(), "m/b").await,
        );
        assert!(
            old.as_deref() == Some(b"A") || new.as_deref() == Some(b"A"),
            "{case}: data under neither key"
        );
        let (kept, gone) = if stands { ("b", "a") } else { ("a", "b") };
        assert_eq!(shown(&e, kept).await.as_deref(), Some(&b"A"[..]), "{case}");
        assert_eq!(shown(&e, gone).await, None, "{case}: both names shown");
        let left = e.fs.shutdown(Duration::from_secs(30)).await;
        assert!(left.unflushed.is_empty(), "{case}");
        assert_eq!(
            get(mem.as_ref(), &format!("m/{kept}")).await.as_deref(),
            Some(&b"A"[..]),
            "{case}"
        );
        assert_eq!(
            get(mem.as_ref(), &format!("m/{gone}")).await,
            None,
            "{case}"
        );
    }
}

/// The clean copy of an open file follows the rename only if the rename
/// stands, so later writes land under the name the mount shows.
#[tokio::test]
async fn writes_after_a_rename_whose_delete_failed_follow_the_shown_name() {
    let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
    let faulty = Arc::new(FaultyStore::new(mem.clone()));
    let e = env_on(faulty.clone(), tempfile::tempdir().unwrap(), config());
    put(mem.as_ref(), "m/a", b"A", None).await;
    let a = e.path("a").await.unwrap();
    let fh = e.fs.open(a.ino, true, false).await.unwrap();
    e.fs.write(fh, 0, b"B").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    faulty.inject(
        Op::Delete,
        When::Nth(1),
        Fault::Fail(StoreErrorKind::Network),
    );
    e.fs.rename(ROOT, "a", ROOT, "b", false).await.unwrap();
    e.fs.write(fh, 1, b"C").await.unwrap();
    e.fs.flush(fh).await.unwrap();
    e.fs.release(fh).await.unwrap();
    assert_eq!(get(mem.as_ref(), "m/b").await.unwrap(), b"BC");
    assert_eq!(shown(&e, "b").await.unwrap(), b"BC");
    assert_eq!(shown(&e, "a").await, None);
    e.fs.shutdown(Duration::from_secs(30)).await;
    assert_eq!(get(mem.as_ref(), "m/a").await, None, "retried at unmount");
}

/// A file not uploaded yet moves with its journal entry; the older version
/// under the old name is deleted only once the new key holds the data. A
/// crash at any point in between leaves the data under one of the keys.
#[tokio::test]
async fn renaming_a_file_not_yet_uploaded_keeps_the_old_version_until_the_new_key_has_it() {
    // Crash while the file is still open (never closed: set aside on the
    // next mount, so the older version must still be there).
    let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
    let cache = tempfile::tempdir().unwrap();
    put(mem.as_ref(), "m/a", b"old", None).await;
    {
        let e = env_at(mem.clone(), cache.path(), config());
        let a = e.path("a").await.unwrap();
        let fh = e.fs.open(a.ino, true, true).await.unwrap();
        e.fs.write(fh, 0, b"new").await.unwrap();
        e.fs.rename(ROOT, "a", ROOT, "b", false).await.unwrap();
        assert_eq!(get(mem.as_ref(), "m/a").await.unwrap(), b"old");
        assert_eq!(shown(&e, "a").await, None, "renamed away");
        assert_eq!(shown(&e, "b").await.unwrap(), b"new");
        std::mem::forget(e);
    }
    let e = env_at(mem.clone(), cache.path(), config());
    let report = e.fs.recover();
    assert_eq!(report.set_aside.len(), 1);
    assert_eq!(std::fs::read(&report.set_aside[0].1).unwrap(), b"new");
    assert_eq!(get(mem.as_ref(), "m/a").await.unwrap(), b"old");
    assert_eq!(shown(&e, "a").await.unwrap(), b"old");
    drop(e);

    // Crash after close (the upload failed): the next mount uploads to the
    // new key, then deletes the old one.
    let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
    let faulty = Arc::new(FaultyStore::new(mem.clone()));
    let cache = tempfile::tempdir().unwrap();
    put(mem.as_ref(), "m/a", b"old", None).await;
    {
        let e = env_at(faulty.clone(), cache.path(), config());
        let a = e.path("a").await.unwrap();
        faulty.inject(Op::Put, When::Always, Fault::Fail(StoreErrorKind::Network));
        let fh = e.fs.open(a.ino, true, true).await.unwrap();
        e.fs.write(fh, 0, b"new").await.unwrap();
        assert!(e.fs.flush(fh).await.is_err());
        let _ = e.fs.release(fh).await;
        e.fs.rename(ROOT, "a", ROOT, "b", false).await.unwrap();
        assert_eq!(e.fs.journal.scan().0[0].manifest.key, "m/b");
        assert_eq!(get(mem.as_ref(), "m/a").await.unwrap(), b"old");
        assert_eq!(get(mem.as_ref(), "m/b").await, None);
        std::mem::forget(e);
    }
    faulty.clear();
    let e = env_at(faulty.clone(), cache.path(), config());
    assert_eq!(e.fs.recover().resumed.len(), 1);
    assert_eq!(shown(&e, "a").await, None, "still renamed away");
    e.fs.shutdown(Duration::from_secs(30)).await;
    assert_eq!(get(mem.as_ref(), "m/b").await.unwrap(), b"new");
    assert_eq!(get(mem.as_ref(), "m/a").await, None);
    assert!(e.fs.journal.scan().0.is_empty());
    drop(e);

    // No crash: the old name goes after the upload, unless the mount has
    // put new data there since (even the very same bytes).
    let e = env();
    let s = e.store.as_ref();
    put(s, "m/x", b"old", None).await;
    put(s, "m/y", b"old", None).await;
    for (from, to) in [("x", "x2"), ("y", "y2")] {
        let f = e.path(from).await.unwrap();
        let fh = e.fs.open(f.ino, true, true).await.unwrap();
        e.fs.write(fh, 0, b"new").await.unwrap();
        e.fs.rename(ROOT, from, ROOT, to, false).await.unwrap();
        assert_eq!(get(s, &format!("m/{from}")).await.unwrap(), b"old");
        if from == "y" {
            e.write_new(ROOT, "y", b"old").await.unwrap();
        }
        e.fs.flush(fh).await.unwrap();
        e.fs.release(fh).await.unwrap();
        assert_eq!(get(s, &format!("m/{to}")).await.unwrap(), b"new");
    }
    assert_eq!(get(s, "m/x").await, None);
    assert_eq!(get(s, "m/y").await.unwrap(), b"old", "written again here");
}

/// A directory rename with a fault at each step: a failed copy undoes it;
/// once every copy is made it stands, and old objects that could not be
/// deleted are hidden and retried at unmount.
#[tokio::test]
async fn renaming_a_directory_keeps_every_object_whatever_step_fails() {
    use StoreErrorKind::Network;
    for (op, fault, stands) in [
        (Op::Copy, Fault::Fail(Network), false),
        (Op::DeleteBatch, Fault::Fail(Network), true),
        (Op::DeleteBatch, Fault::FailAfter(Network), true),
    ] {
        let case = format!("{op:?} {fault:?}");
        let mem: Arc<dyn ObjectStore> = MemoryStore::with_bucket(B);
        let faulty = Arc::new(FaultyStore::new(mem.clone()));
        let e = env_on(faulty.clone(), tempfile::tempdir().unwrap(), config());
        for k in ["m/d/x", "m/d/y", "m/d/sub/z"] {
            put(mem.as_ref(), k, k.as_bytes(), None).await;
        }
        e.names(ROOT).await;
        faulty.inject(op, When::Nth(if op == Op::Copy { 2 } else { 1 }), fault);
        let r = e.fs.rename(ROOT, "d", ROOT, "e", false).await;
        assert_eq!(r.is_ok(), stands, "{case}: {r:?}");
        let (kept, gone) = if stands { ("e", "d") } else { ("d", "e") };
        for rel in ["x", "y", "sub/z"] {
            let data = format!("m/d/{rel}").into_bytes();
            let (old, new) = (
                get(mem.as_ref(), &format!("m/d/{rel}")).await,
                get(mem.as_ref(), &format!("m/e/{rel}")).await,
            );
            assert!(
                old == Some(data.clone()) || new == Some(data.clone()),
                "{case}: {rel}"
            );
            assert_eq!(
                shown(&e, &format!("{kept}/{rel}")).await,
                Some(data.clone()),
                "{case}"
            );
            assert_eq!(shown(&e, &format!("{gone}/{rel}")).await, None, "{case}");
        }
        e.fs.shutdown(Duration::from_secs(30)).await;
        for rel in ["x", "y", "sub/z"] {
            let data = format!("m/d/{rel}").into_bytes();
            assert_eq!(
                get(mem.as_ref(), &format!("m/{kept}/{rel}")).await,
                Some(data)
            );
            assert_eq!(get(mem.as_ref(), &format!("m/{gone}/{rel}")).await, None);
        }
    }
}
