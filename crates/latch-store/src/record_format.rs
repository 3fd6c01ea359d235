//! `RecordFormat`: how a record of the log is stored (ADR 0027).
//!
//! A RocksDB value is `hash (32 bytes) ‖ stored record`. Whatever the
//! format, an event's chain hash is the SHA-256 of its *canonical record*:
//! the JSON `{"position":N,"stream":"…","version":N,"prev_hash":"<hex>","data":…}`
//! that Latch has always written. So a log keeps one chain, and one head,
//! across formats and across an upgrade from one to the other; exports,
//! replication and the feeds carry the canonical record, and anyone can
//! check it with a SHA-256 and no Latch.
//!
//! - `Json`: the stored record *is* the canonical record (it starts `{`).
//! - `Binary`: `0x02 ‖ position u64 ‖ version u64 ‖ prev_hash 32 bytes ‖
//!   stream length u32 ‖ stream (UTF-8) ‖ data`, integers big-endian. The
//!   data is the event's JSON as the canonical record holds it; the rest is
//!   the envelope without its JSON: no field names, no hex, no escapes.
//!   Every field has one encoding and renders to one canonical text, so a
//!   changed byte changes the canonical record, and so the hash.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use latch_core::Position;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::chain_hash::ChainHash;

/// The formats a record can be stored in. Both are read; new records are
/// written in the store's chosen one (`EventStore::set_record_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// The canonical JSON record, as every Latch before this format wrote.
    Json,
    /// The compact binary record (the default).
    #[default]
    Binary,
}

impl RecordFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Binary => "binary",
        }
    }
}

impl fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "json" => Ok(Self::Json),
            "binary" => Ok(Self::Binary),
            other => Err(format!("unknown record format {other:?}: json or binary")),
        }
    }
}

/// The first byte of a binary record (a JSON one starts `{`).
const BINARY_TAG: u8 = 0x02;
/// Tag, position, version, prev_hash, stream length.
const BINARY_HEADER: usize = 1 + 8 + 8 + 32 + 4;

/// What the chain and a replay need of a record: its position, version and
/// `prev_hash`, and where its data lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub position: Position,
    pub version: u64,
    pub prev_hash: ChainHash,
    pub data: Range<usize>,
}

/// Every field of a stored record, borrowed from it.
pub(crate) struct RecordParts<'a> {
    pub position: Position,
    pub stream: Cow<'a, str>,
    pub version: u64,
    pub prev_hash: ChainHash,
    pub data: &'a [u8],
}

/// The value to store for a new event (`hash ‖ record`), and its hash.
pub(crate) fn encode(
    format: RecordFormat,
    position: Position,
    stream: &str,
    version: u64,
    prev_hash: ChainHash,
    data: &[u8],
) -> (Vec<u8>, ChainHash) {
    let parts = RecordParts {
        position,
        stream: Cow::Borrowed(stream),
        version,
        prev_hash,
        data,
    };
    match format {
        RecordFormat::Json => {
            let record = parts.canonical();
            let hash = ChainHash::of(&record);
            (json_value(&record, hash), hash)
        }
        RecordFormat::Binary => {
            let hash = parts.canonical_hash();
            (parts.binary_value(hash), hash)
        }
    }
}

/// The format a stored record is in, from its first byte.
pub(crate) fn format_of(record: &[u8]) -> Option<RecordFormat> {
    match record.first() {
        Some(b'{') => Some(RecordFormat::Json),
        Some(&BINARY_TAG) => Some(RecordFormat::Binary),
        _ => None,
    }
}

/// The stored hash of a stored value (`hash ‖ record`), if it is the
/// SHA-256 of the record's canonical form; otherwise what is wrong.
pub(crate) fn checked_hash(value: &[u8]) -> Result<ChainHash, &'static str> {
    if value.len() < 32 {
        return Err("record shorter than its hash");
    }
    let record = &value[32..];
    let hash = match format_of(record) {
        Some(RecordFormat::Json) => ChainHash::of(record),
        Some(RecordFormat::Binary) => binary_parts(record)?.canonical_hash(),
        None => return Err("record of an unknown format"),
    };
    if hash.as_bytes() != &value[..32] {
        return Err("stored bytes do not match their hash");
    }
    Ok(hash)
}

