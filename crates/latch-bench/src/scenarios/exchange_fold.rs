//! `latch-bench exchange-fold`: what folding exchanged tokens costs the
//! state, in latchd (every exchange) and in every replay of the log.
//!
//! `events` tokens issued by OIDC exchange are folded with `evolve`, one
//! every `every_ms` of log time, each for an identity token valid
//! `lifetime_secs` (its `jti` is kept and refused until then, so about
//! `lifetime_secs * 1000 / every_ms` entries are live at once); then as
//! many tokens issued without an exchange, for reference. Only the fold is
//! timed: the events are built beforehand.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use latch_core::{
    AccountId, Actor, Event, EventEnvelope, EventId, OidcExchange, PermissionSet, Position,
    RecordedEvent, State, TokenDigest, TokenId, TrustPolicyId, evolve,
};
use serde_json::json;

fn issued(position: u64, at: DateTime<Utc>, account: AccountId, oidc: Option<OidcExchange>, scopes: &PermissionSet) -> RecordedEvent {
    let token_id = TokenId::new();
    RecordedEvent {
        position: Position::new(position),
        version: 1,
        envelope: EventEnvelope {
            id: EventId::new(),
            at,
            actor: Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event: Event::TokenIssued {
                token_id,
                account_id: account,
                name: format!("t{position}"),
                scopes: scopes.clone(),
                digest: TokenDigest::of(&format!("secret {position}")),
                expires_at: Some(at + TimeDelta::minutes(15)),
                allowed_cidrs: Vec::new(),
                rotated_from: None,
                parent: None,
                oidc,
            },
        },
    }
}

/// Folds `events` into a fresh state; the seconds it took.
fn fold(events: Vec<RecordedEvent>) -> f64 {
    let mut state = State::new();
    let started = Instant::now();
    for event in &events {
        evolve(&mut state, event);
    }
    let took = started.elapsed().as_secs_f64();
    drop(state);
    took
}

pub(crate) fn run(events: u64, lifetime_secs: u64, every_ms: u64) -> anyhow::Result<()> {
    anyhow::ensure!(every_ms > 0, "--every-ms must be at least 1");
    let account = AccountId::new();
    let policy = TrustPolicyId::new();
    let scopes = PermissionSet::parse(["certificates:issue"])?;
    let start = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    let at = |n: u64| start + TimeDelta::milliseconds((n * every_ms) as i64);
    let exchanged = (1..=events)
        .map(|n| {
            let oidc = OidcExchange {
                policy_id: policy,
                issuer: "https://token.actions.githubusercontent.com".to_owned(),
                subject: "repo:acme/deploy:ref:refs/heads/main".to_owned(),
                jti: format!("{n:032x}"),
                token_expires_at: at(n) + TimeDelta::seconds(lifetime_secs as i64),
            };
            issued(n, at(n), account, Some(oidc), &scopes)
        })
        .collect();
    let plain = (1..=events).map(|n| issued(n, at(n), account, None, &scopes)).collect();
    let exchanged_seconds = fold(exchanged);
    let plain_seconds = fold(plain);
    println!(
        "{}",
        json!({
            "scenario": "exchange-fold",
            "events": events,
            "identity_token_lifetime_seconds": lifetime_secs,
            "log_ms_between_exchanges": every_ms,
            "live_jtis_at_most": (lifetime_secs * 1000 / every_ms).min(events),
            "exchanged": { "seconds": exchanged_seconds, "per_second": events as f64 / exchanged_seconds },
            "plain": { "seconds": plain_seconds, "per_second": events as f64 / plain_seconds },
        })
    );
    Ok(())
}
