//! Quantities as people write them — sizes (`8M`, `100MiB`, `1.5G`) and
//! durations (`500ms`, `5m`, `7d`) — and sizes as people read them.

use std::time::Duration;

/// `"1.5G"` -> `(1.5, "G")`; `None` when there is no number in front.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// Durations; a bare number is in `bare_unit` ("s" in config files, "d"
/// for `--older-than`).
pub fn parse_duration(s: &str, bare_unit: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s)
        .ok_or_else(|| format!("'{s}' is not a duration (examples: 500ms, 1s, 5m, 7d)"))?;
    let unit = if unit.is_empty() { bare_unit } else { unit };
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "w" => n * 7.0 * 86400.0,
        u => {
            return Err(format!(
                "'{s}': unknown unit '{u}' (use ms, s, m, h, d or w)"
            ))
        }
    };
    duration_from_secs(secs).ok_or_else(|| format!("'{s}' is too long a duration"))
}

/// The longest duration accepted: a century is beyond any useful interval
/// and well inside what a clock can add (`Instant + Duration` panics past
/// the clock's range, and the watcher adds its rescan interval to now).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86400);

/// Seconds as a duration, if it is one ferry can wait for.
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
}

/// Units are binary (K = 1024), as in ossutil and rclone.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s)
        .ok_or_else(|| format!("'{s}' is not a size (examples: 8M, 64MiB, 1G)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M, G or T)")),
    };
    let bytes = (n * mult as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("'{s}' is too large a size"));
    }
    Ok(bytes as u64)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outsized_input_is_an_error_not_a_panic() {
        assert!(parse_duration("99999999999999999999d", "s").is_err());
        assert!(parse_duration("1e999", "s").is_err());
        // Fits a Duration, but no clock can add it to now.
        assert!(parse_duration("9300000000000000000", "s").is_err());
        assert!(parse_duration("36600d", "s").is_err());
        assert_eq!(
            parse_duration("36500d", "s"),
            Ok(Duration::from_secs(36500 * 86400))
        );
        assert!(parse_size("99999999999999999999999T").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(200 << 20), "200.0 MiB");
    }
}
