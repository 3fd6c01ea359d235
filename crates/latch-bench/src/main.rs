//! `latch-bench`: prints one JSON object per scenario with its figures and
//! settings. Run in release mode:
//!
//! ```text
//! cargo run --release -p latch-bench -- append
//! cargo run --release -p latch-bench -- append --concurrency 64 --relay none,relay,unsigned,signed
//! cargo run --release -p latch-bench -- propagation --verifiers 1,10,50 --signing on,off
//! cargo run --release -p latch-bench -- feed-verify --events 1000000
//! cargo run --release -p latch-bench -- replay --events 1000000
//! cargo run --release -p latch-bench -- audit --events 1000000
//! cargo run --release -p latch-bench -- commands --concurrency 1,8,64
//! cargo run --release -p latch-bench -- store-peer --concurrency 64
//! cargo run --release -p latch-bench -- http-issue --concurrency 32
//! cargo run --release -p latch-bench -- introspect --concurrency 32
//! ```
//!
//! The HTTP scenarios serve latchd's real router in this process on a
//! loopback port and drive it with blocking HTTP clients on threads: client
//! and server share the machine's cores, as a co-located pipeline would.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
mod append_relay;
mod audit_scenario;
mod commands_scenario;
mod envelope_decoding;
mod feed_verify;
mod store_peer_scenario;

use latch_bench::{InProcessLatchd, submit_ok};

