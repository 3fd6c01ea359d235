//! Reading the log through an `EventFilter`, a page or all of it.

use latch_core::{EventEnvelope, Position};
use latch_store::{EventStore, StoredEvent};

use crate::audit_error::AuditError;
use crate::audit_event::{AuditEvent, NameOf};
use crate::event_filter::{ActorMatch, EventFilter, Verdict};
use crate::log_index::{IndexedBy, LogIndex};

/// Where a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// The last position read: the next scan goes on after it.
    pub last_read: Position,
    /// No later event can match: the filter's position or time range ended.
    pub complete: bool,
}

/// Reads events after `after` (and from the filter's first position),
/// handing those that match to `each` until it says stop, the log ends, the
/// filter's range ends, or `read_limit` events were read. Actors are
/// named by `name_of`.
///
/// With the log's index whole, a filter on a token, an account or an actor
/// reads only the events indexed under it, and one on `since` starts at the
/// first event of that time; otherwise (and with no such filter) it reads
/// the log in order. Both give the same events (`scan_events_in_order` is
/// the reference the tests hold the index to).
pub fn scan_events(
    store: &EventStore,
    filter: &EventFilter,
    after: Position,
    read_limit: u64,
    name_of: &NameOf<'_>,
    each: impl FnMut(AuditEvent) -> bool,
) -> Result<ScanEnd, AuditError> {
    let Some(index) = LogIndex::open(store)? else {
        return scan_events_in_order(store, filter, after, read_limit, name_of, each);
    };
    if let Some(by) = indexed_by(filter) {
        return scan_indexed(store, index, by, filter, after, read_limit, name_of, each);
    }
    let mut after = after;
    if let Some(since) = filter.since {
        // Every event before the first at `since` is older: none matches.
        let first = index
            .first_at_or_after(since)?
            .unwrap_or(index.head().next());
        after = after.max(Position::new(first.get() - 1));
    }
    scan_events_in_order(store, filter, after, read_limit, name_of, each)
}

/// `scan_events` reading every event in order, whatever the index holds.
pub fn scan_events_in_order(
    store: &EventStore,
    filter: &EventFilter,
    after: Position,
    read_limit: u64,
    name_of: &NameOf<'_>,
    each: impl FnMut(AuditEvent) -> bool,
) -> Result<ScanEnd, AuditError> {
    let start = after.next().max(filter.first_position());
    let events = store
        .iter_from(start)
        .take(read_limit as usize)
        .map(|stored| stored.map_err(AuditError::from));
    Ok(hand_out(events, filter, start, after, name_of, each)?.end)
}

/// Where `hand_out` stopped.
struct HandedOut {
    end: ScanEnd,
    /// Events read.
    read: u64,
    /// `each` said stop, or the filter's range ended.
    stopped: bool,
}

/// Hands the events that match the filter to `each`, in order, until it
/// says stop, the filter's range ends, or `events` does.
fn hand_out(
    events: impl Iterator<Item = Result<StoredEvent, AuditError>>,
    filter: &EventFilter,
    start: Position,
    after: Position,
    name_of: &NameOf<'_>,
    mut each: impl FnMut(AuditEvent) -> bool,
) -> Result<HandedOut, AuditError> {
    let mut out = HandedOut {
        end: ScanEnd {
            last_read: Position::new(start.get() - 1).max(after),
            complete: false,
        },
        read: 0,
        stopped: false,
    };
    for stored in events {
        let stored = stored?;
        out.read += 1;
        let envelope: EventEnvelope = stored.decode()?;
        match filter.check(stored.position, &envelope) {
            Verdict::PastTheEnd => {
                out.end.complete = true;
                out.stopped = true;
                break;
            }
            Verdict::Skip => out.end.last_read = stored.position,
            Verdict::Matches => {
                out.end.last_read = stored.position;
                if !each(AuditEvent::of(&stored, &envelope, name_of)) {
                    out.stopped = true;
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The narrowest index the filter names: a token, an account, an actor.
fn indexed_by(filter: &EventFilter) -> Option<IndexedBy> {
    if let Some(token) = filter.token {
        return Some(IndexedBy::Token(token));
    }
    if let Some(account) = filter.account {
        return Some(IndexedBy::Account(account));
    }
    filter.actor.map(|actor| match actor {
        ActorMatch::System => IndexedBy::ActorSystem,
        ActorMatch::Account(account) => IndexedBy::ActorAccount(account),
        ActorMatch::Token(token) => IndexedBy::ActorToken(token),
    })
}

/// Reads only the events indexed under `by`, checking each against the
/// whole filter (and against its own hash). `read_limit` counts the events
/// read; once the index has no more, every event through its head was
/// considered.
#[allow(clippy::too_many_arguments)]
fn scan_indexed(
    store: &EventStore,
    index: LogIndex<'_>,
    by: IndexedBy,
    filter: &EventFilter,
    after: Position,
    read_limit: u64,
    name_of: &NameOf<'_>,
    each: impl FnMut(AuditEvent) -> bool,
) -> Result<ScanEnd, AuditError> {
    let start = after.next().max(filter.first_position());
    let events = index
        .positions(by, Position::new(start.get() - 1))
        .take(read_limit as usize)
        .map(|position| {
            let position = position?;
            store
                .event_checked(position)?
                .ok_or(AuditError::IndexPointsNowhere(position))
        });
    let mut out = hand_out(events, filter, start, after, name_of, each)?;
    if !out.stopped && out.read < read_limit {
        out.end.last_read = out.end.last_read.max(index.head());
        out.end.complete = filter.to.is_some_and(|to| to < index.head());
    }
    Ok(out.end)
}
