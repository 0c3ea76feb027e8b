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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanOptions {
    pub update: bool,
    pub delete: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Nanos = 1_700_000_000 * SEC + 123_456_789;
    const U: PlanOptions = PlanOptions {
        update: true,
        delete: false,
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
                    delete: true
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
        ) {
            let opts = PlanOptions { update: true, delete };
            let mut after = Vec::new();
            for (s, d) in entries.values() {
                let new_dst = match decide(*s, *d, opts) {
                    Decision::Transfer(_) => *s,
                    Decision::Delete => None,
                    Decision::Skip(_) => *d,
                    Decision::NeedMetadata => unreachable!("all times known"),
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
