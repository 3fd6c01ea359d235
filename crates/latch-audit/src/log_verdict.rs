//! `verify_log`: what `latch audit verify` checks of a data directory — the
//! hash chain, and every checkpoint against the state the chain gives at its
//! position. A checkpoint records the chain hash where it was taken, so one
//! that disagrees with the log there is refused by every replay; but its
//! state is only as good as the fold that made it. Replaying the whole log
//! once and comparing proves each checkpoint tells the log's story, so
//! investigations that start from one (in a second rather than a replay of
//! everything) can be trusted as far as the chain can.

use latch_core::{Position, State, evolve};
use latch_store::{ChainVerdict, EventStore};

use crate::audit_error::AuditError;
use crate::checkpoint::decode_checkpoint;
use crate::replay::{Progress, for_each_recorded};

/// The chain's verdict, or `Broken` at the first checkpoint whose state is
/// not the state the log gives at its position.
pub fn verify_log(store: &EventStore, progress: Progress<'_>) -> Result<ChainVerdict, AuditError> {
    let verdict = store.verify_chain()?;
    let ChainVerdict::Intact { head, .. } = &verdict else {
        return Ok(verdict);
    };
    let mut checkpoints: Vec<Position> = store
        .snapshots_through(*head)
        .map(|item| item.map(|(position, _)| position))
        .collect::<Result<_, _>>()?;
    if checkpoints.is_empty() {
        return Ok(verdict);
    }
    checkpoints.reverse();
    let last = *checkpoints.last().expect("not empty");
    let mut pending = checkpoints.into_iter().peekable();
    let mut state = State::new();
    let mut mismatch = None;
    let mut failure = None;
    for_each_recorded(store, last, progress, |recorded| {
        let position = recorded.position;
        evolve(&mut state, &recorded);
        while let Some(checkpoint) = pending.next_if(|p| *p <= position) {
            if checkpoint != position {
                continue;
            }
            match store.snapshots_through(position).next() {
                Some(Ok((at, bytes))) if at == position => {
                    // Another format is passed over by replays: not a lie.
                    if let Some((held, _)) = decode_checkpoint(&bytes)
                        && held != state
                    {
                        mismatch = Some(position);
                        return false;
                    }
                }
                Some(Err(error)) => {
                    failure = Some(error);
                    return false;
                }
                _ => {}
            }
        }
        true
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(match mismatch {
        Some(position) => ChainVerdict::Broken {
            position,
            problem: "the checkpoint here does not hold the state the log gives at this position \
                      (altered?): investigations would start from it"
                .to_owned(),
        },
        None => verdict,
    })
}
