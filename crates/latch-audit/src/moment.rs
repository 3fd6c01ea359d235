//! `Moment`: when an investigation looks at the state: a time, or a
//! position in the log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use latch_core::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Every event recorded at or before this time.
    Time(DateTime<Utc>),
    /// Every event up to and including this position.
    Position(Position),
}

impl FromStr for Moment {
    type Err = String;

    /// `2026-11-03T14:02:00Z` (RFC 3339, any offset) or a position: `1042`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u64>() {
                Ok(0) => Err("positions start at 1".into()),
                Ok(p) => Ok(Moment::Position(Position::new(p))),
                Err(_) => Err(format!("position {text} is too large")),
            };
        }
        DateTime::parse_from_rfc3339(text)
            .map(|at| Moment::Time(at.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{text:?} is neither an RFC 3339 time (e.g. 2026-11-03T14:02:00Z) nor a log position (e.g. 1042)"
                )
            })
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Time(at) => f.write_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Moment::Position(position) => write!(f, "{position}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_a_time_or_a_position_and_nothing_else() {
        assert_eq!(
            "1042".parse::<Moment>(),
            Ok(Moment::Position(Position::new(1042)))
        );
        let at: Moment = "2026-11-03T15:02:00+01:00".parse().unwrap();
        assert_eq!(at.to_string(), "2026-11-03T14:02:00Z");
        let error = "last tuesday".parse::<Moment>().unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
        assert!("99999999999999999999999".parse::<Moment>().is_err());
        assert!("0".parse::<Moment>().is_err());
    }
}
