//! Mapping between keys and local paths. Downloads never write outside
//! their destination: a key that would escape it is refused, not cleaned up.

use std::path::{Component, PathBuf};

/// The relative path a key (already stripped of the listing prefix) maps to,
/// or why it cannot be written safely.
pub fn safe_relative_path(rel_key: &str) -> Result<PathBuf, String> {
    if rel_key.is_empty() {
        return Err("empty key".into());
    }
    if rel_key.starts_with('/') {
        return Err("absolute key".into());
    }
    if rel_key.contains('\\') {
        return Err("backslash in key".into());
    }
    if rel_key.contains('\0') {
        return Err("NUL in key".into());
    }
    let mut out = PathBuf::new();
    for seg in rel_key.split('/') {
        match seg {
            "" => return Err("empty path segment ('//')".into()),
            "." | ".." => return Err(format!("'{seg}' path segment")),
            s => out.push(s),
        }
    }
    // Belt and braces: the pushed components must all be plain names.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("not a plain relative path".into());
    }
    Ok(out)
}

/// Whether a file name is one of ferry's own download temporaries
/// (`.NAME.ferry-TAG.part`): the walker leaves them out, so they are never
/// uploaded and never taken for extra files by `--delete`.
pub fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // Bytes, not text: a long name is cut short for its temporary, and the
    // cut may fall inside a character.
    let n = name.as_bytes();
    n.starts_with(b".")
        && n.ends_with(b".part")
        && n.len() > ".x.ferry-.part".len()
        && n[1..n.len() - ".part".len()]
            .windows(".ferry-".len())
            .any(|w| w == b".ferry-")
}

/// The last segment of a key, for `cp s3://b/dir/file .`.
pub fn key_basename(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escaping_keys() {
        for bad in [
            "../x",
            "a/../../etc/x",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "./a",
            "a/.",
            "",
            "a/",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            safe_relative_path("a/b c/d.txt").unwrap(),
            PathBuf::from("a/b c/d.txt")
        );
        assert_eq!(
            safe_relative_path("..a/b..").unwrap(),
            PathBuf::from("..a/b..")
        );
    }

    #[test]
    fn temp_names_are_recognised() {
        let t = crate::transfer::dest::temp_name(std::ffi::OsStr::new("f.bin"), "abc123");
        assert!(is_temp_name(&t));
        for plain in [
            "f.part",
            ".f.part",
            "f.ferry-x.part",
            ".hidden",
            "x.ferry-y.partial",
        ] {
            assert!(!is_temp_name(std::ffi::OsStr::new(plain)), "{plain}");
        }
    }

    #[test]
    fn key_basenames() {
        assert_eq!(key_basename("a/b/c.txt"), "c.txt");
        assert_eq!(key_basename("a/b/"), "b");
    }
}
