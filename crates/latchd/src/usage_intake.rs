//! `UsageIntake`: takes verifiers' usage reports from `latch.usage.*` into
//! the usage book and the audit trail (`GET /v1/audit`).
//!
//! A report is a claim, not proof: whoever may publish on `latch.usage.>`
//! can make one (restrict it with NATS permissions to your verifiers). So
//! latchd believes only what could be true:
//!
//! - a use counts only for a token that belongs to the account the subject
//!   names and that was live when it was used: issued, and neither revoked
//!   nor expired more than `CLOCK_SKEW` before the reported time (unknown
//!   tokens, and uses after revocation or expiry, are dropped);
//! - times may be at most `CLOCK_SKEW` ahead of latchd's clock and are then
//!   clamped to now; a use reported further in the future is dropped;
//! - one report counts at most `MAX_USES_PER_TOKEN` uses of a token and
//!   looks at its first `MAX_ENTRIES_PER_REPORT` entries;
//! - the verifier's name, as it reports it (cut to 64 bytes), is kept with
//!   the usage (`last_reported_by`) and on each audit record, so an
//!   investigator sees who claimed a use.
//!
//! A report's `refused` entries (known tokens the verifier refused as
//! revoked or expired) go to `ReuseSightings`: a token of the named account
//! that latchd's state says was rotated out past its grace or revoked when
//! it was presented becomes a `NoteTokenReuse` command (at most one per
//! token a minute; `decide` appends at most one `token.reuse_detected` an
//! hour). Times are clamped as for uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use latch_bus::{TokenUse, UsageReport, subject};
use latch_core::{State, Token};
use tokio::sync::watch;

use crate::api::ActivityRecord;
use crate::bounded_text::{MAX_NAME_BYTES, bounded};
use crate::clock::Clock;
use crate::command_handler::CommandHandle;
use crate::usage_book::UsageBook;

/// How far a verifier's clock may be ahead of latchd's, and how long after
/// a revocation or expiry a use may still be reported (the verifier learns
/// of it over NATS, a moment later).
pub const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(30);
/// The most uses of one token one report may claim. A verifier reports
/// every 2 s by default: this is half a million checks a second of one
/// token, far above any real service.
pub const MAX_USES_PER_TOKEN: u64 = 1_000_000;
/// The most entries of one report latchd looks at (a 1 MB NATS message
/// holds about 7,000).
pub const MAX_ENTRIES_PER_REPORT: usize = 10_000;

pub struct UsageIntake {
    pub nats: latch_bus::NatsConnection,
    pub commands: CommandHandle,
    pub book: Arc<UsageBook>,
    pub clock: Arc<dyn Clock>,
    /// Where reuse sightings go.
    pub app: crate::api::AppState,
}

/// Why a reported use was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dropped {
    UnknownToken,
    InTheFuture,
    NotLive,
    NoUses,
}

