//! `latch audit token <id>`: the whole story of one token, in time order:
//! who issued it with what scopes, every event that changed it or what it
//! may do (its rotation, expiry, revocation; its account's changes; its
//! role's redefinition), and every recorded use (requests to latchd made
//! with it, accepted or refused, and verifiers' usage reports).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use latch_core::{
    Actor, Event, PermissionSet, Position, RecordedEvent, State, StreamName, Token, TokenId,
    TokenStatus,
};
use latch_store::EventStore;
use serde::Serialize;
use utoipa::ToSchema;

use crate::activity_indexer::ActivityOf;
use crate::activity_record::ActivityRecord;
use crate::views::ActorView;
use crate::audit_error::AuditError;
use crate::event_summary::summary;
use crate::log_index::{IndexedBy, LogIndex};
use crate::replay::{Progress, for_each_recorded, recorded};
use crate::state_entry::TokenAt;
use crate::token_usage::TokenUsage;
use crate::views::TokenView;

/// One line of `GET /v1/audit/tokens/{id}` (NDJSON), tagged by `kind`:
/// the token as it is now first, then its timeline.
// Entries are handed out one at a time and serialised at once: the size
// of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoryEntry {
    /// The token as the log's head has it, judged now, with its usage.
    Token(TokenAt),
    /// An event that changed the token or what it may do.
    Event {
        at: DateTime<Utc>,
        position: u64,
        #[serde(rename = "type")]
        event_type: &'static str,
        /// `token` (its own), `successor` (the token that replaced it was
        /// issued), `account` (its account changed) or `role` (its
        /// account's role was redefined or deleted).
        about: &'static str,
        actor: ActorView,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        summary: String,
        /// The token's status right after the event: `active`, `expired`,
        /// `revoked` or `suspended`.
        #[schema(value_type = String)]
        status: TokenStatus,
        /// What the token may do right after the event.
        effective_permissions: Vec<String>,
        /// Whether the event changed what the token may do.
        permissions_changed: bool,
    },
    /// A request to latchd that presented the token (accepted or refused).
    Request {
        at: DateTime<Utc>,
        request_id: String,
        method: String,
        route: String,
        path: String,
        status: Option<u16>,
        remote_addr: String,
    },
    /// A verifier's report of the token's accepted uses since its last
    /// report (`at`: the last of them).
    VerifierUse {
        at: DateTime<Utc>,
        verifier: String,
        uses: u64,
        from: String,
    },
}

impl StoryEntry {
    fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            StoryEntry::Token(_) => None,
            StoryEntry::Event { at, .. }
            | StoryEntry::Request { at, .. }
            | StoryEntry::VerifierUse { at, .. } => Some(*at),
        }
    }

    fn of_activity(record: ActivityRecord) -> Self {
        match record.verifier_uses {
            Some(uses) => StoryEntry::VerifierUse {
                at: record.at,
                verifier: record.path,
                uses,
                from: record.remote_addr,
            },
            None => StoryEntry::Request {
                at: record.at,
                request_id: record.request_id,
                method: record.method,
                route: record.route,
                path: record.path,
                status: record.status,
                remote_addr: record.remote_addr,
            },
        }
    }
}

/// A token's story, read from the log: its events are few and held; its
/// uses, which may be many, are read from the store as they are handed out.
#[derive(Debug)]
pub struct TokenStory {
    token_id: TokenId,
    now: TokenAt,
    events: Vec<StoryEntry>,
}

impl TokenStory {
    /// Reads the token's story: from the log's index when it is whole (the
    /// token's own events, those naming it, its account's and the roles'
    /// and policy's, and the accounts of whoever acted on them: a few
    /// dozen reads, each checked against its own hash), otherwise by
    /// replaying the whole log. `now` judges its present status.
    pub fn read(
        store: &EventStore,
        token_id: TokenId,
        now: DateTime<Utc>,
        progress: Progress<'_>,
    ) -> Result<Self, AuditError> {
        match LogIndex::open(store)? {
            Some(index) => Self::read_indexed(store, index, token_id, now),
            None => Self::read_by_replay(store, token_id, now, progress),
        }
    }

