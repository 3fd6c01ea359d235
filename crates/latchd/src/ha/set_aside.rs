//! Setting a local tail aside: events this node's log holds that the
//! replicated stream does not (and never acknowledged to a client: the
//! leader acknowledges only what the stream holds). They are written, as
//! stored, to `<data-dir>/set-aside/<time>-after-<position>.jsonl` for
//! investigation, then removed from the log so the node can follow.

use std::io::Write;
use std::path::{Path, PathBuf};

use latch_core::Position;
use latch_store::EventStore;

use super::HaError;

pub const SET_ASIDE_DIR: &str = "set-aside";

/// Writes the events after `keep` to a new file under `dir` (synced) and
/// returns its path and how many there were.
pub fn save_tail(store: &EventStore, keep: Position, dir: &Path) -> Result<(PathBuf, u64), HaError> {
    std::fs::create_dir_all(dir).map_err(HaError::SetAside)?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = dir.join(format!("{millis}-after-{keep}.jsonl"));
    let mut file = std::fs::File::create(&path).map_err(HaError::SetAside)?;
    let mut count = 0;
    for event in store.iter_from(keep.next()) {
        let event = event?;
        let line = serde_json::json!({
            "hash": event.hash.to_string(),
            "record": event.record(),
        });
        writeln!(file, "{line}").map_err(HaError::SetAside)?;
        count += 1;
    }
    file.sync_all().map_err(HaError::SetAside)?;
    Ok((path, count))
}
