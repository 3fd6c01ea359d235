//! Checkpoints: the state at a position, with the chain hash there, so a
//! restart replays only the tail after the newest and an investigation
//! only the tail after the nearest (latchd keeps them in the store's
//! `snapshots`). A cache, never the truth: a checkpoint that does not
//! decode is ignored, and one whose hash does not match the log at its
//! position is refused.

use latch_core::{Position, State};
use latch_store::ChainHash;
use serde::{Deserialize, Serialize};

/// Bumped whenever `State`'s shape changes; older snapshots are ignored.
const FORMAT: u32 = 8;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    format: u32,
    position: Position,
    hash: [u8; 32],
    state: State,
}

/// The bytes of a checkpoint of `state`, whose last event has `hash`.
pub fn encode_checkpoint(state: &State, hash: ChainHash) -> Vec<u8> {
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
pub fn decode_checkpoint(bytes: &[u8]) -> Option<(State, ChainHash)> {
    let file: SnapshotFile = postcard::from_bytes(bytes).ok()?;
    (file.format == FORMAT && file.state.position() == file.position).then(|| {
        (
            file.state,
            ChainHash::from_slice(&file.hash).expect("32 bytes"),
        )
    })
}

/// The position and chain hash a checkpoint claims, read from its first
/// bytes without decoding its state (cheap, whatever the state's size).
pub fn checkpoint_header(bytes: &[u8]) -> Option<(Position, ChainHash)> {
    #[derive(Deserialize)]
    struct Header {
        format: u32,
        position: Position,
        hash: [u8; 32],
    }
    let (header, _) = postcard::take_from_bytes::<Header>(bytes).ok()?;
    (header.format == FORMAT)
        .then(|| (header.position, ChainHash::from_slice(&header.hash).expect("32 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips() {
        let state = State::new();
        let bytes = encode_checkpoint(&state, ChainHash::GENESIS);
        let file: Result<SnapshotFile, _> = postcard::from_bytes(&bytes);
        assert!(file.is_ok(), "{:?}", file.err());
        assert_eq!(decode_checkpoint(&bytes).map(|(s, _)| s), Some(state));
        assert_eq!(checkpoint_header(&bytes), Some((Position::ZERO, ChainHash::GENESIS)));
    }
}
