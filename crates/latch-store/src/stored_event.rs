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
    pub data: Box<RawValue>,
}

/// Reads a record's own fields (its data is left as it is).
pub(crate) fn parse_record(record: &[u8]) -> Result<Parsed, serde_json::Error> {
    let parsed: RecordIn<'_> = serde_json::from_slice(record)?;
    Ok(Parsed {
        position: parsed.position,
        stream: parsed.stream,
        version: parsed.version,
        prev_hash: parsed.prev_hash,
        data: parsed.data.to_owned(),
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

/// What the chain and a replay need of a record: its position, version and
/// `prev_hash`, and where its data lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub position: Position,
    pub version: u64,
    pub prev_hash: ChainHash,
    pub data: std::ops::Range<usize>,
}

/// A record's `RecordFields`, read from the one shape the log writes —
/// `{"position":N,"stream":"…","version":N,"prev_hash":"<64 hex>","data":…}`
/// — without parsing the data (what keeps `verify_chain` to a read and a
/// SHA-256 an event, and a replay to one parse of each envelope). A record
/// of any other shape is parsed whole.
pub(crate) fn record_fields(record: &[u8]) -> Result<RecordFields, String> {
    if let Some(fields) = fields_as_written(record) {
        return Ok(fields);
    }
    let parsed: RecordIn<'_> =
        serde_json::from_slice(record).map_err(|e| format!("record does not parse: {e}"))?;
    // The data borrows from the record: its place is its offset there.
    let start = parsed.data.get().as_ptr() as usize - record.as_ptr() as usize;
    Ok(RecordFields {
        position: parsed.position,
        version: parsed.version,
        prev_hash: parsed.prev_hash,
        data: start..start + parsed.data.get().len(),
    })
}

fn fields_as_written(record: &[u8]) -> Option<RecordFields> {
    let rest = record.strip_prefix(b"{\"position\":")?;
    let (position, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(b",\"stream\":\"")?;
    let mut at = 0;
    loop {
        match rest.get(at)? {
            b'"' => break,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    let rest = rest.get(at + 1..)?.strip_prefix(b",\"version\":")?;
    let (version, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(b",\"prev_hash\":\"")?;
    let (hex, rest) = (rest.get(..64)?, rest.get(64..)?);
    let data = rest.strip_prefix(b"\",\"data\":")?;
    if record.last() != Some(&b'}') || data.len() < 2 {
        return None;
    }
    let start = record.len() - data.len();
    Some(RecordFields {
        position: Position::new(position),
        version,
        prev_hash: ChainHash::from_hex(std::str::from_utf8(hex).ok()?)?,
        data: start..record.len() - 1,
    })
}

/// A JSON unsigned integer at the start of `bytes` (no sign, no leading
/// zero but `0` itself), and what follows it.
fn leading_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && bytes[0] == b'0') {
        return None;
    }
    let number = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((number, &bytes[digits..]))
}

/// The stored hash of a stored value (`hash ‖ record`), if it is the
/// SHA-256 of the record bytes; otherwise what is wrong.
pub(crate) fn checked_hash(value: &[u8]) -> Result<ChainHash, &'static str> {
    if value.len() < 32 {
        return Err("record shorter than its hash");
    }
    let hash = ChainHash::of(&value[32..]);
    if hash.as_bytes() != &value[..32] {
        return Err("stored bytes do not match their hash");
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(position: u64, stream: &str, prev: ChainHash) -> Vec<u8> {
        let data = RawValue::from_string(r#"{"note":"\"prev_hash\":\"0\""}"#.into()).unwrap();
        let (value, _) = encode(Position::new(position), stream, 7, prev, &data);
        value[32..].to_vec()
    }

    proptest! {
        /// Whatever the stream's name holds (quotes, backslashes, any
        /// character), the fields read from the written shape are the ones
        /// a full parse gives.
        #[test]
        fn the_written_shape_reads_as_a_full_parse_does(
            position in 1u64..u64::MAX,
            stream in any::<String>(),
            prev in any::<[u8; 32]>(),
        ) {
            let prev = ChainHash::from_slice(&prev).unwrap();
            let record = written(position, &stream, prev);
            let parsed = parse_record(&record).unwrap();
            let fields = fields_as_written(&record).expect("the written shape");
            prop_assert_eq!((fields.position, fields.version, fields.prev_hash), (parsed.position, parsed.version, parsed.prev_hash));
            prop_assert_eq!(&record[fields.data.clone()], parsed.data.get().as_bytes());
            prop_assert_eq!(record_fields(&record), Ok(fields));
        }
    }

    #[test]
    fn another_shape_is_parsed_whole_and_garbage_is_refused() {
        let prev = ChainHash::of(b"before");
        let reordered = format!(
            r#"{{"stream":"s","position":5,"version":1,"prev_hash":"{}","data":{{}}}}"#,
            prev.to_hex()
        );
        assert_eq!(fields_as_written(reordered.as_bytes()), None);
        let fields = record_fields(reordered.as_bytes()).unwrap();
        assert_eq!((fields.position, fields.prev_hash), (Position::new(5), prev));
        assert_eq!(&reordered.as_bytes()[fields.data], b"{}");
        let leading_zero = String::from_utf8(written(5, "s", prev))
            .unwrap()
            .replacen(":5,", ":05,", 1);
        assert_eq!(fields_as_written(leading_zero.as_bytes()), None);
        assert!(record_fields(leading_zero.as_bytes()).is_err());
        assert!(record_fields(b"{\"position\":1,\"stream\":\"unterminated").is_err());
        assert!(record_fields(b"").is_err());
    }
}
