//! Exports of the log that anyone can verify without Latch: NDJSON, a
//! header line, one line per event with its chain hash and its record
//! exactly as stored, and a closing line.
//!
//! ```text
//! {"latch_export":1,"first":12,"last":40,"anchor":"<hash before event 12>"}
//! {"hash":"<hex>","record":{"position":12,"stream":"…","version":1,"prev_hash":"…","data":{…}}}
//! …
//! {"latch_export_end":{"events":29,"last_hash":"<hex>"}}
//! ```
//!
//! Verifying recomputes SHA-256 over each record's bytes as they appear in
//! the file, checks each record's `prev_hash` against the hash before it
//! (the header's `anchor` for the first) and that positions run without
//! gaps, and checks the closing line. The `anchor` and `last_hash` can be
//! compared with `latch audit verify` on the live log.

use std::io::{BufRead, Write};

use latch_core::Position;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chain_hash::ChainHash;
use crate::event_store::EventStore;
use crate::store_error::StoreError;

#[derive(Serialize, Deserialize)]
struct Header {
    latch_export: u32,
    first: Position,
    last: Position,
    anchor: ChainHash,
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    hash: ChainHash,
    #[serde(borrow)]
    record: &'a RawValue,
}

#[derive(Serialize, Deserialize)]
struct End {
    latch_export_end: EndCounts,
}

#[derive(Serialize, Deserialize)]
struct EndCounts {
    events: u64,
    last_hash: ChainHash,
}

#[derive(Deserialize)]
struct RecordLink {
    position: Position,
    prev_hash: ChainHash,
}

/// What an export holds, or where it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ExportVerdict {
    Intact {
        events: u64,
        first: Position,
        last: Position,
        anchor: ChainHash,
        last_hash: ChainHash,
    },
    /// `line` is 1-based; `position` when the line named one.
    Broken {
        line: u64,
        position: Option<Position>,
        problem: String,
    },
}

/// Writes positions `first..=last` of `store` to `out`; returns the count.
/// Streams: holds one record at a time.
pub fn write_export(
    store: &EventStore,
    first: Position,
    last: Position,
    out: &mut impl Write,
) -> Result<u64, StoreError> {
    let anchor = if first <= Position::FIRST {
        ChainHash::GENESIS
    } else {
        match store.event(Position::new(first.get() - 1))? {
            Some(before) => before.hash,
            None => {
                return Err(StoreError::Corrupt {
                    position: first,
                    problem: "no event before the export's first".into(),
                });
            }
        }
    };
    let header = Header {
        latch_export: 1,
        first,
        last,
        anchor,
    };
    serde_json::to_writer(&mut *out, &header).map_err(io)?;
    out.write_all(b"\n")?;
    let mut events = 0u64;
    let mut last_hash = anchor;
    let mut failed = None;
    store.for_each_record(first, last, |_, hash, record| {
        let result = (|| -> Result<(), StoreError> {
            let hash = ChainHash::from_slice(hash).ok_or_else(|| StoreError::Corrupt {
                position: first,
                problem: "short record".into(),
            })?;
            let record = std::str::from_utf8(record).map_err(|e| StoreError::Corrupt {
                position: first,
                problem: e.to_string(),
            })?;
            let record = RawValue::from_string(record.to_owned()).map_err(io)?;
            serde_json::to_writer(
                &mut *out,
                &Line {
                    hash,
                    record: &record,
                },
            )
            .map_err(io)?;
            out.write_all(b"\n")?;
            last_hash = hash;
            Ok(())
        })();
        match result {
            Ok(()) => {
                events += 1;
                true
            }
            Err(error) => {
                failed = Some(error);
                false
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    serde_json::to_writer(
        &mut *out,
        &End {
            latch_export_end: EndCounts { events, last_hash },
        },
    )
    .map_err(io)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(events)
}

fn io(error: serde_json::Error) -> StoreError {
    StoreError::Io(std::io::Error::other(error))
}

/// Verifies an export read from `input`, line by line.
pub fn verify_export(input: impl BufRead) -> ExportVerdict {
    let broken = |line: u64, position: Option<Position>, problem: String| ExportVerdict::Broken {
        line,
        position,
        problem,
    };
    let mut lines = input.lines();
    let Some(Ok(first_line)) = lines.next() else {
        return broken(1, None, "empty or unreadable".into());
    };
    let Ok(header) = serde_json::from_str::<Header>(&first_line) else {
        return broken(
            1,
            None,
            "the first line is not a Latch export header".into(),
        );
    };
    let mut previous = header.anchor;
    let mut expected = header.first;
    let mut events = 0u64;
    for (index, line) in lines.enumerate() {
        let number = index as u64 + 2;
        let Ok(text) = line else {
            return broken(number, None, "unreadable line".into());
        };
        if let Ok(end) = serde_json::from_str::<End>(&text) {
            let counts = end.latch_export_end;
            if counts.events != events || counts.last_hash != previous {
                return broken(
                    number,
                    None,
                    format!(
                        "the closing line says {} events ending in {}; the file has {events} ending in {previous}",
                        counts.events, counts.last_hash
                    ),
                );
            }
            if events > 0 && expected.get() - 1 != header.last.get() {
                return broken(
                    number,
                    None,
                    format!(
                        "the header says the export ends at {}, the events end at {}",
                        header.last,
                        expected.get() - 1
                    ),
                );
            }
            return ExportVerdict::Intact {
                events,
                first: header.first,
                last: header.last,
                anchor: header.anchor,
                last_hash: previous,
            };
        }
        let Ok(line) = serde_json::from_str::<Line<'_>>(&text) else {
            return broken(number, Some(expected), "not an event line".into());
        };
        let Ok(link) = serde_json::from_str::<RecordLink>(line.record.get()) else {
            return broken(number, Some(expected), "the record does not parse".into());
        };
        if link.position != expected {
            return broken(
                number,
                Some(link.position),
                format!("expected position {expected}"),
            );
        }
        if ChainHash::of(line.record.get().as_bytes()) != line.hash {
            return broken(
                number,
                Some(link.position),
                "the record's bytes do not match its hash".into(),
            );
        }
        if link.prev_hash != previous {
            return broken(
                number,
                Some(link.position),
                "prev_hash does not match the previous event's hash".into(),
            );
        }
        previous = line.hash;
        expected = expected.next();
        events += 1;
    }
    broken(
        events + 2,
        None,
        "the closing line is missing: the export is cut short".into(),
    )
}

/// The positions of the events recorded in `[since, until)` (either open),
/// as the first and last of a contiguous range; `None` when there are none.
/// Reads each event's `at` (Latch's event envelope carries it).
pub fn positions_between(
    store: &EventStore,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<(Position, Position)>, StoreError> {
    #[derive(Deserialize)]
    struct At {
        at: chrono::DateTime<chrono::Utc>,
    }
    let mut range: Option<(Position, Position)> = None;
    for stored in store.iter_from(Position::FIRST) {
        let stored = stored?;
        let at = stored.decode::<At>()?.at;
        if until.is_some_and(|until| at >= until) {
            break;
        }
        if since.is_some_and(|since| at < since) {
            continue;
        }
        range = Some((
            range.map_or(stored.position, |(first, _)| first),
            stored.position,
        ));
    }
    Ok(range)
}