    /// Replays the whole log (checking the chain) and keeps the events that
    /// touched the token: what `read` does without an index, and the
    /// reference the tests hold the index to.
    pub fn read_by_replay(
        store: &EventStore,
        token_id: TokenId,
        now: DateTime<Utc>,
        progress: Progress<'_>,
    ) -> Result<Self, AuditError> {
        let mut fold = StoryFold::new(token_id);
        for_each_recorded(store, store.head().position, progress, |recorded| {
            fold.fold(&recorded);
            true
        })?;
        fold.finish(store, now)
    }

    /// Folds only the events that can change the token or what it may do,
    /// in log order, into a state of just those: the token's, its
    /// account's, the roles' and the policy's (what `State` needs to judge
    /// the token), and the creation of each actor's account (to name it).
    /// Nothing else in the log bears on them, so the story is the one a
    /// replay tells.
    fn read_indexed(
        store: &EventStore,
        index: LogIndex<'_>,
        token_id: TokenId,
        now: DateTime<Utc>,
    ) -> Result<Self, AuditError> {
        let head = index.head();
        let mut positions = BTreeSet::new();
        for position in index.positions(IndexedBy::Token(token_id), Position::ZERO) {
            positions.insert(position?);
        }
        // Its own stream (from the log's stream index) as well as the
        // entries naming it: damage to one index alone cannot hide its own
        // events.
        let own = stream_positions(store, StreamName::token(token_id).as_str(), head, u64::MAX)?;
        positions.extend(own.iter().copied());
        let Some(first) = own.first() else {
            return Err(AuditError::UnknownToken(token_id));
        };
        let Event::TokenIssued { account_id, .. } = read_at(store, *first)?.envelope.event else {
            return Err(AuditError::UnknownToken(token_id));
        };
        let mut streams = vec![
            StreamName::account(account_id).into_string(),
            StreamName::policy().into_string(),
        ];
        streams.extend(store.stream_names("role-")?);
        for stream in &streams {
            positions.extend(stream_positions(store, stream, head, u64::MAX)?);
        }
        let mut events = Vec::with_capacity(positions.len());
        for position in &positions {
            events.push(read_at(store, *position)?);
        }
        // Whoever acted: their account's creation names them.
        let mut named = HashSet::from([account_id]);
        let mut creations = BTreeSet::new();
        for recorded in &events {
            if let Actor::Token { account_id, .. } = recorded.envelope.actor
                && named.insert(account_id)
            {
                let stream = StreamName::account(account_id);
                creations.extend(stream_positions(store, stream.as_str(), head, 1)?);
            }
        }
        for position in creations.difference(&positions) {
            events.push(read_at(store, *position)?);
        }
        events.sort_by_key(|recorded| recorded.position);
        let mut fold = StoryFold::new(token_id);
        for recorded in &events {
            fold.fold(recorded);
        }
        fold.finish(store, now)
    }

