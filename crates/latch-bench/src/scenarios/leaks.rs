//! `leaks`: leak reports (issue 21). Two parts, same run:
//!
//! 1. **propagation**: a live token that `verifiers` verifiers (following
//!    latchd, checking its signatures) accept is reported leaked with
//!    `POST /v1/leaks`; the time from sending the report until every
//!    verifier refuses it, `reports` times: p50/p99.
//! 2. **bulk**: one report of `batch` live tokens (`POST /v1/leaks`): the
//!    time latchd takes to answer (format checks, digests, one decision
//!    revoking them all, one durable append), `rounds` times.

use std::time::{Duration, Instant};

use anyhow::Context;
use latch_core::{Command, Permission, Rejection, TokenId, TokenSecret};
use serde_json::{Value, json};

use super::percentile;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn report(agent: &ureq::Agent, latchd: &latch_bench::InProcessLatchd, tokens: &[String]) -> anyhow::Result<Value> {
    let body = json!({
        "scanner": "bench",
        "tokens": tokens.iter().map(|t| json!({"token": t, "location": "bench"})).collect::<Vec<_>>(),
    });
    let mut response = agent
        .post(format!("{}/v1/leaks", latchd.url))
        .header("Authorization", format!("Bearer {}", latchd.admin))
        .send_json(&body)?;
    let status = response.status().as_u16();
    let answer: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    anyhow::ensure!(status == 200, "POST /v1/leaks: {status} {answer}");
    Ok(answer)
}

/// Issues `count` tokens of `account`; their secrets.
async fn issue(latchd: &latch_bench::InProcessLatchd, account: latch_core::AccountId, count: usize) -> anyhow::Result<Vec<String>> {
    let mut secrets = Vec::with_capacity(count);
    for _ in 0..count {
        let secret = TokenSecret::generate(&mut rand::rng());
        latch_bench::submit_ok(
            &latchd.handle,
            Command::IssueToken {
                account_id: account,
                token_id: TokenId::new(),
                name: "leak-bench".into(),
                scopes: None,
                ttl: None,
                allowed_cidrs: Vec::new(),
                digest: secret.digest(),
            },
        )
        .await?;
        secrets.push(secret.expose().to_owned());
    }
    Ok(secrets)
}

pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    verifier_count: usize,
    reports: usize,
    batch: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let latchd = runtime.block_on(latch_bench::InProcessLatchd::with_nats(base, &nats))?;
    let account = latch_core::AccountId::new();
    runtime.block_on(latch_bench::submit_ok(
        &latchd.handle,
        Command::CreateAccount {
            account_id: account,
            name: latch_core::AccountName::parse("leak-bench")?,
            role: latch_core::RoleName::parse("auditor")?,
            description: String::new(),
        },
    ))?;
    let agent = agent();

    // 1. propagation
    let verifiers = runtime.block_on(async {
        let mut verifiers = Vec::with_capacity(verifier_count);
        for _ in 0..verifier_count {
            let mut config = latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats.url()));
            config.trusted_keys = latch_bus::TrustedKeys::new([latchd.public_key.clone()]);
            config.usage_report_every = None;
            verifiers.push(latch_verify::Verifier::connect(config).await?);
        }
        anyhow::Ok(verifiers)
    })?;
    let read = Permission::parse("accounts:read")?;
    let mut all = Vec::with_capacity(reports);
    for _ in 0..reports {
        let token = runtime.block_on(issue(&latchd, account, 1))?.remove(0);
        let ready_by = Instant::now() + Duration::from_secs(30);
        while !verifiers.iter().all(|v| v.verify(&token, &read).is_ok()) {
            anyhow::ensure!(Instant::now() < ready_by, "the verifiers never accepted the token");
            std::thread::sleep(Duration::from_millis(1));
        }
        let sent = Instant::now();
        report(&agent, &latchd, std::slice::from_ref(&token))?;
        let refused_by = Instant::now() + Duration::from_secs(30);
        while !verifiers
            .iter()
            .all(|v| v.verify(&token, &read) == Err(latch_verify::Denial::Rejected(Rejection::Revoked)))
        {
            anyhow::ensure!(Instant::now() < refused_by, "a verifier never refused the leaked token");
            std::hint::spin_loop();
        }
        all.push(sent.elapsed());
    }
    all.sort_unstable();
    println!(
        "{}",
        json!({
            "scenario": "leaks",
            "part": "propagation",
            "verifiers": verifier_count,
            "reports": reports,
            "report_to_all_verifiers_refuse_p50_ms": percentile(&all, 0.50).as_secs_f64() * 1e3,
            "report_to_all_verifiers_refuse_p99_ms": percentile(&all, 0.99).as_secs_f64() * 1e3,
            "max_ms": all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            "setup": "one latchd in this process (relay to a 1-server nats-server), verifiers in this process checking latchd's signatures; POST /v1/leaks over loopback HTTP; all on the same cores",
        })
    );

    // 2. bulk
    let mut answers = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let tokens = runtime.block_on(issue(&latchd, account, batch))?;
        let head = latchd.store.head().position;
        let started = Instant::now();
        let answer = report(&agent, &latchd, &tokens)?;
        answers.push(started.elapsed());
        anyhow::ensure!(answer["well_formed"] == batch, "{answer}");
        let appended = latchd.store.head().position.get() - head.get();
        anyhow::ensure!(appended as usize >= 2 * batch, "the report appended {appended} events");
    }
    answers.sort_unstable();
    println!(
        "{}",
        json!({
            "scenario": "leaks",
            "part": "bulk",
            "tokens_per_report": batch,
            "rounds": rounds,
            "answer_p50_ms": percentile(&answers, 0.50).as_secs_f64() * 1e3,
            "answer_max_ms": answers.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            "events_per_report": 2 * batch,
        })
    );
    drop(verifiers);
    runtime.block_on(latchd.shutdown()).context("shutting latchd down")?;
    Ok(())
}
