//! Pure: what `check` needs to know about one key, and what an answer
//! means. The listing gives sizes and ETags; a HEAD gives the checksum the
//! store keeps; only a difference the store itself confirms is reported.

use serde::Serialize;

use crate::store::{EtagKind, ObjectMeta};
use crate::sync::events::FailKind;
use crate::sync::listing::RemoteEntry;
use crate::sync::walk::LocalEntry;
use crate::transfer::verify::Check;

/// How far a check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// Sizes, then the strongest digest the store keeps, computed from the
    /// local file.
    #[default]
    Content,
    /// Sizes only: listings and no file data.
    SizeOnly,
    /// Every object's bytes read and compared with the file's.
    Download,
    /// `--fast`: sizes, then the stored mtime a HEAD shows against the
    /// file's; no file data read.
    Times,
}

/// Which side is the source (the first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The local tree is the source, the prefix the destination.
    Up,
    /// The prefix is the source, the local tree the destination.
    Down,
}

/// What `check` found for one key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "finding", rename_all = "kebab-case")]
pub enum Finding {
    /// The same content, as far as `by` tells.
    Same { key: String, by: String },
    /// Both sides hold it, with different content.
    Differs { key: String, why: String },
    /// In the source, not in the destination.
    Missing { key: String },
    /// In the destination only.
    Extra { key: String },
    /// Same size, and the store keeps nothing the content can be compared
    /// with (`--download` reads it).
    SizeOnly { key: String, why: String },
    Failed {
        key: String,
        kind: FailKind,
        message: String,
    },
    /// Not compared (a link, a special file).
    Warning { path: String, message: String },
}

/// The first step for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum First {
    /// Decided from the walk and the listing alone.
    Found(Finding),
    /// The ETag has the MD5's form: hash the file; only a match decides
    /// (under SSE-KMS or SSE-C it is not the MD5 of the bytes).
    Md5(String),
    /// Ask the store what it keeps.
    Head,
    /// Read the object and the file side by side.
    Download,
    /// Compare the stored mtime (a HEAD) with the file's.
    Times,
}

/// What the walk and the listing show for one key.
pub fn first(
    local: Option<&LocalEntry>,
    remote: Option<&RemoteEntry>,
    direction: Direction,
    depth: Depth,
    one_way: bool,
) -> Option<First> {
    let only = |key: &str, in_source: bool| {
        if in_source {
            Some(First::Found(Finding::Missing { key: key.into() }))
        } else if one_way {
            None
        } else {
            Some(First::Found(Finding::Extra { key: key.into() }))
        }
    };
    let (l, r) = match (local, remote) {
        (None, None) => return None,
        (Some(l), None) => return only(&l.key, direction == Direction::Up),
        (None, Some(r)) => return only(&r.rel, direction == Direction::Down),
        (Some(l), Some(r)) => (l, r),
    };
    if l.size != r.size {
        return Some(First::Found(Finding::Differs {
            key: l.key.clone(),
            why: sizes(l.size, r.size),
        }));
    }
    Some(match depth {
        Depth::SizeOnly => First::Found(same(&l.key, "size")),
        _ if l.size == 0 => First::Found(same(&l.key, "size (empty)")),
        Depth::Download => First::Download,
        Depth::Times => First::Times,
        Depth::Content if EtagKind::from_form(&r.etag) == EtagKind::Md5 => {
            First::Md5(r.etag.clone())
        }
        Depth::Content => First::Head,
    })
}

/// After a HEAD: the check the object allows, or what it already decides.
pub fn after_head(
    key: &str,
    local_size: u64,
    meta: &ObjectMeta,
    md5_differed: bool,
) -> Result<Check, Finding> {
    if meta.size != local_size {
        // Replaced since it was listed: the new size is the answer.
        return Err(Finding::Differs {
            key: key.into(),
            why: sizes(local_size, meta.size),
        });
    }
    match Check::choose(meta, true) {
        // The store confirms the ETag is the MD5 the file did not match.
        Check::Md5 { etag } if md5_differed => Err(Finding::Differs {
            key: key.into(),
            why: format!("MD5 differs (the object's ETag is {etag})"),
        }),
        Check::Size => Err(Finding::SizeOnly {
            key: key.into(),
            why: "the store keeps no checksum of it and its ETag is not an MD5".into(),
        }),
        c => Ok(c),
    }
}

