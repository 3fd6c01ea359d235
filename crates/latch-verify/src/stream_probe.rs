//! The stream probe: while latchd's heartbeats are missing, the verifier
//! asks JetStream itself for the last Latch event in `LATCH_EVENTS` and
//! stays current while its view has reached it.
//!
//! Only for a replicated feed: an HA cluster's leader publishes each
//! command's events before it answers, and says so in its signed
//! heartbeats (`Heartbeat::replicated`); the probe runs once the verifier
//! accepted such a heartbeat. A single latchd publishes after it answers,
//! so its stream may lack a revocation it acknowledged just before it
//! died: for it, missing heartbeats still mean stale.
//!
//! A heartbeat is latchd saying "the stream holds everything up to here".
//! With latchd down there is no one to say it, but the stream (replicated
//! on a NATS cluster, and for a replicated feed holding every acknowledged
//! event) still knows: once no heartbeat has arrived for
//! `ProbeCadence::after`, the verifier asks it about every
//! `ProbeCadence::every`. A probe notes the time before it asks, reads the
//! stream's state from its leader, and walks back from its last message
//! (at most `TAIL_WALK` messages) to the last genuine Latch event, judged
//! as the catch-up judges stream messages (`Trust`): with trusted keys,
//! only an event latchd signed for the log the verifier follows. Then
//! (`Inner::take_stream_tail`):
//!
//! - a tail the view has reached makes the verifier fresh as of when the
//!   probe was sent (never when the answer arrived);
//! - a tail ahead of the view is announced, as a heartbeat's position is:
//!   the follower reads the stream, and reaching the tail makes the
//!   verifier fresh as of when the probe was sent;
//! - a tail below what the view had applied (a truncated stream, or an
//!   older event replayed at its end), below a position announced and not
//!   reached yet, or another event at the view's own position is refused,
//!   counted (`VerifierStats::stream_probe_refusals`) and logged;
//! - a stream holding no Latch event (empty, or nothing but foreign
//!   messages back to its first) vouches for position 0 only.
//!
//! Any error (no stream, NATS unreachable, no answer within
//! `max_staleness`) changes nothing: the verifier goes stale as it would
//! without the probe. Unsigned or forged messages at the stream's end are
//! walked past, so they vouch for nothing; at worst, more than `TAIL_WALK`
//! of them hide the stream's last event, and the verifier goes stale.
//!
//! What a probe cannot tell: whoever may publish on `latch.events.>` can
//! put a copy of an older genuine event at the stream's end (once
//! JetStream's duplicate window has passed). It is refused by a view past
//! it and once a newer position was announced; but a verifier whose view
//! is at exactly that position, having lost newer events on the live tail
//! that no heartbeat or probe announced to it, would take it for the end.
//! NATS permissions that let only latchd publish on `latch.events.>`
//! (`deploy/nats.conf`) close that.

use std::sync::Weak;
use std::time::Duration;

use async_nats::jetstream::{self, stream::RawMessageErrorKind};
use latch_bus::{STREAM_NAME, heartbeat};
use latch_core::Position;

use crate::stats::Counters;
use crate::verifier::{Inner, Trust};

/// How many of the stream's last messages a probe reads, at most, looking
/// for the last Latch event.
const TAIL_WALK: u64 = 16;

/// The least time between probes, however small `max_staleness` is.
const MIN_EVERY: Duration = Duration::from_millis(50);

/// When a verifier probes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeCadence {
    /// Probing starts once no heartbeat has arrived for this long.
    pub(crate) after: Duration,
    /// How often it probes then.
    pub(crate) every: Duration,
    /// How long a probe may wait for its answers (an answer later than
    /// `max_staleness` could vouch for nothing).
    pub(crate) timeout: Duration,
}

impl ProbeCadence {
    /// Once 1.5 heartbeat intervals passed without one, about once per
    /// heartbeat interval; both within a third of `max_staleness`, so that
    /// a verifier the stream vouches for never goes stale in between.
    pub(crate) fn for_staleness(max_staleness: Duration) -> Self {
        let third = (max_staleness / 3).max(MIN_EVERY);
        Self {
            after: (heartbeat::INTERVAL * 3 / 2).min(third),
            every: heartbeat::INTERVAL.min(third),
            timeout: max_staleness.max(MIN_EVERY),
        }
    }
}

/// What a probe noted before it asked (`Inner::probe_start`).
pub(crate) struct ProbeStart {
    /// When it was sent (milliseconds since the verifier started).
    pub(crate) at_ms: u64,
    /// The view's position then.
    pub(crate) have: Position,
    /// What it believes of stream messages.
    pub(crate) trust: Trust,
}

/// The last Latch event in the stream, as a probe found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamTail {
    /// The stream holds no Latch event: it vouches for position 0.
    Empty,
    /// Its last Latch event is at `position`; `hash` is its `Latch-Hash`
    /// when signed by a trusted key (its signature covers it).
    Event {
        position: Position,
        hash: Option<String>,
    },
}

impl StreamTail {
    /// The position it vouches for.
    pub(crate) fn position(&self) -> Position {
        match self {
            Self::Empty => Position::ZERO,
            Self::Event { position, .. } => *position,
        }
    }
}

