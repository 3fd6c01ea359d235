//! `scheduled_notes`: which time-based events a token still has ahead of
//! it, and when. latchd's scheduler keeps these in a deadline index and
//! submits each command when it falls due; `decide` applies the same rules
//! (`Token::expiring_due`, `Token::rotation_due`) when the command arrives,
//! so an early or repeated note is refused, never appended.

use chrono::{DateTime, Utc};

use crate::command::Command;
use crate::policy::Policy;
use crate::state::State;
use crate::token::Token;

/// A note a token is due for at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledNote {
    pub at: DateTime<Utc>,
    pub command: Command,
}

/// The notes `token` has not had yet, earliest first. None for a revoked
/// token; no rotation-due once rotated or after expiry.
pub fn scheduled_notes(state: &State, token: &Token) -> Vec<ScheduledNote> {
    if token.revoked.is_some() {
        return Vec::new();
    }
    let policy = match state.account(token.account_id) {
        Some(account) => state.effective_policy(&account.role),
        None => Policy::resolve(state.global_policy()),
    };
    let token_id = token.id;
    let mut notes = Vec::new();
    if !token.expiring_noted
        && let Some(at) = token.expiring_due(&policy)
    {
        notes.push(ScheduledNote {
            at,
            command: Command::NoteTokenExpiring { token_id },
        });
    }
    if !token.expired_noted
        && let Some(at) = token.expires_at
    {
        notes.push(ScheduledNote {
            at,
            command: Command::NoteTokenExpired { token_id },
        });
    }
    if !token.rotation_due_noted
        && token.rotated_to.is_none()
        && let Some(at) = token.rotation_due(&policy)
        && token.expires_at.is_none_or(|expires| at < expires)
    {
        notes.push(ScheduledNote {
            at,
            command: Command::NoteTokenRotationDue { token_id },
        });
    }
    notes.sort_by_key(|note| note.at);
    notes
}
