//! `Follower`: a standby's (and a new leader's catch-up) reading of the
//! replicated stream into this node's log.
//!
//! An ordered consumer reads `LATCH_EVENTS` from the message after the last
//! one this log holds. Each message must be an event of this cluster's log
//! signed by its key (`latch_bus::FeedChain`: signature, position, chain),
//! and is appended exactly as the leader stored it (`latchrecord`), in
//! batches that share one synced write. Anything else in the stream is
//! skipped and counted. An event at a position this log already holds must
//! be the same event; if it is not, this log has a tail the stream never
//! acknowledged, which is set aside (see `set_aside`) before following on.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;
use latch_bus::{FeedChain, TrustedKeys, headers};
use latch_core::{LogId, Position};
use latch_store::{EventStore, IdempotencyRecord, ReplicatedEvent};
use tokio::sync::watch;

use super::ha_state::HaState;
use super::set_aside::save_tail;
use super::{HaError, nats};
use crate::command_handler::{CommandHandle, ReplicatedBatch};
use crate::event_codec;

/// Most events appended in one synced write.
const BATCH: usize = 256;
/// How long the consumer may deliver nothing before the stream is asked
/// whether it holds more (a stalled consumer is then replaced).
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct Follower {
    pub store: Arc<EventStore>,
    pub commands: CommandHandle,
    pub trusted: TrustedKeys,
    pub state: Arc<HaState>,
    pub set_aside_dir: PathBuf,
}

