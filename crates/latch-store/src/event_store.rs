//! `EventStore`: Latch's append-only log on RocksDB.
//!
//! Column families, one per concern:
//! - `events`: position (u64 big-endian) → `hash ‖ record` (see `stored_event`)
//! - `streams`: `stream \0 version` (version big-endian) → position
//! - `stream_heads`: stream → its current version
//! - `idempotency`: key → `IdempotencyRecord` (kept forever)
//! - `snapshots`: position → the state at that position (checkpoints: a
//!   restart replays only the tail after the newest, an investigation only
//!   the tail after the nearest; each records the chain hash at its
//!   position; losing them only costs longer replays)
//! - `meta`: the log's own facts: `log_id`, a random id made with the log
//!   (latchd signs what it publishes over it)
//! - `activity`: API activity records, keyed by a time-ordered 16-byte id
//!   (latchd's request audit trail; not part of the hash chain)
//! - `usage`: each token's last use, keyed by token id (from latchd's own
//!   authentications and verifiers' reports; not part of the hash chain)
//! - `index`: events by token, account, actor and time (`event_index`),
//!   written in the events' own batch once an indexer is installed
//!
//! Appends are serialised by a mutex (the command handler is the only
//! writer anyway) and each is one `WriteBatch` written with `sync = true`:
//! when `append` returns, the events survive `kill -9` and power loss.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use latch_core::{LogId, Position};
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions,
};
use tokio::sync::watch;

use crate::append::{AppendRejected, AppendRequest, Appended, IdempotencyRecord};
use crate::chain_hash::ChainHash;
use crate::chain_verdict::ChainVerdict;
use crate::chained_record::ChainedRecord;
use crate::event_index::EntryWrite::{Delete, Put};
use crate::event_index::{
    self, CF_INDEX, EntrySum, EventIndexer, IndexKey, META_INDEX_THROUGH, META_INDEX_VERSION,
};
use crate::record_format::{self, RecordFormat};
use crate::record_upgrade::{RecordFormatCounts, RecordUpgrade};
use crate::store_error::StoreError;
use crate::stored_event::{self, StoredEvent};

const CF_EVENTS: &str = "events";
const CF_STREAMS: &str = "streams";
const CF_STREAM_HEADS: &str = "stream_heads";
const CF_IDEMPOTENCY: &str = "idempotency";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_META: &str = "meta";
const META_LOG_ID: &[u8] = b"log_id";
/// The JetStream sequence of the last stream message this log holds (HA
/// mode): where a standby resumes following the replicated stream.
const META_STREAM_SEQUENCE: &[u8] = b"stream_sequence";
/// `checkpoint/<position>` in `meta` lists a checkpoint (value: its chain hash).
const CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";

fn checkpoint_key(position: Position) -> Vec<u8> {
    [CHECKPOINT_PREFIX, &position.to_key()].concat()
}
/// Idempotency keys are indexed by the SHA-256 of the (scoped) key; logs
/// written before kept the key itself, which lookups still find.
const IDEMPOTENCY_DIGEST_PREFIX: &str = "sha256:";
use crate::activity_index::{self, ActivityIndexer, ActivityIndexing};
// Older logs kept activity and usage here; new records go to `SideRecords`.
use crate::side_records::{CF_ACTIVITY, CF_USAGE, CF_WEBHOOKS, SideRecords};
const COLUMN_FAMILIES: [&str; 9] = [
    CF_EVENTS,
    CF_INDEX,
    CF_STREAMS,
    CF_STREAM_HEADS,
    CF_IDEMPOTENCY,
    CF_SNAPSHOTS,
    CF_ACTIVITY,
    CF_USAGE,
    CF_META,
];
/// Write-ahead log kept at most before RocksDB flushes the column families
/// that hold on to its oldest file. Without a bound, families written
/// rarely (`meta`, `streams`) pin every log file after their last write:
/// 2.4 GB of write-ahead log beside 1 GB of tables at three million
/// events, all read again when the log is opened.
pub(crate) const MAX_WAL_BYTES: u64 = 256 << 20;
/// Table files a read-only open keeps open at once. Bounded, RocksDB
/// opens a file when a read first needs it; unbounded (the default), it
/// opens every file and decompresses every index block before the open
/// returns: at ten million events, `latch audit token --data-dir` took
/// 80–100 ms for an unknown token that way, 30–40 ms this way.
pub(crate) const READ_ONLY_OPEN_FILES: i32 = 4096;
/// Checkpoints kept unless told otherwise (`save_snapshot_keeping`).
pub const DEFAULT_CHECKPOINTS_KEPT: usize = 2;

/// The last event in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: Position,
    pub hash: ChainHash,
}

impl Head {
    const EMPTY: Head = Head {
        position: Position::ZERO,
        hash: ChainHash::GENESIS,
    };
}

pub struct EventStore {
    db: DB,
    /// Activity and usage records, in their own RocksDB; `None` when a log
    /// from before they existed is opened read-only.
    records: Option<SideRecords>,
    path: PathBuf,
    read_only: bool,
    /// Held for the whole of an append: there is one writer at a time.
    head: Mutex<Head>,
    /// `None` only for a log written before logs had ids, opened read-only.
    /// An empty log may adopt its cluster's id (`adopt_log_id`).
    log_id: Mutex<Option<LogId>>,
    notify: watch::Sender<Position>,
    /// Derives index keys; once set, every append indexes its events.
    indexer: OnceLock<Arc<dyn EventIndexer>>,
    /// Derives activity records' index keys; once set, every activity
    /// record is written with its entries.
    activity_indexer: OnceLock<Arc<dyn ActivityIndexer>>,
    /// The format new records are written in (`RecordFormat::Binary`
    /// unless set); both are read.
    writes_json: AtomicBool,
}

impl Drop for EventStore {
    /// A store closed for writing leaves no write-ahead log behind: every
    /// later open (a read-only `latch audit … --data-dir` on a stopped
    /// latchd's directory too) would replay it first.
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        for name in COLUMN_FAMILIES {
            if let Some(family) = self.db.cf_handle(name)
                && let Err(error) = self.db.flush_cf(family)
            {
                tracing::warn!(%error, family = name, "event store: flush on close failed");
            }
        }
    }
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .field("head", &self.head())
            .finish()
    }
}

