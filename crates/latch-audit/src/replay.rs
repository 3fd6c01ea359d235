//! Replaying the log to a moment with latch-core's own `evolve`: the state
//! as latchd held it then, not a reconstruction. The replay starts from the
//! nearest checkpoint at or before the moment whose chain hash matches the
//! log there (`checkpoint.rs`), and folds only the tail after it; a
//! checkpoint that disagrees with the chain is refused and named.

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Every event after `after` (whose hash is `prev`: the genesis hash after
/// position 0) through `last`, decoded and checked against the chain, for
/// as long as `each` says to go on: latchd's rebuild on start folds the
/// log's tail after its snapshot with it. A break in the chain ends it
/// with `AuditError::BrokenChain`, after every event before the break.
///
/// Reading and checking the chain run on a thread of their own, a chunk of
/// events ahead of the fold. Decoding, the largest cost of the three, is
/// shared between the two threads by how far apart they are (`Pipeline`),
/// so that on two cores a replay takes about half the sum of the costs.
pub fn for_each_recorded_after(
    store: &EventStore,
    after: Position,
    prev: ChainHash,
    last: Position,
    progress: Progress<'_>,
    each: impl FnMut(RecordedEvent) -> bool,
) -> Result<(), AuditError> {
    Pipeline::default().run(store, after, prev, last, progress, each)
}

impl Pipeline {
    fn run(
        &self,
        store: &EventStore,
        after: Position,
        prev: ChainHash,
        last: Position,
        progress: Progress<'_>,
        mut each: impl FnMut(RecordedEvent) -> bool,
    ) -> Result<(), AuditError> {
        if after >= last {
            progress(last.get(), last.get());
            return Ok(());
        }
        let pipeline = self;
        std::thread::scope(|scope| {
            let (chunks, arriving) = std::sync::mpsc::sync_channel::<Result<Chunk, AuditError>>(8);
            // latchd's writer thread rebuilds through here: no thread to be
            // had is an error to return, not a panic.
            let reader = std::thread::Builder::new().name("replay-reader".into());
            let spawned = reader.spawn_scoped(scope, move || {
                let mut chunk = Vec::with_capacity(Pipeline::CHUNK);
                let send = |chunk: Vec<ChainedRecord>| {
                    let chunk = pipeline.prepare(chunk);
                    pipeline.queued.fetch_add(1, Ordering::Relaxed);
                    chunks.send(chunk)
                };
                for record in store.iter_chained_records(after.next(), prev) {
                    let record = match record {
                        Ok(record) if record.position > last => break,
                        Ok(record) => record,
                        Err(error) => {
                            // What was read before the error is handed out first.
                            let _ = send(chunk);
                            pipeline.queued.fetch_add(1, Ordering::Relaxed);
                            let _ = chunks.send(Err(error.into()));
                            return;
                        }
                    };
                    chunk.push(record);
                    if chunk.len() == Pipeline::CHUNK
                        && send(std::mem::replace(&mut chunk, Vec::with_capacity(Pipeline::CHUNK))).is_err()
                    {
                        return; // the fold stopped
                    }
                }
                let _ = send(chunk);
            });
            if let Err(error) = spawned {
                return Err(AuditError::Store(StoreError::Io(error)));
            }
            'fold: for chunk in arriving {
                pipeline.queued.fetch_sub(1, Ordering::Relaxed);
                for recorded in chunk?.decoded() {
                    let recorded = recorded?;
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
}

/// How the reading thread and the folding thread share the decoding.
///
/// The reader decodes a chunk itself only while the fold has chunks
/// waiting (it is the slower one); otherwise it hands the chunk over as
/// read and the fold decodes it as it goes. Each side thus takes the share
/// that keeps the other busy, whatever the mix of events and the machine.
#[derive(Default)]
struct Pipeline {
    /// Chunks sent and not yet taken by the fold.
    queued: AtomicUsize,
    /// Chunks the reader decoded itself, wholly or up to a bad record (for
    /// tests).
    decoded_by_reader: AtomicUsize,
}

impl Pipeline {
    /// Events a chunk carries.
    const CHUNK: usize = 1024;
    /// Chunks waiting at the fold from which the reader decodes.
    const FOLD_BEHIND: usize = 2;

    fn prepare(&self, records: Vec<ChainedRecord>) -> Result<Chunk, AuditError> {
        if self.queued.load(Ordering::Relaxed) < Self::FOLD_BEHIND {
            return Ok(Chunk::Read(records));
        }
        let mut decoded = Vec::with_capacity(records.len());
        for record in &records {
            match recorded_from_record(record) {
                Ok(recorded) => decoded.push(recorded),
                // Handed over undecoded from here: the fold meets the error
                // in order, after the events before it.
                Err(_) => {
                    self.decoded_by_reader.fetch_add(1, Ordering::Relaxed);
                    let rest = records.into_iter().skip(decoded.len()).collect();
                    return Ok(Chunk::Partly(decoded, rest));
                }
            }
        }
        self.decoded_by_reader.fetch_add(1, Ordering::Relaxed);
        Ok(Chunk::Decoded(decoded))
    }
}

/// A chunk of events as the reader hands it to the fold.
enum Chunk {
    Read(Vec<ChainedRecord>),
    Decoded(Vec<RecordedEvent>),
    /// Decoded up to a record that does not decode, then as read.
    Partly(Vec<RecordedEvent>, Vec<ChainedRecord>),
}

impl Chunk {
    /// The chunk's events in order, decoding what is not decoded yet.
    fn decoded(self) -> Box<dyn Iterator<Item = Result<RecordedEvent, AuditError>>> {
        let from_records = |records: Vec<ChainedRecord>| {
            records.into_iter().map(|record| recorded_from_record(&record))
        };
        match self {
            Chunk::Read(records) => Box::new(from_records(records)),
            Chunk::Decoded(events) => Box::new(events.into_iter().map(Ok)),
            Chunk::Partly(events, records) => {
                Box::new(events.into_iter().map(Ok).chain(from_records(records)))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use latch_core::{AccountId, Actor, Event, EventId};
    use latch_store::{AppendRequest, NewEvent, RawValue};

    use super::*;

    /// A log of `events` events; the one at `undecodable`, if any, is on
    /// the chain like any other but its data is no envelope.
    fn log(events: u64, undecodable: Option<u64>) -> (tempfile::TempDir, EventStore, Vec<EventId>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open(dir.path()).expect("a store");
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        for position in 1..=events {
            let envelope = EventEnvelope {
                id: EventId::new(),
                at: DateTime::from_timestamp(1_800_000_000 + position as i64, 0).unwrap(),
                actor: Actor::System,
                request_id: None,
                idempotency_key_sha256: None,
                event: Event::AccountEnabled { account_id: AccountId::new() },
            };
            ids.push(envelope.id);
            let json = if Some(position) == undecodable {
                r#"{"not":"an envelope"}"#.to_owned()
            } else {
                serde_json::to_string(&envelope).unwrap()
            };
            batch.push(AppendRequest {
                events: vec![NewEvent {
                    stream: "account-x".into(),
                    data: RawValue::from_string(json).unwrap(),
                }],
                expectations: Vec::new(),
                idempotency: None,
            });
            if batch.len() == 512 {
                store.append(&std::mem::take(&mut batch)).expect("appended");
            }
        }
        store.append(&batch).expect("appended");
        (dir, store, ids)
    }

    /// Replays the whole log, the fold pausing at first so that the reader
    /// gets ahead; the ids folded, the outcome and how many chunks the
    /// reader decoded.
    fn replay_all(store: &EventStore, fold_pauses: bool) -> (Vec<EventId>, Result<(), AuditError>, usize) {
        let pipeline = Pipeline::default();
        let mut folded = Vec::new();
        let outcome = pipeline.run(
            store,
            Position::ZERO,
            ChainHash::GENESIS,
            store.head().position,
            &mut |_, _| {},
            |recorded| {
                if fold_pauses && folded.is_empty() {
                    std::thread::sleep(Duration::from_millis(300));
                }
                assert_eq!(recorded.position.get(), folded.len() as u64 + 1, "in order");
                folded.push(recorded.envelope.id);
                true
            },
        );
        (folded, outcome, pipeline.decoded_by_reader.into_inner())
    }

    #[test]
    fn every_event_is_folded_in_order_whichever_thread_decodes_it() {
        let events = 12 * Pipeline::CHUNK as u64 + 7;
        let (_dir, store, ids) = log(events, None);
        for fold_pauses in [false, true] {
            let (folded, outcome, by_reader) = replay_all(&store, fold_pauses);
            outcome.expect("the log replays");
            assert_eq!(folded, ids);
            // The first chunk always reaches an idle fold as read.
            assert!(by_reader < 13, "{by_reader}");
            if fold_pauses {
                assert!(by_reader > 0, "a fold that falls behind gets decoded chunks");
            }
        }
    }

    #[test]
    fn a_record_that_does_not_decode_ends_the_replay_after_every_event_before_it() {
        // In the first chunk (always decoded by the fold), and in the
        // fourth while the fold pauses (by then the reader has two chunks
        // waiting, so it decodes it, up to the bad record).
        for (undecodable, fold_pauses) in [(5, false), (3 * Pipeline::CHUNK as u64 + 3, true)] {
            let (_dir, store, ids) = log(12 * Pipeline::CHUNK as u64, Some(undecodable));
            let (folded, outcome, by_reader) = replay_all(&store, fold_pauses);
            assert_eq!(folded, ids[..undecodable as usize - 1]);
            match outcome {
                Err(AuditError::Store(StoreError::Corrupt { position, .. })) => {
                    assert_eq!(position.get(), undecodable)
                }
                other => panic!("{other:?}"),
            }
            if fold_pauses {
                // The fourth chunk at least, up to the bad record.
                assert!(by_reader > 0, "the reader decoded up to the bad record");
            }
        }
    }
}
