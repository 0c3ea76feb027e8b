//! Downloads and uploads against the in-memory store: the edges a real
//! server cannot be made to produce on cue (an object replaced between
//! two ranged GETs, ETags that are not MD5s, a second process on the same
//! temporary file).

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::download::{download_object, file_target, Target};
use super::*;
use crate::store::faulty::{FaultyStore, Op};
use crate::store::memory::MemoryStore;
use crate::store::{Body, ObjectStore, PutOptions};

const B: &str = "b";

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: &[u8]) {
    store
        .put_object(B, key, Body::new(bytes.to_vec()), &PutOptions::default())
        .await
        .unwrap();
}

/// Ranged downloads in 64 KiB parts, one at a time, so "between two
/// ranges" is a well-defined moment.
fn ranged_opts(checkpoint_dir: Option<&Path>) -> TransferOptions {
    TransferOptions {
        bigfile_threshold: 64 * 1024,
        part_size: Some(64 * 1024),
        parallel: 1,
        checkpoint_dir: checkpoint_dir.map(Path::to_path_buf),
        endpoint_id: "mem".into(),
        ..Default::default()
    }
}

/// Replaces the object with `replacement` after the first range arrives,
/// as another client overwriting it mid-download would; keeps the notes.
struct Overwriter {
    store: Arc<MemoryStore>,
    key: String,
    replacement: Mutex<Option<Vec<u8>>>,
    notes: Mutex<Vec<String>>,
}

impl Progress for Overwriter {
    fn advance(&self, _bytes: u64) {
        if let Some(new) = self.replacement.lock().unwrap().take() {
            // The memory store never awaits anything real.
            futures::executor::block_on(put(self.store.as_ref(), &self.key, &new));
        }
    }
    fn note(&self, msg: &str) {
        self.notes.lock().unwrap().push(msg.to_string());
    }
}

#[tokio::test]
async fn an_object_replaced_between_ranges_restarts_instead_of_mixing() {
    for resumable in [false, true] {
        let m = MemoryStore::with_bucket(B);
        let old = data(300 * 1024, 1);
        let new = data(300 * 1024, 2);
        put(m.as_ref(), "k", &old).await;
        let faulty = Arc::new(FaultyStore::new(m.clone()));
        let progress = Arc::new(Overwriter {
            store: m.clone(),
            key: "k".into(),
            replacement: Mutex::new(Some(new.clone())),
            notes: Mutex::default(),
        });
        let ctx = Context {
            store: faulty.clone(),
            progress: progress.clone(),
            cancel: Cancel::never(),
        };
        let dir = tempfile::tempdir().unwrap();
        let cps = tempfile::tempdir().unwrap();
        let opts = ranged_opts(resumable.then(|| cps.path()));
        let dest = dir.path().join("out");
        let (root, name) = file_target(&dest).unwrap();
        let meta = m.head_object(B, "k").await.unwrap();
        let target = Target {
            dest: &root,
            rel: &name,
        };
        download_object(&ctx, &opts, B, "k", target, meta)
            .await
            .unwrap();
        let got = std::fs::read(&dest).unwrap();
        assert!(
            got == new,
            "resumable={resumable}: the file mixes two versions"
        );
        let notes = progress.notes.lock().unwrap().clone();
        assert!(
            notes.iter().any(|n| n.contains("replaced on the server")),
            "{notes:?}"
        );
        // One HEAD for the restart, and the first attempt's ranges were not
        // all fetched: it stopped at the first refused GET.
        assert_eq!(faulty.calls(Op::Head), 1);
        assert_eq!(faulty.calls(Op::Get), 2 + 5);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
        assert_eq!(std::fs::read_dir(cps.path()).unwrap().count(), 0);
    }
}

#[test]
fn a_resumable_download_meets_another_spelling_of_its_destination_at_one_locked_temp() {
    // Two runs of one download: other checkpoint directories, other
    // spellings of the path. The second must find the first's temporary
    // held, not truncate it. Each run has its own thread, as a process.
    let m = MemoryStore::with_bucket(B);
    let object = data(200 * 1024, 3);
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    rt().block_on(put(m.as_ref(), "k", &object));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let (cp1, cp2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(Gate(Mutex::new(Some((started_tx, release_rx)))));
    let meta = rt().block_on(m.head_object(B, "k")).unwrap();
    let run = |store: Arc<MemoryStore>, progress: Arc<dyn Progress>, cps: &Path, dest: &Path| {
        let ctx = Context {
            store,
            progress,
            cancel: Cancel::never(),
        };
        let (root, name) = file_target(dest).unwrap();
        let target = Target {
            dest: &root,
            rel: &name,
        };
        rt().block_on(download_object(
            &ctx,
            &ranged_opts(Some(cps)),
            B,
            "k",
            target,
            meta.clone(),
        ))
    };
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            run(
                m.clone(),
                gate.clone(),
                cp1.path(),
                &dir.path().join("out/big"),
            )
        });
        started_rx.recv().unwrap();
        let second = run(
            m.clone(),
            Arc::new(NoProgress),
            cp2.path(),
            &dir.path().join("out/../out/big"),
        );
        release_tx.send(()).unwrap();
        assert!(matches!(second, Err(TransferError::Busy(_))), "{second:?}");
        first.join().unwrap().unwrap();
    });
    assert_eq!(std::fs::read(dir.path().join("out/big")).unwrap(), object);
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
}

