//! What the benchmarks share: latchd in this process, and a population of
//! tokens issued through its real command handler.
#![forbid(unsafe_code)]

use std::sync::Arc;

use anyhow::bail;
use latch_core::*;
use latch_store::EventStore;
use latchd::{CommandHandle, CommandRequest, HandlerConfig};

/// latchd in this process (`latchd::Node`, as the binary runs it) on a
/// loopback port, with its admin token; given a broker, its relay, usage
/// intake and NATS command service too.
pub struct InProcessLatchd {
    pub url: String,
    pub admin: String,
    pub handle: CommandHandle,
    pub store: Arc<EventStore>,
    pub relay: Option<Arc<latchd::RelayStatus>>,
    /// What it signs its feed with, for verifiers to trust.
    pub public_key: latch_bus::PublicKey,
    node: latchd::Node,
    _dir: tempfile::TempDir,
}

impl InProcessLatchd {
    /// latchd with the default handler settings, publishing to `nats`.
    pub async fn with_nats(
        base: &std::path::Path,
        nats: &latch_testkit::NatsServer,
    ) -> anyhow::Result<Self> {
        Self::start(base, Some(nats), HandlerConfig::default()).await
    }

    pub async fn start(
        base: &std::path::Path,
        nats: Option<&latch_testkit::NatsServer>,
        handler: HandlerConfig,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir_in(base)?;
        let mut config = latchd::NodeConfig::new(dir.path());
        config.nats = nats.map(|nats| latch_bus::NatsConnection::new(nats.url()));
        config.handler = handler;
        let keyring = Arc::new(latchd::Keyring::ephemeral());
        let public_key = keyring.current().public_key();
        config.signing_key = latchd::SigningKeySource::Given(keyring);
        let node = latchd::Node::start(config).await?;
        let admin = std::fs::read_to_string(node.admin_token_file())?
            .trim()
            .to_owned();
        Ok(Self {
            url: node.url(),
            admin,
            handle: node.commands(),
            store: node.store().clone(),
            relay: node.relay_status().cloned(),
            public_key,
            node,
            _dir: dir,
        })
    }

    /// Stops latchd as the binary does: queued commands written, a snapshot saved.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.node.shutdown().await?;
        Ok(())
    }
}

/// A command handler alone on a new log in `base` (no latchd around it):
/// what the append, replay and feed scenarios measure. Keep the directory
/// as long as the handler.
pub fn bare_command_handler(
    base: &std::path::Path,
    config: HandlerConfig,
) -> anyhow::Result<(tempfile::TempDir, Arc<EventStore>, latchd::CommandHandler)> {
    let dir = tempfile::tempdir_in(base)?;
    let store = Arc::new(EventStore::open(dir.path())?);
    let (handler, _) =
        latchd::CommandHandler::start(store.clone(), Arc::new(latchd::SystemClock), config)?;
    Ok((dir, store, handler))
}

/// Submits `command` as the system and fails on a rejection.
pub async fn submit_ok(
    handle: &CommandHandle,
    command: Command,
) -> anyhow::Result<CommandReceiptLite> {
    match handle
        .submit(CommandRequest::new(Actor::System, command))
        .await?
    {
        Ok(receipt) => Ok(CommandReceiptLite {
            events: receipt.events.len(),
        }),
        Err(rejection) => bail!("rejected: {rejection}"),
    }
}

/// How many events a command appended.
pub struct CommandReceiptLite {
    pub events: usize,
}

/// Tokens issued through the command handler, with some of their secrets
/// kept to present later.
pub struct Population {
    /// Secrets of live tokens (every `keep_every`-th issued).
    pub live: Vec<String>,
    /// Secrets of revoked tokens (every `keep_every`-th + 1 issued, revoked).
    pub revoked: Vec<String>,
}

/// Issues `tokens` tokens with `*:read` scopes over 256 auditor accounts,
/// from 256 concurrent submitters (so the handler commits in groups), keeps
/// the secrets of every `keep_every`-th and revokes the one after it.
pub async fn populate(
    handle: &CommandHandle,
    tokens: usize,
    keep_every: usize,
) -> anyhow::Result<Population> {
    const WORKERS: usize = 256;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let account_id = AccountId::new();
                let name = AccountName::parse(&format!("svc-{worker}-{}", AccountId::new()))?;
                submit_ok(
                    &handle,
                    Command::CreateAccount {
                        account_id,
                        name,
                        role: RoleName::parse("auditor")?,
                        description: String::new(),
                    },
                )
                .await?;
                let mut kept = Population {
                    live: Vec::new(),
                    revoked: Vec::new(),
                };
                for n in 0..tokens.div_ceil(WORKERS) {
                    let secret = TokenSecret::generate(&mut rand::rng());
                    let token_id = TokenId::new();
                    let scopes = Some(PermissionSet::parse(["*:read"])?);
                    submit_ok(
                        &handle,
                        Command::IssueToken {
                            account_id,
                            token_id,
                            name: "t".into(),
                            scopes,
                            ttl: None,
                            allowed_cidrs: Vec::new(),
                            digest: secret.digest(),
                        },
                    )
                    .await?;
                    if n % keep_every == 0 {
                        kept.live.push(secret.expose().to_owned());
                    } else if n % keep_every == 1 {
                        submit_ok(
                            &handle,
                            Command::RevokeToken {
                                token_id,
                                reason: "benchmark".into(),
                            },
                        )
                        .await?;
                        kept.revoked.push(secret.expose().to_owned());
                    }
                }
                anyhow::Ok(kept)
            })
        })
        .collect();
    let mut population = Population {
        live: Vec::new(),
        revoked: Vec::new(),
    };
    for task in tasks {
        let kept = task.await??;
        population.live.extend(kept.live);
        population.revoked.extend(kept.revoked);
    }
    Ok(population)
}

