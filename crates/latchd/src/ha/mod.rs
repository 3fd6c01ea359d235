//! HA mode (`latchd --ha`): several latchd nodes share one NATS JetStream
//! cluster. One node, the **leader**, holds a lease in a JetStream
//! key-value bucket and decides every command; it publishes each batch's
//! events to the replicated stream `LATCH_EVENTS`, each publish fenced by
//! the stream sequence it expects to follow, and writes them to its own log
//! only once the stream acknowledged them. The others, **standbys**, follow
//! the stream, check its signatures and hash chain, append each event to
//! their own log exactly as the leader stored it, and serve reads. See
//! docs/adr/0021-ha-active-standby-on-jetstream.md.

mod controller;
mod follower;
mod ha_config;
mod ha_state;
mod leader_session;
mod lease;
mod set_aside;
mod stream_tail;

pub use controller::{HaController, LeaderDuties, RunningDuty, duty};
pub use ha_config::HaConfig;
pub use ha_state::{HaState, LeaderInfo, Role};
pub use leader_session::{LeaderSession, PendingBatch};

/// Why an HA session with NATS ended (the controller starts another).
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] latch_store::StoreError),
    #[error(transparent)]
    Handler(#[from] crate::command_outcome::HandlerFailure),
    #[error(
        "the stream LATCH_EVENTS holds another log ({found}); this node's log is {ours}. Refusing to follow or lead: point this node at its own cluster's NATS, or empty its data dir to join this one"
    )]
    ForeignLog {
        found: latch_core::LogId,
        ours: latch_core::LogId,
    },
    #[error("the stream does not continue this log at sequence {sequence}: {problem}")]
    Diverged { sequence: u64, problem: String },
    #[error("writing the set-aside tail: {0}")]
    SetAside(std::io::Error),
}

pub(crate) fn nats(error: impl std::fmt::Display) -> HaError {
    HaError::Nats(error.to_string())
}
