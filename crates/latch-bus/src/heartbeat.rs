//! The heartbeat latchd publishes on `latch.heartbeat` every second, so a
//! verifier can tell "nothing happened" from "I am cut off".

use chrono::{DateTime, Utc};
use latch_core::Position;
use serde::{Deserialize, Serialize};

/// How often latchd sends one.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The newest position in latchd's log.
    pub position: Position,
    pub time: DateTime<Utc>,
}

impl Heartbeat {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("heartbeats serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