/// A record's `RecordFields`. A JSON record is read from the one shape the
/// log writes without parsing its data (any other shape is parsed whole);
/// a binary one from its header.
pub(crate) fn record_fields(record: &[u8]) -> Result<RecordFields, String> {
    match format_of(record) {
        Some(RecordFormat::Json) => json_fields(record),
        Some(RecordFormat::Binary) => {
            let parts = binary_parts(record).map_err(String::from)?;
            let start = record.len() - parts.data.len();
            Ok(RecordFields {
                position: parts.position,
                version: parts.version,
                prev_hash: parts.prev_hash,
                data: start..record.len(),
            })
        }
        None => Err("record of an unknown format".into()),
    }
}

/// Every field of a record, whatever its format.
pub(crate) fn record_parts(record: &[u8]) -> Result<RecordParts<'_>, String> {
    match format_of(record) {
        Some(RecordFormat::Json) => {
            let parsed: RecordIn<'_> = serde_json::from_slice(record)
                .map_err(|e| format!("record does not parse: {e}"))?;
            Ok(RecordParts {
                position: parsed.position,
                stream: parsed.stream,
                version: parsed.version,
                prev_hash: parsed.prev_hash,
                data: parsed.data.get().as_bytes(),
            })
        }
        Some(RecordFormat::Binary) => binary_parts(record).map_err(String::from),
        None => Err("record of an unknown format".into()),
    }
}

/// The canonical record of a stored one: itself for JSON, rendered for
/// binary (what exports carry).
pub(crate) fn canonical(record: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    match format_of(record) {
        Some(RecordFormat::Json) => Ok(Cow::Borrowed(record)),
        Some(RecordFormat::Binary) => Ok(Cow::Owned(binary_parts(record)?.canonical())),
        None => Err("record of an unknown format".into()),
    }
}

/// The value to store, in `format`, for the canonical `record` whose hash
/// is `hash` and whose fields, read from it, are `parts`. A record that
/// does not render back to exactly its own bytes (a JSON shape the log
/// never wrote) is kept as it is: rewriting it would change its hash.
pub(crate) fn value_for(
    format: RecordFormat,
    record: &[u8],
    parts: &RecordParts<'_>,
    hash: ChainHash,
) -> Vec<u8> {
    match format {
        RecordFormat::Binary if parts.canonical() == record => parts.binary_value(hash),
        _ => json_value(record, hash),
    }
}

/// The binary value for a stored JSON value (`hash ‖ record`), if the
/// record is in the canonical shape; `None` for a binary one or another
/// shape. The stored hash is carried over as it is (one that was wrong
/// stays as wrong as it was: the chain check names it).
pub(crate) fn upgraded(value: &[u8]) -> Option<Vec<u8>> {
    let hash = ChainHash::from_slice(value.get(..32)?)?;
    let record = &value[32..];
    if format_of(record) != Some(RecordFormat::Json) {
        return None;
    }
    let parts = record_parts(record).ok()?;
    (parts.canonical() == record).then(|| parts.binary_value(hash))
}

/// `hash ‖ record`: a JSON value.
fn json_value(record: &[u8], hash: ChainHash) -> Vec<u8> {
    let mut value = Vec::with_capacity(32 + record.len());
    value.extend_from_slice(hash.as_bytes());
    value.extend_from_slice(record);
    value
}

fn binary_parts(record: &[u8]) -> Result<RecordParts<'_>, &'static str> {
    if record.len() < BINARY_HEADER {
        return Err("binary record shorter than its header");
    }
    let u64_at = |at: usize| u64::from_be_bytes(record[at..at + 8].try_into().expect("8 bytes"));
    let stream_len = u32::from_be_bytes(record[49..53].try_into().expect("4 bytes")) as usize;
    let stream_end = BINARY_HEADER + stream_len;
    if stream_end >= record.len() {
        return Err("binary record's stream runs past its end, leaving no data");
    }
    let stream = std::str::from_utf8(&record[BINARY_HEADER..stream_end])
        .map_err(|_| "binary record's stream is not UTF-8")?;
    Ok(RecordParts {
        position: Position::new(u64_at(1)),
        stream: Cow::Borrowed(stream),
        version: u64_at(9),
        prev_hash: ChainHash::from_slice(&record[17..49]).expect("32 bytes"),
        data: &record[stream_end..],
    })
}

