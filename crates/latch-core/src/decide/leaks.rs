//! Leak reports: each reported token that is not revoked yet is revoked,
//! with every token rotated from it since and everything exchanged from
//! those, after a `token.leak_reported` that says who found it and where.
//!
//! Whoever holds a leaked secret may have rotated it (a token may rotate
//! itself) to mint a successor the leak report would otherwise miss, so the
//! successors it minted itself go too — each token rotated *by* the one
//! before it, from the reported one on. A successor someone else rotated
//! to (an administrator, a pipeline's other token) stays: a former holder
//! who publishes an old secret must not end the current one. Its
//! predecessors hold other secrets and stay.
//! Unknown and already revoked tokens append nothing: the caller is told
//! the same either way (no oracle), and a report sent twice appends once.

use std::collections::HashSet;

use crate::actor::Actor;
use crate::domain_error::DomainError;
use crate::event::Event;
use crate::leak_report::{LeakReport, MAX_LEAK_LOCATION, MAX_LEAK_SOURCE};
use crate::state::State;
use crate::token::Token;

use super::free_text::check_text;
use super::tokens::revoke_descendants;

/// The most tokens one report may name.
pub const MAX_LEAK_REPORTS: usize = 5_000;

pub(super) fn report_leaks(state: &State, reports: &[LeakReport]) -> Result<Vec<Event>, DomainError> {
    if reports.len() > MAX_LEAK_REPORTS {
        return Err(DomainError::TooMany {
            field: "reports",
            max: MAX_LEAK_REPORTS,
        });
    }
    for report in reports {
        check_text("source", &report.source, true)?;
        check_text("location", &report.location, false)?;
        if report.source.len() > MAX_LEAK_SOURCE {
            return Err(DomainError::TooLong {
                field: "source",
                max: MAX_LEAK_SOURCE,
            });
        }
        if report.location.len() > MAX_LEAK_LOCATION {
            return Err(DomainError::TooLong {
                field: "location",
                max: MAX_LEAK_LOCATION,
            });
        }
    }
    let mut events = Vec::new();
    let mut revoked: HashSet<crate::id::TokenId> = HashSet::new();
    for report in reports {
        let Some(token) = state.token_by_digest(&report.digest) else {
            continue;
        };
        if token.revoked.is_some() || revoked.contains(&token.id) {
            continue;
        }
        events.push(Event::TokenLeakReported {
            token_id: token.id,
            account_id: token.account_id,
            source: report.source.clone(),
            location: report.location.clone(),
        });
        let reason = if report.location.is_empty() {
            format!("leaked: reported by {}", report.source)
        } else {
            format!("leaked: reported by {} at {}", report.source, report.location)
        };
        let reason: String = reason.chars().take(super::free_text::MAX_TEXT).collect();
        for ended in self_rotated_from(state, token) {
            if ended.revoked.is_some() || !revoked.insert(ended.id) {
                continue;
            }
            events.push(Event::TokenRevoked {
                token_id: ended.id,
                account_id: ended.account_id,
                reason: reason.clone(),
            });
            for child in revoke_descendants(state, ended.id) {
                if let Some(id) = child.token_id()
                    && revoked.insert(id)
                {
                    events.push(child);
                }
            }
        }
    }
    Ok(events)
}

/// The token and the tokens it rotated itself to, and they theirs: the
/// chain stops at a rotation someone else made.
fn self_rotated_from<'s>(state: &'s State, token: &'s Token) -> Vec<&'s Token> {
    let mut chain = vec![token];
    let mut current = token;
    while let Some(later) = current.rotated_to.and_then(|id| state.token(id)) {
        let by_itself = matches!(later.issued_by, Actor::Token { token_id, .. } if token_id == current.id);
        if !by_itself {
            break;
        }
        chain.push(later);
        current = later;
    }
    chain
}

/// The token and every token rotated from it since, oldest first.
pub(super) fn successors_from<'s>(state: &'s State, token: &'s Token) -> Vec<&'s Token> {
    let mut chain = vec![token];
    let mut current = token;
    while let Some(later) = current.rotated_to.and_then(|id| state.token(id)) {
        chain.push(later);
        current = later;
    }
    chain
}
