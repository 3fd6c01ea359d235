//! The activity index: API activity records under the keys an installed
//! `ActivityIndexer` derives from them (latchd's: the account and the token
//! a record is about), so one token's uses (its story, `GET
//! /v1/audit?token=`) are read without scanning every record (ADR 0029).
//!
//! In the side records' `activity_index` family an entry is a key with no
//! value, `index (1) ‖ key length (1) ‖ key ‖ record id (16)` (the event
//! index's `IndexKey` layout), so one key's records are one range in id
//! order, which is the order they happened in (UUIDv7). The entry with the
//! empty key holds the indexer's version (4 bytes, big-endian) and is
//! written only once every record has its entries: without it, or with
//! another version, readers scan every record instead.
//!
//! An entry only points: a record overwritten with other keys, or deleted,
//! leaves it pointing at another record or at none, so readers check each
//! record they are handed. Writes keep the index whole: a record and its
//! entries go in one batch, and a record written while no indexer is
//! installed removes the version, so the index is rebuilt before it is
//! trusted again.

use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::event_index::IndexKey;
use crate::side_records::{CF_ACTIVITY, SideRecords, handle, scan_activity};
use crate::store_error::StoreError;

pub(crate) const CF_ACTIVITY_INDEX: &str = "activity_index";
const VERSION_KEY: &[u8] = b"";
/// Entries written (or deleted) per batch when many records are indexed.
const BATCH: usize = 4096;
/// Past every entry: entries are at most 2 + 255 + 16 bytes long.
const PAST_EVERY_ENTRY: [u8; 274] = [0xFF; 274];

/// Derives the keys an activity record is found under from its stored
/// bytes. Installed by whoever knows the records (latchd installs
/// latch-audit's, `EventStore::index_activity_with`).
pub trait ActivityIndexer: Send + Sync {
    /// Changes whenever the keys it derives change: an index written by
    /// another version is rebuilt rather than trusted.
    fn version(&self) -> u32;

    /// Appends the keys of the record whose stored bytes are `record` to
    /// `keys`; none for bytes it cannot read (such a record is found only
    /// by a scan).
    fn keys(&self, record: &[u8], keys: &mut Vec<IndexKey>);
}

fn entry(key: &IndexKey, id: &[u8; 16]) -> Vec<u8> {
    let mut entry = key.prefix();
    entry.extend_from_slice(id);
    entry
}

/// The record's keys, each once; a key too long for an entry is dropped.
fn derive(indexer: &dyn ActivityIndexer, record: &[u8]) -> Vec<IndexKey> {
    let mut keys = Vec::new();
    indexer.keys(record, &mut keys);
    keys.retain(|key| key.key.len() <= usize::from(u8::MAX));
    keys.sort();
    keys.dedup();
    keys
}

/// Writes (or overwrites) a record and its entries in one batch; with no
/// indexer, the record and the removal of the index's version.
pub(crate) fn put(
    side: &SideRecords,
    indexer: Option<&dyn ActivityIndexer>,
    id: [u8; 16],
    record: &[u8],
) -> Result<(), StoreError> {
    let db = side.db();
    let index = handle(db, CF_ACTIVITY_INDEX)?;
    let mut batch = WriteBatch::default();
    batch.put_cf(handle(db, CF_ACTIVITY)?, id, record);
    match indexer {
        Some(indexer) => {
            for key in derive(indexer, record) {
                batch.put_cf(index, entry(&key, &id), []);
            }
        }
        None => batch.delete_cf(index, VERSION_KEY),
    }
    db.write(batch)?;
    Ok(())
}

/// Whether every record has its entries, written by an indexer of
/// `version`.
pub(crate) fn is_complete(side: Option<&SideRecords>, version: u32) -> Result<bool, StoreError> {
    let Some(side) = side else {
        return Ok(false);
    };
    let Some(index) = side.db().cf_handle(CF_ACTIVITY_INDEX) else {
        return Ok(false);
    };
    Ok(side.db().get_cf(index, VERSION_KEY)?.as_deref() == Some(&version.to_be_bytes()[..]))
}

/// The version the index says it was written by; `None` when it is not
/// whole.
pub(crate) fn version(side: &SideRecords) -> Result<Option<Vec<u8>>, StoreError> {
    let db = side.db();
    Ok(db.get_cf(handle(db, CF_ACTIVITY_INDEX)?, VERSION_KEY)?)
}

/// Whether any activity record is kept, in either place.
pub(crate) fn any_record(log: &DB, side: &SideRecords) -> Result<bool, StoreError> {
    Ok(!scan_activity(log, Some(side), None, &mut |_, _| false)?)
}

/// Removes every entry and the version (one range tombstone: RocksDB
/// reclaims the space as it compacts).
pub(crate) fn clear(side: &SideRecords) -> Result<(), StoreError> {
    let db = side.db();
    let index = handle(db, CF_ACTIVITY_INDEX)?;
    db.delete_range_cf(index, VERSION_KEY, &PAST_EVERY_ENTRY[..])?;
    Ok(())
}

