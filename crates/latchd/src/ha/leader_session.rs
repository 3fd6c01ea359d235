//! `LeaderSession`: how the leader's writer publishes a batch to the
//! replicated stream before it writes the batch to its own log.
//!
//! Each event is published (signed, as the relay signs) with
//! `Nats-Expected-Last-Sequence` set to the stream sequence it must follow.
//! The publishes are pipelined and their acknowledgements awaited together:
//! one round trip per batch, however many commands it holds (group commit).
//! JetStream refuses a message whose expected sequence is not the stream's
//! last, so a leader that was deposed (paused, partitioned, its lease taken
//! while it was not looking) can never append: its first publish fails
//! once any other node has published, and the writer answers the batch
//! with 503 and steps down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use latch_bus::{BatchEvent, headers};
use latch_core::{LogId, Position};
use latch_store::{IdempotencyRecord, StoredEvent};

use crate::event_codec;
use crate::signing_keys::Keyring;

/// How long a batch's acknowledgements may take before the leader gives up
/// on it (and steps down): well inside the lease.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Times a batch is published again after foreign messages moved the
/// stream under it.
const MAX_ROUNDS: usize = 3;

type Message = (String, async_nats::HeaderMap, Vec<u8>);

/// A message sent and its acknowledgement to come (or why it could not be
/// sent).
type Sent = Result<jetstream::context::PublishAckFuture, String>;

/// Sends `messages` pipelined, the first expected to follow stream
/// sequence `expected` and, when `after_id` is given, the message whose
/// `Nats-Msg-Id` it is; each later one the message before it. Returns at
/// once: the acknowledgements are awaited by `acknowledged`.
async fn send_from(
    js: &jetstream::Context,
    messages: &[Message],
    expected: u64,
    after_id: Option<&str>,
) -> Vec<Sent> {
    let mut sent = Vec::with_capacity(messages.len());
    let mut previous = after_id.map(str::to_owned);
    for (offset, (subject, map, payload)) in messages.iter().enumerate() {
        let mut map = map.clone();
        map.insert(
            headers::NATS_EXPECTED_LAST_SEQUENCE,
            (expected + offset as u64).to_string().as_str(),
        );
        if let Some(previous) = &previous {
            map.insert(headers::NATS_EXPECTED_LAST_MSG_ID, previous.as_str());
        }
        previous = map.get(headers::NATS_MSG_ID).map(|id| id.to_string());
        sent.push(
            js.publish_with_headers(subject.clone(), map, payload.clone().into())
                .await
                .map_err(|e| format!("publishing: {e}")),
        );
    }
    sent
}

/// Awaits the acknowledgements of messages sent (`send_from`) to follow
/// `expected`: the last sequence, if the stream took every one of them, in
/// order, right after `expected`.
async fn acknowledged(sent: Vec<Sent>, expected: u64) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    let mut last = expected;
    let mut failure = None;
    for ack in sent {
        let outcome = match ack {
            Err(problem) => Err(problem),
            Ok(ack) => match tokio::time::timeout_at(deadline, ack).await {
                Err(_) => Err("the stream did not acknowledge in time".to_owned()),
                Ok(Err(e)) => Err(format!("the stream refused the event: {e}")),
                Ok(Ok(ack)) if ack.sequence != last + 1 || ack.duplicate => Err(format!(
                    "the stream acknowledged sequence {} (duplicate: {}), expected {}",
                    ack.sequence,
                    ack.duplicate,
                    last + 1
                )),
                Ok(Ok(ack)) => Ok(ack.sequence),
            },
        };
        match outcome {
            Ok(sequence) if failure.is_none() => last = sequence,
            Ok(_) => {}
            Err(problem) => {
                failure.get_or_insert(problem);
            }
        }
    }
    match failure {
        None => Ok(last),
        Some(problem) => Err(problem),
    }
}

