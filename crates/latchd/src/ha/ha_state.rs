//! `HaState`: what a node knows of its cluster, for `/readyz`, `/metrics`,
//! write redirects and the controller.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Following the stream; not (yet) connected or no leader known.
    Standby,
    /// Holds the lease and has caught up: decides commands.
    Leader,
}

/// The node holding the lease, as its (signed) lease entry names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderInfo {
    pub node_id: String,
    pub url: String,
}

#[derive(Debug)]
pub struct HaState {
    pub node_id: String,
    pub advertise_url: String,
    view: RwLock<View>,
    /// The stream's last sequence as last seen, and the one this node's
    /// log holds: their difference is the replication lag.
    pub stream_last_sequence: AtomicU64,
    pub applied_sequence: AtomicU64,
    /// Times this node became leader, and stepped down.
    pub elections_won: AtomicU64,
    pub step_downs: AtomicU64,
    /// Events received from the stream and appended by this node.
    pub events_replicated: AtomicU64,
    /// Messages in the stream that are no events of this log (skipped).
    pub foreign_messages: AtomicU64,
    /// Local tails set aside because the stream holds something else.
    pub tails_set_aside: AtomicU64,
}

#[derive(Debug, Clone)]
struct View {
    role: Role,
    leader: Option<LeaderInfo>,
    since: Instant,
    lease_revision: Option<u64>,
}

impl HaState {
    pub fn new(node_id: String, advertise_url: String) -> Self {
        Self {
            node_id,
            advertise_url,
            view: RwLock::new(View {
                role: Role::Standby,
                leader: None,
                since: Instant::now(),
                lease_revision: None,
            }),
            stream_last_sequence: AtomicU64::new(0),
            applied_sequence: AtomicU64::new(0),
            elections_won: AtomicU64::new(0),
            step_downs: AtomicU64::new(0),
            events_replicated: AtomicU64::new(0),
            foreign_messages: AtomicU64::new(0),
            tails_set_aside: AtomicU64::new(0),
        }
    }

    pub fn role(&self) -> Role {
        self.view.read().expect("ha lock").role
    }

    pub fn leader(&self) -> Option<LeaderInfo> {
        self.view.read().expect("ha lock").leader.clone()
    }

    pub fn lease_revision(&self) -> Option<u64> {
        self.view.read().expect("ha lock").lease_revision
    }

    /// Seconds in the current role.
    pub fn role_seconds(&self) -> f64 {
        self.view.read().expect("ha lock").since.elapsed().as_secs_f64()
    }

    pub(crate) fn set_leading(&self, revision: u64) {
        let mut view = self.view.write().expect("ha lock");
        if view.role != Role::Leader {
            view.since = Instant::now();
            self.elections_won.fetch_add(1, Ordering::Relaxed);
        }
        view.role = Role::Leader;
        view.lease_revision = Some(revision);
        view.leader = Some(LeaderInfo {
            node_id: self.node_id.clone(),
            url: self.advertise_url.clone(),
        });
    }

    pub(crate) fn set_following(&self, leader: Option<LeaderInfo>) {
        let mut view = self.view.write().expect("ha lock");
        if view.role != Role::Standby {
            view.since = Instant::now();
            self.step_downs.fetch_add(1, Ordering::Relaxed);
        }
        view.role = Role::Standby;
        view.lease_revision = None;
        view.leader = leader;
    }

    /// Stream messages not yet in this node's log.
    pub fn lag(&self) -> u64 {
        self.stream_last_sequence
            .load(Ordering::Relaxed)
            .saturating_sub(self.applied_sequence.load(Ordering::Relaxed))
    }
}
