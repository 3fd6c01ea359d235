//! `decide`: a command against the current state becomes events or a
//! rejection. Pure: no clock, no randomness, no I/O.
//!
//! One file per command family, one function per command, named for it;
//! `decide` checks the actor's authority and hands each command to its
//! function.

mod accounts;
mod authority;
mod child_tokens;
mod free_text;
mod granted_scopes;
mod last_admin;
mod leaks;
mod permission_list;
mod policy;
mod reuse;
mod roles;
mod scheduler;
mod signing_key;
mod state_lookups;
mod token_limit;
mod tokens;
mod trust_policies;

use chrono::{DateTime, Utc};

use crate::actor::Actor;
use crate::command::Command;
use crate::domain_error::DomainError;
use crate::event::Event;
use crate::state::State;

use authority::Authority;

pub use child_tokens::{CHILD_DEFAULT_TTL, MAX_LIVE_DESCENDANTS};
pub use free_text::MAX_TEXT;
pub use leaks::MAX_LEAK_REPORTS;
pub use reuse::{REUSE_ALERT_WINDOW, REUSE_SLACK};

/// Who is asking, and when. Made at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

/// Whether the actor may run this kind of command now: live, and holding
/// the permission it needs. `decide` checks this first; the command handler
/// also checks it before answering an idempotent replay, so a retry never
/// hands back what the caller could no longer ask for.
pub fn authorize(
    state: &State,
    ctx: &CommandContext,
    command: &Command,
) -> Result<(), DomainError> {
    Authority::of(state, ctx)?.require(&command.requirement())
}

pub fn decide(
    state: &State,
    ctx: &CommandContext,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    let authority = Authority::of(state, ctx)?;
    authority.require(&command.requirement())?;
    let now = ctx.now;
    match command {
        Command::CreateAccount {
            account_id,
            name,
            role,
            description,
        } => accounts::create_account(state, &authority, *account_id, name, role, description),
        Command::UpdateAccount {
            account_id,
            role,
            description,
        } => accounts::update_account(
            state,
            &authority,
            *account_id,
            role.as_ref(),
            description.as_deref(),
        ),
        Command::DisableAccount { account_id, reason } => {
            accounts::disable_account(state, &authority, *account_id, reason)
        }
        Command::EnableAccount { account_id } => {
            accounts::enable_account(state, &authority, *account_id)
        }
        Command::DeleteAccount { account_id } => {
            accounts::delete_account(state, &authority, *account_id)
        }
        Command::IssueToken {
            account_id,
            token_id,
            name,
            scopes,
            ttl,
            allowed_cidrs,
            digest,
        } => tokens::issue_token(
            state,
            &authority,
            now,
            *account_id,
            *token_id,
            name,
            scopes.as_ref(),
            *ttl,
            allowed_cidrs,
            digest,
        ),
        Command::RevokeToken { token_id, reason } => {
            tokens::revoke_token(state, &authority, *token_id, reason)
        }
        Command::RevokeTokenFamily { token_id, reason } => {
            tokens::revoke_token_family(state, &authority, *token_id, reason)
        }
        Command::RotateToken {
            token_id,
            successor_id,
            successor_digest,
            grace,
        } => tokens::rotate_token(
            state,
            &authority,
            now,
            *token_id,
            *successor_id,
            successor_digest,
            *grace,
        ),
        Command::ExchangeToken {
            parent_id,
            token_id,
            digest,
            name,
            scopes,
            ttl,
        } => child_tokens::exchange_token(
            state,
            now,
            *parent_id,
            *token_id,
            digest,
            name.as_deref(),
            scopes.as_ref(),
            *ttl,
        ),
        Command::AddTrustPolicy {
            account_id,
            policy_id,
            issuer,
            audience,
            claims,
            scopes,
            max_ttl,
        } => trust_policies::add_trust_policy(
            state,
            &authority,
            *account_id,
            *policy_id,
            issuer,
            audience,
            claims,
            scopes.as_ref(),
            *max_ttl,
        ),
        Command::RemoveTrustPolicy {
            account_id,
            policy_id,
        } => trust_policies::remove_trust_policy(state, &authority, *account_id, *policy_id),
        Command::ExchangeOidcToken {
            policy_id,
            token_id,
            digest,
            scopes,
            ttl,
            issuer,
            audiences,
            subject,
            jti,
            token_expires_at,
            claims,
        } => trust_policies::exchange_oidc_token(
            state,
            now,
            *policy_id,
            *token_id,
            digest,
            scopes.as_ref(),
            *ttl,
            &trust_policies::Presented {
                issuer,
                audiences,
                subject,
                jti,
                token_expires_at: *token_expires_at,
                claims,
            },
        ),
        Command::ReportLeaks { reports } => leaks::report_leaks(state, reports),
        Command::NoteTokenReuse {
            token_id,
            seen_at,
            source_address,
            service,
        } => reuse::note_token_reuse(state, now, *token_id, *seen_at, *source_address, service),
        Command::DefineRole {
            name,
            permissions,
            description,
        } => roles::define_role(state, &authority, name, permissions, description),
        Command::DeleteRole { name } => roles::delete_role(state, name),
        Command::SetPolicy { role, settings } => policy::set_policy(state, role.as_ref(), settings),
        Command::RotateSigningKey { public_key } => signing_key::rotate_signing_key(public_key),
        Command::NoteTokenExpiring { token_id } => {
            scheduler::note_token_expiring(state, now, *token_id)
        }
        Command::NoteTokenExpired { token_id } => {
            scheduler::note_token_expired(state, now, *token_id)
        }
        Command::NoteTokenRotationDue { token_id } => {
            scheduler::note_token_rotation_due(state, now, *token_id)
        }
    }
}