impl Follower {
    /// Follows the stream into this log until `stop` turns true or, with
    /// `until`, until the message at that sequence (or the stream's end
    /// when it is lower) is applied.
    pub async fn follow(
        &self,
        stream: &mut Stream,
        until: Option<u64>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), HaError> {
        let info = stream.info().await.map_err(nats)?.state.clone();
        self.state
            .stream_last_sequence
            .store(info.last_sequence, Ordering::Relaxed);
        let held = self.store.stream_sequence()?.unwrap_or(0);
        // A stream that lost its tail (or was recreated) is read from its
        // start; what this log holds is recognised and skipped.
        let start = if held > info.last_sequence {
            info.first_sequence.max(1)
        } else {
            (held + 1).max(info.first_sequence)
        };
        self.state.applied_sequence.store(held.min(info.last_sequence), Ordering::Relaxed);
        if until.is_some_and(|until| start > until) || (until.is_some() && info.messages == 0) {
            return Ok(());
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let mut messages = consumer.messages().await.map_err(nats)?;
        let mut chain = self.chain()?;
        let mut pending_batch: Vec<(ReplicatedEvent, latch_core::RecordedEvent)> = Vec::new();
        let mut next = self.store.head().position.next();
        let mut last_read = start.saturating_sub(1);
        // One Ed25519 verification a batch, not one an event.
        let mut signatures = latch_bus::SignatureCache::default();
        loop {
            let message = tokio::select! {
                message = tokio::time::timeout(STALL_CHECK, messages.next()) => match message {
                    Ok(message) => message,
                    // Nothing for a while. An ordered consumer can stall
                    // for good after a server of the cluster dies (seen in
                    // tests/ha.rs; nats-server#3292): if the stream holds
                    // more than was read, end the session, and the
                    // controller starts a new consumer where this log ends.
                    Err(_) => {
                        let last = stream.get_info().await.map_err(nats)?.state.last_sequence;
                        if last > last_read {
                            self.flush(&mut pending_batch, last_read).await?;
                            return Err(HaError::Nats(format!(
                                "the stream consumer stalled: read through {last_read}, the stream holds {last}"
                            )));
                        }
                        continue;
                    }
                },
                _ = stop.changed() => {
                    self.flush(&mut pending_batch, last_read).await?;
                    return Ok(());
                }
            };
            let Some(message) = message else {
                return Err(HaError::Nats("the stream consumer ended".into()));
            };
            let message = message.map_err(nats)?;
            let info = message.info().map_err(nats)?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            last_read = sequence;
            self.state
                .stream_last_sequence
                .store(sequence + pending, Ordering::Relaxed);
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str())
            };
            match latch_bus::signed_headers_cached(&self.trusted, header, &mut signatures) {
                None => {
                    self.state.foreign_messages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sequence, subject = %message.subject, "ha: skipping a stream message that is no event of this cluster (only latchd should publish to latch.events.>; check NATS permissions)");
                }
                Some((log, position, event)) => {
                    if self.store.log_id() != Some(log) {
                        self.adopt(log)?;
                        chain = self.chain()?;
                    }
                    if position < next {
                        self.flush(&mut pending_batch, sequence - 1).await?;
                        let set_aside = self.check_held(position, event, sequence).await?;
                        next = self.store.head().position.next();
                        chain = self.chain()?;
                        if !set_aside {
                            // Held already (the same event): nothing to do.
                            next = next.max(position.next());
                        }
                    }
                    if position > next {
                        self.flush(&mut pending_batch, sequence - 1).await?;
                        return Err(HaError::Diverged {
                            sequence,
                            problem: format!("the stream has event {position} next; this log needs {next}"),
                        });
                    } else if position == next {
                        let recorded = chain.accept(header, &message.payload).map_err(|rejection| {
                            HaError::Diverged {
                                sequence,
                                problem: format!("event {position} was refused: {rejection}"),
                            }
                        })?;
                        let record = latch_bus::signed_record(&message.payload).ok_or_else(|| {
                            HaError::Diverged {
                                sequence,
                                problem: format!("event {position} carries no record"),
                            }
                        })?;
                        let idempotency = header(headers::LATCH_IDEMPOTENCY).and_then(parse_idempotency);
                        pending_batch.push((ReplicatedEvent { record, idempotency }, recorded));
                        next = next.next();
                    }
                }
            }
            let reached = until.is_some_and(|until| sequence >= until);
            if pending == 0 || pending_batch.len() >= BATCH || reached {
                self.flush(&mut pending_batch, sequence).await?;
            }
            if reached || (until.is_some() && pending == 0) {
                return Ok(());
            }
        }
    }

    /// A chain that continues this log's head.
    fn chain(&self) -> Result<FeedChain, HaError> {
        let head = self.store.head();
        Ok(match self.store.log_id() {
            Some(log) => FeedChain::from_snapshot(
                self.trusted.clone(),
                log,
                head.position,
                *head.hash.as_bytes(),
            ),
            None => FeedChain::from_start(self.trusted.clone()),
        })
    }

    /// An empty log takes the cluster's log id; a log with events of its
    /// own never does.
    fn adopt(&self, log: LogId) -> Result<(), HaError> {
        if self.store.head().position != Position::ZERO {
            return Err(HaError::ForeignLog {
                found: log,
                ours: self.store.log_id().unwrap_or(log),
            });
        }
        tracing::info!(%log, "ha: this empty log joins the cluster's log");
        self.store.adopt_log_id(log)?;
        Ok(())
    }

    /// The stream offers an event at a position this log holds: it must be
    /// the same one; otherwise the tail from there is set aside (`true`).
    async fn check_held(
        &self,
        position: Position,
        event: latch_core::EventId,
        sequence: u64,
    ) -> Result<bool, HaError> {
        let Some(stored) = self.store.event(position)? else {
            return Ok(false);
        };
        let held = event_codec::to_recorded(&stored)?;
        if held.envelope.id == event {
            return Ok(false);
        }
        let keep = Position::new(position.get() - 1);
        let (path, count) = save_tail(&self.store, keep, &self.set_aside_dir)?;
        tracing::error!(
            %position,
            events = count,
            file = %path.display(),
            "ha: this log holds events the replicated stream does not (it has another event at {position}); they were never acknowledged by the cluster. SET ASIDE to the file named here for investigation; following the stream"
        );
        self.commands
            .truncate_after(keep, Some(sequence - 1))
            .await?;
        self.state.tails_set_aside.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    async fn flush(
        &self,
        batch: &mut Vec<(ReplicatedEvent, latch_core::RecordedEvent)>,
        sequence: u64,
    ) -> Result<(), HaError> {
        if batch.is_empty() {
            // Messages skipped (no event of this cluster's) are read too:
            // else a tail of forged messages would leave this node looking
            // behind for ever, in `/readyz` and to `defers_to_fresher_nodes`.
            self.state.applied_sequence.fetch_max(sequence, Ordering::Relaxed);
            return Ok(());
        }
        let events = std::mem::take(batch);
        let count = events.len() as u64;
        self.commands
            .replicate(ReplicatedBatch {
                events,
                stream_sequence: sequence,
            })
            .await?;
        self.state.applied_sequence.store(sequence, Ordering::Relaxed);
        self.state
            .events_replicated
            .fetch_add(count, Ordering::Relaxed);
        Ok(())
    }
}

/// `<index key> <first> <count> <fingerprint>` (see
/// `latch_bus::headers::LATCH_IDEMPOTENCY`).
fn parse_idempotency(value: &str) -> Option<(String, IdempotencyRecord)> {
    let mut parts = value.split(' ');
    let (key, first, count, fingerprint) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !key.starts_with("sha256:") {
        return None;
    }
    Some((
        key.to_owned(),
        IdempotencyRecord {
            first: Position::new(first.parse().ok()?),
            count: count.parse().ok()?,
            fingerprint: fingerprint.to_owned(),
        },
    ))
}
