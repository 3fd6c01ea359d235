//! `latch-bench commands`: token issues per second over HTTP and over NATS
//! (latchd's command service), side by side against one latchd in this
//! process, at the same concurrency.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use latch_bench::InProcessLatchd;
use serde_json::json;

pub fn run(
    runtime: &tokio::runtime::Runtime,
    base: &Path,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let latch = runtime.block_on(InProcessLatchd::with_nats(base, &nats))?;
    // latchd's own NATS command service runs in the node (`latchd::Node`).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut created = agent
        .post(format!("{}/v1/accounts", latch.url))
        .header("Authorization", format!("Bearer {}", latch.admin))
        .send_json(json!({ "name": "bench", "role": "auditor" }))?;
    let account: serde_json::Value = created.body_mut().read_json()?;
    let account = account["id"].as_str().context("account id")?.to_owned();

    let http = over_http(&agent, &latch, &account, concurrency, run_for)?;
    let nats_run = runtime.block_on(over_nats(
        &nats.url(),
        &latch.admin,
        &account,
        concurrency,
        run_for,
    ))?;
    for (transport, mut latencies, elapsed) in
        [("http", http.0, http.1), ("nats", nats_run.0, nats_run.1)]
    {
        latencies.sort_unstable();
        println!(
            "{}",
            json!({
                "scenario": "commands",
                "transport": transport,
                "command": "token.issue",
                "concurrency": concurrency,
                "requests": latencies.len(),
                "seconds": elapsed.as_secs_f64(),
                "requests_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
                "latency_p50_us": super::percentile(&latencies, 0.50).as_micros() as u64,
                "latency_p99_us": super::percentile(&latencies, 0.99).as_micros() as u64,
                "setup": match transport {
                    "http" => "blocking HTTP/1.1 keep-alive clients, one thread each",
                    _ => "one async NATS connection, one task per concurrent request, through nats-server",
                },
            })
        );
    }
    runtime.block_on(latch.shutdown())?;
    Ok(())
}

type Run = (Vec<Duration>, Duration);

fn over_http(
    agent: &ureq::Agent,
    latch: &InProcessLatchd,
    account: &str,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<Run> {
    let path = format!("{}/v1/accounts/{account}/tokens", latch.url);
    let started = Instant::now();
    let deadline = started + run_for;
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (agent, path, admin) = (agent.clone(), path.clone(), latch.admin.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let at = Instant::now();
                    let response = agent
                        .post(&path)
                        .header("Authorization", format!("Bearer {admin}"))
                        .send_json(json!({ "name": "load" }))?;
                    anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
                    latencies.push(at.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let latencies = latch_bench::thread_latencies(threads)?;
    Ok((latencies, started.elapsed()))
}

async fn over_nats(
    url: &str,
    admin: &str,
    account: &str,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<Run> {
    let client = async_nats::connect(url).await?;
    // Wait for the command service to answer before timing it.
    let ping_until = Instant::now() + Duration::from_secs(10);
    while client
        .request("$SRV.PING.latch", Vec::new().into())
        .await
        .is_err()
    {
        anyhow::ensure!(
            Instant::now() < ping_until,
            "the command service did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = bytes::Bytes::from(serde_json::to_vec(
        &json!({ "account_id": account, "name": "load" }),
    )?);
    let started = Instant::now();
    let deadline = started + run_for;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, body) = (client.clone(), body.clone());
            let auth = format!("Bearer {admin}");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Authorization", auth.as_str());
                    let at = Instant::now();
                    let reply = client
                        .request_with_headers("latch.cmd.token.issue", headers, body.clone())
                        .await?;
                    let status = reply
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Latch-Status"))
                        .map(|v| v.as_str().to_owned());
                    anyhow::ensure!(status.as_deref() == Some("201"), "reply status {status:?}");
                    latencies.push(at.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let latencies = latch_bench::task_latencies(tasks).await?;
    Ok((latencies, started.elapsed()))
}
