//! `HaController`: a node's part in the cluster, as a loop over NATS
//! sessions.
//!
//! A standby follows the stream and looks at the lease every
//! `acquire_every`; when it finds it vacant it takes it, stops following,
//! **takes over** (reads the stream to its end into its log, publishes any
//! events its log holds that the stream lost, e.g. a log from before HA
//! mode; renewing the lease all the while), renews once more, and only then decides commands and starts the
//! leader's duties (heartbeats, the NATS command service, the scheduler).
//! A leader renews its lease every `acquire_every`; it steps down when the
//! lease is lost, when it could not renew for `give_up_after`, or when its
//! writer gave up on a batch the stream did not acknowledge; then it
//! releases the lease (so a standby need not wait for it to lapse) and
//! follows.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::Stream};
use latch_bus::{NatsConnection, StreamSettings, TrustedKeys};
use latch_core::Position;
use latch_store::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::follower::Follower;
use super::ha_config::HaConfig;
use super::ha_state::HaState;
use super::leader_session::LeaderSession;
use super::lease::{Holder, Lease, Renewal};
use super::set_aside::SET_ASIDE_DIR;
use super::stream_tail;
use super::{HaError, nats};
use crate::bootstrap::{Bootstrapped, bootstrap};
use crate::command_handler::CommandHandle;
use crate::signing_keys::Keyring;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Events per publish when a new leader publishes what the stream lacks.
const REPUBLISH_BATCH: usize = 256;
/// Leases a node that took the lease keeps it for while it catches up.
const KEEP_WHILE_CATCHING_UP: u32 = 10;
/// A standby more stream messages behind than this lets a lease's time
/// pass after it finds the lease vacant before it takes it, so that a node
/// that is caught up (and leads at once) takes it first.
const CAUGHT_UP_WITHIN: u64 = 1024;

/// Whether a standby `lag` messages behind the stream, which has seen the
/// lease vacant for `vacant_for`, leaves it to a fresher node for now.
fn defers_to_fresher_nodes(lag: u64, vacant_for: Duration, lease: Duration) -> bool {
    lag > CAUGHT_UP_WITHIN && vacant_for < lease
}

/// A task the leader runs, and how to stop it.
pub struct RunningDuty {
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

/// Starts a duty: `start` gets the receiver that turns true to stop it.
pub fn duty<F, Fut>(start: F) -> RunningDuty
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    RunningDuty {
        stop,
        task: tokio::spawn(start(stopped)),
    }
}

/// What only the leader runs (heartbeats, the command service, the
/// scheduler), started on each election and stopped on stepping down.
pub struct LeaderDuties(pub Box<dyn Fn() -> Vec<RunningDuty> + Send + Sync>);

pub struct HaController {
    pub config: HaConfig,
    pub nats: NatsConnection,
    pub store: Arc<EventStore>,
    pub commands: CommandHandle,
    pub keyring: Arc<Keyring>,
    pub state: Arc<HaState>,
    pub duties: LeaderDuties,
    pub data_dir: PathBuf,
    /// Create the admin account on the first leader of an empty cluster.
    pub bootstrap_admin: bool,
}

#[derive(Default)]
struct Session {
    leading: Option<Held>,
    follower: Option<(watch::Sender<bool>, JoinHandle<Result<(), HaError>>)>,
    duties: Vec<RunningDuty>,
}

struct Held {
    revision: u64,
    renewed: Instant,
}

/// A session dropped without `end` (the controller's task was aborted: a
/// crash, as `Node::abort` makes one) takes its tasks with it.
impl Drop for Session {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.follower {
            task.abort();
        }
        for duty in &self.duties {
            duty.task.abort();
        }
    }
}

impl HaController {
    /// Runs until `shutdown` turns true; a leader steps down (releasing the
    /// lease) on the way out.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut session = Session::default();
            let began = Instant::now();
            let outcome = self.session(&mut session, &mut shutdown).await;
            // A session that ran for a while was a good one: the next try
            // starts at the shortest wait again.
            if began.elapsed() > self.config.lease {
                backoff = BACKOFF_MIN;
            }
            self.end(&mut session, None).await;
            match outcome {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "ha: session with NATS ended; this node serves reads meanwhile");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn trusted(&self) -> TrustedKeys {
        TrustedKeys::new(self.keyring.public_keys().into_iter().map(|(_, key)| key))
    }

    fn follower(&self) -> Follower {
        Follower {
            store: self.store.clone(),
            commands: self.commands.clone(),
            trusted: self.trusted(),
            state: self.state.clone(),
            set_aside_dir: self.data_dir.join(SET_ASIDE_DIR),
        }
    }