/// What the stream holds after `expected`: how many of the batch's events
/// (`ids`, in order) it took, and the sequence to publish the rest after.
/// An event of this cluster that is not the batch's means another leader:
/// an error.
async fn examine(
    js: &jetstream::Context,
    trusted: &latch_bus::TrustedKeys,
    expected: u64,
    ids: &[String],
) -> Result<(usize, u64), String> {
    let stream = js
        .get_stream(latch_bus::STREAM_NAME)
        .await
        .map_err(|e| format!("reading the stream: {e}"))?;
    let last = stream
        .get_info()
        .await
        .map_err(|e| format!("reading the stream: {e}"))?
        .state
        .last_sequence;
    let mut held = 0;
    let mut after = expected;
    for sequence in expected + 1..=last {
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                after = sequence;
                continue;
            }
            Err(error) => return Err(format!("reading the stream: {error}")),
        };
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str());
        match latch_bus::signed_headers(trusted, header) {
            None => {}
            Some((_, _, event)) if ids.get(held).is_some_and(|id| *id == event.to_string()) => {
                held += 1;
            }
            Some((_, position, _)) => {
                return Err(format!(
                    "another leader appended event {position} at stream sequence {sequence}"
                ));
            }
        }
        after = sequence;
    }
    Ok((held, after))
}

pub struct LeaderSession {
    runtime: tokio::runtime::Handle,
    js: jetstream::Context,
    keyring: Arc<Keyring>,
    log: LogId,
    /// The stream's last sequence, as this leader left it: every batch up
    /// to here was acknowledged (`settle`).
    last_sequence: u64,
    /// Where the next batch is sent to follow: past `last_sequence` by the
    /// batches sent and not settled yet (`start`).
    sent_sequence: u64,
    /// The `Nats-Msg-Id` of the last message sent while batches are in
    /// flight: the next batch's first message must follow it.
    sent_last_id: Option<String>,
    /// Batches sent and not settled yet.
    in_flight: usize,
}

/// A batch sent to the stream whose acknowledgements are still to be
/// awaited (`LeaderSession::settle`), in the order batches were sent.
pub struct PendingBatch {
    messages: Vec<Message>,
    ids: Vec<String>,
    /// The sequence it was sent to follow.
    expected: u64,
    sent: Vec<Sent>,
}

