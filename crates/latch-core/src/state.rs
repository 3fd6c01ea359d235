//! `State`: the projection every part of Latch folds from the log (latchd,
//! verifiers, audit tools), with the indexes they look things up by.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::account::{Account, AccountName};
use crate::account_table::AccountTable;
use crate::exchanged_jtis::ExchangedJtis;
use crate::id::{AccountId, TokenId, TrustPolicyId};
use crate::permission_set::PermissionSet;
use crate::policy::{Policy, PolicySettings};
use crate::position::Position;
use crate::role::{BuiltinRole, Role, RoleName};
use crate::token::Token;
use crate::token_table::TokenTable;
use crate::token_digest::TokenDigest;
use crate::token_status::TokenStatus;
use crate::trust_policy::TrustPolicy;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub(crate) position: Position,
    pub(crate) accounts: AccountTable,
    /// In issue order, found by digest (checking a presented token, the
    /// hot path of every verifier, is one lookup), by id and by account.
    pub(crate) tokens: TokenTable,
    #[serde(default)]
    pub(crate) trust_policies: BTreeMap<TrustPolicyId, TrustPolicy>,
    /// `<issuer> <jti>` of OIDC tokens exchanged, with when each expires:
    /// refused again until then (entries past it are dropped as exchanges
    /// arrive).
    #[serde(default)]
    pub(crate) exchanged_jtis: ExchangedJtis,
    pub(crate) roles: BTreeMap<RoleName, Role>,
    pub(crate) global_policy: PolicySettings,
    pub(crate) role_policies: BTreeMap<RoleName, PolicySettings>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// The state of an empty log: only the built-in roles.
    pub fn new() -> Self {
        let roles = BuiltinRole::ALL
            .iter()
            .map(|b| b.role())
            .map(|r| (r.name.clone(), r))
            .collect();
        Self {
            position: Position::ZERO,
            accounts: AccountTable::default(),
            tokens: TokenTable::default(),
            trust_policies: BTreeMap::new(),
            exchanged_jtis: ExchangedJtis::default(),
            roles,
            global_policy: PolicySettings::default(),
            role_policies: BTreeMap::new(),
        }
    }

    /// The position of the last event folded in.
    pub fn position(&self) -> Position {
        self.position
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn account_by_name(&self, name: &AccountName) -> Option<&Account> {
        self.accounts.by_name(name)
    }

    /// Every account, in id (= creation) order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        let mut accounts: Vec<&Account> = self.accounts.values().collect();
        accounts.sort_by_key(|a| a.id);
        accounts.into_iter()
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub fn token(&self, id: TokenId) -> Option<&Token> {
        self.tokens.get(id)
    }

    pub fn token_by_digest(&self, digest: &TokenDigest) -> Option<&Token> {
        self.tokens.by_digest(digest)
    }

    /// An account's tokens, in id (= issue) order.
    pub fn tokens_of(&self, account: AccountId) -> impl Iterator<Item = &Token> {
        self.tokens.of_account(account)
    }

    /// The tokens exchanged from `token` (children, grandchildren, …),
    /// parents before their children, in issue order.
    pub fn descendants(&self, token: TokenId) -> Vec<&Token> {
        let mut found = Vec::new();
        let mut next = vec![token];
        while let Some(parent) = next.pop() {
            for child in self.tokens.children_of(parent) {
                if let Some(child) = self.token(*child) {
                    found.push(child);
                    next.push(child.id);
                }
            }
        }
        found
    }

    pub fn trust_policy(&self, id: TrustPolicyId) -> Option<&TrustPolicy> {
        self.trust_policies.get(&id)
    }

    /// Every trust policy, in id (= creation) order.
    pub fn trust_policies(&self) -> impl Iterator<Item = &TrustPolicy> {
        self.trust_policies.values()
    }

    /// Whether the OIDC token `jti` of `issuer` was exchanged and has not
    /// expired at `now`.
    pub fn jti_used(&self, issuer: &str, jti: &str, now: DateTime<Utc>) -> bool {
        self.exchanged_jtis
            .expires_at(&jti_key(issuer, jti))
            .is_some_and(|expires_at| expires_at > now)
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    pub fn role(&self, name: &RoleName) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    pub fn global_policy(&self) -> &PolicySettings {
        &self.global_policy
    }

    pub fn role_policy(&self, role: &RoleName) -> Option<&PolicySettings> {
        self.role_policies.get(role)
    }

    /// The policy in force for accounts holding `role`.
    pub fn effective_policy(&self, role: &RoleName) -> Policy {
        let global = &self.global_policy;
        match self.role_policies.get(role) {
            Some(layer) => Policy::resolve(&layer.or(global)),
            None => Policy::resolve(global),
        }
    }

    /// When policy wants `token` rotated (`rotation_period` after issue),
    /// for a token live at `now` and not rotated yet; `None` otherwise.
    pub fn rotation_due_at(&self, token: &Token, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if token.rotated_to.is_some() || !self.token_is_live(token, now) {
            return None;
        }
        let account = self.account(token.account_id)?;
        token.rotation_due(&self.effective_policy(&account.role))
    }

    /// Whether a token would be accepted at `now`, ignoring the source
    /// address: account active, not revoked, not expired.
    pub fn token_is_live(&self, token: &Token, now: DateTime<Utc>) -> bool {
        self.token_status(token, now) == TokenStatus::Active
    }

    /// What the token is at `now` in this state: revoked first, then
    /// expired, then suspended with its account.
    pub fn token_status(&self, token: &Token, now: DateTime<Utc>) -> TokenStatus {
        if token.revoked.is_some() {
            TokenStatus::Revoked
        } else if token.is_expired_at(now) {
            TokenStatus::Expired
        } else if !self
            .accounts
            .get(&token.account_id)
            .is_some_and(Account::is_active)
        {
            TokenStatus::Suspended
        } else {
            TokenStatus::Active
        }
    }

    /// What the token may do at `now`: its scopes ∩ its account's role,
    /// empty unless it is active.
    pub fn effective_permissions(&self, token: &Token, now: DateTime<Utc>) -> PermissionSet {
        if self.token_status(token, now) != TokenStatus::Active {
            return PermissionSet::empty();
        }
        self.accounts
            .get(&token.account_id)
            .and_then(|account| self.roles.get(&account.role))
            .map(|role| token.scopes.intersect(&role.permissions))
            .unwrap_or_default()
    }
}

/// How a used `jti` is keyed: per issuer (two issuers may use the same).
pub(crate) fn jti_key(issuer: &str, jti: &str) -> String {
    format!("{issuer} {jti}")
}