impl EventStore {
    /// Opens (creating if needed) the log in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_paranoid_checks(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_max_total_wal_size(MAX_WAL_BYTES);
        // An index family that is not there (dropped, or an older log) is
        // created empty: whatever `meta` says of an index is void then.
        let index_lost = DB::list_cf(&options, path)
            .is_ok_and(|existing| !existing.iter().any(|name| name == CF_INDEX));
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, options.clone()));
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        if index_lost {
            let mut batch = WriteBatch::default();
            batch.delete_cf(cf(&db, CF_META), META_INDEX_VERSION);
            batch.delete_cf(cf(&db, CF_META), META_INDEX_THROUGH);
            write_synced(&db, batch)?;
        }
        let records = SideRecords::open(path)?;
        // A new log gets its id now; a log from before ids existed gets one
        // the first time this version opens it for writing.
        if read_log_id(&db)?.is_none() {
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            db.put_cf_opt(
                cf(&db, CF_META),
                META_LOG_ID,
                LogId::new().as_bytes(),
                &sync,
            )?;
        }
        Self::from_db(db, Some(records), path, false)
    }

    /// The log's id (see `LogId`). `None` only for a log from before logs
    /// had ids, opened read-only.
    pub fn log_id(&self) -> Option<LogId> {
        *self.log_id.lock().expect("log id lock poisoned")
    }

    /// Gives an empty log the id of the log it is about to replicate (an HA
    /// standby joining a cluster). A log that holds events keeps its id:
    /// adopting another would make its events look like the other log's.
    pub fn adopt_log_id(&self, id: LogId) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let head = self.head.lock().expect("head lock poisoned");
        let mut current = self.log_id.lock().expect("log id lock poisoned");
        if *current == Some(id) {
            return Ok(());
        }
        if head.position != Position::ZERO {
            return Err(StoreError::Replication(format!(
                "this log ({}) holds {} events and cannot adopt the id {id}: it is another log",
                current.map_or_else(|| "without an id".to_owned(), |c| c.to_string()),
                head.position
            )));
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(cf(&self.db, CF_META), META_LOG_ID, id.as_bytes(), &sync)?;
        *current = Some(id);
        Ok(())
    }

    /// Records the replicated stream's sequence this log holds up to (an HA
    /// leader that published events the log already held).
    pub fn set_stream_sequence(&self, sequence: u64) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.put_cf_opt(
            cf(&self.db, CF_META),
            META_STREAM_SEQUENCE,
            sequence.to_be_bytes(),
            &sync,
        )?;
        Ok(())
    }

    /// The JetStream sequence of the last replicated stream message this
    /// log holds (`None`: it never took part in replication).
    pub fn stream_sequence(&self) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_META), META_STREAM_SEQUENCE)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| StoreError::Corrupt {
            position: Position::ZERO,
            problem: "the stream sequence is not 8 bytes".into(),
        })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Opens an existing log read-only: safe beside a running latchd, and
    /// what audit tools use on a data directory or a backup of one. It sees
    /// the log as it was when opened.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let mut options = Options::default();
        options.set_max_open_files(READ_ONLY_OPEN_FILES);
        // A log written by an older latchd may lack newer column families.
        let existing = DB::list_cf(&options, path)?;
        let db = DB::open_cf_for_read_only(&options, path, existing, false)?;
        for name in [
            CF_EVENTS,
            CF_STREAMS,
            CF_STREAM_HEADS,
            CF_IDEMPOTENCY,
            CF_SNAPSHOTS,
            CF_ACTIVITY,
        ] {
            if db.cf_handle(name).is_none() {
                return Err(StoreError::Corrupt {
                    position: Position::ZERO,
                    problem: format!("no column family {name}: not a Latch log"),
                });
            }
        }
        let records = SideRecords::open_read_only(path)?;
        Self::from_db(db, records, path, true)
    }

    fn from_db(
        db: DB,
        records: Option<SideRecords>,
        path: &Path,
        read_only: bool,
    ) -> Result<Self, StoreError> {
        let head = {
            let cf = cf(&db, CF_EVENTS);
            let mut last = db.iterator_cf(cf, IteratorMode::End);
            match last.next() {
                None => Head::EMPTY,
                Some(item) => {
                    let (key, value) = item?;
                    let position = Position::from_key(&key).ok_or_else(|| StoreError::Corrupt {
                        position: Position::ZERO,
                        problem: "malformed event key".into(),
                    })?;
                    // Only the stored hash is needed: a store whose last
                    // record is damaged still opens, so `verify_chain` can
                    // say where.
                    let hash =
                        value
                            .get(..32)
                            .and_then(ChainHash::from_slice)
                            .ok_or_else(|| StoreError::Corrupt {
                                position,
                                problem: "record shorter than its hash".into(),
                            })?;
                    Head { position, hash }
                }
            }
        };
        let (notify, _) = watch::channel(head.position);
        let log_id = read_log_id(&db)?;
        Ok(Self {
            db,
            records,
            path: path.to_owned(),
            read_only,
            head: Mutex::new(head),
            log_id: Mutex::new(log_id),
            notify,
            indexer: OnceLock::new(),
            activity_indexer: OnceLock::new(),
            writes_json: AtomicBool::new(false),
        })
    }

    /// The format new records are written in from now on (both are read
    /// whatever this says). `Json` is what a Latch from before the binary
    /// format reads: the way back, should one have to run it again.
    pub fn set_record_format(&self, format: RecordFormat) {
        self.writes_json
            .store(format == RecordFormat::Json, Ordering::Relaxed);
    }

    pub fn record_format(&self) -> RecordFormat {
        if self.writes_json.load(Ordering::Relaxed) {
            RecordFormat::Json
        } else {
            RecordFormat::Binary
        }
    }

    /// Rewrites every record stored as JSON in the binary format, in place,
    /// checking the chain as it reads (a break stops it, rewriting nothing
    /// past it). Every hash stays as it was, so the chain, its head, the
    /// index and the checkpoints are untouched; a JSON record of a shape the
    /// log never wrote is kept as it is. Safe while the log is appended to
    /// (each batch is written under the append lock, and only over the very
    /// record it was made from). `keep_going` hears how far it has got
    /// (position done, of the head it started at) after each batch, and
    /// stops it by answering `false`: what it rewrote stays rewritten, the
    /// rest stays JSON, and both read the same.
    pub fn upgrade_records(
        &self,
        mut keep_going: impl FnMut(Position, Position) -> bool,
    ) -> Result<RecordUpgrade, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        // Small batches: each is written under the append lock, after a
        // point read of each of its records.
        const BATCH: usize = 1024;
        let through = self.head().position;
        let mut report = RecordUpgrade::default();
        let mut pending: Vec<(Position, Box<[u8]>, Vec<u8>)> = Vec::with_capacity(BATCH);
        for record in self.iter_chained_records(Position::FIRST, ChainHash::GENESIS) {
            let record = record?;
            if record.position > through {
                break;
            }
            match record_format::upgraded(&record.value) {
                Some(value) => pending.push((record.position, record.value, value)),
                None if record_format::format_of(&record.value[32..])
                    == Some(RecordFormat::Json) =>
                {
                    report.kept_json += 1;
                }
                None => report.already_binary += 1,
            }
            if pending.len() == BATCH {
                report.rewritten += self.write_upgraded(&mut pending)?;
                if !keep_going(record.position, through) {
                    return Ok(report);
                }
            }
        }
        report.rewritten += self.write_upgraded(&mut pending)?;
        if report.rewritten > 0 {
            // The old values are garbage now: let RocksDB drop them, and
            // the write-ahead log that carried the new ones.
            self.db.flush_cf(cf(&self.db, CF_EVENTS))?;
            self.db
                .compact_range_cf(cf(&self.db, CF_EVENTS), None::<&[u8]>, None::<&[u8]>);
        }
        keep_going(through, through);
        Ok(report)
    }

    /// Writes upgraded records over the ones they were made from, under the
    /// append lock, each only if the stored value is still byte for byte
    /// the one it was made from: a record truncated away, replaced, or
    /// altered meanwhile is left as it is (an upgrade never writes over the
    /// evidence of an edit). Returns how many were written.
    fn write_upgraded(
        &self,
        pending: &mut Vec<(Position, Box<[u8]>, Vec<u8>)>,
    ) -> Result<u64, StoreError> {
        let head = self.head.lock().expect("head lock poisoned");
        let events = cf(&self.db, CF_EVENTS);
        let mut batch = WriteBatch::default();
        let mut written = 0;
        for (position, read, value) in pending.drain(..) {
            if position > head.position {
                continue;
            }
            let current = self.db.get_pinned_cf(events, position.to_key())?;
            if current.is_some_and(|current| *current == *read) {
                batch.put_cf(events, position.to_key(), value);
                written += 1;
            }
        }
        self.db.write(batch)?;
        drop(head);
        Ok(written)
    }

    /// How many records are stored in each format (a walk of the log).
    pub fn record_formats(&self) -> Result<RecordFormatCounts, StoreError> {
        let mut counts = RecordFormatCounts::default();
        for item in self.db.iterator_cf_opt(
            cf(&self.db, CF_EVENTS),
            scan_options(),
            IteratorMode::Start,
        ) {
            let (_, value) = item?;
            match value.get(32..).and_then(record_format::format_of) {
                Some(RecordFormat::Json) => counts.json += 1,
                Some(RecordFormat::Binary) => counts.binary += 1,
                None => counts.unknown += 1,
            }
        }
        Ok(counts)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn head(&self) -> Head {
        *self.head.lock().expect("head lock poisoned")
    }

    /// Followers learn of new events here without polling: the value is the
    /// head position, updated after every durable append.
    pub fn subscribe(&self) -> watch::Receiver<Position> {
        self.notify.subscribe()
    }

    /// Appends several requests in one synced `WriteBatch` (group commit).
    ///
    /// The outer `Result` is the infrastructure: on `Err`, nothing was
    /// written. The inner results say, per request, whether it was written,
    /// was a duplicate of an earlier idempotent append, or was refused by a
    /// version check (then nothing of it was written; the others stand).
    pub fn append(
        &self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendRejected>>, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut head_guard = self.head.lock().expect("head lock poisoned");
        let prepared = self.prepare_after(*head_guard, requests)?;
        self.write_prepared(&mut head_guard, prepared, None)
    }

    /// Works out what `append` would write (positions, chain hashes,
    /// versions, idempotency records) without writing it: an HA leader
    /// publishes the events to the replicated stream first and `commit`s
    /// only what the stream acknowledged.
    pub fn prepare(&self, requests: &[AppendRequest]) -> Result<PreparedAppend, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let head = self.head();
        self.prepare_after(head, requests)
    }

    /// `prepare`, continuing `pending` (prepared and not committed yet):
    /// positions, chain hashes, versions and idempotency records follow
    /// from it, as if it were written. An HA leader publishes a batch while
    /// the one before it awaits the stream's acknowledgement, and `commit`s
    /// them in order (each fails if the one before it was not committed).
    pub fn prepare_following(
        &self,
        pending: &PreparedAppend,
        requests: &[AppendRequest],
    ) -> Result<PreparedAppend, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.prepare_seeded(
            pending.after,
            pending.versions.clone(),
            pending.keys.clone(),
            requests,
        )
    }

    /// Writes a prepared append in one synced `WriteBatch`, recording
    /// `stream_sequence` as the replicated stream's last message it holds.
    /// Fails (writing nothing) if the log moved since `prepare`.
    pub fn commit(
        &self,
        prepared: PreparedAppend,
        stream_sequence: Option<u64>,
    ) -> Result<Vec<Result<Appended, AppendRejected>>, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut head_guard = self.head.lock().expect("head lock poisoned");
        if *head_guard != prepared.before {
            return Err(StoreError::Replication(format!(
                "the log moved from {} to {} between prepare and commit",
                prepared.before.position, head_guard.position
            )));
        }
        self.write_prepared(&mut head_guard, prepared, stream_sequence)
    }

    fn write_prepared(
        &self,
        head_guard: &mut Head,
        prepared: PreparedAppend,
        stream_sequence: Option<u64>,
    ) -> Result<Vec<Result<Appended, AppendRejected>>, StoreError> {
        let PreparedAppend {
            mut batch,
            outcomes,
            after,
            ..
        } = prepared;
        if let Some(sequence) = stream_sequence {
            batch.put_cf(
                cf(&self.db, CF_META),
                META_STREAM_SEQUENCE,
                sequence.to_be_bytes(),
            );
        }
        if !batch.is_empty() {
            write_synced(&self.db, batch)?;
        }
        *head_guard = after;
        self.notify.send_replace(after.position);
        Ok(outcomes)
    }

    fn prepare_after(
        &self,
        before: Head,
        requests: &[AppendRequest],
    ) -> Result<PreparedAppend, StoreError> {
        self.prepare_seeded(before, HashMap::new(), HashMap::new(), requests)
    }

    /// Prepares `requests` after `before`, with the stream versions and
    /// idempotency records of appends prepared before it and not written
    /// (`versions`, `keys_in_batch`) taking precedence over the log's.
    fn prepare_seeded(
        &self,
        before: Head,
        mut versions: HashMap<String, u64>,
        mut keys_in_batch: HashMap<String, IdempotencyRecord>,
        requests: &[AppendRequest],
    ) -> Result<PreparedAppend, StoreError> {
        let mut head = before;
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut events = Vec::new();
        let mut idempotency = Vec::new();
        let indexer = self.indexer.get();
        let mut keys = Vec::new();

        for request in requests {
            if let Some(idem) = &request.idempotency {
                let original = match keys_in_batch.get(&idem.key) {
                    Some(record) => Some(record.clone()),
                    None => self.idempotency(&idem.key)?,
                };
                if let Some(original) = original {
                    outcomes.push(Ok(Appended::Duplicate(original)));
                    continue;
                }
            }
            let mut refused = None;
            for (stream, expected) in &request.expectations {
                let actual = self.version_in_batch(&versions, stream)?;
                if !expected.admits(actual) {
                    refused = Some(AppendRejected::WrongExpectedVersion {
                        stream: stream.clone(),
                        expected: *expected,
                        actual,
                    });
                    break;
                }
            }
            if let Some(rejection) = refused {
                outcomes.push(Err(rejection));
                continue;
            }

            let first = head.position.next();
            for event in &request.events {
                let version = self.version_in_batch(&versions, &event.stream)? + 1;
                let position = head.position.next();
                let (value, hash) = record_format::encode(
                    self.record_format(),
                    position,
                    &event.stream,
                    version,
                    head.hash,
                    event.data.get().as_bytes(),
                );
                batch.put_cf(cf(&self.db, CF_EVENTS), position.to_key(), value);
                batch.put_cf(
                    cf(&self.db, CF_STREAMS),
                    stream_key(&event.stream, version),
                    position.to_key(),
                );
                batch.put_cf(
                    cf(&self.db, CF_STREAM_HEADS),
                    event.stream.as_bytes(),
                    version.to_be_bytes(),
                );
                if let Some(indexer) = indexer {
                    let indexing = (indexer.as_ref(), &mut keys);
                    event_index::write_entries(&self.db, &mut batch, Put, indexing, position, event.data.get())?;
                }
                versions.insert(event.stream.clone(), version);
                events.push(StoredEvent {
                    position,
                    stream: event.stream.clone(),
                    version,
                    prev_hash: head.hash,
                    hash,
                    data: event.data.clone(),
                });
                head = Head { position, hash };
            }
            let count = request.events.len() as u64;
            if let Some(idem) = &request.idempotency {
                let record = IdempotencyRecord {
                    first: if count == 0 { head.position } else { first },
                    count,
                    fingerprint: idem.fingerprint.clone(),
                };
                let index_key = idempotency_index_key(&idem.key);
                let bytes = serde_json::to_vec(&record).expect("plain record serialises");
                batch.put_cf(cf(&self.db, CF_IDEMPOTENCY), index_key.as_bytes(), bytes);
                keys_in_batch.insert(idem.key.clone(), record.clone());
                idempotency.push((index_key, record));
            }
            outcomes.push(Ok(Appended::Written { first, count }));
        }
        if indexer.is_some() && head.position != before.position {
            batch.put_cf(
                cf(&self.db, CF_META),
                META_INDEX_THROUGH,
                head.position.to_key(),
            );
        }
        Ok(PreparedAppend {
            batch,
            outcomes,
            events,
            idempotency,
            before,
            after: head,
            versions,
            keys: keys_in_batch,
        })
    }

    /// Appends events another node wrote, exactly as it wrote them (an HA
    /// standby following the replicated stream), in one synced
    /// `WriteBatch`: each record must hash to its hash, continue the chain
    /// at the next position, and be the next version of its stream.
    /// Nothing is written if any does not.
    pub fn append_replicated(
        &self,
        events: &[ReplicatedEvent],
        stream_sequence: u64,
    ) -> Result<Head, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut head_guard = self.head.lock().expect("head lock poisoned");
        let mut head = *head_guard;
        let mut batch = WriteBatch::default();
        let mut versions: HashMap<String, u64> = HashMap::new();
        let indexer = self.indexer.get();
        let mut keys = Vec::new();
        for event in events {
            let refused = |problem: String| StoreError::Replication(problem);
            let hash = ChainHash::of(event.record.as_bytes());
            // The wire carries canonical (JSON) records: the hash is of
            // their bytes. Anything else would be stored under a hash that
            // is not its own.
            if record_format::format_of(event.record.as_bytes()) != Some(RecordFormat::Json) {
                return Err(refused(format!(
                    "a replicated record at {} is not a JSON record",
                    head.position.next()
                )));
            }
            let parsed = record_format::record_parts(event.record.as_bytes())
                .map_err(|e| refused(format!("a replicated record does not parse: {e}")))?;
            let position = head.position.next();
            if parsed.position != position {
                return Err(refused(format!(
                    "a replicated record is at {}, the log continues at {position}",
                    parsed.position
                )));
            }
            if parsed.prev_hash != head.hash {
                return Err(refused(format!(
                    "the replicated record at {position} does not continue this log's chain"
                )));
            }
            let version = self.version_in_batch(&versions, &parsed.stream)? + 1;
            if parsed.version != version {
                return Err(refused(format!(
                    "the replicated record at {position} is version {} of {}, which is at {}",
                    parsed.version,
                    parsed.stream,
                    version - 1
                )));
            }
            let data = std::str::from_utf8(parsed.data).map_err(|_| {
                refused(format!(
                    "the replicated record at {position} has data that is not UTF-8"
                ))
            })?;
            let value =
                record_format::value_for(self.record_format(), event.record.as_bytes(), &parsed, hash);
            batch.put_cf(cf(&self.db, CF_EVENTS), position.to_key(), value);
            batch.put_cf(
                cf(&self.db, CF_STREAMS),
                stream_key(&parsed.stream, version),
                position.to_key(),
            );
            batch.put_cf(
                cf(&self.db, CF_STREAM_HEADS),
                parsed.stream.as_bytes(),
                version.to_be_bytes(),
            );
            if let Some((index_key, record)) = &event.idempotency {
                let bytes = serde_json::to_vec(record).expect("plain record serialises");
                batch.put_cf(cf(&self.db, CF_IDEMPOTENCY), index_key.as_bytes(), bytes);
            }
            if let Some(indexer) = indexer {
                let indexing = (indexer.as_ref(), &mut keys);
                event_index::write_entries(&self.db, &mut batch, Put, indexing, position, data)?;
            }
            versions.insert(parsed.stream.into_owned(), version);
            head = Head { position, hash };
        }
        batch.put_cf(
            cf(&self.db, CF_META),
            META_STREAM_SEQUENCE,
            stream_sequence.to_be_bytes(),
        );
        if indexer.is_some() && head.position != head_guard.position {
            batch.put_cf(cf(&self.db, CF_META), META_INDEX_THROUGH, head.position.to_key());
        }
        write_synced(&self.db, batch)?;
        *head_guard = head;
        drop(head_guard);
        self.notify.send_replace(head.position);
        Ok(head)
    }

    /// Removes every event after `keep` (an HA node's tail that the
    /// replicated stream does not hold, which the caller has saved
    /// elsewhere first), with their stream versions, the idempotency records
    /// that point into them and any snapshot past `keep`; records
    /// `stream_sequence` as where following resumes. Returns what was
    /// removed.
    pub fn truncate_after(
        &self,
        keep: Position,
        stream_sequence: Option<u64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut head_guard = self.head.lock().expect("head lock poisoned");
        let removed: Vec<StoredEvent> = self
            .iter_from(keep.next())
            .collect::<Result<_, _>>()?;
        let mut batch = WriteBatch::default();
        // The index follows the events down when it was whole; otherwise
        // it is marked behind and rebuilt when next installed.
        let indexer = self
            .indexer
            .get()
            .filter(|_| self.index_through().ok().flatten() == Some(head_guard.position));
        let mut keys = Vec::new();
        for event in &removed {
            if let Some(indexer) = indexer {
                let indexing = (indexer.as_ref(), &mut keys);
                event_index::write_entries(&self.db, &mut batch, Delete, indexing, event.position, event.data.get())?;
            }
        }
        match indexer {
            _ if removed.is_empty() => {}
            Some(_) => batch.put_cf(cf(&self.db, CF_META), META_INDEX_THROUGH, keep.to_key()),
            None => batch.delete_cf(cf(&self.db, CF_META), META_INDEX_THROUGH),
        }
        let mut lowest: HashMap<String, u64> = HashMap::new();
        for event in &removed {
            batch.delete_cf(cf(&self.db, CF_EVENTS), event.position.to_key());
            batch.delete_cf(
                cf(&self.db, CF_STREAMS),
                stream_key(&event.stream, event.version),
            );
            let low = lowest.entry(event.stream.clone()).or_insert(event.version);
            *low = (*low).min(event.version);
        }
        for (stream, version) in lowest {
            if version <= 1 {
                batch.delete_cf(cf(&self.db, CF_STREAM_HEADS), stream.as_bytes());
            } else {
                batch.put_cf(
                    cf(&self.db, CF_STREAM_HEADS),
                    stream.as_bytes(),
                    (version - 1).to_be_bytes(),
                );
            }
        }
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_IDEMPOTENCY), IteratorMode::Start)
        {
            let (key, value) = item?;
            if let Ok(record) = serde_json::from_slice::<IdempotencyRecord>(&value)
                && (record.first > keep || (record.count > 0 && record.first.get() + record.count - 1 > keep.get()))
            {
                batch.delete_cf(cf(&self.db, CF_IDEMPOTENCY), key);
            }
        }
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SNAPSHOTS), IteratorMode::Start)
        {
            let (key, _) = item?;
            if let Some(position) = Position::from_key(&key)
                && position > keep
            {
                batch.delete_cf(cf(&self.db, CF_SNAPSHOTS), key);
                batch.delete_cf(cf(&self.db, CF_META), checkpoint_key(position));
            }
        }
        match stream_sequence {
            Some(sequence) => batch.put_cf(
                cf(&self.db, CF_META),
                META_STREAM_SEQUENCE,
                sequence.to_be_bytes(),
            ),
            None => batch.delete_cf(cf(&self.db, CF_META), META_STREAM_SEQUENCE),
        }
        write_synced(&self.db, batch)?;
        let hash = match keep {
            Position::ZERO => ChainHash::GENESIS,
            _ => self
                .event(keep)?
                .map(|e| e.hash)
                .ok_or_else(|| StoreError::Corrupt {
                    position: keep,
                    problem: "missing below a truncated tail".into(),
                })?,
        };
        *head_guard = Head {
            position: keep,
            hash,
        };
        drop(head_guard);
        self.notify.send_replace(keep);
        Ok(removed)
    }

    /// Installs the indexer every later append indexes its events with,
    /// first bringing the index up to the head: the tail it lacks, or all
    /// of it when it is missing, of another version or ahead of the log.
    /// Returns how many events were indexed now. The first indexer
    /// installed stays; installing again, or on a read-only store, does
    /// nothing.
    pub fn index_with(
        &self,
        indexer: Arc<dyn EventIndexer>,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, StoreError> {
        // A read-only store appends nothing, so it has nothing to index.
        if self.read_only {
            return Ok(0);
        }
        let head_guard = self.head.lock().expect("head lock poisoned");
        if self.indexer.get().is_some() {
            return Ok(0);
        }
        let head = head_guard.position;
        let indexed = match self.index_status_at(indexer.version(), head)? {
            IndexStatus::Fresh => 0,
            IndexStatus::Behind { through } => {
                self.write_index(indexer.as_ref(), through, head, progress)?
            }
            IndexStatus::Missing | IndexStatus::OtherVersion { .. } | IndexStatus::Ahead { .. } => {
                self.rebuild_index_locked(indexer.as_ref(), head, progress)?
            }
        };
        // Unset until now, and the head lock keeps it so.
        let _ = self.indexer.set(indexer);
        drop(head_guard);
        Ok(indexed)
    }

    /// Drops the index and writes it again from every event (`latch audit
    /// reindex`, or a damaged index). Returns how many events were indexed.
    pub fn rebuild_index(
        &self,
        indexer: &dyn EventIndexer,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let head_guard = self.head.lock().expect("head lock poisoned");
        let indexed = self.rebuild_index_locked(indexer, head_guard.position, progress)?;
        drop(head_guard);
        Ok(indexed)
    }

    fn rebuild_index_locked(
        &self,
        indexer: &dyn EventIndexer,
        head: Position,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, StoreError> {
        // Untrusted from the first deletion until the last entry is written.
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf(&self.db, CF_META), META_INDEX_VERSION);
        batch.delete_cf(cf(&self.db, CF_META), META_INDEX_THROUGH);
        write_synced(&self.db, batch)?;
        event_index::clear(&self.db)?;
        self.write_index(indexer, Position::ZERO, head, progress)
    }

    /// Indexes the events after `after` through `head`, in batches, then
    /// records the index as whole through `head`.
    fn write_index(
        &self,
        indexer: &dyn EventIndexer,
        after: Position,
        head: Position,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<u64, StoreError> {
        const BATCH_EVENTS: u64 = 16_384;
        let mut batch = WriteBatch::default();
        let mut keys = Vec::new();
        let mut indexed = 0;
        self.for_each_data(after, head, |position, data| {
            let indexing = (indexer, &mut keys);
            event_index::write_entries(&self.db, &mut batch, Put, indexing, position, data)?;
            indexed += 1;
            if indexed % BATCH_EVENTS == 0 {
                self.db.write(std::mem::take(&mut batch))?;
                progress(position, head);
            }
            Ok(())
        })?;
        batch.put_cf(cf(&self.db, CF_META), META_INDEX_VERSION, indexer.version().to_be_bytes());
        batch.put_cf(cf(&self.db, CF_META), META_INDEX_THROUGH, head.to_key());
        write_synced(&self.db, batch)?;
        progress(head, head);
        Ok(indexed)
    }

    /// The data of every event after `after` through `head`, read raw:
    /// no record is decoded, only where its data lies found.
    fn for_each_data(
        &self,
        after: Position,
        head: Position,
        mut each: impl FnMut(Position, &str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.db.iterator_cf_opt(
            cf(&self.db, CF_EVENTS),
            scan_options(),
            IteratorMode::From(&after.next().to_key(), Direction::Forward),
        ) {
            let (key, value) = item?;
            let position = Position::from_key(&key).ok_or_else(|| StoreError::Corrupt {
                position: Position::ZERO,
                problem: "malformed event key".into(),
            })?;
            if position > head {
                break;
            }
            let corrupt = |problem: String| StoreError::Corrupt { position, problem };
            let record = value
                .get(32..)
                .ok_or_else(|| corrupt("record shorter than its hash".into()))?;
            let fields = record_format::record_fields(record).map_err(corrupt)?;
            let data = std::str::from_utf8(&record[fields.data])
                .map_err(|_| corrupt("data is not UTF-8".into()))?;
            each(position, data)?;
        }
        Ok(())
    }

    /// Whether the index can answer for the whole log, as indexed by an
    /// indexer of `version`.
    pub fn index_status(&self, version: u32) -> Result<IndexStatus, StoreError> {
        self.index_status_at(version, self.head().position)
    }

    fn index_status_at(&self, version: u32, head: Position) -> Result<IndexStatus, StoreError> {
        let Some(meta) = self.db.cf_handle(CF_META) else {
            return Ok(IndexStatus::Missing);
        };
        if self.db.cf_handle(CF_INDEX).is_none() {
            return Ok(IndexStatus::Missing);
        }
        let found = self
            .db
            .get_cf(meta, META_INDEX_VERSION)?
            .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
            .map(u32::from_be_bytes);
        let Some(found) = found else {
            return Ok(IndexStatus::Missing);
        };
        if found != version {
            return Ok(IndexStatus::OtherVersion { found });
        }
        let through = self.index_through()?.unwrap_or(Position::ZERO);
        Ok(match through.cmp(&head) {
            std::cmp::Ordering::Equal => IndexStatus::Fresh,
            std::cmp::Ordering::Less => IndexStatus::Behind { through },
            std::cmp::Ordering::Greater => IndexStatus::Ahead { through },
        })
    }

    fn index_through(&self) -> Result<Option<Position>, StoreError> {
        let Some(meta) = self.db.cf_handle(CF_META) else {
            return Ok(None);
        };
        Ok(self
            .db
            .get_cf(meta, META_INDEX_THROUGH)?
            .and_then(|bytes| Position::from_key(&bytes)))
    }

    /// The positions indexed under `key` after `after` and through
    /// `through`, in order. Only as complete as `index_status` says.
    pub fn indexed_positions<'a>(
        &'a self,
        key: &IndexKey,
        after: Position,
        through: Position,
    ) -> impl Iterator<Item = Result<Position, StoreError>> + use<'a> {
        event_index::positions(&self.db, key, after, through)
    }

    /// The position of the first entry of `index` whose key is at least
    /// `key` (an index of fixed-length keys, such as times).
    pub fn first_indexed_at_least(
        &self,
        index: u8,
        key: &[u8],
    ) -> Result<Option<Position>, StoreError> {
        event_index::first_at_least(&self.db, index, key)
    }

    /// The disk the index takes (its SST files, compressed as stored),
    /// and its entries in memory not yet flushed.
    pub fn index_bytes(&self) -> Result<u64, StoreError> {
        let Some(family) = self.db.cf_handle(CF_INDEX) else {
            return Ok(0);
        };
        let mut bytes = 0;
        for property in ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"] {
            bytes += self.db.property_int_value_cf(family, property)?.unwrap_or(0);
        }
        Ok(bytes)
    }

    /// Compares what the index holds with what the events say it should
    /// (every event through the head, keyed by `indexer`): a missing, extra
    /// or altered entry shows as a difference.
    pub fn check_index(
        &self,
        indexer: &dyn EventIndexer,
        progress: &mut dyn FnMut(Position, Position),
    ) -> Result<IndexCheck, StoreError> {
        let head = self.head().position;
        let status = self.index_status_at(indexer.version(), head)?;
        let mut expected = EntrySum::default();
        let mut keys = Vec::new();
        self.for_each_data(Position::ZERO, head, |position, data| {
            if position.get() % 16_384 == 0 {
                progress(position, head);
            }
            expected.add_event((indexer, &mut keys), position, data)
        })?;
        progress(head, head);
        let found = event_index::found_sum(&self.db)?;
        Ok(IndexCheck {
            status,
            expected,
            found,
        })
    }

    fn version_in_batch(
        &self,
        pending: &HashMap<String, u64>,
        stream: &str,
    ) -> Result<u64, StoreError> {
        match pending.get(stream) {
            Some(version) => Ok(*version),
            None => self.stream_version(stream),
        }
    }

    /// A stream's version: how many events it holds (0: none).
    pub fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(cf(&self.db, CF_STREAM_HEADS), stream.as_bytes())?
            .and_then(|bytes| <[u8; 8]>::try_from(&bytes[..]).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// The names of the streams that start with `prefix`, in order (e.g.
    /// every `account-` stream: one per account ever created).
    pub fn stream_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_STREAM_HEADS),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        ) {
            let (key, _) = item?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            names.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(names)
    }

    pub fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let family = cf(&self.db, CF_IDEMPOTENCY);
        let found = match self
            .db
            .get_pinned_cf(family, idempotency_index_key(key).as_bytes())?
        {
            Some(bytes) => Some(bytes),
            // A log written before keys were indexed by digest.
            None => self.db.get_pinned_cf(family, key.as_bytes())?,
        };
        let Some(bytes) = found else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                position: Position::ZERO,
                problem: format!("idempotency record {key:?}: {e}"),
            })
    }

    pub fn event(&self, position: Position) -> Result<Option<StoredEvent>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_EVENTS), position.to_key())?
        {
            None => Ok(None),
            Some(value) => stored_event::decode(position, &value).map(Some),
        }
    }

    /// The event at `position`, checked against its own hash (a read of a
    /// few events by an index cannot follow the chain; `verify_chain` does).
    pub fn event_checked(&self, position: Position) -> Result<Option<StoredEvent>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_EVENTS), position.to_key())?
        {
            None => Ok(None),
            Some(value) => match record_format::checked_hash(&value) {
                Err(problem) => Err(StoreError::ChainBroken {
                    position,
                    problem: problem.into(),
                }),
                Ok(_) => stored_event::decode(position, &value).map(Some),
            },
        }
    }

    /// Events from `from` on, in order, streamed (a replay of millions never
    /// holds them all). Stops with an error at a gap in positions.
    pub fn iter_from(
        &self,
        from: Position,
    ) -> impl Iterator<Item = Result<StoredEvent, StoreError>> + '_ {
        let from = from.max(Position::FIRST);
        let mut expected = from;
        self.db
            .iterator_cf(
                cf(&self.db, CF_EVENTS),
                IteratorMode::From(&from.to_key(), Direction::Forward),
            )
            .map(move |item| {
                let (key, value) = item?;
                let position = Position::from_key(&key).ok_or_else(|| StoreError::Corrupt {
                    position: expected,
                    problem: "malformed event key".into(),
                })?;
                if position != expected {
                    return Err(StoreError::Corrupt {
                        position: expected,
                        problem: format!("missing; next stored is {position}"),
                    });
                }
                expected = expected.next();
                stored_event::decode(position, &value)
            })
    }

    /// Up to `limit` events after `after`.
    pub fn read_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.iter_from(after.next()).take(limit).collect()
    }

    /// A stream's events from version `from_version` on (1-based), at most `limit`.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        for position in self.stream_positions(stream, from_version, limit)? {
            let event = self.event(position)?.ok_or_else(|| StoreError::Corrupt {
                position,
                problem: format!("indexed in {stream} but missing"),
            })?;
            events.push(event);
        }
        Ok(events)
    }

    /// The positions of a stream's events from `from_version` on, at most
    /// `limit`, without reading the events.
    pub fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError> {
        let start = stream_key(stream, from_version.max(1));
        let prefix_len = stream.len() + 1;
        let mut positions = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_STREAMS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if key.len() != prefix_len + 8
                || key[..prefix_len] != start[..prefix_len]
                || positions.len() >= limit
            {
                break;
            }
            let position = Position::from_key(&value).ok_or_else(|| StoreError::Corrupt {
                position: Position::ZERO,
                problem: format!("stream index of {stream}"),
            })?;
            positions.push(position);
        }
        Ok(positions)
    }

    /// Walks the chain from the first event: every record's hash must be
    /// the SHA-256 of its stored bytes and its `prev_hash` the hash before
    /// it, with no gap in positions. Reports the first break.
    pub fn verify_chain(&self) -> Result<ChainVerdict, StoreError> {
        self.verify_chain_from(Position::FIRST, ChainHash::GENESIS)
    }

    /// As `verify_chain`, from `from` on, trusting `prev` as the hash before it.
    pub fn verify_chain_from(
        &self,
        from: Position,
        prev: ChainHash,
    ) -> Result<ChainVerdict, StoreError> {
        // The data is never parsed, nor a record copied: a read and a
        // SHA-256 an event.
        let mut checked = 0u64;
        let mut expected = from.max(Position::FIRST);
        let mut head_hash = prev;
        let mut records = self
            .db
            .raw_iterator_cf_opt(cf(&self.db, CF_EVENTS), scan_options());
        records.seek(expected.to_key());
        while let (Some(key), Some(value)) = (records.key(), records.value()) {
            match check_chained(expected, head_hash, key, value) {
                Ok((hash, _)) => {
                    checked += 1;
                    head_hash = hash;
                    expected = expected.next();
                }
                Err(StoreError::ChainBroken { position, problem }) => {
                    return Ok(ChainVerdict::Broken { position, problem });
                }
                Err(other) => return Err(other),
            }
            records.next();
        }
        records.status()?;
        Ok(ChainVerdict::Intact {
            checked,
            head: Position::new(expected.get() - 1),
            head_hash,
        })
    }

    /// Events from `from` on, in order, each checked against the chain as
    /// it is read (its hash is the SHA-256 of its stored bytes, its
    /// `prev_hash` the hash before it, no position missing), `prev` being
    /// the hash before `from`. The first break ends the iteration with
    /// `StoreError::ChainBroken`: what replays for audit read, so an answer
    /// never rests on an altered record.
    ///
    /// Each record comes with its data unparsed: a replay parses each
    /// event once, from `ChainedRecord::data`.
    pub fn iter_chained_records(
        &self,
        from: Position,
        prev: ChainHash,
    ) -> impl Iterator<Item = Result<ChainedRecord, StoreError>> + '_ {
        let mut expected = from.max(Position::FIRST);
        let mut prev = prev;
        let mut broken = false;
        self.db
            .iterator_cf_opt(
                cf(&self.db, CF_EVENTS),
                scan_options(),
                IteratorMode::From(&expected.to_key(), Direction::Forward),
            )
            .map_while(move |item| {
                if broken {
                    return None;
                }
                let checked = item.map_err(StoreError::from).and_then(|(key, value)| {
                    let (hash, fields) = check_chained(expected, prev, &key, &value)?;
                    Ok(ChainedRecord {
                        position: expected,
                        version: fields.version,
                        hash,
                        value,
                        data: fields.data,
                    })
                });
                match &checked {
                    Ok(record) => {
                        prev = record.hash;
                        expected = expected.next();
                    }
                    Err(_) => broken = true,
                }
                Some(checked)
            })
    }

    /// The hash of the event at `position` (the genesis hash for position 0),
    /// as the anchor for `iter_chained_records` from the position after it.
    pub fn hash_at(&self, position: Position) -> Result<Option<ChainHash>, StoreError> {
        if position == Position::ZERO {
            return Ok(Some(ChainHash::GENESIS));
        }
        Ok(self.event(position)?.map(|event| event.hash))
    }

    /// The records from `from` through `through` as the chain covers them
    /// (the stored hash, and the canonical record whatever its stored
    /// format), for exports. Stops early when `each` says so.
    pub fn for_each_record(
        &self,
        from: Position,
        through: Position,
        mut each: impl FnMut(Position, &[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let from = from.max(Position::FIRST);
        for item in self.db.iterator_cf_opt(
            cf(&self.db, CF_EVENTS),
            scan_options(),
            IteratorMode::From(&from.to_key(), Direction::Forward),
        ) {
            let (key, value) = item?;
            let position = Position::from_key(&key).ok_or_else(|| StoreError::Corrupt {
                position: from,
                problem: "malformed event key".into(),
            })?;
            if position > through {
                break;
            }
            let (hash, record) = value.split_at(value.len().min(32));
            let record = record_format::canonical(record)
                .map_err(|problem| StoreError::Corrupt { position, problem })?;
            if !each(position, hash, &record) {
                break;
            }
        }
        Ok(())
    }

    /// Stores a projection snapshot taken at `position` (not synced: a lost
    /// snapshot only means a longer replay) and keeps the newest
    /// `DEFAULT_CHECKPOINTS_KEPT`.
    pub fn save_snapshot(&self, position: Position, bytes: &[u8]) -> Result<(), StoreError> {
        self.save_snapshot_keeping(position, bytes, None, DEFAULT_CHECKPOINTS_KEPT)
    }

    /// Stores a checkpoint (the state at `position`, whose last event has
    /// the chain hash `hash`; not synced) and deletes all but the newest
    /// `keep` (at least 1). The state goes straight to a table file (no
    /// write-ahead log: a checkpoint can be tens of megabytes, which every
    /// later open would otherwise replay), and a small entry in `meta`
    /// (`checkpoint/<position>` → hash) lists it, so choosing one never
    /// reads the others.
    pub fn save_snapshot_keeping(
        &self,
        position: Position,
        bytes: &[u8],
        hash: Option<ChainHash>,
        keep: usize,
    ) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let snapshots = cf(&self.db, CF_SNAPSHOTS);
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        self.db.put_cf_opt(snapshots, position.to_key(), bytes, &unlogged)?;
        self.db.flush_cf(snapshots)?;
        let first_listed = !self.has_checkpoint_listing()?;
        let listed = checkpoint_key(position);
        match hash {
            Some(hash) => self.db.put_cf(cf(&self.db, CF_META), listed, hash.as_bytes())?,
            None => self.db.delete_cf(cf(&self.db, CF_META), listed)?,
        }
        if first_listed && hash.is_some() {
            // Checkpoints an older latchd saved unlisted: from now on the
            // listing is what replays read, so they go.
            let unlisted: Vec<Box<[u8]>> = self
                .db
                .iterator_cf(snapshots, IteratorMode::Start)
                .map(|item| item.map(|(key, _)| key))
                .collect::<Result<_, _>>()?;
            for key in unlisted {
                if Position::from_key(&key) != Some(position) {
                    self.db.delete_cf(snapshots, key)?;
                }
            }
        }
        let stale: Vec<Position> = self
            .snapshot_positions_through(Position::new(u64::MAX))?
            .into_iter()
            .map(|(position, _)| position)
            .skip(keep.max(1))
            .collect();
        for position in stale {
            self.db.delete_cf(snapshots, position.to_key())?;
            self.db.delete_cf(cf(&self.db, CF_META), checkpoint_key(position))?;
        }
        Ok(())
    }

    /// Checkpoints at or before `position`, newest first: each position
    /// with the chain hash its listing records. A log whose checkpoints
    /// predate the listing (an older latchd kept two, unlisted) has them
    /// read instead, with `None` for the hash. Reads no listed checkpoint.
    pub fn snapshot_positions_through(
        &self,
        position: Position,
    ) -> Result<Vec<(Position, Option<ChainHash>)>, StoreError> {
        if !self.has_checkpoint_listing()? {
            return self
                .db
                .iterator_cf(
                    cf(&self.db, CF_SNAPSHOTS),
                    IteratorMode::From(&position.to_key(), Direction::Reverse),
                )
                .map(|item| item.map(|(key, _)| Position::from_key(&key).map(|p| (p, None))))
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()
                .map_err(StoreError::from);
        }
        let mut listed = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_META),
            IteratorMode::From(&checkpoint_key(position), Direction::Reverse),
        ) {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(CHECKPOINT_PREFIX) else {
                break;
            };
            if let Some(at) = Position::from_key(rest) {
                listed.push((at, ChainHash::from_slice(&value)));
            }
        }
        Ok(listed)
    }

    /// Whether any checkpoint is listed in `meta` (one small read).
    fn has_checkpoint_listing(&self) -> Result<bool, StoreError> {
        match self
            .db
            .iterator_cf(
                cf(&self.db, CF_META),
                IteratorMode::From(CHECKPOINT_PREFIX, Direction::Forward),
            )
            .next()
        {
            Some(item) => Ok(item?.0.starts_with(CHECKPOINT_PREFIX)),
            None => Ok(false),
        }
    }

    /// `read` of the checkpoint saved at `position`, if any, in place: a
    /// state of a million tokens is not copied out of RocksDB first.
    pub fn read_snapshot<T>(
        &self,
        position: Position,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(cf(&self.db, CF_SNAPSHOTS), position.to_key())?
            .map(|bytes| read(&bytes)))
    }

    /// How many checkpoints are kept, and their bytes in all.
    pub fn snapshots_size(&self) -> Result<(usize, u64), StoreError> {
        let mut count = 0;
        let mut bytes = 0u64;
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SNAPSHOTS), IteratorMode::Start)
        {
            let (_, value) = item?;
            count += 1;
            bytes += value.len() as u64;
        }
        Ok((count, bytes))
    }

    /// The newest snapshot at or below the head, if any.
    pub fn latest_snapshot(&self) -> Result<Option<(Position, Vec<u8>)>, StoreError> {
        let head = self.head().position;
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SNAPSHOTS), IteratorMode::End)
        {
            let (key, value) = item?;
            match Position::from_key(&key) {
                Some(position) if position <= head => {
                    return Ok(Some((position, value.into_vec())));
                }
                _ => continue,
            }
        }
        Ok(None)
    }

    /// Writes (or overwrites) one activity record. Written to the side
    /// records' WAL but not fsync'd: it survives a crash of latchd, not
    /// necessarily power loss; a per-request fsync would cap reads at disk
    /// speed. With an activity indexer installed (`index_activity_with`),
    /// its entries go in the record's own batch.
    pub fn put_activity(&self, id: [u8; 16], record: &[u8]) -> Result<(), StoreError> {
        let indexer = self.activity_indexer.get().map(|i| i.as_ref());
        activity_index::put(self.writable_records()?, indexer, id, record)
    }

    /// Installs the indexer of activity records: from now on every record
    /// is written with its entries. An index that is not whole is then
    /// written from the records already there on a thread of its own
    /// (readers scan every record meanwhile, latchd serves), after
    /// clearing it if another version wrote it. Call it before anything
    /// writes activity records: a record whose batch was made before the
    /// indexer was installed and written while the index is being filled
    /// could miss its entries.
    pub fn index_activity_with(
        self: &Arc<Self>,
        indexer: Arc<dyn ActivityIndexer>,
    ) -> Result<ActivityIndexing, StoreError> {
        let Some(side) = self.records.as_ref().filter(|_| !self.read_only) else {
            return Ok(ActivityIndexing::whole());
        };
        if self.activity_indexer.get().is_some() {
            return Ok(ActivityIndexing::whole());
        }
        let version = indexer.version().to_be_bytes();
        match activity_index::version(side)? {
            Some(found) if found == version => {
                let _ = self.activity_indexer.set(indexer);
                return Ok(ActivityIndexing::whole());
            }
            // Another version's keys: none of its entries can stay.
            Some(_) => activity_index::clear(side)?,
            // Not whole, but every entry there is this version's (or a
            // pointer readers check): filling adds what is missing.
            None => {}
        }
        // Installed before filling: a record written meanwhile carries its
        // own entries, and the version is written only after the fill.
        let _ = self.activity_indexer.set(indexer.clone());
        // Nothing to read (a new log): whole now, with no thread holding
        // the store open after its owner lets go.
        if !activity_index::any_record(&self.db, side)? {
            activity_index::fill(&self.db, side, indexer.as_ref())?;
            return Ok(ActivityIndexing::whole());
        }
        let store = Arc::clone(self);
        let fill = move || {
            let started = std::time::Instant::now();
            let side = store.records.as_ref().ok_or(StoreError::ReadOnly)?;
            let records = activity_index::fill(&store.db, side, indexer.as_ref())?;
            tracing::info!(
                records,
                took_ms = started.elapsed().as_millis() as u64,
                "indexed the API activity records"
            );
            Ok(records)
        };
        let thread = std::thread::Builder::new()
            .name("activity-index".into())
            .spawn(fill.clone());
        match thread {
            Ok(thread) => Ok(ActivityIndexing::building(thread)),
            Err(_) => {
                fill()?;
                Ok(ActivityIndexing::whole())
            }
        }
    }

    /// Drops the activity index and writes it again from every record
    /// (`latch audit reindex`). Returns how many records were read.
    pub fn reindex_activity(&self, indexer: &dyn ActivityIndexer) -> Result<u64, StoreError> {
        let side = self.writable_records()?;
        activity_index::clear(side)?;
        activity_index::fill(&self.db, side, indexer)
    }

    /// Whether the activity index holds every record, as an indexer of
    /// `version` derives their keys: only then does `scan_activity_by`
    /// find all of a key's records.
    pub fn activity_index_is_complete(&self, version: u32) -> Result<bool, StoreError> {
        activity_index::is_complete(self.records.as_ref(), version)
    }

    /// The activity records indexed under `key`, after `after` (or from the
    /// first), oldest first, for as long as `keep` says. An entry is a
    /// pointer: check that each record is one `key` is about.
    pub fn scan_activity_by(
        &self,
        key: &IndexKey,
        after: Option<[u8; 16]>,
        mut keep: impl FnMut([u8; 16], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        match &self.records {
            Some(side) => activity_index::scan(&self.db, side, key, after, &mut keep),
            None => Ok(()),
        }
    }

    /// Writes (or overwrites) one token's usage record. Not fsync'd, like
    /// activity records.
    pub fn put_usage(&self, token: [u8; 16], record: &[u8]) -> Result<(), StoreError> {
        self.writable_records()?.put(CF_USAGE, &token, record)
    }

    /// Writes (or overwrites) one webhook record (an endpoint or a
    /// delivery's state), keyed as latchd's webhooks choose. Not fsync'd,
    /// like activity records: it survives a crash of latchd.
    pub fn put_webhook_record(&self, key: &[u8], record: &[u8]) -> Result<(), StoreError> {
        self.writable_records()?.put(CF_WEBHOOKS, key, record)
    }

    pub fn delete_webhook_record(&self, key: &[u8]) -> Result<(), StoreError> {
        self.writable_records()?.delete(CF_WEBHOOKS, key)
    }

    /// The webhook records whose keys start with `prefix`, in key order.
    pub fn webhook_records(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        match &self.records {
            Some(records) => records.scan_prefix(CF_WEBHOOKS, prefix),
            None => Ok(Vec::new()),
        }
    }

    fn writable_records(&self) -> Result<&SideRecords, StoreError> {
        match &self.records {
            Some(records) if !self.read_only => Ok(records),
            _ => Err(StoreError::ReadOnly),
        }
    }

    /// One token's usage record, if it was ever used.
    pub fn usage(&self, token: [u8; 16]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(records) = &self.records
            && let Some(found) = records.get(CF_USAGE, &token)?
        {
            return Ok(Some(found));
        }
        match self.db.cf_handle(CF_USAGE) {
            Some(usage) => Ok(self.db.get_cf(usage, token)?),
            None => Ok(None),
        }
    }

    /// Activity records after `after` (or from the first), oldest first,
    /// for as long as `keep` says to continue: those an older latchd kept in
    /// the log itself, then the side records (all newer: ids are UUIDv7).
    pub fn scan_activity(
        &self,
        after: Option<[u8; 16]>,
        mut keep: impl FnMut([u8; 16], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        crate::side_records::scan_activity(&self.db, self.records.as_ref(), after, &mut keep)?;
        Ok(())
    }

    /// Deletes the activity records with ids before `end` (wherever they
    /// are kept) and gives their space back: latchd's retention.
    pub fn delete_activity_before(&self, end: [u8; 16]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        // The records go first, then their entries (see `entries_before`).
        let entries = match (&self.records, self.activity_indexer.get()) {
            (Some(records), Some(indexer)) => {
                activity_index::entries_before(&self.db, records, indexer.as_ref(), end)?
            }
            (Some(records), None) => {
                activity_index::mark_not_whole(records)?;
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        crate::side_records::delete_family_before(&self.db, CF_ACTIVITY, end)?;
        if let Some(records) = &self.records {
            records.delete_before(CF_ACTIVITY, end)?;
            activity_index::delete_entries(records, &entries)?;
        }
        Ok(())
    }

    /// A consistent copy of the whole store (RocksDB checkpoints: hard links
    /// where it can) in `dir`, which must not exist yet: the log, then its
    /// side records inside it.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir.as_ref())?;
        if let Some(records) = &self.records {
            records.checkpoint(dir.as_ref())?;
        }
        Ok(())
    }
}

/// Whether the index answers for the whole log (`EventStore::index_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStatus {
    /// Indexed through the head by an indexer of the version asked for.
    Fresh,
    /// Never built, or being rebuilt.
    Missing,
    /// Built by an indexer of another version.
    OtherVersion { found: u32 },
    /// Events after `through` were appended without indexing (an older
    /// latchd, or a store without an indexer).
    Behind { through: Position },
    /// Says it indexed past the head: it is not this log's.
    Ahead { through: Position },
}

impl IndexStatus {
    pub fn is_fresh(self) -> bool {
        self == IndexStatus::Fresh
    }
}

/// What `EventStore::check_index` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCheck {
    pub status: IndexStatus,
    /// The entries the events call for.
    pub expected: EntrySum,
    /// The entries the index holds.
    pub found: EntrySum,
}

