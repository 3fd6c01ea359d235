//! Rebuilding the projection on start: newest usable snapshot, then the
//! rest of the log, whose hash chain is verified on the way. A broken chain
//! stops latchd: it will not serve from a log it cannot vouch for.

use std::time::{Duration, Instant};

use latch_core::{Position, RecordedEvent, State, evolve};
use latch_audit::AuditError;
use latch_store::{ChainHash, EventStore, StoreError};
use thiserror::Error;

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

    // One pass: each event is checked against the chain as it is read,
    // and decoding is shared between two threads (latch-audit's replay).
    let mut replayed = 0u64;
    let (after, head) = (state.position(), store.head().position);
    let fold = |recorded: RecordedEvent| {
        evolve(&mut state, &recorded);
        replayed += 1;
        true
    };
    let folded = latch_audit::for_each_recorded_after(
        store,
        after,
        anchor,
        head,
        &mut |_, _| {},
        fold,
    );
    folded.map_err(|error| match error {
        AuditError::BrokenChain { position, problem } => {
            RebuildError::BrokenChain { position, problem }
        }
        AuditError::Store(error) => RebuildError::Store(error),
        other => RebuildError::Store(StoreError::Corrupt {
            position: state.position().next(),
            problem: other.to_string(),
        }),
    })?;
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
