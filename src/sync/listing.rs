//! The remote side of a sync: the objects under a prefix as a key-ordered
//! stream of filtered batches, keyed relative to the prefix, and the feed
//! that carries either side's batches to the merge.

use std::path::PathBuf;

use futures::TryStreamExt;
use tokio::sync::mpsc;

use super::filter::Filter;
use super::known::digests::Sum;
use super::known::{Known, KnownMtimes};
use super::merge::{Keyed, PrefixConflicts};
use super::plan::{Side, Time};
use super::walk::{LocalEntry, WalkItem};
use super::SyncError;
use crate::mtime::{from_datetime, Nanos};
use crate::store::{list_pages, ListEntry, ListRequest, ObjectMeta, ObjectStore};

const SEC: Nanos = 1_000_000_000;

/// What travels from a producer (the walk, the listing) to the merge. A
/// feed that closes without [`Feed::End`] means its producer died: the
/// merge then stops rather than take a partial side for the whole one
/// (which would re-send or delete the wrong things).
pub(crate) enum Feed<T> {
    Batch(Vec<T>),
    End,
    Failed(SyncError),
}

pub(crate) type FeedTx<T> = mpsc::Sender<Feed<T>>;
pub(crate) type FeedRx<T> = mpsc::Receiver<Feed<T>>;

pub(crate) fn feed<T>() -> (FeedTx<T>, FeedRx<T>) {
    mpsc::channel(16)
}

/// An object under the prefix, keyed relative to it.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    /// The key relative to the prefix: also its path under the local root.
    pub rel: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Nanos,
    /// Other listed objects lie under `rel/` (downloads cannot write both).
    pub prefix_of_others: bool,
}

impl Keyed for RemoteEntry {
    fn key(&self) -> Option<&str> {
        Some(&self.rel)
    }
}

impl Keyed for WalkItem {
    fn key(&self) -> Option<&str> {
        WalkItem::key(self)
    }
}

impl Keyed for LocalEntry {
    fn key(&self) -> Option<&str> {
        Some(&self.key)
    }
}

impl RemoteEntry {
    fn from_listing(prefix: &str, o: ListEntry) -> Option<RemoteEntry> {
        let rel = o.key.strip_prefix(prefix)?.to_string();
        Some(RemoteEntry {
            rel,
            key: o.key,
            size: o.size,
            etag: o.etag,
            last_modified: from_datetime(o.last_modified),
            prefix_of_others: false,
        })
    }

    /// The entry a listing would have shown for the object a HEAD saw.
    pub fn from_meta(rel: &str, m: &ObjectMeta) -> RemoteEntry {
        RemoteEntry {
            rel: rel.to_string(),
            key: m.key.clone(),
            size: m.size,
            etag: m.etag.clone(),
            last_modified: from_datetime(m.last_modified),
            prefix_of_others: false,
        }
    }

    /// The store's full-object checksum a HEAD of this very object showed
    /// on an earlier run, if the cache kept it.
    pub fn stored_sum(&self, known: &KnownMtimes) -> Option<Sum> {
        let s = known.stored_sum(&self.key, &self.etag, self.size, self.lm_secs())?;
        super::content::parse_stored(&s)
    }

    fn lm_secs(&self) -> i64 {
        self.last_modified.div_euclid(SEC) as i64
    }

    /// The object's side as far as the cache of known mtimes can tell.
    pub fn known_side(&self, known: &KnownMtimes) -> Option<Side> {
        let time = match known.lookup(&self.key, &self.etag, self.size, self.lm_secs())? {
            Known::Mtime(ns) => Time::stored(ns),
            Known::NoMetadata => Time::server(self.lm_secs() as Nanos * SEC),
        };
        Some(Side {
            size: self.size,
            time,
        })
    }

    /// The object's side from the listing alone: its stored mtime is not
    /// later than the second of its Last-Modified.
    pub fn side(&self) -> Side {
        let secs = self.last_modified.div_euclid(SEC) * SEC;
        Side {
            size: self.size,
            time: Time::Below { upper: secs + SEC },
        }
    }

    /// What a HEAD would say, built from the listing: enough for a single
    /// GET, whose own headers then carry the metadata.
    pub fn listed_meta(&self) -> ObjectMeta {
        ObjectMeta {
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
            last_modified: time::OffsetDateTime::from_unix_timestamp_nanos(self.last_modified)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            metadata: Default::default(),
            crc64: None,
            checksum: None,
            // A listing carries no encryption headers: nothing is checked
            // against this ETag; the GET's own headers say what it is.
            etag_kind: crate::store::EtagKind::Opaque,
            content_type: None,
            object: Default::default(),
            version_id: None,
        }
    }
}

