//! The command handler: the single writer.
//!
//! One thread owns the write side. Callers send commands (with actor,
//! idempotency key and request id) over a channel and await the answer. The
//! writer drains what is queued, decides each command against a working
//! copy of the state that already holds the earlier commands of the batch,
//! writes all their events in one synced `WriteBatch` (group commit), then
//! applies them to the committed state that readers see, and answers.
//!
//! Readers only ever see durable state: the committed state changes after
//! the fsync. The working copy costs a second copy of the state in memory;
//! see docs/adr/0003-single-writer-group-commit.md.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use latch_core::{
    Actor, Command, CommandContext, EventEnvelope, EventId, IdempotencyKeyDigest, Position,
    RecordedEvent, State, VerifierView, authorize, decide, evolve,
};
use latch_store::{
    AppendRequest, Appended, EventStore, ExpectedVersion, IdempotencyKey, IdempotencyRecord,
    PreparedAppend, RecordFormat, ReplicatedEvent, StoredEvent,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::command_outcome::{CommandReceipt, CommandRejection, CommandResult, HandlerFailure};
use crate::event_codec;
use crate::ha::{LeaderSession, PendingBatch};
use crate::rebuild::{RebuildError, Rebuilt, rebuild};
use crate::record_upgrade_task::RecordUpgradeTask;
use chrono::{DateTime, Utc};

/// One command and what surrounds it.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub command: Command,
    pub actor: Actor,
    pub request_id: Option<String>,
    pub idempotency: Option<Idempotency>,
    /// `If-Match`: the version the caller believes the command's target
    /// stream is at.
    pub expected_version: Option<u64>,
}

impl CommandRequest {
    pub fn new(actor: Actor, command: Command) -> Self {
        Self {
            command,
            actor,
            request_id: None,
            idempotency: None,
            expected_version: None,
        }
    }
}

/// A caller's idempotency key and what its request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// Identifies the request the key was first used with (e.g. a hash of
    /// the HTTP body). A retry must match it; a different request under the
    /// same key is refused.
    pub fingerprint: String,
}

impl Idempotency {
    /// A fingerprint of the command itself: right when the command holds
    /// nothing generated per attempt (ids, digests).
    pub fn of_command(key: impl Into<String>, command: &Command) -> Self {
        let json = serde_json::to_vec(command).expect("commands serialise");
        Self {
            key: key.into(),
            fingerprint: hex::encode(Sha256::digest(json)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// Most commands decided and written in one batch.
    pub max_batch: usize,
    /// Commands waiting for the writer before `submit` waits for room.
    pub queue_depth: usize,
    /// Save a checkpoint (the state, with the chain hash) after this many
    /// new events...
    pub snapshot_every: u64,
    /// ...and after this long, if any event was appended since the last
    /// one (investigations start from the nearest checkpoint).
    pub checkpoint_every: chrono::TimeDelta,
    /// Checkpoints kept (the oldest go first); each holds the whole state.
    pub checkpoints_kept: usize,
    /// HA mode: commands are decided only while this node leads, and each
    /// batch is acknowledged by the replicated stream before it is written
    /// (see `crate::ha`).
    pub replicated: bool,
    /// HA leader: most batches published and awaiting the stream's
    /// acknowledgement at once (the next is decided and published while
    /// earlier ones are acknowledged and written). 1: one at a time.
    pub max_batches_in_flight: usize,
    /// Index every event by token, account, actor and time in its own
    /// append (ADR 0026). Off only to measure what the index costs: the
    /// index then falls behind, readers stop trusting it, and the next
    /// start with it on catches it up.
    pub index_log: bool,
    /// The format new records are written in (ADR 0027). `Json` keeps the
    /// log readable by a latchd from before the binary format.
    pub record_format: RecordFormat,
    /// Rewrite the records stored as JSON in the binary format, in the
    /// background while serving (every hash, and so the chain, unchanged).
    pub upgrade_records: bool,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_depth: 4096,
            snapshot_every: 100_000,
            checkpoint_every: chrono::TimeDelta::days(1),
            checkpoints_kept: latch_store::DEFAULT_CHECKPOINTS_KEPT,
            replicated: false,
            max_batches_in_flight: 4,
            index_log: true,
            record_format: RecordFormat::Binary,
            upgrade_records: false,
        }
    }
}

/// Counters for `/metrics` and benches.
#[derive(Debug, Default)]
pub struct HandlerMetrics {
    pub commands_accepted: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub commands_replayed: AtomicU64,
    pub commands_failed: AtomicU64,
    pub events_appended: AtomicU64,
    pub batches_written: AtomicU64,
}

// `Stop` is sent once per process; boxing every submission to shrink the
// enum would allocate per command for nothing.
#[allow(clippy::large_enum_variant)]
enum Message {
    Submit(CommandRequest, oneshot::Sender<CommandResult>),
    /// Events the leader wrote, to append as they are (HA standby).
    Replicate(ReplicatedBatch, oneshot::Sender<Result<Position, HandlerFailure>>),
    /// Set aside the log after a position (HA: a tail the stream lacks).
    Truncate(
        Position,
        Option<u64>,
        oneshot::Sender<Result<Vec<StoredEvent>, HandlerFailure>>,
    ),
    Stop,
}

/// Events read from the replicated stream, checked, to append in order.
pub struct ReplicatedBatch {
    /// Each event as stored, and decoded.
    pub events: Vec<(ReplicatedEvent, RecordedEvent)>,
    /// The stream sequence of the last message read.
    pub stream_sequence: u64,
}

/// The writer's part in HA mode: whether it leads, and how it publishes.
struct Replication {
    /// `Some` while this node leads.
    leader: Mutex<Option<LeaderSession>>,
    /// Woken when the writer gives up leading (a publish failed).
    deposed: tokio::sync::Notify,
    /// Until when (ms after `epoch`) the last lease renewal lets this node
    /// publish: a leader that was paused or cut off past it publishes
    /// nothing, so no event it decided then reaches anyone (core NATS
    /// subscribers see a publish even when the stream refuses it).
    publish_until_ms: AtomicU64,
    epoch: std::time::Instant,
}

impl Default for Replication {
    fn default() -> Self {
        Self {
            leader: Mutex::new(None),
            deposed: tokio::sync::Notify::new(),
            publish_until_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }
}

impl Replication {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// A cheap, cloneable way to submit commands and read committed state.
#[derive(Clone)]
pub struct CommandHandle {
    sender: mpsc::Sender<Message>,
    committed: Arc<RwLock<State>>,
    /// The committed state as verifiers hold it, kept beside `committed` so
    /// that their snapshot is an encode, not a rebuild.
    committed_view: Arc<RwLock<VerifierView>>,
    store: Arc<EventStore>,
    metrics: Arc<HandlerMetrics>,
    replication: Option<Arc<Replication>>,
}

impl CommandHandle {
    /// HA: from now on this node decides commands, publishing through
    /// `session`, for `for_at_most` unless the lease is renewed
    /// (`lease_renewed`).
    pub fn lead(&self, session: LeaderSession, for_at_most: std::time::Duration) {
        if let Some(replication) = &self.replication {
            *replication.leader.lock().expect("leader lock") = Some(session);
            self.lease_renewed(for_at_most);
        }
    }

