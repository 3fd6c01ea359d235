//! `StoredEvent`: one record of the log, exactly as stored.
//!
//! A RocksDB value is `hash (32 bytes) ‖ record`, the record in one of the
//! `RecordFormat`s, and `hash` the SHA-256 of its canonical record (the
//! JSON `{"position","stream","version","prev_hash","data"}`).
//! Verification recomputes the hash from the bytes as stored.

use latch_core::Position;
use serde_json::value::RawValue;

use crate::chain_hash::ChainHash;
use crate::record_format::{self, RecordParts};
use crate::store_error::StoreError;

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: Position,
    pub stream: String,
    /// The event's version within its stream (1-based).
    pub version: u64,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    /// The event's data as raw JSON (for Latch, an `EventEnvelope`).
    pub data: Box<RawValue>,
}

impl StoredEvent {
    /// The record bytes the chain hash covers, as the log wrote them (the
    /// encoding is deterministic: written again, they hash to `hash`).
    /// What latchd publishes so followers can check the chain themselves.
    pub fn record(&self) -> String {
        let record = self.parts().canonical();
        debug_assert_eq!(ChainHash::of(&record), self.hash);
        String::from_utf8(record).expect("the canonical record is UTF-8")
    }

    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            position: self.position,
            stream: std::borrow::Cow::Borrowed(&self.stream),
            version: self.version,
            prev_hash: self.prev_hash,
            data: self.data.get().as_bytes(),
        }
    }

    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(self.data.get()).map_err(|e| StoreError::Corrupt {
            position: self.position,
            problem: format!("data does not decode: {e}"),
        })
    }
}

/// Parses a stored value. `key_position` is where it was found, so a record
/// moved to another key is caught.
pub(crate) fn decode(key_position: Position, value: &[u8]) -> Result<StoredEvent, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt {
        position: key_position,
        problem,
    };
    if value.len() < 32 {
        return Err(corrupt("record shorter than its hash".into()));
    }
    let (hash, record) = value.split_at(32);
    let parts = record_format::record_parts(record).map_err(corrupt)?;
    if parts.position != key_position {
        return Err(corrupt(format!(
            "record says position {} but is stored at {key_position}",
            parts.position
        )));
    }
    let hash = ChainHash::from_slice(hash).expect("split at 32");
    owned(parts, hash).map_err(corrupt)
}

/// The stored event of a record's `parts`, whose hash is `hash`.
fn owned(parts: RecordParts<'_>, hash: ChainHash) -> Result<StoredEvent, String> {
    let data = std::str::from_utf8(parts.data).map_err(|_| "data is not UTF-8".to_owned())?;
    let data =
        RawValue::from_string(data.to_owned()).map_err(|e| format!("data is not JSON: {e}"))?;
    Ok(StoredEvent {
        position: parts.position,
        stream: parts.stream.into_owned(),
        version: parts.version,
        prev_hash: parts.prev_hash,
        hash,
        data,
    })
}
