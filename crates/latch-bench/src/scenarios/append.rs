//! `append`: durable appends per second through the command handler (one
//! event per command, fsync'd), with something publishing them to NATS
//! meanwhile or not (`relay`).

mod relay;

use std::time::{Duration, Instant};

use latch_bench::submit_ok;
use latch_core::{AccountId, AccountName, Command, RoleName};
use latchd::HandlerConfig;
use serde_json::json;

pub(crate) use relay::RelayMode;

use super::percentile;

fn create_account(n: u64) -> Command {
    Command::CreateAccount {
        account_id: AccountId::new(),
        name: AccountName::parse(&format!("svc-{n}-{}", AccountId::new())).expect("valid"),
        role: RoleName::parse("auditor").expect("valid"),
        description: "benchmark".into(),
    }
}

/// What `append` measured.
pub struct Appends {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    pub batches: u64,
    /// With a publisher: the log's head when the callers stopped, how far
    /// the publisher had got then, and how long it took to publish the rest.
    pub publisher: Option<(u64, u64, Duration)>,
}

impl Appends {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Durable appends through the command handler: `concurrency` callers,
/// one event (an account creation) per command, for `run_for`.
pub async fn measure_appends(
    base: &std::path::Path,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<Appends> {
    measure_appends_publishing(base, concurrency, run_for, RelayMode::None, true).await
}

/// Whether the handler indexes the log while appending (ADR 0026).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Indexing {
    On,
    Off,
}

/// `measure_appends` with `relay` publishing every event to NATS meanwhile.
pub async fn measure_appends_publishing(
    base: &std::path::Path,
    concurrency: usize,
    run_for: Duration,
    relay: RelayMode,
    index_log: bool,
) -> anyhow::Result<Appends> {
    let config = HandlerConfig {
        index_log,
        ..HandlerConfig::default()
    };
    let (_dir, store, handler) = latch_bench::bare_command_handler(base, config)?;
    let publisher = relay::start(relay, &store);
    if let Some(publisher) = &publisher {
        // Connected, and caught up with a one-event log, before timing starts.
        submit_ok(&handler.handle(), create_account(u64::MAX)).await?;
        let ready_by = Instant::now() + Duration::from_secs(30);
        while publisher.published() < 1 {
            anyhow::ensure!(Instant::now() < ready_by, "the publisher never published");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let handle = handler.handle();
    let batches_before = handle
        .metrics()
        .batches_written
        .load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + run_for;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = worker as u64 * 1_000_000_000;
                while Instant::now() < deadline {
                    let at = Instant::now();
                    submit_ok(&handle, create_account(n)).await?;
                    latencies.push(at.elapsed());
                    n += 1;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = latch_bench::task_latencies(tasks).await?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let batches = handle
        .metrics()
        .batches_written
        .load(std::sync::atomic::Ordering::Relaxed)
        - batches_before;
    let publishing = match &publisher {
        None => None,
        Some(publisher) => {
            let head = store.head().position.get();
            let at_stop = publisher.published();
            let draining = Instant::now();
            let drain_by = draining + Duration::from_secs(300);
            while publisher.published() < head {
                anyhow::ensure!(
                    Instant::now() < drain_by,
                    "the publisher fell behind for good"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Some((head, at_stop, draining.elapsed()))
        }
    };
    handler.shutdown().await;
    drop(publisher);
    Ok(Appends {
        latencies,
        elapsed,
        batches,
        publisher: publishing,
    })
}

pub(crate) async fn run(
    base: &std::path::Path,
    concurrency: usize,
    run_for: Duration,
    relay: RelayMode,
    index_log: bool,
) -> anyhow::Result<()> {
    let appends = measure_appends_publishing(base, concurrency, run_for, relay, index_log).await?;
    let count = appends.latencies.len();
    let seconds = appends.elapsed.as_secs_f64();
    let publisher = appends.publisher.map(|(head, at_stop, drained_in)| {
        json!({
            "head_when_callers_stopped": head,
            "published_when_callers_stopped": at_stop,
            "published_per_second_while_appending": at_stop.saturating_sub(1) as f64 / seconds,
            "caught_up_after_ms": drained_in.as_millis() as u64,
            "published_per_second_after": (head - at_stop) as f64 / drained_in.as_secs_f64().max(1e-6),
        })
    });
    println!(
        "{}",
        json!({
            "scenario": "append",
            "relay": relay.name(),
            "index": if index_log { "on" } else { "off" },
            "concurrency": concurrency,
            "commands": count,
            "seconds": appends.elapsed.as_secs_f64(),
            "appends_per_second": appends.per_second(),
            "synced_batches": appends.batches,
            "commands_per_batch": count as f64 / appends.batches.max(1) as f64,
            "latency_p50_us": percentile(&appends.latencies, 0.50).as_micros() as u64,
            "latency_p99_us": percentile(&appends.latencies, 0.99).as_micros() as u64,
            "durability": "one synced RocksDB WriteBatch per group commit",
            "publisher": publisher,
        })
    );
    Ok(())
}
