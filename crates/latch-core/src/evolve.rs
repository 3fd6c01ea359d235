//! `evolve`: fold one recorded event into the state. Total: an event that
//! names something the state lacks is skipped rather than panicking, since
//! the log is the truth and a verifier must keep going.

use crate::account::{Account, AccountStatus};
use crate::envelope::RecordedEvent;
use crate::event::Event;
use crate::role::Role;
use crate::state::State;
use crate::token::{Revocation, Token};
use crate::trust_policy::TrustPolicy;

pub fn evolve(state: &mut State, recorded: &RecordedEvent) {
    let at = recorded.envelope.at;
    let actor = recorded.envelope.actor;
    state.position = state.position.max(recorded.position);
    match &recorded.envelope.event {
        Event::AccountCreated {
            account_id,
            name,
            role,
            description,
        } => {
            state.accounts.insert(Account {
                id: *account_id,
                name: name.clone(),
                role: role.clone(),
                description: description.clone(),
                status: AccountStatus::Active,
                created_at: at,
                created_by: actor,
                updated_at: at,
                version: 1,
            });
        }
        Event::AccountUpdated {
            account_id,
            role,
            description,
        } => {
            with_account(state, *account_id, at, |account| {
                if let Some(role) = role {
                    account.role = role.clone();
                }
                if let Some(description) = description {
                    account.description = description.clone();
                }
            });
        }
        Event::AccountDisabled { account_id, reason } => {
            with_account(state, *account_id, at, |account| {
                account.status = AccountStatus::Disabled {
                    reason: reason.clone(),
                    since: at,
                };
            });
        }
        Event::AccountEnabled { account_id } => {
            with_account(state, *account_id, at, |account| {
                account.status = AccountStatus::Active
            });
        }
        Event::AccountDeleted { account_id } => {
            with_account(state, *account_id, at, |account| {
                account.status = AccountStatus::Deleted { since: at }
            });
        }
        Event::TokenIssued {
            token_id,
            account_id,
            name,
            scopes,
            digest,
            expires_at,
            allowed_cidrs,
            rotated_from,
            parent,
            oidc,
        } => {
            if let Some(oidc) = oidc {
                // Forget jtis whose tokens expired (they would be refused
                // anyway), then remember this one until its token expires.
                state.exchanged_jtis.record(
                    crate::state::jti_key(&oidc.issuer, &oidc.jti),
                    oidc.token_expires_at,
                    at,
                );
            }
            state.tokens.insert(Token {
                id: *token_id,
                account_id: *account_id,
                name: name.clone(),
                scopes: scopes.clone(),
                digest: *digest,
                issued_at: at,
                issued_by: actor,
                expires_at: *expires_at,
                allowed_cidrs: allowed_cidrs.clone(),
                revoked: None,
                rotated_from: *rotated_from,
                rotated_to: None,
                parent: *parent,
                trust_policy: oidc.as_ref().map(|o| o.policy_id),
                expiring_noted: false,
                expired_noted: false,
                rotation_due_noted: false,
                reuse_detected_at: None,
                version: 1,
            });
        }
        Event::TokenRevoked {
            token_id, reason, ..
        } => {
            with_token(state, *token_id, |token| {
                token.revoked = Some(Box::new(Revocation {
                    at,
                    by: actor,
                    reason: reason.clone(),
                }));
            });
        }
        Event::TokenRotated {
            token_id,
            successor_id,
            expires_at,
            ..
        } => {
            with_token(state, *token_id, |token| {
                token.rotated_to = Some(*successor_id);
                token.expires_at = Some(*expires_at);
            });
        }
        Event::TokenExpiring { token_id, .. } => {
            with_token(state, *token_id, |token| token.expiring_noted = true)
        }
        Event::TokenExpired { token_id, .. } => {
            with_token(state, *token_id, |token| token.expired_noted = true)
        }
        Event::TokenRotationDue { token_id, .. } => {
            with_token(state, *token_id, |token| token.rotation_due_noted = true);
        }
        // What follows from a leak is in the `token.revoked` events
        // appended with it.
        Event::TokenLeakReported { token_id, .. } => with_token(state, *token_id, |_| {}),
        Event::TokenReuseDetected { token_id, .. } => {
            with_token(state, *token_id, |token| token.reuse_detected_at = Some(at))
        }
        Event::RoleDefined {
            name,
            permissions,
            description,
        } => {
            state.roles.insert(
                name.clone(),
                Role {
                    name: name.clone(),
                    permissions: permissions.clone(),
                    description: description.clone(),
                    builtin: false,
                },
            );
        }
        Event::RoleDeleted { name } => {
            state.roles.remove(name);
            state.role_policies.remove(name);
        }
        Event::PolicyUpdated {
            role: None,
            settings,
        } => state.global_policy = settings.clone(),
        Event::PolicyUpdated {
            role: Some(role),
            settings,
        } => {
            state.role_policies.insert(role.clone(), settings.clone());
        }
        // What latchd signs with is no part of who may do what.
        Event::SigningKeyRotated { .. } => {}
        Event::TrustPolicyAdded {
            policy_id,
            account_id,
            issuer,
            audience,
            claims,
            scopes,
            max_ttl,
        } => {
            state.trust_policies.insert(
                *policy_id,
                TrustPolicy {
                    id: *policy_id,
                    account_id: *account_id,
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    claims: claims.clone(),
                    scopes: scopes.clone(),
                    max_ttl: *max_ttl,
                    added_at: at,
                    added_by: actor,
                },
            );
        }
        Event::TrustPolicyRemoved { policy_id, .. } => {
            state.trust_policies.remove(policy_id);
        }
    }
}

fn with_account(
    state: &mut State,
    id: crate::id::AccountId,
    at: chrono::DateTime<chrono::Utc>,
    change: impl FnOnce(&mut Account),
) {
    if let Some(account) = state.accounts.get_mut(&id) {
        change(account);
        account.updated_at = at;
        account.version += 1;
    }
}

fn with_token(state: &mut State, id: crate::id::TokenId, change: impl FnOnce(&mut Token)) {
    if let Some(token) = state.tokens.get_mut(id) {
        change(token);
        token.version += 1;
    }
}
