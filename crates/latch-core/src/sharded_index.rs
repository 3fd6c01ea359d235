//! `ShardedIndex`: a map from random keys (token digests, token and
//! account ids) to small values (a token's slot, an account's slots),
//! split into `SHARDS` hash maps by bits of each key's hash.
//!
//! One map of millions of entries is hundreds of megabytes, and every
//! insert into it lands on a page of its own: a cache and a TLB miss an
//! entry when a checkpoint's millions of tokens are indexed, and a rehash
//! of the whole table whenever it doubles (a pause of its whole size in
//! latchd's writer). Split, a bulk build first deals the entries out to
//! their shards in order (a thousand streams of appends), then fills one
//! shard at a time while it fits in the cache; and a shard that grows
//! rehashes a thousandth of the entries. A lookup costs one more
//! indexing of an array.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};

use crate::random_key_hasher::RandomKeys;

/// How many maps an index is split into. (Unit tests use a few, so that
/// shards hold several keys each.)
const SHARDS: usize = if cfg!(test) { 8 } else { 1024 };

#[derive(Debug, Clone)]
pub(crate) struct ShardedIndex<K, V> {
    shards: Vec<HashMap<K, V, RandomKeys>>,
    len: usize,
}

impl<K, V> Default for ShardedIndex<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            len: 0,
        }
    }
}

/// The shard a key belongs in: bits of its hash that a shard's own table
/// does not look at (it takes its low bits for the bucket and its top
/// seven for the tag), so the keys of one shard still spread over it.
fn shard_of<K: Hash>(key: &K) -> usize {
    (RandomKeys::default().hash_one(key) >> 32) as usize % SHARDS
}

impl<K: Hash + Eq, V> ShardedIndex<K, V> {
    /// An index of `entries` (about `expected` of them), built shard by
    /// shard; the first key found twice, if any.
    pub(crate) fn build(expected: usize, entries: impl Iterator<Item = (K, V)>) -> Result<Self, K> {
        let mut index = Self {
            shards: Vec::with_capacity(SHARDS),
            len: 0,
        };
        for entries in deal(expected, entries) {
            let mut shard = HashMap::with_capacity_and_hasher(entries.len(), RandomKeys::default());
            for (key, value) in entries {
                match shard.entry(key) {
                    Entry::Occupied(taken) => return Err(taken.remove_entry().0),
                    Entry::Vacant(free) => {
                        free.insert(value);
                    }
                }
            }
            index.len += shard.len();
            index.shards.push(shard);
        }
        Ok(index)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards[shard_of(key)].get(key)
    }

    /// The value of `key`, added as `V::default()` if it was not there.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        match self.shards[shard_of(&key)].entry(key) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(free) => {
                self.len += 1;
                free.insert(V::default())
            }
        }
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.shards[shard_of(key)].contains_key(key)
    }

    /// Adds `key` unless it is there; whether it did.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> bool {
        match self.shards[shard_of(&key)].entry(key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                free.insert(value);
                self.len += 1;
                true
            }
        }
    }
}

/// `entries` (about `expected` of them) dealt out to their shards, each
/// shard's in the order given.
fn deal<K: Hash, T>(expected: usize, entries: impl Iterator<Item = (K, T)>) -> Vec<Vec<(K, T)>> {
    // A quarter over the even share: no shard regrows its list for the
    // spread of random keys over a thousand shards.
    let share = expected / SHARDS + expected / SHARDS / 4 + 8;
    let mut dealt: Vec<Vec<(K, T)>> = (0..SHARDS).map(|_| Vec::with_capacity(share)).collect();
    for (key, value) in entries {
        dealt[shard_of(&key)].push((key, value));
    }
    dealt
}

/// (For tests: `TokenTable`'s equality is its tokens', the lookups follow.)
#[cfg(test)]
impl<K: Hash + Eq, V: PartialEq> PartialEq for ShardedIndex<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.shards == other.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_however_the_index_was_made() {
        let built = ShardedIndex::build(100, (0..1000u64).map(|n| (n, n * 2))).unwrap();
        let mut grown = ShardedIndex::default();
        for n in 0..1000u64 {
            assert!(grown.insert_new(n, n * 2));
        }
        assert!(!grown.insert_new(7, 0), "a key already there is not replaced");
        assert_eq!(built.len(), 1000);
        assert_eq!(grown.len(), 1000);
        assert_eq!(built, grown);
        for n in 0..1000u64 {
            assert_eq!(built.get(&n), Some(&(n * 2)));
            assert!(grown.contains_key(&n));
        }
        assert_eq!(built.get(&1000), None);
        // Every shard holds some: the keys are spread.
        assert!(built.shards.iter().all(|shard| shard.len() > 1000 / SHARDS / 2));
    }

    #[test]
    fn a_key_given_twice_to_a_build_is_named() {
        let entries = [(1u64, 'a'), (2, 'b'), (1, 'c')];
        assert_eq!(ShardedIndex::build(3, entries.into_iter()).err(), Some(1));
    }

    #[test]
    fn get_or_default_adds_a_key_once() {
        let mut grown: ShardedIndex<u64, Vec<u32>> = ShardedIndex::default();
        for n in 0..1000u32 {
            grown.get_or_default(u64::from(n % 37)).push(n);
        }
        assert_eq!(grown.len(), 37);
        assert_eq!(grown.get(&3).map(Vec::len), Some(27));
    }
}