impl RecordParts<'_> {
    /// The canonical record up to its data: `{"position":…,"data":`.
    /// Written by hand, exactly as `serde_json` writes the record (a
    /// property test holds it to that).
    fn canonical_head(&self) -> Vec<u8> {
        let mut head = Vec::with_capacity(160 + self.stream.len());
        let mut number = itoa::Buffer::new();
        head.extend_from_slice(b"{\"position\":");
        head.extend_from_slice(number.format(self.position.get()).as_bytes());
        head.extend_from_slice(b",\"stream\":");
        let plain = self
            .stream
            .bytes()
            .all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        if plain {
            head.push(b'"');
            head.extend_from_slice(self.stream.as_bytes());
            head.push(b'"');
        } else {
            serde_json::to_writer(&mut head, self.stream.as_ref()).expect("a string serialises");
        }
        head.extend_from_slice(b",\"version\":");
        head.extend_from_slice(number.format(self.version).as_bytes());
        head.extend_from_slice(b",\"prev_hash\":\"");
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.prev_hash.as_bytes(), &mut hex).expect("64 hex digits");
        head.extend_from_slice(&hex);
        head.extend_from_slice(b"\",\"data\":");
        head
    }

    /// The canonical record: what the chain hash covers, and what exports,
    /// replication and the feed carry.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut record = self.canonical_head();
        record.extend_from_slice(self.data);
        record.push(b'}');
        record
    }

    /// `hash ‖ binary record` of these fields.
    fn binary_value(&self, hash: ChainHash) -> Vec<u8> {
        let stream = self.stream.as_bytes();
        let mut value = Vec::with_capacity(32 + BINARY_HEADER + stream.len() + self.data.len());
        value.extend_from_slice(hash.as_bytes());
        value.push(BINARY_TAG);
        value.extend_from_slice(&self.position.get().to_be_bytes());
        value.extend_from_slice(&self.version.to_be_bytes());
        value.extend_from_slice(self.prev_hash.as_bytes());
        let stream_len = u32::try_from(stream.len()).expect("stream names are short");
        value.extend_from_slice(&stream_len.to_be_bytes());
        value.extend_from_slice(stream);
        value.extend_from_slice(self.data);
        value
    }

    /// The SHA-256 of the canonical record, without building it.
    fn canonical_hash(&self) -> ChainHash {
        let mut sha = Sha256::new();
        sha.update(self.canonical_head());
        sha.update(self.data);
        sha.update(b"}");
        ChainHash::from_slice(&sha.finalize()).expect("SHA-256 is 32 bytes")
    }
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    position: Position,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    version: u64,
    prev_hash: ChainHash,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A JSON record's fields, from the shape the log writes —
