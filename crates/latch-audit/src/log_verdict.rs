//! `verify_log`: what `latch audit verify` checks of a data directory — the
//! hash chain, and the checkpoints. A checkpoint records the chain hash
//! where it was taken: each one's is compared with the log's there
//! (`CheckpointCheck::Headers`, cheap), and a replay refuses one that
//! disagrees. But its state is only as good as the fold that made it:
//! `CheckpointCheck::States` replays the whole log once and compares every
//! checkpoint's state with the state at its position, which proves that
//! investigations starting from one tell the log's story (it costs a
//! replay of the log and a decode of each checkpoint).

use latch_core::{Position, State, evolve};
use latch_store::{ChainVerdict, EventStore};

use crate::audit_error::AuditError;
use crate::checkpoint::{checkpoint_header, decode_checkpoint};
use crate::replay::{Progress, for_each_recorded};

/// How far `verify_log` checks the checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointCheck {
    /// Each one's position and chain hash against the log's.
    Headers,
    /// And each one's state against a replay of the log.
    States,
}

/// The chain's verdict, or `Broken` at the first checkpoint that disagrees
/// with the log.
pub fn verify_log(
    store: &EventStore,
    check: CheckpointCheck,
    progress: Progress<'_>,
) -> Result<ChainVerdict, AuditError> {
    let verdict = store.verify_chain()?;
    let ChainVerdict::Intact { head, .. } = &verdict else {
        return Ok(verdict);
    };
    // Each checkpoint with the log's chain hash at its position.
    let mut checkpoints = Vec::new();
    for (position, listed_hash) in store.snapshot_positions_through(*head)? {
        let there = store.event(position)?.map(|stored| stored.hash);
        let hash = match listed_hash {
            Some(hash) => Some(hash),
            // Unlisted (older latchd): its own header says.
            None => store
                .read_snapshot(position, checkpoint_header)?
                .flatten()
                .filter(|(claimed, _)| *claimed == position)
                .map(|(_, hash)| hash),
        };
        if let Some(hash) = hash {
            match there {
                Some(there) if there == hash => checkpoints.push((position, there)),
                _ => return Ok(broken(position, "the checkpoint here records another chain hash than the log's (altered?)")),
            }
        }
    }
    if checkpoints.is_empty() || check == CheckpointCheck::Headers {
        return Ok(verdict);
    }
    checkpoints.reverse();
    let (last, _) = *checkpoints.last().expect("not empty");
    let mut pending = checkpoints.into_iter().peekable();
    let mut state = State::new();
    let mut mismatch = None;
    let mut failure = None;
    for_each_recorded(store, last, progress, |recorded| {
        let position = recorded.position;
        evolve(&mut state, &recorded);
        while let Some((checkpoint, there)) = pending.next_if(|(p, _)| *p <= position) {
            if checkpoint != position {
                continue;
            }
            let lies = store.read_snapshot(position, |bytes| {
                // Another format is passed over by replays: not a lie.
                checkpoint_header(bytes).map(|(claimed, hash)| {
                    claimed != position
                        || there != hash
                        || decode_checkpoint(bytes).is_none_or(|(held, _)| held != state)
                })
            });
            match lies {
                Ok(Some(Some(true))) => {
                    mismatch = Some(position);
                    return false;
                }
                Err(error) => {
                    failure = Some(error);
                    return false;
                }
                Ok(_) => {}
            }
        }
        true
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(match mismatch {
        Some(position) => broken(
            position,
            "the checkpoint here does not hold the state the log gives at this position \
             (altered?): investigations would start from it",
        ),
        None => verdict,
    })
}

fn broken(position: Position, problem: &str) -> ChainVerdict {
    ChainVerdict::Broken {
        position,
        problem: problem.to_owned(),
    }
}
