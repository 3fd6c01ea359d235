//! Replaying the log to a moment with latch-core's own `evolve`: the state
//! as latchd held it then, not a reconstruction.

use chrono::{DateTime, Utc};
use latch_core::{EventEnvelope, Position, RecordedEvent, State, evolve};
use latch_store::{ChainHash, EventStore, StoredEvent};

use crate::audit_error::AuditError;
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
    /// Events read, each checked against the hash chain.
    pub events: u64,
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
        Moment::Time(_) => head,
    };
    let mut state = State::new();
    let mut at = match moment {
        Moment::Time(at) => at,
        Moment::Position(_) => DateTime::<Utc>::MIN_UTC,
    };
    let mut events = 0;
    for_each_recorded(store, last, progress, |recorded| {
        if let Moment::Time(until) = moment
            && recorded.envelope.at > until
        {
            return false;
        }
        if let Moment::Position(_) = moment {
            at = recorded.envelope.at;
        }
        evolve(&mut state, &recorded);
        events += 1;
        true
    })?;
    Ok(Replayed {
        position: state.position(),
        state,
        at,
        events,
    })
}

/// Every event from the first through `last`, decoded and checked against
/// the chain, for as long as `each` says to go on.
pub(crate) fn for_each_recorded(
    store: &EventStore,
    last: Position,
    progress: Progress<'_>,
    mut each: impl FnMut(RecordedEvent) -> bool,
) -> Result<(), AuditError> {
    for stored in store.iter_chained(Position::FIRST, ChainHash::GENESIS) {
        let stored = stored?;
        if stored.position > last {
            break;
        }
        let position = stored.position;
        if position.get() % PROGRESS_EVERY == 0 {
            progress(position.get(), last.get());
        }
        if !each(recorded(&stored)?) {
            break;
        }
    }
    progress(last.get(), last.get());
    Ok(())
}

pub(crate) fn recorded(stored: &StoredEvent) -> Result<RecordedEvent, AuditError> {
    let envelope: EventEnvelope = stored.decode()?;
    Ok(RecordedEvent {
        position: stored.position,
        version: stored.version,
        envelope,
    })
}