impl IndexCheck {
    /// Fresh, and holding exactly the entries the events call for.
    pub fn is_sound(&self) -> bool {
        self.status.is_fresh() && self.expected == self.found
    }
}

/// What one append will write, before it is written (`EventStore::prepare`).
pub struct PreparedAppend {
    batch: WriteBatch,
    outcomes: Vec<Result<Appended, AppendRejected>>,
    events: Vec<StoredEvent>,
    idempotency: Vec<(String, IdempotencyRecord)>,
    before: Head,
    after: Head,
    /// Stream versions as this append (and any it follows) leaves them.
    versions: HashMap<String, u64>,
    /// Idempotency records this append (and any it follows) writes, by key.
    keys: HashMap<String, IdempotencyRecord>,
}

impl PreparedAppend {
    /// The log's head once this append is written.
    pub fn after(&self) -> Head {
        self.after
    }

    /// The events it appends, exactly as they will be stored.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The idempotency records it writes, each under its index key
    /// (`idempotency_index_key`), for replication.
    pub fn idempotency_records(&self) -> &[(String, IdempotencyRecord)] {
        &self.idempotency
    }
}

/// One event another node appended, to append exactly as it was stored.
#[derive(Debug, Clone)]
pub struct ReplicatedEvent {
    /// The stored record's bytes (`StoredEvent::record`).
    pub record: String,
    /// The idempotency record written with this event, under its index key.
    pub idempotency: Option<(String, IdempotencyRecord)>,
}

