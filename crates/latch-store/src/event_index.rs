//! The log's indexes: events by key (a token, an account, an actor, a
//! time), in the `index` column family beside the events, written in the
//! same `WriteBatch` as the events they point to.
//!
//! The store knows no keys of its own: an `EventIndexer` the owner of the
//! payload installs (`EventStore::index_with`) derives them from each
//! event's data. The store writes them on every append (its own, and those
//! replicated from another node), keeps them when a tail is truncated, and
//! rebuilds them from the events when they are missing, behind, or of
//! another version.
//!
//! An entry is a key with no value:
//! `index (1 byte) ‖ key length (1) ‖ key ‖ position (8, big-endian)`, so
//! one key's events are one contiguous range in position order, and
//! fixed-length keys (a time) sort by value.
//!
//! `meta` says how far the index can be trusted: `index/version` (the
//! indexer's version, 4 bytes) and `index/through` (the last position
//! indexed, 8 bytes, rewritten in every append's batch). A reader trusts
//! the index only when both match the log's head; an older latchd that
//! appends without indexing leaves `index/through` behind, so its events
//! are never silently missing from an answer.

use std::hash::{Hash, Hasher};

use latch_core::Position;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::store_error::StoreError;

pub(crate) const CF_INDEX: &str = "index";
pub(crate) const META_INDEX_VERSION: &[u8] = b"index/version";
pub(crate) const META_INDEX_THROUGH: &[u8] = b"index/through";

/// One key an event is found under: which index (`index`, a byte the
/// indexer chooses) and the key in it (at most 255 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey {
    pub index: u8,
    pub key: Vec<u8>,
}

impl IndexKey {
    pub fn new(index: u8, key: impl Into<Vec<u8>>) -> Self {
        Self {
            index,
            key: key.into(),
        }
    }

    /// The prefix every entry of this key starts with.
    pub(crate) fn prefix(&self) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(2 + self.key.len() + 8);
        prefix.push(self.index);
        prefix.push(self.key.len() as u8);
        prefix.extend_from_slice(&self.key);
        prefix
    }

    fn entry(&self, position: Position) -> Vec<u8> {
        let mut entry = self.prefix();
        entry.extend_from_slice(&position.to_key());
        entry
    }
}

/// Derives the keys an event is found under from its stored data. Installed
/// by whoever knows the payload (latchd installs latch-audit's).
pub trait EventIndexer: Send + Sync {
    /// Changes whenever the keys it derives change: an index written by
    /// another version is rebuilt rather than trusted.
    fn version(&self) -> u32;

    /// Appends the keys of the event whose stored data (JSON) is `data`
    /// to `keys`. An error means the data is not an event this indexer
    /// knows; the append that carries it is refused.
    fn keys(&self, data: &str, keys: &mut Vec<IndexKey>) -> Result<(), String>;
}

/// What to do with an event's entries in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryWrite {
    /// Its append.
    Put,
    /// Its truncation.
    Delete,
}

/// Puts (or deletes) the entries of the event at `position` in `batch`.
pub(crate) fn write_entries(
    db: &DB,
    batch: &mut WriteBatch,
    write: EntryWrite,
    (indexer, scratch): (&dyn EventIndexer, &mut Vec<IndexKey>),
    position: Position,
    data: &str,
) -> Result<(), StoreError> {
    let family = handle(db)?;
    for key in derive(indexer, position, data, scratch)? {
        match write {
            EntryWrite::Put => batch.put_cf(family, key.entry(position), []),
            EntryWrite::Delete => batch.delete_cf(family, key.entry(position)),
        }
    }
    Ok(())
}

fn derive<'k>(
    indexer: &dyn EventIndexer,
    position: Position,
    data: &str,
    scratch: &'k mut Vec<IndexKey>,
) -> Result<&'k [IndexKey], StoreError> {
    scratch.clear();
    indexer
        .keys(data, scratch)
        .map_err(|problem| StoreError::Corrupt {
            position,
            problem: format!("the event cannot be indexed: {problem}"),
        })?;
    scratch.sort();
    scratch.dedup();
    if let Some(long) = scratch.iter().find(|k| k.key.len() > usize::from(u8::MAX)) {
        return Err(StoreError::Corrupt {
            position,
            problem: format!("an index key of {} bytes (at most 255)", long.key.len()),
        });
    }
    Ok(scratch)
}

