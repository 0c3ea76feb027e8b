//! Completing multipart uploads against what a cluster that loses a node
//! answers, on the memory store behind the fault injector: a part it listed
//! but cannot complete with, and a completion whose answer was lost.

use std::sync::Arc;

use super::*;
use crate::store::faulty::{Fault, FaultyStore, Op, When};
use crate::store::memory::MemoryStore;
use crate::store::{GetRequest, ObjectStore, StoreErrorKind};

const B: &str = "b";
const PART: u64 = 64 * 1024;

struct Rig {
    memory: Arc<MemoryStore>,
    faulty: Arc<FaultyStore>,
    dir: tempfile::TempDir,
    data: Vec<u8>,
}

impl Rig {
    async fn new() -> Rig {
        let mut m = MemoryStore::new();
        m.min_part_size = PART;
        let memory = Arc::new(m);
        memory.create_bucket(B).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(6 * PART as usize + 100))
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        std::fs::write(dir.path().join("f"), &data).unwrap();
        Rig {
            faulty: Arc::new(FaultyStore::new(memory.clone())),
            memory,
            dir,
            data,
        }
    }

    async fn upload(&self) -> Result<UploadOutcome, TransferError> {
        let ctx = Context {
            store: self.faulty.clone(),
            progress: Arc::new(NoProgress),
            cancel: Cancel::never(),
        };
        let opts = TransferOptions {
            bigfile_threshold: PART,
            part_size: Some(PART),
            parallel: 2,
            checkpoint_dir: Some(self.dir.path().join("ckpt")),
            endpoint_id: "mem".into(),
            ..Default::default()
        };
        upload_file(&ctx, &opts, &self.dir.path().join("f"), B, "k").await
    }

    async fn stored(&self) -> Vec<u8> {
        let out = self.memory.get_object(B, "k", &GetRequest::whole()).await;
        out.unwrap().bytes().await.unwrap().to_vec()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_refused_for_a_listed_part_sends_the_taken_over_parts_again() {
    let rig = Rig::new().await;
    // The first run dies after some parts (a failure that is not retried).
    rig.faulty.inject(
        Op::UploadPart,
        When::Nth(4),
        Fault::Fail(StoreErrorKind::Rejected),
    );
    assert!(rig.upload().await.is_err());
    rig.faulty.clear();
    let upload = rig
        .memory
        .list_multipart_uploads(B, "", None)
        .await
        .unwrap()
        .uploads
        .remove(0);
    let held = crate::store::list_all_parts(rig.memory.as_ref(), B, "k", &upload.upload_id)
        .await
        .unwrap();
    assert!(held.len() >= 3, "the first run left {} parts", held.len());
    let before = rig.faulty.calls(Op::UploadPart);
    // The rerun takes over the listed parts; the server then refuses to
    // complete with them, once.
    rig.faulty
        .inject(Op::Complete, When::Nth(1), Fault::Refuse("InvalidPart"));
    let out = rig.upload().await.unwrap();
    assert_eq!(rig.stored().await, rig.data);
    assert_eq!(rig.faulty.calls(Op::Complete), 2);
    // Every part went up in the second run: the missing ones, then the
    // taken-over ones again; none twice beyond that.
    let parts = 7;
    assert_eq!(out.parts_total, parts);
    let second_run = rig.faulty.calls(Op::UploadPart) - before;
    assert_eq!(second_run, u64::from(parts), "parts sent by the rerun");
    assert_eq!(out.parts_sent, parts);
    assert_eq!(out.bytes_sent, rig.data.len() as u64);
    assert_eq!(out.bytes_resumed, 0, "nothing taken over was kept");
    // The object carries the full-object checksum of the file.
    let head = rig.memory.head_object(B, "k").await.unwrap();
    let want = crate::checksum::CrcKind::Crc64Nvme.of_bytes(&rig.data);
    assert_eq!(head.checksum.unwrap().checksum.crc_value(), Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_answer_was_lost_is_found_completed() {
    let rig = Rig::new().await;
    rig.faulty.inject(
        Op::Complete,
        When::Nth(1),
        Fault::FailAfter(StoreErrorKind::Network),
    );
    rig.upload().await.unwrap();
    assert_eq!(rig.stored().await, rig.data);
    // Asked again, answered NoSuchUpload, and the HEAD showed this upload.
    assert_eq!(rig.faulty.calls(Op::Complete), 2);
    assert_eq!(rig.faulty.calls(Op::Head), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_completion_of_another_object_is_not_taken_for_this_one() {
    let rig = Rig::new().await;
    // The upload vanished (NoSuchUpload) and the key holds something else.
    rig.memory
        .put_object(
            B,
            "k",
            crate::store::Body::new(&b"other"[..]),
            &Default::default(),
        )
        .await
        .unwrap();
    rig.faulty.inject(
        Op::Complete,
        When::Always,
        Fault::Fail(StoreErrorKind::NoSuchUpload),
    );
    let e = rig.upload().await.unwrap_err();
    assert!(
        matches!(&e, TransferError::Store(s) if s.kind == StoreErrorKind::NoSuchUpload),
        "{e}"
    );
    assert_eq!(rig.stored().await, b"other");
}
