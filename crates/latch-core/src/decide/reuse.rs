//! Reuse: a token presented after it was rotated out (past its grace) or
//! revoked. Whoever presented it holds a secret that should be gone: a
//! leaked copy, or a pipeline retrying with the token it had before a
//! rotation. `token.reuse_detected` tells (at most once per token per
//! `REUSE_ALERT_WINDOW`); under policy `on_reuse: revoke` the live tokens
//! rotated from it are revoked in the same append, as GitLab revokes a
//! token family and RFC 9700 advises for rotated refresh tokens.
//!
//! The default is `alert`: revoking on reuse turns a retry with a stale
//! token into an outage of the pipeline's new one (GitLab's incident).
//! A presentation less than `REUSE_SLACK` after the grace ends is not
//! reuse either: a verifier whose clock runs ahead refuses a token a
//! moment early.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::TokenId;
use crate::on_reuse::OnReuse;
use crate::state::State;

use super::free_text::check_text;
use super::leaks::successors_from;
use super::state_lookups::existing_token;
use super::tokens::revoke_descendants;

/// At most one `token.reuse_detected` per token within this window.
pub const REUSE_ALERT_WINDOW: TimeDelta = TimeDelta::hours(1);
/// A presentation this soon after a rotated token's grace ended is not
/// counted as reuse (clock skew between latchd and verifiers).
pub const REUSE_SLACK: TimeDelta = TimeDelta::seconds(5);

const EVENT: &str = "token.reuse_detected";

pub(super) fn note_token_reuse(
    state: &State,
    now: DateTime<Utc>,
    token_id: TokenId,
    seen_at: DateTime<Utc>,
    source_address: Option<IpAddr>,
    service: &str,
) -> Result<Vec<Event>, DomainError> {
    let token = existing_token(state, token_id)?;
    check_text("service", service, true)?;
    let seen_at = seen_at.min(now);
    if !token.presented_after_its_end(seen_at, REUSE_SLACK) {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "it was neither rotated out past its grace nor revoked when it was presented",
        });
    }
    if token
        .reuse_detected_at
        .is_some_and(|at| now - at < REUSE_ALERT_WINDOW)
    {
        return Ok(Vec::new());
    }
    let on_reuse = state
        .account(token.account_id)
        .map(|account| state.effective_policy(&account.role).on_reuse)
        .unwrap_or_default();
    let chain = successors_from(state, token);
    let successor_id = chain.last().filter(|t| t.id != token_id).map(|t| t.id);
    let mut events = vec![Event::TokenReuseDetected {
        token_id,
        account_id: token.account_id,
        seen_at,
        source_address,
        service: service.to_owned(),
        successor_id,
        on_reuse,
    }];
    if on_reuse == OnReuse::Revoke {
        let from = source_address.map_or_else(String::new, |addr| format!(" from {addr}"));
        let reason = format!("token {token_id} was presented after rotation or revocation (at {service}{from}): policy on_reuse is revoke");
        let reason: String = reason.chars().take(super::free_text::MAX_TEXT).collect();
        for successor in chain.into_iter().skip(1) {
            if successor.revoked.is_some() || successor.is_expired_at(now) {
                continue;
            }
            events.push(Event::TokenRevoked {
                token_id: successor.id,
                account_id: successor.account_id,
                reason: reason.clone(),
            });
            events.extend(revoke_descendants(state, successor.id));
        }
    }
    Ok(events)
}
