//! What a verifier has done since it connected: counters the follower bumps
//! (`Counters`, crate-internal atomics) and the plain snapshot of them a
//! service reads for its metrics (`VerifierStats`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a verifier's counters (`Verifier::stats`), each counted
/// since it connected: plain numbers, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierStats {
    /// Events folded into the verifier's view.
    pub events_applied: u64,
    /// Events it already had (delivered again, or by both the live tail and
    /// the stream), skipped.
    pub duplicates_skipped: u64,
    /// Times it lost the event stream and read it again.
    pub reconnects: u64,
    /// Messages in the stream that are not Latch events, skipped (only
    /// latchd should be able to publish to `latch.events.>`).
    pub foreign_skipped: u64,
    /// Events, heartbeats and snapshots refused because they were not
    /// signed by a trusted key, belong to another log, or do not continue
    /// the verifier's chain (forgeries, alterations, replays).
    pub rejected: u64,
    /// Times the verifier read the stream with a consumer to catch up (at
    /// start, then only after a hole in the live tail).
    pub stream_catch_ups: u64,
    /// Times it asked JetStream for the stream's last Latch event because
    /// latchd's heartbeats were missing (`VerifierConfig::stream_probe`):
    /// each is one stream-info request and one or more message reads.
    pub stream_probes: u64,
    /// Probes that got no answer (no stream, NATS unreachable, no reply in
    /// `max_staleness`, no Latch event near the stream's end): they vouch
    /// for nothing, so the verifier goes stale as without the probe.
    pub stream_probe_failures: u64,
    /// Probes whose answer was refused: the stream's last Latch event is
    /// below what the view had already applied (a truncated stream, or an
    /// older event replayed at its end), below a position latchd announced,
    /// or a different event at the view's own position.
    pub stream_probe_refusals: u64,
    /// Times it learnt (from a signed event, heartbeat or probe, confirmed
    /// by the stream) that an event it applied never reached the stream (an
    /// HA leader cut off mid-publish) and rebuilt its view from the stream.
    pub rebuilds: u64,
}

/// The live counters behind `VerifierStats`, one per field.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) events_applied: AtomicU64,
    pub(crate) duplicates_skipped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) foreign_skipped: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) stream_catch_ups: AtomicU64,
    pub(crate) stream_probes: AtomicU64,
    pub(crate) stream_probe_failures: AtomicU64,
    pub(crate) stream_probe_refusals: AtomicU64,
    pub(crate) rebuilds: AtomicU64,
}

impl Counters {
    /// Counts one more (relaxed: counters order nothing).
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> VerifierStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        VerifierStats {
            events_applied: read(&self.events_applied),
            duplicates_skipped: read(&self.duplicates_skipped),
            reconnects: read(&self.reconnects),
            foreign_skipped: read(&self.foreign_skipped),
            rejected: read(&self.rejected),
            stream_catch_ups: read(&self.stream_catch_ups),
            stream_probes: read(&self.stream_probes),
            stream_probe_failures: read(&self.stream_probe_failures),
            stream_probe_refusals: read(&self.stream_probe_refusals),
            rebuilds: read(&self.rebuilds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_holds_each_counter_as_it_was() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot(), VerifierStats::default());
        Counters::bump(&counters.events_applied);
        Counters::bump(&counters.events_applied);
        Counters::bump(&counters.rejected);
        let before = counters.snapshot();
        Counters::bump(&counters.events_applied);
        assert_eq!(
            (before.events_applied, before.rejected, before.reconnects),
            (2, 1, 0)
        );
        assert_eq!(
            counters.snapshot().events_applied,
            3,
            "a snapshot is a copy"
        );
    }
}
