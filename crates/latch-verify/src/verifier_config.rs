//! How a verifier connects and how stale it may get.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub nats_url: String,
    /// With no heartbeat or event it can vouch for within this long, the
    /// verifier refuses every token until it is current again.
    pub max_staleness: Duration,
    /// How long `connect` waits to be current before giving up.
    pub connect_timeout: Duration,
}

impl VerifierConfig {
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self { nats_url: nats_url.into(), max_staleness: Duration::from_secs(5), connect_timeout: Duration::from_secs(30) }
    }
}
