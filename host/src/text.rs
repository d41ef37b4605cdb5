//! Text from plugins on its way to a terminal or a log.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character but newline and tab written as a
/// Rust escape (`\u{1b}`), so that what a plugin says (its output, the names
/// in its backtrace, its manifest) cannot move a cursor, clear a screen or
/// rewrite a line of a log. Unchanged, and not copied, when there are none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_escaped(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape_controls("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\rc\u{7f}\u{9b}"),
            "a\\u{1b}[2Jb\\u{d}c\\u{7f}\\u{9b}"
        );
    }
}