/// The positions indexed under `key` after `after` and through `through`,
/// in order.
pub(crate) fn positions<'a>(
    db: &'a DB,
    key: &IndexKey,
    after: Position,
    through: Position,
) -> impl Iterator<Item = Result<Position, StoreError>> + use<'a> {
    let prefix = key.prefix();
    let start = key.entry(after.next());
    let family = db.cf_handle(CF_INDEX);
    family
        .into_iter()
        .flat_map(move |family| {
            db.iterator_cf(family, IteratorMode::From(&start, Direction::Forward))
        })
        .map(move |item| -> Result<Option<Position>, StoreError> {
            let (entry, _) = item?;
            if !entry.starts_with(&prefix) || entry.len() != prefix.len() + 8 {
                return Ok(None);
            }
            Ok(Position::from_key(&entry[prefix.len()..]).filter(|p| *p <= through))
        })
        .map_while(|found| found.transpose())
}

/// The position of the first entry of `index` whose key is at least `key`
/// (keys of one length, compared as bytes).
pub(crate) fn first_at_least(
    db: &DB,
    index: u8,
    key: &[u8],
) -> Result<Option<Position>, StoreError> {
    let Some(family) = db.cf_handle(CF_INDEX) else {
        return Ok(None);
    };
    let seek = IndexKey::new(index, key.to_vec());
    let Some(item) = db
        .iterator_cf(family, IteratorMode::From(&seek.prefix(), Direction::Forward))
        .next()
    else {
        return Ok(None);
    };
    let (entry, _) = item?;
    let length = key.len();
    if entry.len() != 2 + length + 8 || entry[0] != index || usize::from(entry[1]) != length {
        return Ok(None);
    }
    Position::from_key(&entry[2 + length..])
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt {
            position: Position::ZERO,
            problem: "a malformed index entry".into(),
        })
}

/// Every entry of the index removed (one range tombstone, then compacted).
pub(crate) fn clear(db: &DB) -> Result<(), StoreError> {
    let family = handle(db)?;
    db.delete_range_cf(family, [0u8].as_slice(), [0xFFu8; 2].as_slice())?;
    db.compact_range_cf(family, None::<&[u8]>, None::<&[u8]>);
    Ok(())
}

/// A fingerprint of a set of entries that does not depend on their order:
/// their count and the wrapping sum of a 64-bit hash of each. What the
/// index holds is compared with what the events say it should hold
/// without sorting either (`EventStore::check_index`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntrySum {
    pub entries: u64,
    sum: u64,
}

impl EntrySum {
    /// Adds the entries the event at `position` calls for.
    pub(crate) fn add_event(
        &mut self,
        (indexer, scratch): (&dyn EventIndexer, &mut Vec<IndexKey>),
        position: Position,
        data: &str,
    ) -> Result<(), StoreError> {
        for key in derive(indexer, position, data, scratch)? {
            self.add(&key.entry(position));
        }
        Ok(())
    }

    fn add(&mut self, entry: &[u8]) {
        // Fixed keys: the same bytes give the same hash within one run,
        // which is all a comparison made in one run needs.
        let mut hasher = std::hash::DefaultHasher::new();
        entry.hash(&mut hasher);
        self.entries += 1;
        self.sum = self.sum.wrapping_add(hasher.finish());
    }
}

/// What the index holds.
pub(crate) fn found_sum(db: &DB) -> Result<EntrySum, StoreError> {
    let mut sum = EntrySum::default();
    if let Some(family) = db.cf_handle(CF_INDEX) {
        for item in db.iterator_cf(family, IteratorMode::Start) {
            let (entry, _) = item?;
            sum.add(&entry);
        }
    }
    Ok(sum)
}

fn handle(db: &DB) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(CF_INDEX).ok_or_else(|| StoreError::Corrupt {
        position: Position::ZERO,
        problem: "no index column family (a log opened read-only from an older latchd)".into(),
    })
}
