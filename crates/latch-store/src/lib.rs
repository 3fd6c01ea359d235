//! Latch's event log: append-only, hash-chained, on RocksDB.
//!
//! Knows nothing of accounts or tokens: it stores JSON data in streams at
//! global positions in compact binary records (or the JSON ones of older
//! logs), chains them with SHA-256 over one canonical form, remembers
//! idempotency keys forever, indexes events under the keys an installed
//! `EventIndexer` derives, and tells followers when the head moves; and it
//! writes and verifies exports that anyone can check without Latch.
#![forbid(unsafe_code)]

mod activity_index;
mod append;
mod chain_hash;
mod chain_verdict;
mod chained_record;
mod event_index;
mod event_store;
mod expected_version;
mod export;
mod record_format;
mod record_upgrade;
mod side_records;
mod store_error;
mod stored_event;

pub use activity_index::{ActivityIndexer, ActivityIndexing};
pub use append::{
    AppendRejected, AppendRequest, Appended, IdempotencyKey, IdempotencyRecord, NewEvent,
};
pub use chain_hash::ChainHash;
pub use chain_verdict::ChainVerdict;
pub use chained_record::ChainedRecord;
pub use event_index::{EntrySum, EventIndexer, IndexKey};
pub use event_store::{
    DEFAULT_CHECKPOINTS_KEPT, EventStore, Head, IndexCheck, IndexStatus, PreparedAppend,
    ReplicatedEvent, idempotency_index_key,
};
pub use expected_version::ExpectedVersion;
pub use export::{ExportVerdict, positions_between, verify_export, write_export};
pub use record_format::RecordFormat;
pub use record_upgrade::{RecordFormatCounts, RecordUpgrade};
pub use serde_json::value::RawValue;
pub use store_error::StoreError;
pub use stored_event::StoredEvent;
