//! Replaying the log to a moment with latch-core's own `evolve`: the state
//! as latchd held it then, not a reconstruction. The replay starts from the
//! nearest checkpoint at or before the moment whose chain hash matches the
//! log there (`checkpoint.rs`), and folds only the tail after it; a
//! checkpoint that disagrees with the chain is refused and named.

use chrono::{DateTime, Utc};
use latch_core::{EventEnvelope, Position, RecordedEvent, State, evolve};
use latch_store::{ChainHash, ChainedRecord, EventStore, StoreError, StoredEvent};

use crate::audit_error::AuditError;
use crate::checkpoint::{checkpoint_header, decode_checkpoint};
use crate::log_index::LogIndex;
use crate::moment::Moment;

/// The state at a moment.
#[derive(Debug)]
pub struct Replayed {
    pub state: State,
    /// The time statuses are judged at: the time asked for, or (for a
    /// position) the time of the event there.
    pub at: DateTime<Utc>,
    /// The last position folded in (0: none).
    pub position: Position,
    /// Events the state holds (from the checkpoint, and folded after it).
    pub events: u64,
    /// The checkpoint the replay started from, if any.
    pub from_checkpoint: Option<Position>,
    /// Events read after it, each checked against the hash chain.
    pub replayed: u64,
    /// Checkpoints skipped because their chain hash is not the log's at
    /// their position: an altered checkpoint (or log).
    pub refused_checkpoints: Vec<Position>,
}

/// How far a long read has come, for a progress bar: `(done, total)`
/// positions. Called every few thousand events and once at the end.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// How often `Progress` is called, in events.
const PROGRESS_EVERY: u64 = 4096;

