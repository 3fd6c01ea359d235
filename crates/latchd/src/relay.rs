//! The relay: follows the event log and publishes every event, in position
//! order, to the JetStream stream `LATCH_EVENTS`, with `Nats-Msg-Id` = event
//! id and `Latch-Position`; and a heartbeat on `latch.heartbeat` every second
//! (and at once, as the reply to a request on `latch.heartbeat.request`).
//!
//! It never loses or reorders an event: on every (re)connection it reads the
//! last position the stream holds and publishes from the next one, awaiting
//! each publish's acknowledgement (pipelined per batch) before moving on.
//! If NATS is down it retries with backoff while latchd keeps accepting
//! commands, then catches up in order. Every few seconds it checks that the
//! stream still holds what it published; a stream that lost its tail (NATS
//! acknowledges before it writes to disk) or was deleted is refilled.
//!
//! Messages in the stream that are not Latch events (no or an invalid
//! `Latch-Position`, a payload that is no Latch event, or one that
//! disagrees with its headers) are skipped, counted
//! (`latch_relay_foreign_messages_total`) and logged: whoever managed to
//! publish into `latch.events.>` must not be able to stop the relay. The
//! heartbeat request is answered only on an inbox subject (`reply_guard`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use futures::StreamExt;
use latch_bus::{Heartbeat, StreamSettings, headers, heartbeat, subject};
use latch_bus::TrustedKeys;
use latch_core::{LogId, Position};
use latch_store::EventStore;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::signing_keys::Keyring;
use crate::event_codec;