/// `--fast`, after a HEAD: the same when size and modification time
/// agree (to the second where either side keeps no finer time), different
/// otherwise; an object that carries no mtime cannot say.
pub fn by_times(local: &LocalEntry, meta: &ObjectMeta) -> Finding {
    use crate::sync::one::{local_side, stored_side};
    use crate::sync::plan::{decide, Decision, PlanOptions, Reason};
    let key = &local.key;
    if meta.size != local.size {
        return Finding::Differs {
            key: key.clone(),
            why: sizes(local.size, meta.size),
        };
    }
    if !meta.metadata.contains_key(crate::mtime::MTIME_KEY) {
        return Finding::SizeOnly {
            key: key.clone(),
            why: "the object carries no modification time".into(),
        };
    }
    let by_time = PlanOptions {
        update: true,
        ..Default::default()
    };
    match decide(Some(local_side(local)), Some(stored_side(meta)), by_time) {
        Decision::Skip(Reason::UpToDate) => same(key, "size and mtime"),
        Decision::Transfer(Reason::Newer) => Finding::Differs {
            key: key.clone(),
            why: "modified here after the stored copy's time".into(),
        },
        _ => Finding::Differs {
            key: key.clone(),
            why: "the stored copy's time is later than the file's".into(),
        },
    }
}

pub fn same(key: &str, by: &str) -> Finding {
    Finding::Same {
        key: key.into(),
        by: by.into(),
    }
}

fn sizes(local: u64, remote: u64) -> String {
    format!("size {local} here, {remote} in the store")
}

