//! The `-u` decision table, as a pure function of (source side,
//! destination side, options): the only place a sync decides to transfer,
//! skip or delete. The merge that feeds it is in `merge`. Nothing
//! here touches the disk or the network, so every row is unit-tested and
//! the property "a plan applied to its inputs leaves nothing to do" is
//! checked by proptest.
//!
//! | destination | source time vs destination time | sizes | with -u | without -u |
//! |---|---|---|---|---|
//! | missing | – | – | transfer (new) | transfer (new) |
//! | present | source newer | any | transfer (newer) | transfer |
//! | present | equal | differ | transfer (size differs) | transfer |
//! | present | equal | equal | skip (up to date) | transfer |
//! | present | source older | any | skip (destination newer) | transfer |
//! | present, no source | – | – | delete with --delete, else leave | same |
//!
//! `--size-only` and `--ignore-existing` replace the rows for a present
//! destination (and imply `-u`): by size alone, transfer when the sizes
//! differ and skip when they are equal, times never asked for (no HEAD);
//! or skip whatever the destination has. `--checksum` (also implying
//! `-u`) transfers when the sizes differ, skips two empty files, and
//! otherwise asks for the content ([`Decision::NeedContent`]): equal
//! digests skip and different ones transfer, whatever the times; only
//! where neither side can show a digest to compare (an ETag that is no
//! MD5 and no stored checksum) do the times decide, as with `-u`.
//!
//! Times: a local file's mtime (nanoseconds); an object's `mtime` metadata
//! when present, else its Last-Modified (whole seconds). Two times compare
//! at nanoseconds only when both are precise; otherwise at whole seconds, so
//! a second-precision store or file system never causes endless re-sends.

use std::cmp::Ordering;

use crate::mtime::Nanos;

const SEC: Nanos = 1_000_000_000;

/// What is known about one side's modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// Known; `precise` when it carries sub-second digits worth comparing.
    Known { ns: Nanos, precise: bool },
    /// An object whose `mtime` metadata was not fetched yet: a listing only
    /// gives Last-Modified, and the stored mtime is never later than the
    /// moment of the upload, so it is below `upper` (Last-Modified + 1 s).
    Below { upper: Nanos },
}

impl Time {
    pub fn local(ns: Nanos) -> Time {
        Time::Known {
            ns,
            precise: ns % SEC != 0,
        }
    }

    pub fn stored(ns: Nanos) -> Time {
        Time::local(ns)
    }