/// Which listed keys a sync considers.
pub(crate) struct ListScope<'a> {
    /// The sync's prefix: keys are made relative to it, and the filter
    /// sees them so.
    pub prefix: &'a str,
    /// Lists only under `prefix` + `under` (empty: all of the prefix).
    pub under: &'a str,
    pub filter: &'a Filter,
    /// Mark objects that are also prefixes of others (downloads).
    pub mark_prefixes: bool,
}

impl ListScope<'_> {
    fn admits(&self, e: &RemoteEntry) -> bool {
        // Directory markers carry no data.
        !e.rel.is_empty() && !e.rel.ends_with('/') && self.filter.file(&e.rel)
    }
}

/// Lists every object in scope, in key order, into `out`; ends the feed
/// with [`Feed::End`], or [`Feed::Failed`] if a page could not be listed.
pub(crate) async fn list_into(
    store: &dyn ObjectStore,
    bucket: &str,
    scope: ListScope<'_>,
    out: FeedTx<RemoteEntry>,
) {
    if scope.under.is_empty() {
        if let Some(dirs) = scope.filter.listed().and_then(listed_dirs) {
            return list_listed_dirs(store, bucket, &scope, dirs, out).await;
        }
    }
    let list_prefix = format!("{}{}", scope.prefix, scope.under);
    let pages = list_pages(
        store,
        bucket,
        ListRequest {
            prefix: &list_prefix,
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    let mut marks = PrefixConflicts::new();
    loop {
        let page = match pages.try_next().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                let _ = out.send(Feed::Failed(SyncError::Listing(e))).await;
                return;
            }
        };
        let entries = page
            .objects
            .into_iter()
            .filter_map(|o| RemoteEntry::from_listing(scope.prefix, o))
            .filter(|e| scope.admits(e));
        let batch: Vec<RemoteEntry> = if scope.mark_prefixes {
            entries.flat_map(|e| marks.push(e)).map(marked).collect()
        } else {
            entries.collect()
        };
        if out.send(Feed::Batch(batch)).await.is_err() {
            // The consumer stopped (interrupted); no point listing further.
            return;
        }
    }
    let rest: Vec<RemoteEntry> = marks.finish().into_iter().map(marked).collect();
    if !rest.is_empty() && out.send(Feed::Batch(rest)).await.is_err() {
        return;
    }
    let _ = out.send(Feed::End).await;
}

/// Past this many directories a `--files-from` list is cheaper to serve
/// from one flat listing of the prefix (a page per 1,000 keys) than from a
/// listing per directory.
const LISTED_DIRS_MAX: usize = 1000;

/// The directories (relative, each ending in `/`; `""` for the top) that
/// hold the keys of a `--files-from` list, or `None` when there are too
/// many to list one by one.
fn listed_dirs(listed: &std::collections::BTreeSet<String>) -> Option<Vec<String>> {
    let mut dirs = std::collections::BTreeSet::new();
    for k in listed {
        dirs.insert(k.rfind('/').map_or("", |i| &k[..=i]));
        if dirs.len() > LISTED_DIRS_MAX {
            return None;
        }
    }
    Some(dirs.into_iter().map(str::to_string).collect())
}

/// A `--files-from` listing: each directory that holds a listed key is
/// listed alone (with a delimiter, so not below it), the admitted objects
/// gathered, sorted and fed as one key-ordered listing. Memory is bounded
/// by the list, which is held whole anyway.
async fn list_listed_dirs(
    store: &dyn ObjectStore,
    bucket: &str,
    scope: &ListScope<'_>,
    dirs: Vec<String>,
    out: FeedTx<RemoteEntry>,
) {
    let mut all = Vec::new();
    // Eight directories at a time: a plain loop over joined futures keeps
    // the future `Send` for the spawned listing task.
    for chunk in dirs.chunks(8) {
        let found =
            futures::future::join_all(chunk.iter().map(|d| list_one_dir(store, bucket, scope, d)))
                .await;
        for r in found {
            match r {
                Ok(found) => all.extend(found),
                Err(e) => {
                    let _ = out.send(Feed::Failed(SyncError::Listing(e))).await;
                    return;
                }
            }
        }
    }
    all.sort_by(|a, b| a.rel.cmp(&b.rel));
    let all: Vec<RemoteEntry> = if scope.mark_prefixes {
        let mut marks = PrefixConflicts::new();
        let mut v: Vec<RemoteEntry> = all
            .into_iter()
            .flat_map(|e| marks.push(e))
            .map(marked)
            .collect();
        v.extend(marks.finish().into_iter().map(marked));
        v
    } else {
        all
    };
    let mut all = all.into_iter().peekable();
    while all.peek().is_some() {
        let batch: Vec<RemoteEntry> = all.by_ref().take(1000).collect();
        if out.send(Feed::Batch(batch)).await.is_err() {
            return;
        }
    }
    let _ = out.send(Feed::End).await;
}

