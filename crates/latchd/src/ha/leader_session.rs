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

/// Publishes `messages` pipelined, the first expected to follow
/// `expected`, and awaits their acknowledgements: the last sequence.
async fn publish_from(
    js: &jetstream::Context,
    messages: &[Message],
    expected: u64,
) -> Result<u64, String> {
    let mut acks = Vec::with_capacity(messages.len());
    for (offset, (subject, map, payload)) in messages.iter().enumerate() {
        let mut map = map.clone();
        map.insert(
            headers::NATS_EXPECTED_LAST_SEQUENCE,
            (expected + offset as u64).to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subject.clone(), map, payload.clone().into())
            .await
            .map_err(|e| format!("publishing: {e}"))?;
        acks.push(ack);
    }
    let mut last = expected;
    let mut failure = None;
    for ack in acks {
        let outcome = match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Err(_) => Err("the stream did not acknowledge in time".to_owned()),
            Ok(Err(e)) => Err(format!("the stream refused the event: {e}")),
            Ok(Ok(ack)) if ack.sequence != last + 1 || ack.duplicate => Err(format!(
                "the stream acknowledged sequence {} (duplicate: {}), expected {}",
                ack.sequence,
                ack.duplicate,
                last + 1
            )),
            Ok(Ok(ack)) => Ok(ack.sequence),
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
    /// The stream's last sequence, as this leader left it.
    last_sequence: u64,
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
        }
    }

    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Publishes `events` (consecutive, as the log stores or will store
    /// them) and waits for the stream to acknowledge all of them; returns
    /// the stream sequence of the last. Blocking: call it from a thread
    /// outside the runtime (the writer) or from `spawn_blocking`.
    /// `idempotency` are the records the same append writes: each travels on
    /// the last event of its command, so a standby records it with the
    /// command's last event, never before it.
    pub fn publish(
        &mut self,
        events: &[StoredEvent],
        idempotency: &[(String, IdempotencyRecord)],
    ) -> Result<u64, String> {
        if events.is_empty() {
            return Ok(self.last_sequence);
        }
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
        let ids: Vec<String> = batch
            .iter()
            .map(|e| e.recorded.envelope.id.to_string())
            .collect();
        let trusted = latch_bus::TrustedKeys::new(
            self.keyring.public_keys().into_iter().map(|(_, key)| key),
        );
        let js = self.js.clone();
        let mut expected = self.last_sequence;
        let last = self.runtime.block_on(async move {
            // Messages of the batch the stream holds so far.
            let mut done = 0;
            for round in 0.. {
                match publish_from(&js, &messages[done..], expected).await {
                    Ok(last) => return Ok(last),
                    Err(problem) if round < MAX_ROUNDS => {
                        // Whoever else published in between decides what
                        // happens: a foreign message only moves the
                        // sequence; an event of this cluster means another
                        // leader.
                        let (held, after) = examine(&js, &trusted, expected, &ids[done..]).await?;
                        if held == 0 && after == expected {
                            return Err(problem);
                        }
                        tracing::warn!(%problem, held, skipped_to = after, "ha: the stream moved under the leader (a message no latchd signed); publishing the rest after it");
                        done += held;
                        expected = after;
                        if done == messages.len() {
                            return Ok(after);
                        }
                    }
                    Err(problem) => return Err(problem),
                }
            }
            unreachable!("the loop returns")
        })?;
        self.last_sequence = last;
        Ok(last)
    }
}