impl PendingBatch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl LeaderSession {
    /// Made inside the runtime (the writer thread publishes through it).
    pub fn new(js: jetstream::Context, keyring: Arc<Keyring>, log: LogId, last_sequence: u64) -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            js,
            keyring,
            log,
            last_sequence,
            sent_sequence: last_sequence,
            sent_last_id: None,
            in_flight: 0,
        }
    }

    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Publishes `events` (consecutive, as the log stores or will store
    /// them) and waits for the stream to acknowledge all of them; returns
    /// the stream sequence of the last. Blocking: call it from a thread
    /// outside the runtime (the writer) or from `spawn_blocking`.
    pub fn publish(
        &mut self,
        events: &[StoredEvent],
        idempotency: &[(String, IdempotencyRecord)],
    ) -> Result<u64, String> {
        let pending = self.start(events, idempotency)?;
        self.settle(pending)
    }

    /// Sends `events` (consecutive, continuing the batches in flight) to
    /// the stream without waiting for its acknowledgements: `settle` awaits
    /// them, batch by batch in the order they were started. Each message
    /// expects the stream sequence before it and, after the first message
    /// sent with nothing in flight, the `Nats-Msg-Id` of the message sent
    /// before it: once one is refused, every later one is too, so the
    /// stream never holds a later event without an earlier one.
    /// `idempotency` are the records the same append writes: each travels
    /// on the last event of its command, so a standby records it with the
    /// command's last event, never before it. Blocking, as `publish`.
    pub fn start(
        &mut self,
        events: &[StoredEvent],
        idempotency: &[(String, IdempotencyRecord)],
    ) -> Result<PendingBatch, String> {
        let messages = self.messages(events, idempotency)?;
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|(_, map, _)| map.get(headers::NATS_MSG_ID).map(|id| id.to_string()))
            .collect();
        let expected = self.sent_sequence;
        let after_id = if self.in_flight > 0 {
            self.sent_last_id.clone()
        } else {
            None
        };
        let js = self.js.clone();
        let sent = self
            .runtime
            .block_on(async { send_from(&js, &messages, expected, after_id.as_deref()).await });
        if let Some(last) = ids.last() {
            self.sent_sequence = expected + messages.len() as u64;
            self.sent_last_id = Some(last.clone());
            self.in_flight += 1;
        }
        Ok(PendingBatch {
            messages,
            ids,
            expected,
            sent,
        })
    }

    /// Waits for the stream to acknowledge the oldest batch `start`ed and
    /// not settled; returns the stream sequence of its last event. If the
    /// stream moved under it (a message no latchd signed), the rest of the
    /// batch is published again after it; batches sent after it then
    /// fail their expectations and are published again when settled. An
    /// event of this cluster that is not the batch's means another leader:
    /// an error, and the caller must stop leading.
    pub fn settle(&mut self, pending: PendingBatch) -> Result<u64, String> {
        if pending.is_empty() {
            return Ok(self.last_sequence);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let trusted = latch_bus::TrustedKeys::new(
            self.keyring.public_keys().into_iter().map(|(_, key)| key),
        );
        let js = self.js.clone();
        let confirmed = self.last_sequence;
        let PendingBatch {
            messages,
            ids,
            expected: sent_after,
            sent,
        } = pending;
        let stale = sent_after != confirmed;
        let outcome = self.runtime.block_on(async move {
            let first_try = if !stale {
                acknowledged(sent, sent_after).await
            } else {
                // An earlier batch was published again: this one was sent
                // to follow where it would have ended, and was refused.
                drop(sent);
                Err(format!(
                    "sent to follow sequence {sent_after}, the stream is at {confirmed}"
                ))
            };
            let mut problem = match first_try {
                Ok(last) => return Ok((last, false)),
                Err(problem) => problem,
            };
            // Messages of the batch the stream holds so far.
            let mut done = 0;
            let mut expected = confirmed;
            for round in 0.. {
                // Whoever else published in between decides what happens:
                // a foreign message only moves the sequence; an event of
                // this cluster means another leader.
                let (held, after) = examine(&js, &trusted, expected, &ids[done..]).await?;
                // Nothing more in the stream: the batch was refused where
                // it belongs (fenced, or no quorum). Only a batch sent to
                // follow an earlier one that was published again is sent
                // once more.
                if held == 0 && after == expected && (round > 0 || !stale) {
                    return Err(problem);
                }
                if held > 0 || after != expected {
                    tracing::warn!(%problem, held, skipped_to = after, "ha: the stream moved under the leader (a message no latchd signed); publishing the rest after it");
                }
                done += held;
                expected = after;
                if done == messages.len() {
                    return Ok((after, true));
                }
                if round >= MAX_ROUNDS {
                    return Err(problem);
                }
                let sent = send_from(&js, &messages[done..], expected, None).await;
                match acknowledged(sent, expected).await {
                    Ok(last) => return Ok((last, true)),
                    Err(again) => problem = again,
                }
            }
            unreachable!("the loop returns")
        });
        match outcome {
            Ok((last, moved)) => {
                self.last_sequence = last;
                if moved || self.in_flight == 0 {
                    // Batches still in flight were sent to follow where
                    // this one was expected to end: they will be published
                    // again; new ones follow what the stream holds.
                    self.sent_sequence = self.sent_sequence.max(last);
                    if self.in_flight == 0 {
                        self.sent_sequence = last;
                        self.sent_last_id = None;
                    }
                }
                Ok(last)
            }
            Err(problem) => Err(problem),
        }
    }

    /// The signed messages of `events`.
    fn messages(
        &self,
        events: &[StoredEvent],
        idempotency: &[(String, IdempotencyRecord)],
    ) -> Result<Vec<Message>, String> {
        let mut batch = Vec::with_capacity(events.len());
        for stored in events {
            batch.push(BatchEvent {
                recorded: event_codec::to_recorded(stored).map_err(|e| e.to_string())?,
                record: stored.record(),
                hash: *stored.hash.as_bytes(),
            });
        }
        let mut markers: HashMap<Position, String> = HashMap::new();
        for (index_key, record) in idempotency {
            if record.count > 0 {
                let last = Position::new(record.first.get() + record.count - 1);
                markers.insert(
                    last,
                    format!(
                        "{index_key} {} {} {}",
                        record.first, record.count, record.fingerprint
                    ),
                );
            }
        }
        let mut messages = Vec::with_capacity(batch.len());
        for run in batch.chunk_by(|a, b| {
            std::ptr::eq(
                self.keyring.for_position(a.recorded.position),
                self.keyring.for_position(b.recorded.position),
            )
        }) {
            let key = self.keyring.for_position(run[0].recorded.position);
            for (event, signed) in run.iter().zip(latch_bus::sign_batch(run, self.log, key)) {
                let mut map = headers::event_headers(&event.recorded, signed.headers());
                if let Some(marker) = markers.get(&event.recorded.position) {
                    map.insert(headers::LATCH_IDEMPOTENCY, marker.as_str());
                }
                let subject = latch_bus::event_subject(&event.recorded.envelope.event);
                messages.push((subject, map, signed.payload));
            }
        }
        Ok(messages)
    }
}