/// One directory of a `--files-from` listing, not below it.
async fn list_one_dir(
    store: &dyn ObjectStore,
    bucket: &str,
    scope: &ListScope<'_>,
    dir: &str,
) -> Result<Vec<RemoteEntry>, crate::store::StoreError> {
    let list_prefix = format!("{}{dir}", scope.prefix);
    let pages = list_pages(
        store,
        bucket,
        ListRequest {
            prefix: &list_prefix,
            delimiter: Some("/"),
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    let mut found = Vec::new();
    while let Some(page) = pages.try_next().await? {
        found.extend(
            page.objects
                .into_iter()
                .filter_map(|o| RemoteEntry::from_listing(scope.prefix, o))
                .filter(|e| scope.admits(e)),
        );
    }
    Ok(found)
}

fn marked((mut e, conflict): (RemoteEntry, bool)) -> RemoteEntry {
    e.prefix_of_others = conflict;
    e
}

/// The listing of the whole prefix of `target` as a feed, on its own task.
pub(crate) fn spawn_listing(
    target: &super::SyncTarget,
    filter: &Filter,
    mark_prefixes: bool,
) -> (tokio::task::JoinHandle<()>, FeedRx<RemoteEntry>) {
    let (tx, rx) = feed();
    let t = target.clone();
    let filter = filter.clone();
    let task = tokio::spawn(async move {
        let scope = ListScope {
            prefix: &t.prefix,
            under: "",
            filter: &filter,
            mark_prefixes,
        };
        list_into(t.store.as_ref(), &t.bucket, scope, tx).await
    });
    (task, rx)
}

/// Every object in scope, collected: for the few callers that need a
/// small listing whole (a vanished directory in watch mode).
pub(crate) async fn list_scope(
    store: &dyn ObjectStore,
    bucket: &str,
    scope: ListScope<'_>,
) -> Result<Vec<RemoteEntry>, SyncError> {
    let (tx, mut rx) = feed();
    let ((), all) = tokio::join!(list_into(store, bucket, scope, tx), async move {
        let mut all = Vec::new();
        while let Some(f) = rx.recv().await {
            match f {
                Feed::Batch(b) => all.extend(b),
                Feed::End => return Ok(all),
                Feed::Failed(e) => return Err(e),
            }
        }
        Err(SyncError::Ended("listing"))
    });
    all
}

/// The walk of `root` as a feed, on a blocking thread (stats fan out on
/// rayon). With `missing_is_empty` (a download's destination) a missing
/// root is an empty tree; otherwise the walk reports it. The walk stops
/// early when the merge has gone.
pub(crate) fn spawn_walk(
    root: PathBuf,
    opts: super::walk::WalkOptions,
    missing_is_empty: bool,
) -> (tokio::task::JoinHandle<()>, FeedRx<WalkItem>) {
    let (out, rx) = feed();
    let task = tokio::task::spawn_blocking(move || {
        if !missing_is_empty || root.exists() {
            let mut open = true;
            super::walk::walk(&root, &opts, |batch| {
                open = out.blocking_send(Feed::Batch(batch)).is_ok();
                open
            });
            if !open {
                return;
            }
        }
        let _ = out.blocking_send(Feed::End);
    });
    (task, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_from_list_is_listed_by_its_directories_until_there_are_too_many() {
        let set = |keys: &[&str]| -> std::collections::BTreeSet<String> {
            keys.iter().map(|k| k.to_string()).collect()
        };
        assert_eq!(
            listed_dirs(&set(&["top", "a/b/c", "a/b/d", "a/x"])).unwrap(),
            ["", "a/", "a/b/"]
        );
        let many: Vec<String> = (0..=LISTED_DIRS_MAX).map(|i| format!("d{i}/f")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(listed_dirs(&set(&many)).is_none());
        assert_eq!(
            listed_dirs(&set(&many[1..])).unwrap().len(),
            LISTED_DIRS_MAX
        );
    }
}
