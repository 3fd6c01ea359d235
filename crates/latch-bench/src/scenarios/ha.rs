//! `ha`: latchd's HA mode (ADR 0021) on a real three-server JetStream
//! cluster, with three latchd nodes in HA mode in this process (one shared
//! signing key), in three parts, same run:
//!
//! 1. **takeover**: crash the leader (`Node::abort`: tasks aborted, lease
//!    not released) `kills` times; each time, time from the crash until a
//!    client that keeps issuing tokens over HTTP (to any node, following
//!    307 to the leader, retrying 503 and connection errors every 20 ms,
//!    one Idempotency-Key per command) gets its first answer from the new
//!    leader. Then a replacement node starts on the crashed node's data
//!    dir and port, as a standby, so there are always three.
//! 2. **throughput**: token issues per second over HTTP and appends per
//!    second through the command handler at `concurrency`, against a
//!    single node (`InProcessLatchd`, relay to a one-server NATS) and
//!    against the HA leader (R3 stream on the three servers).
//! 3. **propagation**: revoke-to-reject at `verifiers` verifiers following
//!    the cluster (trusting the shared key), revoking through the leader;
//!    then every latchd is crashed and the verifiers' stream probes (what
//!    keeps them current without heartbeats) are counted per second.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use latch_bench::{InProcessLatchd, submit_ok};
use latch_core::{
    AccountId, AccountName, Actor, Command, Permission, Rejection, RoleName, TokenId, TokenSecret,
};
use latchd::ha::{HaConfig, Role};
use latchd::{CommandHandle, CommandRequest};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::percentile;

/// Which parts of the scenario to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HaPart {
    Takeover,
    Throughput,
    Propagation,
}

pub(crate) struct HaOptions {
    pub parts: Vec<HaPart>,
    pub kills: usize,
    pub concurrency: usize,
    pub seconds: u64,
    pub verifiers: usize,
    pub revocations: usize,
    pub lease: Duration,
    pub probe_seconds: u64,
    /// The leader's batches awaiting the stream at once
    /// (`HandlerConfig::max_batches_in_flight`).
    pub batches_in_flight: usize,
}

const SETUP: &str = "3 nats-server (JetStream, clustered, loopback) + 3 latchd nodes in HA mode in this process, clients in this process too: all on the same cores";
/// How long the takeover client waits before retrying a 503 or an
/// unreachable node.
const RETRY_EVERY: Duration = Duration::from_millis(20);

pub(crate) fn run(runtime: &Runtime, base: &Path, options: &HaOptions) -> anyhow::Result<()> {
    let mut cluster = runtime.block_on(Cluster::start(base, options.lease, options.batches_in_flight))?;
    let admin = runtime.block_on(cluster.admin_token())?;
    let outcome = (|| {
        for part in &options.parts {
            match part {
                HaPart::Takeover => takeover(runtime, &mut cluster, &admin, options)?,
                HaPart::Throughput => throughput(runtime, base, &cluster, &admin, options)?,
                HaPart::Propagation => propagation(runtime, &mut cluster, options)?,
            }
        }
        anyhow::Ok(())
    })();
    if let Err(error) = &outcome {
        eprintln!(
            "ha: {error:#}\ncluster: {}",
            serde_json::to_string_pretty(&cluster.describe()).unwrap_or_default()
        );
    }
    for index in 0..cluster.slots.len() {
        runtime.block_on(cluster.abort(index));
    }
    outcome
}

// ---------------------------------------------------------------- cluster

/// One latchd of the cluster: a fixed name, port (so URL) and data dir,
/// and the node while it runs.
struct Slot {
    name: String,
    port: u16,
    url: String,
    data_dir: PathBuf,
    node: Option<latchd::Node>,
}

