//! `cp -u` of a single file or object: the same decision table as a tree
//! (see `plan`), for one key, with the HEAD it needs.

use std::path::Path;

use super::plan::{decide, Decision, PlanOptions, Reason, Side, Time};
use super::walk::LocalEntry;
use crate::mtime::{file_mtime, from_datetime, parse_mtime, Nanos, MTIME_KEY};
use crate::store::{head_if_exists, ObjectMeta, ObjectStore, StoreError};

const SEC: Nanos = 1_000_000_000;

const UPDATE_ONLY: PlanOptions = PlanOptions {
    update: true,
    delete: false,
    compare: super::plan::Compare::Time,
};

/// The side an object presents once its HEAD is known.
pub fn stored_side(meta: &ObjectMeta) -> Side {
    let time = match meta.metadata.get(MTIME_KEY).and_then(|v| parse_mtime(v)) {
        Some(ns) => Time::stored(ns),
        None => Time::server(from_datetime(meta.last_modified).div_euclid(SEC) * SEC),
    };
    Side {
        size: meta.size,
        time,
    }
}

pub fn local_side(e: &LocalEntry) -> Side {
    Side {
        size: e.size,
        time: Time::local(e.mtime),
    }
}

fn file_side(m: &std::fs::Metadata) -> Side {
    Side {
        size: m.len(),
        time: Time::local(file_mtime(m)),
    }
}

/// `cp -u FILE URL`: why the upload can be skipped, if it can.
pub async fn upload_skip(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    local: &std::fs::Metadata,
) -> Result<Option<Reason>, StoreError> {
    let remote = head_if_exists(store, bucket, key).await?;
    Ok(
        match decide(
            Some(file_side(local)),
            remote.as_ref().map(stored_side),
            UPDATE_ONLY,
        ) {
            Decision::Skip(r) => Some(r),
            _ => None,
        },
    )
}

/// `cp -u URL FILE`, given the object's HEAD: why the download can be
/// skipped, if it can (a missing destination never can).
pub fn download_skip(meta: &ObjectMeta, dest: &Path) -> Option<Reason> {
    let local = std::fs::metadata(dest).ok()?;
    match decide(
        Some(stored_side(meta)),
        Some(file_side(&local)),
        UPDATE_ONLY,
    ) {
        Decision::Skip(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{Body, PutOptions};

    fn opts_with_mtime(ns: Nanos) -> PutOptions {
        let mut o = PutOptions::default();
        o.metadata
            .insert(MTIME_KEY.into(), crate::mtime::format_mtime(ns));
        o
    }

    #[tokio::test]
    async fn upload_is_skipped_only_when_the_object_is_as_new() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let ns = file_mtime(&m);
        let store = MemoryStore::new();
        store.create_bucket("b").await.unwrap();
        // Missing: send.
        assert_eq!(upload_skip(&store, "b", "k", &m).await.unwrap(), None);
        // Same time and size: skip.
        store
            .put_object("b", "k", Body::new(&b"xyz"[..]), &opts_with_mtime(ns))
            .await
            .unwrap();
        assert_eq!(
            upload_skip(&store, "b", "k", &m).await.unwrap(),
            Some(Reason::UpToDate)
        );
        // Object older: send.
        store
            .put_object("b", "k", Body::new(&b"xyz"[..]), &opts_with_mtime(ns - SEC))
            .await
            .unwrap();
        assert_eq!(upload_skip(&store, "b", "k", &m).await.unwrap(), None);
        // A missing bucket is an error, not "missing object".
        assert!(upload_skip(&store, "nope", "k", &m).await.is_err());
    }

    #[tokio::test]
    async fn download_is_skipped_when_the_local_file_is_newer() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let store = MemoryStore::new();
        store.create_bucket("b").await.unwrap();
        std::fs::write(&f, b"abc").unwrap();
        let ns = file_mtime(&std::fs::metadata(&f).unwrap());
        store
            .put_object(
                "b",
                "k",
                Body::new(&b"abcd"[..]),
                &opts_with_mtime(ns - SEC),
            )
            .await
            .unwrap();
        let meta = store.head_object("b", "k").await.unwrap();
        assert_eq!(download_skip(&meta, &f), Some(Reason::DestinationNewer));
        assert_eq!(download_skip(&meta, &dir.path().join("missing")), None);
    }
}
