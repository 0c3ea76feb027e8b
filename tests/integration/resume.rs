//! Resumable transfer: killed processes, injected faults, changed sources
//! and damaged checkpoints. Bytes are counted at a proxy in front of the
//! server or by the store wrapper, never taken from ferry's own report.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;

use ferry::store::faulty::{Fault, FaultyStore, Op, When};
use ferry::store::{Body, GetRequest, ObjectStore, PutOptions, StoreErrorKind};
use ferry::transfer::checkpoint::{self, CheckpointFile, DownloadCheckpoint, UploadCheckpoint};
use ferry::transfer::parts::layout;
use ferry::transfer::{
    download_file, upload_file, Cancel, Context, TransferError, TransferOptions, MIB,
};

use crate::harness::{
    aws_listed_parts, aws_sha256, pattern, runtime, server, sha256, sha256_file, unique, wait_for,
    write_file, Ferry, Notes,
};
use crate::proxy::Proxy;

const PART: u64 = 8 * MIB;
const PARALLEL: u64 = 4;

fn spawn(ferry: &Ferry, args: &[&str]) -> Child {
    ferry
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn checkpoints(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn upload_killed_with_sigkill_resumes_sending_only_missing_parts() {
    let dir = tempfile::tempdir().unwrap();
    let size = 200 * MIB;
    let src = write_file(&dir.path().join("big.bin"), size as usize, 42);
    let ckpt = dir.path().join("ckpt");
    let key = format!("{}/big.bin", unique("kill-up"));
    let url = server().url(&key);
    let args = [
        "cp",
        src.to_str().unwrap(),
        &url,
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--parallel",
        "4",
    ];

    // Slow enough that the kill lands mid-upload.
    let slow = Proxy::start(&server().endpoint, 25 * MIB);
    let mut child = spawn(&Ferry::at(&slow.endpoint), &args);
    wait_for(120, "a few parts on the server", || {
        aws_listed_parts(&key).is_some_and(|p| p.len() >= 4)
    });
    kill9(&mut child);
    let listed = aws_listed_parts(&key).expect("upload still open after kill");
    assert!(listed.len() < 25, "killed too late: {} parts", listed.len());
    assert_eq!(checkpoints(&ckpt, "ucp").len(), 1);

    let counting = slow;
    counting.reset(0);
    let out = Ferry::at(&counting.endpoint).run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming"), "{stderr}");
    // The notice counts what the server holds, recorded or not: a kill
    // loses the last records, never the parts.
    let number_before = |s: &str, marker: &str| -> usize {
        s.find(marker)
            .map(|i| s[..i].split_whitespace().last().unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    let recorded = number_before(&stderr, " of ");
    let unrecorded = number_before(&stderr, " more on the server but not in the checkpoint");
    assert!(
        recorded + unrecorded >= listed.len(),
        "the notice counts {recorded} + {unrecorded} parts; the server held {}: {stderr}",
        listed.len()
    );

    let total_parts = layout(size, PART).len() as u64;
    let remaining = (total_parts - listed.len() as u64) * PART;
    let sent = counting.body_bytes("PUT", "partNumber=");
    assert!(
        sent <= remaining + PARALLEL * PART,
        "rerun sent {sent} bytes; {remaining} were missing"
    );
    assert!(
        sent >= remaining.saturating_sub(PART),
        "rerun sent {sent}, fewer than the {remaining} missing"
    );
    assert_eq!(
        counting.count("POST", "uploads"),
        0,
        "no new upload was started"
    );
    assert_eq!(aws_sha256(&key), sha256_file(&src));
    // The parts of both runs carried CRC-64/NVME: the server combined them
    // into the whole file's, as an independent client reads it.
    let head = crate::harness::aws_head(&key);
    assert_eq!(head["ChecksumType"].as_str(), Some("FULL_OBJECT"), "{head}");
    assert_eq!(
        head["ChecksumCRC64NVME"].as_str(),
        Some(crate::checksums::nvme_base64(&std::fs::read(&src).unwrap()).as_str())
    );
    assert!(
        checkpoints(&ckpt, "ucp").is_empty(),
        "checkpoint removed after success"
    );
}

#[test]
fn download_killed_with_sigkill_resumes_fetching_only_missing_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let size = 200 * MIB;
    let data = pattern(size as usize, 9);
    let key = format!("{}/big.bin", unique("kill-down"));
    let store = server().store();
    runtime().block_on(async {
        let opts = TransferOptions {
            endpoint_id: server().endpoint.clone(),
            ..Default::default()
        };
        let src = write_file(&dir.path().join("src.bin"), 0, 0);
        std::fs::write(&src, &data).unwrap();
        let ctx = Context {
            store: store.clone(),
            progress: Arc::new(ferry::transfer::NoProgress),
            cancel: Cancel::never(),
        };
        upload_file(&ctx, &opts, &src, &server().bucket, &key)
            .await
            .unwrap();
    });
    let dest = dir.path().join("out/big.bin");
    let ckpt = dir.path().join("ckpt");
    let url = server().url(&key);
    let args = [
        "cp",
        &url,
        dest.to_str().unwrap(),
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ];

    let slow = Proxy::start(&server().endpoint, 25 * MIB);
    let mut child = spawn(&Ferry::at(&slow.endpoint), &args);
    wait_for(120, "a third of the object downloaded", || {
        slow.response_bytes() > size / 3
    });
    kill9(&mut child);
    assert!(
        !dest.exists(),
        "nothing under the real name before completion"
    );
    let cps = checkpoints(&ckpt, "dcp");
    assert_eq!(cps.len(), 1);
    let cp: DownloadCheckpoint = checkpoint::decode(&std::fs::read(&cps[0]).unwrap()).unwrap();
    let l = layout(size, cp.part_size);
    let done: u64 = cp.done.iter().map(|d| l[d.number as usize - 1].len).sum();
    assert!(done > 0 && done < size, "checkpoint recorded {done} bytes");

    let counting = slow;
    counting.reset(0);
    let out = Ferry::at(&counting.endpoint).run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fetched = counting.response_bytes();
    // Response headers add a little per request.
    let overhead = 64 * 1024;
    assert!(
        fetched <= size - done + overhead,
        "rerun fetched {fetched}; {} were missing",
        size - done
    );
    assert_eq!(sha256_file(&dest), sha256(&data));
    assert!(checkpoints(&ckpt, "dcp").is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn interrupt_signal_saves_checkpoint_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("big.bin"), 120 * MIB as usize, 5);
    let ckpt = dir.path().join("ckpt");
    let key = format!("{}/big.bin", unique("sigint"));
    let url = server().url(&key);
    let args = [
        "cp",
        src.to_str().unwrap(),
        &url,
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ];
    let slow = Proxy::start(&server().endpoint, 12 * MIB);
    let mut child = spawn(&Ferry::at(&slow.endpoint), &args);
    wait_for(120, "parts on the server", || {
        aws_listed_parts(&key).is_some_and(|p| p.len() >= 2)
    });
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let cps = checkpoints(&ckpt, "ucp");
    assert_eq!(cps.len(), 1);
    let cp: UploadCheckpoint = checkpoint::decode(&std::fs::read(&cps[0]).unwrap()).unwrap();
    assert!(!cp.parts.is_empty(), "flushed parts on interrupt");
    let counting = slow;
    counting.reset(0);
    Ferry::at(&counting.endpoint).ok(&args);
    assert!(counting.body_bytes("PUT", "partNumber=") < 120 * MIB);
    assert_eq!(aws_sha256(&key), sha256_file(&src));
}

// ---- Library-level tests with injected faults, against the real server ----

struct Rig {
    dir: tempfile::TempDir,
    faulty: Arc<FaultyStore>,
    notes: Arc<Notes>,
    opts: TransferOptions,
    key: String,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let faulty = Arc::new(FaultyStore::new(server().store()));
        let opts = TransferOptions {
            bigfile_threshold: MIB,
            part_size: Some(5 * MIB),
            parallel: 3,
            checkpoint_dir: Some(dir.path().join("ckpt")),
            endpoint_id: server().endpoint.clone(),
            crc64: false,
            memory: None,
            ..TransferOptions::default()
        };
        Rig {
            dir,
            faulty,
            notes: Arc::new(Notes::default()),
            opts,
            key: format!("{}/obj", unique(name)),
        }
    }

    fn ctx(&self) -> Context {
        Context {
            store: self.faulty.clone(),
            progress: self.notes.clone(),
            cancel: Cancel::never(),
        }
    }

    fn file(&self, len: usize, seed: u64) -> std::path::PathBuf {
        write_file(&self.dir.path().join("src.bin"), len, seed)
    }

    /// A first run in which the first `ok_parts` parts reach the server and
    /// every later one fails: it must fail cleanly, leaving its checkpoint.
    fn interrupted_upload(&self, src: &Path, ok_parts: u64) {
        self.faulty.inject(
            Op::UploadPart,
            When::Calls(ok_parts + 1..1000),
            Fault::Fail(StoreErrorKind::Server),
        );
        let one_at_a_time = TransferOptions {
            parallel: 1,
            ..self.opts.clone()
        };
        let e = runtime()
            .block_on(upload_file(
                &self.ctx(),
                &one_at_a_time,
                src,
                &server().bucket,
                &self.key,
            ))
            .unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        self.faulty.clear();
    }

    fn upload(&self, src: &Path) -> Result<ferry::transfer::UploadOutcome, TransferError> {
        runtime().block_on(upload_file(
            &self.ctx(),
            &self.opts,
            src,
            &server().bucket,
            &self.key,
        ))
    }

    fn download(&self, dest: &Path) -> Result<ferry::transfer::DownloadOutcome, TransferError> {
        runtime().block_on(download_file(
            &self.ctx(),
            &self.opts,
            &server().bucket,
            &self.key,
            dest,
        ))
    }

    fn remote_sha(&self) -> String {
        let b = runtime().block_on(async {
            server()
                .store()
                .get_object(&server().bucket, &self.key, &GetRequest::whole())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        sha256(&b)
    }
}

const SIZE: usize = 23 * MIB as usize; // 5 parts of 5 MiB (last 3 MiB)

#[test]
fn connection_dropped_after_part_reached_server_is_retried() {
    let rig = Rig::new("fault-drop");
    let src = rig.file(SIZE, 1);
    rig.faulty.inject(
        Op::UploadPart,
        When::Nth(2),
        Fault::FailAfter(StoreErrorKind::Network),
    );
    rig.upload(&src).unwrap();
    assert_eq!(rig.remote_sha(), sha256_file(&src));
    assert_eq!(rig.faulty.calls(Op::UploadPart), 6);
}

#[test]
fn slowdown_burst_is_ridden_out() {
    let rig = Rig::new("fault-503");
    let src = rig.file(SIZE, 2);
    rig.faulty.inject(
        Op::UploadPart,
        When::Calls(1..4),
        Fault::Fail(StoreErrorKind::Throttled),
    );
    rig.upload(&src).unwrap();
    assert_eq!(rig.remote_sha(), sha256_file(&src));
}

#[test]
fn persistent_failure_keeps_checkpoint_and_rerun_sends_only_the_rest() {
    let rig = Rig::new("fault-persist");
    let src = rig.file(SIZE, 3);
    // Parts 1 and 2 succeed; every later call fails.
    rig.interrupted_upload(&src, 2);
    let before = rig.faulty.bytes_sent();
    let out = rig.upload(&src).unwrap();
    let sent = rig.faulty.bytes_sent() - before;
    assert_eq!(out.bytes_resumed, 10 * MIB);
    assert_eq!(sent, SIZE as u64 - 10 * MIB, "only the missing parts");
    assert_eq!(rig.remote_sha(), sha256_file(&src));
}

#[test]
fn vanished_upload_starts_over_cleanly() {
    let rig = Rig::new("fault-nosuchupload");
    let src = rig.file(SIZE, 4);
    rig.interrupted_upload(&src, 1);
    rig.faulty.inject(
        Op::ListParts,
        When::Nth(1),
        Fault::Fail(StoreErrorKind::NoSuchUpload),
    );
    rig.upload(&src).unwrap();
    assert!(
        rig.notes.joined().contains("no longer exists"),
        "{}",
        rig.notes.joined()
    );
    assert_eq!(rig.faulty.calls(Op::CreateUpload), 2);
    assert_eq!(rig.remote_sha(), sha256_file(&src));
}

#[test]
fn listed_part_of_wrong_size_is_resent() {
    let rig = Rig::new("fault-wrongsize");
    let src = rig.file(SIZE, 5);
    rig.interrupted_upload(&src, 2);
    rig.faulty
        .inject(Op::ListParts, When::Always, Fault::WrongPartSize);
    let before = rig.faulty.bytes_sent();
    rig.upload(&src).unwrap();
    assert_eq!(
        rig.faulty.bytes_sent() - before,
        SIZE as u64,
        "nothing trusted, all re-sent"
    );
    assert!(
        rig.notes.joined().contains("not trusted"),
        "{}",
        rig.notes.joined()
    );
    assert_eq!(rig.remote_sha(), sha256_file(&src));
}

#[test]
fn truncated_download_body_is_refetched() {
    let rig = Rig::new("fault-truncate");
    let src = rig.file(SIZE, 6);
    rig.upload(&src).unwrap();
    rig.faulty
        .inject(Op::Get, When::Nth(2), Fault::TruncateBody(1000));
    let dest = rig.dir.path().join("down.bin");
    rig.download(&dest).unwrap();
    assert_eq!(sha256_file(&dest), sha256_file(&src));
    assert_eq!(rig.faulty.calls(Op::Get), 6);
}

/// The single-GET path checks the whole object against its stored
/// CRC-64/NVME (S3), the ranged path against the combined CRC-64/ECMA
/// (OSS). Either way a damaged download fails as an integrity error and
/// leaves nothing behind.
#[test]
fn corrupted_download_body_is_caught_and_leaves_nothing() {
    let rig = Rig::new("fault-corrupt");
    let src = rig.file(200 * 1024, 8);
    rig.upload(&src).unwrap();
    rig.faulty.inject(Op::Get, When::Always, Fault::CorruptBody);
    let dest = rig.dir.path().join("down").join("x.bin");
    let err = rig.download(&dest).unwrap_err();
    assert!(matches!(err, TransferError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("CRC64NVME"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn corrupted_ranged_download_fails_the_crc64_check() {
    // OSS: its CRC-64 and no flexible checksums.
    let mut memory = ferry::store::memory::MemoryStore::new();
    memory.report_crc64 = true;
    memory.checksums = false;
    let memory = Arc::new(memory);
    let faulty = Arc::new(FaultyStore::new(memory.clone()));
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * MIB as usize + 17, 9);
    runtime().block_on(async {
        memory.create_bucket("b").await.unwrap();
        memory
            .put_object("b", "k", Body::new(data.clone()), &PutOptions::default())
            .await
            .unwrap();
    });
    let opts = TransferOptions {
        bigfile_threshold: MIB,
        part_size: Some(MIB),
        parallel: 2,
        ..TransferOptions::default()
    };
    let ctx = Context {
        store: faulty.clone(),
        progress: Arc::new(Notes::default()),
        cancel: Cancel::never(),
    };
    let dest = dir.path().join("x.bin");
    // Undamaged, the same download passes the same check.
    runtime()
        .block_on(download_file(&ctx, &opts, "b", "k", &dest))
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    std::fs::remove_file(&dest).unwrap();
    faulty.inject(Op::Get, When::Always, Fault::CorruptBody);
    let err = runtime()
        .block_on(download_file(&ctx, &opts, "b", "k", &dest))
        .unwrap_err();
    assert!(matches!(err, TransferError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("CRC-64/ECMA"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn source_modified_between_runs_aborts_old_upload() {
    let rig = Rig::new("changed-src");
    let src = rig.file(SIZE, 7);
    rig.interrupted_upload(&src, 2);
    let cp_path = checkpoints(&rig.dir.path().join("ckpt"), "ucp")
        .pop()
        .unwrap();
    let old: UploadCheckpoint = checkpoint::decode(&std::fs::read(&cp_path).unwrap()).unwrap();
    std::fs::write(&src, pattern(SIZE, 70)).unwrap();
    filetime::set_file_mtime(&src, filetime::FileTime::from_unix_time(1_650_000_000, 0)).unwrap();
    rig.upload(&src).unwrap();
    assert!(
        rig.notes
            .joined()
            .contains("changed since the interrupted upload"),
        "{}",
        rig.notes.joined()
    );
    let open = runtime()
        .block_on(
            server()
                .store()
                .list_multipart_uploads(&server().bucket, &rig.key, None),
        )
        .unwrap();
    assert!(
        !open.uploads.iter().any(|u| u.upload_id == old.upload_id),
        "old upload aborted"
    );
    assert_eq!(rig.remote_sha(), sha256(&pattern(SIZE, 70)));
}

#[test]
fn remote_replaced_between_download_runs_restarts() {
    let rig = Rig::new("changed-remote");
    let src = rig.file(SIZE, 8);
    rig.upload(&src).unwrap();
    rig.faulty.inject(
        Op::Get,
        When::Calls(3..1000),
        Fault::Fail(StoreErrorKind::Server),
    );
    let dest = rig.dir.path().join("down.bin");
    let opts1 = TransferOptions {
        parallel: 1,
        ..rig.opts.clone()
    };
    assert!(runtime()
        .block_on(download_file(
            &rig.ctx(),
            &opts1,
            &server().bucket,
            &rig.key,
            &dest
        ))
        .is_err());
    assert!(!dest.exists());
    rig.faulty.clear();
    let new = pattern(SIZE + 100, 80);
    runtime()
        .block_on(server().store().put_object(
            &server().bucket,
            &rig.key,
            Body::new(new.clone()),
            &PutOptions::default(),
        ))
        .unwrap();
    rig.download(&dest).unwrap();
    assert!(
        rig.notes
            .joined()
            .contains("changed since the interrupted download"),
        "{}",
        rig.notes.joined()
    );
    assert_eq!(sha256_file(&dest), sha256(&new));
}

#[test]
fn damaged_checkpoints_are_reported_and_ignored() {
    for (case, content) in [
        ("random bytes", pattern(300, 1)),
        ("truncated JSON", b"{\"format\":\"ferry-checkpoint\",\"version\":1,\"kind\":\"upl".to_vec()),
        ("other version", b"{\"format\":\"ferry-checkpoint\",\"version\":99,\"kind\":\"upload\",\"sha256\":\"x\"}\n{}\n".to_vec()),
    ] {
        let rig = Rig::new("damaged");
        let src = rig.file(SIZE, 9);
        let abs = std::fs::canonicalize(&src).unwrap();
        let dest_id = format!("{}/{}/{}", rig.opts.endpoint_id, server().bucket, rig.key);
        let dir = rig.dir.path().join("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        let name = checkpoint::file_name::<UploadCheckpoint>(abs.as_os_str(), &dest_id);
        std::fs::write(dir.join(&name), &content).unwrap();
        rig.upload(&src).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(rig.notes.joined().contains("ignoring checkpoint"), "{case}: {}", rig.notes.joined());
        assert_eq!(rig.remote_sha(), sha256_file(&src), "{case}");
        assert!(checkpoints(&dir, "ucp").is_empty(), "{case}");
    }
}

#[test]
fn damaged_checkpoint_via_cli_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 2 * MIB as usize, 3);
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    let key = format!("{}/f.bin", unique("cli-damaged"));
    let abs = std::fs::canonicalize(&src).unwrap();
    let name = checkpoint::file_name::<UploadCheckpoint>(
        abs.as_os_str(),
        &format!("{}/{}/{key}", server().endpoint, server().bucket),
    );
    std::fs::write(ckpt.join(name), b"garbage").unwrap();
    let ferry = Ferry::new();
    let out = ferry.run(&[
        "cp",
        src.to_str().unwrap(),
        &server().url(&key),
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--bigfile-threshold",
        "1M",
        "--part-size",
        "5M",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("ignoring checkpoint"))
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("not a ferry checkpoint"), "{err}");
}

#[test]
fn second_process_on_same_checkpoint_is_refused() {
    let rig = Rig::new("locked");
    let src = rig.file(SIZE, 10);
    let abs = std::fs::canonicalize(&src).unwrap();
    let dest_id = format!("{}/{}/{}", rig.opts.endpoint_id, server().bucket, rig.key);
    let held = CheckpointFile::open::<UploadCheckpoint>(
        rig.opts.checkpoint_dir.as_ref().unwrap(),
        abs.as_os_str(),
        &dest_id,
    )
    .unwrap();
    let e = rig.upload(&src).unwrap_err();
    assert!(matches!(e, TransferError::Busy(_)), "{e}");
    assert!(e.to_string().contains("already"), "{e}");
    assert_eq!(rig.faulty.calls(Op::CreateUpload), 0);
    drop(held);
    rig.upload(&src).unwrap();
}

#[test]
fn without_checkpoint_dir_a_failed_upload_is_aborted() {
    let rig = Rig::new("no-ckpt");
    let src = rig.file(SIZE, 11);
    rig.faulty.inject(
        Op::UploadPart,
        When::Calls(3..1000),
        Fault::Fail(StoreErrorKind::Server),
    );
    let opts = TransferOptions {
        checkpoint_dir: None,
        parallel: 1,
        ..rig.opts.clone()
    };
    assert!(runtime()
        .block_on(upload_file(
            &rig.ctx(),
            &opts,
            &src,
            &server().bucket,
            &rig.key
        ))
        .is_err());
    assert_eq!(rig.faulty.calls(Op::Abort), 1);
    let open = runtime()
        .block_on(
            server()
                .store()
                .list_multipart_uploads(&server().bucket, &rig.key, None),
        )
        .unwrap();
    assert!(
        open.uploads.is_empty(),
        "no orphaned upload: {:?}",
        open.uploads
    );
}

#[test]
fn checkpoint_part_size_wins_over_a_different_request() {
    let rig = Rig::new("partsize");
    let src = rig.file(SIZE, 12);
    rig.interrupted_upload(&src, 1);
    let opts2 = TransferOptions {
        part_size: Some(6 * MIB),
        ..rig.opts.clone()
    };
    let out = runtime()
        .block_on(upload_file(
            &rig.ctx(),
            &opts2,
            &src,
            &server().bucket,
            &rig.key,
        ))
        .unwrap();
    assert_eq!(out.parts_total, 5, "5 MiB parts kept");
    assert!(
        rig.notes.joined().contains("part size"),
        "{}",
        rig.notes.joined()
    );
    assert_eq!(rig.remote_sha(), sha256_file(&src));
}