/// With `--features mimalloc`, the allocator latchd and latch use (ADR 0017),
/// for latchd's scenarios; without, the system allocator a service
/// embedding the verifier most likely has.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use latch_core::*;
use latch_store::EventStore;
use latchd::{CommandHandler, HandlerConfig, SystemClock, rebuild};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Latch benchmarks; each scenario prints one JSON object per measurement")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// Where to put the temporary stores (default: the system temp dir).
    /// Put it on the disk you want to measure: fsync cost is the point.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable appends per second through the command handler (one event
    /// per command, fsync'd), at each concurrency.
    Append {
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        concurrency: Vec<usize>,
        /// How long to run each concurrency.
        #[arg(long, default_value = "10")]
        seconds: u64,
        /// What publishes the appended events to NATS meanwhile, each in turn
        /// (same run): `none`; `relay`, latchd's relay (it signs every
        /// event); `unsigned` / `signed`, this benchmark's copy of the
        /// relay's publish loop without / with `latch_bus::sign_event`, to
        /// isolate what signing costs.
        #[arg(long, value_delimiter = ',', default_value = "none")]
        relay: Vec<append_relay::RelayMode>,
    },
    /// Events per second to rebuild state from a log of `events` events,
    /// and restart-to-ready time with a snapshot.
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// Investigations over a log of `events` events, as `latch audit
    /// --data-dir` runs them: state at a moment, who-can, a token's story,
    /// chain verification, export and export verification.
    Audit {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Keep the data directory (and print where it is) to run `latch
        /// audit` against it by hand.
        #[arg(long)]
        keep: bool,
    },
    /// Token issues per second over HTTP and over NATS (latchd's command
    /// service, `latch.cmd.token.issue`), side by side.
    Commands {
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        concurrency: Vec<usize>,
        #[arg(long, default_value = "10")]
        seconds: u64,
    },
    /// The same append workload (one event per command, synced, from
    /// `concurrency` callers) on Latch's log, on a Postgres events table as
    /// cqrs-es/postgres-es stores events, and on a JetStream stream with
    /// synchronous publishes.
    StorePeer {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value = "10")]
        seconds: u64,
        #[arg(
            long,
            env = "LATCH_BENCH_POSTGRES",
            default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
        )]
        postgres: String,
    },
    /// Token issues per second over HTTP (POST /v1/accounts/{id}/tokens).
    HttpIssue {
        #[arg(long, value_delimiter = ',', default_value = "32")]
        concurrency: Vec<usize>,
        #[arg(long, default_value = "10")]
        seconds: u64,
    },
    /// Revoke-to-reject latency at N verifiers: after each revocation is
    /// durable, how long until each verifier refuses the token.
    Propagation {
        #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
        verifiers: Vec<usize>,
        #[arg(long, default_value_t = 500)]
        revocations: usize,
        /// Run each verifier count with verifiers that check latchd's
        /// signatures (`on`: given the relay's public key) and with verifiers
        /// that check nothing (`off`), one after the other, same run.
        #[arg(long, value_delimiter = ',', default_value = "on,off")]
        signing: Vec<Signing>,
        /// How the verifiers follow new events: `tail` (a core NATS
        /// subscription, the stream only to catch up; the default) and/or
        /// `stream` (a JetStream ordered consumer each, as before).
        #[arg(long, value_delimiter = ',', default_value = "tail")]
        follow: Vec<FollowMode>,
    },
    /// Events per second a verifier can verify and fold while catching up:
    /// `events` signed event messages built in memory as the relay builds
    /// them (from a real log), then `FeedChain::accept` + `VerifierView::apply`
    /// over all of them, and each part alone. No NATS.
    FeedVerify {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// Local verification cost on one core with `tokens` tokens loaded, and
    /// the projection's resident bytes per token.
    Verify {
        #[arg(long, default_value_t = 1_000_000)]
        tokens: usize,
        #[arg(long, default_value_t = 2_000_000)]
        checks: usize,
    },
    /// Revoke through latchd's HTTP API, then time until each of N HTTP
    /// services guarded by `RequirePermission` answers 401.
    PropagationHttp {
        #[arg(long, default_value_t = 10)]
        services: usize,
        #[arg(long, default_value_t = 200)]
        revocations: usize,
        /// Run each service as a process of this binary (the example
        /// `certificate-service`). Default: the one built next to this
        /// benchmark if there is one, else services in this process.
        #[arg(long)]
        example_binary: Option<PathBuf>,
    },
    /// Verifier cold start with `tokens` tokens: from latchd's snapshot,
    /// and optionally by reading the whole stream; resident bytes per token.
    ColdStart {
        #[arg(long, default_value_t = 1_000_000)]
        tokens: usize,
        /// Also time a verifier that reads the whole stream.
        #[arg(long)]
        also_stream: bool,
    },
    /// Introspection requests per second over HTTP (POST /v1/introspect).
    Introspect {
        #[arg(long, value_delimiter = ',', default_value = "32")]
        concurrency: Vec<usize>,
        #[arg(long, default_value = "10")]
        seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!(
        "latch-bench: allocator {}",
        if cfg!(feature = "mimalloc") {
            "mimalloc (as latchd)"
        } else {
            "system (as a service with the verifier)"
        }
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let base = args.dir.unwrap_or_else(std::env::temp_dir);
    match args.scenario {
        Scenario::Append {
            concurrency,
            seconds,
            relay,
        } => {
            for c in concurrency {
                for &mode in &relay {
                    runtime.block_on(append(&base, c, Duration::from_secs(seconds), mode))?;
                }
            }
        }
        Scenario::FeedVerify { events } => runtime.block_on(feed_verify::run(&base, events))?,
        Scenario::Replay { events } => runtime.block_on(replay(&base, events))?,
        Scenario::Commands {
            concurrency,
            seconds,
        } => {
            for c in concurrency {
                commands_scenario::run(&runtime, &base, c, Duration::from_secs(seconds))?;
            }
        }
        Scenario::StorePeer {
            concurrency,
            seconds,
            postgres,
        } => runtime.block_on(store_peer_scenario::run(
            &base,
            concurrency,
            Duration::from_secs(seconds),
            &postgres,
        ))?,
        Scenario::Audit { events, keep } => {
            runtime.block_on(audit_scenario::run(&base, events, keep))?
        }
        Scenario::HttpIssue {
            concurrency,
            seconds,
        } => {
            for c in concurrency {
                http_load(
                    &runtime,
                    &base,
                    HttpWork::Issue,
                    c,
                    Duration::from_secs(seconds),
                )?;
            }
        }
        Scenario::Propagation {
            verifiers,
            revocations,
            signing,
            follow,
        } => {
            for n in verifiers {
                for &mode in &signing {
                    for &how in &follow {
                        runtime.block_on(propagation(&base, n, revocations, mode, how))?;
                    }
                }
            }
        }
        Scenario::Verify { tokens, checks } => verify_bench(tokens, checks)?,
        Scenario::ColdStart {
            tokens,
            also_stream,
        } => runtime.block_on(cold_start(&base, tokens, also_stream))?,
        Scenario::PropagationHttp {
            services,
            revocations,
            example_binary,
        } => {
            let example_binary = example_binary.or_else(|| {
                let beside = std::env::current_exe()
                    .ok()?
                    .with_file_name("certificate-service");
                beside.exists().then_some(beside)
            });
            propagation_http(
                &runtime,
                &base,
                services,
                revocations,
                example_binary.as_deref(),
            )?
        }
        Scenario::Introspect {
            concurrency,
            seconds,
        } => {
            for c in concurrency {
                http_load(
                    &runtime,
                    &base,
                    HttpWork::Introspect,
                    c,
                    Duration::from_secs(seconds),
                )?;
            }
        }
    }
    Ok(())
}

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
    measure_appends_publishing(base, concurrency, run_for, append_relay::RelayMode::None).await
}

/// `measure_appends` with `relay` publishing every event to NATS meanwhile.
pub async fn measure_appends_publishing(
    base: &std::path::Path,
    concurrency: usize,
    run_for: Duration,
    relay: append_relay::RelayMode,
) -> anyhow::Result<Appends> {
    let dir = tempfile::tempdir_in(base)?;
    let store = Arc::new(EventStore::open(dir.path())?);
    let (handler, _) = CommandHandler::start(
        store.clone(),
        Arc::new(SystemClock),
        HandlerConfig::default(),
    )?;
    let publisher = append_relay::start(relay, &store);
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

async fn append(
    base: &std::path::Path,
    concurrency: usize,
    run_for: Duration,
    relay: append_relay::RelayMode,
) -> anyhow::Result<()> {
    let appends = measure_appends_publishing(base, concurrency, run_for, relay).await?;
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

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Builds a realistic log: accounts, each with several tokens, some
/// revoked; then rebuilds state from it twice: from scratch, and from a
/// snapshot as latchd does on restart.
async fn replay(base: &std::path::Path, target_events: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(base)?;
    let store = Arc::new(EventStore::open(dir.path())?);
    let config = HandlerConfig {
        snapshot_every: u64::MAX,
        ..HandlerConfig::default()
    };
    let (handler, _) = CommandHandler::start(store.clone(), Arc::new(SystemClock), config)?;
    let handle = handler.handle();
    let building = Instant::now();
    latch_bench::build_log(&handle, target_events).await?;
    let built_in = building.elapsed();
    handler.shutdown().await; // saves the snapshot a restart uses
    let events = store.head().position.get();
    let (tokens, accounts) = {
        let state = handle.state();
        (state.token_count(), state.account_count())
    };
    drop((handle, handler, store));

    let store = EventStore::open(dir.path()).context("reopening")?;
    let verify_started = Instant::now();
    let verdict = store.verify_chain()?;
    let verify_took = verify_started.elapsed();

    // From scratch: hide the snapshot by reading into a fresh state.
    let full_started = Instant::now();
    let mut state = State::new();
    for stored in store.iter_from(Position::FIRST) {
        evolve(&mut state, &latchd::to_recorded(&stored?)?);
    }
    let full_took = full_started.elapsed();
    anyhow::ensure!(
        state.token_count() == tokens,
        "replay disagrees with the live state"
    );
    // Where the time goes: reading records alone, and decoding envelopes
    // the way replay does and the way it did before (flatten).
    let read_started = Instant::now();
    let mut read = 0u64;
    for stored in store.iter_from(Position::FIRST) {
        std::hint::black_box(stored?);
        read += 1;
    }
    let read_took = read_started.elapsed();
    let (decode_hand, decode_flattened, decoded) = envelope_decoding::compare(&store, 300_000)?;
    // And folding alone: every event decoded first, then only `evolve`.
    let mut recorded = Vec::with_capacity(events as usize);
    for stored in store.iter_from(Position::FIRST) {
        recorded.push(latchd::to_recorded(&stored?)?);
    }
    let evolve_started = Instant::now();
    let mut folded = State::new();
    for event in &recorded {
        evolve(&mut folded, event);
    }
    let evolve_took = evolve_started.elapsed();
    drop((recorded, folded));

    // What latchd does on restart: snapshot + verified tail.
    let restart_started = Instant::now();
    let rebuilt = rebuild(&store)?;
    let restart_took = restart_started.elapsed();

    println!(
        "{}",
        json!({
            "scenario": "replay",
            "events": events,
            "accounts": accounts,
            "tokens": tokens,
            "build_seconds": built_in.as_secs_f64(),
            "build_events_per_second": events as f64 / built_in.as_secs_f64(),
            "verify_chain_seconds": verify_took.as_secs_f64(),
            "verify_chain_events_per_second": events as f64 / verify_took.as_secs_f64(),
            "chain": format!("{verdict:?}").split_whitespace().next().unwrap_or("").trim_end_matches(['{', ' ']),
            "replay_seconds": full_took.as_secs_f64(),
            "replay_events_per_second": events as f64 / full_took.as_secs_f64(),
            "read_records_per_second": read as f64 / read_took.as_secs_f64(),
            "decode_sample": decoded,
            "decode_envelopes_per_second": decode_hand,
            "decode_envelopes_per_second_with_flatten": decode_flattened,
            "evolve_events_per_second": events as f64 / evolve_took.as_secs_f64(),
            "restart_with_snapshot_seconds": restart_took.as_secs_f64(),
            "restart_snapshot_position": rebuilt.snapshot.map(|p| p.get()),
            "restart_replayed_events": rebuilt.replayed,
        })
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum HttpWork {
    Issue,
    Introspect,
}

/// Serves latchd's router in-process and drives it with `concurrency`
/// blocking clients for `run_for`.
fn http_load(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    work: HttpWork,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<()> {
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
    runtime.block_on(latch.handler.shutdown());
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

/// Starts a nats-server, latchd's command handler and relay in this
/// process, and `verifier_count` verifiers (each its own NATS connection);
/// then revokes tokens one at a time and times, from the moment the revoke
/// command is durable, until each verifier refuses the token.
/// Whether the propagation scenario's verifiers check latchd's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Signing {
    /// Given the relay's public key: every event is hashed, its signature
    /// verified and its chain checked before it is applied.
    On,
    /// No trusted keys: the verifier applies what the broker delivers.
    Off,
}

/// How the propagation scenario's verifiers follow new events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FollowMode {
    Tail,
    Stream,
}

async fn propagation(
    base: &std::path::Path,
    verifier_count: usize,
    revocations: usize,
    signing: Signing,
    follow: FollowMode,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let dir = tempfile::tempdir_in(base)?;
    let store = Arc::new(EventStore::open(dir.path())?);
    let (handler, _) = CommandHandler::start(
        store.clone(),
        Arc::new(SystemClock),
        HandlerConfig::default(),
    )?;
    let (_stop_relay, shutdown) = tokio::sync::watch::channel(false);
    let keyring = Arc::new(latchd::Keyring::ephemeral());
    let public_key = keyring.current().public_key();
    let relay = latchd::Relay {
        store,
        nats: latch_bus::NatsConnection::new(nats.url()),
        clock: Arc::new(SystemClock),
        status: Arc::new(latchd::RelayStatus::default()),
        keyring,
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
        let mut config = latch_verify::VerifierConfig::new(nats.url());
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
    let total = |stat: fn(&latch_verify::VerifierStats) -> &std::sync::atomic::AtomicU64| {
        verifiers
            .iter()
            .map(|v| stat(v.stats()).load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    let applied = total(|s| &s.events_applied);
    let rejected = total(|s| &s.rejected);
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

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Folds `tokens` issued tokens into a `State` (as a verifier holds it),
/// then times `latch_core::authenticate` + the permission check, which is
/// all `Verifier::verify` does after one atomic staleness load and a read
/// lock.
fn verify_bench(tokens: usize, checks: usize) -> anyhow::Result<()> {
    use chrono::Utc;
    let now = Utc::now();
    let mut position = 0u64;
    let mut record = |view: &mut VerifierView, event: Event| {
        position += 1;
        let envelope = EventEnvelope {
            id: EventId::new(),
            at: now,
            actor: Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event,
        };
        view.apply(&RecordedEvent {
            position: Position::new(position),
            version: 1,
            envelope,
        });
    };
    let before = resident_bytes();
    let mut state = VerifierView::new();
    let accounts: Vec<AccountId> = (0..1000).map(|_| AccountId::new()).collect();
    for (n, account_id) in accounts.iter().enumerate() {
        record(
            &mut state,
            Event::AccountCreated {
                account_id: *account_id,
                name: AccountName::parse(&format!("svc-{n}"))?,
                role: RoleName::parse("auditor")?,
                description: String::new(),
            },
        );
    }
    let mut sample = Vec::new();
    let mut revoked = Vec::new();
    let mut rng = rand::rng();
    for n in 0..tokens {
        let secret = TokenSecret::generate(&mut rng);
        let token_id = TokenId::new();
        let account_id = accounts[n % accounts.len()];
        record(
            &mut state,
            Event::TokenIssued {
                token_id,
                account_id,
                name: "t".into(),
                scopes: PermissionSet::parse(["*:read"])?,
                digest: secret.digest(),
                expires_at: Some(now + chrono::TimeDelta::days(30)),
                allowed_cidrs: Vec::new(),
                rotated_from: None,
            },
        );
        if n % 100 == 0 {
            if sample.len() < 10_000 {
                sample.push(secret.expose().to_owned());
            }
        } else if n % 101 == 0 && revoked.len() < 10_000 {
            record(
                &mut state,
                Event::TokenRevoked {
                    token_id,
                    account_id,
                    reason: String::new(),
                },
            );
            revoked.push(secret.expose().to_owned());
        }
    }
    let per_token = (resident_bytes().saturating_sub(before)) as f64 / tokens as f64;
    let misses: Vec<String> = (0..10_000)
        .map(|_| TokenSecret::generate(&mut rng).expose().to_owned())
        .collect();
    let corrupt: Vec<String> = sample
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.replace_range(10..11, if &t[10..11] == "A" { "B" } else { "A" });
            t
        })
        .collect();
    let permission = Permission::parse("accounts:read")?;
    let state = std::sync::RwLock::new(state);

    let time = |name: &str,
                inputs: &[String],
                expect_ok: bool|
     -> anyhow::Result<serde_json::Value> {
        let started = Instant::now();
        let mut ok = 0usize;
        for i in 0..checks {
            let guard = state.read().expect("lock");
            let token = &inputs[i % inputs.len()];
            if guard
                .authenticate(token, now, None)
                .is_ok_and(|p| p.allows(&permission))
            {
                ok += 1;
            }
        }
        let elapsed = started.elapsed();
        anyhow::ensure!((ok == checks) == expect_ok, "{name}: unexpected outcome");
        Ok(
            json!({ "case": name, "ns_per_check": elapsed.as_nanos() as f64 / checks as f64, "checks_per_second_one_core": checks as f64 / elapsed.as_secs_f64() }),
        )
    };
    let cases = vec![
        time("hit", &sample, true)?,
        time("miss", &misses, false)?,
        time("revoked", &revoked, false)?,
        time("wrong_checksum", &corrupt, false)?,
    ];
    let sha_started = Instant::now();
    let mut sink = 0u8;
    for i in 0..checks {
        sink ^= TokenDigest::of(&sample[i % sample.len()]).as_bytes()[0];
    }
    let sha_ns = sha_started.elapsed().as_nanos() as f64 / checks as f64;
    println!(
        "{}",
        json!({
            "scenario": "verify", "tokens": tokens, "checks_per_case": checks, "cases": cases,
            "sha256_of_token_ns": sha_ns, "sink": sink,
            "resident_bytes_per_token": per_token,
            "note": "single thread; VerifierView::authenticate + permission check under a read lock, as Verifier::verify",
        })
    );
    Ok(())
}

/// latchd (handler, relay and HTTP router, in this process) and
/// `service_count` services guarded by `RequirePermission`: processes of the
/// example `certificate-service` when its binary is given, else small axum
/// services in this process. For each revocation: POST /v1/tokens/{id}/revoke,
/// then poll every service's `GET /certificates` with the token until each
/// answers 401.
fn propagation_http(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    service_count: usize,
    revocations: usize,
    example_binary: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let latch = runtime.block_on(InProcessLatchd::start(
        base,
        Some(&nats),
        HandlerConfig::default(),
    ))?;
    let mut services = Vec::new();
    let mut children = ServiceProcesses(Vec::new());
    for _ in 0..service_count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        services.push(format!("http://127.0.0.1:{port}/certificates"));
        match example_binary {
            Some(binary) => children.0.push(
                std::process::Command::new(binary)
                    .args([
                        "--nats-url",
                        &nats.url(),
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .with_context(|| format!("start {}", binary.display()))?,
            ),
            None => runtime.block_on(async {
                let verifier =
                    latch_verify::Verifier::connect(latch_verify::VerifierConfig::new(nats.url()))
                        .await?;
                let service = axum::Router::new()
                    .route("/certificates", axum::routing::get(|| async { "[]" }))
                    .layer(latch_verify::RequirePermission::new(
                        verifier,
                        "certificates:read",
                    ));
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        service.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .await
                });
                anyhow::Ok(())
            })?,
        }
    }
    let (url, admin) = (latch.url.clone(), latch.admin.clone());

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |method: &str,
                url: &str,
                token: &str,
                body: Option<serde_json::Value>|
     -> anyhow::Result<(u16, serde_json::Value)> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut response = agent.run(request.body(bytes)?)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    };
    let role = json!({ "permissions": ["certificates:issue", "certificates:read"] });
    anyhow::ensure!(
        call("PUT", &format!("{url}/v1/roles/issuer"), &admin, Some(role))?.0 == 200,
        "role"
    );
    let (_, account) = call(
        "POST",
        &format!("{url}/v1/accounts"),
        &admin,
        Some(json!({ "name": "ci", "role": "issuer" })),
    )?;
    let account = account["id"].as_str().context("account")?.to_owned();

    let mut latencies = Vec::new();
    for _ in 0..revocations {
        let (_, issued) = call(
            "POST",
            &format!("{url}/v1/accounts/{account}/tokens"),
            &admin,
            Some(json!({ "name": "p" })),
        )?;
        let (id, token) = (
            issued["id"].as_str().context("id")?.to_owned(),
            issued["token"].as_str().context("token")?.to_owned(),
        );
        let started = Instant::now();
        for service in &services {
            // Also waits for the service processes to come up, the first time.
            while !matches!(call("GET", service, &token, None), Ok((200, _))) {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(30),
                    "{service} never accepted the new token"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (status, _) = call(
            "POST",
            &format!("{url}/v1/tokens/{id}/revoke"),
            &admin,
            Some(json!({})),
        )?;
        anyhow::ensure!(status == 200, "revoke: {status}");
        let revoked_at = Instant::now();
        let mut pending: Vec<&String> = services.iter().collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for service in pending {
                if call("GET", service, &token, None)?.0 == 401 {
                    latencies.push(revoked_at.elapsed());
                } else {
                    still.push(service);
                }
            }
            pending = still;
            anyhow::ensure!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "a service never rejected the revoked token"
            );
        }
    }
    latencies.sort_unstable();
    println!(
        "{}",
        json!({
            "scenario": "propagation-http", "services": service_count, "revocations": revocations, "samples": latencies.len(),
            "services_are": example_binary.map_or("in-process axum services with RequirePermission".to_owned(), |b| format!("processes of {}", b.display())),
            "p50_us": percentile(&latencies, 0.50).as_micros() as u64,
            "p99_us": percentile(&latencies, 0.99).as_micros() as u64,
            "max_us": latencies.last().copied().unwrap_or_default().as_micros() as u64,
            "measured_from": "the revoke HTTP response to each service's first 401, polling the services one after another over HTTP",
        })
    );
    drop(children);
    Ok(())
}

/// Kills the example service processes when the scenario ends, however it ends.
struct ServiceProcesses(Vec<std::process::Child>);

impl Drop for ServiceProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn cold_start(
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
    let mut config = latch_verify::VerifierConfig::new(nats.url());
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
        let mut config = latch_verify::VerifierConfig::new(nats.url());
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