/// Read options for a walk of the log: read ahead, and leave the block
/// cache to the point reads that serve requests (a whole-log walk would
/// evict them for blocks it never reads again).
fn scan_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.fill_cache(false);
    options.set_readahead_size(4 << 20);
    options
}

/// Checks the stored record `key` → `value` as the one at `expected` whose
/// `prev_hash` must be `prev`: its key, its hash (of its canonical record),
/// its position and its link. Returns its hash and fields.
fn check_chained(
    expected: Position,
    prev: ChainHash,
    key: &[u8],
    value: &[u8],
) -> Result<(ChainHash, record_format::RecordFields), StoreError> {
    let broken_here = |problem: String| StoreError::ChainBroken {
        position: expected,
        problem,
    };
    match Position::from_key(key) {
        Some(p) if p == expected => {}
        Some(p) => return Err(broken_here(format!("missing; next stored is {p}"))),
        None => return Err(broken_here("malformed key".into())),
    }
    let hash = record_format::checked_hash(value).map_err(|problem| broken_here(problem.into()))?;
    let corrupt = |problem: String| {
        broken_here(format!("stored event at position {expected} is corrupt: {problem}"))
    };
    let fields = record_format::record_fields(&value[32..]).map_err(corrupt)?;
    if fields.position != expected {
        return Err(corrupt(format!(
            "record says position {} but is stored at {expected}",
            fields.position
        )));
    }
    if fields.prev_hash != prev {
        return Err(broken_here(
            "prev_hash does not match the previous event's hash".into(),
        ));
    }
    Ok((hash, fields))
}

/// The key an idempotency record is stored under: the SHA-256 of the
/// caller-scoped key, so the index (and what replicates it) never holds a
/// key, which is a capability to replay.
pub fn idempotency_index_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{IDEMPOTENCY_DIGEST_PREFIX}{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Writes `batch` and syncs it to disk before returning.
fn write_synced(db: &DB, batch: WriteBatch) -> Result<(), StoreError> {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(batch, &sync)?;
    Ok(())
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("column families are created on open")
}

fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 9);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The log id in `meta`, if the log has one (and the family exists).
fn read_log_id(db: &DB) -> Result<Option<LogId>, StoreError> {
    let Some(meta) = db.cf_handle(CF_META) else {
        return Ok(None);
    };
    let Some(bytes) = db.get_cf(meta, META_LOG_ID)? else {
        return Ok(None);
    };
    let bytes: [u8; 16] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt {
            position: Position::ZERO,
            problem: "the log id is not 16 bytes".into(),
        })?;
    Ok(Some(LogId::from_bytes(bytes)))
}