impl UsageIntake {
    /// Runs until `shutdown`, reconnecting as needed.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let connected = match self.nats.options().await {
                Ok(options) => options
                    .name("latchd usage intake")
                    .connection_timeout(Duration::from_secs(2))
                    .connect(self.nats.server_urls())
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match connected {
                Ok(client) => match client.subscribe(subject::USAGE_WILDCARD).await {
                    Ok(mut reports) => loop {
                        tokio::select! {
                            message = reports.next() => match message {
                                Some(message) => self.take(&message.subject, &message.payload),
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "usage: could not subscribe to verifier reports")
                    }
                },
                Err(error) => tracing::debug!(%error, "usage: NATS unavailable; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn take(&self, subject_name: &str, payload: &[u8]) {
        let Ok(report) = UsageReport::decode(payload) else {
            tracing::debug!(
                subject = subject_name,
                "usage: dropping a report that does not parse"
            );
            return;
        };
        if subject_name != subject::usage_subject(report.account_id) {
            tracing::debug!(
                subject = subject_name,
                "usage: dropping a report whose account does not match its subject"
            );
            return;
        }
        let verifier = bounded(&report.verifier, MAX_NAME_BYTES);
        let state = self.commands.state();
        let now = self.clock.now();
        for refused in report.refused.iter().take(MAX_ENTRIES_PER_REPORT) {
            let Some(token) = state
                .token(refused.token_id)
                .filter(|token| token.account_id == report.account_id)
            else {
                continue;
            };
            if refused.count == 0 || refused.last_at > now + CLOCK_SKEW {
                continue;
            }
            self.app.reuse.sighted(
                &self.commands,
                token,
                crate::leaks::Sighting {
                    seen_at: refused.last_at.min(now),
                    source_address: refused.last_from,
                    service: if verifier.trim().is_empty() { "verifier" } else { verifier.as_ref() },
                    slack: CLOCK_SKEW,
                },
            );
        }
        let entries = report.uses.len();
        let mut dropped: HashMap<Dropped, usize> = HashMap::new();
        let mut counted = 0usize;
        for used in merged(report.uses.into_iter().take(MAX_ENTRIES_PER_REPORT)) {
            let used = match believable(&state, report.account_id, used, now) {
                Ok(used) => used,
                Err(why) => {
                    *dropped.entry(why).or_default() += 1;
                    continue;
                }
            };
            counted += 1;
            self.book.record(
                used.token_id,
                used.first_at,
                used.last_at,
                used.last_from,
                used.count,
                Some(verifier.as_ref()),
            );
            let record = ActivityRecord::verifier_use(&verifier, report.account_id, &used);
            if let Err(error) = record.store(self.commands.store()) {
                tracing::warn!(%error, "usage: could not write the audit record of a verifier's report");
            }
        }
        if !dropped.is_empty() || entries > MAX_ENTRIES_PER_REPORT {
            tracing::warn!(
                verifier = %verifier,
                account_id = %report.account_id,
                entries,
                counted,
                ignored_beyond_limit = entries.saturating_sub(MAX_ENTRIES_PER_REPORT),
                unknown_token = dropped.get(&Dropped::UnknownToken).copied().unwrap_or(0),
                in_the_future = dropped.get(&Dropped::InTheFuture).copied().unwrap_or(0),
                not_live = dropped.get(&Dropped::NotLive).copied().unwrap_or(0),
                "usage: a verifier's report claimed uses latchd does not believe; they were dropped"
            );
        }
    }
}

/// One entry per token: a report that names a token twice claims the sum
/// (then capped), over the union of the times.
fn merged(uses: impl Iterator<Item = TokenUse>) -> Vec<TokenUse> {
    let mut order = Vec::new();
    let mut by_token: HashMap<_, TokenUse> = HashMap::new();
    for used in uses {
        match by_token.get_mut(&used.token_id) {
            Some(known) => {
                known.count = known.count.saturating_add(used.count);
                known.first_at = known.first_at.min(used.first_at);
                if used.last_at >= known.last_at {
                    known.last_at = used.last_at;
                    known.last_from = used.last_from.or(known.last_from);
                }
            }
            None => {
                order.push(used.token_id);
                by_token.insert(used.token_id, used);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_token.remove(&id))
        .collect()
}

/// The use as latchd records it (times clamped to now, count capped), or
/// why it is not believed.
fn believable(
    state: &State,
    account: latch_core::AccountId,
    mut used: TokenUse,
    now: DateTime<Utc>,
) -> Result<TokenUse, Dropped> {
    if used.count == 0 {
        return Err(Dropped::NoUses);
    }
    let token = state
        .token(used.token_id)
        .filter(|token| token.account_id == account)
        .ok_or(Dropped::UnknownToken)?;
    if used.first_at > used.last_at {
        std::mem::swap(&mut used.first_at, &mut used.last_at);
    }
    if used.last_at > now + CLOCK_SKEW {
        return Err(Dropped::InTheFuture);
    }
    used.last_at = used.last_at.min(now);
    used.first_at = used.first_at.min(used.last_at);
    if !was_live(token, used.last_at) {
        return Err(Dropped::NotLive);
    }
    used.first_at = used.first_at.max(token.issued_at).min(used.last_at);
    used.count = used.count.min(MAX_USES_PER_TOKEN);
    Ok(used)
}

/// Whether a verifier could have accepted the token at `at`: issued by
/// then, and not revoked or expired more than `CLOCK_SKEW` before.
fn was_live(token: &Token, at: DateTime<Utc>) -> bool {
    let issued = at + CLOCK_SKEW >= token.issued_at;
    let ended = [token.revoked.as_ref().map(|r| r.at), token.expires_at]
        .into_iter()
        .flatten()
        .min();
    issued && ended.is_none_or(|end| at <= end + CLOCK_SKEW)
}
