//! `TokenDigest`: the SHA-256 of a token's full text. The only form of a
//! token that Latch stores or broadcasts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token_text: &str) -> Self {
        Self(Sha256::digest(token_text.as_bytes()).into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison: use this, not `==`, wherever one side came
    /// from a caller.
    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", &self.to_hex()[..12])
    }
}

impl Serialize for TokenDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            // A fixed-size array: no length, and no allocation to decode.
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return <[u8; 32]>::deserialize(deserializer).map(Self);
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

/// A digest's 64 hex digits, read where the input holds them.
struct HexVisitor;

impl serde::de::Visitor<'_> for HexVisitor {
    type Value = TokenDigest;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a token digest: 64 hex digits")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TokenDigest, E> {
        if text.len() != 64 {
            return Err(E::custom("token digest must be 32 bytes"));
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(high), Some(low)) => *byte = high << 4 | low,
                // The text is not echoed: it may be a secret sent in the wrong field.
                _ => return Err(E::custom("token digest must be 64 hex digits")),
            }
        }
        Ok(TokenDigest(digest))
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn read(text: &str) -> Result<TokenDigest, String> {
        serde_json::from_value(serde_json::Value::String(text.into())).map_err(|e| e.to_string())
    }

    proptest! {
        #[test]
        fn a_digest_reads_back_from_its_hex_in_either_case(bytes in any::<[u8; 32]>()) {
            let digest = TokenDigest(bytes);
            prop_assert_eq!(read(&digest.to_hex()), Ok(digest));
            prop_assert_eq!(read(&digest.to_hex().to_uppercase()), Ok(digest));
        }
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused_without_echoing_it() {
        let hex = "ab".repeat(32);
        for text in [&hex[..62], &hex[..63], &format!("{hex}00"), &format!("{}g", &hex[..63]), &format!("{}é", &hex[..62])] {
            let error = read(text).expect_err(text);
            assert!(!error.contains(&hex[..20]), "{error}");
        }
    }
}
