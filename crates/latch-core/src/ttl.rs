//! `Ttl`: how long a token is asked to live: a span, or `never` where
//! policy allows tokens that do not expire.

use std::fmt;
use std::str::FromStr;

use crate::span::{Span, SpanError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    For(Span),
    /// Only where the policy has `require_expiry = false` and no `max_ttl`.
    Never,
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ttl::For(span) => span.fmt(f),
            Ttl::Never => f.write_str("never"),
        }
    }
}

impl FromStr for Ttl {
    type Err = SpanError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "never" {
            Ok(Ttl::Never)
        } else {
            Span::parse(text).map(Ttl::For)
        }
    }
}

impl From<Span> for Ttl {
    fn from(span: Span) -> Self {
        Ttl::For(span)
    }
}

crate::serde_as_text::serde_as_text!(Ttl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spans_and_never() {
        assert_eq!("never".parse::<Ttl>(), Ok(Ttl::Never));
        assert_eq!("30d".parse::<Ttl>(), Ok(Ttl::For(Span::days(30))));
        assert!("forever".parse::<Ttl>().is_err());
        assert_eq!(Ttl::Never.to_string(), "never");
    }
}
