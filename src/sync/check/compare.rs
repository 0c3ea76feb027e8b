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

/// The first step for a key of two prefixes (`check URL URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstBetween {
    Found(Finding),
    /// Both HEADs: the checksums each store keeps.
    Heads,
    /// Both objects read and hashed.
    Download,
    /// Both HEADs: the stored mtimes.
    Times,
}

/// Pure: what two listings show for one key. An equal size and an ETag
/// of a known form (MD5, or the multipart form, which depends on the
/// bytes and the part layout both) that is the same on both sides is the
/// same content: a server-side copy keeps the ETag. An opaque ETag (SSE,
/// OSS multipart) says nothing either way.
pub fn first_between(
    src: Option<&RemoteEntry>,
    dst: Option<&RemoteEntry>,
    depth: Depth,
    one_way: bool,
) -> Option<FirstBetween> {
    let (s, d) = match (src, dst) {
        (None, None) => return None,
        (Some(s), None) => {
            return Some(FirstBetween::Found(Finding::Missing { key: s.rel.clone() }))
        }
        (None, Some(d)) if !one_way => {
            return Some(FirstBetween::Found(Finding::Extra { key: d.rel.clone() }))
        }
        (None, Some(_)) => return None,
        (Some(s), Some(d)) => (s, d),
    };
    if s.size != d.size {
        return Some(FirstBetween::Found(Finding::Differs {
            key: s.rel.clone(),
            why: two_sizes(s.size, d.size),
        }));
    }
    Some(match depth {
        Depth::SizeOnly => FirstBetween::Found(same(&s.rel, "size")),
        _ if s.size == 0 => FirstBetween::Found(same(&s.rel, "size (empty)")),
        Depth::Download => FirstBetween::Download,
        Depth::Times => FirstBetween::Times,
        Depth::Content if s.etag == d.etag && EtagKind::from_form(&s.etag) != EtagKind::Opaque => {
            FirstBetween::Found(same(&s.rel, "ETag"))
        }
        Depth::Content => FirstBetween::Heads,
    })
}

/// Pure: after both HEADs, what the two stores keep decides, the
/// strongest first: one full-object checksum of one algorithm, OSS's
/// CRC-64 on both, MD5 ETags both stores vouch for. A composite checksum
/// or a multipart ETag depends on the part layout, so only equality
/// decides it. Nothing in common is `SizeOnly`, never a difference.
pub fn after_heads(key: &str, src: &ObjectMeta, dst: &ObjectMeta) -> Finding {
    use crate::checksum::ChecksumType;
    if src.size != dst.size {
        return Finding::Differs {
            key: key.into(),
            why: two_sizes(src.size, dst.size),
        };
    }
    if let (Some(a), Some(b)) = (&src.checksum, &dst.checksum) {
        if a.checksum.algorithm == b.checksum.algorithm {
            let name = a.checksum.algorithm.to_string();
            match (a.kind, b.kind) {
                (ChecksumType::FullObject, ChecksumType::FullObject) => {
                    return between_digests(key, &name, &a.display_value(), &b.display_value())
                }
                _ if a.display_value() == b.display_value() => return same(key, &name),
                _ => {}
            }
        }
    }
    if let (Some(a), Some(b)) = (src.crc64, dst.crc64) {
        return between_digests(key, "CRC-64", &a.to_string(), &b.to_string());
    }
    if src.etag_is_md5() && dst.etag_is_md5() {
        return between_digests(key, "MD5", &src.etag, &dst.etag);
    }
    if src.etag == dst.etag && src.etag_kind != EtagKind::Opaque {
        return same(key, "ETag");
    }
    Finding::SizeOnly {
        key: key.into(),
        why: "the two stores keep no checksum in common".into(),
    }
}

/// Pure: `--fast` between prefixes: both objects' stored mtimes (ferry's
/// copy carries the source's), to the second where either is coarser.
pub fn times_between(key: &str, src: &ObjectMeta, dst: &ObjectMeta) -> Finding {
    use crate::sync::one::stored_side;
    use crate::sync::plan::{decide, Decision, PlanOptions, Reason};
    if src.size != dst.size {
        return Finding::Differs {
            key: key.into(),
            why: two_sizes(src.size, dst.size),
        };
    }
    for (m, which) in [(src, "source"), (dst, "destination")] {
        if !m.metadata.contains_key(crate::mtime::MTIME_KEY) {
            return Finding::SizeOnly {
                key: key.into(),
                why: format!("the {which} object carries no modification time"),
            };
        }
    }
    let by_time = PlanOptions {
        update: true,
        ..Default::default()
    };
    match decide(Some(stored_side(src)), Some(stored_side(dst)), by_time) {
        Decision::Skip(Reason::UpToDate) => same(key, "size and mtime"),
        Decision::Transfer(Reason::Newer) => Finding::Differs {
            key: key.into(),
            why: "the source's mtime is later".into(),
        },
        _ => Finding::Differs {
            key: key.into(),
            why: "the destination's mtime is later".into(),
        },
    }
}

