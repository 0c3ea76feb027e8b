//! The object-store contract: the same test body runs against the
//! in-memory store and the real server, so the fake cannot drift from the
//! protocol it stands in for.

use std::sync::Arc;

use ferry::checksum::{Crc, CrcKind};
use ferry::store::memory::MemoryStore;
use ferry::store::{
    list_all_objects, list_all_parts, Algorithm, Body, ChecksumType, CompletedPart, GetRequest,
    ListRequest, Metadata, ObjectStore, PutOptions, StoreErrorKind, StoredChecksum,
};

use crate::harness::{pattern, runtime, server, unique};

async fn contract(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) {
    let s = store.as_ref();
    let key = format!("{prefix}/dir/hello world+é.txt");
    let mut meta = Metadata::new();
    meta.insert("mtime".into(), "1700000000.123456789".into());
    let put = s
        .put_object(
            bucket,
            &key,
            Body::new(&b"hello, ferry"[..]),
            &PutOptions {
                metadata: meta.clone(),
                content_type: None,
                checksum: None,
                object: Default::default(),
            },
        )
        .await
        .unwrap();
    let head = s.head_object(bucket, &key).await.unwrap();
    assert_eq!(head.size, 12);
    assert_eq!(head.etag, put.etag);
    assert_eq!(
        head.metadata.get("mtime").map(String::as_str),
        Some("1700000000.123456789")
    );
    let got = s
        .get_object(bucket, &key, &GetRequest::range(7..12))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"ferry");
    let whole = s
        .get_object(bucket, &key, &GetRequest::whole())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&whole[..], b"hello, ferry");

    // Missing things are typed errors.
    let e = s
        .head_object(bucket, &format!("{prefix}/nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound, "{e}");
    let e = s
        .get_object(bucket, &format!("{prefix}/nope"), &GetRequest::whole())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, StoreErrorKind::NotFound, "{e}");
    let e = s
        .list_objects("no-such-bucket-ferry", &ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NoSuchBucket, "{e}");

    // A corrupted body is refused by Content-MD5.
    let mut bad = Body::new(&b"abc"[..]);
    bad.md5.as_mut().unwrap()[0] ^= 0xff;
    let e = s
        .put_object(
            bucket,
            &format!("{prefix}/bad"),
            bad,
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("BadDigest"), "{e}");
    assert!(s
        .head_object(bucket, &format!("{prefix}/bad"))
        .await
        .is_err());

    // Listing: pagination with a small page, and delimiters.
    for i in 0..7 {
        s.put_object(
            bucket,
            &format!("{prefix}/list/f{i}"),
            Body::new(vec![i as u8; i]),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    s.put_object(
        bucket,
        &format!("{prefix}/list/sub/x"),
        Body::new(&b"x"[..]),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let mut token = None;
    let mut seen = Vec::new();
    let lp = format!("{prefix}/list/");
    loop {
        let page = s
            .list_objects(
                bucket,
                &ListRequest {
                    prefix: &lp,
                    max_keys: Some(3),
                    continuation: token.as_deref(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.objects.len() <= 3);
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "sorted: {seen:?}");
    let page = s
        .list_objects(
            bucket,
            &ListRequest {
                prefix: &lp,
                delimiter: Some("/"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 7);
    assert_eq!(page.prefixes, vec![format!("{lp}sub/")]);

    // Copy with replaced metadata (how mtime is updated in place).
    let mut m2 = Metadata::new();
    m2.insert("mtime".into(), "1800000000".into());
    let like = PutOptions::like(&s.head_object(bucket, &key).await.unwrap(), m2.clone());
    s.copy_object(bucket, &key, bucket, &key, &like)
        .await
        .unwrap();
    let head = s.head_object(bucket, &key).await.unwrap();
    assert_eq!(
        head.metadata.get("mtime").map(String::as_str),
        Some("1800000000")
    );
    assert_eq!(head.size, 12);

    // Multipart: create with metadata and a FULL_OBJECT CRC-64/NVME,
    // parts with their checksums, paginated ListParts, complete.
    let mkey = format!("{prefix}/multi");
    let created = s
        .create_multipart_upload(
            bucket,
            &mkey,
            &PutOptions {
                metadata: meta.clone(),
                content_type: None,
                checksum: Some(Algorithm::Crc64Nvme),
                object: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.checksum, Some(Algorithm::Crc64Nvme));
    let id = created.upload_id;
    let uploads = s
        .list_multipart_uploads(bucket, prefix, None)
        .await
        .unwrap();
    assert!(uploads
        .uploads
        .iter()
        .any(|u| u.upload_id == id && u.key == mkey));
    let p1 = pattern(5 * 1024 * 1024, 1);
    let p2 = pattern(1000, 2);
    let nvme = |d: &[u8]| {
        let mut c = Crc::new(CrcKind::Crc64Nvme);
        c.update(d);
        c.checksum().unwrap()
    };
    let with_crc = |d: &Vec<u8>| Body {
        checksum: Some(nvme(d)),
        md5: None,
        ..Body::new(d.clone())
    };
    // A body whose checksum is wrong is refused for it.
    let mut wrong = with_crc(&p2);
    wrong.checksum = Some(nvme(b"something else"));
    let e = s
        .upload_part(bucket, &mkey, &id, 2, wrong)
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Integrity, "{e}");
    let i1 = s
        .upload_part(bucket, &mkey, &id, 1, with_crc(&p1))
        .await
        .unwrap();
    let i2 = s
        .upload_part(bucket, &mkey, &id, 2, with_crc(&p2))
        .await
        .unwrap();
    assert_eq!(i1.checksum, Some(nvme(&p1)));
    let parts = list_all_parts(s, bucket, &mkey, &id).await.unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        vec![(1, p1.len() as u64), (2, 1000)]
    );
    assert_eq!(parts[0].etag, i1.etag);
    assert_eq!(parts[1].checksum, Some(nvme(&p2)));
    let whole = [p1.as_slice(), p2.as_slice()].concat();
    let done = s
        .complete_multipart_upload(
            bucket,
            &mkey,
            &id,
            &[
                CompletedPart {
                    part_number: 1,
                    etag: i1.etag.clone(),
                    checksum: i1.checksum.clone(),
                },
                CompletedPart {
                    part_number: 2,
                    etag: i2.etag.clone(),
                    checksum: i2.checksum.clone(),
                },
            ],
            Some(&nvme(&whole)),
        )
        .await
        .unwrap();
    let full = StoredChecksum {
        checksum: nvme(&whole),
        kind: ChecksumType::FullObject,
    };
    assert_eq!(done.checksum.as_ref(), Some(&full));
    let md5s: Vec<[u8; 16]> = [&p1, &p2].iter().map(|p| ferry::checksum::md5(p)).collect();
    assert_eq!(done.etag, ferry::checksum::multipart_etag(&md5s));
    let head = s.head_object(bucket, &mkey).await.unwrap();
    assert_eq!(head.size, p1.len() as u64 + 1000);
    assert_eq!(head.checksum.as_ref(), Some(&full));
    let part2 = s.head_object_part(bucket, &mkey, 2).await.unwrap();
    assert_eq!(
        (part2.range.clone(), part2.parts),
        (p1.len() as u64..whole.len() as u64, 2)
    );
    assert_eq!(
        head.metadata.get("mtime").map(String::as_str),
        Some("1700000000.123456789")
    );
    let tail = s
        .get_object(
            bucket,
            &mkey,
            &GetRequest::range(p1.len() as u64 - 2..p1.len() as u64 + 3),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&tail[..2], &p1[p1.len() - 2..]);
    assert_eq!(&tail[2..], &p2[..3]);
    let e = s.list_parts(bucket, &mkey, &id, None).await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NoSuchUpload, "{e}");

    // Abort removes an upload.
    let id2 = s
        .create_multipart_upload(bucket, &mkey, &PutOptions::default())
        .await
        .unwrap()
        .upload_id;
    s.abort_multipart_upload(bucket, &mkey, &id2).await.unwrap();
    let uploads = s
        .list_multipart_uploads(bucket, prefix, None)
        .await
        .unwrap();
    assert!(!uploads.uploads.iter().any(|u| u.upload_id == id2));

    // Batch delete.
    let all: Vec<String> = list_all_objects(s, bucket, prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all.len(), 10, "{all:?}");
    let failures = s.delete_objects(bucket, &all).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(list_all_objects(s, bucket, prefix)
        .await
        .unwrap()
        .is_empty());
    s.delete_object(bucket, &format!("{prefix}/never-existed"))
        .await
        .unwrap();
}

#[test]
fn contract_memory() {
    let store = MemoryStore::with_bucket("contract");
    runtime().block_on(contract(store, "contract", "c"));
}

#[test]
fn contract_real_server() {
    let srv = server();
    runtime().block_on(contract(srv.store(), &srv.bucket, &unique("contract")));
}

#[test]
fn wrong_secret_is_reported_as_bad_credentials() {
    let srv = server();
    let mut cfg = ferry::store::http::HttpStoreConfig::new(
        url::Url::parse(&srv.endpoint).unwrap(),
        ferry::store::dialect::Dialect::S3,
        ferry::store::sign::Scheme::S3V4 {
            region: srv.region.clone(),
        },
        ferry::store::dialect::Addressing::Path,
    );
    let mut creds = srv.credentials();
    creds.secret_access_key = "0".repeat(64);
    cfg.credentials = Some(Arc::new(creds));
    let store = ferry::store::http::HttpStore::new(cfg).unwrap();
    let e = runtime()
        .block_on(store.list_objects(&srv.bucket, &ListRequest::default()))
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            StoreErrorKind::BadCredentials | StoreErrorKind::AccessDenied
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains(&"0".repeat(64)));
}
