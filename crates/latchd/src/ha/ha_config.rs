//! `HaConfig`: how a node takes part in an HA cluster.

use std::time::Duration;

/// Settings of `latchd --ha`.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// This node's name in the lease and in `/readyz` (unique per cluster).
    pub node_id: String,
    /// The URL clients reach this node's HTTP API at; standbys redirect
    /// writes to the leader's.
    pub advertise_url: String,
    /// Replicas of `LATCH_EVENTS` and of the lease bucket (3 on a
    /// three-server cluster; 1 on a single nats-server).
    pub replicas: usize,
    /// How long the lease lasts without renewal: a killed leader is
    /// replaced about this long after its last renewal.
    pub lease: Duration,
}

impl HaConfig {
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);

    pub fn new(node_id: impl Into<String>, advertise_url: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            advertise_url: advertise_url.into(),
            replicas: 3,
            lease: Self::DEFAULT_LEASE,
        }
    }

    /// The leader renews its lease, and a standby looks for a lapsed
    /// one, this often.
    pub fn acquire_every(&self) -> Duration {
        self.lease / 6
    }

    /// A leader that could not renew for this long stops deciding commands
    /// before the lease can lapse and another node take it.
    pub fn give_up_after(&self) -> Duration {
        self.lease * 2 / 3
    }
}
