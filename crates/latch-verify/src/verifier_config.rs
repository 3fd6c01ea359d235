//! How a verifier connects and how stale it may get.

use std::time::Duration;

#[cfg(feature = "snapshot")]
use crate::snapshot::SnapshotSource;

/// How a verifier connects and how stale it may get: `VerifierConfig::new`
/// with where NATS is, then the fields to change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// The NATS server or cluster, and how to authenticate to it.
    pub nats: latch_bus::NatsConnection,
    /// With no heartbeat or event it can vouch for within this long, the
    /// verifier refuses every token until it is current again.
    pub max_staleness: Duration,
    /// How long `connect` waits to be current before giving up.
    pub connect_timeout: Duration,
    /// Start from latchd's state snapshot instead of the whole stream
    /// (feature `snapshot`).
    #[cfg(feature = "snapshot")]
    pub snapshot: Option<SnapshotSource>,
    /// How often to report accepted uses to latchd on `latch.usage.<account>`
    /// (so `latch token show` has `last_used_at`); `None`: never.
    pub usage_report_every: Option<Duration>,
    /// Names this verifier in its usage reports (service and instance).
    pub name: String,
    /// latchd's public keys (`latchd key show`; `LATCH_PUBLIC_KEY`). With
    /// any, the verifier applies only events latchd signed that continue
    /// its chain, and believes only signed heartbeats and snapshots. With
    /// none, it trusts the broker's permissions alone (and says so).
    pub trusted_keys: latch_bus::TrustedKeys,
    /// How it follows new events (see `Follow`).
    pub follow: Follow,
    /// Whether, for an HA cluster's feed (its signed heartbeats say
    /// `replicated`: the leader publishes before it answers) and while
    /// latchd's heartbeats are missing, the verifier asks
    /// JetStream for the last Latch event in the stream `LATCH_EVENTS` and
    /// stays current while its view has reached it (with trusted keys, only
    /// an event latchd signed for the verifier's log counts). With latchd
    /// down, the replicated stream itself then vouches for the verifier,
    /// instead of every verifier going stale after `max_staleness`. It
    /// probes once no heartbeat has arrived for 1.5 heartbeat intervals
    /// (or a third of `max_staleness`, if less), then about once a second
    /// (`VerifierStats::stream_probes`): a stream-info request and a
    /// message read each, requests its catch-up already makes
    /// (`$JS.API.STREAM.INFO.LATCH_EVENTS`,
    /// `$JS.API.STREAM.MSG.GET.LATCH_EVENTS`). `false`: only heartbeats
    /// (and the events they announce) vouch, so a verifier goes stale
    /// `max_staleness` after latchd stops.
    pub stream_probe: bool,
}

/// How a verifier follows new events once it has caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Follow {
    /// A core NATS subscription on `latch.events.>` (the broker's cheapest
    /// fan-out), with the stream read only to catch up. Needs permission to
    /// subscribe to `latch.events.>`.
    #[default]
    LiveTail,
    /// A JetStream ordered consumer on `LATCH_EVENTS`, always.
    Stream,
}

impl VerifierConfig {
    /// The defaults (stale after 5 s, 30 s to get current, usage reported
    /// every 2 s, no trusted key, no snapshot, following the live tail,
    /// probing the stream while heartbeats are missing)
    /// for the NATS server or cluster `nats` (`NatsConnection::new(url)`,
    /// plus any credentials).
    pub fn new(nats: latch_bus::NatsConnection) -> Self {
        Self {
            nats,
            max_staleness: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            #[cfg(feature = "snapshot")]
            snapshot: None,
            usage_report_every: Some(Duration::from_secs(2)),
            name: format!("latch-verify/{}", std::process::id()),
            trusted_keys: latch_bus::TrustedKeys::default(),
            follow: Follow::default(),
            stream_probe: true,
        }
    }
}