/// Folds every event up to `moment` into a fresh state, checking the hash
/// chain on the way.
pub fn replay(
    store: &EventStore,
    moment: Moment,
    progress: Progress<'_>,
) -> Result<Replayed, AuditError> {
    let head = store.head().position;
    let last = match moment {
        Moment::Position(asked) if asked > head => {
            return Err(AuditError::BeyondHead { asked, head });
        }
        Moment::Position(asked) => asked,
        // The last event at or before the time, when the index knows it:
        // no checkpoint after it is looked at.
        Moment::Time(until) => match LogIndex::open(store)? {
            Some(index) => index
                .first_after(until)?
                .map_or(index.head(), |first| Position::new(first.get() - 1)),
            None => head,
        },
    };
    let start = nearest_checkpoint(store, last, moment)?;
    let mut state = start.state.unwrap_or_default();
    let mut at = match moment {
        Moment::Time(at) => at,
        Moment::Position(_) => start.at.unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    let mut replayed = 0;
    for_each_recorded_after(store, start.position, start.hash, last, progress, |recorded| {
        if let Moment::Time(until) = moment
            && recorded.envelope.at > until
        {
            return false;
        }
        if let Moment::Position(_) = moment {
            at = recorded.envelope.at;
        }
        evolve(&mut state, &recorded);
        replayed += 1;
        true
    })?;
    Ok(Replayed {
        position: state.position(),
        events: state.position().get(),
        state,
        at,
        from_checkpoint: (start.position > Position::ZERO).then_some(start.position),
        replayed,
        refused_checkpoints: start.refused,
    })
}

/// Where a replay starts: a checkpoint's state, or nothing (the first event).
struct Start {
    state: Option<State>,
    position: Position,
    hash: ChainHash,
    /// The time of the event at `position`.
    at: Option<DateTime<Utc>>,
    refused: Vec<Position>,
}

/// What a stored checkpoint turned out to be.
enum Checkpoint {
    /// Not one this version reads: passed over.
    OtherFormat,
    /// Its position or chain hash is not the log's there: refused.
    Disagrees,
    Read(State, ChainHash),
}

/// The newest checkpoint at or before `last` (and, for a time, whose last
/// event is not after it) that decodes and whose chain hash is the log's at
/// its position. Checkpoints of another format are passed over; those that
/// disagree with the log are refused.
fn nearest_checkpoint(store: &EventStore, last: Position, moment: Moment) -> Result<Start, AuditError> {
    let mut refused = Vec::new();
    for (position, listed_hash) in store.snapshot_positions_through(last)? {
        let Some(stored) = store.event(position)? else {
            refused.push(position);
            continue;
        };
        // The listing first: a checkpoint that disagrees is not read.
        if listed_hash.is_some_and(|hash| hash != stored.hash) {
            refused.push(position);
            continue;
        }
        // Its time next: a checkpoint after the moment is not decoded.
        let at = recorded(&stored)?.envelope.at;
        if let Moment::Time(until) = moment
            && at > until
        {
            continue;
        }
        // The header first: a checkpoint that disagrees is not decoded.
        let read = store.read_snapshot(position, |bytes| match checkpoint_header(bytes) {
            None => Checkpoint::OtherFormat,
            Some((claimed, hash)) if stored.hash != hash || claimed != position => {
                Checkpoint::Disagrees
            }
            Some((_, hash)) => match decode_checkpoint(bytes) {
                Some((state, _)) => Checkpoint::Read(state, hash),
                None => Checkpoint::OtherFormat,
            },
        })?;
        let (state, hash) = match read {
            None | Some(Checkpoint::OtherFormat) => continue,
            Some(Checkpoint::Disagrees) => {
                refused.push(position);
                continue;
            }
            // The header's position is `position`, and a checkpoint decodes
            // only when its state is at its header's.
            Some(Checkpoint::Read(state, hash)) => (state, hash),
        };
        return Ok(Start {
            state: Some(state),
            position,
            hash,
            at: Some(at),
            refused,
        });
    }
    Ok(Start {
        state: None,
        position: Position::ZERO,
        hash: ChainHash::GENESIS,
        at: None,
        refused,
    })
}

/// Every event from the first through `last`, decoded and checked against
/// the chain, for as long as `each` says to go on.
pub(crate) fn for_each_recorded(
    store: &EventStore,
    last: Position,
    progress: Progress<'_>,
    each: impl FnMut(RecordedEvent) -> bool,
) -> Result<(), AuditError> {
    for_each_recorded_after(store, Position::ZERO, ChainHash::GENESIS, last, progress, each)
}

/// Every event after `after` (whose hash is `prev`) through `last`.
///
/// Reading, checking the chain and decoding run on a thread of their own,
/// a chunk of events ahead of the fold, so a replay takes about as long
/// as the slower of the two rather than their sum.
fn for_each_recorded_after(
    store: &EventStore,
    after: Position,
    prev: ChainHash,
    last: Position,
    progress: Progress<'_>,
    mut each: impl FnMut(RecordedEvent) -> bool,
) -> Result<(), AuditError> {
    const CHUNK: usize = 1024;
    if after >= last {
        progress(last.get(), last.get());
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (chunks, decoded) = std::sync::mpsc::sync_channel::<Result<Vec<RecordedEvent>, AuditError>>(8);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for record in store.iter_chained_records(after.next(), prev) {
                if record.as_ref().is_ok_and(|record| record.position > last) {
                    break;
                }
                match record.map_err(AuditError::from).and_then(|r| recorded_from_record(&r)) {
                    Ok(recorded) => chunk.push(recorded),
                    Err(error) => {
                        // What was read before the error is handed out first.
                        let _ = chunks.send(Ok(chunk));
                        let _ = chunks.send(Err(error));
                        return;
                    }
                }
                if chunk.len() == CHUNK
                    && chunks
                        .send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
                        .is_err()
                {
                    return; // the fold stopped
                }
            }
            let _ = chunks.send(Ok(chunk));
        });
        'fold: for chunk in decoded {
            for recorded in chunk? {
                let position = recorded.position.get();
                if position % PROGRESS_EVERY == 0 {
                    progress(position, last.get());
                }
                if !each(recorded) {
                    break 'fold;
                }
            }
        }
        progress(last.get(), last.get());
        Ok(())
    })
}

/// The event of a record read off the chain, decoded from its data once.
fn recorded_from_record(record: &ChainedRecord) -> Result<RecordedEvent, AuditError> {
    let envelope: EventEnvelope = serde_json::from_slice(record.data()).map_err(|e| {
        AuditError::from(StoreError::Corrupt {
            position: record.position,
            problem: format!("data does not decode: {e}"),
        })
    })?;
    Ok(RecordedEvent {
        position: record.position,
        version: record.version,
        envelope,
    })
}

pub(crate) fn recorded(stored: &StoredEvent) -> Result<RecordedEvent, AuditError> {
    let envelope: EventEnvelope = stored.decode()?;
    Ok(RecordedEvent {
        position: stored.position,
        version: stored.version,
        envelope,
    })
}