    /// Last-Modified alone (whole seconds).
    pub fn server(secs_ns: Nanos) -> Time {
        Time::Known {
            ns: secs_ns,
            precise: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    pub size: u64,
    pub time: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    New,
    Newer,
    SizeDiffers,
    /// Without -u everything is sent.
    NoUpdateCheck,
    UpToDate,
    DestinationNewer,
    NotInSource,
    /// `--size-only`: the sizes differ.
    Resized,
    /// `--size-only`: the sizes are equal.
    SameSize,
    /// `--ignore-existing`: the destination has it.
    Exists,
    /// `--checksum`: the digests agree.
    SameContent,
    /// `--checksum`: the digests differ.
    ContentDiffers,
    /// Watch mode: a renamed file, copied from its old name.
    Moved,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Newer => "newer",
            Reason::SizeDiffers => "same time, different size",
            Reason::NoUpdateCheck => "copy without -u",
            Reason::UpToDate => "up to date",
            Reason::DestinationNewer => "destination is newer",
            Reason::NotInSource => "not in source",
            Reason::Resized => "size differs",
            Reason::SameSize => "same size",
            Reason::Exists => "exists at the destination",
            Reason::SameContent => "same content",
            Reason::ContentDiffers => "content differs",
            Reason::Moved => "renamed: copied from its old name",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Transfer(Reason),
    Skip(Reason),
    Delete,
    /// Only the object's stored mtime (a HEAD) can decide.
    NeedMetadata,
    /// `--checksum` with equal sizes: only the contents' digests decide.
    NeedContent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanOptions {
    pub update: bool,
    pub delete: bool,
    pub compare: Compare,
}

/// What `-u` compares a present destination by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compare {
    /// Modification times, then sizes (the table above).
    #[default]
    Time,
    /// `--size-only`.
    SizeOnly,
    /// `--ignore-existing`.
    IgnoreExisting,
    /// `--checksum`: sizes, then digests.
    Checksum,
}

impl Compare {
    /// For `config show` and the job file.
    pub fn name(self) -> &'static str {
        match self {
            Compare::Time => "time",
            Compare::SizeOnly => "size",
            Compare::IgnoreExisting => "existence",
            Compare::Checksum => "checksum",
        }
    }
}

fn compare(a: Time, b: Time) -> Option<Ordering> {
    match (a, b) {
        (Time::Known { ns: x, precise: px }, Time::Known { ns: y, precise: py }) => {
            Some(if px && py {
                x.cmp(&y)
            } else {
                x.div_euclid(SEC).cmp(&y.div_euclid(SEC))
            })
        }
        _ => None,
    }
}

/// The decision for one key.
pub fn decide(src: Option<Side>, dst: Option<Side>, opts: PlanOptions) -> Decision {
    let (src, dst) = match (src, dst) {
        (None, None) => return Decision::Skip(Reason::UpToDate),
        (None, Some(_)) => {
            return if opts.delete {
                Decision::Delete
            } else {
                Decision::Skip(Reason::NotInSource)
            }
        }
        (Some(_), None) => return Decision::Transfer(Reason::New),
        (Some(s), Some(d)) => (s, d),
    };
    match opts.compare {
        Compare::IgnoreExisting => return Decision::Skip(Reason::Exists),
        Compare::SizeOnly if src.size != dst.size => return Decision::Transfer(Reason::Resized),
        Compare::SizeOnly => return Decision::Skip(Reason::SameSize),
        Compare::Checksum if src.size != dst.size => return Decision::Transfer(Reason::Resized),
        Compare::Checksum if src.size == 0 => return Decision::Skip(Reason::SameContent),
        Compare::Checksum => return Decision::NeedContent,
        Compare::Time => {}
    }
    if !opts.update {
        return Decision::Transfer(Reason::NoUpdateCheck);
    }
    // Bounds decide without the stored mtime when they can.
    match (src.time, dst.time) {
        (Time::Known { ns, .. }, Time::Below { upper }) => {
            return if ns >= upper {
                Decision::Transfer(Reason::Newer)
            } else {
                Decision::NeedMetadata
            };
        }
        (Time::Below { upper }, Time::Known { ns, .. }) => {
            return if upper <= ns {
                Decision::Skip(Reason::DestinationNewer)
            } else {
                Decision::NeedMetadata
            };
        }
        (Time::Below { .. }, Time::Below { .. }) => return Decision::NeedMetadata,
        _ => {}
    }
    match compare(src.time, dst.time) {
        Some(Ordering::Greater) => Decision::Transfer(Reason::Newer),
        Some(Ordering::Less) => Decision::Skip(Reason::DestinationNewer),
        Some(Ordering::Equal) if src.size != dst.size => Decision::Transfer(Reason::SizeDiffers),
        Some(Ordering::Equal) => Decision::Skip(Reason::UpToDate),
        None => Decision::NeedMetadata,
    }
}

// ---------------------------------------------------------------------
// The delete gate. `decide` names each key a sync may delete; whether a
// run deletes any of them is decided once, at the end, from what the run
// saw: nothing unless both sides were seen whole and without error, no
// transfer failed, the source was not empty, and the count is within the
// limit. All or nothing, so a partial view never thins the destination.

/// `--max-delete`: a count, or a share of the destination's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDelete {
    Count(u64),
    Percent(u8),
}

impl MaxDelete {
    /// `10` or `50%`.
    pub fn parse(s: &str) -> Result<MaxDelete, String> {
        let s = s.trim();
        let bad = || {
            format!("'{s}' is not a delete limit; expected a count like 100 or a share like 50%")
        };
        match s.strip_suffix('%') {
            Some(p) => {
                let n: u8 = p.trim().parse().map_err(|_| bad())?;
                if n > 100 {
                    return Err(format!("'{s}': a share cannot exceed 100%"));
                }
                Ok(MaxDelete::Percent(n))
            }
            None => s.parse().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }

    /// The most deletes allowed against `dest_entries` destination entries.
    /// A share applies only from [`MIN_ENTRIES_FOR_SHARE`] entries on, so a
    /// small destination can still be pruned.
    pub fn allows(self, dest_entries: u64) -> u64 {
        match self {
            MaxDelete::Count(n) => n,
            MaxDelete::Percent(_) if dest_entries < MIN_ENTRIES_FOR_SHARE => u64::MAX,
            MaxDelete::Percent(p) => dest_entries * p as u64 / 100,
        }
    }
}

impl std::fmt::Display for MaxDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDelete::Count(n) => write!(f, "{n}"),
            MaxDelete::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Below this many destination entries a share limit does not apply.
pub const MIN_ENTRIES_FOR_SHARE: u64 = 10;

/// The guards a run's deletes pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteRules {
    pub max: Option<MaxDelete>,
    /// Let an empty source empty the destination.
    pub allow_empty_source: bool,
}

