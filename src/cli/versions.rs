//! Object versions in versioned buckets: `ls --versions`, `rm --version-id`
//! / `rm --versions`, and the HEAD of one version that `stat`, `cp` and
//! `cat` start from.
//!
//! What to delete is decided apart from the requests (`select`), so the
//! rules (exactly the key, or everything under the prefix; a version that
//! is not listed is an error, never a silent no-op) are tested without a
//! network.

use futures::TryStreamExt;

use super::args::{LsArgs, RmArgs};
use super::escape::visible;
use super::ls::format_time;
use super::setup::{Setup, StoreHandle as Handle};
use super::{CliError, Outcome};
use crate::location::RemoteUrl;
use crate::store::{
    check_version_page, head_at, version_pages, ObjectMeta, StoreError, StoreErrorKind,
    VersionEntry, VersionRef, VersionsRequest,
};
use crate::transfer::TransferError;
use crate::units::human;

/// Versions per DeleteObjects request (the API's limit).
const BATCH: usize = 1000;

/// The HEAD of the current object, or of `version_id`. A delete marker
/// has no HEAD (S3 and OSS answer 405): said in words.
pub async fn head(
    h: &Handle,
    r: &RemoteUrl,
    version_id: Option<&str>,
) -> Result<ObjectMeta, CliError> {
    head_at(h.store.as_ref(), &r.bucket, &r.key, version_id)
        .await
        .map_err(|e| match version_id {
            Some(v) => version_error(r, v, e),
            None => CliError::from(e),
        })
}

/// A failure naming one version, in the words of what went wrong.
pub fn version_error(r: &RemoteUrl, v: &str, e: StoreError) -> CliError {
    if e.status == Some(405) {
        CliError::Failed(format!(
            "version {v} of {r} is a delete marker; it has no data (rm --version-id {v} removes it, bringing back the version below)"
        ))
    } else if e.kind == StoreErrorKind::NotFound
        || e.code.as_deref() == Some("NoSuchVersion")
        || e.code.as_deref() == Some("InvalidArgument")
    {
        CliError::Failed(format!(
            "{r} has no version {v} (ls --versions lists them): {e}"
        ))
    } else {
        CliError::from(e)
    }
}

/// A failed transfer of a named version, said as [`version_error`] says it.
pub fn versioned(r: &RemoteUrl, version: Option<&str>, e: TransferError) -> CliError {
    match (version, e) {
        (Some(v), TransferError::Store(e)) => version_error(r, v, e),
        (_, e) => CliError::from(e),
    }
}

/// `ls --versions`.
pub async fn ls(setup: &Setup, h: &Handle, r: &RemoteUrl, a: &LsArgs) -> Result<Outcome, CliError> {
    let pages = version_pages(
        h.store.as_ref(),
        &r.bucket,
        VersionsRequest {
            prefix: &r.key,
            delimiter: (!a.recursive).then_some("/"),
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    let (mut count, mut markers, mut total) = (0u64, 0u64, 0u64);
    while let Some(page) = pages.try_next().await? {
        for p in &page.prefixes {
            if a.json {
                println!("{}", serde_json::json!({ "prefix": p }));
            } else {
                println!(
                    "{:>19}  {:>10}  {:>6}  {:<36}  {}",
                    "",
                    "DIR",
                    "",
                    "",
                    visible(p)
                );
            }
        }
        for v in &page.versions {
            count += 1;
            if v.delete_marker {
                markers += 1;
            } else {
                total += v.size;
            }
            print_version(v, a);
        }
    }
    if !a.json {
        setup.reporter.say(&format!(
            "{count} versions ({markers} delete markers), {}",
            human(total)
        ));
    }
    Ok(Outcome::Success)
}

fn print_version(v: &VersionEntry, a: &LsArgs) {
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "key": v.key,
                "version_id": v.version_id,
                "is_latest": v.is_latest,
                "delete_marker": v.delete_marker,
                "size": v.size,
                "last_modified": v.last_modified.unix_timestamp(),
                "etag": v.etag,
            })
        );
        return;
    }
    let size = if v.delete_marker {
        "marker".to_string()
    } else if a.bytes {
        v.size.to_string()
    } else {
        human(v.size)
    };
    println!(
        "{}  {:>10}  {:>6}  {:<36}  {}",
        format_time(v.last_modified),
        size,
        if v.is_latest { "latest" } else { "" },
        visible(&v.version_id),
        visible(&v.key)
    );
}

/// What an `rm` over versions takes from one listed page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Exactly this key's versions (`rm --versions KEY`): a listing by
    /// prefix also shows `KEY2`, `KEY/x`…, which are left alone.
    Key(&'a str),
    /// This one version of the key (`rm --version-id`).
    Version(&'a str, &'a str),
    /// Every key under the prefix (`rm -r --versions`).
    Prefix,
}

/// Pure: the versions of `page` that `scope` deletes.
pub fn select(scope: Scope<'_>, page: &[VersionEntry]) -> Vec<VersionRef> {
    page.iter()
        .filter(|v| match scope {
            Scope::Key(k) => v.key == k,
            Scope::Version(k, id) => v.key == k && v.version_id == id,
            Scope::Prefix => true,
        })
        .map(|v| VersionRef {
            key: v.key.clone(),
            version_id: v.version_id.clone(),
        })
        .collect()
}

/// Pure: whether a listing of `prefix` can still hold `key`'s versions
/// once it has reached `last` (listings are in key order).
fn past(key: &str, last: Option<&VersionEntry>) -> bool {
    last.is_some_and(|v| v.key.as_str() > key)
}

