//! `FoundToken`: a token text someone reported, turned into what `decide`
//! sees (`LeakReport`: its digest, never the text) once its shape and
//! checksum are checked. The text is dropped here; it reaches no log.

use latch_core::{LeakReport, MAX_LEAK_LOCATION, MAX_LEAK_SOURCE, TokenSecret};
use sha2::{Digest, Sha256};

/// A reported token, as much as a reporter may learn of it.
pub struct FoundToken {
    /// SHA-256 of the reported text, hex (GitHub's `token_hash`).
    pub text_sha256: String,
    /// `None`: not a Latch token (wrong shape or checksum) — GitHub's
    /// `false_positive`.
    pub report: Option<LeakReport>,
}

impl FoundToken {
    pub fn new(text: &str, source: &str, location: &str) -> Self {
        let text_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let report = TokenSecret::parse(text.trim()).ok().map(|secret| LeakReport {
            digest: secret.digest(),
            source: printable(source, MAX_LEAK_SOURCE),
            location: printable(location, MAX_LEAK_LOCATION),
        });
        FoundToken { text_sha256, report }
    }
}

/// `text` without anything shaped like a token (`latch_…`) or control
/// characters, cut to `max` bytes: a reporter's free text never carries a
/// secret into the log, nor breaks a log line.
fn printable(text: &str, max: usize) -> String {
    crate::bounded_text::printable(&redact_tokens(text), max)
}

/// `latch_` and the alphanumerics after it become `latch_[redacted]`.
fn redact_tokens(text: &str) -> String {
    let prefix = latch_core::TOKEN_PREFIX;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at]);
        out.push_str(prefix);
        out.push_str("[redacted]");
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_token_is_reported_and_free_text_is_cut_and_cleaned() {
        let secret = TokenSecret::generate(&mut rand::rng());
        let found = FoundToken::new(secret.expose(), "github", &format!("a\nb{}", "x".repeat(600)));
        let report = found.report.expect("well formed");
        assert_eq!(report.digest, secret.digest());
        assert_eq!(report.location.len(), MAX_LEAK_LOCATION);
        assert!(report.location.starts_with("abx"));
        let mut wrong = secret.expose().to_owned();
        wrong.replace_range(10..11, if &wrong[10..11] == "a" { "b" } else { "a" });
        assert!(FoundToken::new(&wrong, "github", "").report.is_none());
        assert_eq!(FoundToken::new("abc", "github", "").text_sha256, hex::encode(Sha256::digest(b"abc")));
        let other = TokenSecret::generate(&mut rand::rng());
        let found = FoundToken::new(secret.expose(), "github", &format!("next to {} in .env", other.expose()));
        assert_eq!(found.report.unwrap().location, "next to latch_[redacted] in .env");
    }
}
