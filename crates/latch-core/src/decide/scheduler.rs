//! Decisions the scheduler asks for: note that a token is about to expire,
//! has expired, or is due for rotation. Each note is made once.

use chrono::{DateTime, Utc};

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::TokenId;
use crate::policy::Policy;
use crate::state::State;
use crate::token::Token;

use super::state_lookups::existing_token;

pub(super) fn note_token_expiring(
    state: &State,
    now: DateTime<Utc>,
    token_id: TokenId,
) -> Result<Vec<Event>, DomainError> {
    const EVENT: &str = "token.expiring";
    let token = noteable_token(state, token_id, EVENT)?;
    if token.expiring_noted {
        return Err(DomainError::AlreadyNoted {
            token: token_id,
            event: EVENT,
        });
    }
    let Some(due) = token.expiring_due(&token_policy(state, token)) else {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "never expires, was rotated, or lives shorter than the expiry warning",
        });
    };
    if now < due {
        return Err(DomainError::NotDue {
            token: token_id,
            event: EVENT,
            due,
        });
    }
    let Some(expires_at) = token.expires_at.filter(|at| now < *at) else {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "already expired",
        });
    };
    Ok(vec![Event::TokenExpiring {
        token_id,
        account_id: token.account_id,
        expires_at,
    }])
}

pub(super) fn note_token_expired(
    state: &State,
    now: DateTime<Utc>,
    token_id: TokenId,
) -> Result<Vec<Event>, DomainError> {
    const EVENT: &str = "token.expired";
    let token = noteable_token(state, token_id, EVENT)?;
    if token.expired_noted {
        return Err(DomainError::AlreadyNoted {
            token: token_id,
            event: EVENT,
        });
    }
    let Some(expires_at) = token.expires_at else {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "never expires",
        });
    };
    if now < expires_at {
        return Err(DomainError::NotDue {
            token: token_id,
            event: EVENT,
            due: expires_at,
        });
    }
    Ok(vec![Event::TokenExpired {
        token_id,
        account_id: token.account_id,
        expires_at,
    }])
}

pub(super) fn note_token_rotation_due(
    state: &State,
    now: DateTime<Utc>,
    token_id: TokenId,
) -> Result<Vec<Event>, DomainError> {
    const EVENT: &str = "token.rotation_due";
    let token = noteable_token(state, token_id, EVENT)?;
    if token.rotation_due_noted {
        return Err(DomainError::AlreadyNoted {
            token: token_id,
            event: EVENT,
        });
    }
    if token.rotated_to.is_some() {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "already rotated",
        });
    }
    if token.is_expired_at(now) {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "already expired",
        });
    }
    let Some(due) = token.rotation_due(&token_policy(state, token)) else {
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: EVENT,
            why: "no rotation_period in policy",
        });
    };
    if now < due {
        return Err(DomainError::NotDue {
            token: token_id,
            event: EVENT,
            due,
        });
    }
    Ok(vec![Event::TokenRotationDue {
        token_id,
        account_id: token.account_id,
        issued_at: token.issued_at,
    }])
}

/// A token the scheduler may note something about: exists, not revoked.
fn noteable_token<'s>(
    state: &'s State,
    id: TokenId,
    event: &'static str,
) -> Result<&'s Token, DomainError> {
    let token = existing_token(state, id)?;
    if token.revoked.is_some() {
        return Err(DomainError::NotApplicable {
            token: id,
            event,
            why: "revoked",
        });
    }
    Ok(token)
}

/// The policy that applies to the token now: its account's role's, or the
/// global one if the account is gone.
fn token_policy(state: &State, token: &Token) -> Policy {
    match state.account(token.account_id) {
        Some(account) => state.effective_policy(&account.role),
        None => Policy::resolve(state.global_policy()),
    }
}
