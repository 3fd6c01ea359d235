//! `RefusedUses`: the known tokens a verifier refused because they were
//! revoked or expired, counted per token between usage reports. latchd
//! tells a rotated-out or revoked token presented again as
//! `token.reuse_detected`, and under policy `on_reuse: revoke` ends its
//! successors.
//!
//! Bounded: at most `MAX_REFUSED_TOKENS` tokens per report period (a
//! caller replaying one stolen token a million times is one entry).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use latch_bus::TokenUse;
use latch_core::{AccountId, TokenId};

/// The most distinct refused tokens remembered between two reports.
pub const MAX_REFUSED_TOKENS: usize = 1024;

#[derive(Default)]
pub(crate) struct RefusedUses {
    by_token: Mutex<HashMap<TokenId, (AccountId, TokenUse)>>,
}

impl RefusedUses {
    pub(crate) fn record(
        &self,
        token_id: TokenId,
        account_id: AccountId,
        at: DateTime<Utc>,
        from: Option<IpAddr>,
    ) {
        let mut by_token = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, used)) = by_token.get_mut(&token_id) {
            used.count = used.count.saturating_add(1);
            used.last_at = at;
            used.last_from = from.or(used.last_from);
            return;
        }
        if by_token.len() >= MAX_REFUSED_TOKENS {
            return;
        }
        by_token.insert(
            token_id,
            (
                account_id,
                TokenUse {
                    token_id,
                    count: 1,
                    first_at: at,
                    last_at: at,
                    last_from: from,
                },
            ),
        );
    }

    /// Everything recorded since the last call, by account.
    pub(crate) fn take(&self) -> HashMap<AccountId, Vec<TokenUse>> {
        let taken = std::mem::take(&mut *self.by_token.lock().unwrap_or_else(|e| e.into_inner()));
        let mut by_account: HashMap<AccountId, Vec<TokenUse>> = HashMap::new();
        for (account_id, used) in taken.into_values() {
            by_account.entry(account_id).or_default().push(used);
        }
        by_account
    }
}
