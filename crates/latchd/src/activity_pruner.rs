//! `ActivityPruner`: deletes API activity records older than the retention
//! (`--activity-retention`, 90 days by default), at start and then every
//! `every`. Records are keyed by time-ordered ids, so a pass reads from the
//! oldest up to the first record still within the retention and deletes
//! everything before it with one range delete; the log itself (the events)
//! is never touched.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use latch_store::{EventStore, StoreError};
use serde::Deserialize;
use tokio::sync::watch;

use crate::clock::Clock;

/// Records deleted with one range delete, at most.
const BATCH: usize = 100_000;

pub struct ActivityPruner {
    pub store: Arc<EventStore>,
    pub clock: Arc<dyn Clock>,
    /// How long a record is kept.
    pub retention: TimeDelta,
    /// How often to prune.
    pub every: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub records: u64,
}

/// The only field a pass needs of a record.
#[derive(Deserialize)]
struct RecordTime {
    at: DateTime<Utc>,
}

impl ActivityPruner {
    /// Prunes now and every `every` until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let pruner = Arc::new(self);
        loop {
            let pass = pruner.clone();
            match tokio::task::spawn_blocking(move || pass.prune()).await {
                Ok(Ok(pruned)) if pruned.records > 0 => tracing::info!(
                    records = pruned.records,
                    retention_days = pruner.retention.num_days(),
                    "activity: deleted records older than the retention"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "activity: could not prune old records; trying again later")
                }
                Err(error) => tracing::warn!(%error, "activity: the pruning pass failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(pruner.every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Deletes every record older than the retention (up to the first one
    /// that is not: records are written in time order).
    pub fn prune(&self) -> Result<Pruned, StoreError> {
        let cutoff = self.clock.now() - self.retention;
        let mut pruned = Pruned::default();
        loop {
            let mut old = 0usize;
            let mut end = None;
            let mut reached_kept = false;
            self.store.scan_activity(None, |id, bytes| {
                let expired = serde_json::from_slice::<RecordTime>(bytes)
                    .map(|record| record.at < cutoff)
                    .unwrap_or(true);
                if !expired {
                    reached_kept = true;
                    end = Some(id);
                    return false;
                }
                old += 1;
                // Just past this record.
                end = Some((u128::from_be_bytes(id).saturating_add(1)).to_be_bytes());
                old < BATCH
            })?;
            let Some(end) = end else { break };
            if old == 0 {
                break;
            }
            self.store.delete_activity_before(end)?;
            pruned.records += old as u64;
            if reached_kept || old < BATCH {
                break;
            }
        }
        Ok(pruned)
    }
}
