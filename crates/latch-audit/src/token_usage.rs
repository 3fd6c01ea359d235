//! `TokenUsage`: when, from where and how often a token was accepted, and
//! who said so (latchd itself, or the verifier that reported the last use),
//! as latchd keeps it in the store's `usage` column family (one JSON record
//! a token). Usage informs people (stale tokens, leak investigations); it
//! never decides access.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use latch_core::TokenId;
use latch_store::{EventStore, StoreError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub first_used_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub last_used_from: Option<IpAddr>,
    pub count: u64,
    /// The verifier that reported the last use, as it names itself;
    /// `None` when latchd itself accepted the token (or the record is
    /// older than reporters were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reported_by: Option<ReporterName>,
}

impl TokenUsage {
    /// Both records as one: the earliest first use, the latest last use
    /// (and where from, and who reported it), the counts added.
    pub fn merge(self, other: TokenUsage) -> TokenUsage {
        let (last_used_at, last_used_from, last_reported_by) =
            if other.last_used_at >= self.last_used_at {
                (
                    other.last_used_at,
                    other.last_used_from.or(self.last_used_from),
                    other.last_reported_by,
                )
            } else {
                (
                    self.last_used_at,
                    self.last_used_from.or(other.last_used_from),
                    self.last_reported_by,
                )
            };
        TokenUsage {
            first_used_at: self.first_used_at.min(other.first_used_at),
            last_used_at,
            last_used_from,
            count: self.count.saturating_add(other.count),
            last_reported_by,
        }
    }

    /// The token's stored record, if it was ever used (an unreadable record
    /// counts as none: usage is informative).
    pub fn stored(store: &EventStore, token_id: TokenId) -> Result<Option<TokenUsage>, StoreError> {
        let Some(bytes) = store.usage(*token_id.as_uuid().as_bytes())? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Writes the token's record (replacing the stored one).
    pub fn store(&self, store: &EventStore, token_id: TokenId) -> Result<(), StoreError> {
        store.put_usage(
            *token_id.as_uuid().as_bytes(),
            &serde_json::to_vec(self).expect("usage records serialise"),
        )
    }
}

/// A verifier's name as it reports it, kept to `ReporterName::MAX_BYTES`
/// (cut at a character boundary): a fixed-size value, so usage records
/// stay `Copy` and a verifier cannot make them large.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReporterName {
    len: u8,
    bytes: [u8; ReporterName::MAX_BYTES],
}

impl ReporterName {
    pub const MAX_BYTES: usize = 64;

    /// The name, cut to `MAX_BYTES`.
    pub fn new(name: &str) -> Self {
        let mut cut = name.len().min(Self::MAX_BYTES);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut bytes = [0u8; Self::MAX_BYTES];
        bytes[..cut].copy_from_slice(&name.as_bytes()[..cut]);
        Self {
            len: cut as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Built from a `&str` cut at a character boundary.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for ReporterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ReporterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReporterName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReporterName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(ReporterName::new(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporter_names_are_cut_to_a_fixed_size() {
        let long = "v".repeat(1000);
        assert_eq!(
            ReporterName::new(&long).as_str().len(),
            ReporterName::MAX_BYTES
        );
        let accents = "é".repeat(40); // 80 bytes
        assert_eq!(ReporterName::new(&accents).as_str(), "é".repeat(32));
        assert_eq!(ReporterName::new("billing/7").to_string(), "billing/7");
    }

    #[test]
    fn the_last_use_brings_its_reporter() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let latchd = TokenUsage {
            first_used_at: at(10),
            last_used_at: at(20),
            last_used_from: None,
            count: 1,
            last_reported_by: None,
        };
        let verifier = TokenUsage {
            first_used_at: at(5),
            last_used_at: at(30),
            last_used_from: None,
            count: u64::MAX,
            last_reported_by: Some(ReporterName::new("billing/7")),
        };
        let merged = latchd.merge(verifier);
        assert_eq!(merged.last_reported_by.unwrap().as_str(), "billing/7");
        assert_eq!(merged.first_used_at, at(5));
        assert_eq!(merged.count, u64::MAX);
        let json = serde_json::to_string(&merged).unwrap();
        let back: TokenUsage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, merged);
        // Records written before reporters were kept still read.
        let old = r#"{"first_used_at":"2026-01-01T00:00:00Z","last_used_at":"2026-01-01T00:00:00Z","last_used_from":null,"count":3}"#;
        let old: TokenUsage = serde_json::from_str(old).unwrap();
        assert_eq!(old.last_reported_by, None);
    }
}
