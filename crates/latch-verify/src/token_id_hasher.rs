//! `TokenIdHasher`: hashes a `TokenId` (a UUIDv7) by its last 8 bytes,
//! which are random, instead of running SipHash over all 16 on every
//! accepted check. The map it serves (usage counts) holds only ids of
//! tokens latchd issued, so there is nothing for a caller to flood.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct TokenIdHasher(u64);

impl Hasher for TokenIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(tail) = bytes.last_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*tail);
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
}

pub type BuildTokenIdHasher = BuildHasherDefault<TokenIdHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use latch_core::TokenId;

    use super::*;

    #[test]
    fn distinct_ids_spread() {
        let build = BuildTokenIdHasher::default();
        let hashes: std::collections::HashSet<u64> =
            (0..1000).map(|_| build.hash_one(TokenId::new())).collect();
        assert_eq!(hashes.len(), 1000);
    }
}
