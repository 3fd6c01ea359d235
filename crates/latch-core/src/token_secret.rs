//! The token format: `latch_` + 32 base62 characters from a CSPRNG + 6
//! base62 characters of CRC32 over everything before them (44 in all).
//!
//! Shape and checksum are checked before any lookup, so a typo or a
//! truncated paste is rejected without touching state, and secret scanners
//! can recognise a Latch token with no false positives. A `TokenSecret`
//! never prints itself: `Debug` and `Display` are redacted.

use std::fmt;

use rand::Rng;
use thiserror::Error;

use crate::token_digest::TokenDigest;

pub const PREFIX: &str = "latch_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token in the holder's hands. Exists only in the issue response and in
/// the code checking it; never stored, logged or broadcast.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

/// Why a string is not a Latch token. Never carries the string itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenFormatError {
    #[error("a Latch token is {TOKEN_LEN} characters long")]
    Length,
    #[error("a Latch token starts with {PREFIX:?}")]
    Prefix,
    #[error("a Latch token has only base62 characters after its prefix")]
    Alphabet,
    #[error("the token's checksum does not match: it was mistyped or altered")]
    Checksum,
}

impl TokenSecret {
    /// A fresh token from a cryptographically secure generator.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut text = String::with_capacity(TOKEN_LEN);
        text.push_str(PREFIX);
        for _ in 0..RANDOM_LEN {
            text.push(BASE62[rng.random_range(0..BASE62.len())] as char);
        }
        let checksum = crc32fast::hash(text.as_bytes());
        push_base62_fixed(&mut text, checksum);
        Self(text)
    }

    /// Checks shape and checksum. The error never includes the input.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        check(text)?;
        Ok(Self(text.to_owned()))
    }

    /// The text, for the one place it belongs: the issue response.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

/// Which bytes may appear in a token's body.
const ALPHANUMERIC: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    table
};

/// Checks a candidate token without copying it: what a verifier runs before
/// any lookup.
pub fn check(text: &str) -> Result<(), TokenFormatError> {
    let bytes = text.as_bytes();
    if bytes.len() != TOKEN_LEN {
        return Err(TokenFormatError::Length);
    }
    if !text.starts_with(PREFIX) {
        return Err(TokenFormatError::Prefix);
    }
    let body = &bytes[PREFIX.len()..];
    // Branch-free over the fixed-length body (the hot path of every check).
    if body
        .iter()
        .fold(false, |bad, &b| bad | !ALPHANUMERIC[b as usize])
    {
        return Err(TokenFormatError::Alphabet);
    }
    let (signed, checksum) = bytes.split_at(TOKEN_LEN - CHECKSUM_LEN);
    let expected = crc32fast::hash(signed);
    if decode_base62(checksum) != u64::from(expected) {
        return Err(TokenFormatError::Checksum);
    }
    Ok(())
}

fn push_base62_fixed(text: &mut String, value: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    let mut rest = u64::from(value);
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    text.extend(digits.iter().map(|&b| b as char));
}

fn decode_base62(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &d| {
        let value = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            _ => d - b'a' + 36,
        };
        acc * 62 + u64::from(value)
    })
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = TokenSecret::generate(&mut rand::rng());
        assert_eq!(token.expose().len(), 44);
        assert!(token.expose().starts_with("latch_"));
        assert_eq!(TokenSecret::parse(token.expose()), Ok(token.clone()));
        assert_eq!(format!("{token:?}"), "TokenSecret(<redacted>)");
    }

    #[test]
    fn rejections_name_the_fault_not_the_token() {
        let token = TokenSecret::generate(&mut rand::rng());
        let text = token.expose();
        assert_eq!(
            TokenSecret::parse(&text[..43]),
            Err(TokenFormatError::Length)
        );
        assert_eq!(
            TokenSecret::parse(&format!("xatch_{}", &text[6..])),
            Err(TokenFormatError::Prefix)
        );
        assert_eq!(
            TokenSecret::parse(&format!("{}-{}", &text[..10], &text[11..])),
            Err(TokenFormatError::Alphabet)
        );
        let err = TokenSecret::parse(&text[..43]).unwrap_err().to_string();
        assert!(!err.contains(&text[6..20]));
    }
}