/// Holds its download after the first range until told to go on.
type Signals = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);
struct Gate(Mutex<Option<Signals>>);

impl Progress for Gate {
    fn advance(&self, _bytes: u64) {
        if let Some((started, release)) = self.0.lock().unwrap().take() {
            started.send(()).unwrap();
            release.recv().unwrap();
        }
    }
}

#[tokio::test]
async fn etags_that_are_not_md5s_neither_fail_downloads_nor_delete_uploads() {
    // SSE-KMS: every ETag is hex of the right length and no MD5.
    let mut m = MemoryStore::new();
    m.kms_etags = true;
    m.min_part_size = 64 * 1024;
    let m = Arc::new(m);
    m.create_bucket(B).await.unwrap();
    let ctx = Context {
        store: m.clone(),
        progress: Arc::new(NoProgress),
        cancel: Cancel::never(),
    };
    let dir = tempfile::tempdir().unwrap();
    let small = data(1000, 4);
    let big = data(300 * 1024, 5);
    std::fs::write(dir.path().join("small"), &small).unwrap();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let opts = ranged_opts(None);
    for (name, bytes) in [("small", &small), ("big", &big)] {
        let out = upload_file(&ctx, &opts, &dir.path().join(name), B, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!out.etag.is_empty());
        let stored = m
            .get_object(B, name, &crate::store::GetRequest::whole())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&stored[..], &bytes[..], "{name} kept on the server");
        let back = dir.path().join(format!("{name}.back"));
        let meta = m.head_object(B, name).await.unwrap();
        assert_ne!(meta.etag, hex::encode(md5_of(bytes)));
        download_to(&ctx, &opts, name, &back, meta)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&std::fs::read(&back).unwrap(), bytes);
    }
}

/// Downloads `key` of bucket `B` to the file `path`, from its HEAD.
async fn download_to(
    ctx: &Context,
    opts: &TransferOptions,
    key: &str,
    path: &Path,
    meta: crate::store::ObjectMeta,
) -> Result<DownloadOutcome, TransferError> {
    let (root, file) = file_target(path).unwrap();
    let target = Target {
        dest: &root,
        rel: &file,
    };
    download_object(ctx, opts, B, key, target, meta).await
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

#[tokio::test]
async fn a_basename_of_255_bytes_downloads() {
    let m = MemoryStore::with_bucket(B);
    let name = "n".repeat(255);
    put(m.as_ref(), &name, b"long").await;
    let ctx = Context {
        store: m.clone(),
        progress: Arc::new(NoProgress),
        cancel: Cancel::never(),
    };
    let dir = tempfile::tempdir().unwrap();
    for opts in [TransferOptions::default(), {
        let mut o = ranged_opts(Some(dir.path()));
        o.bigfile_threshold = 1;
        o.part_size = Some(2);
        o
    }] {
        let dest = dir.path().join("out").join(&name);
        let _ = std::fs::remove_file(&dest);
        download_file(&ctx, &opts, B, &name, &dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"long");
    }
}

/// A store that keeps checksums gets CRC-64/NVME and no MD5; one that
/// ignores them gets Content-MD5; each download says which check ran.
#[tokio::test]
async fn checksums_where_the_store_keeps_them_md5_where_it_does_not() {
    use crate::checksum::{Algorithm, ChecksumType};
    use crate::transfer::verify::{Check, CrcKind};
    for keeps in [true, false] {
        let mut m = MemoryStore::new();
        m.checksums = keeps;
        m.min_part_size = 64 * 1024;
        let m = Arc::new(m);
        m.create_bucket(B).await.unwrap();
        let counted = Arc::new(FaultyStore::new(m.clone()));
        let ctx = Context {
            store: counted.clone(),
            progress: Arc::new(NoProgress),
            cancel: Cancel::never(),
        };
        let dir = tempfile::tempdir().unwrap();
        let opts = ranged_opts(None);
        for (name, len) in [("small", 1000usize), ("big", 300 * 1024)] {
            let bytes = data(len, 9);
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            upload_file(&ctx, &opts, &path, B, name).await.unwrap();
            let meta = m.head_object(B, name).await.unwrap();
            match (&meta.checksum, keeps) {
                (Some(s), true) => {
                    assert_eq!(s.kind, ChecksumType::FullObject);
                    let crc = crate::checksum::flexible::crc_of(Algorithm::Crc64Nvme, &bytes);
                    assert_eq!(
                        s.checksum,
                        crate::checksum::Checksum::crc(Algorithm::Crc64Nvme, crc.unwrap())
                    );
                }
                (None, false) => {}
                other => panic!("{name}: {other:?}"),
            }
            let back = dir.path().join(format!("{name}.back"));
            let out = download_to(&ctx, &opts, name, &back, meta).await.unwrap();
            assert_eq!(std::fs::read(&back).unwrap(), bytes);
            let check = out.check.unwrap();
            match (keeps, name) {
                (true, _) => assert!(
                    matches!(
                        check,
                        Check::Crc {
                            kind: CrcKind::Crc64Nvme,
                            ..
                        }
                    ),
                    "{check:?}"
                ),
                (false, "small") => assert!(matches!(check, Check::Md5 { .. }), "{check:?}"),
                (false, _) => assert_eq!(check, Check::Size),
            }
        }
        // One PUT (the small file); the big one went in parts.
        assert_eq!(counted.calls(Op::Put), 1);
        assert!(counted.calls(Op::UploadPart) >= 5);
    }
}