    async fn session(
        &self,
        session: &mut Session,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), HaError> {
        let client = self
            .nats
            .options()
            .await
            .map_err(nats)?
            .name(format!("latchd ha {}", self.config.node_id))
            .connection_timeout(Duration::from_secs(2))
            .connect(self.nats.server_urls())
            .await
            .map_err(nats)?;
        let js = jetstream::new(client);
        // Every call to NATS here is bounded: a cluster that does not
        // answer (still electing, a server gone) ends the session quickly,
        // and the next one tries again, instead of one call hanging for
        // the client's whole timeout while other nodes move on.
        let bound = self.config.lease;
        let stream = within(bound, "the stream LATCH_EVENTS", ensure_stream(&js, self.config.replicas)).await?;
        let lease = within(
            bound,
            "the lease bucket",
            Lease::open(&js, &self.config, self.keyring.current()),
        )
        .await?;
        let trusted = self.trusted();
        let began = Instant::now();
        self.start_following(session, &stream);
        let mut tick = tokio::time::interval(self.config.acquire_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when this node has seen the lease vacant, if it is.
        let mut vacant_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.commands.deposed() => {
                    // (A wake-up left from an earlier term is ignored.)
                    if session.leading.is_some() {
                        self.end(session, Some(&lease)).await;
                        self.start_following(session, &stream);
                    }
                    continue;
                }
                _ = shutdown.changed() => {
                    // A leader releases the lease on its way out, so a
                    // standby leads at once.
                    self.end(session, Some(&lease)).await;
                    return Ok(());
                }
            }
            if let Some(held) = &mut session.leading {
                // The leader's own view of the stream, for /readyz.
                if let Ok(Some(sequence)) = self.store.stream_sequence() {
                    self.state.applied_sequence.store(sequence, Ordering::Relaxed);
                    self.state.stream_last_sequence.store(sequence, Ordering::Relaxed);
                }
                // A renewal that hangs counts as failed: a leader cut off
                // from the quorum must stop (and stop its heartbeats)
                // before its lease can lapse.
                let renewal = tokio::time::timeout(self.config.acquire_every(), lease.renew(held.revision))
                    .await
                    .unwrap_or_else(|_| Err(HaError::Nats("renewing the lease timed out".into())));
                let lost = match renewal {
                    Ok(Renewal::Renewed(revision)) => {
                        held.revision = revision;
                        held.renewed = Instant::now();
                        self.commands.lease_renewed(self.config.give_up_after());
                        self.state.set_leading(revision);
                        false
                    }
                    Ok(Renewal::Lost) => {
                        tracing::warn!("ha: the lease was taken by another node; stepping down");
                        true
                    }
                    Err(error) => {
                        let overdue = held.renewed.elapsed() > self.config.give_up_after();
                        tracing::warn!(%error, overdue, "ha: could not renew the lease");
                        overdue
                    }
                };
                if lost {
                    self.end(session, Some(&lease)).await;
                    self.start_following(session, &stream);
                }
                continue;
            }
            if session
                .follower
                .as_ref()
                .is_some_and(|(_, task)| task.is_finished())
            {
                if let Some((_, task)) = session.follower.take() {
                    match task.await {
                        Ok(Err(error)) => tracing::warn!(%error, "ha: following the stream stopped; starting again"),
                        Ok(Ok(())) => {}
                        Err(join) => tracing::error!(%join, "ha: the follower failed"),
                    }
                }
                self.start_following(session, &stream);
            }
            let holder = within(bound, "reading the lease", lease.holder(&trusted)).await?;
            vacant_since = match holder {
                Holder::Vacant => vacant_since.or(Some(Instant::now())),
                _ => None,
            };
            match holder {
                // An entry naming this node is left from before it
                // restarted: it lapses; meanwhile there is no leader to send
                // clients to.
                Holder::Node(leader) if leader.node_id == self.config.node_id => {
                    self.state.set_following(None)
                }
                Holder::Node(leader) => self.state.set_following(Some(leader)),
                Holder::Unknown => {
                    tracing::warn!("ha: the lease is held by an entry no latchd of this cluster signed (check NATS permissions on $KV.LATCH_LEADER.>)");
                    self.state.set_following(None);
                }
                Holder::Vacant => {
                    self.state.set_following(None);
                    // At a cluster's birth (empty stream) a node with an
                    // empty log gives one with a log (an upgraded
                    // single-node data dir) a lease's time to lead first:
                    // an empty node leading would start another log, and
                    // the one with events could then join neither.
                    let newborn = self.store.head().position == Position::ZERO
                        && self.state.stream_last_sequence.load(Ordering::Relaxed) == 0;
                    if newborn && began.elapsed() < self.config.lease {
                        continue;
                    }
                    let vacant_for = vacant_since.map_or(Duration::ZERO, |since| since.elapsed());
                    if defers_to_fresher_nodes(self.state.lag(), vacant_for, self.config.lease) {
                        continue;
                    }
                    if let Some(revision) = within(bound, "taking the lease", lease.try_acquire()).await? {
                        self.elected(session, &js, &stream, &lease, revision).await?;
                    }
                }
            }
        }
    }

    /// This node took the lease at `revision`: catch up, then lead.
    async fn elected(
        &self,
        session: &mut Session,
        js: &jetstream::Context,
        stream: &Stream,
        lease: &Lease,
        revision: u64,
    ) -> Result<(), HaError> {
        let started = Instant::now();
        tracing::info!(node = %self.config.node_id, "ha: took the lease; catching up before leading");
        self.stop_following(session).await;
        // The lease is renewed while this node catches up: a catch-up
        // longer than the lease (a slow machine, a stream still electing
        // its leader after a server died) would otherwise let it lapse,
        // another node take it and start catching up in turn, and so on
        // with nobody ever leading.
        // Not for ever: a node far behind (restored from an old backup)
        // would keep every write waiting while it reads; past this its
        // lease lapses and it leads only if nobody took it meanwhile.
        let held = AtomicU64::new(revision);
        let keep_until = Instant::now() + self.config.lease * KEEP_WHILE_CATCHING_UP;
        let taken = tokio::select! {
            taken = self.take_over(js, stream.clone()) => taken,
            () = lease.keep(&held, self.config.acquire_every(), keep_until) => {
                tracing::warn!("ha: lost the lease while catching up; following");
                self.start_following(session, stream);
                return Ok(());
            }
        };
        let revision = held.load(Ordering::Relaxed);
        let leader = match taken {
            Ok(leader) => leader,
            Err(error) => {
                lease.release(revision).await;
                self.start_following(session, stream);
                return Err(error);
            }
        };
        // Lead only if the lease is still ours.
        let revision = match within(self.config.lease, "renewing the lease", lease.renew(revision)).await? {
            Renewal::Renewed(revision) => revision,
            Renewal::Lost => {
                tracing::warn!("ha: lost the lease while catching up; following");
                self.start_following(session, stream);
                return Ok(());
            }
        };
        let sequence = leader.last_sequence();
        self.commands.lead(leader, self.config.give_up_after());
        self.state.set_leading(revision);
        session.leading = Some(Held {
            revision,
            renewed: Instant::now(),
        });
        session.duties = (self.duties.0)();
        tracing::info!(
            node = %self.config.node_id,
            position = %self.store.head().position,
            stream_sequence = sequence,
            took_ms = started.elapsed().as_millis() as u64,
            "ha: leading"
        );
        if self.bootstrap_admin {
            match bootstrap(&self.commands, &self.data_dir).await {
                Ok(Bootstrapped::AdminToken(path)) => tracing::warn!(
                    path = %path.display(),
                    "first start of the cluster: created account `admin`; its token is in this file (mode 0600). Keep it safe, then rotate it"
                ),
                Ok(Bootstrapped::AlreadyDone) => {}
                Err(error) => tracing::error!(%error, "ha: bootstrapping the admin account"),
            }
        }
        Ok(())
    }

    /// Reads the stream to its end into this log, then publishes what this
    /// log holds beyond the stream's last event (events the stream lost, or
    /// a log from before HA mode). Returns the session to lead with.
    async fn take_over(
        &self,
        js: &jetstream::Context,
        mut stream: Stream,
    ) -> Result<LeaderSession, HaError> {
        let trusted = self.trusted();
        let (last_sequence, _) = stream_tail::last_event(&mut stream, &trusted).await?;
        let (_never, mut never_stop) = watch::channel(false);
        self.follower()
            .follow(&mut stream, Some(last_sequence), &mut never_stop)
            .await?;
        let (last_sequence, tail) = stream_tail::last_event(&mut stream, &trusted).await?;
        let log = self
            .store
            .log_id()
            .expect("a log opened for writing has an id");
        if let Some(tail) = tail
            && tail.log != log
        {
            return Err(HaError::ForeignLog {
                found: tail.log,
                ours: log,
            });
        }
        let in_stream = tail.map_or(Position::ZERO, |t| t.position);
        let mut leader = LeaderSession::new(js.clone(), self.keyring.clone(), log, last_sequence);
        let head = self.store.head().position;
        if head > in_stream {
            tracing::warn!(%in_stream, %head, "ha: this log holds events the stream does not; publishing them before leading");
            let mut after = in_stream;
            while after < head {
                let events = self.store.read_after(after, REPUBLISH_BATCH)?;
                let Some(last) = events.last().map(|e| e.position) else {
                    break;
                };
                let (returned, published) = tokio::task::spawn_blocking(move || {
                    let published = leader.publish(&events, &[]);
                    (leader, published)
                })
                .await
                .map_err(|e| HaError::Nats(e.to_string()))?;
                leader = returned;
                published.map_err(HaError::Nats)?;
                after = last;
            }
            self.store.set_stream_sequence(leader.last_sequence())?;
        }
        self.state
            .applied_sequence
            .store(leader.last_sequence(), Ordering::Relaxed);
        self.state
            .stream_last_sequence
            .store(leader.last_sequence(), Ordering::Relaxed);
        Ok(leader)
    }

    fn start_following(&self, session: &mut Session, stream: &Stream) {
        if session.follower.is_some() {
            return;
        }
        let (stop, mut stopped) = watch::channel(false);
        let follower = self.follower();
        let mut stream = stream.clone();
        let task = tokio::spawn(async move { follower.follow(&mut stream, None, &mut stopped).await });
        session.follower = Some((stop, task));
    }

    async fn stop_following(&self, session: &mut Session) {
        if let Some((stop, task)) = session.follower.take() {
            let _ = stop.send(true);
            if let Ok(Err(error)) = task.await {
                tracing::debug!(%error, "ha: the follower ended with an error");
            }
        }
    }

    /// Stops leading (if it did) and following; releases the lease.
    async fn end(&self, session: &mut Session, lease: Option<&Lease>) {
        self.stop_following(session).await;
        let was_leading = self.commands.step_down().await || session.leading.is_some();
        for duty in session.duties.drain(..) {
            let _ = duty.stop.send(true);
            let _ = duty.task.await;
        }
        if let Some(held) = session.leading.take()
            && let Some(lease) = lease
        {
            lease.release(held.revision).await;
        }
        if was_leading {
            tracing::warn!(node = %self.config.node_id, "ha: stepped down; following the stream");
        }
        self.state.set_following(None);
    }
}