/// `rm --version-id ID` and `rm [-r] --versions`: for good, page by page
/// (a page of at most 1,000 versions is one batch delete), so a prefix
/// with any number of versions holds one page in memory. After a page
/// deleted whole, the listing starts again from the top rather than
/// after a marker that names a version now gone (moto then ends the
/// listing; AWS documents nothing either way); every restart follows a
/// page that deleted something, so it ends.
pub async fn rm(setup: &Setup, h: &Handle, r: &RemoteUrl, a: &RmArgs) -> Result<Outcome, CliError> {
    let scope = match (&a.version_id, a.recursive) {
        (Some(id), _) => Scope::Version(&r.key, id),
        (None, false) => Scope::Key(&r.key),
        (None, true) => Scope::Prefix,
    };
    if r.key.is_empty() && scope != Scope::Prefix {
        return Err(CliError::Usage(format!(
            "{r} names a bucket; name an object, or use -r --versions for every version under it"
        )));
    }
    let (mut chosen, mut failed, mut markers) = (0usize, 0usize, 0usize);
    // Whether a latest delete marker goes: the version below it is then
    // the object again.
    let mut uncovers = false;
    let mut after: Option<(String, String)> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let req = VersionsRequest {
            prefix: &r.key,
            after: after.as_ref(),
            ..Default::default()
        };
        let page = h.store.list_versions(&r.bucket, &req).await?;
        check_version_page(&r.bucket, &r.key, &page)?;
        let doomed = select(scope, &page.versions);
        for v in page.versions.iter().filter(|v| v.delete_marker) {
            if doomed
                .iter()
                .any(|d| d.key == v.key && d.version_id == v.version_id)
            {
                markers += 1;
                uncovers |= v.is_latest;
            }
        }
        chosen += doomed.len();
        let mut page_failed = 0;
        for chunk in doomed.chunks(BATCH) {
            if a.dry_run {
                for v in chunk {
                    println!(
                        "would delete {} version {}",
                        visible(&r.with_key(v.key.as_str()).to_string()),
                        visible(&v.version_id)
                    );
                }
                continue;
            }
            for f in h.store.delete_versions(&r.bucket, chunk).await? {
                page_failed += 1;
                setup.reporter.error(&format!(
                    "delete {} version: {}: {}",
                    r.with_key(f.key),
                    f.code,
                    f.message
                ));
            }
        }
        failed += page_failed;
        if matches!(scope, Scope::Version(..)) && chosen > 0 {
            break;
        }
        let Some(next) = page.next else { break };
        if let Scope::Key(k) | Scope::Version(k, _) = scope {
            if past(k, page.versions.last()) {
                break;
            }
        }
        // Only a page whose every listed version went is listed again from
        // the top; anything kept on it would come back and stop progress.
        let gone_whole = !a.dry_run
            && page_failed == 0
            && !doomed.is_empty()
            && doomed.len() == page.versions.len();
        if gone_whole {
            after = None;
        } else if seen.insert(next.clone()) {
            after = Some(next);
        } else {
            return Err(CliError::Failed(format!(
                "version listing of {r}: the server repeated marker {next:?}"
            )));
        }
    }
    if chosen == 0 {
        // Deleting a version that is not there succeeds on S3: a typo in
        // an ID deserves to be told, not "deleted".
        return Err(CliError::Failed(match scope {
            Scope::Version(_, id) => format!("{r} has no version {id} (ls --versions lists them)"),
            Scope::Key(_) => format!("{r} has no versions (is the bucket versioned?)"),
            Scope::Prefix => format!("no versions under {r}"),
        }));
    }
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    let line = match scope {
        Scope::Version(_, id) if uncovers => {
            format!("{verb} delete marker {id} of {r}; the version below it is current again")
        }
        Scope::Version(_, id) if markers == 1 => format!("{verb} delete marker {id} of {r}"),
        Scope::Version(_, id) => format!("{verb} version {id} of {r}"),
        Scope::Prefix => format!(
            "{verb} {} versions ({markers} delete markers) of everything under {r}",
            chosen - failed
        ),
        Scope::Key(_) => format!(
            "{verb} {} versions ({markers} delete markers) of {r}",
            chosen - failed
        ),
    };
    setup.reporter.say(&line);
    Ok(if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn v(key: &str, id: &str, marker: bool) -> VersionEntry {
        VersionEntry {
            key: key.into(),
            version_id: id.into(),
            is_latest: false,
            delete_marker: marker,
            size: 1,
            etag: String::new(),
            last_modified: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn ids(r: Vec<VersionRef>) -> Vec<String> {
        r.into_iter()
            .map(|r| format!("{}@{}", r.key, r.version_id))
            .collect()
    }

    #[test]
    fn a_key_takes_only_its_own_versions_not_its_neighbours() {
        let page = [
            v("a", "1", false),
            v("a", "2", true),
            v("a/b", "3", false),
            v("ab", "4", false),
        ];
        assert_eq!(ids(select(Scope::Key("a"), &page)), ["a@1", "a@2"]);
        assert_eq!(ids(select(Scope::Version("a", "2"), &page)), ["a@2"]);
        assert!(select(Scope::Version("a", "3"), &page).is_empty());
        assert_eq!(select(Scope::Prefix, &page).len(), 4);
    }

    #[test]
    fn a_listing_past_the_key_cannot_hold_more_of_it() {
        assert!(!past("a", None));
        assert!(!past("a", Some(&v("a", "1", false))));
        assert!(past("a", Some(&v("a/b", "1", false))));
        assert!(past("a", Some(&v("b", "1", false))));
    }
}
