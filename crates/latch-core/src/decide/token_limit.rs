//! The account's token limit (`max_tokens_per_account`), for every way a
//! token is made: issued, exchanged from a parent, exchanged for an OIDC
//! token. (A rotation replaces a token and counts its own way.)

use chrono::{DateTime, Utc};

use crate::account::Account;
use crate::domain_error::DomainError;
use crate::policy::Policy;
use crate::state::State;

/// Refuses a new token when `account` already holds `policy`'s limit of
/// live (unrevoked, unexpired) tokens; `layer` says where the limit is set.
pub(super) fn within_token_limit(
    state: &State,
    account: &Account,
    policy: &Policy,
    now: DateTime<Utc>,
    layer: impl FnOnce() -> String,
) -> Result<(), DomainError> {
    let Some(limit) = policy.max_tokens_per_account else {
        return Ok(());
    };
    let live = state
        .tokens_of(account.id)
        .filter(|t| t.revoked.is_none() && !t.is_expired_at(now))
        .count();
    if live >= limit as usize {
        return Err(DomainError::PolicyViolation {
            policy: "max_tokens_per_account",
            value: limit.to_string(),
            layer: layer(),
            detail: format!(
                "account {} already holds {live} live token(s); revoke one first",
                account.name
            ),
        });
    }
    Ok(())
}
