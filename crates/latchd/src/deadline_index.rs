//! `DeadlineIndex`: every pending time-based note, ordered by when it falls
//! due, so the scheduler looks only at what is due instead of scanning every
//! token each tick.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use latch_core::{Command, State, TokenId, scheduled_notes};

/// Which note; orders notes due at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum NoteKind {
    Expiring,
    RotationDue,
    Expired,
}

impl NoteKind {
    fn of(command: &Command) -> Option<Self> {
        match command {
            Command::NoteTokenExpiring { .. } => Some(Self::Expiring),
            Command::NoteTokenRotationDue { .. } => Some(Self::RotationDue),
            Command::NoteTokenExpired { .. } => Some(Self::Expired),
            _ => None,
        }
    }

    fn command(self, token_id: TokenId) -> Command {
        match self {
            Self::Expiring => Command::NoteTokenExpiring { token_id },
            Self::RotationDue => Command::NoteTokenRotationDue { token_id },
            Self::Expired => Command::NoteTokenExpired { token_id },
        }
    }
}

#[derive(Debug, Default)]
pub struct DeadlineIndex {
    queue: BTreeSet<(DateTime<Utc>, TokenId, NoteKind)>,
    by_token: HashMap<TokenId, Vec<(DateTime<Utc>, NoteKind)>>,
}

impl DeadlineIndex {
    /// Indexes every token of `state` (once, at start, or after a policy
    /// change, which can move every deadline).
    pub fn rebuild(&mut self, state: &State) {
        self.queue.clear();
        self.by_token.clear();
        for account in state.accounts() {
            for token in state.tokens_of(account.id) {
                self.insert_token(state, token.id);
            }
        }
    }

    /// Re-reads one token's pending notes from `state`.
    pub fn reindex(&mut self, state: &State, token_id: TokenId) {
        if let Some(entries) = self.by_token.remove(&token_id) {
            for (at, kind) in entries {
                self.queue.remove(&(at, token_id, kind));
            }
        }
        self.insert_token(state, token_id);
    }

    fn insert_token(&mut self, state: &State, token_id: TokenId) {
        let Some(token) = state.token(token_id) else {
            return;
        };
        let entries: Vec<_> = scheduled_notes(state, token)
            .into_iter()
            .filter_map(|note| NoteKind::of(&note.command).map(|kind| (note.at, kind)))
            .collect();
        for (at, kind) in &entries {
            self.queue.insert((*at, token_id, *kind));
        }
        if !entries.is_empty() {
            self.by_token.insert(token_id, entries);
        }
    }

    /// Takes out the earliest note due at or before `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Command)> {
        let &(at, token_id, kind) = self.queue.first().filter(|(at, _, _)| *at <= now)?;
        self.queue.remove(&(at, token_id, kind));
        if let Some(entries) = self.by_token.get_mut(&token_id) {
            entries.retain(|entry| *entry != (at, kind));
        }
        Some((at, kind.command(token_id)))
    }

    /// Puts a note back (to retry it, or at the time `decide` said it is due).
    pub fn push(&mut self, at: DateTime<Utc>, command: &Command) {
        let (Some(kind), Some(token_id)) = (NoteKind::of(command), command_token(command)) else {
            return;
        };
        self.queue.insert((at, token_id, kind));
        self.by_token.entry(token_id).or_default().push((at, kind));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

fn command_token(command: &Command) -> Option<TokenId> {
    match command {
        Command::NoteTokenExpiring { token_id }
        | Command::NoteTokenRotationDue { token_id }
        | Command::NoteTokenExpired { token_id } => Some(*token_id),
        _ => None,
    }
}
