//! Rebuilding the projection on start: newest usable snapshot, then the
//! rest of the log, whose hash chain is verified on the way. A broken chain
//! stops latchd: it will not serve from a log it cannot vouch for.

use std::time::{Duration, Instant};

use latch_core::{Position, State, evolve};
use latch_store::{ChainHash, ChainVerdict, EventStore, StoreError};
use thiserror::Error;

use crate::event_codec;

#[derive(Debug)]
pub struct Rebuilt {
    pub state: State,
    /// Where the snapshot it started from was taken, if any.
    pub snapshot: Option<Position>,
    /// Events folded after the snapshot.
    pub replayed: u64,
    pub took: Duration,
}

#[derive(Debug, Error)]
pub enum RebuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the event log's hash chain is broken at position {position}: {problem}. Run `latch audit verify` and restore from a backup"
    )]
    BrokenChain { position: Position, problem: String },
}

pub fn rebuild(store: &EventStore) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    let (mut state, anchor) =
        usable_snapshot(store)?.unwrap_or_else(|| (State::new(), ChainHash::GENESIS));
    let snapshot = (state.position() > Position::ZERO).then_some(state.position());
    let from = state.position().next();

    if let ChainVerdict::Broken { position, problem } = store.verify_chain_from(from, anchor)? {
        return Err(RebuildError::BrokenChain { position, problem });
    }
    let mut replayed = 0u64;
    for stored in store.iter_from(from) {
        let recorded = event_codec::to_recorded(&stored?)?;
        evolve(&mut state, &recorded);
        replayed += 1;
    }
    Ok(Rebuilt {
        state,
        snapshot,
        replayed,
        took: started.elapsed(),
    })
}

fn usable_snapshot(store: &EventStore) -> Result<Option<(State, ChainHash)>, StoreError> {
    let Some((position, bytes)) = store.latest_snapshot()? else {
        return Ok(None);
    };
    let Some((state, hash)) = latch_audit::decode_checkpoint(&bytes) else {
        tracing::warn!(%position, "ignoring a snapshot in an older format; replaying the whole log");
        return Ok(None);
    };
    match store.event(position)? {
        Some(event) if event.hash == hash && state.position() == position => {
            Ok(Some((state, hash)))
        }
        _ => {
            tracing::warn!(%position, "ignoring a snapshot that does not match the log; replaying the whole log");
            Ok(None)
        }
    }
}