fn two_sizes(src: u64, dst: u64) -> String {
    format!("size {src} in the source, {dst} in the destination")
}

fn between_digests(key: &str, name: &str, src: &str, dst: &str) -> Finding {
    if src.eq_ignore_ascii_case(dst) {
        same(key, name)
    } else {
        Finding::Differs {
            key: key.into(),
            why: format!("{name} {src} in the source, {dst} in the destination"),
        }
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

    fn full(digest: u8, kind: ChecksumType) -> Option<StoredChecksum> {
        Some(StoredChecksum {
            checksum: crate::checksum::Checksum {
                algorithm: Algorithm::Crc64Nvme,
                digest: vec![digest; 8],
            },
            kind,
        })
    }

    #[test]
    fn two_listings_decide_by_size_and_a_shared_etag_of_known_form() {
        let a = remote("a", 5, MD5);
        let d = |dep| first_between(Some(&a), Some(&remote("a", 5, MD5)), dep, false);
        assert_eq!(
            d(Depth::Content),
            Some(FirstBetween::Found(same("a", "ETag")))
        );
        assert_eq!(
            d(Depth::SizeOnly),
            Some(FirstBetween::Found(same("a", "size")))
        );
        assert_eq!(d(Depth::Times), Some(FirstBetween::Times));
        assert_eq!(d(Depth::Download), Some(FirstBetween::Download));
        // An opaque ETag (SSE, OSS multipart) equal on both says nothing.
        let o = remote("a", 5, "opaque");
        assert_eq!(
            first_between(Some(&o), Some(&o), Depth::Content, false),
            Some(FirstBetween::Heads)
        );
        // Other ETags of MD5 form: the HEADs confirm.
        let other = remote("a", 5, "fedcba9876543210fedcba9876543210");
        assert_eq!(
            first_between(Some(&a), Some(&other), Depth::Content, false),
            Some(FirstBetween::Heads)
        );
        assert!(matches!(
            first_between(Some(&a), Some(&remote("a", 6, MD5)), Depth::Content, false),
            Some(FirstBetween::Found(Finding::Differs { .. }))
        ));
        assert!(matches!(
            first_between(Some(&a), None, Depth::Content, true),
            Some(FirstBetween::Found(Finding::Missing { .. }))
        ));
        assert_eq!(first_between(None, Some(&a), Depth::Content, true), None);
        assert!(matches!(
            first_between(None, Some(&a), Depth::Content, false),
            Some(FirstBetween::Found(Finding::Extra { .. }))
        ));
    }

    #[test]
    fn two_heads_compare_only_what_both_stores_keep_alike() {
        let mut a = meta(5, EtagKind::Opaque);
        let mut b = meta(5, EtagKind::Opaque);
        assert!(matches!(after_heads("a", &a, &b), Finding::SizeOnly { .. }));
        // Full-object checksums of one algorithm decide both ways.
        a.checksum = full(1, ChecksumType::FullObject);
        b.checksum = full(1, ChecksumType::FullObject);
        assert!(matches!(after_heads("a", &a, &b), Finding::Same { .. }));
        b.checksum = full(2, ChecksumType::FullObject);
        assert!(matches!(after_heads("a", &a, &b), Finding::Differs { .. }));
        // Composite values depend on the parts: unequal says nothing.
        a.checksum = full(1, ChecksumType::Composite { parts: 2 });
        b.checksum = full(2, ChecksumType::Composite { parts: 3 });
        assert!(matches!(after_heads("a", &a, &b), Finding::SizeOnly { .. }));
        // OSS's CRC-64 on both decides.
        (a.crc64, b.crc64) = (Some(7), Some(8));
        assert!(matches!(after_heads("a", &a, &b), Finding::Differs { .. }));
        // MD5 ETags both stores vouch for decide; one opaque does not.
        let (mut a, mut b) = (meta(5, EtagKind::Md5), meta(5, EtagKind::Md5));
        b.etag = "fedcba9876543210fedcba9876543210".into();
        assert!(matches!(after_heads("a", &a, &b), Finding::Differs { .. }));
        a.etag_kind = EtagKind::Opaque;
        assert!(matches!(after_heads("a", &a, &b), Finding::SizeOnly { .. }));
    }

    #[test]
    fn fast_between_wants_both_stored_times() {
        let stamp = |ns: &str| {
            let mut m = meta(5, EtagKind::Opaque);
            m.metadata.insert(crate::mtime::MTIME_KEY.into(), ns.into());
            m
        };
        let a = stamp("1700000000.000000001");
        assert!(matches!(
            times_between("a", &a, &a.clone()),
            Finding::Same { .. }
        ));
        assert!(matches!(
            times_between("a", &a, &stamp("1700000100")),
            Finding::Differs { .. }
        ));
        assert!(matches!(
            times_between("a", &stamp("1700000100"), &a),
            Finding::Differs { .. }
        ));
        assert!(matches!(
            times_between("a", &a, &meta(5, EtagKind::Opaque)),
            Finding::SizeOnly { .. }
        ));
    }
}