/// The verdict on a digest of the file against the store's.
pub fn digests(key: &str, name: &str, local: &str, remote: &str) -> Finding {
    if local.eq_ignore_ascii_case(remote) {
        same(key, name)
    } else {
        Finding::Differs {
            key: key.into(),
            why: format!("{name} {local} here, {remote} in the store"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::flexible::Hasher;
    use crate::checksum::{Algorithm, ChecksumType, StoredChecksum};

    fn local(key: &str, size: u64) -> LocalEntry {
        LocalEntry {
            key: key.into(),
            path: key.into(),
            size,
            mtime: 0,
            id: Default::default(),
        }
    }

    fn remote(key: &str, size: u64, etag: &str) -> RemoteEntry {
        RemoteEntry {
            rel: key.into(),
            key: format!("p/{key}"),
            size,
            etag: etag.into(),
            last_modified: 0,
            prefix_of_others: false,
        }
    }

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn fast_compares_sizes_then_stored_times() {
        let mut l = local("a", 5);
        l.mtime = 1_700_000_000_123_456_789;
        let mut m = remote("a", 5, MD5).listed_meta();
        assert!(
            matches!(by_times(&l, &m), Finding::SizeOnly { .. }),
            "no mtime: cannot say"
        );
        m.metadata.insert(
            crate::mtime::MTIME_KEY.into(),
            crate::mtime::format_mtime(l.mtime),
        );
        assert_eq!(by_times(&l, &m), same("a", "size and mtime"));
        l.mtime += 5_000_000_000;
        assert!(matches!(by_times(&l, &m), Finding::Differs { .. }));
        l.mtime -= 10_000_000_000;
        assert!(matches!(by_times(&l, &m), Finding::Differs { .. }));
        m.size = 6;
        assert!(matches!(by_times(&l, &m), Finding::Differs { why, .. } if why.contains("size")));
    }

    #[test]
    fn one_sided_keys_are_missing_or_extra_by_direction() {
        let l = local("a", 1);
        let r = remote("a", 1, MD5);
        let missing = Some(First::Found(Finding::Missing { key: "a".into() }));
        let extra = Some(First::Found(Finding::Extra { key: "a".into() }));
        assert_eq!(
            first(Some(&l), None, Direction::Up, Depth::Content, false),
            missing
        );
        assert_eq!(
            first(None, Some(&r), Direction::Up, Depth::Content, false),
            extra
        );
        assert_eq!(
            first(None, Some(&r), Direction::Down, Depth::Content, false),
            missing
        );
        assert_eq!(
            first(Some(&l), None, Direction::Down, Depth::Content, false),
            extra
        );
        // --one-way: what only the destination has is not a finding.
        assert_eq!(
            first(None, Some(&r), Direction::Up, Depth::Content, true),
            None
        );
        assert_eq!(
            first(Some(&l), None, Direction::Down, Depth::Content, true),
            None
        );
        assert_eq!(
            first(Some(&l), None, Direction::Up, Depth::Content, true),
            missing
        );
    }

    #[test]
    fn sizes_decide_before_any_data_is_read() {
        let d = first(
            Some(&local("a", 1)),
            Some(&remote("a", 2, MD5)),
            Direction::Up,
            Depth::Download,
            false,
        );
        assert!(
            matches!(d, Some(First::Found(Finding::Differs { .. }))),
            "{d:?}"
        );
        let d = first(
            Some(&local("a", 5)),
            Some(&remote("a", 5, "x")),
            Direction::Up,
            Depth::SizeOnly,
            false,
        );
        assert_eq!(d, Some(First::Found(same("a", "size"))));
        let d = first(
            Some(&local("a", 0)),
            Some(&remote("a", 0, "x")),
            Direction::Up,
            Depth::Content,
            false,
        );
        assert!(matches!(d, Some(First::Found(Finding::Same { .. }))));
    }

    #[test]
    fn an_md5_etag_is_hashed_and_anything_else_asks_the_store() {
        let l = local("a", 5);
        let d = first(
            Some(&l),
            Some(&remote("a", 5, MD5)),
            Direction::Up,
            Depth::Content,
            false,
        );
        assert_eq!(d, Some(First::Md5(MD5.into())));
        let d = first(
            Some(&l),
            Some(&remote("a", 5, &format!("{MD5}-3"))),
            Direction::Up,
            Depth::Content,
            false,
        );
        assert_eq!(d, Some(First::Head));
        let d = first(
            Some(&l),
            Some(&remote("a", 5, MD5)),
            Direction::Up,
            Depth::Download,
            false,
        );
        assert_eq!(d, Some(First::Download));
    }

    fn meta(size: u64, kind: EtagKind) -> ObjectMeta {
        ObjectMeta {
            key: "p/a".into(),
            size,
            etag: MD5.into(),
            last_modified: time::OffsetDateTime::UNIX_EPOCH,
            metadata: Default::default(),
            crc64: None,
            etag_kind: kind,
            checksum: None,
            content_type: None,
            object: Default::default(),
            version_id: None,
        }
    }

    #[test]
    fn a_head_confirms_a_difference_or_names_a_stronger_check() {
        // A plain MD5 ETag the file did not match: a difference.
        assert!(matches!(
            after_head("a", 5, &meta(5, EtagKind::Md5), true),
            Err(Finding::Differs { .. })
        ));
        // The same ETag under SSE-KMS is no MD5: with nothing else kept,
        // only the size is known.
        assert!(matches!(
            after_head("a", 5, &meta(5, EtagKind::Opaque), true),
            Err(Finding::SizeOnly { .. })
        ));
        // A stored CRC wins over the ETag.
        let mut m = meta(5, EtagKind::Opaque);
        m.checksum = Some(StoredChecksum {
            checksum: Hasher::new(Algorithm::Crc64Nvme).finish(),
            kind: ChecksumType::FullObject,
        });
        assert!(matches!(
            after_head("a", 5, &m, true),
            Ok(Check::Crc { .. })
        ));
        // Replaced since the listing: the new size decides.
        assert!(matches!(
            after_head("a", 5, &meta(6, EtagKind::Md5), false),
            Err(Finding::Differs { .. })
        ));
    }

    #[test]
    fn digests_compare_without_regard_to_case() {
        assert_eq!(digests("a", "MD5", "AB", "ab"), same("a", "MD5"));
        assert!(matches!(
            digests("a", "MD5", "ab", "cd"),
            Finding::Differs { .. }
        ));
    }
}
