//! Text other devices chose (names, messages, reasons, file names), made safe for a terminal, and
//! how a device is named on it: a contact by the name the user gave it, a stranger by its claim.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1, line and paragraph separators) and every
/// bidirectional formatting character written as a visible escape (`\n`, `\u{1b}`, `\u{202e}`):
/// text from a peer cannot move the cursor, recolour the terminal, fake a line of output or
/// reorder what is shown around it. JSON output never goes through this (it stays exact).
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A device as the terminal shows it: a contact by its given name, a stranger by the name it
/// claims with a mark (`carol? (not a contact)`).
pub fn who(contact: Option<&str>, claim: &str) -> String {
    match contact {
        Some(name) => clean(name).into_owned(),
        None if claim.is_empty() => "an unnamed device (not a contact)".into(),
        None => format!("{}? (not a contact)", clean(claim)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_not_obeyed() {
        assert!(matches!(
            clean("Ana's laptop"),
            Cow::Borrowed("Ana's laptop")
        ));
        assert_eq!(clean("café ☕ 写真"), "café ☕ 写真", "other text is kept");
        assert_eq!(clean("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(clean("\u{1b}[31mred\u{7}"), "\\u{1b}[31mred\\u{7}");
        assert_eq!(clean("\u{9b}2J\u{7f}"), "\\u{9b}2J\\u{7f}", "C1 and DEL");
        // "invoice_gpj.exe" shown reversed as "invoice_exe.jpg" without the escape.
        assert_eq!(clean("invoice_\u{202e}gpj.exe"), "invoice_\\u{202e}gpj.exe");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{2066}',
        ] {
            let s = format!("x{c}y");
            let shown = clean(&s);
            assert!(!shown.contains(c) && shown.starts_with("x\\u{"), "{shown}");
        }
    }

    #[test]
    fn a_stranger_is_shown_by_its_claim_with_a_mark() {
        assert_eq!(who(Some("Carol"), "carol-phone"), "Carol");
        assert_eq!(who(None, "carol"), "carol? (not a contact)");
        assert_eq!(who(None, "ev\u{202e}il"), "ev\\u{202e}il? (not a contact)");
        assert_eq!(who(None, ""), "an unnamed device (not a contact)");
    }
}