/// `call`, or an error naming `what` when it fails or takes longer than
/// `bound`.
async fn within<T>(
    bound: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, HaError>>,
) -> Result<T, HaError> {
    match tokio::time::timeout(bound, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(HaError::Nats(format!("{what}: {error}"))),
        Err(_) => Err(HaError::Nats(format!("{what}: no answer within {bound:?}"))),
    }
}

/// `LATCH_EVENTS` with the cluster's replicas (created, or raised to them).
async fn ensure_stream(js: &jetstream::Context, replicas: usize) -> Result<Stream, HaError> {
    let settings = StreamSettings::default();
    match js.get_stream(settings.name).await {
        Ok(mut stream) => {
            let config = stream.info().await.map_err(nats)?.config.clone();
            if config.num_replicas < replicas {
                tracing::info!(from = config.num_replicas, to = replicas, "ha: raising the stream's replicas");
                let mut raised = config;
                raised.num_replicas = replicas;
                js.update_stream(raised).await.map_err(nats)?;
                return js.get_stream(settings.name).await.map_err(nats);
            }
            Ok(stream)
        }
        Err(_) => js
            .create_stream(jetstream::stream::Config {
                name: settings.name.to_owned(),
                subjects: settings.subjects.clone(),
                storage: jetstream::stream::StorageType::File,
                duplicate_window: settings.duplicate_window,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(nats),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{CAUGHT_UP_WITHIN, defers_to_fresher_nodes};

    #[test]
    fn a_standby_far_behind_leaves_a_vacant_lease_to_fresher_nodes_for_one_lease() {
        let lease = Duration::from_secs(3);
        assert!(!defers_to_fresher_nodes(0, Duration::ZERO, lease), "a caught-up node takes it at once");
        assert!(!defers_to_fresher_nodes(CAUGHT_UP_WITHIN, Duration::ZERO, lease));
        assert!(defers_to_fresher_nodes(CAUGHT_UP_WITHIN + 1, Duration::ZERO, lease));
        assert!(defers_to_fresher_nodes(1_000_000, lease - Duration::from_millis(1), lease));
        assert!(
            !defers_to_fresher_nodes(1_000_000, lease, lease),
            "with no fresher node, it takes the lease a lease later"
        );
    }
}
