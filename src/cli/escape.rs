//! What a bucket says is not a terminal command: object keys (and the
//! messages that quote them) may hold escape sequences, carriage returns
//! or bidirectional overrides that would rewrite the user's screen or
//! disguise a name. Human output shows them as `\x1b`, `\r`, `\u{202e}`;
//! `--json` keeps the raw text (JSON escapes control characters itself).

use std::borrow::Cow;
use std::fmt::Write;

fn needs_escape(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates, and the marks
        // that make text read in another order than it is stored.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// `s` with every control and reordering character written out.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_reordering_characters_are_written_out() {
        assert_eq!(visible("a/b c.txt"), "a/b c.txt");
        assert!(matches!(visible("plain ünïcode"), Cow::Borrowed(_)));
        assert_eq!(visible("x\x1b[2Jy"), "x\\x1b[2Jy");
        assert_eq!(visible("a\rb\nc\td\x7f"), "a\\rb\\nc\\td\\x7f");
        assert_eq!(visible("\u{9b}31m"), "\\x9b31m");
        assert_eq!(visible("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
    }

    proptest::proptest! {
        #[test]
        fn output_never_holds_a_control_character(s in ".*") {
            let v = visible(&s);
            proptest::prop_assert!(!v.chars().any(needs_escape), "{v:?}");
        }
    }
}
