//! `SideRecords`: what latchd keeps beside the log — API activity and token
//! usage — in a RocksDB of its own (`<log>/records`). Its own WAL and write
//! queue: these unsynced writes, two for every API request, never wait
//! behind the log's fsync'd batches (sharing one RocksDB, they halved token
//! issues per second). Logs written before this keep their older records in
//! the log's own `activity` and `usage` column families; readers look there
//! too.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options};

use crate::activity_index::CF_ACTIVITY_INDEX;
use crate::store_error::StoreError;

pub(crate) const CF_ACTIVITY: &str = "activity";
pub(crate) const CF_USAGE: &str = "usage";
pub(crate) const CF_WEBHOOKS: &str = "webhooks";
const DIR: &str = "records";

/// Every family of the side records, as opened and as flushed.
const FAMILIES: [&str; 4] = [CF_ACTIVITY, CF_USAGE, CF_WEBHOOKS, CF_ACTIVITY_INDEX];

pub(crate) struct SideRecords {
    db: DB,
    /// Opened for writing: flushed when dropped (see `Drop`).
    writable: bool,
}

/// The most write-ahead log the side records keep before flushing. What is
/// not flushed is replayed by every open, a read-only one included (each
/// `latch audit … --data-dir` on a stopped latchd's directory): activity
/// is written on every request, so this is smaller than the log's.
const MAX_WAL_BYTES: u64 = 64 << 20;

impl Drop for SideRecords {
    /// A stopped latchd leaves no write-ahead log to replay: without this,
    /// every later open (a read-only `--data-dir` question too) re-read up
    /// to `MAX_WAL_BYTES` of it, over a second after a busy day.
    fn drop(&mut self) {
        if !self.writable {
            return;
        }
        for family in FAMILIES {
            if let Some(handle) = self.db.cf_handle(family)
                && let Err(error) = self.db.flush_cf(handle)
            {
                tracing::warn!(%error, family, "side records: flush on close failed");
            }
        }
    }
}

impl SideRecords {
    pub(crate) fn open(log: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_max_total_wal_size(MAX_WAL_BYTES);
        let descriptors = FAMILIES
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, options.clone()));
        Ok(Self {
            db: DB::open_cf_descriptors(&options, log.join(DIR), descriptors)?,
            writable: true,
        })
    }

    /// `None` for a log written before side records existed.
    pub(crate) fn open_read_only(log: &Path) -> Result<Option<Self>, StoreError> {
        let path = log.join(DIR);
        if !path.is_dir() {
            return Ok(None);
        }
        let mut options = Options::default();
        options.set_max_open_files(crate::event_store::READ_ONLY_OPEN_FILES);
        let existing = DB::list_cf(&options, &path)?;
        Ok(Some(Self {
            db: DB::open_cf_for_read_only(&options, path, existing, false)?,
            writable: false,
        }))
    }

    /// The RocksDB itself, for what writes several families in one batch
    /// (`activity_index`).
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn put(&self, family: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(handle(&self.db, family)?, key, value)?;
        Ok(())
    }

    pub(crate) fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db.cf_handle(family) {
            Some(handle) => Ok(self.db.get_cf(handle, key)?),
            None => Ok(None),
        }
    }

    pub(crate) fn delete(&self, family: &str, key: &[u8]) -> Result<(), StoreError> {
        self.db.delete_cf(handle(&self.db, family)?, key)?;
        Ok(())
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(
        &self,
        family: &str,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let Some(handle) = self.db.cf_handle(family) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for item in self
            .db
            .iterator_cf(handle, IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            found.push((key.into_vec(), value.into_vec()));
        }
        Ok(found)
    }

    /// See `scan_family`.
    pub(crate) fn scan(
        &self,
        family: &str,
        after: Option<[u8; 16]>,
        keep: &mut dyn FnMut([u8; 16], &[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        scan_family(&self.db, family, after, keep)
    }

    /// See `delete_family_before`.
    pub(crate) fn delete_before(&self, family: &str, end: [u8; 16]) -> Result<(), StoreError> {
        delete_family_before(&self.db, family, end)
    }

    pub(crate) fn checkpoint(&self, log_copy: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(log_copy.join(DIR))?;
        Ok(())
    }
}

pub(crate) fn handle<'a>(db: &'a DB, family: &str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(family).ok_or_else(|| StoreError::Corrupt {
        position: latch_core::Position::ZERO,
        problem: format!("no column family {family} in the side records"),
    })
}

/// Every activity record after `after` (or from the first), oldest first,
/// for as long as `keep` says; `false` when `keep` stopped it: those an
/// older latchd kept in the log's own family, then the side records' (all
/// newer: ids are UUIDv7).
pub(crate) fn scan_activity(
    log: &DB,
    side: Option<&SideRecords>,
    after: Option<[u8; 16]>,
    keep: &mut dyn FnMut([u8; 16], &[u8]) -> bool,
) -> Result<bool, StoreError> {
    if !scan_family(log, CF_ACTIVITY, after, keep)? {
        return Ok(false);
    }
    match side {
        Some(side) => side.scan(CF_ACTIVITY, after, keep),
        None => Ok(true),
    }
}

/// Deletes the records keyed before `end` (one range tombstone) and
/// compacts that range, so the space comes back now rather than whenever
/// RocksDB gets to it. A missing family has none.
pub(crate) fn delete_family_before(db: &DB, family: &str, end: [u8; 16]) -> Result<(), StoreError> {
    let Some(handle) = db.cf_handle(family) else {
        return Ok(());
    };
    db.delete_range_cf(handle, [0u8; 16], end)?;
    db.compact_range_cf(handle, None::<&[u8]>, Some(&end[..]));
    Ok(())
}

/// Records keyed by 16-byte ids after `after` (or from the first), in key
/// order, for as long as `keep` says; `false` when `keep` stopped it. A
/// missing family has none.
pub(crate) fn scan_family(
    db: &DB,
    family: &str,
    after: Option<[u8; 16]>,
    keep: &mut dyn FnMut([u8; 16], &[u8]) -> bool,
) -> Result<bool, StoreError> {
    let Some(handle) = db.cf_handle(family) else {
        return Ok(true);
    };
    let mode = match &after {
        Some(id) => IteratorMode::From(id, Direction::Forward),
        None => IteratorMode::Start,
    };
    for item in db.iterator_cf(handle, mode) {
        let (key, value) = item?;
        let Ok(id) = <[u8; 16]>::try_from(&key[..]) else {
            continue;
        };
        if Some(id) == after {
            continue;
        }
        if !keep(id, &value) {
            return Ok(false);
        }
    }
    Ok(true)
}
