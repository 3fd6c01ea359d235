//! The heartbeat latchd publishes on `latch.heartbeat` every second, so a
//! verifier can tell "nothing happened" from "I am cut off".

use chrono::{DateTime, Utc};
use latch_core::{LogId, Position};
use serde::{Deserialize, Serialize};

/// How often latchd sends one.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The newest position in latchd's log.
    pub position: Position,
    pub time: DateTime<Utc>,
    /// The log it vouches for, its chain hash at `position` (hex), and
    /// latchd's signature over both with the position and time (see
    /// `signed_feed::sign_heartbeat`). Absent only from an unsigned latchd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<LogId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The log acknowledges only what the replicated stream holds (an HA
    /// cluster: the leader publishes before it answers), so the stream's
    /// last event is a proof of currency while no latchd runs. Verifiers
    /// probe the stream only for a feed whose signed heartbeats said so: a
    /// single latchd publishes after it answers, and its stream may lack an
    /// acknowledged revocation when it dies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replicated: bool,
}

impl Heartbeat {
    /// An unsigned heartbeat.
    pub fn new(position: Position, time: DateTime<Utc>) -> Self {
        Self {
            position,
            time,
            log_id: None,
            hash: None,
            signature: None,
            replicated: false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("heartbeats serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
