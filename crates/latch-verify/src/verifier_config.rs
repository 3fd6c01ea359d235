//! How a verifier connects and how stale it may get.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The NATS server or cluster, and how to authenticate to it.
    pub nats: latch_bus::NatsConnection,
    /// With no heartbeat or event it can vouch for within this long, the
    /// verifier refuses every token until it is current again.
    pub max_staleness: Duration,
    /// How long `connect` waits to be current before giving up.
    pub connect_timeout: Duration,
    /// Start from latchd's state snapshot instead of the whole stream.
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

/// Where a verifier fetches its starting state: latchd's `GET /v1/snapshot`,
/// with a token holding `events:read` (the `verifier` role).
#[derive(Clone)]
pub struct SnapshotSource {
    pub latchd_url: String,
    pub token: String,
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource")
            .field("latchd_url", &self.latchd_url)
            .finish_non_exhaustive()
    }
}

impl VerifierConfig {
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            nats: latch_bus::NatsConnection::new(nats_url),
            max_staleness: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            snapshot: None,
            usage_report_every: Some(Duration::from_secs(2)),
            name: format!("latch-verify/{}", std::process::id()),
            trusted_keys: latch_bus::TrustedKeys::default(),
            follow: Follow::default(),
        }
    }
}