    /// HA: the lease was renewed just now; the writer may publish for
    /// `for_at_most` more.
    pub fn lease_renewed(&self, for_at_most: std::time::Duration) {
        if let Some(replication) = &self.replication {
            let until = replication.now_ms() + for_at_most.as_millis() as u64;
            replication.publish_until_ms.store(until, Ordering::SeqCst);
        }
    }

    /// HA: stop deciding commands (they are answered `NotLeader`). Waits
    /// for a batch being published or settled to finish; batches still in
    /// flight then fail (503: the stream may hold them, and following it
    /// brings them to this log). Returns whether it led.
    pub async fn step_down(&self) -> bool {
        let Some(replication) = self.replication.clone() else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            replication.leader.lock().expect("leader lock").take().is_some()
        })
        .await
        .unwrap_or(false)
    }

    /// HA: resolves when the writer gave up leading because the stream did
    /// not acknowledge a batch.
    pub async fn deposed(&self) {
        match &self.replication {
            Some(replication) => replication.deposed.notified().await,
            None => std::future::pending().await,
        }
    }

    /// HA standby: appends events the leader wrote and folds them into the
    /// state.
    pub async fn replicate(&self, batch: ReplicatedBatch) -> Result<Position, HandlerFailure> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Replicate(batch, reply))
            .await
            .map_err(|_| HandlerFailure::Stopped)?;
        answer.await.map_err(|_| HandlerFailure::Stopped)?
    }

    /// HA: removes the log after `keep` (returning what was removed) and
    /// rebuilds the state from what is left.
    pub async fn truncate_after(
        &self,
        keep: Position,
        stream_sequence: Option<u64>,
    ) -> Result<Vec<StoredEvent>, HandlerFailure> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Truncate(keep, stream_sequence, reply))
            .await
            .map_err(|_| HandlerFailure::Stopped)?;
        answer.await.map_err(|_| HandlerFailure::Stopped)?
    }

    pub async fn submit(&self, request: CommandRequest) -> CommandResult {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Submit(request, reply))
            .await
            .map_err(|_| HandlerFailure::Stopped)?;
        answer.await.map_err(|_| HandlerFailure::Stopped)?
    }

    /// The committed (durable) state. Hold the guard briefly: the writer
    /// waits for it to apply each batch.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.committed.read().expect("state lock poisoned")
    }

    /// The committed state as verifiers hold it (for `GET /v1/snapshot`).
    pub fn verifier_view(&self) -> RwLockReadGuard<'_, VerifierView> {
        self.committed_view.read().expect("view lock poisoned")
    }

    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    pub fn metrics(&self) -> &HandlerMetrics {
        &self.metrics
    }
}