/// What the verifier made of a probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailVerdict {
    /// The view has reached the stream's last event: fresh as of the probe.
    Reached,
    /// The stream holds events the view has not reached: announced, for
    /// the follower to read.
    Ahead,
    /// The stream's last event is below what the view had applied.
    Behind { have: Position },
    /// The stream's last event is below a position announced earlier that
    /// the view has not reached.
    BelowAnnounced { announced: Position },
    /// The stream's event at the view's position is not the one the view
    /// applied (another chain hash).
    OtherEvent,
}

/// Why a probe got no answer: it vouches for nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("getting the stream: {0}")]
    GetStream(#[from] jetstream::context::GetStreamError),
    #[error("reading a stream message: {0}")]
    RawMessage(#[from] jetstream::stream::RawMessageError),
    #[error("no Latch event in the stream's last {0} messages")]
    NoEventNearTheEnd(u64),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Probes the stream whenever heartbeats are missing, once a heartbeat the
/// verifier accepted said the feed is replicated (`Inner::feed_is_replicated`),
/// until the verifier is dropped.
pub(crate) async fn probe_stream(
    inner: Weak<Inner>,
    client: async_nats::Client,
    cadence: ProbeCadence,
) {
    let js = jetstream::new(client);
    let mut tick = tokio::time::interval(cadence.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each run of failures or refusals is logged as a warning once.
    let (mut failing, mut refusing) = (false, false);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if !inner.feed_is_replicated() || inner.heard_heartbeat_within(cadence.after) {
            continue;
        }
        // Noted before asking: the answer vouches as of now at best.
        let asked = inner.probe_start();
        Counters::bump(&inner.counters.stream_probes);
        let answer = tokio::time::timeout(cadence.timeout, stream_tail(&js, &asked.trust))
            .await
            .unwrap_or(Err(ProbeError::TimedOut(cadence.timeout)));
        let tail = match answer {
            Ok(tail) => tail,
            Err(error) => {
                Counters::bump(&inner.counters.stream_probe_failures);
                if failing {
                    tracing::debug!(%error, "verifier: the stream probe failed again");
                } else {
                    tracing::warn!(%error, "verifier: no heartbeat, and the stream probe failed: stale after max_staleness unless either answers");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            tracing::info!("verifier: the stream probe answers again");
            failing = false;
        }
        let position = tail.position();
        match inner.take_stream_tail(&tail, &asked) {
            TailVerdict::Reached => {
                refusing = false;
                tracing::trace!(%position, "verifier: the stream's last event is reached");
            }
            TailVerdict::Ahead => {
                refusing = false;
                tracing::debug!(%position, have = %asked.have, "verifier: the stream holds events not reached yet; reading it");
            }
            refused => {
                Counters::bump(&inner.counters.stream_probe_refusals);
                if refusing {
                    tracing::debug!(%position, ?refused, "verifier: refused the stream's last event again");
                } else {
                    tracing::warn!(%position, ?refused, "verifier: refused the stream's last event as proof of being current (a truncated stream, or an older event published again at its end?): stale after max_staleness unless a heartbeat arrives");
                }
                refusing = true;
            }
        }
    }
}

/// The stream's last Latch event: the stream's state, then its messages
/// from the last back, past anything that is not a Latch event `trust`
/// believes. Both requests reach the stream's leader.
async fn stream_tail(js: &jetstream::Context, trust: &Trust) -> Result<StreamTail, ProbeError> {
    let stream = js.get_stream(STREAM_NAME).await?;
    let state = &stream.cached_info().state;
    if state.messages == 0 {
        return Ok(StreamTail::Empty);
    }
    let first = state.first_sequence.max(1);
    let lowest = first.max(state.last_sequence.saturating_sub(TAIL_WALK - 1));
    let mut sequence = state.last_sequence;
    while sequence >= lowest {
        match stream.get_raw_message(sequence).await {
            Ok(message) => {
                if let Some(position) = trust.position_of(&message) {
                    let hash = trust.is_checking().then(|| {
                        message
                            .headers
                            .get(latch_bus::headers::LATCH_HASH)
                            .map(|v| v.as_str().to_owned())
                    });
                    return Ok(StreamTail::Event {
                        position,
                        hash: hash.flatten(),
                    });
                }
                tracing::debug!(sequence, subject = %message.subject, "verifier: the stream probe walks past a message that is no Latch event");
            }
            // Deleted (or removed by the stream's limits since).
            Err(error) if matches!(error.kind(), RawMessageErrorKind::NoMessageFound) => {}
            Err(error) => return Err(error.into()),
        }
        sequence -= 1;
    }
    if lowest == first {
        Ok(StreamTail::Empty)
    } else {
        Err(ProbeError::NoEventNearTheEnd(TAIL_WALK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_start_and_repeat_well_within_max_staleness() {
        let default = ProbeCadence::for_staleness(Duration::from_secs(5));
        assert_eq!(default.after, Duration::from_millis(1500));
        assert_eq!(default.every, Duration::from_secs(1));
        assert_eq!(default.timeout, Duration::from_secs(5));
        let tight = ProbeCadence::for_staleness(Duration::from_millis(900));
        assert_eq!(tight.after, Duration::from_millis(300));
        assert_eq!(tight.every, Duration::from_millis(300));
        let tiny = ProbeCadence::for_staleness(Duration::ZERO);
        assert!(tiny.every >= MIN_EVERY && tiny.after >= MIN_EVERY);
    }
}
