//! The snapshot latchd serves to verifiers (`GET /v1/snapshot`), so a
//! verifier starts from the compact view at a position and reads only the
//! stream's tail. Postcard-encoded `VerifierViewParts`, with a format
//! number: a verifier that does not know the format falls back to reading
//! the whole stream.

use latch_core::{Position, VerifierView, VerifierViewParts};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Bumped whenever `VerifierViewParts`' shape changes.
pub const FORMAT: u32 = 5;
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
    view: &'a VerifierViewParts,
}

#[derive(Deserialize)]
struct In {
    #[allow(dead_code)] // read first, on its own, by `decode`
    format: u32,
    view: VerifierViewParts,
}

pub fn encode(view: &VerifierView) -> Vec<u8> {
    postcard::to_stdvec(&Out {
        format: FORMAT,
        view: view.parts(),
    })
    .expect("the view serialises")
}

/// The view and the position it is at.
pub fn decode(bytes: &[u8]) -> Result<(VerifierView, Position), SnapshotError> {
    // The format number leads, so an unknown format is named, not misread.
    let format: u32 = postcard::take_from_bytes::<u32>(bytes)?.0;
    if format != FORMAT {
        return Err(SnapshotError::Format(format));
    }
    let snapshot: In = postcard::from_bytes(bytes)?;
    let view = VerifierView::from_parts(snapshot.view);
    let position = view.position();
    Ok((view, position))
}
