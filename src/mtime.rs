//! Modification times as stored in object metadata: the `mtime` key holding
//! decimal Unix seconds with up to nine fractional digits, the convention
//! rclone and s3fs share, so a tree written by either is understood.

use filetime::FileTime;

pub const MTIME_KEY: &str = "mtime";

/// Nanoseconds since the Unix epoch.
pub type Nanos = i128;

pub fn format_mtime(ns: Nanos) -> String {
    // Sign and magnitude, as a decimal number reads: -1.5 is minus one and a half.
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    let secs = abs / 1_000_000_000;
    let frac = abs % 1_000_000_000;
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{frac:09}")
    }
}

/// Accepts `1700000000`, `1700000000.5`, `1700000000.123456789`.
pub fn parse_mtime(s: &str) -> Option<Nanos> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int == "-" {
        return None;
    }
    let secs: i128 = int.parse().ok()?;
    let frac_ns: i128 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = &frac[..frac.len().min(9)];
        let padded = format!("{digits:0<9}");
        padded.parse().ok()?
    };
    // Beyond what a file time can hold, the value is not an mtime.
    if i64::try_from(secs).is_err() {
        return None;
    }
    let sign = if int.starts_with('-') { -1 } else { 1 };
    Some(secs * 1_000_000_000 + sign * frac_ns)
}

pub fn from_filetime(t: FileTime) -> Nanos {
    t.unix_seconds() as i128 * 1_000_000_000 + t.nanoseconds() as i128
}

pub fn to_filetime(ns: Nanos) -> FileTime {
    FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000) as i64,
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

pub fn file_mtime(meta: &std::fs::Metadata) -> Nanos {
    from_filetime(FileTime::from_last_modification_time(meta))
}

pub fn from_datetime(t: time::OffsetDateTime) -> Nanos {
    t.unix_timestamp_nanos()
}

/// The present moment.
pub fn now() -> Nanos {
    from_datetime(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_overflowing_mtime_is_no_mtime() {
        assert_eq!(super::parse_mtime("99999999999999999999999999999"), None);
        assert_eq!(super::parse_mtime("-9999999999999999999999.5"), None);
        assert!(super::parse_mtime("1700000000.5").is_some());
    }

    use super::*;

    #[test]
    fn round_trips() {
        for ns in [
            0i128,
            1,
            1_700_000_000_123_456_789,
            1_700_000_000_000_000_000,
            -1_500_000_000,
        ] {
            assert_eq!(parse_mtime(&format_mtime(ns)), Some(ns), "{ns}");
        }
    }

    #[test]
    fn reads_other_tools_formats() {
        assert_eq!(parse_mtime("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_mtime("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_mtime("1700000000.1234567891"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(parse_mtime("nope"), None);
        assert_eq!(parse_mtime("12.x"), None);
        assert_eq!(parse_mtime(""), None);
    }
}
