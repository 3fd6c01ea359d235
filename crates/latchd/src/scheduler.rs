//! The scheduler: appends `token.expiring` (`expiry_warning` before expiry),
//! `token.expired` (at expiry) and `token.rotation_due` (`rotation_period`
//! after issue), each once per token, as ordinary commands through the
//! command handler, so they reach NATS like any other event.
//!
//! It works from a `DeadlineIndex` built once at start and kept current
//! from the log: each new event re-reads the deadlines of the tokens it
//! touches (all tokens after a policy change). Restarts lose nothing and
//! repeat nothing: what was noted is in the log (the token's `*_noted`
//! flags), what fell due while latchd was down is due at the first tick,
//! and `decide` refuses a note that was already recorded or is not yet due.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use latch_core::{AccountId, Actor, DomainError, Event, Position, TokenId};
use latch_store::EventStore;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::command_handler::{CommandHandle, CommandRequest};
use crate::command_outcome::CommandRejection;
use crate::deadline_index::DeadlineIndex;
use crate::event_codec;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SchedulerStatus {
    /// Notes appended.
    pub noted: AtomicU64,
    /// Notes pending in the deadline index.
    pub pending: AtomicU64,
}

#[derive(Clone)]
pub struct Scheduler {
    pub commands: CommandHandle,
    pub store: Arc<EventStore>,
    pub clock: Arc<dyn Clock>,
    /// How often it looks at the clock when nothing else wakes it. The
    /// clock is injectable, so this is a polling period, not a deadline.
    pub tick: Duration,
    pub status: Arc<SchedulerStatus>,
}

impl Scheduler {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut index = DeadlineIndex::default();
        let mut indexed = {
            let state = self.commands.state();
            index.rebuild(&state);
            state.position()
        };
        let mut head = self.store.subscribe();
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match self.absorb(&mut index, indexed) {
                Ok(position) => indexed = position,
                Err(error) => tracing::warn!(%error, "scheduler: could not read the log; retrying"),
            }
            self.fire_due(&mut index).await;
            self.status
                .pending
                .store(index.len() as u64, Ordering::Relaxed);
            tokio::select! {
                _ = head.changed() => {}
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Re-reads the deadlines of every token the events after `indexed`
    /// touched, up to the committed state's position, which it returns.
    ///
    /// The log is read and decoded without holding the state's lock: the
    /// command handler takes it to publish every batch, and a scheduler
    /// reading thousands of events under it slowed every command. The lock
    /// is held only to look up what the events touched.
    fn absorb(
        &self,
        index: &mut DeadlineIndex,
        indexed: Position,
    ) -> Result<Position, latch_store::StoreError> {
        let upto = self.commands.state().position();
        let mut touched = BTreeSet::<TokenId>::new();
        let mut accounts = BTreeSet::<AccountId>::new();
        let mut everything = false;
        let mut after = indexed;
        while after < upto && !everything {
            let events = self.store.read_after(after, 1024)?;
            if events.is_empty() {
                break;
            }
            for stored in events.iter().take_while(|stored| stored.position <= upto) {
                let recorded = event_codec::to_recorded(stored)?;
                after = recorded.position;
                match &recorded.envelope.event {
                    Event::PolicyUpdated { .. } | Event::RoleDeleted { .. } => everything = true,
                    event => match (event.token_id(), event.account_id()) {
                        (Some(token_id), _) => {
                            touched.insert(token_id);
                        }
                        (None, Some(account_id)) => {
                            accounts.insert(account_id);
                        }
                        (None, None) => {}
                    },
                }
            }
            if events.last().is_some_and(|last| last.position >= upto) {
                break;
            }
        }
        let state = self.commands.state();
        if everything {
            index.rebuild(&state);
        } else {
            for account_id in accounts {
                touched.extend(state.tokens_of(account_id).map(|t| t.id));
            }
            for token_id in touched {
                index.reindex(&state, token_id);
            }
        }
        Ok(upto)
    }

    async fn fire_due(&self, index: &mut DeadlineIndex) {
        let now = self.clock.now();
        while let Some((at, command)) = index.pop_due(now) {
            match self
                .commands
                .submit(CommandRequest::new(Actor::System, command.clone()))
                .await
            {
                Ok(Ok(receipt)) => {
                    self.status
                        .noted
                        .fetch_add(receipt.events.len() as u64, Ordering::Relaxed);
                    tracing::info!(note = command.name(), position = ?receipt.events.last().map(|e| e.position), "scheduler: noted");
                }
                Ok(Err(CommandRejection::Domain(DomainError::NotDue { due, .. }))) => {
                    index.push(due, &command)
                }
                Ok(Err(rejection)) => {
                    // Already noted, revoked, no longer applicable: nothing to do.
                    tracing::debug!(%rejection, note = command.name(), "scheduler: note not needed");
                }
                Err(failure) => {
                    tracing::warn!(%failure, note = command.name(), "scheduler: could not append a note; retrying next tick");
                    index.push(at, &command);
                    return;
                }
            }
        }
    }
}
