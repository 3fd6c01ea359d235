//! The JetStream stream latchd publishes to. Plain data: the relay maps it
//! onto its NATS client's configuration.

use std::time::Duration;

use crate::subject::EVENTS_WILDCARD;

pub const STREAM_NAME: &str = "LATCH_EVENTS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: &'static str,
    pub subjects: Vec<String>,
    /// File storage: the stream survives a broker restart.
    pub file_storage: bool,
    /// How long JetStream remembers `Nats-Msg-Id`s to drop duplicates.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: STREAM_NAME,
            subjects: vec![EVENTS_WILDCARD.to_owned()],
            file_storage: true,
            duplicate_window: Duration::from_secs(120),
        }
    }
}