/// What a run saw, as far as its deletes care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunView {
    /// Files the source side showed (after filters).
    pub source_files: u64,
    /// Entries the destination side showed (after filters).
    pub dest_entries: u64,
    /// Entries either walk or listing could not read.
    pub read_errors: u64,
    /// Transfers, HEADs or other per-file steps that failed.
    pub failures: u64,
}

/// Why a run deleted nothing although `--delete` named candidates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    #[error("not deleting {candidates} files because of {errors} errors during the run (a delete must see both sides whole)")]
    Errors { candidates: u64, errors: u64 },
    #[error("not deleting {candidates} files: the source is empty (an unmounted drive or a wrong path?); pass --allow-empty-source to empty the destination")]
    EmptySource { candidates: u64 },
    #[error(
        "not deleting {candidates} of {dest_entries} files: more than --max-delete {limit} allows"
    )]
    OverLimit {
        candidates: u64,
        dest_entries: u64,
        limit: MaxDelete,
    },
}

impl Withheld {
    pub fn candidates(&self) -> u64 {
        match self {
            Withheld::Errors { candidates, .. }
            | Withheld::EmptySource { candidates }
            | Withheld::OverLimit { candidates, .. } => *candidates,
        }
    }
}

/// The last word on a run's `candidates` deletes: all of them, or none.
pub fn gate_deletes(candidates: u64, view: RunView, rules: DeleteRules) -> Result<(), Withheld> {
    if candidates == 0 {
        return Ok(());
    }
    let errors = view.read_errors + view.failures;
    if errors > 0 {
        return Err(Withheld::Errors { candidates, errors });
    }
    if view.source_files == 0 && !rules.allow_empty_source {
        return Err(Withheld::EmptySource { candidates });
    }
    if let Some(limit) = rules.max {
        if candidates > limit.allows(view.dest_entries) {
            return Err(Withheld::OverLimit {
                candidates,
                dest_entries: view.dest_entries,
                limit,
            });
        }
    }
    Ok(())
}

/// Subtrees of the source that could not be read: nothing under them may
/// be deleted, whatever else the run decides. Fed in key order.
#[derive(Debug, Default)]
pub struct Unseen {
    prefixes: Vec<String>,
}

impl Unseen {
    /// `key` could not be read (a file, or a directory and all below it).
    pub fn mark(&mut self, key: &str) {
        self.prefixes.push(key.to_string());
    }