/// Writes a realistic log of about `target_events` events through the
/// command handler: accounts (role `auditor`), each with eight 30-day
/// tokens, the last of them revoked; from 256 concurrent submitters.
pub async fn build_log(handle: &CommandHandle, target_events: u64) -> anyhow::Result<()> {
    const WORKERS: u64 = 256;
    let per_worker = target_events / WORKERS + 1;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut written = 0u64;
                let mut n = worker * 1_000_000_000;
                while written < per_worker {
                    let account_id = AccountId::new();
                    let create = Command::CreateAccount {
                        account_id,
                        name: AccountName::parse(&format!("svc-{n}")).expect("valid"),
                        role: RoleName::parse("auditor").expect("valid"),
                        description: "replay benchmark".into(),
                    };
                    n += 1;
                    written += submit_ok(&handle, create).await?.events as u64;
                    for t in 0..8 {
                        let token_id = TokenId::new();
                        let issue = Command::IssueToken {
                            account_id,
                            token_id,
                            name: format!("deploy-{t}"),
                            scopes: None,
                            ttl: Some(Ttl::For(Span::days(30))),
                            allowed_cidrs: Vec::new(),
                            digest: TokenSecret::generate(&mut rand::rng()).digest(),
                        };
                        written += submit_ok(&handle, issue).await?.events as u64;
                        if t == 7 {
                            let revoke = Command::RevokeToken {
                                token_id,
                                reason: "benchmark".into(),
                            };
                            written += submit_ok(&handle, revoke).await?.events as u64;
                        }
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Every client's latencies, from tasks that each measured their own.
pub async fn task_latencies(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<std::time::Duration>>>>,
) -> anyhow::Result<Vec<std::time::Duration>> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(latencies)
}

/// Every client's latencies, from threads that each measured their own.
pub fn thread_latencies(
    threads: Vec<std::thread::JoinHandle<anyhow::Result<Vec<std::time::Duration>>>>,
) -> anyhow::Result<Vec<std::time::Duration>> {
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
        );
    }
    Ok(latencies)
}

/// Bytes of the files under `dir` (RocksDB's, compressed as stored).
pub fn directory_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes under `dir` by what RocksDB keeps in them: table files (`.sst`),
/// write-ahead logs (`.log`) and the rest.
pub fn rocksdb_bytes(dir: &std::path::Path) -> serde_json::Value {
    let (mut sst, mut wal, mut other) = (0u64, 0u64, 0u64);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            other += directory_bytes(&entry.path());
        } else if name.ends_with(".sst") {
            sst += meta.len();
        } else if name.ends_with(".log") {
            wal += meta.len();
        } else {
            other += meta.len();
        }
    }
    serde_json::json!({ "tables": sst, "write_ahead_log": wal, "other": other })
}

/// `measure` on a log of JSON records, their upgrade in place to the
/// binary format (ADR 0027), and `measure` again:
/// `{"as_json", "upgrade", "as_binary"}`. `measure` reports the chain's
/// `head_hash`; an upgrade that moved it fails.
pub fn measure_upgrade(
    store: &EventStore,
    measure: impl Fn(&EventStore) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let as_json = measure(store)?;
    let started = std::time::Instant::now();
    let upgraded = store.upgrade_records(|_, _| true)?;
    let took = started.elapsed();
    let as_binary = measure(store)?;
    anyhow::ensure!(
        as_json["head_hash"] == as_binary["head_hash"],
        "the upgrade changed the chain head"
    );
    Ok(serde_json::json!({
        "as_json": as_json,
        "upgrade": {
            "rewritten": upgraded.rewritten,
            "seconds": took.as_secs_f64(),
            "records_per_second": upgraded.rewritten as f64 / took.as_secs_f64(),
        },
        "as_binary": as_binary,
    }))
}
