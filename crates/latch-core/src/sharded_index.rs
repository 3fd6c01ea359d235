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
//!
//! A bulk build also picks how many shards (at least `SHARDS`): a shard's
//! table is a power of two of buckets, so with a fixed number of shards
//! an index just past a power of two holds each table at under half full
//! (8M tokens in 1,024 shards: 16,384 buckets for 7,800 entries each).
//! Built, every shard is about three quarters full, whatever the count.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};

use crate::random_key_hasher::RandomKeys;

/// How many maps an index is split into. (Unit tests use a few, so that
/// shards hold several keys each.)
const SHARDS: usize = if cfg!(test) { 8 } else { 1024 };

/// How full a bulk build makes its shards' tables, in 80ths: hashbrown
/// grows a table at 7/8 (70/80), and the spread of random keys over the
/// shards needs room under that.
const FILL_80THS: usize = 61;

/// Bits of a key's hash (from bit 32) that choose its shard.
const SHARD_BITS: u32 = 24;

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

/// The shard of `shards` a key belongs in: bits 32 to 55 of its hash,
/// which a shard's own table does not look at (it takes the low bits for
/// the bucket and the top seven for the tag), so the keys of one shard
/// still spread over it; scaled to the count (not a modulo: any count).
fn shard_of<K: Hash>(key: &K, shards: usize) -> usize {
    let bits = (RandomKeys::default().hash_one(key) >> 32) & ((1 << SHARD_BITS) - 1);
    ((bits as usize) * shards) >> SHARD_BITS
}

/// How many shards a bulk build of `expected` keys makes: at least
/// `SHARDS`, and enough that each shard's table (a power of two of
/// buckets, the largest that leaves at least `SHARDS` of them) is filled
/// to about `FILL_80THS`.
fn shards_for(expected: usize) -> usize {
    let fill = |buckets: usize| buckets * FILL_80THS / 80;
    let mut buckets = 8;
    while fill(buckets * 2) * SHARDS <= expected {
        buckets *= 2;
    }
    expected.div_ceil(fill(buckets)).clamp(SHARDS, 1 << SHARD_BITS)
}

impl<K: Hash + Eq, V> ShardedIndex<K, V> {
    /// An index of `entries` (about `expected` of them), built shard by
    /// shard; the first key found twice, if any.
    pub(crate) fn build(expected: usize, entries: impl Iterator<Item = (K, V)>) -> Result<Self, K> {
        let count = shards_for(expected);
        let mut index = Self {
            shards: Vec::with_capacity(count),
            len: 0,
        };
        for entries in deal(count, expected, entries) {
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

    /// The shard `key` belongs in, of this index's count.
    fn shard(&self, key: &K) -> usize {
        shard_of(key, self.shards.len())
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    /// The value of `key`, added as `V::default()` if it was not there.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let shard = self.shard(&key);
        match self.shards[shard].entry(key) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(free) => {
                self.len += 1;
                free.insert(V::default())
            }
        }
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.shards[self.shard(key)].contains_key(key)
    }

    /// Adds `key` unless it is there; whether it did.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> bool {
        let shard = self.shard(&key);
        match self.shards[shard].entry(key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                free.insert(value);
                self.len += 1;
                true
            }
        }
    }
}

/// `entries` (about `expected` of them) dealt out to `shards` shards,
/// each shard's in the order given.
fn deal<K: Hash, T>(shards: usize, expected: usize, entries: impl Iterator<Item = (K, T)>) -> Vec<Vec<(K, T)>> {
    // A quarter over the even share: no shard regrows its list for the
    // spread of random keys over a thousand shards.
    let share = expected / shards + expected / shards / 4 + 8;
    let mut dealt: Vec<Vec<(K, T)>> = (0..shards).map(|_| Vec::with_capacity(share)).collect();
    for (key, value) in entries {
        dealt[shard_of(&key, shards)].push((key, value));
    }
    dealt
}

/// (For tests: `TokenTable`'s equality is its tokens', the lookups follow.)
#[cfg(test)]
impl<K: Hash + Eq, V: PartialEq> PartialEq for ShardedIndex<K, V> {
    fn eq(&self, other: &Self) -> bool {
        // The same entries, however many shards each was built with.
        self.len == other.len && self.shards.iter().flatten().all(|(key, value)| other.get(key) == Some(value))
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
        assert!(built.shards.iter().all(|shard| shard.len() > 1000 / built.shards.len() / 2));
    }

    #[test]
    fn a_built_index_fills_its_tables_whatever_its_size() {
        // 1,800 keys in the 8 shards of a fixed count would be 225 a shard:
        // tables of 512 buckets, under half full.
        for keys in [100u64, 1_000, 1_800, 3_000, 20_000] {
            let mut built = ShardedIndex::build(keys as usize, (0..keys).map(|n| (n, n))).unwrap();
            let room: usize = built.shards.iter().map(HashMap::capacity).sum();
            let fill = keys as f64 / room as f64;
            assert!(built.shards.len() >= SHARDS);
            assert!(keys < 1_000 || fill > 0.6, "{keys} keys fill {fill:.2} of their tables");
            // It grows as any index does, with its own count of shards.
            for n in keys..keys * 2 {
                assert!(built.insert_new(n, n));
            }
            assert!(!built.insert_new(keys / 2, 0));
            assert_eq!(built.len(), keys as usize * 2);
            assert!((0..keys * 2).all(|n| built.get(&n) == Some(&n)));
            assert_eq!(built.get(&(keys * 2)), None);
        }
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