    /// Whether `rel` is, or lies under, something that could not be read.
    pub fn covers(&self, rel: &str) -> bool {
        self.prefixes.iter().any(|p| {
            p.is_empty()
                || rel == p
                || (rel.len() > p.len()
                    && rel.starts_with(p.as_str())
                    && rel.as_bytes()[p.len()] == b'/')
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Nanos = 1_700_000_000 * SEC + 123_456_789;
    const U: PlanOptions = PlanOptions {
        update: true,
        delete: false,
        compare: Compare::Time,
    };

    fn local(size: u64, ns: Nanos) -> Option<Side> {
        Some(Side {
            size,
            time: Time::local(ns),
        })
    }

    fn listed(size: u64, last_modified_secs: Nanos) -> Option<Side> {
        Some(Side {
            size,
            time: Time::Below {
                upper: last_modified_secs * SEC + SEC,
            },
        })
    }

    #[test]
    fn decision_table_upload() {
        // Row 1: missing.
        assert_eq!(
            decide(local(1, T), None, U),
            Decision::Transfer(Reason::New)
        );
        // Row 2: source newer (stored mtime known).
        assert_eq!(
            decide(local(1, T + 1), local(1, T), U),
            Decision::Transfer(Reason::Newer)
        );
        // Row 3: equal, sizes differ (ossutil would skip this; ferry does not).
        assert_eq!(
            decide(local(2, T), local(1, T), U),
            Decision::Transfer(Reason::SizeDiffers)
        );
        // Row 4: equal, same size.
        assert_eq!(
            decide(local(1, T), local(1, T), U),
            Decision::Skip(Reason::UpToDate)
        );
        // Row 5: source older.
        assert_eq!(
            decide(local(9, T - 1), local(1, T), U),
            Decision::Skip(Reason::DestinationNewer)
        );
        // Without -u everything present is sent.
        let no_u = PlanOptions::default();
        assert_eq!(
            decide(local(1, T), local(1, T), no_u),
            Decision::Transfer(Reason::NoUpdateCheck)
        );
        // Extraneous destination entries.
        assert_eq!(
            decide(None, local(1, T), U),
            Decision::Skip(Reason::NotInSource)
        );
        assert_eq!(
            decide(
                None,
                local(1, T),
                PlanOptions {
                    update: true,
                    delete: true,
                    compare: Compare::Time,
                }
            ),
            Decision::Delete
        );
    }

    #[test]
    fn listing_bounds_avoid_heads_when_they_can() {
        let secs = T / SEC;
        // Local file modified after the upload finished: newer for sure.
        assert_eq!(
            decide(local(1, (secs + 1) * SEC), listed(1, secs), U),
            Decision::Transfer(Reason::Newer)
        );
        // Within the upload's second or before it: only the stored mtime tells.
        assert_eq!(
            decide(local(1, T), listed(1, secs), U),
            Decision::NeedMetadata
        );
        // Download direction: object uploaded before the local file's mtime.
        assert_eq!(
            decide(listed(1, secs - 5), local(1, T), U),
            Decision::Skip(Reason::DestinationNewer)
        );
        assert_eq!(
            decide(listed(1, secs + 5), local(1, T), U),
            Decision::NeedMetadata
        );
    }

    #[test]
    fn precision_rules() {
        // An object with only Last-Modified (whole seconds) equals a local
        // file from that second.
        let lm = Side {
            size: 1,
            time: Time::server(T / SEC * SEC),
        };
        assert_eq!(
            decide(local(1, T), Some(lm), U),
            Decision::Skip(Reason::UpToDate)
        );
        assert_eq!(
            decide(local(1, T + SEC), Some(lm), U),
            Decision::Transfer(Reason::Newer)
        );
        // s3fs-style integer mtime metadata vs a nanosecond local time.
        assert_eq!(
            decide(local(1, T), local(1, T / SEC * SEC), U),
            Decision::Skip(Reason::UpToDate)
        );
        // A file system that keeps whole seconds, downloading a precise mtime.
        assert_eq!(
            decide(local(1, T), local(1, T / SEC * SEC), U),
            Decision::Skip(Reason::UpToDate)
        );
        assert_eq!(
            decide(local(1, T / SEC * SEC), local(1, T), U),
            Decision::Skip(Reason::UpToDate)
        );
    }

    #[test]
    fn delete_limits_parse_and_apply() {
        assert_eq!(MaxDelete::parse("10"), Ok(MaxDelete::Count(10)));
        assert_eq!(MaxDelete::parse("50%"), Ok(MaxDelete::Percent(50)));
        assert!(MaxDelete::parse("101%").is_err());
        assert!(MaxDelete::parse("ten").is_err());
        assert_eq!(MaxDelete::Percent(50).allows(100), 50);
        assert_eq!(MaxDelete::Percent(50).allows(9), u64::MAX, "small trees");
        assert_eq!(MaxDelete::Count(10).allows(5), 10);
    }

    #[test]
    fn the_gate_refuses_after_errors_on_empty_sources_and_over_the_limit() {
        let seen = RunView {
            source_files: 5,
            dest_entries: 20,
            ..Default::default()
        };
        let rules = DeleteRules::default();
        assert_eq!(gate_deletes(3, seen, rules), Ok(()));
        assert_eq!(
            gate_deletes(
                0,
                RunView {
                    failures: 1,
                    ..seen
                },
                rules
            ),
            Ok(())
        );
        assert_eq!(
            gate_deletes(
                3,
                RunView {
                    read_errors: 1,
                    ..seen
                },
                rules
            ),
            Err(Withheld::Errors {
                candidates: 3,
                errors: 1
            })
        );
        assert_eq!(
            gate_deletes(
                3,
                RunView {
                    failures: 2,
                    ..seen
                },
                rules
            ),
            Err(Withheld::Errors {
                candidates: 3,
                errors: 2
            })
        );
        let empty = RunView {
            source_files: 0,
            ..seen
        };
        assert_eq!(
            gate_deletes(20, empty, rules),
            Err(Withheld::EmptySource { candidates: 20 })
        );
        let opt_in = DeleteRules {
            allow_empty_source: true,
            ..rules
        };
        assert_eq!(gate_deletes(20, empty, opt_in), Ok(()));
        let ten = DeleteRules {
            max: Some(MaxDelete::Count(10)),
            ..rules
        };
        assert_eq!(gate_deletes(10, seen, ten), Ok(()));
        assert!(matches!(
            gate_deletes(11, seen, ten),
            Err(Withheld::OverLimit { .. })
        ));
        let half = DeleteRules {
            max: Some(MaxDelete::Percent(50)),
            ..rules
        };
        assert_eq!(gate_deletes(10, seen, half), Ok(()));
        assert!(matches!(
            gate_deletes(11, seen, half),
            Err(Withheld::OverLimit { .. })
        ));
    }

    #[test]
    fn unseen_subtrees_cover_their_descendants_only() {
        let mut u = Unseen::default();
        u.mark("private");
        assert!(u.covers("private") && u.covers("private/a/b"));
        assert!(!u.covers("private-x") && !u.covers("privat") && !u.covers("a"));
        u.mark("");
        assert!(u.covers("anything"), "an unreadable root covers all");
    }

    #[test]
    fn size_only_and_ignore_existing_never_ask_for_times() {
        let size_only = PlanOptions {
            compare: Compare::SizeOnly,
            ..U
        };
        let ignore = PlanOptions {
            compare: Compare::IgnoreExisting,
            ..U
        };
        let below = Some(Side {
            size: 5,
            time: Time::Below { upper: T },
        });
        // Newer or older, a file of the same size is up to date by size.
        assert_eq!(
            decide(local(5, T + SEC), below, size_only),
            Decision::Skip(Reason::SameSize)
        );
        assert_eq!(
            decide(local(5, T - SEC), local(5, T), size_only),
            Decision::Skip(Reason::SameSize)
        );
        assert_eq!(
            decide(local(4, T - SEC), below, size_only),
            Decision::Transfer(Reason::Resized)
        );
        assert_eq!(
            decide(local(4, T + SEC), below, ignore),
            Decision::Skip(Reason::Exists)
        );
        // What is missing is still sent, and deletes are as before.
        assert_eq!(
            decide(local(4, T), None, ignore),
            Decision::Transfer(Reason::New)
        );
        assert_eq!(
            decide(local(4, T), None, size_only),
            Decision::Transfer(Reason::New)
        );
        let del = PlanOptions {
            delete: true,
            ..ignore
        };
        assert_eq!(decide(None, below, del), Decision::Delete);
    }

    #[test]
    fn checksum_asks_for_content_whatever_the_times() {
        let sums = PlanOptions {
            compare: Compare::Checksum,
            ..U
        };
        let below = Some(Side {
            size: 5,
            time: Time::Below { upper: T },
        });
        // Older, newer or unknown times: equal sizes ask for the content.
        for src in [local(5, T + SEC), local(5, T - SEC)] {
            assert_eq!(decide(src, below, sums), Decision::NeedContent);
            assert_eq!(decide(src, local(5, T), sums), Decision::NeedContent);
        }
        assert_eq!(
            decide(local(4, T - SEC), local(5, T), sums),
            Decision::Transfer(Reason::Resized)
        );
        assert_eq!(
            decide(local(0, T + SEC), local(0, T), sums),
            Decision::Skip(Reason::SameContent)
        );
        assert_eq!(
            decide(local(4, T), None, sums),
            Decision::Transfer(Reason::New)
        );
        let del = PlanOptions {
            delete: true,
            ..sums
        };
        assert_eq!(decide(None, below, del), Decision::Delete);
    }

    fn side() -> impl Strategy<Value = Side> {
        (0u64..4, 0i64..6, any::<bool>()).prop_map(|(size, t, precise)| Side {
            size,
            time: if precise {
                Time::local(T + t as Nanos * 400_000_000)
            } else {
                Time::server((T / SEC + t as Nanos) * SEC)
            },
        })
    }

    proptest! {
        /// Applying a -u plan (transfer copies size and time, delete
        /// removes) leaves a state whose plan transfers and deletes nothing.
        #[test]
        fn applied_plan_is_a_fixed_point(
            entries in proptest::collection::btree_map("[a-d]{1,2}", (proptest::option::of(side()), proptest::option::of(side())), 0..12),
            delete in any::<bool>(),
            compare in prop_oneof![Just(Compare::Time), Just(Compare::SizeOnly), Just(Compare::IgnoreExisting)],
        ) {
            let opts = PlanOptions { update: true, delete, compare };
            let mut after = Vec::new();
            for (s, d) in entries.values() {
                let new_dst = match decide(*s, *d, opts) {
                    Decision::Transfer(_) => *s,
                    Decision::Delete => None,
                    Decision::Skip(_) => *d,
                    Decision::NeedMetadata => unreachable!("all times known"),
                    Decision::NeedContent => unreachable!("not asked to compare content"),
                };
                after.push((*s, new_dst));
            }
            for (s, d) in after {
                let again = decide(s, d, opts);
                prop_assert!(matches!(again, Decision::Skip(_)), "{:?} {:?} -> {:?}", s, d, again);
            }
        }
    }
}