/// Writes the entries of every record (those an older latchd kept in the
/// log's own `activity` family too), then the version. Returns how many
/// records were read.
pub(crate) fn fill(
    log: &DB,
    side: &SideRecords,
    indexer: &dyn ActivityIndexer,
) -> Result<u64, StoreError> {
    let db = side.db();
    let index = handle(db, CF_ACTIVITY_INDEX)?;
    let mut batch = WriteBatch::default();
    let mut records = 0u64;
    let mut failed = None;
    let mut each = |id: [u8; 16], record: &[u8]| {
        records += 1;
        for key in derive(indexer, record) {
            batch.put_cf(index, entry(&key, &id), []);
        }
        if batch.len() >= BATCH {
            if let Err(error) = db.write(std::mem::take(&mut batch)) {
                failed = Some(error);
                return false;
            }
        }
        true
    };
    scan_activity(log, Some(side), None, &mut each)?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    batch.put_cf(index, VERSION_KEY, indexer.version().to_be_bytes());
    db.write(batch)?;
    Ok(records)
}

/// The entries of the records keyed before `end`, to delete once the
/// records are gone (`delete_entries`): an entry left by a crash in
/// between points at nothing, which readers pass over, where a record left
/// without its entries would be missing from indexed answers.
pub(crate) fn entries_before(
    log: &DB,
    side: &SideRecords,
    indexer: &dyn ActivityIndexer,
    end: [u8; 16],
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut entries = Vec::new();
    let mut each = |id: [u8; 16], record: &[u8]| {
        if id >= end {
            return false;
        }
        for key in derive(indexer, record) {
            entries.push(entry(&key, &id));
        }
        true
    };
    // Oldest first: the first record at or past `end` ends the walk.
    scan_activity(log, Some(side), None, &mut each)?;
    Ok(entries)
}

/// Deletes `entries`, a batch at a time.
pub(crate) fn delete_entries(side: &SideRecords, entries: &[Vec<u8>]) -> Result<(), StoreError> {
    let db = side.db();
    let index = handle(db, CF_ACTIVITY_INDEX)?;
    for chunk in entries.chunks(BATCH) {
        let mut batch = WriteBatch::default();
        for entry in chunk {
            batch.delete_cf(index, entry);
        }
        db.write(batch)?;
    }
    Ok(())
}

/// Marks the index as not whole (a deletion no indexer could follow).
pub(crate) fn mark_not_whole(side: &SideRecords) -> Result<(), StoreError> {
    let db = side.db();
    db.delete_cf(handle(db, CF_ACTIVITY_INDEX)?, VERSION_KEY)?;
    Ok(())
}

/// An activity index being written from the records already there, on a
/// thread of its own (`EventStore::index_activity_with`): until it is
/// done, readers scan every record.
#[derive(Debug)]
pub struct ActivityIndexing {
    building: Option<std::thread::JoinHandle<Result<u64, StoreError>>>,
}

impl ActivityIndexing {
    pub(crate) fn whole() -> Self {
        Self { building: None }
    }

    pub(crate) fn building(thread: std::thread::JoinHandle<Result<u64, StoreError>>) -> Self {
        Self {
            building: Some(thread),
        }
    }

    /// Whether records are still being indexed.
    pub fn is_building(&self) -> bool {
        self.building.as_ref().is_some_and(|thread| !thread.is_finished())
    }

    /// Waits until the index is whole; returns how many records were read
    /// to make it so (0 when it already was).
    pub fn wait(self) -> Result<u64, StoreError> {
        match self.building {
            None => Ok(0),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(StoreError::Corrupt {
                    position: latch_core::Position::ZERO,
                    problem: "indexing the activity records failed (the thread panicked)".into(),
                })
            }),
        }
    }
}

/// The records `key` points at, after `after` (or from the first), in id
/// order, for as long as `keep` says; entries whose record is gone are
/// passed over. Only whole when `is_complete`.
pub(crate) fn scan(
    log: &DB,
    side: &SideRecords,
    key: &IndexKey,
    after: Option<[u8; 16]>,
    keep: &mut dyn FnMut([u8; 16], &[u8]) -> bool,
) -> Result<(), StoreError> {
    let db = side.db();
    let Some(index) = db.cf_handle(CF_ACTIVITY_INDEX) else {
        return Ok(());
    };
    let first = match after {
        Some(after) => match u128::from_be_bytes(after).checked_add(1) {
            Some(next) => next.to_be_bytes(),
            None => return Ok(()),
        },
        None => [0u8; 16],
    };
    let prefix = key.prefix();
    let start = entry(key, &first);
    let records = handle(db, CF_ACTIVITY)?;
    let older = log.cf_handle(CF_ACTIVITY);
    for item in db.iterator_cf(index, IteratorMode::From(&start, Direction::Forward)) {
        let (found, _) = item?;
        if !found.starts_with(&prefix) {
            break;
        }
        let Ok(id) = <[u8; 16]>::try_from(&found[prefix.len()..]) else {
            continue;
        };
        let record = match db.get_pinned_cf(records, id)? {
            Some(record) => Some(record.to_vec()),
            None => match older {
                Some(older) => log.get_cf(older, id)?,
                None => None,
            },
        };
        if let Some(record) = record
            && !keep(id, &record)
        {
            break;
        }
    }
    Ok(())
}
