//! `cold-start`: a verifier's start with `tokens` tokens, from latchd's
//! snapshot and optionally by reading the whole stream.

use std::time::{Duration, Instant};

use anyhow::Context;
use latch_bench::{InProcessLatchd, submit_ok};
use latch_core::{AccountId, AccountName, Command, RoleName, TokenId, TokenSecret};
use latchd::HandlerConfig;
use serde_json::json;

use super::resident_bytes;

pub(crate) async fn run(
    base: &std::path::Path,
    tokens: usize,
    also_stream: bool,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    let nats = latch_testkit::NatsServer::start();
    let latch = InProcessLatchd::start(
        base,
        Some(&nats),
        HandlerConfig {
            snapshot_every: u64::MAX,
            ..HandlerConfig::default()
        },
    )
    .await?;
    let (handle, store, url) = (latch.handle.clone(), latch.store.clone(), latch.url.clone());
    let status = latch.relay.clone().context("relay")?;
    let verifier_account = AccountId::new();
    submit_ok(
        &handle,
        Command::CreateAccount {
            account_id: verifier_account,
            name: AccountName::parse("edge")?,
            role: RoleName::parse("verifier")?,
            description: String::new(),
        },
    )
    .await?;
    let secret = TokenSecret::generate(&mut rand::rng());
    submit_ok(
        &handle,
        Command::IssueToken {
            account_id: verifier_account,
            token_id: TokenId::new(),
            name: "v".into(),
            scopes: None,
            ttl: None,
            allowed_cidrs: Vec::new(),
            digest: secret.digest(),
        },
    )
    .await?;
    let verifier_token = secret.expose().to_owned();

    let building = Instant::now();
    latch_bench::populate(&handle, tokens, usize::MAX).await?;
    let built = building.elapsed();
    let head = store.head().position.get();
    let relaying = Instant::now();
    while status.published.load(Ordering::SeqCst) < head {
        anyhow::ensure!(
            relaying.elapsed() < Duration::from_secs(600),
            "the relay did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let relayed = relaying.elapsed();

    let before = resident_bytes();
    let started = Instant::now();
    let mut config =
        latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats.url()));
    config.snapshot = Some(latch_verify::SnapshotSource {
        latchd_url: url,
        token: verifier_token,
    });
    config.connect_timeout = Duration::from_secs(600);
    let verifier = latch_verify::Verifier::connect(config).await?;
    let from_snapshot = started.elapsed();
    let per_token = resident_bytes().saturating_sub(before) as f64 / tokens as f64;
    anyhow::ensure!(verifier.position().get() >= head, "verifier behind");

    let from_stream = if also_stream {
        let started = Instant::now();
        let mut config =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats.url()));
        config.connect_timeout = Duration::from_secs(600);
        latch_verify::Verifier::connect(config).await?;
        Some(started.elapsed().as_secs_f64())
    } else {
        None
    };
    println!(
        "{}",
        json!({
            "scenario": "cold-start", "tokens": tokens, "events": head,
            "build_seconds": built.as_secs_f64(), "relay_catch_up_seconds": relayed.as_secs_f64(),
            "verifier_cold_start_from_snapshot_seconds": from_snapshot.as_secs_f64(),
            "verifier_cold_start_from_stream_seconds": from_stream,
            "verifier_resident_bytes_per_token": per_token,
            "note": "snapshot = GET /v1/snapshot over loopback HTTP + postcard decode + binary search of the stream; RSS delta measured in this process",
        })
    );
    drop(latch);
    Ok(())
}
