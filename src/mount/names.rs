//! Keys and file names. A key maps to a path only if every segment is a
//! name the kernel accepts; keys that do not (`a//b`, `./x`, 300-byte
//! segments) are left out of listings rather than mangled.

/// Linux's NAME_MAX.
pub const NAME_MAX: usize = 255;

/// S3 and OSS both cap keys at 1024 bytes.
pub const KEY_MAX: usize = 1024;

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= NAME_MAX
        && !name.contains('/')
        && !name.contains('\0')
}

/// The mount's root prefix: empty (the whole bucket) or ending in `/`.
pub fn normalize_prefix(p: &str) -> String {
    let p = p.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// The key of a file named `name` in the directory whose prefix is `dir`.
pub fn file_key(dir: &str, name: &str) -> String {
    format!("{dir}{name}")
}

/// The prefix (and marker key) of a subdirectory.
pub fn dir_key(dir: &str, name: &str) -> String {
    format!("{dir}{name}/")
}

/// The name an object of a listing under `dir` shows as, if it is a plain
/// file directly inside it (not the directory's own marker).
pub fn object_name<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(dir)?;
    valid_name(rest).then_some(rest)
}

/// The name a common prefix of a listing under `dir` shows as.
pub fn prefix_name<'a>(dir: &str, prefix: &'a str) -> Option<&'a str> {
    let rest = prefix.strip_prefix(dir)?.strip_suffix('/')?;
    valid_name(rest).then_some(rest)
}

/// The local file name under which the data of `key` is kept for the
/// user to inspect: `id.` followed by the key with `/` shown as `%`. A key
/// may be four times longer than a file name may be, so only its end (the
/// most telling part) is kept, cut on a character boundary, such that the
/// name plus `extra` more bytes (a suffix the caller adds) fit in
/// [`NAME_MAX`]. A shortened key starts with `…`.
pub fn set_aside_name(id: &str, key: &str, extra: usize) -> String {
    let safe: String = key
        .chars()
        .map(|c| if c == '/' { '%' } else { c })
        .collect();
    let room = NAME_MAX.saturating_sub(id.len() + 1 + extra);
    if safe.len() <= room {
        return format!("{id}.{safe}");
    }
    let room = room.saturating_sub('…'.len_utf8());
    let mut start = safe.len() - room;
    while !safe.is_char_boundary(start) {
        start += 1;
    }
    format!("{id}.…{}", &safe[start..])
}

/// Splits a key below the mount prefix into directory names and a file
/// name, or `None` if some segment cannot be a name.
pub fn split_relative(rel: &str) -> Option<(Vec<&str>, &str)> {
    let mut segs: Vec<&str> = rel.split('/').collect();
    let file = segs.pop()?;
    if !valid_name(file) || !segs.iter().all(|s| valid_name(s)) {
        return None;
    }
    Some((segs, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("a.txt"));
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(256)));
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/data"), "data/");
        assert_eq!(normalize_prefix("data/"), "data/");
        assert_eq!(object_name("d/", "d/f"), Some("f"));
        assert_eq!(object_name("d/", "d/"), None, "the marker is not an entry");
        assert_eq!(object_name("d/", "d/a/b"), None);
        assert_eq!(prefix_name("d/", "d/sub/"), Some("sub"));
        assert_eq!(prefix_name("d/", "d//"), None, "empty segments are hidden");
        assert_eq!(split_relative("a/b/c"), Some((vec!["a", "b"], "c")));
        assert_eq!(split_relative("a//c"), None);
        assert_eq!(split_relative("c"), Some((vec![], "c")));
    }

    #[test]
    fn set_aside_names_fit_any_key() {
        let id = "18f2c3a4b5d-0123456789abcdef";
        assert_eq!(
            set_aside_name(id, "m/d/f.txt", 5),
            format!("{id}.m%d%f.txt")
        );
        let longest = format!(
            "{}/{}",
            "d".repeat(KEY_MAX - NAME_MAX - 1),
            "n".repeat(NAME_MAX)
        );
        assert_eq!(longest.len(), KEY_MAX);
        let basename = format!("m/{}", "b".repeat(NAME_MAX));
        // Multi-byte characters wherever the cut may fall.
        let wide = format!("m/{}", "é".repeat(KEY_MAX / 2 - 1));
        let wider = format!("m/{}x", "日本".repeat(170));
        for key in [&longest, &basename, &wide, &wider] {
            for extra in [0, 5] {
                let name = set_aside_name(id, key, extra);
                assert!(name.len() + extra <= NAME_MAX, "{} bytes", name.len());
                assert!(name.starts_with(&format!("{id}.…")), "{name}");
                assert!(valid_name(&name));
                // The end of the key survives.
                let tail: String = key
                    .chars()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                assert!(name.ends_with(&tail), "{name}");
            }
        }
    }
}