/// Events published per round of pipelined acknowledgements.
const BATCH: usize = 256;
/// How often the relay checks the stream still holds what it published.
const STREAM_CHECK: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What `/readyz` and `/metrics` show of the relay.
#[derive(Debug, Default)]
pub struct RelayStatus {
    /// The last position the stream acknowledged.
    pub published: AtomicU64,
    pub connected: AtomicBool,
    /// Sessions that ended in an error (NATS down, publish timeouts).
    pub failures: AtomicU64,
    /// Times the stream was found behind what had been published.
    pub repairs: AtomicU64,
    /// Messages found in the stream that are not Latch events (skipped).
    pub foreign_messages: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(
        "the stream {stream} holds events of another log (its last event, at position {position}, is {found}; this log has {expected} there). \
         Publishing nothing: point latchd at its own NATS, or delete the stream if this log replaces the old one"
    )]
    ForeignStream {
        stream: &'static str,
        position: Position,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Store(#[from] latch_store::StoreError),
}

fn nats(error: impl std::fmt::Display) -> RelayError {
    RelayError::Nats(error.to_string())
}

#[derive(Clone)]
pub struct Relay {
    pub store: Arc<EventStore>,
    pub nats: latch_bus::NatsConnection,
    pub clock: Arc<dyn Clock>,
    pub status: Arc<RelayStatus>,
    /// What every event and heartbeat is signed with (see
    /// `latch_bus::signed_feed`).
    pub keyring: Arc<Keyring>,
    /// `false` in HA mode: the leader's writer publishes each batch before
    /// writing it (see `crate::ha`), so everything in the log is in the
    /// stream; the relay only sends heartbeats for the log's head.
    pub publishes_events: bool,
}

impl Relay {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.session(&mut shutdown).await;
            if self.status.connected.swap(false, Ordering::SeqCst) {
                backoff = BACKOFF_MIN;
            }
            match outcome {
                Ok(()) => return,
                Err(error @ RelayError::ForeignStream { .. }) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, retry_in_ms = backoff.as_millis() as u64, "relay: refusing to publish into another log's stream");
                }
                Err(error) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "relay: NATS unavailable; latchd keeps accepting commands");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A heartbeat vouching for `published`, the last position the stream
    /// acknowledged.
    fn heartbeat(&self, published: Position) -> Result<bytes::Bytes, RelayError> {
        let mut heartbeat = Heartbeat::new(published, self.clock.now());
        heartbeat.replicated = !self.publishes_events;
        let hash = match self.store.hash_at(published)? {
            Some(hash) => *hash.as_bytes(),
            None => [0; 32],
        };
        latch_bus::sign_heartbeat(
            &mut heartbeat,
            self.log_id(),
            &hash,
            self.keyring.for_position(published),
        );
        Ok(heartbeat.encode().into())
    }

    fn ours(&self) -> OwnEvents<'_> {
        OwnEvents {
            log: self.log_id(),
            keys: TrustedKeys::new(self.keyring.public_keys().into_iter().map(|(_, k)| k)),
            status: &self.status,
        }
    }

    fn log_id(&self) -> LogId {
        self.store
            .log_id()
            .expect("a log opened for writing always has an id")
    }

    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), RelayError> {
        let client = self
            .nats
            .options()
            .await
            .map_err(nats)?
            .name("latchd relay")
            .connection_timeout(Duration::from_secs(2))
            .connect(self.nats.server_urls())
            .await
            .map_err(nats)?;
        let js = jetstream::new(client.clone());
        let settings = StreamSettings::default();
        let mut stream = None;
        let mut tail = TailScan::default();
        let mut published = self.store.head().position;
        if self.publishes_events {
            let config = jetstream::stream::Config {
                name: settings.name.to_owned(),
                subjects: settings.subjects.clone(),
                storage: if settings.file_storage {
                    jetstream::stream::StorageType::File
                } else {
                    jetstream::stream::StorageType::Memory
                },
                duplicate_window: settings.duplicate_window,
                ..Default::default()
            };
            let mut events = js.get_or_create_stream(config).await.map_err(nats)?;
            published = self
                .check_same_log(&mut events, &mut tail, settings.name)
                .await?;
            stream = Some(events);
        }
        self.status
            .published
            .store(published.get(), Ordering::SeqCst);
        self.status.connected.store(true, Ordering::SeqCst);
        tracing::info!(stream = settings.name, resume_after = %published, head = %self.store.head().position, publishes_events = self.publishes_events, "relay connected");
        let mut head = self.store.subscribe();
        let mut asked = client
            .subscribe(subject::HEARTBEAT_REQUEST)
            .await
            .map_err(nats)?;
        let mut beat = tokio::time::interval(heartbeat::INTERVAL);
        let mut check = tokio::time::interval(STREAM_CHECK);
        check.tick().await;
        loop {
            if !self.publishes_events {
                published = self.store.head().position;
                self.status
                    .published
                    .store(published.get(), Ordering::SeqCst);
            }
            while published < self.store.head().position {
                published = self.publish_after(&js, published).await?;
                self.status
                    .published
                    .store(published.get(), Ordering::SeqCst);
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = beat.tick() => {
                    // While disconnected the client would buffer heartbeats
                    // and deliver them late, vouching for a position that may
                    // since have moved on: send none instead.
                    if client.connection_state() == async_nats::connection::State::Connected {
                        client.publish(subject::HEARTBEAT, self.heartbeat(published)?).await.map_err(nats)?;
                    }
                }
                Some(request) = asked.next() => {
                    // Only what the stream has acknowledged is vouched for,
                    // and only to an inbox.
                    if let Some(reply) = crate::reply_guard::reply_to(&request.subject, request.reply.as_deref()) {
                        client.publish(reply.into_string(), self.heartbeat(published)?).await.map_err(nats)?;
                    }
                }
                _ = check.tick(), if stream.is_some() => {
                    let Some(stream) = stream.as_mut() else { continue };
                    let in_stream = last_position_in(stream, &mut tail, &self.ours()).await?.map_or(Position::ZERO, |(p, _)| p);
                    if in_stream < published {
                        tracing::warn!(%in_stream, %published, "relay: the stream lost events it had acknowledged; republishing them");
                        self.status.repairs.fetch_add(1, Ordering::Relaxed);
                        published = in_stream;
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// The position the stream holds up to, after checking that its last
    /// event is this log's event at that position (same event id). A stream
    /// written from another log (an old data dir, another latchd) would
    /// otherwise make the relay skip this log's first events for ever.
    async fn check_same_log(
        &self,
        stream: &mut Stream,
        tail: &mut TailScan,
        name: &'static str,
    ) -> Result<Position, RelayError> {
        let Some((position, event_id)) = last_position_in(stream, tail, &self.ours()).await? else {
            return Ok(Position::ZERO);
        };
        let expected = self
            .store
            .event(position)?
            .map(|stored| event_codec::to_recorded(&stored))
            .transpose()?;
        match expected {
            Some(recorded) if recorded.envelope.id.to_string() == event_id => Ok(position),
            other => Err(RelayError::ForeignStream {
                stream: name,
                position,
                found: event_id,
                expected: other
                    .map_or_else(|| "no event".to_owned(), |r| r.envelope.id.to_string()),
            }),
        }
    }

    /// Publishes up to `BATCH` events after `after`, pipelined, and returns
    /// the last position the stream acknowledged.
    async fn publish_after(
        &self,
        js: &jetstream::Context,
        after: Position,
    ) -> Result<Position, RelayError> {
        let events = self.store.read_after(after, BATCH)?;
        let mut pending = Vec::with_capacity(events.len());
        let log = self.log_id();
        let mut batch: Vec<latch_bus::BatchEvent> = Vec::with_capacity(events.len());
        for stored in &events {
            batch.push(latch_bus::BatchEvent {
                recorded: event_codec::to_recorded(stored)?,
                record: stored.record(),
                hash: *stored.hash.as_bytes(),
            });
        }
        // One signature per run of events signed by the same key: a batch
        // never spans a key rotation (the rotation event is the last one
        // the old key signs).
        for run in batch.chunk_by(|a, b| {
            std::ptr::eq(
                self.keyring.for_position(a.recorded.position),
                self.keyring.for_position(b.recorded.position),
            )
        }) {
            let key = self.keyring.for_position(run[0].recorded.position);
            for (event, signed) in run.iter().zip(latch_bus::sign_batch(run, log, key)) {
                let recorded = &event.recorded;
                let message_headers = headers::event_headers(recorded, signed.headers());
                let subject = latch_bus::event_subject(&recorded.envelope.event);
                let ack = js
                    .publish_with_headers(subject, message_headers, signed.payload.into())
                    .await
                    .map_err(nats)?;
                pending.push((recorded.position, ack));
            }
        }
        let mut acknowledged = after;
        for (position, ack) in pending {
            ack.await.map_err(nats)?;
            acknowledged = position;
        }
        Ok(acknowledged)
    }
}

/// The last Latch event the relay found in the stream, and how far it has
/// looked: a check walks back only over what arrived since the last one,
/// so foreign messages are read (and counted) once, however many there are.
#[derive(Debug, Default)]
struct TailScan {
    /// The highest stream sequence examined.
    examined: u64,
    /// `(sequence, position, event id)` of the last Latch event found.
    found: Option<(u64, Position, String)>,
}

/// The position and event id of the last Latch event the stream holds,
/// walking back past messages that are not Latch events.
async fn last_position_in(
    stream: &mut Stream,
    tail: &mut TailScan,
    ours: &OwnEvents<'_>,
) -> Result<Option<(Position, String)>, RelayError> {
    let status = ours.status;
    let state = stream.info().await.map_err(nats)?.state.clone();
    if state.messages == 0 {
        *tail = TailScan::default();
        return Ok(None);
    }
    // What was examined before still holds if the stream kept it (it did
    // not lose its tail, and the event found is still there, unchanged).
    let mut known = None;
    if tail.examined > 0 && tail.examined <= state.last_sequence {
        match &tail.found {
            None => known = Some(None),
            Some((sequence, position, id)) if *sequence >= state.first_sequence => {
                if let Some(message) = raw_message(stream, *sequence).await?
                    && ours.position_of(&message).is_some_and(|(p, i)| p == *position && i == *id)
                {
                    known = Some(Some((*sequence, *position, id.clone())));
                }
            }
            _ => {}
        }
    }
    let lowest = match &known {
        Some(_) => tail.examined + 1,
        None => state.first_sequence,
    };
    let mut found = None;
    let mut sequence = state.last_sequence;
    while sequence >= lowest.max(1) {
        if let Some(message) = raw_message(stream, sequence).await? {
            match ours.position_of(&message) {
                Some((position, id)) => {
                    found = Some((sequence, position, id));
                    break;
                }
                None => {
                    status.foreign_messages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        sequence,
                        subject = %message.subject,
                        "relay: skipping a message in the stream that is not a Latch event (only latchd should publish to latch.events.>; check NATS permissions)"
                    );
                }
            }
        }
        sequence -= 1;
    }
    let found = found.or_else(|| known.flatten());
    tail.examined = state.last_sequence;
    tail.found = found.clone();
    Ok(found.map(|(_, position, id)| (position, id)))
}

/// The stream message at `sequence`, `None` when it was deleted.
async fn raw_message(
    stream: &Stream,
    sequence: u64,
) -> Result<Option<jetstream::message::StreamMessage>, RelayError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(error)
            if matches!(
                error.kind(),
                jetstream::stream::RawMessageErrorKind::NoMessageFound
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(nats(error)),
    }
}

/// What tells this relay's own events from anything else in the stream.
struct OwnEvents<'a> {
    log: LogId,
    keys: TrustedKeys,
    status: &'a RelayStatus,
}

impl OwnEvents<'_> {
    /// The position and event id of a message that this relay published:
    /// this log's id, and a signature by one of this latchd's keys over its
    /// position, event id and chain hash (with its batch, or alone). `None` for anything else, which
    /// the relay skips: whoever can publish on `latch.events.>` can put junk
    /// or well-formed forgeries in the stream, but cannot make the relay
    /// stop (a forgery naming another log or event would otherwise look
    /// like a foreign stream) or skip this log's events.
    fn position_of(&self, message: &jetstream::message::StreamMessage) -> Option<(Position, String)> {
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str());
        let (log, position, event) = latch_bus::signed_headers(&self.keys, header)?;
        (log == self.log).then(|| (position, event.to_string()))
    }
}
