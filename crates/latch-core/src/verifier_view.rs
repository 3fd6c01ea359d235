//! `VerifierView`: the projection a verifier checks tokens against. It
//! holds what `authenticate` reads and nothing more (no names, no actors,
//! no revocation reasons), packed so that a million tokens take about
//! 130 bytes each and a check costs two cache misses after the SHA-256:
//!
//! - tokens in one dense `Vec` of fixed-size entries, in issue order;
//! - a digest index keyed by the digest's first 8 bytes, which are already
//!   uniformly spread (SHA-256), so the map hashes nothing;
//! - a token-id index sorted by id (ids are UUIDv7, so issues append);
//! - accounts, roles, scope sets and CIDR lists interned, entries pointing
//!   at them by `u32`.
//!
//! It folds the same events as `evolve` and answers exactly as
//! `authenticate` over `State` does (a property test holds the two to it);
//! `VerifierView::of(&State)` builds it from latchd's state for snapshots.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::account::AccountStatus;
use crate::authentication::{Principal, Rejection};
use crate::envelope::RecordedEvent;
use crate::event::Event;
use crate::id::{AccountId, TokenId};
use crate::permission_set::PermissionSet;
use crate::position::Position;
use crate::role::{BuiltinRole, RoleName};
use crate::state::State;
use crate::token_digest::TokenDigest;
use crate::token_secret;
use crate::token_slot::TokenSlot;

