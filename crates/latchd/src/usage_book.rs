//! `UsageBook`: when and from where each token was last used: by latchd's
//! own authentications and by verifiers' usage reports. Uses are gathered in
//! memory and written to the store's `usage` column family every few
//! seconds (`flush`), not per request. Usage informs operators (stale
//! tokens, leak investigations); it never decides access.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use latch_audit::{ReporterName, TokenUsage};
use latch_core::TokenId;
use latch_store::{EventStore, StoreError};

pub struct UsageBook {
    store: Arc<EventStore>,
    pending: Mutex<HashMap<TokenId, TokenUsage>>,
}

impl UsageBook {
    pub fn new(store: Arc<EventStore>) -> Self {
        Self {
            store,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Records `count` uses of a token, the last at `last_at` from `from`,
    /// as the verifier `reporter` reported them (`None`: latchd saw them).
    pub fn record(
        &self,
        token_id: TokenId,
        first_at: DateTime<Utc>,
        last_at: DateTime<Utc>,
        from: Option<IpAddr>,
        count: u64,
        reporter: Option<&str>,
    ) {
        self.add(
            token_id,
            TokenUsage {
                first_used_at: first_at,
                last_used_at: last_at,
                last_used_from: from,
                count,
                last_reported_by: reporter.map(ReporterName::new),
            },
        );
    }

    fn add(&self, token_id: TokenId, used: TokenUsage) {
        let mut pending = self.pending.lock().expect("usage lock");
        pending
            .entry(token_id)
            .and_modify(|known| *known = known.merge(used))
            .or_insert(used);
    }

    /// What is known of a token's use, stored and pending.
    pub fn get(&self, token_id: TokenId) -> Option<TokenUsage> {
        let stored = self.stored(token_id).unwrap_or_else(|error| {
            tracing::warn!(%error, %token_id, "usage: could not read a usage record");
            None
        });
        let pending = self
            .pending
            .lock()
            .expect("usage lock")
            .get(&token_id)
            .copied();
        match (stored, pending) {
            (Some(stored), Some(pending)) => Some(stored.merge(pending)),
            (stored, pending) => stored.or(pending),
        }
    }

    fn stored(&self, token_id: TokenId) -> Result<Option<TokenUsage>, StoreError> {
        TokenUsage::stored(&self.store, token_id)
    }

    /// Writes pending uses to the store. On failure they stay pending.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("usage lock"));
        let count = pending.len();
        let mut failed = None;
        for (token_id, used) in pending {
            let result = self.stored(token_id).and_then(|stored| {
                stored
                    .map_or(used, |stored| stored.merge(used))
                    .store(&self.store, token_id)
            });
            if let Err(error) = result {
                self.add(token_id, used);
                failed = Some(error);
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }
}

impl UsageBook {
    /// Flushes every `every` until `shutdown`, then once more.
    pub async fn run_flusher(
        self: Arc<Self>,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    let _ = self.flush();
                    return;
                }
            }
            if let Err(error) = self.flush() {
                tracing::warn!(%error, "usage: could not write usage records; keeping them for the next flush");
            }
        }
    }
}
