//! Projection snapshots: the state at a position, so a restart replays only
//! the tail of the log. A cache, never the truth: a snapshot that does not
//! decode, or whose hash does not match the log at its position, is ignored.

use latch_core::{Position, State};
use latch_store::ChainHash;
use serde::{Deserialize, Serialize};

/// Bumped whenever `State`'s shape changes; older snapshots are ignored.
const FORMAT: u32 = 6;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    format: u32,
    position: Position,
    hash: [u8; 32],
    state: State,
}

pub fn encode(state: &State, hash: ChainHash) -> Vec<u8> {
    #[derive(Serialize)]
    struct SnapshotRef<'a> {
        format: u32,
        position: Position,
        hash: [u8; 32],
        state: &'a State,
    }
    postcard::to_stdvec(&SnapshotRef {
        format: FORMAT,
        position: state.position(),
        hash: *hash.as_bytes(),
        state,
    })
    .expect("state serialises")
}

/// The state and the chain hash at its position, if the bytes are a
/// snapshot of the current format.
pub fn decode(bytes: &[u8]) -> Option<(State, ChainHash)> {
    let file: SnapshotFile = postcard::from_bytes(bytes).ok()?;
    (file.format == FORMAT && file.state.position() == file.position).then(|| {
        (
            file.state,
            ChainHash::from_slice(&file.hash).expect("32 bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips() {
        let state = State::new();
        let bytes = encode(&state, ChainHash::GENESIS);
        let file: Result<SnapshotFile, _> = postcard::from_bytes(&bytes);
        assert!(file.is_ok(), "{:?}", file.err());
        assert_eq!(decode(&bytes).map(|(s, _)| s), Some(state));
    }
}