/// `expires_at` of a token that never expires.
const NEVER: i64 = i64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct TokenEntry {
    digest: [u8; 32],
    id: TokenId,
    account: u32,
    scopes: u32,
    /// Index into `cidr_sets`; 0: any source.
    cidrs: u32,
    /// Nanoseconds since the epoch; `NEVER`.
    expires_at: i64,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Standing {
    Active,
    Disabled,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AccountEntry {
    id: AccountId,
    standing: Standing,
    role: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RoleEntry {
    name: RoleName,
    /// `None`: not defined (deleted, or never defined).
    permissions: Option<PermissionSet>,
}

/// The parts a snapshot carries; the indexes are rebuilt from them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierViewParts {
    position: Position,
    tokens: Vec<TokenEntry>,
    accounts: Vec<AccountEntry>,
    roles: Vec<RoleEntry>,
    scope_sets: Vec<PermissionSet>,
    cidr_sets: Vec<Vec<IpNet>>,
}

/// Hashes a `u64` that is already uniformly spread by using it as is.
#[derive(Default)]
struct SpreadKey(u64);

impl Hasher for SpreadKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type SpreadMap<V> = HashMap<u64, V, BuildHasherDefault<SpreadKey>>;

#[derive(Debug, Clone)]
pub struct VerifierView {
    parts: VerifierViewParts,
    /// Digest prefix → index in `tokens`.
    by_digest: SpreadMap<u32>,
    /// Tokens whose digest prefix another token already holds: 2⁻⁶⁴ each.
    overflow: HashMap<[u8; 32], u32>,
    /// (token id, index in `tokens`), sorted by id.
    by_id: Vec<(TokenId, u32)>,
    account_index: HashMap<AccountId, u32>,
    role_index: HashMap<RoleName, u32>,
    scope_index: HashMap<PermissionSet, u32>,
    cidr_index: HashMap<Vec<IpNet>, u32>,
}

impl Default for VerifierView {
    fn default() -> Self {
        Self::new()
    }
}

impl VerifierView {
    /// The view of an empty log: only the built-in roles.
    pub fn new() -> Self {
        let mut view = Self::from_parts(VerifierViewParts {
            cidr_sets: vec![Vec::new()],
            ..VerifierViewParts::default()
        });
        for builtin in BuiltinRole::ALL {
            let role = builtin.role();
            let at = view.role_id(&role.name);
            view.parts.roles[at as usize].permissions = Some(role.permissions);
        }
        view
    }

    /// The view of latchd's state (for the snapshot verifiers start from).
    pub fn of(state: &State) -> Self {
        let mut view = Self::new();
        view.parts.position = state.position();
        for role in state.roles() {
            let at = view.role_id(&role.name);
            view.parts.roles[at as usize].permissions = Some(role.permissions.clone());
        }
        for account in state.accounts() {
            let role = view.role_id(&account.role);
            view.push_account(account.id, role);
            view.set_standing(account.id, standing(&account.status));
        }
        // Straight from the token table (no per-token lookups), interning
        // scope sets with a one-entry cache: most tokens share their
        // neighbour's scopes. Then sorted by id, indexes rebuilt.
        let mut entries = Vec::with_capacity(state.tokens.len());
        let mut last_scopes: Option<(&PermissionSet, u32)> = None;
        for token in state.tokens.iter() {
            let Some(&account) = view.account_index.get(&token.account_id) else {
                continue;
            };
            let scopes = match last_scopes {
                Some((set, at)) if *set == token.scopes => at,
                _ => {
                    let at = view.scope_id(&token.scopes);
                    last_scopes = Some((&token.scopes, at));
                    at
                }
            };
            entries.push(TokenEntry {
                digest: *token.digest.as_bytes(),
                id: token.id,
                account,
                scopes,
                cidrs: view.cidr_id(&token.allowed_cidrs),
                expires_at: nanos(token.expires_at),
                revoked: token.revoked.is_some(),
            });
        }
        entries.sort_unstable_by_key(|entry| entry.id);
        view.parts.tokens = entries;
        Self::from_parts(view.parts)
    }

    /// Rebuilds the indexes of a snapshot's parts.
    pub fn from_parts(parts: VerifierViewParts) -> Self {
        let mut view = VerifierView {
            by_digest: SpreadMap::with_capacity_and_hasher(parts.tokens.len(), Default::default()),
            overflow: HashMap::new(),
            by_id: Vec::with_capacity(parts.tokens.len()),
            account_index: HashMap::with_capacity(parts.accounts.len()),
            role_index: HashMap::new(),
            scope_index: HashMap::new(),
            cidr_index: HashMap::new(),
            parts,
        };
        if view.parts.cidr_sets.is_empty() {
            view.parts.cidr_sets.push(Vec::new());
        }
        for (at, token) in view.parts.tokens.iter().enumerate() {
            let at = at as u32;
            match view.by_digest.entry(prefix(&token.digest)) {
                Entry::Vacant(slot) => {
                    slot.insert(at);
                }
                Entry::Occupied(_) => {
                    view.overflow.insert(token.digest, at);
                }
            }
            view.by_id.push((token.id, at));
        }
        view.by_id.sort_unstable_by_key(|(id, _)| *id);
        for (at, account) in view.parts.accounts.iter().enumerate() {
            view.account_index.insert(account.id, at as u32);
        }
        for (at, role) in view.parts.roles.iter().enumerate() {
            view.role_index.insert(role.name.clone(), at as u32);
        }
        for (at, set) in view.parts.scope_sets.iter().enumerate() {
            view.scope_index.insert(set.clone(), at as u32);
        }
        for (at, set) in view.parts.cidr_sets.iter().enumerate() {
            view.cidr_index.insert(set.clone(), at as u32);
        }
        view
    }

    /// What a snapshot carries.
    pub fn parts(&self) -> &VerifierViewParts {
        &self.parts
    }

    pub fn into_parts(self) -> VerifierViewParts {
        self.parts
    }

    /// The position of the last event folded in.
    pub fn position(&self) -> Position {
        self.parts.position
    }

    pub fn token_count(&self) -> usize {
        self.parts.tokens.len()
    }

    /// Folds one event, as `evolve` folds it into `State`.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        self.parts.position = self.parts.position.max(recorded.position);
        match &recorded.envelope.event {
            Event::AccountCreated {
                account_id, role, ..
            } => {
                if !self.account_index.contains_key(account_id) {
                    let role = self.role_id(role);
                    self.push_account(*account_id, role);
                }
            }
            Event::AccountUpdated {
                account_id,
                role: Some(role),
                ..
            } => {
                let role = self.role_id(role);
                if let Some(account) = self.account_mut(*account_id) {
                    account.role = role;
                }
            }
            Event::AccountUpdated { role: None, .. } => {}
            Event::AccountDisabled { account_id, .. } => {
                self.set_standing(*account_id, Standing::Disabled)
            }
            Event::AccountEnabled { account_id } => {
                self.set_standing(*account_id, Standing::Active)
            }
            Event::AccountDeleted { account_id } => {
                self.set_standing(*account_id, Standing::Deleted)
            }
            Event::TokenIssued {
                token_id,
                account_id,
                scopes,
                digest,
                expires_at,
                allowed_cidrs,
                ..
            } => {
                let Some(&account) = self.account_index.get(account_id) else {
                    return;
                };
                let entry = TokenEntry {
                    digest: *digest.as_bytes(),
                    id: *token_id,
                    account,
                    scopes: self.scope_id(scopes),
                    cidrs: self.cidr_id(allowed_cidrs),
                    expires_at: nanos(*expires_at),
                    revoked: false,
                };
                self.push_token(entry);
            }
            Event::TokenRevoked { token_id, .. } => {
                if let Some(token) = self.token_mut(*token_id) {
                    token.revoked = true;
                }
            }
            Event::TokenRotated {
                token_id,
                expires_at,
                ..
            } => {
                if let Some(token) = self.token_mut(*token_id) {
                    token.expires_at = nanos(Some(*expires_at));
                }
            }
            Event::RoleDefined {
                name, permissions, ..
            } => {
                let at = self.role_id(name);
                self.parts.roles[at as usize].permissions = Some(permissions.clone());
            }
            Event::RoleDeleted { name } => {
                if let Some(&at) = self.role_index.get(name) {
                    self.parts.roles[at as usize].permissions = None;
                }
            }
            Event::TokenExpiring { .. }
            | Event::TokenExpired { .. }
            | Event::TokenRotationDue { .. }
            | Event::TokenLeakReported { .. }
            | Event::TokenReuseDetected { .. }
            | Event::PolicyUpdated { .. }
            | Event::SigningKeyRotated { .. }
            | Event::TrustPolicyAdded { .. }
            | Event::TrustPolicyRemoved { .. } => {}
        }
    }

    /// `authenticate`, against this view.
    pub fn authenticate(
        &self,
        presented: &str,
        now: DateTime<Utc>,
        source: Option<IpAddr>,
    ) -> Result<Principal<'_>, Rejection> {
        self.authenticate_slotted(presented, now, source)
            .map(|(principal, _)| principal)
    }

    /// `authenticate`, also giving the token's slot (for per-token
    /// counters kept beside the view).
    pub fn authenticate_slotted(
        &self,
        presented: &str,
        now: DateTime<Utc>,
        source: Option<IpAddr>,
    ) -> Result<(Principal<'_>, TokenSlot), Rejection> {
        token_secret::check(presented).map_err(Rejection::Malformed)?;
        self.authenticate_digest_slotted(&TokenDigest::of(presented), now, source)
    }

    /// `authenticate_digest`, also giving the token's slot.
    pub fn authenticate_digest_slotted(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        source: Option<IpAddr>,
    ) -> Result<(Principal<'_>, TokenSlot), Rejection> {
        let at = self
            .slot_by_digest(digest.as_bytes())
            .ok_or(Rejection::Unknown)?;
        Ok((
            self.authenticate_entry(at, digest, now, source)?,
            TokenSlot::new(at),
        ))
    }

    /// `authenticate_digest`, against this view.
    pub fn authenticate_digest(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        source: Option<IpAddr>,
    ) -> Result<Principal<'_>, Rejection> {
        self.authenticate_digest_slotted(digest, now, source)
            .map(|(principal, _)| principal)
    }

    /// The token a presented text is, and its account, whatever its
    /// standing: for a verifier to report a revoked or expired token it
    /// refused. `None` for a malformed or unknown token.
    pub fn presented_token(&self, presented: &str) -> Option<(TokenId, AccountId)> {
        token_secret::check(presented).ok()?;
        let digest = TokenDigest::of(presented);
        let at = self.slot_by_digest(digest.as_bytes())?;
        let token = &self.parts.tokens[at as usize];
        if !TokenDigest::from_bytes(token.digest).ct_eq(&digest) {
            return None;
        }
        self.token_in_slot(TokenSlot::new(at))
    }

    /// The token in `slot` and its account; `None` for a slot this view
    /// does not have.
    pub fn token_in_slot(&self, slot: TokenSlot) -> Option<(TokenId, AccountId)> {
        let token = self.parts.tokens.get(slot.index())?;
        let account = self.parts.accounts.get(token.account as usize)?;
        Some((token.id, account.id))
    }

    fn authenticate_entry(
        &self,
        at: u32,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        source: Option<IpAddr>,
    ) -> Result<Principal<'_>, Rejection> {
        let token = &self.parts.tokens[at as usize];
        if !TokenDigest::from_bytes(token.digest).ct_eq(digest) {
            return Err(Rejection::Unknown);
        }
        let account = self
            .parts
            .accounts
            .get(token.account as usize)
            .ok_or(Rejection::Unknown)?;
        match account.standing {
            Standing::Active => {}
            Standing::Disabled => return Err(Rejection::AccountDisabled),
            Standing::Deleted => return Err(Rejection::AccountDeleted),
        }
        if token.revoked {
            return Err(Rejection::Revoked);
        }
        if token.expires_at != NEVER && nanos(Some(now)) >= token.expires_at {
            return Err(Rejection::Expired);
        }
        if let Some(addr) = source
            && token.cidrs != 0
        {
            let addr = addr.to_canonical();
            let allowed = &self.parts.cidr_sets[token.cidrs as usize];
            if !allowed.iter().any(|net| net.contains(&addr)) {
                return Err(Rejection::SourceNotAllowed);
            }
        }
        let role_permissions = self
            .parts
            .roles
            .get(account.role as usize)
            .and_then(|role| role.permissions.as_ref())
            .ok_or(Rejection::Unknown)?;
        Ok(Principal {
            account_id: account.id,
            token_id: token.id,
            expires_at: (token.expires_at != NEVER)
                .then(|| DateTime::from_timestamp_nanos(token.expires_at)),
            scopes: &self.parts.scope_sets[token.scopes as usize],
            role_permissions,
        })
    }

    /// What a token may do now by the view (scopes ∩ role), if it is known.
    pub fn effective_permissions(&self, token_id: TokenId) -> Option<PermissionSet> {
        let token = self.token_by_id(token_id)?;
        let account = self.parts.accounts.get(token.account as usize)?;
        let role = self
            .parts
            .roles
            .get(account.role as usize)?
            .permissions
            .as_ref()?;
        Some(self.parts.scope_sets[token.scopes as usize].intersect(role))
    }

    /// The index in `tokens` of the token with this digest.
    fn slot_by_digest(&self, digest: &[u8; 32]) -> Option<u32> {
        let at = *self.by_digest.get(&prefix(digest))?;
        if self.parts.tokens[at as usize].digest == *digest {
            return Some(at);
        }
        self.overflow.get(digest).copied()
    }

    fn token_by_id(&self, id: TokenId) -> Option<&TokenEntry> {
        let at = self.by_id.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(&self.parts.tokens[self.by_id[at].1 as usize])
    }

    fn token_mut(&mut self, id: TokenId) -> Option<&mut TokenEntry> {
        let at = self.by_id.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(&mut self.parts.tokens[self.by_id[at].1 as usize])
    }

    fn push_token(&mut self, entry: TokenEntry) {
        if self.token_by_id(entry.id).is_some() {
            return;
        }
        let at = self.parts.tokens.len() as u32;
        match self.by_digest.entry(prefix(&entry.digest)) {
            Entry::Vacant(slot) => {
                slot.insert(at);
            }
            Entry::Occupied(_) => {
                self.overflow.insert(entry.digest, at);
            }
        }
        // UUIDv7 ids come in issue order: almost always an append.
        let place = self.by_id.partition_point(|(id, _)| *id < entry.id);
        self.by_id.insert(place, (entry.id, at));
        self.parts.tokens.push(entry);
    }

    fn push_account(&mut self, id: AccountId, role: u32) {
        let at = self.parts.accounts.len() as u32;
        self.parts.accounts.push(AccountEntry {
            id,
            standing: Standing::Active,
            role,
        });
        self.account_index.insert(id, at);
    }

    fn account_mut(&mut self, id: AccountId) -> Option<&mut AccountEntry> {
        let at = *self.account_index.get(&id)?;
        self.parts.accounts.get_mut(at as usize)
    }

    fn set_standing(&mut self, id: AccountId, standing: Standing) {
        if let Some(account) = self.account_mut(id) {
            account.standing = standing;
        }
    }

    fn role_id(&mut self, name: &RoleName) -> u32 {
        if let Some(&at) = self.role_index.get(name) {
            return at;
        }
        let at = self.parts.roles.len() as u32;
        self.parts.roles.push(RoleEntry {
            name: name.clone(),
            permissions: None,
        });
        self.role_index.insert(name.clone(), at);
        at
    }

    fn scope_id(&mut self, scopes: &PermissionSet) -> u32 {
        if let Some(&at) = self.scope_index.get(scopes) {
            return at;
        }
        let at = self.parts.scope_sets.len() as u32;
        self.parts.scope_sets.push(scopes.clone());
        self.scope_index.insert(scopes.clone(), at);
        at
    }

    fn cidr_id(&mut self, cidrs: &[IpNet]) -> u32 {
        if cidrs.is_empty() {
            return 0;
        }
        if let Some(&at) = self.cidr_index.get(cidrs) {
            return at;
        }
        let at = self.parts.cidr_sets.len() as u32;
        self.parts.cidr_sets.push(cidrs.to_vec());
        self.cidr_index.insert(cidrs.to_vec(), at);
        at
    }
}

fn prefix(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Nanoseconds since the epoch (saturating), `NEVER` for `None`.
fn nanos(at: Option<DateTime<Utc>>) -> i64 {
    match at {
        None => NEVER,
        Some(at) => at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
            i64::MIN
        } else {
            NEVER - 1
        }),
    }
}

fn standing(status: &AccountStatus) -> Standing {
    match status {
        AccountStatus::Active => Standing::Active,
        AccountStatus::Disabled { .. } => Standing::Disabled,
        AccountStatus::Deleted { .. } => Standing::Deleted,
    }
}
