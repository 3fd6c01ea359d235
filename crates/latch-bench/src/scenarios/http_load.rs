//! `http-issue` and `introspect`: requests per second over HTTP to latchd's
//! router served in this process (token issues, introspections).

use std::time::{Duration, Instant};

use anyhow::Context;
use latch_bench::InProcessLatchd;
use latchd::HandlerConfig;
use serde_json::json;

use super::percentile;

/// What each request does.
#[derive(Clone, Copy)]
pub(crate) enum HttpWork {
    Issue,
    Introspect,
}

/// Serves latchd's router in-process and drives it with `concurrency`
/// blocking clients for `seconds`.
pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    work: HttpWork,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(seconds);
    let latch = runtime.block_on(InProcessLatchd::start(base, None, HandlerConfig::default()))?;
    let (url, admin) = (latch.url.clone(), latch.admin.clone());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, body: serde_json::Value| -> anyhow::Result<(u16, serde_json::Value)> {
        let mut response = agent
            .post(format!("{url}{path}"))
            .header("Authorization", format!("Bearer {admin}"))
            .send_json(&body)?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_json()?))
    };
    let (_, account) = post(
        "/v1/accounts",
        json!({ "name": "bench", "role": "auditor" }),
    )?;
    let account = account["id"].as_str().context("account id")?.to_owned();
    let (_, probe) = post(
        &format!("/v1/accounts/{account}/tokens"),
        json!({ "name": "probe" }),
    )?;
    let probe = probe["token"].as_str().context("token")?.to_owned();

    let started = Instant::now();
    let deadline = started + run_for;
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (agent, url, admin, account, probe) = (
                agent.clone(),
                url.clone(),
                admin.clone(),
                account.clone(),
                probe.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let at = Instant::now();
                    let (path, body) = match work {
                        HttpWork::Issue => (
                            format!("/v1/accounts/{account}/tokens"),
                            json!({ "name": "load" }),
                        ),
                        HttpWork::Introspect => {
                            ("/v1/introspect".to_owned(), json!({ "token": probe }))
                        }
                    };
                    let response = agent
                        .post(format!("{url}{path}"))
                        .header("Authorization", format!("Bearer {admin}"))
                        .send_json(&body)?;
                    anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
                    latencies.push(at.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = latch_bench::thread_latencies(threads)?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    runtime.block_on(latch.shutdown())?;
    println!(
        "{}",
        json!({
            "scenario": match work { HttpWork::Issue => "http-issue", HttpWork::Introspect => "introspect" },
            "concurrency": concurrency,
            "requests": latencies.len(),
            "seconds": elapsed.as_secs_f64(),
            "requests_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
            "latency_p50_us": percentile(&latencies, 0.50).as_micros() as u64,
            "latency_p99_us": percentile(&latencies, 0.99).as_micros() as u64,
            "setup": "latchd router in-process, blocking HTTP/1.1 keep-alive clients on threads, same 2 cores",
        })
    );
    Ok(())
}