struct Cluster {
    nats: latch_testkit::NatsCluster,
    keyring: Arc<latchd::Keyring>,
    lease: Duration,
    batches_in_flight: usize,
    slots: Vec<Slot>,
    _dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    async fn start(base: &Path, lease: Duration, batches_in_flight: usize) -> anyhow::Result<Self> {
        let nats = tokio::task::spawn_blocking(|| latch_testkit::NatsCluster::start(3)).await?;
        let dir = tempfile::tempdir_in(base)?;
        let mut slots = Vec::new();
        for index in 0..3 {
            let port = free_port()?;
            slots.push(Slot {
                name: format!("node{index}"),
                port,
                url: format!("http://127.0.0.1:{port}"),
                data_dir: dir.path().join(format!("node{index}")),
                node: None,
            });
        }
        let mut cluster = Self {
            nats,
            keyring: Arc::new(latchd::Keyring::ephemeral()),
            lease,
            batches_in_flight,
            slots,
            _dir: dir,
        };
        let started = Instant::now();
        for index in 0..3 {
            cluster.start_node(index).await?;
        }
        // JetStream elects its meta leader a few seconds after the servers
        // start; the nodes retry until it has. Meanwhile, and until every
        // standby follows, each node's view as it changes.
        let mut views = vec![json!([0.0, cluster.views()])];
        let mut last = cluster.views();
        let mut leader_after = None;
        let following = loop {
            let now = cluster.views();
            if now != last {
                views.push(json!([ms(started.elapsed()), now]));
                last = now;
            }
            if leader_after.is_none() && cluster.leaders().len() == 1 {
                leader_after = Some(started.elapsed());
            }
            if leader_after.is_some() {
                match cluster.wait_following(Duration::ZERO).await {
                    Ok(_) => break Ok(started.elapsed() - leader_after.unwrap_or_default()),
                    Err(error) if started.elapsed() > Duration::from_secs(180) => break Err(error),
                    Err(_) => {}
                }
            } else if started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "no leader in 120 s: {}",
                    serde_json::to_string(&cluster.describe())?
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let leader_after = leader_after.unwrap_or_default();
        let startup = json!({
            "scenario": "ha",
            "part": "startup",
            "nodes_started_to_a_leader_ms": ms(leader_after),
            "leader_to_every_standby_following_ms": following.as_ref().ok().map(|d| ms(*d)),
            "error": following.as_ref().err().map(|e| format!("{e:#}")),
            "views_ms": views,
            "note": "from Node::start of three empty nodes on a 3-server JetStream cluster started just before; following: every standby's HaState names the leader (its NATS session runs and it reads the lease)",
        });
        // How the cluster came up.
        println!("{startup}");
        following?;
        Ok(cluster)
    }

    fn config(&self, index: usize) -> latchd::NodeConfig {
        let slot = &self.slots[index];
        let mut config = latchd::NodeConfig::new(&slot.data_dir);
        config.listen = SocketAddr::from(([127, 0, 0, 1], slot.port));
        config.nats = Some(latch_bus::NatsConnection::new(self.nats.url()));
        config.signing_key = latchd::SigningKeySource::Given(self.keyring.clone());
        config.bootstrap_admin = true;
        config.handler.max_batches_in_flight = self.batches_in_flight;
        let mut ha = HaConfig::new(slot.name.clone(), slot.url.clone());
        ha.replicas = 3;
        ha.lease = self.lease;
        config.ha = Some(ha);
        config
    }

    /// Starts slot `index`'s node on its data dir and port. A crashed
    /// node's port and log lock are released once its aborted tasks are
    /// dropped: wait for both.
    async fn start_node(&mut self, index: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let give_up = started + Duration::from_secs(30);
        let address = SocketAddr::from(([127, 0, 0, 1], self.slots[index].port));
        loop {
            // Node::start binds only after starting the HA controller: make
            // sure the port is free first.
            if TcpListener::bind(address).is_ok() {
                match latchd::Node::start(self.config(index)).await {
                    Ok(node) => {
                        self.slots[index].node = Some(node);
                        return Ok(started.elapsed());
                    }
                    Err(error) if Instant::now() < give_up => {
                        eprintln!("ha: starting {} again: {error:#}", self.slots[index].name);
                    }
                    Err(error) => {
                        return Err(anyhow::Error::new(error))
                            .with_context(|| format!("starting {}", self.slots[index].name));
                    }
                }
            } else if Instant::now() >= give_up {
                bail!(
                    "{}'s port {} stayed in use",
                    self.slots[index].name,
                    address
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Crashes slot `index`'s node; returns how long `abort` took.
    async fn abort(&mut self, index: usize) -> Duration {
        let Some(node) = self.slots[index].node.take() else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        let _ = tokio::task::spawn_blocking(move || node.abort()).await;
        started.elapsed()
    }

    fn node(&self, index: usize) -> Option<&latchd::Node> {
        self.slots[index].node.as_ref()
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                self.node(i)
                    .and_then(|n| n.ha_state())
                    .is_some_and(|ha| ha.role() == Role::Leader)
            })
            .collect()
    }

    async fn wait_for_leader(&self, within: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            if let &[leader] = self.leaders().as_slice() {
                return Ok(leader);
            }
            if started.elapsed() > within {
                bail!(
                    "no single leader after {within:?}: {}",
                    serde_json::to_string(&self.describe())?
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every running standby's log reaches what the leader's
    /// held when called.
    async fn wait_caught_up(&self, leader: usize, within: Duration) -> anyhow::Result<()> {
        let target = self.node(leader).context("leader")?.store().head().position;
        let started = Instant::now();
        loop {
            if (0..self.slots.len())
                .filter_map(|i| self.node(i))
                .all(|n| n.store().head().position >= target)
            {
                return Ok(());
            }
            if started.elapsed() > within {
                bail!(
                    "standbys not caught up with {target} after {within:?}: {}",
                    serde_json::to_string(&self.describe())?
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The admin token the first leader wrote to its data dir.
    async fn admin_token(&self) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            for slot in &self.slots {
                if let Ok(token) = std::fs::read_to_string(slot.data_dir.join("admin.token"))
                    && !token.trim().is_empty()
                {
                    return Ok(token.trim().to_owned());
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "no admin.token after 60 s: {}",
                    serde_json::to_string(&self.describe())?
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running standby names the one leader (its session
    /// with NATS runs and reads the lease); returns how long that took.
    async fn wait_following(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let &[leader] = self.leaders().as_slice() {
                let name = &self.slots[leader].name;
                let all = self.views().iter().all(|(_, view)| match view {
                    None => true,
                    Some((Role::Leader, _)) => true,
                    Some((Role::Standby, named)) => named.as_ref() == Some(name),
                });
                if all {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > within {
                bail!(
                    "standbys not following one leader after {within:?}: {}",
                    serde_json::to_string(&self.views())?
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Each running node's (role, leader it names) now.
    fn views(&self) -> Vec<(String, Option<(Role, Option<String>)>)> {
        self.slots
            .iter()
            .map(|slot| {
                let view = slot
                    .node
                    .as_ref()
                    .and_then(|n| n.ha_state())
                    .map(|ha| (ha.role(), ha.leader().map(|l| l.node_id)));
                (slot.name.clone(), view)
            })
            .collect()
    }

    /// Every node's view, for reports of what went wrong.
    fn describe(&self) -> Value {
        let nodes: Vec<Value> = self
            .slots
            .iter()
            .map(|slot| match &slot.node {
                None => json!({ "node": slot.name, "running": false }),
                Some(node) => {
                    let ha = node.ha_state();
                    json!({
                        "node": slot.name,
                        "running": true,
                        "url": slot.url,
                        "log_head": node.store().head().position.get(),
                        "role": ha.map(|h| h.role()),
                        "role_seconds": ha.map(|h| h.role_seconds()),
                        "leader": ha.and_then(|h| h.leader()),
                        "lease_revision": ha.and_then(|h| h.lease_revision()),
                        "applied_sequence": ha.map(|h| h.applied_sequence.load(Ordering::Relaxed)),
                        "stream_last_sequence": ha.map(|h| h.stream_last_sequence.load(Ordering::Relaxed)),
                        "lag": ha.map(|h| h.lag()),
                        "elections_won": ha.map(|h| h.elections_won.load(Ordering::Relaxed)),
                        "step_downs": ha.map(|h| h.step_downs.load(Ordering::Relaxed)),
                        "events_replicated": ha.map(|h| h.events_replicated.load(Ordering::Relaxed)),
                        "foreign_messages": ha.map(|h| h.foreign_messages.load(Ordering::Relaxed)),
                        "tails_set_aside": ha.map(|h| h.tails_set_aside.load(Ordering::Relaxed)),
                    })
                }
            })
            .collect();
        json!(nodes)
    }
}

// ------------------------------------------------------------- HTTP bits

fn agent(pool: usize, timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(pool)
        .max_idle_connections_per_host(pool)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// POSTs `body` to `url`, following up to three 307s; returns the status,
/// the URL that answered and the body.
fn post_following(
    agent: &ureq::Agent,
    url: &str,
    admin: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<(u16, String, Value), String> {
    let mut url = url.to_owned();
    for _ in 0..4 {
        let mut request = agent
            .post(&url)
            .header("Authorization", format!("Bearer {admin}"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let mut response = request.send_json(body).map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        if status == 307 {
            url = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or("307 without Location")?
                .to_owned();
            continue;
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Ok((status, url, body));
    }
    Err("more than three redirects".into())
}

/// Creates an account over HTTP (retrying while the cluster settles).
fn create_account(agent: &ureq::Agent, urls: &[String], admin: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    let key = format!("ha-bench-account-{}", rand::random::<u64>());
    let body = json!({ "name": format!("bench-{}", rand::random::<u32>()), "role": "auditor" });
    let mut last = String::new();
    for attempt in 0.. {
        let url = format!("{}/v1/accounts", urls[attempt % urls.len()]);
        match post_following(agent, &url, admin, Some(&key), &body) {
            Ok((200 | 201, _, body)) => {
                return Ok(body["id"].as_str().context("account id")?.to_owned());
            }
            Ok((status, _, body)) => last = format!("HTTP {status}: {body}"),
            Err(error) => last = error,
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(RETRY_EVERY);
    }
    bail!("could not create an account in 60 s: {last}")
}

/// What went wrong for a client, by kind, counted.
type Troubles = Arc<Mutex<BTreeMap<String, u64>>>;

fn note(troubles: &Troubles, what: String) {
    let what: String = what.chars().take(160).collect();
    *troubles.lock().unwrap().entry(what).or_default() += 1;
}

fn problem(status: u16, body: &Value) -> String {
    match body["detail"].as_str() {
        Some(detail) => format!("HTTP {status}: {detail}"),
        None => format!("HTTP {status}: {body}"),
    }
}

// ------------------------------------------------------------ diagnosis

/// The holder a lease message names; `(released)` for a delete or purge
/// marker (a leader that stepped down, or a node that took the lease and
/// gave it up).
fn lease_holder(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> String {
    let operation = headers
        .and_then(|h| h.get("KV-Operation"))
        .map(|v| v.as_str().to_owned());
    if matches!(operation.as_deref(), Some("DEL" | "PURGE")) {
        return "(released)".into();
    }

    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v["node_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Who holds the lease (`LATCH_LEADER` / `leader`), read every 20 ms over
/// its own NATS connection in two ways, and each change of holder (`None`
/// while vacant) recorded: as a standby's `kv::Store::entry` reads it (a
/// direct get, which any replica may answer) and as the KV stream's leader
/// has it (`STREAM.MSG.GET`), which decides a `create`, with the stream
/// sequence of that message: a take and release between two reads shows
/// as a `(released)` marker two sequences on.
struct LeaseWatch {
    direct: Arc<Mutex<Vec<(Instant, Option<String>, u64)>>>,
    at_leader: Arc<Mutex<Vec<(Instant, Option<String>, u64)>>>,
    stop: Arc<AtomicBool>,
}

type LeaseLog = Mutex<Vec<(Instant, Option<String>, u64)>>;

fn record(log: &LeaseLog, holder: Option<String>, sequence: u64) {
    let mut log = log.lock().unwrap();
    if log
        .last()
        .is_none_or(|(_, last, seq)| *last != holder || (holder.is_some() && *seq != sequence))
    {
        log.push((Instant::now(), holder, sequence));
    }
}

impl LeaseWatch {
    async fn start(cluster: &Cluster) -> anyhow::Result<Self> {
        let urls: Vec<String> = cluster.nats.url().split(',').map(str::to_owned).collect();
        let client = async_nats::ConnectOptions::new()
            .name("latch-bench lease watch")
            .connect(urls)
            .await?;
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("LATCH_LEADER").await?;
        let stream = js.get_stream("KV_LATCH_LEADER").await?;
        let direct = Arc::new(Mutex::new(Vec::new()));
        let at_leader = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (direct, at_leader, stop) = (direct.clone(), at_leader.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match kv.entry("leader").await {
                        Ok(Some(entry))
                            if entry.operation == async_nats::jetstream::kv::Operation::Put =>
                        {
                            record(
                                &direct,
                                Some(lease_holder(None, &entry.value)),
                                entry.revision,
                            )
                        }
                        Ok(_) => record(&direct, None, 0),
                        Err(error) => record(&direct, Some(format!("(error: {error})")), 0),
                    }
                    match stream
                        .get_last_raw_message_by_subject("$KV.LATCH_LEADER.leader")
                        .await
                    {
                        Ok(message) => record(
                            &at_leader,
                            Some(lease_holder(Some(&message.headers), &message.payload)),
                            message.sequence,
                        ),
                        Err(error)
                            if matches!(
                                error.kind(),
                                async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                            ) =>
                        {
                            record(&at_leader, None, 0)
                        }
                        Err(error) => record(&at_leader, Some(format!("(error: {error})")), 0),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Ok(Self {
            direct,
            at_leader,
            stop,
        })
    }

    /// When the lease was first seen vacant after `since` (direct get, and
    /// at the KV stream's leader).
    fn vacant_after(&self, since: Instant) -> (Option<Instant>, Option<Instant>) {
        let first = |log: &LeaseLog| {
            log.lock()
                .unwrap()
                .iter()
                .find(|(at, holder, _)| *at > since && holder.is_none())
                .map(|(at, _, _)| *at)
        };
        (first(&self.direct), first(&self.at_leader))
    }

    /// When a node other than `not` was first seen holding it after `since`.
    fn taken_after(&self, since: Instant, not: &str) -> Option<Instant> {
        self.at_leader
            .lock()
            .unwrap()
            .iter()
            .find(|(at, holder, _)| {
                *at > since
                    && holder
                        .as_deref()
                        .is_some_and(|h| h != not && !h.starts_with('('))
            })
            .map(|(at, _, _)| *at)
    }

    /// What the stream leader held between `from` and `to`: [ms after
    /// `since`, holder (null: no message), sequence].
    fn at_leader_between(&self, since: Instant, from: Instant, to: Instant) -> Value {
        Self::between(&self.at_leader, since, from, to)
    }

    fn between(log: &LeaseLog, since: Instant, from: Instant, to: Instant) -> Value {
        json!(
            log.lock()
                .unwrap()
                .iter()
                .filter(|(at, _, _)| *at >= from && *at <= to)
                .map(|(at, holder, seq)| {
                    let ms = if *at >= since {
                        ms(*at - since)
                    } else {
                        -ms(since - *at)
                    };
                    json!([ms, holder, seq])
                })
                .collect::<Vec<_>>()
        )
    }
}

impl Drop for LeaseWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// CPU time (user + system, clock ticks) of a process, from /proc.
fn cpu_ticks(pid: u32) -> Option<(String, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, ppid, ticks))
}

/// CPU ticks of this process and of the nats-servers it started.
fn cpu_now() -> (u64, u64) {
    let me = std::process::id();
    let own = cpu_ticks(me).map_or(0, |(_, _, t)| t);
    let nats = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(cpu_ticks)
        .filter(|(comm, ppid, _)| comm == "nats-server" && *ppid == me)
        .map(|(_, _, t)| t)
        .sum();
    (own, nats)
}

/// Runs `run` and says what it cost: synced batches of the handler (so
/// commands a batch) and CPU seconds of this process and the nats-servers
/// (clock ticks of 10 ms) against wall time.
fn accounted(
    handle: &CommandHandle,
    run: impl FnOnce() -> anyhow::Result<Load>,
) -> anyhow::Result<(Load, Value)> {
    let batches = || handle.metrics().batches_written.load(Ordering::Relaxed);
    let (batches_before, (own_before, nats_before)) = (batches(), cpu_now());
    let load = run()?;
    let (own_after, nats_after) = cpu_now();
    let synced = batches() - batches_before;
    let wall = load.elapsed.as_secs_f64();
    let own = (own_after - own_before) as f64 / 100.0;
    let nats = nats_after.saturating_sub(nats_before) as f64 / 100.0;
    let extra = json!({
        "synced_batches": synced,
        "commands_per_batch": load.latencies.len() as f64 / synced.max(1) as f64,
        "cpu_seconds_this_process": own,
        "cpu_seconds_nats_servers": nats,
        "cores_busy": (own + nats) / wall,
    });
    Ok((load, extra))
}

// -------------------------------------------------------------- takeover

/// An answer the takeover client got.
struct Ack {
    at: Instant,
    /// The slot whose URL answered.
    node: Option<usize>,
    status: u16,
}

/// One client issuing tokens one after the other against any node, as a
/// failover-aware client does: a new connection per request, 307 followed,
/// 503 and unreachable nodes retried every 20 ms with the same key.
struct TakeoverClient {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    troubles: Troubles,
    thread: std::thread::JoinHandle<()>,
}

impl TakeoverClient {
    fn start(cluster: &Cluster, admin: &str, account: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let troubles = Troubles::default();
        let urls: Vec<String> = cluster
            .slots
            .iter()
            .map(|s| format!("{}/v1/accounts/{account}/tokens", s.url))
            .collect();
        // "http://127.0.0.1:PORT/": what an answering URL starts with.
        let bases: Vec<String> = cluster
            .slots
            .iter()
            .map(|s| format!("{}/", s.url))
            .collect();
        let thread = {
            let (stop, acks, troubles, admin) = (
                stop.clone(),
                acks.clone(),
                troubles.clone(),
                admin.to_owned(),
            );
            std::thread::spawn(move || {
                // No pooled connections: a crashed node's listener is gone,
                // but an open connection to it would outlive `abort` here
                // (its task is not the server's), unlike after a real crash.
                let agent = agent(0, Duration::from_secs(10));
                let nonce = rand::random::<u64>();
                let body = json!({ "name": "takeover" });
                let mut next = 0usize;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("ha-bench-{nonce}-{n}");
                    while !stop.load(Ordering::Relaxed) {
                        let url = &urls[next % urls.len()];
                        next += 1;
                        match post_following(&agent, url, &admin, Some(&key), &body) {
                            // 409: an earlier attempt issued it (its answer,
                            // with the secret, was lost): answered all the same.
                            Ok((status @ (200 | 201 | 409), answered, _)) => {
                                acks.lock().unwrap().push(Ack {
                                    at: Instant::now(),
                                    node: bases.iter().position(|b| answered.starts_with(b)),
                                    status,
                                });
                                // Start the next command at the node that answered.
                                next = bases
                                    .iter()
                                    .position(|b| answered.starts_with(b))
                                    .unwrap_or(next);
                                break;
                            }
                            Ok((status, _, body)) => note(&troubles, problem(status, &body)),
                            Err(error) => note(&troubles, format!("transport: {error}")),
                        }
                        std::thread::sleep(RETRY_EVERY);
                    }
                }
            })
        };
        Self {
            stop,
            acks,
            troubles,
            thread,
        }
    }

    /// The first answer after `since` from a node other than `not`.
    fn first_answer_after(&self, since: Instant, not: usize) -> Option<(Instant, usize, u16)> {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.at > since && a.node.is_some_and(|n| n != not))
            .map(|a| (a.at, a.node.unwrap_or(usize::MAX), a.status))
    }

    fn answers_after_from(&self, since: Instant, node: usize) -> usize {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.at > since && a.node == Some(node))
            .count()
    }
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn millis(sorted: &[Duration]) -> Value {
    json!(sorted.iter().map(|d| ms(*d)).collect::<Vec<_>>())
}

fn takeover(
    runtime: &Runtime,
    cluster: &mut Cluster,
    admin: &str,
    options: &HaOptions,
) -> anyhow::Result<()> {
    let urls: Vec<String> = cluster.slots.iter().map(|s| s.url.clone()).collect();
    let account = create_account(&agent(0, Duration::from_secs(10)), &urls, admin)?;
    let client = TakeoverClient::start(cluster, admin, &account);
    let watch = runtime.block_on(LeaseWatch::start(cluster))?;
    let mut details = Vec::new();
    let mut following_waits = Vec::new();
    let mut takeovers = Vec::new();
    let mut elections = Vec::new();
    let mut aborts = Vec::new();
    let mut restarts = Vec::new();
    let mut late_answers_from_crashed = 0usize;
    let mut answered_409 = 0usize;
    let mut failure = None;
    for kill in 0..options.kills {
        let leader = runtime.block_on(cluster.wait_for_leader(Duration::from_secs(60)))?;
        runtime.block_on(cluster.wait_caught_up(leader, Duration::from_secs(60)))?;
        // Every standby can take over (its session runs).
        let following = runtime.block_on(cluster.wait_following(Duration::from_secs(60)))?;
        following_waits.push(following);
        // The client is being answered by this leader.
        let steady = Instant::now();
        while client
            .acks
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take_while(|a| a.at > steady)
            .all(|a| a.node != Some(leader))
        {
            if steady.elapsed() > Duration::from_secs(30) {
                bail!(
                    "kill {kill}: the client got no answer from leader {} in 30 s; troubles: {:?}",
                    cluster.slots[leader].name,
                    client.troubles.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Crash at a random moment of the lease's renewal cycle.
        let renew_cycle = cluster.lease / 6;
        std::thread::sleep(renew_cycle.mul_f64(rand::random::<f64>()));
        // How each node sees the cluster, from the crash to the first
        // answer, as it changes.
        let mut views: Vec<Value> = Vec::new();
        let mut last_views = cluster.views();
        let crashed_at = Instant::now();
        views.push(json!([0.0, last_views]));
        aborts.push(runtime.block_on(cluster.abort(leader)));
        let mut elected = None;
        let mut at_4s = None;
        let answered = loop {
            if at_4s.is_none() && crashed_at.elapsed() > Duration::from_secs(4) {
                at_4s = Some(cluster.describe());
            }
            if elected.is_none()
                && let &[new_leader] = cluster.leaders().as_slice()
            {
                elected = Some((crashed_at.elapsed(), new_leader));
            }
            let now_views = cluster.views();
            if now_views != last_views {
                views.push(json!([ms(crashed_at.elapsed()), now_views]));
                last_views = now_views;
            }
            if let Some(answer) = client.first_answer_after(crashed_at, leader) {
                break Some(answer);
            }
            if crashed_at.elapsed() > Duration::from_secs(60) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let Some((at, by, status)) = answered else {
            failure = Some(json!({
                "kill": kill,
                "crashed": cluster.slots[leader].name,
                "error": "no answer from a new leader within 60 s of the crash",
                "elected_after_ms": elected.map(|(d, _)| ms(d)),
                "cluster": cluster.describe(),
                "client_troubles": client.troubles.lock().unwrap().clone(),
            }));
            break;
        };
        takeovers.push(at - crashed_at);
        if let Some((after, _)) = elected {
            elections.push(after);
        }
        answered_409 += usize::from(status == 409);
        eprintln!(
            "ha: kill {kill}: {} crashed; {} answered after {:.0} ms (elected after {:?} ms)",
            cluster.slots[leader].name,
            cluster.slots[by].name,
            ms(at - crashed_at),
            elected.map(|(d, _)| ms(d)),
        );
        // Answers the crashed node still gave (requests its connection
        // tasks, which `abort` leaves running, had already handed to its
        // writer), before the same slot starts again.
        late_answers_from_crashed += client.answers_after_from(crashed_at, leader);
        restarts.push(runtime.block_on(cluster.start_node(leader))?);
        // The lease watch reads every 20 ms: read it once it has seen the
        // new holder (the restart took longer than that).
        let since = |at: Option<Instant>| at.map(|at| ms(at - crashed_at));
        let crashed = cluster.slots[leader].name.clone();
        let slow = at - crashed_at > Duration::from_secs(4);
        details.push(json!({
            "kill": kill,
            "crashed": crashed,
            "answered_by": cluster.slots[by].name,
            "lease_vacant_direct_get_ms": since(watch.vacant_after(crashed_at).0),
            "lease_vacant_at_stream_leader_ms": since(watch.vacant_after(crashed_at).1),
            "lease_taken_ms": since(watch.taken_after(crashed_at, &crashed)),
            "elected_ms": elected.map(|(d, _)| ms(d)),
            "answered_ms": ms(at - crashed_at),
            // What each node saw, for a takeover over 4 s only.
            "cluster_4s_after_crash": if slow { at_4s } else { None },
            "views_ms": if slow { Some(views) } else { None },
            "lease_at_stream_leader_ms": slow.then(|| watch.at_leader_between(
                crashed_at,
                crashed_at.checked_sub(Duration::from_secs(1)).unwrap_or(crashed_at),
                at + Duration::from_millis(100),
            )),
        }));
    }
    client.stop.store(true, Ordering::Relaxed);
    let _ = client.thread.join();
    let commands = client.acks.lock().unwrap().len();
    let troubles = client.troubles.lock().unwrap().clone();
    let samples = takeovers.clone();
    takeovers.sort_unstable();
    elections.sort_unstable();
    aborts.sort_unstable();
    restarts.sort_unstable();
    let max = takeovers.last().copied().unwrap_or_default();
    println!(
        "{}",
        json!({
            "scenario": "ha",
            "part": "takeover",
            "kills": options.kills,
            "samples": takeovers.len(),
            "lease_ms": cluster.lease.as_millis() as u64,
            "takeover_p50_ms": ms(percentile(&takeovers, 0.50)),
            "takeover_max_ms": ms(max),
            "takeover_min_ms": ms(takeovers.first().copied().unwrap_or_default()),
            "takeover_samples_ms": millis(&samples),
            "target_max_ms": 5000,
            "met_target": failure.is_none() && max <= Duration::from_secs(5),
            "elected_p50_ms": ms(percentile(&elections, 0.50)),
            "elected_max_ms": ms(elections.last().copied().unwrap_or_default()),
            "abort_p50_ms": ms(percentile(&aborts, 0.50)),
            "abort_max_ms": ms(aborts.last().copied().unwrap_or_default()),
            "waited_for_standbys_following_ms": millis(&following_waits),
            "replacement_start_p50_ms": ms(percentile(&restarts, 0.50)),
            "replacement_start_max_ms": ms(restarts.last().copied().unwrap_or_default()),
            "client_commands_answered": commands,
            "first_answers_409": answered_409,
            "answers_from_crashed_node_after_abort": late_answers_from_crashed,
            "client_retries": troubles,
            "failure": failure,
            "each_kill": details,
            "measured_from": "each crash once every standby follows the leader (names it: its session with NATS runs) and has its log; from Node::abort of the leader (a crash: lease not released) to the first 200/201/409 from another node, to a client issuing tokens one at a time against any node (307 followed, 503 and connection errors retried every 20 ms, one Idempotency-Key per command, a new connection per request); elected_*: to a node reporting Role::Leader; lease_*: the LATCH_LEADER entry read every 20 ms by direct get (as latchd reads it) and at the KV stream's leader",
            "setup": SETUP,
        })
    );
    if failure.is_some() {
        bail!("takeover failed; see the JSON line above");
    }
    Ok(())
}

// ------------------------------------------------------------ throughput

/// What one load run measured.
struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: BTreeMap<String, u64>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn p(&self, q: f64) -> u64 {
        percentile(&self.latencies, q).as_micros() as u64
    }
}

/// Token issues over HTTP at `url` from `concurrency` blocking clients
/// (keep-alive, one pooled connection each) for `run_for`.
fn http_issues(
    url: &str,
    admin: &str,
    account: &str,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<Load> {
    let agent = agent(concurrency, Duration::from_secs(10));
    let path = format!("{url}/v1/accounts/{account}/tokens");
    let troubles = Troubles::default();
    let started = Instant::now();
    let deadline = started + run_for;
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (agent, path, admin, troubles) = (
                agent.clone(),
                path.clone(),
                admin.to_owned(),
                troubles.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut latencies = Vec::new();
                let body = json!({ "name": "load" });
                while Instant::now() < deadline {
                    let at = Instant::now();
                    match post_following(&agent, &path, &admin, None, &body) {
                        Ok((201, _, _)) => latencies.push(at.elapsed()),
                        Ok((status, _, body)) => {
                            note(&troubles, problem(status, &body));
                            std::thread::sleep(RETRY_EVERY);
                        }
                        Err(error) => {
                            note(&troubles, format!("transport: {error}"));
                            std::thread::sleep(RETRY_EVERY);
                        }
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = latch_bench::thread_latencies(threads)?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let errors = troubles.lock().unwrap().clone();
    Ok(Load {
        latencies,
        elapsed,
        errors,
    })
}

/// Durable appends through the command handler (one event, an account
/// creation, per command) from `concurrency` tasks for `run_for`.
async fn appends(handle: CommandHandle, concurrency: usize, run_for: Duration) -> Load {
    let troubles = Troubles::default();
    let started = Instant::now();
    let deadline = started + run_for;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (handle, troubles) = (handle.clone(), troubles.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let command = Command::CreateAccount {
                        account_id: AccountId::new(),
                        name: AccountName::parse(&format!("ha-{worker}-{n}-{}", AccountId::new()))
                            .expect("valid"),
                        role: RoleName::parse("auditor").expect("valid"),
                        description: "benchmark".into(),
                    };
                    n += 1;
                    let at = Instant::now();
                    match handle
                        .submit(CommandRequest::new(Actor::System, command))
                        .await
                    {
                        Ok(Ok(_)) => latencies.push(at.elapsed()),
                        Ok(Err(rejection)) => note(&troubles, format!("rejected: {rejection}")),
                        Err(failure) => {
                            note(&troubles, format!("failed: {failure}"));
                            tokio::time::sleep(RETRY_EVERY).await;
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        if let Ok(mine) = task.await {
            latencies.extend(mine);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let errors = troubles.lock().unwrap().clone();
    Load {
        latencies,
        elapsed,
        errors,
    }
}

fn print_load(work: &str, mode: &str, concurrency: usize, load: &Load, cost: Value) {
    println!(
        "{}",
        json!({
            "cost": cost,
            "scenario": "ha",
            "part": "throughput",
            "work": work,
            "mode": mode,
            "concurrency": concurrency,
            "requests": load.latencies.len(),
            "seconds": load.elapsed.as_secs_f64(),
            "requests_per_second": load.per_second(),
            "latency_p50_us": load.p(0.50),
            "latency_p99_us": load.p(0.99),
            "errors": load.errors,
            "setup": match mode {
                "single-node" => "one latchd (relay to a 1-server nats-server), blocking HTTP/1.1 keep-alive clients on threads or tasks on its command handler; the idle HA cluster (3 nats-server, 3 latchd) runs meanwhile",
                _ => "HA leader of 3 latchd (R3 stream, 3 nats-server), blocking HTTP/1.1 keep-alive clients on threads or tasks on its command handler; all on the same cores",
            },
        })
    );
}

fn throughput(
    runtime: &Runtime,
    base: &Path,
    cluster: &Cluster,
    admin: &str,
    options: &HaOptions,
) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(options.seconds);
    let concurrency = options.concurrency;

    let nats = latch_testkit::NatsServer::start();
    let single = runtime.block_on(InProcessLatchd::with_nats(base, &nats))?;
    let account = create_account(
        &agent(1, Duration::from_secs(10)),
        std::slice::from_ref(&single.url),
        &single.admin,
    )?;
    let (single_http, cost) = accounted(&single.handle, || {
        http_issues(&single.url, &single.admin, &account, concurrency, run_for)
    })?;
    print_load(
        "http token.issue",
        "single-node",
        concurrency,
        &single_http,
        cost,
    );
    let (single_append, cost) = accounted(&single.handle, || {
        Ok(runtime.block_on(appends(single.handle.clone(), concurrency, run_for)))
    })?;
    print_load("append", "single-node", concurrency, &single_append, cost);
    runtime.block_on(single.shutdown())?;
    drop(nats);

    let leader = runtime.block_on(cluster.wait_for_leader(Duration::from_secs(60)))?;
    runtime.block_on(cluster.wait_caught_up(leader, Duration::from_secs(60)))?;
    let url = cluster.slots[leader].url.clone();
    let account = create_account(
        &agent(1, Duration::from_secs(10)),
        std::slice::from_ref(&url),
        admin,
    )?;
    let handle = cluster.node(leader).context("leader")?.commands();
    let (ha_http, cost) = accounted(&handle, || {
        http_issues(&url, admin, &account, concurrency, run_for)
    })?;
    print_load("http token.issue", "ha-leader", concurrency, &ha_http, cost);
    let still = runtime.block_on(cluster.wait_for_leader(Duration::from_secs(60)))?;
    let handle = cluster.node(still).context("leader")?.commands();
    let (ha_append, cost) = accounted(&handle, || {
        Ok(runtime.block_on(appends(handle.clone(), concurrency, run_for)))
    })?;
    print_load("append", "ha-leader", concurrency, &ha_append, cost);

    let compare = |ha: &Load, single: &Load| {
        json!({
            "ha_over_single": ha.per_second() / single.per_second().max(f64::MIN_POSITIVE),
            "added_latency_p50_us": ha.p(0.50) as i64 - single.p(0.50) as i64,
            "added_latency_p99_us": ha.p(0.99) as i64 - single.p(0.99) as i64,
            "met_target": ha.per_second() >= 0.5 * single.per_second(),
        })
    };
    println!(
        "{}",
        json!({
            "scenario": "ha",
            "part": "throughput-vs-single",
            "concurrency": concurrency,
            "http_token_issue": compare(&ha_http, &single_http),
            "append": compare(&ha_append, &single_append),
            "target": "HA >= 50% of single-node throughput",
            "batches_in_flight": options.batches_in_flight,
            "leader_changed_during_run": still != leader || cluster.leaders() != [still],
        })
    );
    Ok(())
}

// ----------------------------------------------------------- propagation

fn propagation(
    runtime: &Runtime,
    cluster: &mut Cluster,
    options: &HaOptions,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
        let handle = cluster.node(leader).context("leader")?.commands();
        let account_id = AccountId::new();
        submit_ok(
            &handle,
            Command::CreateAccount {
                account_id,
                name: AccountName::parse(&format!("propagation-{}", rand::random::<u32>()))?,
                role: RoleName::parse("auditor")?,
                description: String::new(),
            },
        )
        .await?;
        // One more than revoked: it stays live for the probe phase.
        let mut tokens = Vec::with_capacity(options.revocations + 1);
        for _ in 0..=options.revocations {
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
        let (_, live) = tokens.pop().expect("one more than revoked");
        let public_key = cluster.keyring.current().public_key();
        let mut verifiers = Vec::with_capacity(options.verifiers);
        for _ in 0..options.verifiers {
            let mut config = latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(
                cluster.nats.url(),
            ));
            config.trusted_keys = latch_bus::TrustedKeys::new([public_key.clone()]);
            verifiers.push(latch_verify::Verifier::connect(config).await?);
        }
        let read = Permission::parse("accounts:read")?;
        let mut latencies = Vec::with_capacity(tokens.len() * verifiers.len());
        let mut from_submit = Vec::with_capacity(tokens.len() * verifiers.len());
        let mut other_refusals = 0u64;
        for (token_id, secret) in &tokens {
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
            let mut pending: Vec<usize> = (0..verifiers.len()).collect();
            while !pending.is_empty() {
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
                    "{} verifiers never saw the revocation",
                    pending.len()
                );
                tokio::task::yield_now().await;
            }
        }
        latencies.sort_unstable();
        from_submit.sort_unstable();
        let total = |stat: fn(latch_verify::VerifierStats) -> u64| {
            verifiers.iter().map(|v| stat(v.stats())).sum::<u64>()
        };
        let rejected = total(|s| s.rejected);
        println!(
            "{}",
            json!({
                "scenario": "ha",
                "part": "propagation",
                "verifiers": verifiers.len(),
                "revocations": tokens.len(),
                "samples": latencies.len(),
                "p50_us": percentile(&latencies, 0.50).as_micros() as u64,
                "p99_us": percentile(&latencies, 0.99).as_micros() as u64,
                "max_us": latencies.last().copied().unwrap_or_default().as_micros() as u64,
                "from_submit_p50_us": percentile(&from_submit, 0.50).as_micros() as u64,
                "from_submit_p99_us": percentile(&from_submit, 0.99).as_micros() as u64,
                "from_submit_max_us": from_submit.last().copied().unwrap_or_default().as_micros() as u64,
                "events_applied": total(|s| s.events_applied),
                "events_rejected": rejected,
                "polls_refused_for_another_reason": other_refusals,
                "measured_from": "revoke command answered by the HA leader's command handler (R3 stream ack + local fsync) to each verifier refusing the token as revoked; from_submit_*: from submitting it",
                "path": "leader's writer -> JetStream R3 publish (3 nats-server) -> core NATS live tail per verifier (signed, trusted key) -> apply",
                "setup": SETUP,
            })
        );
        anyhow::ensure!(rejected == 0, "verifiers refused {rejected} genuine events");

        // Every latchd down: only the verifiers' stream probes keep them current.
        let probes = |verifiers: &[latch_verify::Verifier]| {
            verifiers.iter().map(|v| v.stats().stream_probes).sum::<u64>()
        };
        let before: Vec<latch_verify::VerifierStats> = verifiers.iter().map(|v| v.stats()).collect();
        let crashed_at = Instant::now();
        for index in 0..cluster.slots.len() {
            cluster.abort(index).await;
        }
        let mut per_second = Vec::new();
        let mut last = probes(&verifiers);
        let start_count = before.iter().map(|s| s.stream_probes).sum::<u64>();
        for second in 1..=options.probe_seconds {
            let until = crashed_at + Duration::from_secs(second);
            tokio::time::sleep_until(until.into()).await;
            let now = probes(&verifiers);
            per_second.push(now - last);
            last = now;
        }
        let window = crashed_at.elapsed();
        let after: Vec<latch_verify::VerifierStats> = verifiers.iter().map(|v| v.stats()).collect();
        let delta = |stat: fn(&latch_verify::VerifierStats) -> u64| {
            after.iter().map(stat).sum::<u64>() - before.iter().map(stat).sum::<u64>()
        };
        let total_probes = last - start_count;
        let stale = verifiers.iter().filter(|v| v.is_stale()).count();
        let accepting = verifiers
            .iter()
            .filter(|v| v.verify(&live, &read).is_ok())
            .count();
        // Probing starts 1.5 heartbeat intervals after the last heartbeat:
        // the steady rate is over the second half of the window.
        let half = per_second.len() / 2;
        let steady = per_second[half..].iter().sum::<u64>() as f64
            / (per_second.len() - half).max(1) as f64;
        println!(
            "{}",
            json!({
                "scenario": "ha",
                "part": "stream-probe",
                "verifiers": verifiers.len(),
                "seconds_without_latchd": window.as_secs_f64(),
                "stream_probes": total_probes,
                "stream_probes_per_second": total_probes as f64 / window.as_secs_f64(),
                "stream_probes_per_second_steady": steady,
                "stream_probes_each_second": per_second,
                "jetstream_api_requests_per_second_steady": steady * 2.0,
                "stream_probe_failures": delta(|s| s.stream_probe_failures),
                "stream_probe_refusals": delta(|s| s.stream_probe_refusals),
                "stale_verifiers_at_end": stale,
                "verifiers_accepting_a_live_token_at_end": accepting,
                "note": "every latchd aborted; each probe is one STREAM.INFO and (at least) one STREAM.MSG.GET request, so JetStream API requests/s = 2 x probes/s",
            })
        );
        drop(verifiers);
        anyhow::Ok(())
    })
}
