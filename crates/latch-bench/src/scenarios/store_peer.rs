//! `latch-bench store-peer`: the same durable append workload on Latch's
//! log (through the command handler, group commit), on a Postgres events
//! table the way cqrs-es/postgres-es stores events (one transaction an
//! event, `synchronous_commit` on), and on a JetStream stream (file storage,
//! each publish awaiting its ack). Events per second for each, same
//! machine, same run.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A token.issued event as latchd stores it: what each store appends.
fn payload() -> String {
    json!({
        "id": "01a22000-0000-7000-8000-000000000000",
        "at": "2026-11-28T12:00:00.123456789Z",
        "actor": {"token": {"account_id": "01a22000-0000-7000-8000-000000000001", "token_id": "01a22000-0000-7000-8000-000000000002"}},
        "type": "token.issued",
        "data": {
            "token_id": "01a22000-0000-7000-8000-000000000003",
            "account_id": "01a22000-0000-7000-8000-000000000004",
            "name": "deploy",
            "scopes": ["certificates:issue"],
            "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "expires_at": "2026-12-28T12:00:00Z"
        }
    })
    .to_string()
}

pub async fn run(
    base: &Path,
    concurrency: usize,
    run_for: Duration,
    postgres: &str,
) -> anyhow::Result<()> {
    let ours = super::append::measure_appends(base, concurrency, run_for).await?;
    let latch = figures(&ours.latencies, ours.elapsed);
    let postgres_figures = match on_postgres(postgres, concurrency, run_for).await {
        Ok((latencies, elapsed)) => figures(&latencies, elapsed),
        Err(error) => {
            eprintln!("store-peer: skipping Postgres ({postgres}): {error}");
            json!({ "skipped": format!("PostgreSQL not reachable at {postgres:?}: {error}") })
        }
    };
    let nats = latch_testkit::NatsServer::start();
    let (latencies, elapsed) = on_jetstream(&nats.url(), concurrency, run_for).await?;
    let jetstream = figures(&latencies, elapsed);
    let ratio = |other: &Value| {
        other["events_per_second"]
            .as_f64()
            .map(|theirs| latch["events_per_second"].as_f64().unwrap_or(0.0) / theirs)
    };
    println!(
        "{}",
        json!({
            "scenario": "store-peer",
            "concurrency": concurrency,
            "seconds_each": run_for.as_secs_f64(),
            "latch": latch,
            "postgres": postgres_figures,
            "jetstream": jetstream,
            "latch_to_postgres": ratio(&postgres_figures),
            "latch_to_jetstream": ratio(&jetstream),
            "setup": {
                "latch": "command handler on RocksDB, one synced WriteBatch per group commit, each command one event",
                "postgres": "cqrs-es events table, one INSERT a transaction, synchronous_commit on, one connection a caller",
                "jetstream": "file-storage stream on a local nats-server, each publish awaits its ack, one shared connection; nats-server acks before fsync (it syncs every 2 minutes by default), so this is not the same durability",
            },
        })
    );
    Ok(())
}

fn figures(latencies: &[Duration], elapsed: Duration) -> Value {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    json!({
        "events": sorted.len(),
        "events_per_second": sorted.len() as f64 / elapsed.as_secs_f64(),
        "latency_p50_us": super::percentile(&sorted, 0.50).as_micros() as u64,
        "latency_p99_us": super::percentile(&sorted, 0.99).as_micros() as u64,
    })
}

async fn on_postgres(
    config: &str,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let table = format!("latch_bench_events_{}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (
                 aggregate_type text NOT NULL,
                 aggregate_id text NOT NULL,
                 sequence bigint CHECK (sequence >= 0) NOT NULL,
                 event_type text NOT NULL,
                 event_version text NOT NULL,
                 payload json NOT NULL,
                 metadata json NOT NULL,
                 PRIMARY KEY (aggregate_type, aggregate_id, sequence)
             );"
        ))
        .await?;
    let insert = format!(
        "INSERT INTO {table} (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('token', $1, $2, 'token.issued', '1', $3::text::json, '{{}}'::json)"
    );
    let payload = payload();
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let (insert, payload) = (insert.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(&insert).await?;
            let aggregate = format!("token-{worker}");
            let mut latencies = Vec::new();
            let mut sequence = 1i64;
            while Instant::now() < deadline {
                let at = Instant::now();
                client
                    .execute(&statement, &[&aggregate, &sequence, &payload])
                    .await?;
                latencies.push(at.elapsed());
                sequence += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let latencies = latch_bench::task_latencies(tasks).await?;
    let elapsed = started.elapsed();
    admin.batch_execute(&format!("DROP TABLE {table}")).await?;
    Ok((latencies, elapsed))
}

async fn on_jetstream(
    url: &str,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let client = async_nats::connect(url).await?;
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let payload = bytes::Bytes::from(payload());
    let started = Instant::now();
    let deadline = started + run_for;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (jetstream, payload) = (jetstream.clone(), payload.clone());
            tokio::spawn(async move {
                let subject = format!("bench.token.{worker}");
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let at = Instant::now();
                    jetstream
                        .publish(subject.clone(), payload.clone())
                        .await?
                        .await?;
                    latencies.push(at.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let latencies = latch_bench::task_latencies(tasks).await?;
    Ok((latencies, started.elapsed()))
}