/// `{"position":N,"stream":"…","version":N,"prev_hash":"<64 hex>","data":…}`
/// — without parsing the data (what keeps `verify_chain` to a read and a
/// SHA-256 an event). A record of any other shape is parsed whole.
fn json_fields(record: &[u8]) -> Result<RecordFields, String> {
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
    let mut prev = [0u8; 32];
    hex::decode_to_slice(hex, &mut prev).ok()?;
    let start = record.len() - data.len();
    Some(RecordFields {
        position: Position::new(position),
        version,
        prev_hash: ChainHash::from_slice(&prev)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;

    /// The record as `serde_json` writes it: what the log wrote before
    /// the canonical form was written by hand.
    #[derive(Serialize)]
    struct RecordOut<'a> {
        position: Position,
        stream: &'a str,
        version: u64,
        prev_hash: ChainHash,
        data: &'a RawValue,
    }

    const DATA: &str = r#"{"note":"\"prev_hash\":\"0\"","n":[1,2.5,"é\u0001"]}"#;

    fn serde_record(position: u64, stream: &str, version: u64, prev: ChainHash) -> Vec<u8> {
        let data = RawValue::from_string(DATA.into()).unwrap();
        serde_json::to_vec(&RecordOut {
            position: Position::new(position),
            stream,
            version,
            prev_hash: prev,
            data: &data,
        })
        .unwrap()
    }

    fn hash_strategy() -> impl Strategy<Value = ChainHash> {
        any::<[u8; 32]>().prop_map(|bytes| ChainHash::from_slice(&bytes).unwrap())
    }

    proptest! {
        /// Whatever the stream's name holds (quotes, backslashes, control
        /// characters, DEL, any character), both formats hash to the
        /// SHA-256 of the record `serde_json` writes, read back to the same
        /// fields, and render back to it.
        #[test]
        fn both_formats_hash_the_record_serde_writes(
            position in 1u64..u64::MAX,
            stream in prop_oneof![any::<String>(), "[\\x00-\\x1f\\x7f\"\\\\a-zé€]{0,16}"],
            version in any::<u64>(),
            prev in hash_strategy(),
        ) {
            let expected = serde_record(position, &stream, version, prev);
            let position = Position::new(position);
            for format in [RecordFormat::Json, RecordFormat::Binary] {
                let (value, hash) = encode(format, position, &stream, version, prev, DATA.as_bytes());
                prop_assert_eq!(hash, ChainHash::of(&expected));
                prop_assert_eq!(checked_hash(&value), Ok(hash));
                prop_assert_eq!(format_of(&value[32..]), Some(format));
                let rendered = canonical(&value[32..]).unwrap();
                prop_assert_eq!(rendered.as_ref(), expected.as_slice());
                let fields = record_fields(&value[32..]).unwrap();
                prop_assert_eq!((fields.position, fields.version, fields.prev_hash), (position, version, prev));
                prop_assert_eq!(&value[32..][fields.data], DATA.as_bytes());
                let parts = record_parts(&value[32..]).unwrap();
                prop_assert_eq!(parts.stream.as_ref(), stream.as_str());
            }
            let (json, _) = encode(RecordFormat::Json, position, &stream, version, prev, DATA.as_bytes());
            let (binary, _) = encode(RecordFormat::Binary, position, &stream, version, prev, DATA.as_bytes());
            prop_assert_eq!(upgraded(&json), Some(binary.clone()));
            prop_assert_eq!(upgraded(&binary), None);
            prop_assert_eq!(value_for(RecordFormat::Binary, &expected, &record_parts(&expected).unwrap(), ChainHash::of(&expected)), binary);
        }

        /// Any one byte of a binary value changed, and the value no longer
        /// checks: its hash or its canonical record differs, or it does not
        /// parse.
        #[test]
        fn a_changed_byte_of_a_binary_record_is_caught(
            stream in "[a-z-]{0,12}",
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut value, _) = encode(RecordFormat::Binary, Position::new(9), &stream, 3, ChainHash::of(b"x"), DATA.as_bytes());
            let at = at.index(value.len());
            value[at] ^= flip;
            prop_assert!(checked_hash(&value).is_err(), "byte {} changed and unnoticed", at);
        }
    }

    /// Every byte of a binary value, each changed two ways: none passes.
    #[test]
    fn every_byte_of_a_binary_record_is_covered() {
        let (value, _) = encode(
            RecordFormat::Binary,
            Position::new(1 << 40),
            "token-\"x\"\u{1}",
            7,
            ChainHash::of(b"before"),
            DATA.as_bytes(),
        );
        for at in 0..value.len() {
            for flip in [0x01, 0x80] {
                let mut changed = value.clone();
                changed[at] ^= flip;
                assert!(checked_hash(&changed).is_err(), "byte {at} ^ {flip:#x} unnoticed");
            }
        }
        assert!(checked_hash(&value[..value.len() - 1]).is_err(), "cut short");
    }

    #[test]
    fn a_json_record_of_another_shape_stays_json_and_garbage_is_refused() {
        let prev = ChainHash::of(b"before");
        let reordered = format!(
            r#"{{"stream":"s","position":5,"version":1,"prev_hash":"{}","data":{{}}}}"#,
            prev.to_hex()
        );
        assert_eq!(fields_as_written(reordered.as_bytes()), None);
        let fields = record_fields(reordered.as_bytes()).unwrap();
        assert_eq!(
            (fields.position, fields.prev_hash),
            (Position::new(5), prev)
        );
        assert_eq!(&reordered.as_bytes()[fields.data], b"{}");
        let hash = ChainHash::of(reordered.as_bytes());
        let value = value_for(RecordFormat::Binary, reordered.as_bytes(), &record_parts(reordered.as_bytes()).unwrap(), hash);
        assert_eq!(&value[32..], reordered.as_bytes(), "kept as it was");
        assert_eq!(upgraded(&value), None);
        assert_eq!(checked_hash(&value), Ok(hash));

        let written = serde_record(5, "s", 1, prev);
        let leading_zero = String::from_utf8(written)
            .unwrap()
            .replacen(":5,", ":05,", 1);
        assert_eq!(fields_as_written(leading_zero.as_bytes()), None);
        assert!(record_fields(leading_zero.as_bytes()).is_err());
        assert!(record_fields(b"{\"position\":1,\"stream\":\"unterminated").is_err());
        assert!(record_fields(b"").is_err());
        assert!(record_fields(b"\x07whatever").is_err());
        let mut short = vec![0u8; 32];
        short.extend_from_slice(&[BINARY_TAG, 0, 0]);
        assert_eq!(
            checked_hash(&short),
            Err("binary record shorter than its header")
        );
        // A stream length that points past the end.
        let (mut value, _) = encode(RecordFormat::Binary, Position::new(1), "s", 1, prev, b"{}");
        value[32 + 49..32 + 53].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(checked_hash(&value).is_err());
        assert!(record_fields(&value[32..]).is_err());
    }
}
