//! Micro-benchmarks of the hot pure parts: the planner over 100,000
//! entries, request signing, checkpoint encode/decode, and the digests
//! every byte goes through (MD5, CRC-64). `cargo bench --bench micro`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferry::checksum::flexible::crc_of;
use ferry::checksum::{crc64, md5, Algorithm};
use ferry::store::credentials::Credentials;
use ferry::store::sign::{Payload, Scheme, SignableRequest};
use ferry::sync::merge::{Keyed, MergeJoin, Step};
use ferry::sync::plan::{decide, PlanOptions, Side, Time};
use ferry::transfer::checkpoint::{decode, encode, UploadCheckpoint};
use ferry::transfer::resume::RecordedPart;

struct Entry<'a>(&'a (String, Side));

impl Keyed for Entry<'_> {
    fn key(&self) -> Option<&str> {
        Some(&self.0 .0)
    }
}

fn planning(c: &mut Criterion) {
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("dir{:03}/file{i:06}", i % 997))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    let local: Vec<(String, Side)> = sorted
        .iter()
        .map(|k| {
            (
                k.clone(),
                Side {
                    size: 4096,
                    time: Time::local(1_700_000_000_123_456_789),
                },
            )
        })
        .collect();
    let remote = local.clone();
    let opts = PlanOptions {
        update: true,
        delete: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("merge+decide 100k unchanged", |b| {
        b.iter(|| {
            let mut n = 0;
            // Fed in listing-page-sized batches, as a sync feeds it.
            let mut m = MergeJoin::new();
            let (mut ls, mut rs) = (local.chunks(1000), remote.chunks(1000));
            loop {
                match m.step() {
                    Step::NeedSrc => match ls.next() {
                        Some(b) => m.push_src(b.iter().map(Entry)),
                        None => m.end_src(),
                    },
                    Step::NeedDst => match rs.next() {
                        Some(b) => m.push_dst(b.iter().map(Entry)),
                        None => m.end_dst(),
                    },
                    Step::Pair(l, r) => {
                        if !matches!(
                            decide(l.map(|e| e.0 .1), r.map(|e| e.0 .1), opts),
                            ferry::sync::plan::Decision::Skip(_)
                        ) {
                            n += 1;
                        }
                    }
                    Step::Unkeyed(_) => {}
                    Step::Done => break,
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

fn signing(c: &mut Criterion) {
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    };
    let query = vec![
        ("partNumber".to_string(), "7".to_string()),
        ("uploadId".to_string(), "abc".to_string()),
    ];
    let headers = vec![(
        "content-md5".to_string(),
        "1B2M2Y8AsgTpgAmY7PhCfg==".to_string(),
    )];
    let req = SignableRequest {
        method: "PUT",
        host: "127.0.0.1:3900",
        path: "/bucket/some/key.bin",
        query: &query,
        headers: &headers,
        bucket: Some("bucket"),
        key: Some("some/key.bin"),
    };
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let mut g = c.benchmark_group("sign");
    for (name, scheme) in [
        (
            "s3 v4",
            Scheme::S3V4 {
                region: "garage".into(),
            },
        ),
        (
            "oss v4",
            Scheme::OssV4 {
                region: "cn-hangzhou".into(),
            },
        ),
        ("oss v1", Scheme::OssV1),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(scheme.sign(&req, &creds, &Payload::Unsigned, now)))
        });
    }
    g.finish();
}

fn checkpoints(c: &mut Criterion) {
    let cp = UploadCheckpoint {
        source: "/data/big.bin".into(),
        size: 80 << 30,
        mtime: "1700000000.123456789".into(),
        endpoint: "https://oss-cn-hangzhou.aliyuncs.com".into(),
        bucket: "bucket".into(),
        key: "backups/big.bin".into(),
        part_size: 8 << 20,
        upload_id: "0004B9894A22E5B1888A1E29F8236E2D".into(),
        checksum: Some("CRC64NVME".into()),
        parts: (1..=10_000)
            .map(|n| RecordedPart {
                number: n,
                etag: format!("{n:032x}"),
                md5: format!("{n:032x}"),
                crc64: Some(n as u64 * 7919),
                checksum: Some("AAAAAAAAAAA=".into()),
            })
            .collect(),
    };
    let bytes = encode(&cp);
    let mut g = c.benchmark_group("checkpoint (10,000 parts)");
    g.bench_function("encode", |b| b.iter(|| black_box(encode(&cp))));
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode::<UploadCheckpoint>(&bytes).unwrap()))
    });
    g.finish();
}

fn digests(c: &mut Criterion) {
    let data = vec![0x5au8; 64 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("md5", |b| b.iter(|| black_box(md5(&data))));
    // CRC-64/XZ for OSS: crc-fast (used) against crc64fast (used before).
    g.bench_function("crc64-xz crc-fast", |b| b.iter(|| black_box(crc64(&data))));
    g.bench_function("crc64-xz crc64fast", |b| {
        b.iter(|| {
            let mut d = crc64fast::Digest::new();
            d.write(&data);
            black_box(d.sum64())
        })
    });
    // S3's checksums: crc-fast (used) against crc64fast-nvme.
    for a in [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Crc32] {
        g.bench_function(format!("{a} crc-fast"), |b| {
            b.iter(|| black_box(crc_of(a, &data)))
        });
    }
    g.bench_function("CRC64NVME crc64fast-nvme", |b| {
        b.iter(|| {
            let mut d = crc64fast_nvme::Digest::new();
            d.write(&data);
            black_box(d.sum64())
        })
    });
    g.finish();
}

criterion_group!(benches, planning, signing, checkpoints, digests);
criterion_main!(benches);
