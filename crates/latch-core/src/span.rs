//! `Span`: a duration as operators write it: `30s`, `15m`, `12h`, `90d`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The longest span accepted: 100 years. Keeps `now + span` far from
/// overflow and catches typos like `90000d`.
const MAX_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "duration {0:?} must be a positive whole number followed by s, m, h or d (e.g. 30s, 15m, 12h, 90d), at most 36500d"
)]
pub struct SpanError(pub String);

impl Span {
    pub const fn from_seconds(seconds: u64) -> Self {
        Self { seconds }
    }
    pub const fn minutes(n: u64) -> Self {
        Self::from_seconds(n * 60)
    }
    pub const fn hours(n: u64) -> Self {
        Self::from_seconds(n * 3600)
    }
    pub const fn days(n: u64) -> Self {
        Self::from_seconds(n * 86_400)
    }
    pub const fn as_seconds(self) -> u64 {
        self.seconds
    }
    pub fn to_chrono(self) -> chrono::TimeDelta {
        // MAX_SECONDS fits comfortably in i64 seconds.
        chrono::TimeDelta::seconds(self.seconds as i64)
    }

    pub fn parse(text: &str) -> Result<Self, SpanError> {
        let bad = || SpanError(text.to_owned());
        // The unit is the last character, which need not be one byte: split
        // at its boundary, never in the middle of a character.
        let unit_at = text.char_indices().last().ok_or_else(bad)?.0;
        let (digits, unit) = text.split_at(unit_at);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let multiplier = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let count: u64 = digits.parse().map_err(|_| bad())?;
        let seconds = count.checked_mul(multiplier).ok_or_else(bad)?;
        if seconds == 0 || seconds > MAX_SECONDS {
            return Err(bad());
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides the span exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        match () {
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Span({self})")
    }
}

impl FromStr for Span {
    type Err = SpanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_written_forms() {
        for (text, seconds) in [
            ("30s", 30),
            ("15m", 900),
            ("12h", 43_200),
            ("90d", 7_776_000),
        ] {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.as_seconds(), seconds);
            assert_eq!(span.to_string(), text);
        }
        assert_eq!(Span::parse("120s").unwrap().to_string(), "2m");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "s",
            "0s",
            "-5m",
            "5",
            "5w",
            "1h30m",
            " 5m",
            "5M",
            "36501d",
            "99999999999999999999s",
            // A fuzzer's find: a multi-byte last character once panicked.
            "\u{80}",
            "5\u{80}",
            "(\u{1a7b3}J\u{4ac18}",
            "5é",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

crate::serde_as_text::serde_as_text!(Span);
