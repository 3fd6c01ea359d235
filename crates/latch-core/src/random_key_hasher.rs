//! `RandomKeys`: hashing for map keys whose bytes are random already:
//! token digests (SHA-256 outputs) and the ids Latch generates (UUIDv7).
//! Each 8-byte word is folded in with one 64×64→128-bit multiply, where
//! SipHash runs its rounds over every byte: SipHash was a fifth of what
//! folding a `token.issued` cost (four lookups and inserts, each over
//! 16–32 bytes).
//!
//! The multiply is not there for secrecy but for spread: ids made in one
//! millisecond share their timestamp and differ in a counter and a few
//! random bytes, all in places a plain XOR of the words would leave out of
//! the bits a table looks at (its test shows it did).
//!
//! Not for keys anyone else picks (names, texts): only their randomness
//! spreads them over the table. Inserted keys are always Latch's own
//! (latchd generates every id and every token's secret); a caller who
//! looks up keys of its choice cannot make the entries collide.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A `HashMap` hasher for random keys.
pub(crate) type RandomKeys = BuildHasherDefault<RandomKeyHasher>;

pub(crate) struct RandomKeyHasher(u64);

impl Default for RandomKeyHasher {
    /// Starts from a value drawn once per process: a data directory or
    /// checkpoint crafted with colliding keys cannot aim at a table whose
    /// hashes it cannot compute.
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        Self(*SEED.get_or_init(rand::random))
    }
}

/// An odd constant with its bits spread (2⁶⁴ over the golden ratio).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The two halves of the 128-bit product XORed: every input bit reaches
/// both the low bits and the high ones.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for RandomKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for word in bytes.chunks(8) {
            let mut padded = [0u8; 8];
            padded[..word.len()].copy_from_slice(word);
            self.0 = folded_multiply(self.0 ^ u64::from_le_bytes(padded), SPREAD);
        }
    }

    /// The length of a fixed-size key: the same for every key.
    fn write_usize(&mut self, _: usize) {}
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;
    use crate::id::TokenId;
    use crate::token_digest::TokenDigest;

    /// Ids made in one millisecond share their first six bytes: the
    /// hashes must still differ where a table looks (its low bits for the
    /// bucket, its top seven for the tag).
    #[test]
    fn ids_made_together_and_digests_spread_over_low_and_high_bits() {
        let hashes: Vec<u64> = (0..4096).map(|_| RandomKeys::default().hash_one(TokenId::new())).collect();
        let digests: Vec<u64> = (0..4096u32)
            .map(|n| RandomKeys::default().hash_one(TokenDigest::of(&n.to_string())))
            .collect();
        for spread in [hashes, digests] {
            assert_eq!(spread.iter().collect::<HashSet<_>>().len(), 4096, "no two alike");
            let low: HashSet<u64> = spread.iter().map(|h| h & 0xfff).collect();
            let high: HashSet<u64> = spread.iter().map(|h| h >> 57).collect();
            assert!(low.len() > 2400, "{} of 4096 low values", low.len());
            assert_eq!(high.len(), 128, "every tag");
        }
    }
}
