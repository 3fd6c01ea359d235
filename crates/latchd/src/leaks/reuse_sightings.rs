//! `ReuseSightings`: tokens presented after they were rotated out or
//! revoked — at latchd (a refused request) or at a verifier (its usage
//! report) — turned into `NoteTokenReuse` commands for `decide`, which
//! appends `token.reuse_detected` at most once per token per hour.
//!
//! latchd submits at most one command per token per `RESUBMIT_AFTER`, so a
//! caller replaying a dead token cannot keep the command handler busy; and
//! it submits only for tokens its own state says were rotated out past
//! their grace or revoked (a verifier's claim about a live token, or one
//! still in its grace, is dropped here and would be refused by `decide`).
//!
//! A verifier's report is a claim: whoever may publish on `latch.usage.>`
//! can make one, and under `on_reuse: revoke` a claimed reuse of a
//! rotated-out token revokes its successor. Restrict publishing there to
//! your verifiers (docs/nats.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use latch_core::{Actor, Command, REUSE_SLACK, Token};

use crate::command_handler::{CommandHandle, CommandRequest};

/// Least time between two reuse commands latchd submits for one token.
pub const RESUBMIT_AFTER: Duration = Duration::from_secs(60);
/// The most tokens remembered (older entries are forgotten beyond it).
const MAX_REMEMBERED: usize = 10_000;

/// Where the token was presented: `latchd` or a verifier's name.
pub struct Sighting<'a> {
    pub seen_at: DateTime<Utc>,
    pub source_address: Option<IpAddr>,
    pub service: &'a str,
    /// How long after a rotated token's grace a presentation must be to
    /// count: `REUSE_SLACK` at latchd (its own clock decides), the clock
    /// skew allowed to verifiers for their claims (a verifier whose clock
    /// runs fast refuses, and reports, a token still in its grace).
    pub slack: TimeDelta,
}

#[derive(Default)]
pub struct ReuseSightings {
    submitted: Mutex<HashMap<latch_core::TokenId, Instant>>,
}

impl ReuseSightings {
    /// Notes that `token` was presented; submits `NoteTokenReuse` in the
    /// background when it is reuse and none was submitted for it lately.
    pub fn sighted(&self, commands: &CommandHandle, token: &Token, sighting: Sighting<'_>) {
        if !token.presented_after_its_end(sighting.seen_at, sighting.slack.max(REUSE_SLACK)) {
            return;
        }
        {
            let now = Instant::now();
            let mut submitted = self.submitted.lock().unwrap_or_else(|e| e.into_inner());
            if submitted
                .get(&token.id)
                .is_some_and(|at| now.duration_since(*at) < RESUBMIT_AFTER)
            {
                return;
            }
            if submitted.len() >= MAX_REMEMBERED {
                submitted.retain(|_, at| now.duration_since(*at) < RESUBMIT_AFTER);
                if submitted.len() >= MAX_REMEMBERED {
                    return;
                }
            }
            submitted.insert(token.id, now);
        }
        let command = Command::NoteTokenReuse {
            token_id: token.id,
            seen_at: sighting.seen_at,
            source_address: sighting.source_address,
            // A verifier names itself: no control characters reach an event.
            service: crate::bounded_text::printable(sighting.service, 64),
        };
        let commands = commands.clone();
        let token_id = token.id;
        tokio::spawn(async move {
            match commands.submit(CommandRequest::new(Actor::System, command)).await {
                Ok(Ok(receipt)) if !receipt.events.is_empty() => {
                    tracing::warn!(%token_id, "a token was presented after it was rotated out or revoked: token.reuse_detected")
                }
                Ok(Ok(_)) => {}
                Ok(Err(rejection)) => tracing::debug!(%token_id, %rejection, "reuse not noted"),
                Err(error) => tracing::warn!(%token_id, %error, "could not note a token's reuse"),
            }
        });
    }
}
