//! `StoredEvent`: one record of the log, exactly as stored.
//!
//! A RocksDB value is `hash (32 bytes) ‖ record`, where `record` is the
//! JSON `{"position","stream","version","prev_hash","data"}` and `hash` is
//! SHA-256 of those record bytes. Verification recomputes the hash over the
//! bytes as stored, never over a re-serialisation.

use latch_core::Position;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chain_hash::ChainHash;
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
        let record = serde_json::to_string(&RecordOut {
            position: self.position,
            stream: &self.stream,
            version: self.version,
            prev_hash: self.prev_hash,
            data: &self.data,
        })
        .expect("serialising plain fields cannot fail");
        debug_assert_eq!(ChainHash::of(record.as_bytes()), self.hash);
        record
    }

    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(self.data.get()).map_err(|e| StoreError::Corrupt {
            position: self.position,
            problem: format!("data does not decode: {e}"),
        })
    }
}

#[derive(Serialize)]
struct RecordOut<'a> {
    position: Position,
    stream: &'a str,
    version: u64,
    prev_hash: ChainHash,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    position: Position,
    stream: String,
    version: u64,
    prev_hash: ChainHash,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// The fields of a record another node stored (see `parse_record`).
pub(crate) struct Parsed {
    pub position: Position,
    pub stream: String,
    pub version: u64,
    pub prev_hash: ChainHash,
}

/// Reads a record's own fields (its data is left as it is).
pub(crate) fn parse_record(record: &[u8]) -> Result<Parsed, serde_json::Error> {
    let parsed: RecordIn<'_> = serde_json::from_slice(record)?;
    Ok(Parsed {
        position: parsed.position,
        stream: parsed.stream,
        version: parsed.version,
        prev_hash: parsed.prev_hash,
    })
}

/// The bytes to store for a new event, and its hash.
pub(crate) fn encode(
    position: Position,
    stream: &str,
    version: u64,
    prev_hash: ChainHash,
    data: &RawValue,
) -> (Vec<u8>, ChainHash) {
    let record = serde_json::to_vec(&RecordOut {
        position,
        stream,
        version,
        prev_hash,
        data,
    })
    .expect("serialising plain fields cannot fail");
    let hash = ChainHash::of(&record);
    let mut value = Vec::with_capacity(32 + record.len());
    value.extend_from_slice(hash.as_bytes());
    value.extend_from_slice(&record);
    (value, hash)
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
    let parsed: RecordIn<'_> = serde_json::from_slice(record)
        .map_err(|e| corrupt(format!("record does not parse: {e}")))?;
    if parsed.position != key_position {
        return Err(corrupt(format!(
            "record says position {} but is stored at {key_position}",
            parsed.position
        )));
    }
    Ok(StoredEvent {
        position: parsed.position,
        stream: parsed.stream,
        version: parsed.version,
        prev_hash: parsed.prev_hash,
        hash: ChainHash::from_slice(hash).expect("split at 32"),
        data: parsed.data.to_owned(),
    })
}

/// Whether the stored hash is the SHA-256 of the stored record bytes.
pub(crate) fn hash_matches(value: &[u8]) -> bool {
    value.len() >= 32 && ChainHash::of(&value[32..]).as_bytes() == &value[..32]
}
