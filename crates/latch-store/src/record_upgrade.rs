//! What `EventStore::upgrade_records` did, and how a log's records are
//! stored (`EventStore::record_formats`).

use serde::Serialize;

/// The outcome of rewriting a log's JSON records in the binary format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordUpgrade {
    /// JSON records now stored in the binary format.
    pub rewritten: u64,
    /// Records that were binary already.
    pub already_binary: u64,
    /// JSON records of a shape the log never wrote, kept as they are
    /// (rewritten, their hash would change).
    pub kept_json: u64,
}

/// How many of a log's records are stored in each format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordFormatCounts {
    pub json: u64,
    pub binary: u64,
    /// Records in no format this version reads (a damaged log).
    pub unknown: u64,
}

impl RecordUpgrade {
    /// How the records a whole upgrade walked are stored after it, when
    /// nothing else wrote to the log meanwhile (offline): none is left in
    /// an unknown format, since the chain check refuses one.
    pub fn formats(&self) -> RecordFormatCounts {
        RecordFormatCounts {
            json: self.kept_json,
            binary: self.rewritten + self.already_binary,
            unknown: 0,
        }
    }
}
