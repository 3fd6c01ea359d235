//! `ActivityRecord`: one API request latchd served (allowed or denied), or
//! one verifier's report of a token's accepted uses. Kept in the store's
//! `activity` column family under a UUIDv7 key, so a scan reads them in the
//! order they happened.

use chrono::{DateTime, Utc};
use latch_core::{AccountId, TokenId};
use latch_store::{EventStore, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::activity_indexer::{ActivityOf, ActivityRecordIndexer};

/// One API request, or one verifier's report of a token's accepted uses
/// (`method` `VERIFY`, `route` `verifier`, `path` the verifier's name,
/// `verifier_uses` the count, `at` the last use), as `GET /v1/audit`
/// returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivityRecord {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    /// The route template, e.g. `/v1/tokens/{id}/revoke`.
    pub route: String,
    pub path: String,
    pub remote_addr: String,
    #[schema(value_type = Option<String>)]
    pub account_id: Option<AccountId>,
    #[schema(value_type = Option<String>)]
    pub token_id: Option<TokenId>,
    /// `None` while the request is being processed (or if latchd died during it).
    pub status: Option<u16>,
    pub duration_us: Option<u64>,
    /// For a verifier's report: how many accepted uses it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_uses: Option<u64>,
}

impl ActivityRecord {
    /// The audit record of a verifier's report of one token's uses.
    pub fn verifier_use(verifier: &str, account_id: AccountId, used: &latch_bus::TokenUse) -> Self {
        ActivityRecord {
            id: uuid::Uuid::now_v7(),
            at: used.last_at,
            request_id: String::new(),
            method: "VERIFY".into(),
            route: "verifier".into(),
            path: verifier.to_owned(),
            remote_addr: used.last_from.map(|a| a.to_string()).unwrap_or_default(),
            account_id: Some(account_id),
            token_id: Some(used.token_id),
            status: Some(200),
            duration_us: None,
            verifier_uses: Some(used.count),
        }
    }

    /// Writes the record to the store's activity column family.
    pub fn store(&self, store: &EventStore) -> Result<(), StoreError> {
        store.put_activity(
            *self.id.as_bytes(),
            &serde_json::to_vec(self).expect("activity records serialise"),
        )
    }

    /// Records after the one with id `after` (or from the first), oldest
    /// first, for as long as `keep` says to continue. Records that do not
    /// decode are skipped.
    pub fn scan(
        store: &EventStore,
        after: Option<uuid::Uuid>,
        mut keep: impl FnMut(ActivityRecord) -> bool,
    ) -> Result<(), StoreError> {
        store.scan_activity(
            after.map(|id| *id.as_bytes()),
            |_, bytes| match serde_json::from_slice::<ActivityRecord>(bytes) {
                Ok(record) => keep(record),
                Err(_) => true,
            },
        )
    }

    /// The records about `of` after the one with id `after` (or from the
    /// first), oldest first, for as long as `keep` says: from the activity
    /// index while it is whole (a few reads for a token among millions of
    /// records), otherwise from a scan of every record. The same records
    /// either way.
    pub fn scan_of(
        store: &EventStore,
        of: ActivityOf,
        after: Option<uuid::Uuid>,
        mut keep: impl FnMut(ActivityRecord) -> bool,
    ) -> Result<(), StoreError> {
        let mut about = |record: ActivityRecord| match of.matches(record.account_id, record.token_id) {
            true => keep(record),
            false => true,
        };
        if !store.activity_index_is_complete(ActivityRecordIndexer::VERSION)? {
            return Self::scan(store, after, about);
        }
        store.scan_activity_by(&of.key(), after.map(|id| *id.as_bytes()), |_, bytes| {
            match serde_json::from_slice::<ActivityRecord>(bytes) {
                Ok(record) => about(record),
                Err(_) => true,
            }
        })
    }
}
