//! `propagation`: revoke-to-reject latency at N verifiers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_bench::submit_ok;
use latch_core::{
    AccountId, AccountName, Command, Permission, Rejection, RoleName, TokenId, TokenSecret,
};
use latchd::{HandlerConfig, SystemClock};
use serde_json::json;

use super::percentile;

/// Whether the propagation scenario's verifiers check latchd's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Signing {
    /// Given the relay's public key: every event is hashed, its signature
    /// verified and its chain checked before it is applied.
    On,
    /// No trusted keys: the verifier applies what the broker delivers.
    Off,
}

/// How the propagation scenario's verifiers follow new events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FollowMode {
    Tail,
    Stream,
}

/// Starts a nats-server, latchd's command handler and relay in this
/// process, and `verifier_count` verifiers (each its own NATS connection);
/// then revokes tokens one at a time and times, from the moment the revoke
/// command is durable, until each verifier refuses the token.
pub(crate) async fn run(
    base: &std::path::Path,
    verifier_count: usize,
    revocations: usize,
    signing: Signing,
    follow: FollowMode,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let (_dir, store, handler) = latch_bench::bare_command_handler(base, HandlerConfig::default())?;
    let (_stop_relay, shutdown) = tokio::sync::watch::channel(false);
    let keyring = Arc::new(latchd::Keyring::ephemeral());
    let public_key = keyring.current().public_key();
    let relay = latchd::Relay {
        store,
        nats: latch_bus::NatsConnection::new(nats.url()),
        clock: Arc::new(SystemClock),
        status: Arc::new(latchd::RelayStatus::default()),
        keyring,
        publishes_events: true,
    };
    tokio::spawn(relay.run(shutdown));
    let handle = handler.handle();

    let account_id = AccountId::new();
    submit_ok(
        &handle,
        Command::CreateAccount {
            account_id,
            name: AccountName::parse("bench").expect("valid"),
            role: RoleName::parse("auditor").expect("valid"),
            description: String::new(),
        },
    )
    .await?;
    let mut tokens = Vec::with_capacity(revocations);
    for _ in 0..revocations {
        let token_id = TokenId::new();
        let secret = TokenSecret::generate(&mut rand::rng());
        submit_ok(
            &handle,
            Command::IssueToken {
                account_id,
                token_id,
                name: "p".into(),
                scopes: None,
                ttl: None,
                allowed_cidrs: Vec::new(),
                digest: secret.digest(),
            },
        )
        .await?;
        tokens.push((token_id, secret.expose().to_owned()));
    }
    let mut verifiers = Vec::with_capacity(verifier_count);
    for _ in 0..verifier_count {
        let mut config =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats.url()));
        if signing == Signing::On {
            config.trusted_keys = latch_bus::TrustedKeys::new([public_key.clone()]);
        }
        config.follow = match follow {
            FollowMode::Tail => latch_verify::Follow::LiveTail,
            FollowMode::Stream => latch_verify::Follow::Stream,
        };
        verifiers.push(latch_verify::Verifier::connect(config).await?);
    }
    let read = Permission::parse("accounts:read")?;
    let mut latencies = Vec::with_capacity(revocations * verifier_count);
    let mut other_refusals = 0u64;
    // The same, timed from the revoke's submission (so including the group
    // commit and its fsync): the moment the submitter learns the revoke is
    // durable comes late when the verifiers keep this process's threads
    // busy, and then "from durable" reads shorter than it was.
    let mut from_submit = Vec::with_capacity(revocations * verifier_count);
    for (token_id, secret) in &tokens {
        // Under load a verifier may be briefly stale (it refuses everything
        // until its next heartbeat): wait until every one accepts the token.
        let ready_by = Instant::now() + Duration::from_secs(30);
        loop {
            let refusals: Vec<_> = verifiers
                .iter()
                .filter_map(|v| v.verify(secret, &read).err())
                .collect();
            if refusals.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < ready_by,
                "token not accepted before revocation: {:?}",
                refusals.first()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let submitted_at = Instant::now();
        submit_ok(
            &handle,
            Command::RevokeToken {
                token_id: *token_id,
                reason: "bench".into(),
            },
        )
        .await?;
        let revoked_at = Instant::now();
        let mut pending: Vec<usize> = (0..verifier_count).collect();
        while !pending.is_empty() {
            // Only a refusal for the revocation counts: a verifier that is
            // momentarily stale refuses too, without having seen it.
            pending.retain(|&i| match verifiers[i].verify(secret, &read) {
                Err(latch_verify::Denial::Rejected(Rejection::Revoked)) => {
                    latencies.push(revoked_at.elapsed());
                    from_submit.push(submitted_at.elapsed());
                    false
                }
                Err(_) => {
                    other_refusals += 1;
                    true
                }
                Ok(_) => true,
            });
            anyhow::ensure!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "a verifier never saw the revocation"
            );
            tokio::task::yield_now().await;
        }
    }
    latencies.sort_unstable();
    from_submit.sort_unstable();
    handler.shutdown().await;
    let total = |stat: fn(latch_verify::VerifierStats) -> u64| {
        verifiers.iter().map(|v| stat(v.stats())).sum::<u64>()
    };
    let applied = total(|s| s.events_applied);
    let rejected = total(|s| s.rejected);
    // "on" must mean every event was checked and none refused.
    anyhow::ensure!(rejected == 0, "verifiers refused {rejected} genuine events");
    println!(
        "{}",
        json!({
            "scenario": "propagation",
            "signing": match signing { Signing::On => "on", Signing::Off => "off" },
            "follow": match follow { FollowMode::Tail => "tail", FollowMode::Stream => "stream" },
            "verifiers": verifier_count,
            "revocations": revocations,
            "samples": latencies.len(),
            "p50_us": percentile(&latencies, 0.50).as_micros() as u64,
            "p99_us": percentile(&latencies, 0.99).as_micros() as u64,
            "max_us": latencies.last().copied().unwrap_or_default().as_micros() as u64,
            "from_submit_p50_us": percentile(&from_submit, 0.50).as_micros() as u64,
            "from_submit_p99_us": percentile(&from_submit, 0.99).as_micros() as u64,
            "from_submit_max_us": from_submit.last().copied().unwrap_or_default().as_micros() as u64,
            "events_applied": applied,
            "events_rejected": rejected,
            "polls_refused_for_another_reason": other_refusals,
            "measured_from": "revoke command durable (fsync'd) to the verifier refusing the token",
            "path": match signing {
                Signing::On => "RocksDB log -> relay (signs each batch) -> JetStream publish (nats-server, loopback) -> core NATS subscription per verifier (live tail) -> FeedChain::accept (SHA-256, Merkle proof, Ed25519 verify once per batch, chain) -> apply",
                Signing::Off => "RocksDB log -> relay (signs each batch) -> JetStream publish (nats-server, loopback) -> core NATS subscription per verifier (live tail) -> decode (no checks) -> apply",
            },
        })
    );
    Ok(())
}