    /// Hands out the token as it is now, then its events and uses merged in
    /// time order, for as long as `each` says to go on.
    pub fn tell(
        self,
        store: &EventStore,
        mut each: impl FnMut(StoryEntry) -> bool,
    ) -> Result<(), AuditError> {
        if !each(StoryEntry::Token(self.now)) {
            return Ok(());
        }
        let mut events = self.events.into_iter().peekable();
        let mut stopped = false;
        ActivityRecord::scan_of(store, ActivityOf::Token(self.token_id), None, |record| {
            let used = StoryEntry::of_activity(record);
            while let Some(event) = events.next_if(|e| e.at() <= used.at()) {
                if !each(event) {
                    stopped = true;
                    return false;
                }
            }
            stopped = !each(used);
            !stopped
        })?;
        if !stopped {
            for event in events {
                if !each(event) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A token's story as events are folded in, in log order.
struct StoryFold {
    token_id: TokenId,
    state: State,
    events: Vec<StoryEntry>,
}

impl StoryFold {
    fn new(token_id: TokenId) -> Self {
        Self {
            token_id,
            state: State::new(),
            events: Vec::new(),
        }
    }

    fn fold(&mut self, recorded: &RecordedEvent) {
        let token_id = self.token_id;
        let about = about(&self.state, token_id, recorded);
        let before = about.map(|_| may_do(&self.state, token_id, recorded.envelope.at));
        latch_core::evolve(&mut self.state, recorded);
        if let (Some(about), Some(before)) = (about, before)
            && let Some(event) = story_event(&self.state, token_id, recorded, about, before)
        {
            self.events.push(event);
        }
    }

    fn finish(self, store: &EventStore, now: DateTime<Utc>) -> Result<TokenStory, AuditError> {
        let token = self
            .state
            .token(self.token_id)
            .ok_or(AuditError::UnknownToken(self.token_id))?;
        let usage = TokenUsage::stored(store, self.token_id)?;
        let now = TokenAt {
            account_name: account_name(&self.state, token),
            token: TokenView::of(token, &self.state, now, Some(usage)),
        };
        Ok(TokenStory {
            token_id: self.token_id,
            now,
            events: self.events,
        })
    }
}

/// The positions of a stream's first `limit` events, through `head`.
fn stream_positions(
    store: &EventStore,
    stream: &str,
    head: Position,
    limit: u64,
) -> Result<Vec<Position>, AuditError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(store
        .stream_positions(stream, 1, limit)?
        .into_iter()
        .filter(|position| *position <= head)
        .collect())
}

/// The event at `position`, checked against its own hash.
fn read_at(store: &EventStore, position: Position) -> Result<RecordedEvent, AuditError> {
    let stored = store
        .event_checked(position)?
        .ok_or(AuditError::IndexPointsNowhere(position))?;
    recorded(&stored)
}

/// Why the event belongs to the token's story, judged on the state before
/// it; `None` when it does not.
fn about(state: &State, token_id: TokenId, recorded: &RecordedEvent) -> Option<&'static str> {
    let event = &recorded.envelope.event;
    if event.token_id() == Some(token_id) {
        return Some("token");
    }
    if let Event::TokenIssued {
        rotated_from: Some(from),
        ..
    } = event
        && *from == token_id
    {
        return Some("successor");
    }
    if let Event::TokenIssued {
        parent: Some(parent),
        ..
    } = event
        && *parent == token_id
    {
        return Some("child");
    }
    // Changes to its account or role matter while the token can still be
    // used again: not once it is revoked or past its expiry.
    let token = state.token(token_id)?;
    if token.revoked.is_some() || token.is_expired_at(recorded.envelope.at) {
        return None;
    }
    let account = state.account(token.account_id)?;
    match event {
        _ if event.account_id() == Some(account.id) && event.token_id().is_none() => {
            Some("account")
        }
        Event::RoleDefined { name, .. } | Event::RoleDeleted { name } if *name == account.role => {
            Some("role")
        }
        _ => None,
    }
}

/// The token's status and effective permissions at `at` (nothing before it
/// exists).
fn may_do(
    state: &State,
    token_id: TokenId,
    at: DateTime<Utc>,
) -> Option<(TokenStatus, PermissionSet)> {
    let token = state.token(token_id)?;
    Some((
        state.token_status(token, at),
        state.effective_permissions(token, at),
    ))
}

fn story_event(
    state: &State,
    token_id: TokenId,
    recorded: &RecordedEvent,
    about: &'static str,
    before: Option<(TokenStatus, PermissionSet)>,
) -> Option<StoryEntry> {
    let envelope = &recorded.envelope;
    // `None` only for an event about a token the log never issued, which
    // `evolve` skips: it tells nothing of this token.
    let (status, effective) = may_do(state, token_id, envelope.at)?;
    let permissions_changed = before.is_none_or(|(_, before)| before != effective);
    Some(StoryEntry::Event {
        at: envelope.at,
        position: recorded.position.get(),
        event_type: envelope.event.event_type(),
        about,
        actor: ActorView::named(envelope.actor, state),
        request_id: envelope.request_id.clone(),
        summary: summary(&envelope.event),
        status,
        effective_permissions: effective.iter().map(ToString::to_string).collect(),
        permissions_changed,
    })
}

fn account_name(state: &State, token: &Token) -> String {
    state
        .account(token.account_id)
        .map(|a| a.name.to_string())
        .unwrap_or_default()
}
