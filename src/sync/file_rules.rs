//! `--min-size`, `--max-size`, `--min-age`, `--max-age`: which files a
//! sync considers, by size and modification time.
//!
//! Unlike the globs (`filter`), these are decided in the plan, per key,
//! never in the walk or the listing: a key's two sides can differ in size
//! and time, and a file left out on one side must not make its copy on
//! the other look deleted. So a key whose *source* is outside the rules is
//! left alone on both sides; a key only the destination has is a delete
//! candidate only if the destination's copy is inside them.
//!
//! An object's time here is its Last-Modified from the listing (its stored
//! mtime would cost a HEAD per object).

use crate::mtime::Nanos;

const SEC: Nanos = 1_000_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileRules {
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Modified at or after this (`--max-age`).
    pub since: Option<Nanos>,
    /// Modified at or before this (`--min-age`).
    pub until: Option<Nanos>,
}

impl FileRules {
    pub fn is_empty(&self) -> bool {
        *self == FileRules::default()
    }

    /// Whether a file of `size` bytes modified at `mtime` is considered.
    pub fn takes(&self, size: u64, mtime: Nanos) -> bool {
        self.min_size.is_none_or(|m| size >= m)
            && self.max_size.is_none_or(|m| size <= m)
            && self.since.is_none_or(|t| mtime >= t)
            && self.until.is_none_or(|t| mtime <= t)
    }

    /// The rules from the command line's or a job's words; `now` is the
    /// moment ages count back from (the start of the run).
    pub fn parse(
        min_size: Option<u64>,
        max_size: Option<u64>,
        min_age: Option<&str>,
        max_age: Option<&str>,
        now: Nanos,
    ) -> Result<FileRules, String> {
        let age = |flag: &str, v: Option<&str>| {
            v.map(|s| moment(s, now).map_err(|e| format!("--{flag}: {e}")))
                .transpose()
        };
        let r = FileRules {
            min_size,
            max_size,
            since: age("max-age", max_age)?,
            until: age("min-age", min_age)?,
        };
        if let (Some(a), Some(b)) = (r.min_size, r.max_size) {
            if a > b {
                return Err(format!(
                    "--min-size {a} is above --max-size {b}: no file could be taken"
                ));
            }
        }
        if let (Some(since), Some(until)) = (r.since, r.until) {
            if since > until {
                return Err(
                    "--max-age reaches less far back than --min-age: no file could be taken".into(),
                );
            }
        }
        Ok(r)
    }
}

/// `7d`, `36h`, `90s` (that long before `now`), or a date: `2026-01-31`
/// (midnight UTC) or RFC 3339 `2026-01-31T12:00:00Z`.
pub fn moment(s: &str, now: Nanos) -> Result<Nanos, String> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp_nanos() as Nanos);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &day) {
        return Ok(d.midnight().assume_utc().unix_timestamp_nanos() as Nanos);
    }
    let d = crate::units::parse_duration(s, "s").map_err(|_| {
        format!(
            "'{s}' is neither an age (7d, 36h, 90s) nor a date (2026-01-31, 2026-01-31T12:00:00Z)"
        )
    })?;
    let back = (d.as_secs() as Nanos)
        .saturating_mul(SEC)
        .saturating_add(d.subsec_nanos() as Nanos);
    Ok(now.saturating_sub(back))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Nanos = 1_800_000_000 * SEC;

    #[test]
    fn sizes_and_ages_bound_what_is_taken() {
        let r = FileRules::parse(Some(1024), Some(1 << 20), Some("1h"), Some("7d"), NOW).unwrap();
        let hour = 3600 * SEC;
        assert!(r.takes(1024, NOW - 2 * hour));
        assert!(!r.takes(1023, NOW - 2 * hour), "below --min-size");
        assert!(!r.takes((1 << 20) + 1, NOW - 2 * hour), "above --max-size");
        assert!(!r.takes(2048, NOW - hour / 2), "younger than --min-age");
        assert!(!r.takes(2048, NOW - 8 * 24 * hour), "older than --max-age");
        assert!(FileRules::default().takes(0, 0));
        assert!(FileRules::default().is_empty() && !r.is_empty());
    }

    #[test]
    fn dates_and_contradictions() {
        let jan = moment("2026-01-31", NOW).unwrap();
        assert_eq!(jan, 1_769_817_600 * SEC);
        assert_eq!(moment("2026-01-31T00:00:01Z", NOW).unwrap(), jan + SEC);
        assert_eq!(moment("90s", NOW).unwrap(), NOW - 90 * SEC);
        assert!(moment("last week", NOW)
            .unwrap_err()
            .contains("neither an age"));
        assert!(FileRules::parse(Some(2), Some(1), None, None, NOW).is_err());
        assert!(FileRules::parse(None, None, Some("7d"), Some("1d"), NOW).is_err());
        assert!(FileRules::parse(None, None, Some("soon"), None, NOW)
            .unwrap_err()
            .starts_with("--min-age"));
    }
}
