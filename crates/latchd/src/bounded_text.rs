//! `bounded`: client-controlled text (paths, verifier names, …) cut to a
//! fixed size before latchd stores or logs it, marked so nobody mistakes
//! the cut text for the whole.

use std::borrow::Cow;

/// The most bytes of a request path kept in an activity record or a log.
pub const MAX_PATH_BYTES: usize = 256;
/// The most bytes of a short client-supplied name (a verifier's name, a
/// method) kept.
pub const MAX_NAME_BYTES: usize = 128;

/// `text` without control characters, cut to `max` bytes on a character
/// boundary (no marker): free text a reporter or verifier sends that goes
/// into an event, where it must never break a log line.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// `text` when it fits in `max` bytes; else its first bytes (cut at a
/// character boundary) followed by `…[truncated, N bytes]`, N the length
/// of the whole. The marker comes on top of `max`.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!(
        "{}…[truncated, {} bytes]",
        &text[..cut],
        text.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(bounded("/v1/accounts", 256), "/v1/accounts");
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let long = "a".repeat(40_000);
        let cut = bounded(&long, 256);
        assert!(cut.starts_with(&"a".repeat(256)));
        assert!(cut.ends_with("…[truncated, 40000 bytes]"));
        assert!(cut.len() < 300);
    }

    #[test]
    fn cuts_at_a_character_boundary() {
        let text = "é".repeat(200); // 400 bytes
        let cut = bounded(&text, 255);
        assert!(cut.starts_with(&"é".repeat(127)));
        assert!(cut.contains("[truncated, 400 bytes]"));
    }
}