/// What one batch has planned so far, command by command: its appends, the
/// idempotency keys it has used, each stream's version as the batch leaves
/// it, and the next free position.
struct PlannedBatch {
    requests: Vec<AppendRequest>,
    /// Scoped key → (index of the command that used it, its fingerprint).
    keys: HashMap<String, (usize, String)>,
    versions: HashMap<String, u64>,
    next: Position,
}

impl PlannedBatch {
    fn starting_at(next: Position) -> Self {
        Self {
            requests: Vec::new(),
            keys: HashMap::new(),
            versions: HashMap::new(),
            next,
        }
    }
}

/// Owns the writer thread.
pub struct CommandHandler {
    handle: CommandHandle,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The background upgrade of JSON records, while it runs.
    upgrade: Mutex<Option<RecordUpgradeTask>>,
}

impl CommandHandler {
    /// Rebuilds state from the log (snapshot + tail) and starts the writer.
    pub fn start(
        store: Arc<EventStore>,
        clock: Arc<dyn Clock>,
        config: HandlerConfig,
    ) -> Result<(Self, Rebuilt), RebuildError> {
        // Every event this handler appends (or replicates) is indexed in its
        // own batch; what an older latchd appended is indexed now.
        let started = std::time::Instant::now();
        let indexed = match config.index_log {
            true => store.index_with(Arc::new(latch_audit::LogIndexer), &mut |_, _| {})?,
            false => 0,
        };
        if indexed > 0 {
            tracing::info!(
                events = indexed,
                took_ms = started.elapsed().as_millis() as u64,
                "indexed the log's events by token, account, actor and time"
            );
        }
        // API activity records by account and token, likewise; records an
        // older latchd wrote are indexed on a thread of the store's own
        // (it logs when done) while latchd serves.
        if config.index_log {
            store.index_activity_with(Arc::new(latch_audit::ActivityRecordIndexer))?;
        }
        let rebuilt = rebuild(&store)?;
        store.set_record_format(config.record_format);
        let upgrade = match config.upgrade_records {
            true => Some(RecordUpgradeTask::start(store.clone())?),
            false => None,
        };
        let committed = Arc::new(RwLock::new(rebuilt.state.clone()));
        let committed_view = Arc::new(RwLock::new(VerifierView::of(&rebuilt.state)));
        let metrics = Arc::new(HandlerMetrics::default());
        let (sender, receiver) = mpsc::channel(config.queue_depth);
        let replication = config.replicated.then(|| Arc::new(Replication::default()));
        let now = clock.now();
        let writer = Writer {
            replication: replication.clone(),
            working: rebuilt.state.clone(),
            committed: committed.clone(),
            committed_view: committed_view.clone(),
            store: store.clone(),
            clock,
            metrics: metrics.clone(),
            last_snapshot: rebuilt.snapshot.unwrap_or(Position::ZERO),
            last_snapshot_at: checkpoint_time(&store, rebuilt.snapshot).or(Some(now)),
            config,
            in_flight: VecDeque::new(),
        };
        let thread = std::thread::Builder::new()
            .name("latch-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(latch_store::StoreError::from)?;
        let handle = CommandHandle {
            sender,
            committed,
            committed_view,
            store,
            metrics,
            replication,
        };
        Ok((
            Self {
                handle,
                writer: Mutex::new(Some(thread)),
                upgrade: Mutex::new(upgrade),
            },
            rebuilt,
        ))
    }

    pub fn handle(&self) -> CommandHandle {
        self.handle.clone()
    }

    /// Finishes every command already queued, refuses new ones, saves a
    /// snapshot and stops the writer.
    pub async fn shutdown(&self) {
        let upgrade = self.upgrade.lock().expect("upgrade lock").take();
        if let Some(upgrade) = upgrade {
            let _ = tokio::task::spawn_blocking(move || upgrade.stop()).await;
        }
        let _ = self.handle.sender.send(Message::Stop).await;
        let thread = self.writer.lock().expect("writer lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A handler dropped without `shutdown` still stops its writer and waits
/// for it: the writer must not be writing to RocksDB (its shutdown
/// snapshot, the log's close) while the process exits, which aborts the
/// process ("pthread lock: Invalid argument") in tests that end quickly.
impl Drop for CommandHandler {
    fn drop(&mut self) {
        if let Some(upgrade) = self.upgrade.lock().map(|mut u| u.take()).unwrap_or(None) {
            upgrade.stop();
        }
        let thread = self.writer.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(thread) = thread
            && self.handle.sender.try_send(Message::Stop).is_ok()
        {
            let _ = thread.join();
        }
    }
}

struct Writer {
    replication: Option<Arc<Replication>>,
    working: State,
    committed: Arc<RwLock<State>>,
    committed_view: Arc<RwLock<VerifierView>>,
    store: Arc<EventStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<HandlerMetrics>,
    last_snapshot: Position,
    /// When the last checkpoint was saved (`None`: not by this process;
    /// the first batch after a start saves one).
    last_snapshot_at: Option<DateTime<Utc>>,
    config: HandlerConfig,
    /// HA leader: batches published, oldest first, not acknowledged by the
    /// stream yet; nothing of them is written or answered.
    in_flight: VecDeque<InFlight>,
}

type Submission = (CommandRequest, oneshot::Sender<CommandResult>);

/// An HA leader's batch between its publish and the stream's
/// acknowledgement: decided (the working state holds it), prepared, sent.
/// It is written and answered when settled, in order; if it fails, every
/// batch after it fails too (they were decided against it).
struct InFlight {
    batch: Vec<Submission>,
    plans: Vec<Plan>,
    /// `None`: nothing to write (rejections, replays); answered once the
    /// batches before it are settled.
    append: Option<(PreparedAppend, PendingBatch)>,
    /// The scoped idempotency keys its commands used.
    keys: HashSet<String>,
    /// Stream versions and the next position as it leaves them.
    versions: HashMap<String, u64>,
    next: Position,
}

/// What became of one submission while its batch was planned.
enum Plan {
    /// Answer decided without writing (a rejection, or a no-op).
    Answer(Result<CommandReceipt, CommandRejection>),
    /// An earlier append under the same key, replayed to this actor.
    Replay(IdempotencyRecord, Actor),
    /// Written by `requests[index]`; these are its events.
    Append {
        index: usize,
        events: Vec<RecordedEvent>,
    },
    /// Same key and request as `plans[earlier]` in this batch.
    SameAs(usize),
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut stopping = false;
        while !stopping {
            // With batches in flight, what is queued now is decided and
            // published at once; when nothing is, the oldest is settled.
            let first = if self.in_flight.is_empty() {
                match receiver.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            } else {
                match receiver.try_recv() {
                    Ok(message) => message,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.settle_oldest();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            };
            let mut batch = Vec::new();
            let mut message = Some(first);
            while let Some(current) = message.take() {
                match current {
                    Message::Submit(request, reply) => batch.push((request, reply)),
                    // Everything queued before the stop is still processed.
                    Message::Stop => stopping = true,
                    Message::Replicate(replicated, reply) => {
                        if !batch.is_empty() {
                            self.process(std::mem::take(&mut batch));
                        }
                        self.settle_all();
                        let _ = reply.send(self.replicate(replicated));
                    }
                    Message::Truncate(keep, sequence, reply) => {
                        if !batch.is_empty() {
                            self.process(std::mem::take(&mut batch));
                        }
                        self.settle_all();
                        let _ = reply.send(self.truncate(keep, sequence));
                    }
                }
                if batch.len() >= self.config.max_batch {
                    break;
                }
                message = receiver.try_recv().ok();
            }
            if !batch.is_empty() {
                self.process(batch);
            }
        }
        self.settle_all();
        // Anything that raced the stop is refused: its senders see `Stopped`.
        receiver.close();
        while let Ok(message) = receiver.try_recv() {
            match message {
                Message::Submit(_, reply) => {
                    let _ = reply.send(Err(HandlerFailure::Stopped));
                }
                Message::Replicate(_, reply) => {
                    let _ = reply.send(Err(HandlerFailure::Stopped));
                }
                Message::Truncate(_, _, reply) => {
                    let _ = reply.send(Err(HandlerFailure::Stopped));
                }
                Message::Stop => {}
            }
        }
        self.snapshot(true);
    }

    fn process(&mut self, batch: Vec<Submission>) {
        if let Some(replication) = self.replication.clone() {
            return self.process_replicated(&replication, batch);
        }
        let mut planned = PlannedBatch::starting_at(self.store.head().position.next());
        let (plans, mut failure) = self.plan_batch(&batch, &mut planned);
        if failure.is_none() && !planned.requests.is_empty() {
            failure = self.write(&planned.requests, &plans).err();
        }
        match failure {
            Some(failure) => {
                // Nothing of this batch is durable: the working copy has to
                // forget it. Every command decided against it is answered
                // with the failure, since its decision may have depended on
                // the lost ones.
                tracing::error!(error = %failure, "append failed; state reset to the last durable position");
                self.fail_in_flight(failure, batch);
            }
            None => self.answer(batch, &plans),
        }
    }

    /// Decides each request of `batch` in turn into `planned`; stops at the
    /// first store failure (what was planned before it is then void).
    fn plan_batch(
        &mut self,
        batch: &[Submission],
        planned: &mut PlannedBatch,
    ) -> (Vec<Plan>, Option<HandlerFailure>) {
        let mut plans: Vec<Plan> = Vec::with_capacity(batch.len());
        for (index, (request, _)) in batch.iter().enumerate() {
            match self.plan(request, index, planned) {
                Ok(plan) => plans.push(plan),
                Err(store_failure) => return (plans, Some(store_failure)),
            }
        }
        (plans, None)
    }

    /// Answers a batch whose appends are durable (and applied).
    fn answer(&mut self, batch: Vec<Submission>, plans: &[Plan]) {
        let answers = self.answers(plans);
        for ((_, reply), answer) in batch.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        self.snapshot(false);
    }

    /// Decides one request of the batch against the working state (which
    /// already holds the batch's earlier commands) and adds its append to
    /// `planned`.
    fn plan(
        &mut self,
        request: &CommandRequest,
        index: usize,
        planned: &mut PlannedBatch,
    ) -> Result<Plan, HandlerFailure> {
        let ctx = CommandContext {
            actor: request.actor,
            now: self.clock.now(),
        };
        // With a key, a caller who may not run this command learns that
        // before anything about the key: a replay is authorized as if it
        // were asked now, so a caller that has since lost the permission (or
        // its token) gets nothing back. Without one, `decide` checks the same
        // first. (The HTTP and NATS routes leave this check to here.)
        if request.idempotency.is_some()
            && let Err(rejection) = authorize(&self.working, &ctx, &request.command)
        {
            return Ok(Plan::Answer(Err(rejection.into())));
        }
        let scoped_key = request
            .idempotency
            .as_ref()
            .map(|i| (scope_key(&request.actor, &i.key), i.fingerprint.clone()));
        if let Some((key, fingerprint)) = &scoped_key {
            if let Some((earlier, earlier_fingerprint)) = planned.keys.get(key) {
                return Ok(if earlier_fingerprint == fingerprint {
                    Plan::SameAs(*earlier)
                } else {
                    Plan::Answer(Err(CommandRejection::IdempotencyKeyReused))
                });
            }
            if let Some(record) = self.store.idempotency(key)? {
                if record.fingerprint != *fingerprint {
                    return Ok(Plan::Answer(Err(CommandRejection::IdempotencyKeyReused)));
                }
                // A replay answers what the original request got (authorized
                // above, as if it were asked now).
                return Ok(Plan::Replay(record, request.actor));
            }
        }

        // Decided first, so that a caller who may not do this, or asks
        // something invalid, learns that and not the target's version.
        let now = ctx.now;
        let events = match decide(&self.working, &ctx, &request.command) {
            Ok(events) => events,
            Err(rejection) => return Ok(Plan::Answer(Err(rejection.into()))),
        };

        let target = request.command.target_stream().into_string();
        let expectations = match request.expected_version {
            None => Vec::new(),
            Some(expected) => {
                let actual = stream_version(&self.store, &planned.versions, &target)?;
                if actual != expected {
                    return Ok(Plan::Answer(Err(CommandRejection::VersionConflict {
                        stream: target,
                        expected: ExpectedVersion::Exact(expected),
                        actual,
                    })));
                }
                vec![(target, ExpectedVersion::Exact(expected))]
            }
        };

        let mut recorded = Vec::with_capacity(events.len());
        for event in events {
            let stream = event.stream().into_string();
            let version = stream_version(&self.store, &planned.versions, &stream)? + 1;
            planned.versions.insert(stream, version);
            let envelope = EventEnvelope {
                id: EventId::new(),
                at: now,
                actor: request.actor,
                request_id: request.request_id.clone(),
                idempotency_key_sha256: request
                    .idempotency
                    .as_ref()
                    .map(|i| IdempotencyKeyDigest::of(&i.key)),
                event,
            };
            let event = RecordedEvent {
                position: planned.next,
                version,
                envelope,
            };
            planned.next = planned.next.next();
            evolve(&mut self.working, &event);
            recorded.push(event);
        }

        if recorded.is_empty() && scoped_key.is_none() {
            return Ok(Plan::Answer(Ok(CommandReceipt {
                events: Vec::new(),
                replayed: false,
            })));
        }
        if let Some((key, fingerprint)) = &scoped_key {
            planned
                .keys
                .insert(key.clone(), (index, fingerprint.clone()));
        }
        planned.requests.push(AppendRequest {
            events: recorded
                .iter()
                .map(|e| event_codec::to_new_event(&e.envelope))
                .collect(),
            expectations,
            idempotency: scoped_key.map(|(key, fingerprint)| IdempotencyKey { key, fingerprint }),
        });
        Ok(Plan::Append {
            index: planned.requests.len() - 1,
            events: recorded,
        })
    }

    /// Writes the batch and, once it is durable, applies it to the
    /// committed state.
    fn write(&mut self, requests: &[AppendRequest], plans: &[Plan]) -> Result<(), HandlerFailure> {
        let outcomes = self.store.append(requests)?;
        self.apply_committed(&outcomes, plans)
    }

    /// Applies what a durable append wrote (`outcomes`, per request) to the
    /// committed state, plan by plan.
    fn apply_committed(
        &mut self,
        outcomes: &[Result<Appended, latch_store::AppendRejected>],
        plans: &[Plan],
    ) -> Result<(), HandlerFailure> {
        let mut appended = 0u64;
        {
            let mut committed = self.committed.write().expect("state lock poisoned");
            let mut view = self.committed_view.write().expect("view lock poisoned");
            for plan in plans {
                let Plan::Append { index, events } = plan else {
                    continue;
                };
                match &outcomes[*index] {
                    Ok(Appended::Written { first, count }) => {
                        debug_assert_eq!(events.first().map_or(*first, |e| e.position), *first);
                        debug_assert_eq!(events.len() as u64, *count);
                        for event in events {
                            evolve(&mut committed, event);
                            view.apply(event);
                        }
                        appended += count;
                    }
                    other => {
                        // The writer pre-checks keys and versions, so the
                        // store can only disagree if something else writes.
                        return Err(HandlerFailure::Inconsistent(format!(
                            "the store answered {other:?} to a planned append"
                        )));
                    }
                }
            }
        }
        self.metrics
            .events_appended
            .fetch_add(appended, Ordering::Relaxed);
        self.metrics.batches_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// HA: decides `batch` against the working state (which holds the
    /// batches in flight), publishes its events to the replicated stream
    /// after theirs, and leaves it in flight: it is written to this log and
    /// answered when the stream has acknowledged it (`settle_oldest`), so
    /// this log never holds an event the stream does not. Publishing the
    /// next batch while earlier ones are acknowledged and written is what
    /// keeps the stream's round trip off the critical path.
    fn process_replicated(&mut self, replication: &Replication, batch: Vec<Submission>) {
        if replication.leader.lock().expect("leader lock").is_none() {
            return self.fail_in_flight(HandlerFailure::NotLeader, batch);
        }
        // A key a batch in flight used is answered from what it wrote:
        // settle first.
        let in_flight_keys: HashSet<&String> =
            self.in_flight.iter().flat_map(|f| f.keys.iter()).collect();
        let reuses_a_key = batch.iter().any(|(request, _)| {
            request
                .idempotency
                .as_ref()
                .is_some_and(|i| in_flight_keys.contains(&scope_key(&request.actor, &i.key)))
        });
        drop(in_flight_keys);
        if reuses_a_key {
            self.settle_all();
        }

        let mut planned = match self.in_flight.back() {
            Some(last) => PlannedBatch {
                versions: last.versions.clone(),
                ..PlannedBatch::starting_at(last.next)
            },
            None => PlannedBatch::starting_at(self.store.head().position.next()),
        };
        let (plans, failure) = self.plan_batch(&batch, &mut planned);
        let append = match failure {
            Some(failure) => Err(failure),
            None if planned.requests.is_empty() => Ok(None),
            None => self.publish(replication, &planned.requests).map(Some),
        };
        match append {
            Ok(append) => self.in_flight.push_back(InFlight {
                batch,
                plans,
                append,
                keys: planned.keys.into_keys().collect(),
                versions: planned.versions,
                next: planned.next,
            }),
            Err(failure) => {
                // What is in flight was sent before this batch, and the
                // stream may hold it: it is settled (written if
                // acknowledged), then this batch fails.
                self.settle_all();
                tracing::error!(error = %failure, "ha: a batch could not be published; state reset to the last durable position");
                self.fail_in_flight(failure, batch);
                return;
            }
        }
        while self.in_flight.len() > self.config.max_batches_in_flight.max(1) {
            self.settle_oldest();
        }
    }

    /// HA leader: prepares `requests` after the batches in flight and
    /// sends their events to the stream. A leader whose lease went
    /// unrenewed too long publishes nothing and stops leading.
    fn publish(
        &self,
        replication: &Replication,
        requests: &[AppendRequest],
    ) -> Result<(PreparedAppend, PendingBatch), HandlerFailure> {
        let mut leader = replication.leader.lock().expect("leader lock");
        if replication.now_ms() > replication.publish_until_ms.load(Ordering::SeqCst) {
            tracing::error!("ha: the lease was not renewed in time (this node was paused or cut off); publishing nothing and stepping down");
            *leader = None;
            drop(leader);
            replication.deposed.notify_one();
            return Err(HandlerFailure::Replication(
                "this node could not renew its lease in time".into(),
            ));
        }
        let Some(session) = leader.as_mut() else {
            return Err(HandlerFailure::NotLeader);
        };
        let prepared = match self.in_flight.iter().rev().find_map(|f| f.append.as_ref()) {
            Some((pending, _)) => self.store.prepare_following(pending, requests)?,
            None => self.store.prepare(requests)?,
        };
        match session.start(prepared.events(), prepared.idempotency_records()) {
            Ok(pending) => Ok((prepared, pending)),
            Err(problem) => {
                tracing::error!(%problem, "ha: could not publish a batch; stepping down");
                *leader = None;
                drop(leader);
                replication.deposed.notify_one();
                Err(HandlerFailure::Replication(problem))
            }
        }
    }

    /// HA leader: waits for the stream to acknowledge the oldest batch in
    /// flight, writes it (one synced WriteBatch, recording the stream
    /// sequence), applies it and answers it. On any failure this node
    /// stops leading (what the stream holds reaches its log by following
    /// it) and that batch and every later one fail.
    fn settle_oldest(&mut self) {
        let Some(oldest) = self.in_flight.pop_front() else {
            return;
        };
        let InFlight {
            batch,
            plans,
            append,
            ..
        } = oldest;
        let written = match append {
            None => Ok(Vec::new()),
            Some((prepared, pending)) => self.acknowledged_then_commit(prepared, pending),
        };
        match written.and_then(|outcomes| {
            if outcomes.is_empty() {
                Ok(())
            } else {
                self.apply_committed(&outcomes, &plans)
            }
        }) {
            Ok(()) => self.answer(batch, &plans),
            Err(failure) => {
                tracing::error!(error = %failure, "ha: a batch was not written; state reset to the last durable position");
                self.fail_in_flight(failure, batch);
            }
        }
    }

    fn acknowledged_then_commit(
        &self,
        prepared: PreparedAppend,
        pending: PendingBatch,
    ) -> Result<Vec<Result<Appended, latch_store::AppendRejected>>, HandlerFailure> {
        let Some(replication) = &self.replication else {
            return Err(HandlerFailure::NotLeader);
        };
        let mut leader = replication.leader.lock().expect("leader lock");
        let depose = |mut leader: std::sync::MutexGuard<'_, Option<LeaderSession>>| {
            *leader = None;
            drop(leader);
            replication.deposed.notify_one();
        };
        let Some(session) = leader.as_mut() else {
            // Stepped down while it was in flight: the stream may hold it,
            // and following the stream brings it to this log.
            return Err(HandlerFailure::Replication(
                "this node stopped leading before the stream acknowledged the batch".into(),
            ));
        };
        let sequence = match session.settle(pending) {
            Ok(sequence) => sequence,
            Err(problem) => {
                tracing::error!(%problem, "ha: the stream did not acknowledge a batch; stepping down");
                depose(leader);
                return Err(HandlerFailure::Replication(problem));
            }
        };
        match self.store.commit(prepared, Some(sequence)) {
            Ok(outcomes) => Ok(outcomes),
            Err(error) => {
                tracing::error!(%error, "ha: the stream holds a batch this log could not write; stepping down to follow it");
                depose(leader);
                Err(error.into())
            }
        }
    }

    /// HA leader: settles every batch in flight, oldest first.
    fn settle_all(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_oldest();
        }
    }

    /// Answers `batch` and every batch still in flight (none in single-node
    /// mode) with `failure` and resets the working state to the committed
    /// one (it held them all).
    fn fail_in_flight(&mut self, failure: HandlerFailure, batch: Vec<Submission>) {
        let later: Vec<Submission> = self
            .in_flight
            .drain(..)
            .flat_map(|f| f.batch)
            .collect();
        self.reset_after(&failure);
        self.metrics
            .commands_failed
            .fetch_add((batch.len() + later.len()) as u64, Ordering::Relaxed);
        for (_, reply) in batch.into_iter().chain(later) {
            let _ = reply.send(Err(failure.clone()));
        }
    }

    /// HA standby: appends what the leader wrote and folds it in.
    fn replicate(&mut self, batch: ReplicatedBatch) -> Result<Position, HandlerFailure> {
        let (stored, decoded): (Vec<_>, Vec<_>) = batch.events.into_iter().unzip();
        let head = self.store.append_replicated(&stored, batch.stream_sequence)?;
        {
            let mut committed = self.committed.write().expect("state lock poisoned");
            let mut view = self.committed_view.write().expect("view lock poisoned");
            for event in &decoded {
                evolve(&mut committed, event);
                view.apply(event);
                evolve(&mut self.working, event);
            }
        }
        self.metrics
            .events_appended
            .fetch_add(decoded.len() as u64, Ordering::Relaxed);
        self.snapshot(false);
        Ok(head.position)
    }

    /// HA: sets aside the log after `keep` and rebuilds the state.
    fn truncate(
        &mut self,
        keep: Position,
        stream_sequence: Option<u64>,
    ) -> Result<Vec<StoredEvent>, HandlerFailure> {
        let removed = self.store.truncate_after(keep, stream_sequence)?;
        let rebuilt = rebuild(&self.store).map_err(|e| {
            HandlerFailure::Inconsistent(format!("rebuilding after setting a tail aside: {e}"))
        })?;
        *self.committed_view.write().expect("view lock poisoned") =
            VerifierView::of(&rebuilt.state);
        *self.committed.write().expect("state lock poisoned") = rebuilt.state.clone();
        self.working = rebuilt.state;
        self.last_snapshot = rebuilt.snapshot.unwrap_or(Position::ZERO);
        self.last_snapshot_at = checkpoint_time(&self.store, rebuilt.snapshot).or(Some(self.clock.now()));
        Ok(removed)
    }

    /// After a failed batch the working copy holds undurable events. When
    /// the write itself failed, the committed state is exact; if the store
    /// and the writer disagreed, only the log is, so both are rebuilt.
    fn reset_after(&mut self, failure: &HandlerFailure) {
        if let HandlerFailure::Inconsistent(_) = failure {
            match rebuild(&self.store) {
                Ok(rebuilt) => {
                    *self.committed_view.write().expect("view lock poisoned") =
                        VerifierView::of(&rebuilt.state);
                    *self.committed.write().expect("state lock poisoned") = rebuilt.state;
                }
                Err(error) => tracing::error!(%error, "could not rebuild state from the log"),
            }
        }
        self.working = self.committed.read().expect("state lock poisoned").clone();
    }

    fn answers(&self, plans: &[Plan]) -> Vec<CommandResult> {
        let mut answers: Vec<CommandResult> = Vec::with_capacity(plans.len());
        for plan in plans {
            let answer = match plan {
                Plan::Answer(answer) => Ok(answer.clone()),
                Plan::Append { events, .. } => Ok(Ok(CommandReceipt {
                    events: events.clone(),
                    replayed: false,
                })),
                Plan::Replay(record, actor) => self.replayed(record, *actor),
                Plan::SameAs(earlier) => match &answers[*earlier] {
                    Ok(Ok(receipt)) => Ok(Ok(CommandReceipt {
                        events: receipt.events.clone(),
                        replayed: true,
                    })),
                    other => other.clone(),
                },
            };
            let counter = match &answer {
                Ok(Ok(receipt)) if receipt.replayed => &self.metrics.commands_replayed,
                Ok(Ok(_)) => &self.metrics.commands_accepted,
                Ok(Err(_)) => &self.metrics.commands_rejected,
                Err(_) => &self.metrics.commands_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            answers.push(answer);
        }
        answers
    }

    /// The events an earlier request under the same key appended, only if
    /// `actor` made that request: a key answers its own caller and nobody
    /// else (keys are scoped per token, so this holds by construction; the
    /// check keeps it so if the scoping ever changes).
    fn replayed(&self, record: &IdempotencyRecord, actor: Actor) -> CommandResult {
        let mut events = Vec::with_capacity(record.count as usize);
        for position in record.positions() {
            let stored =
                self.store
                    .event(position)?
                    .ok_or_else(|| latch_store::StoreError::Corrupt {
                        position,
                        problem: "recorded by an idempotency key but missing".into(),
                    })?;
            let recorded = event_codec::to_recorded(&stored)?;
            if recorded.envelope.actor != actor {
                return Ok(Err(CommandRejection::IdempotencyKeyReused));
            }
            events.push(recorded);
        }
        Ok(Ok(CommandReceipt {
            events,
            replayed: true,
        }))
    }

    fn snapshot(&mut self, always: bool) {
        let committed = self.committed.read().expect("state lock poisoned");
        let position = committed.position();
        let now = self.clock.now();
        let due = position.get().saturating_sub(self.last_snapshot.get()) >= self.config.snapshot_every
            || self
                .last_snapshot_at
                .is_none_or(|at| now - at >= self.config.checkpoint_every);
        if position == self.last_snapshot || !(due || always) {
            return;
        }
        let head = self.store.head();
        if head.position != position {
            return;
        }
        let bytes = latch_audit::encode_checkpoint(&committed, head.hash);
        drop(committed);
        match self
            .store
            .save_snapshot_keeping(position, &bytes, Some(head.hash), self.config.checkpoints_kept)
        {
            Ok(()) => {
                self.last_snapshot = position;
                self.last_snapshot_at = Some(now);
                tracing::info!(%position, bytes = bytes.len(), "saved state snapshot");
            }
            Err(error) => {
                tracing::warn!(%error, "could not save a state snapshot; restart will replay more")
            }
        }
    }
}

/// The time of the event a checkpoint was taken at.
fn checkpoint_time(store: &EventStore, checkpoint: Option<Position>) -> Option<DateTime<Utc>> {
    let stored = store.event(checkpoint?).ok()??;
    stored.decode::<latch_core::EventEnvelope>().ok().map(|e| e.at)
}

fn stream_version(
    store: &EventStore,
    pending: &HashMap<String, u64>,
    stream: &str,
) -> Result<u64, HandlerFailure> {
    match pending.get(stream) {
        Some(version) => Ok(*version),
        None => Ok(store.stream_version(stream)?),
    }
}

/// Keys are per calling token: a key answers only the token that first
/// sent it, so nobody else can replay a request (and receive, say, the
/// secret it issued) by learning or guessing its key — not even another
/// token of the same account.
pub(crate) fn scope_key(actor: &Actor, key: &str) -> String {
    match actor {
        Actor::System => format!("system/{key}"),
        Actor::Token {
            account_id,
            token_id,
        } => format!("{account_id}/{token_id}/{key}"),
    }
}
