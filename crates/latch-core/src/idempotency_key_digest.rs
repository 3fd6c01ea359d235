//! `IdempotencyKeyDigest`: the SHA-256 of a caller's `Idempotency-Key`.
//!
//! A key is a capability: whoever presents it again may get the original
//! answer (for a token issue, its secret). So the log, the stream and the
//! events API record only this digest, never the key. It still lets an
//! investigator tie the events of one request and its retries together.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct IdempotencyKeyDigest([u8; 32]);

impl IdempotencyKeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the 64 hex digits `to_hex` writes.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for IdempotencyKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKeyDigest({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for IdempotencyKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for IdempotencyKeyDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for IdempotencyKeyDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).ok_or_else(|| {
            serde::de::Error::custom("an idempotency key digest is 64 hex digits (SHA-256)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_round_trips_as_hex_and_never_shows_the_key() {
        let digest = IdempotencyKeyDigest::of("deploy-42");
        let json = serde_json::to_string(&digest).unwrap();
        assert!(!json.contains("deploy-42"));
        assert_eq!(json.len(), 66);
        assert_eq!(
            serde_json::from_str::<IdempotencyKeyDigest>(&json).unwrap(),
            digest
        );
        assert!(serde_json::from_str::<IdempotencyKeyDigest>("\"deploy-42\"").is_err());
    }
}
