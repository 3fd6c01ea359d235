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
//! cargo run --release -p latch-bench -- records --events 10000000
//! cargo run --release -p latch-bench -- commands --concurrency 1,8,64
//! cargo run --release -p latch-bench -- store-peer --concurrency 64
//! cargo run --release -p latch-bench -- http-issue --concurrency 32
//! cargo run --release -p latch-bench -- introspect --concurrency 32
//! cargo run --release -p latch-bench -- ha --kills 20 --concurrency 64 --seconds 10 --verifiers 50
//! ```
//!
//! The HTTP scenarios serve latchd's real router in this process on a
//! loopback port and drive it with blocking HTTP clients on threads: client
//! and server share the machine's cores, as a co-located pipeline would.
//!
//! This file is the command line; each scenario is a module of `scenarios`
//! with its `run`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod scenarios;

use scenarios::append::{Indexing, RelayMode};
use scenarios::ha::{HaOptions, HaPart};
use scenarios::http_load::HttpWork;
use scenarios::propagation::{FollowMode, Signing};
use scenarios::{
    append, audit, checkpoint, cold_start, commands, exchange, exchange_fold, feed_verify, ha,
    http_load, leaks, propagation, propagation_http, records, replay, store_peer, verify,
};

/// With `--features mimalloc`, the allocator latchd and latch use (ADR 0017),
/// for latchd's scenarios; without, the system allocator a service
/// embedding the verifier most likely has.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        relay: Vec<RelayMode>,
        /// Whether the handler indexes the log (ADR 0026), each in turn:
        /// `on,off` measures what the index costs an append.
        #[arg(long, value_delimiter = ',', default_value = "on")]
        index: Vec<Indexing>,
    },
    /// Events per second to rebuild state from a log of `events` events,
    /// and restart-to-ready time with a snapshot.
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// The log's record formats at scale (ADR 0027): a real log of
    /// `source_events` copied until the log holds `events`, as JSON
    /// records; disk, chain verification and a checked, decoded read, then
    /// the upgrade in place to binary records and the same again.
    Records {
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000_000)]
        source_events: u64,
    },
    /// Investigations over a log of `events` events, as `latch audit
    /// --data-dir` runs them: state at a moment, who-can, a token's story,
    /// chain verification, export and export verification.
    Audit {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// A checkpoint every this many events, as latchd's
        /// --snapshot-every; 0: none (every question replays from the
        /// first event, as before checkpoints were kept).
        #[arg(long, default_value_t = 100_000)]
        checkpoint_every: u64,
        /// API activity records written beside the log (as latchd writes
        /// one for every request); one in 50,000 is the story token's.
        #[arg(long, default_value_t = 1_000_000)]
        activity: u64,
        /// Keep the data directory (and print where it is) to run `latch
        /// audit` against it by hand.
        #[arg(long)]
        keep: bool,
    },
    /// A checkpoint of the state at the head of an existing log (a
    /// `latch-bench audit --keep` directory): its bytes, and the seconds to
    /// encode and decode it with this build's format.
    Checkpoint {
        /// The data directory (the one holding `log/`).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Tokens issued by OIDC exchange folded into the state (in-process,
    /// no I/O): what every exchange costs latchd and every replay, with
    /// `lifetime_secs * 1000 / every_ms` identity tokens' `jti`s live.
    ExchangeFold {
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// How long each identity token is valid (its `jti` is refused
        /// until then).
        #[arg(long, default_value_t = 3600)]
        lifetime_secs: u64,
        /// Log time between two exchanges.
        #[arg(long, default_value_t = 20)]
        every_ms: u64,
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
    /// HA mode (ADR 0021) on a 3-server JetStream cluster with 3 latchd
    /// nodes: takeover time after a leader crash, throughput against a
    /// single node, revoke-to-reject at N verifiers and the verifiers'
    /// stream-probe rate with every latchd down.
    Ha {
        /// Which parts to run, in this order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "takeover,throughput,propagation"
        )]
        parts: Vec<HaPart>,
        /// Leader crashes to time (takeover).
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Concurrent clients (throughput).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// How long each throughput run lasts.
        #[arg(long, default_value = "10")]
        seconds: u64,
        /// Verifiers following the cluster (propagation).
        #[arg(long, default_value_t = 50)]
        verifiers: usize,
        /// Revocations to time (propagation).
        #[arg(long, default_value_t = 200)]
        revocations: usize,
        /// The leadership lease (HaConfig::lease), in milliseconds.
        #[arg(long, default_value_t = 3000)]
        lease_ms: u64,
        /// How long the verifiers run with every latchd down (stream probe).
        #[arg(long, default_value_t = 10)]
        probe_seconds: u64,
        /// The leader's batches awaiting the stream's acknowledgement at
        /// once (1: no pipelining, as before issue 19's follow-up).
        #[arg(long, default_value_t = 4)]
        batches_in_flight: usize,
    },
    /// Leak reports (issue 21): report → refused at every verifier, and the
    /// answer time of one report of `batch` tokens.
    Leaks {
        /// Verifiers following latchd.
        #[arg(long, default_value_t = 10)]
        verifiers: usize,
        /// Single-token reports timed until every verifier refuses.
        #[arg(long, default_value_t = 200)]
        reports: usize,
        /// Tokens in one bulk report.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Bulk reports timed.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// Token exchange (issue 20): OIDC exchanges per second with a warm key
    /// cache (ES256 and RS256), and revoking a parent with `children` live
    /// children until `verifiers` verifiers refuse every one.
    Exchange {
        /// Concurrent clients (oidc).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Exchanges per algorithm (oidc).
        #[arg(long, default_value_t = 4000)]
        exchanges: usize,
        /// Live children of each revoked parent.
        #[arg(long, default_value_t = 1000)]
        children: usize,
        #[arg(long, default_value_t = 10)]
        verifiers: usize,
        /// Parents revoked (children).
        #[arg(long, default_value_t = 10)]
        revocations: usize,
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
            index,
        } => {
            for c in concurrency {
                for &mode in &relay {
                    for &indexing in &index {
                        runtime.block_on(append::run(
                            &base,
                            c,
                            Duration::from_secs(seconds),
                            mode,
                            indexing == Indexing::On,
                        ))?;
                    }
                }
            }
        }
        Scenario::FeedVerify { events } => runtime.block_on(feed_verify::run(&base, events))?,
        Scenario::Replay { events } => runtime.block_on(replay::run(&base, events))?,
        Scenario::Commands {
            concurrency,
            seconds,
        } => {
            for c in concurrency {
                commands::run(&runtime, &base, c, Duration::from_secs(seconds))?;
            }
        }
        Scenario::StorePeer {
            concurrency,
            seconds,
            postgres,
        } => runtime.block_on(store_peer::run(
            &base,
            concurrency,
            Duration::from_secs(seconds),
            &postgres,
        ))?,
        Scenario::Records {
            events,
            source_events,
        } => runtime.block_on(records::run(&base, events, source_events))?,
        Scenario::Audit {
            events,
            checkpoint_every,
            activity,
            keep,
        } => runtime.block_on(audit::run(&base, events, checkpoint_every, activity, keep))?,
        Scenario::Checkpoint { data_dir, rounds } => checkpoint::run(&data_dir, rounds)?,
        Scenario::ExchangeFold {
            events,
            lifetime_secs,
            every_ms,
        } => exchange_fold::run(events, lifetime_secs, every_ms)?,
        Scenario::HttpIssue {
            concurrency,
            seconds,
        } => {
            for c in concurrency {
                http_load::run(&runtime, &base, HttpWork::Issue, c, seconds)?;
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
                        runtime.block_on(propagation::run(&base, n, revocations, mode, how))?;
                    }
                }
            }
        }
        Scenario::Verify { tokens, checks } => verify::run(tokens, checks)?,
        Scenario::ColdStart {
            tokens,
            also_stream,
        } => runtime.block_on(cold_start::run(&base, tokens, also_stream))?,
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
            propagation_http::run(
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
                http_load::run(&runtime, &base, HttpWork::Introspect, c, seconds)?;
            }
        }
        Scenario::Leaks {
            verifiers,
            reports,
            batch,
            rounds,
        } => leaks::run(&runtime, &base, verifiers, reports, batch, rounds)?,
        Scenario::Exchange {
            concurrency,
            exchanges,
            children,
            verifiers,
            revocations,
        } => exchange::run(&runtime, &base, concurrency, exchanges, children, verifiers, revocations)?,
        Scenario::Ha {
            parts,
            kills,
            concurrency,
            seconds,
            verifiers,
            revocations,
            lease_ms,
            probe_seconds,
            batches_in_flight,
        } => ha::run(
            &runtime,
            &base,
            &HaOptions {
                parts,
                kills,
                concurrency,
                seconds,
                verifiers,
                revocations,
                lease: Duration::from_millis(lease_ms),
                probe_seconds,
                batches_in_flight,
            },
        )?,
    }
    Ok(())
}
