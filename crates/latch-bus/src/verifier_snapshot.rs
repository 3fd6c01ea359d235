//! The state snapshot latchd serves to verifiers (`GET /v1/snapshot`), so a
//! verifier starts from the state at a position and reads only the stream's
//! tail. Postcard-encoded `State`, with a format number: a verifier that
//! does not know the format falls back to reading the whole stream.

use latch_core::{Position, State};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Bumped whenever `State`'s shape changes.
pub const FORMAT: u32 = 4;
pub const CONTENT_TYPE: &str = "application/vnd.latch.snapshot";

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("snapshot format {0} is not {FORMAT}")]
    Format(u32),
}

#[derive(Serialize)]
struct Out<'a> {
    format: u32,
    state: &'a State,
}

#[derive(Deserialize)]
struct In {
    format: u32,
    state: State,
}

pub fn encode(state: &State) -> Vec<u8> {
    postcard::to_stdvec(&Out {
        format: FORMAT,
        state,
    })
    .expect("state serialises")
}

/// The state and the position it is at.
pub fn decode(bytes: &[u8]) -> Result<(State, Position), SnapshotError> {
    let snapshot: In = postcard::from_bytes(bytes)?;
    if snapshot.format != FORMAT {
        return Err(SnapshotError::Format(snapshot.format));
    }
    let position = snapshot.state.position();
    Ok((snapshot.state, position))
}
