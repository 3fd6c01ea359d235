//! `Verifier`: local token checks against a projection that follows the
//! event stream.
//!
//! It bootstraps from latchd's snapshot of the compact `VerifierView` (or
//! from the stream's start), then follows the live tail of `latch.events.>`
//! with a core NATS subscription, reading the stream `LATCH_EVENTS` with an
//! ordered consumer only to catch up (at start, after a hole in the tail,
//! when a heartbeat is ahead of it), folding each event into the view (which a property
//! test in latch-core holds to latchd's own `evolve` and `authenticate`), ignoring anything at or below the position it has. It is
//! *current* while it has proved, within `max_staleness`, that its view
//! has reached what latchd last published: the position of a heartbeat
//! (signed by latchd, when it trusts latchd's keys) or, for an HA cluster's
//! feed (its heartbeats say `replicated`) while heartbeats are missing (no
//! latchd running), of the stream's last Latch event, which it asks
//! JetStream for (`stream_probe`; `VerifierConfig::stream_probe`).
//! Either vouches as of when it was sent, never as of when it arrived.
//! Otherwise every check answers `Denial::Stale`. Checks are synchronous
//! and allocate nothing; accepted uses are counted per token slot
//! (`UsageSlots`) and reported in batches.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use latch_bus::{
    FeedChain, FeedRejection, Heartbeat, STREAM_NAME, TokenUse, TrustedKeys, UsageReport, subject,
};
use latch_core::{
    AccountId, Permission, PermissionSet, Position, Rejection, TokenDigest, TokenId, VerifierView,
};

use crate::denial::Denial;
use crate::refused_uses::RefusedUses;
use crate::stats::{Counters, VerifierStats};
use crate::stream_probe::{ProbeCadence, ProbeStart, StreamTail, TailVerdict};
use crate::usage_slots::UsageSlots;
use crate::verifier_config::{Follow, VerifierConfig};

/// Who a verified token belongs to. `Copy`, so `verify` allocates nothing;
/// `Verifier::effective_permissions` gives what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub account_id: AccountId,
    pub token_id: TokenId,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why `Verifier::connect` failed. `source()` is the NATS client's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// It could not connect to NATS (settings, credentials, the server).
    #[error("NATS: {0}")]
    Nats(#[from] latch_bus::NatsConnectError),
    /// Connected, but NATS refused its subscription to latchd's heartbeats
    /// (e.g. the user may not subscribe to `latch.heartbeat`).
    #[error("NATS: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// It did not become current within `connect_timeout`.
    #[error("not current after {0:?}: is latchd's relay running?")]
    NotCurrent(Duration),
}

/// A genuine event past the next position: never folded past; the
/// follower reads the stream again.
#[derive(Debug, thiserror::Error)]
#[error("gap: have {have}, offered {offered}")]
struct Hole {
    have: Position,
    offered: Position,
}

/// Why the follower lost the event stream (it reads it again).
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Hole(#[from] Hole),
    #[error("subscribing to the live tail: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("the live subscription ended")]
    SubscriptionEnded,
    #[error("getting the stream: {0}")]
    GetStream(#[from] jetstream::context::GetStreamError),
    #[error("the stream's info: {0}")]
    StreamInfo(#[from] jetstream::stream::InfoError),
    #[error("reading a stream message: {0}")]
    RawMessage(#[from] jetstream::stream::RawMessageError),
    #[error("creating a consumer: {0}")]
    CreateConsumer(#[from] jetstream::stream::ConsumerError),
    #[error("reading the consumer: {0}")]
    Consume(#[from] jetstream::consumer::StreamError),
    #[error("reading the consumer: {0}")]
    ConsumerMessage(#[from] jetstream::consumer::pull::OrderedError),
    #[error("the consumer ended")]
    ConsumerEnded,
    /// A trusted signer showed another event at a position the view
    /// applied: the stream decides which is true (`confirm_divergence`).
    #[error("a signed message shows another event at {0}, which the view applied")]
    Diverged(Position),
}

/// Why `take` did not fold a message.
#[derive(Debug)]
enum Untaken {
    /// A genuine event past the next position.
    Hole(Hole),
    /// A genuine event contradicting one the view applied at this position.
    Diverged(Position),
}

/// Least time between two checks of the stream for a divergence: a
/// captured event that never reached the stream, replayed on the live tail
/// over and over, costs the stream one search per verifier per this.
const DIVERGENCE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// A heartbeat's position, and when it arrived (ms since `started`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announced {
    position: Position,
    at_ms: u64,
}

/// The view and the usage counted against its token slots, under one lock:
/// the follower grows both as it folds events.
struct Tracked {
    view: VerifierView,
    usage: UsageSlots,
}

pub(crate) struct Inner {
    state: RwLock<Tracked>,
    /// What the verifier has checked of latchd's signed feed. Its own lock:
    /// checking a message (hashing, an Ed25519 verification) never holds
    /// up token checks, which read `state`; the view is written only to
    /// fold what the chain accepted.
    chain: Mutex<FeedChain>,
    started: Instant,
    /// Milliseconds since `started` when the verifier last proved itself
    /// current; 0: never.
    fresh_at_ms: AtomicU64,
    /// A heartbeat whose position the view had not reached when it arrived:
    /// once the stream consumer reaches the position, the verifier is as
    /// fresh as that heartbeat. Position and arrival time under one lock, so
    /// a time is never paired with another heartbeat's position.
    announced: Mutex<Option<Announced>>,
    /// Milliseconds since `started` when the last heartbeat that vouched
    /// arrived; 0: none yet.
    heartbeat_at_ms: AtomicU64,
    /// Set by the first accepted heartbeat that says the feed is
    /// replicated (HA): the stream probe runs only then.
    replicated_feed: std::sync::atomic::AtomicBool,
    max_staleness: Duration,
    /// The keys trusted at the start, to rebuild the view from the stream's
    /// first event after a divergence.
    initial_trust: TrustedKeys,
    /// A position a heartbeat or probe (signed) showed another event at
    /// than the view applied; the follower checks it against the stream.
    suspected: Mutex<Option<Position>>,
    /// Milliseconds since `started` of the last divergence check; 0: none.
    divergence_checked_at_ms: AtomicU64,
    pub(crate) counters: Counters,
    /// Whether accepted uses are counted (and reported).
    counts_usage: bool,
    /// Known tokens refused as revoked or expired since the last report
    /// (counted only when usage is).
    refused: RefusedUses,
    follow: Follow,
}

/// A verifier following latchd's event stream; cheap to clone (every clone
/// shares the one view and connection). Dropping the last clone stops its
/// usage reports; the follower tasks end with the runtime.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl Verifier {
    /// Connects, bootstraps from the stream and waits until current.
    pub async fn connect(config: VerifierConfig) -> Result<Self, ConnectError> {
        let client = config
            .nats
            .clone()
            .named(config.name.clone())
            .connect()
            .await?;
        let trusted = config.trusted_keys.clone();
        if trusted.is_empty() {
            tracing::warn!(
                "verifier: no latchd public key configured (LATCH_PUBLIC_KEY): it trusts the NATS broker's permissions alone; anyone who can publish on latch.events.> or latch.heartbeat can forge tokens or keep it falsely current"
            );
        }
        let counters = Counters::default();
        #[cfg(feature = "snapshot")]
        let snapshot = match &config.snapshot {
            None => None,
            Some(source) => match crate::snapshot::fetch(source.clone(), trusted.clone()).await {
                Ok(started) => Some(started),
                Err(error) => {
                    if matches!(error, crate::snapshot::SnapshotError::Unverified(_)) {
                        Counters::bump(&counters.rejected);
                    }
                    tracing::warn!(%error, "verifier: no snapshot; reading the whole stream instead");
                    None
                }
            },
        };
        #[cfg(not(feature = "snapshot"))]
        let snapshot = None;
        let (initial, chain) = snapshot
            .unwrap_or_else(|| (VerifierView::new(), FeedChain::from_start(trusted.clone())));
        let mut usage = UsageSlots::new(Utc::now());
        usage.cover(initial.token_count());
        let inner = Arc::new(Inner {
            state: RwLock::new(Tracked {
                view: initial,
                usage,
            }),
            chain: Mutex::new(chain),
            started: Instant::now(),
            fresh_at_ms: AtomicU64::new(0),
            announced: Mutex::new(None),
            heartbeat_at_ms: AtomicU64::new(0),
            replicated_feed: std::sync::atomic::AtomicBool::new(false),
            max_staleness: config.max_staleness,
            initial_trust: trusted.clone(),
            suspected: Mutex::new(None),
            divergence_checked_at_ms: AtomicU64::new(0),
            counters,
            counts_usage: config.usage_report_every.is_some(),
            refused: RefusedUses::default(),
            follow: config.follow,
        });
        let heartbeats = client.subscribe(subject::HEARTBEAT).await?;
        tokio::spawn(follow_heartbeats(inner.clone(), heartbeats));
        if let Some(every) = config.usage_report_every {
            tokio::spawn(report_usage(
                Arc::downgrade(&inner),
                client.clone(),
                config.name.clone(),
                every,
            ));
        }
        tokio::spawn(follow_stream(inner.clone(), client.clone()));
        if config.stream_probe {
            tokio::spawn(crate::stream_probe::probe_stream(
                Arc::downgrade(&inner),
                client.clone(),
                ProbeCadence::for_staleness(config.max_staleness),
            ));
        }
        // Ask for a heartbeat now rather than wait up to a second for the
        // next one (best effort: an older latchd does not answer).
        if let Ok(Ok(reply)) = tokio::time::timeout(
            Duration::from_secs(1),
            client.request(subject::HEARTBEAT_REQUEST, Vec::<u8>::new().into()),
        )
        .await
            && let Ok(beat) = Heartbeat::decode(&reply.payload)
        {
            inner.take_heartbeat(&beat);
        }
        let verifier = Self { inner };
        let deadline = Instant::now() + config.connect_timeout;
        while verifier.is_stale() {
            if Instant::now() > deadline {
                return Err(ConnectError::NotCurrent(config.connect_timeout));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(verifier)
    }

    /// Whether `token` may do `permission` now, when the caller's address
    /// is unknown. A token bound to source addresses (`allowed_cidrs`) is
    /// refused (`Rejection::SourceNotAllowed`): without an address its
    /// binding cannot be checked, so it fails closed. Use `verify_from`
    /// whenever the peer's address is known.
    pub fn verify(&self, token: &str, permission: &Permission) -> Result<Verified, Denial> {
        self.check(token, permission, None)
    }

    /// Whether `token`, presented by a caller at `peer`, may do `permission`
    /// now: as `verify`, also applying the token's `allowed_cidrs` to
    /// `peer` (and reporting `peer` as where the token was last used).
    pub fn verify_from(
        &self,
        token: &str,
        permission: &Permission,
        peer: IpAddr,
    ) -> Result<Verified, Denial> {
        self.check(token, permission, Some(peer))
    }

    fn check(
        &self,
        token: &str,
        permission: &Permission,
        source: Option<IpAddr>,
    ) -> Result<Verified, Denial> {
        if self.is_stale() {
            return Err(Denial::Stale);
        }
        let now = Utc::now();
        let tracked = self.inner.state.read().expect("state lock");
        let (principal, slot) = match tracked.view.authenticate_slotted(token, now, source) {
            Ok(found) => found,
            Err(rejection) => {
                // A revoked or expired token presented again: latchd tells
                // rotated-out or revoked ones as reuse.
                if self.inner.counts_usage
                    && matches!(rejection, Rejection::Revoked | Rejection::Expired)
                    && let Some((token_id, account_id)) = tracked.view.presented_token(token)
                {
                    self.inner.refused.record(token_id, account_id, now, source);
                }
                return Err(rejection.into());
            }
        };
        if source.is_none() && is_source_bound(&tracked.view, token, now) {
            return Err(Denial::Rejected(Rejection::SourceNotAllowed));
        }
        if !principal.allows(permission) {
            return Err(Denial::MissingPermission);
        }
        if self.inner.counts_usage {
            tracked.usage.record(slot, now, source);
        }
        Ok(Verified {
            account_id: principal.account_id,
            token_id: principal.token_id,
            expires_at: principal.expires_at,
        })
    }

    /// What a verified token may do now: its scopes within its account's
    /// role (allocates; for display and for handlers that decide more).
    pub fn effective_permissions(&self, verified: &Verified) -> Option<PermissionSet> {
        self.inner
            .state
            .read()
            .expect("state lock")
            .view
            .effective_permissions(verified.token_id)
    }

    /// The position of the last event applied.
    pub fn position(&self) -> Position {
        self.inner.state.read().expect("state lock").view.position()
    }

    /// How long since the verifier last proved it was current.
    pub fn staleness(&self) -> Duration {
        match self.inner.fresh_at_ms.load(Ordering::SeqCst) {
            0 => self.inner.started.elapsed(),
            at => self
                .inner
                .started
                .elapsed()
                .saturating_sub(Duration::from_millis(at)),
        }
    }

    /// Whether it cannot prove it is current (never was, or not within
    /// `max_staleness`): then every check answers `Denial::Stale`.
    pub fn is_stale(&self) -> bool {
        self.inner.fresh_at_ms.load(Ordering::SeqCst) == 0
            || self.staleness() > self.inner.max_staleness
    }

    /// Its counters as they are now, for metrics.
    pub fn stats(&self) -> VerifierStats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    pub(crate) fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_millis() as u64).max(1)
    }

    /// Fresh as of `at_ms` (never moves freshness back).
    fn mark_fresh_at(&self, at_ms: u64) {
        self.fresh_at_ms.fetch_max(at_ms, Ordering::SeqCst);
    }

    /// A heartbeat arrived now. A heartbeat older than `max_staleness`
    /// vouches for nothing; one whose position the view has reached makes
    /// the verifier fresh as of the heartbeat's own time; otherwise it is
    /// remembered until the view reaches it.
    fn take_heartbeat(&self, beat: &Heartbeat) {
        let age = (Utc::now() - beat.time).to_std().unwrap_or_default();
        if age > self.max_staleness {
            return;
        }
        let vouched = self.chain.lock().expect("chain lock").vouch(beat);
        match vouched {
            // Fresh as of when latchd sent it, not when it arrived: a
            // genuine heartbeat held back and replayed late buys nothing.
            Ok(position) => {
                self.heartbeat_at_ms.store(self.now_ms(), Ordering::SeqCst);
                // The latest word counts: a cluster that went back to a
                // single latchd stops the probe.
                self.replicated_feed.store(beat.replicated, Ordering::SeqCst);
                self.announce(
                    position,
                    self.now_ms().saturating_sub(age.as_millis() as u64).max(1),
                );
            }
            Err(FeedRejection::Diverged(position)) => self.suspect(position),
            Err(rejection) => {
                Counters::bump(&self.counters.rejected);
                tracing::warn!(%rejection, position = %beat.position, "verifier: refused a heartbeat");
            }
        }
    }

    /// A signed heartbeat or stream message showed another event at
    /// `position` than the view applied: noted for the follower to check
    /// against the stream.
    fn suspect(&self, position: Position) {
        tracing::warn!(%position, "verifier: a signed message shows another event at a position the view applied; checking the stream");
        *self.suspected.lock().expect("suspicion lock") = Some(position);
    }

    /// A divergence noted and due for a check (at most one check per
    /// `DIVERGENCE_CHECK_EVERY`).
    fn take_suspected(&self) -> Option<Position> {
        if !self.divergence_check_due() {
            return None;
        }
        self.suspected.lock().expect("suspicion lock").take()
    }

    fn divergence_check_due(&self) -> bool {
        let last = self.divergence_checked_at_ms.load(Ordering::SeqCst);
        last == 0
            || self.now_ms().saturating_sub(last) >= DIVERGENCE_CHECK_EVERY.as_millis() as u64
    }

    /// The stream holds another event at `position` than the view applied:
    /// the view folded an event that was never committed. Everything is
    /// dropped and read again from the stream's first event; until the
    /// view has caught up and a heartbeat or probe vouches, every check
    /// answers `Denial::Stale` (fail closed).
    fn restart_from_stream(&self) {
        let mut chain = self.chain.lock().expect("chain lock");
        let mut announced = self.announced.lock().expect("announcement lock");
        let mut tracked = self.state.write().expect("state lock");
        *chain = FeedChain::from_start(self.initial_trust.clone());
        *announced = None;
        tracked.view = VerifierView::new();
        tracked.usage = UsageSlots::new(Utc::now());
        self.fresh_at_ms.store(0, Ordering::SeqCst);
        Counters::bump(&self.counters.rebuilds);
    }

    /// A heartbeat for `position` arrived at `at_ms`. The view's position is
    /// read under the announcement's lock, and the stream consumer moves the
    /// view before it takes that lock (`reached`): an announcement is
    /// either seen reached here or found by `reached`, never lost.
    fn announce(&self, position: Position, at_ms: u64) {
        let mut announced = self.announced.lock().expect("announcement lock");
        // Behind a position already announced and not reached (a deposed
        // HA leader's last heartbeat, say): it vouches for nothing.
        if announced.is_some_and(|known| known.position > position) {
            return;
        }
        if self.state.read().expect("state lock").view.position() >= position {
            self.mark_fresh_at(at_ms);
        } else {
            *announced = Some(Announced { position, at_ms });
        }
    }

    /// Whether a heartbeat announced, longer than `for_at_least` ago, a
    /// position the view has not reached.
    fn behind_announced(&self, for_at_least: Duration) -> bool {
        let announced = *self.announced.lock().expect("announcement lock");
        announced.is_some_and(|heartbeat| {
            self.now_ms().saturating_sub(heartbeat.at_ms) >= for_at_least.as_millis() as u64
                && self.state.read().expect("state lock").view.position() < heartbeat.position
        })
    }

    /// The view has reached `position`: a remembered heartbeat at or below
    /// it now vouches for the verifier, as of when it arrived.
    fn reached(&self, position: Position) {
        let mut announced = self.announced.lock().expect("announcement lock");
        if let Some(heartbeat) = *announced
            && position >= heartbeat.position
        {
            *announced = None;
            self.mark_fresh_at(heartbeat.at_ms);
        }
    }

    /// Whether latchd said (in a heartbeat this verifier accepted) that its
    /// log acknowledges only what the stream holds: only then does the
    /// stream's last event prove anything (see `stream_probe`).
    pub(crate) fn feed_is_replicated(&self) -> bool {
        self.replicated_feed.load(Ordering::SeqCst)
    }

    /// Whether a heartbeat that vouched arrived within `within` (counting
    /// from the start when none has).
    pub(crate) fn heard_heartbeat_within(&self, within: Duration) -> bool {
        let at = self.heartbeat_at_ms.load(Ordering::SeqCst);
        self.now_ms().saturating_sub(at) < within.as_millis() as u64
    }

    /// What a stream probe notes before it asks: the time, the view's
    /// position, and what it believes of stream messages.
    pub(crate) fn probe_start(&self) -> ProbeStart {
        let trust = Trust::of(&self.chain.lock().expect("chain lock"));
        let have = self.state.read().expect("state lock").view.position();
        ProbeStart {
            at_ms: self.now_ms(),
            have,
            trust,
        }
    }

    /// A stream probe sent at `asked.at_ms`, when the view was at
    /// `asked.have`, found `tail` as the stream's last Latch event. Like a
    /// heartbeat it vouches, as of when the probe was sent, once the view
    /// has reached it (at once, or remembered until the follower reaches
    /// it). Refused: a tail below what the view had when it asked (the
    /// stream was truncated, or an older event was replayed at its end),
    /// below a position announced and not reached yet (a heartbeat's, or
    /// an earlier probe's: the stream is known to hold more), or, with
    /// trusted keys, another event at the view's own position.
    pub(crate) fn take_stream_tail(&self, tail: &StreamTail, asked: &ProbeStart) -> TailVerdict {
        let position = tail.position();
        if position < asked.have {
            return TailVerdict::Behind { have: asked.have };
        }
        if let StreamTail::Event {
            hash: Some(hash), ..
        } = tail
        {
            let chain = self.chain.lock().expect("chain lock");
            if chain.is_checking()
                && chain.position() == position
                && !hash.eq_ignore_ascii_case(&hex_of(&chain.hash()))
            {
                drop(chain);
                self.suspect(position);
                return TailVerdict::OtherEvent;
            }
        }
        // As in `announce`: the view's position is read under the
        // announcement's lock.
        let mut announced = self.announced.lock().expect("announcement lock");
        if let Some(pending) = *announced
            && pending.position > position
        {
            return TailVerdict::BelowAnnounced {
                announced: pending.position,
            };
        }
        if self.state.read().expect("state lock").view.position() >= position {
            self.mark_fresh_at(asked.at_ms);
            TailVerdict::Reached
        } else {
            *announced = Some(Announced {
                position,
                at_ms: asked.at_ms,
            });
            TailVerdict::Ahead
        }
    }
}

/// Lower-case hex, as `Latch-Hash` carries a chain hash.
fn hex_of(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether a token the view accepts from an unknown source is bound to
/// source addresses. The view answers for an address, not for the binding,
/// so this asks it about the two unspecified addresses, `0.0.0.0` and `::`:
/// a token bound to any CIDR list that does not hold both is refused. (A
/// list holding both is, in practice, `0.0.0.0/0` and `::/0`: no binding.)
fn is_source_bound(view: &VerifierView, token: &str, now: DateTime<Utc>) -> bool {
    let digest = TokenDigest::of(token);
    [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ]
    .into_iter()
    .any(|probe| {
        matches!(
            view.authenticate_digest(&digest, now, Some(probe)),
            Err(Rejection::SourceNotAllowed)
        )
    })
}

/// A heartbeat proves the verifier current only when it is recent (a
/// heartbeat delivered late vouches for nothing) and the verifier has
/// reached the position it announces. This assumes latchd's and the
/// verifier's clocks agree to well within `max_staleness`.
async fn follow_heartbeats(inner: Arc<Inner>, mut heartbeats: async_nats::Subscriber) {
    while let Some(message) = heartbeats.next().await {
        if let Ok(beat) = Heartbeat::decode(&message.payload) {
            inner.take_heartbeat(&beat);
        }
    }
}

/// Every `every`, publishes the accepted uses since the last report, one
/// message per account. Ends when the verifier is dropped. Reports are best
/// effort: usage is for operators, never for access decisions.
async fn report_usage(
    inner: std::sync::Weak<Inner>,
    client: async_nats::Client,
    verifier: String,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut by_account: HashMap<AccountId, Vec<TokenUse>> = HashMap::new();
        for chunk in 0.. {
            let tracked = inner.state.read().expect("state lock");
            let Some(taken) = tracked.usage.take_chunk(chunk, &tracked.view) else {
                break;
            };
            drop(tracked);
            for (account_id, used) in taken {
                by_account.entry(account_id).or_default().push(used);
            }
        }
        let mut refused = inner.refused.take();
        drop(inner);
        for account_id in refused.keys() {
            by_account.entry(*account_id).or_default();
        }
        for (account_id, uses) in by_account {
            let report = UsageReport {
                verifier: verifier.clone(),
                account_id,
                uses,
                refused: refused.remove(&account_id).unwrap_or_default(),
            };
            if let Err(error) = client
                .publish(subject::usage_subject(account_id), report.encode().into())
                .await
            {
                tracing::debug!(%error, "verifier: could not report usage");
            }
        }
    }
}

async fn follow_stream(inner: Arc<Inner>, client: async_nats::Client) {
    let mut cursor = StreamCursor::default();
    loop {
        match follow(&inner, &client, &mut cursor).await {
            Err(FollowError::Diverged(position)) => {
                inner
                    .divergence_checked_at_ms
                    .store(inner.now_ms(), Ordering::SeqCst);
                match confirm_divergence(&inner, &client, position).await {
                    Ok(true) => {
                        tracing::error!(%position, "verifier: the view applied an event the stream never held (an HA leader cut off mid-publish); rebuilding it from the stream, failing closed until then");
                        inner.restart_from_stream();
                        cursor = StreamCursor::default();
                    }
                    Ok(false) => {
                        Counters::bump(&inner.counters.rejected);
                        tracing::warn!(%position, "verifier: the stream holds the event the view applied; the other one was a replay of an event never committed");
                    }
                    Err(error) => {
                        tracing::warn!(%error, %position, "verifier: could not check the stream for a divergence");
                        *inner.suspected.lock().expect("suspicion lock") = Some(position);
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "verifier: lost the event stream; reconnecting");
                Counters::bump(&inner.counters.reconnects);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(()) => {}
        }
    }
}

/// Whether the stream's event at `position` (the first genuine one there,
/// in stream order) is another than the one the view applied. `false` when
/// the view no longer knows its own hash there, or the stream holds no
/// event at `position`.
async fn confirm_divergence(
    inner: &Inner,
    client: &async_nats::Client,
    position: Position,
) -> Result<bool, FollowError> {
    let (ours, trust) = {
        let chain = inner.chain.lock().expect("chain lock");
        (chain.hash_at(position), Trust::of(&chain))
    };
    let Some(ours) = ours else {
        return Ok(false);
    };
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(STREAM_NAME).await?;
    let info = stream.info().await?.state.clone();
    if info.messages == 0 {
        return Ok(false);
    }
    let first = info.first_sequence.max(1);
    let before = Position::new(position.get().saturating_sub(1));
    let from = first_sequence_after(&stream, first, info.last_sequence, before, &trust).await?;
    let Some((sequence, found)) = message_at_or_after(&stream, from, info.last_sequence, &trust).await?
    else {
        return Ok(false);
    };
    if found != position {
        return Ok(false);
    }
    let message = stream.get_raw_message(sequence).await?;
    let theirs = message
        .headers
        .get(latch_bus::headers::LATCH_HASH)
        .map(|hash| hash.as_str().to_ascii_lowercase());
    Ok(theirs.is_some_and(|theirs| theirs != hex_of(&ours)))
}

/// How long a heartbeat may announce a position the live tail has not
/// delivered before the verifier reads the stream for it (a message the
/// broker dropped on the way, e.g. to a slow consumer).
const BEHIND_FOR: Duration = Duration::from_millis(500);

/// Follows the live tail with a core NATS subscription (the broker's
/// cheapest fan-out: the relay's JetStream publishes reach core subscribers
/// as they are stored), and reads the stream `LATCH_EVENTS` with an ordered
/// consumer only to catch up: at start, after a hole in the tail, and when
/// a heartbeat announces a position the tail has not delivered.
async fn follow(
    inner: &Inner,
    client: &async_nats::Client,
    cursor: &mut StreamCursor,
) -> Result<(), FollowError> {
    if inner.follow == Follow::Stream {
        return catch_up(inner, client, cursor, Until::Never).await;
    }
    // Subscribed before catching up, so that every event published from
    // now on is in the subscription, and every one before it in the stream
    // the catch-up reads: nothing falls between them.
    let mut live = client.subscribe(subject::EVENTS_WILDCARD).await?;
    let mut check = tokio::time::interval(BEHIND_FOR);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut behind_at: Option<Position> = None;
    'catch_up: loop {
        catch_up(inner, client, cursor, Until::End).await?;
        // What arrived while catching up: the stream delivered it too.
        while let Some(Some(message)) = futures::FutureExt::now_or_never(live.next()) {
            match take(inner, &message, Seen::MaybeBefore) {
                Ok(()) => {}
                Err(Untaken::Hole(hole)) => {
                    tracing::debug!(%hole, "verifier: a hole after catching up; reading the stream again");
                    continue 'catch_up;
                }
                Err(Untaken::Diverged(position)) => return Err(FollowError::Diverged(position)),
            }
        }
        loop {
            tokio::select! {
                message = live.next() => {
                    let message = message.ok_or(FollowError::SubscriptionEnded)?;
                    match take(inner, &message, Seen::Never) {
                        Ok(()) => {}
                        Err(Untaken::Hole(hole)) => {
                            tracing::debug!(%hole, "verifier: a hole in the live tail; reading the stream");
                            break;
                        }
                        Err(Untaken::Diverged(position)) => return Err(FollowError::Diverged(position)),
                    }
                }
                _ = check.tick() => {
                    if let Some(position) = inner.take_suspected() {
                        return Err(FollowError::Diverged(position));
                    }
                    if inner.behind_announced(BEHIND_FOR) {
                        // Behind at the same position as the last time: the
                        // last catch-up found nothing to read (messages a
                        // forger replayed into the stream can mislead the
                        // search for where to start). Read it all in order.
                        let have = inner.state.read().expect("state lock").view.position();
                        if behind_at == Some(have) {
                            cursor.from_first = true;
                        }
                        behind_at = Some(have);
                        tracing::debug!("verifier: a heartbeat is ahead of the live tail; reading the stream");
                        break;
                    }
                }
            }
        }
    }
}

/// Whether a message at a position the verifier already has may be a
/// copy it was delivered before (skipped quietly) or can only be a replay
/// (refused and counted).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    MaybeBefore,
    Never,
}

/// Takes one event message: applies it if it is the next, skips a copy,
/// refuses (and counts) anything else. `Err` is a hole: a genuine event
/// past the next position, never folded past.
fn take(inner: &Inner, message: &async_nats::Message, seen: Seen) -> Result<(), Untaken> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    };
    // The chain is checked under its own lock; the view, which only this
    // task writes, is locked for writing just to fold.
    let mut chain = inner.chain.lock().expect("chain lock");
    let have = inner.state.read().expect("state lock").view.position();
    let recorded = match chain.accept(header, &message.payload) {
        Ok(recorded) => recorded,
        Err(FeedRejection::Malformed(problem)) => {
            drop(chain);
            Counters::bump(&inner.counters.foreign_skipped);
            tracing::warn!(subject = %message.subject, %problem, "verifier: skipping a message that is not a Latch event (only latchd should publish to latch.events.>)");
            return Ok(());
        }
        Err(FeedRejection::Replayed(_)) if seen == Seen::MaybeBefore => {
            drop(chain);
            Counters::bump(&inner.counters.duplicates_skipped);
            return Ok(());
        }
        Err(FeedRejection::OutOfOrder { found, .. }) => {
            // Signed by latchd, but past a hole: never fold past it.
            return Err(Untaken::Hole(Hole {
                have,
                offered: found,
            }));
        }
        Err(FeedRejection::Diverged(position)) if inner.divergence_check_due() => {
            return Err(Untaken::Diverged(position));
        }
        Err(FeedRejection::Diverged(position)) => {
            // Checked a moment ago: checked again once due.
            drop(chain);
            *inner.suspected.lock().expect("suspicion lock") = Some(position);
            Counters::bump(&inner.counters.rejected);
            tracing::debug!(subject = %message.subject, %position, "verifier: another event at an applied position; the stream was checked a moment ago");
            return Ok(());
        }
        Err(rejection) => {
            drop(chain);
            Counters::bump(&inner.counters.rejected);
            tracing::warn!(subject = %message.subject, %rejection, "verifier: refused an event");
            return Ok(());
        }
    };
    if recorded.position <= have {
        Counters::bump(&inner.counters.duplicates_skipped);
        return Ok(());
    }
    if recorded.position != have.next() {
        return Err(Untaken::Hole(Hole {
            have,
            offered: recorded.position,
        }));
    }
    let mut tracked = inner.state.write().expect("state lock");
    tracked.view.apply(&recorded);
    let tokens = tracked.view.token_count();
    tracked.usage.cover(tokens);
    drop(tracked);
    drop(chain);
    inner.reached(recorded.position);
    Counters::bump(&inner.counters.events_applied);
    Ok(())
}

/// Whether a read of the stream stops at its end (a catch-up) or follows
/// it (`Follow::Stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    End,
    Never,
}

/// Where the next catch-up reads the stream from.
#[derive(Debug, Default)]
struct StreamCursor {
    /// The last stream sequence read (0: none, or read again).
    last_sequence: u64,
    /// Read from the stream's first message, past holes, instead of from a
    /// position searched for: after a catch-up met a hole (the stream lost
    /// events the relay then published again at its end, or messages a
    /// forger added misled the search), reading everything in order is what
    /// is sure to find the next event.
    from_first: bool,
}

/// Reads the stream from after what the verifier has to its end (as it is
/// when the consumer starts).
async fn catch_up(
    inner: &Inner,
    client: &async_nats::Client,
    cursor: &mut StreamCursor,
    until: Until,
) -> Result<(), FollowError> {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(STREAM_NAME).await?;
    let info = stream.info().await?.state.clone();
    // Start at the first message after what the verifier has: after the
    // last stream message it read, unless the stream was recreated since
    // (then search it all; positions already held are skipped anyway).
    let have = inner.state.read().expect("state lock").view.position();
    let trust = Trust::of(&inner.chain.lock().expect("chain lock"));
    let stream_first = info.first_sequence.max(1);
    let first = if cursor.last_sequence >= info.first_sequence
        && cursor.last_sequence <= info.last_sequence
    {
        cursor.last_sequence + 1
    } else {
        stream_first
    };
    let start_sequence = if cursor.from_first {
        stream_first
    } else if have > Position::ZERO && info.messages > 0 && first <= info.last_sequence {
        first_sequence_after(&stream, first, info.last_sequence, have, &trust).await?
    } else {
        first
    };
    if until == Until::End && (info.messages == 0 || start_sequence > info.last_sequence) {
        return Ok(());
    }
    Counters::bump(&inner.counters.stream_catch_ups);
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut passed_a_hole = false;
    while let Some(message) = messages.next().await {
        let message = message?;
        let pending = match message.info() {
            Ok(info) => {
                cursor.last_sequence = info.stream_sequence;
                info.pending
            }
            Err(_) => 0,
        };
        // An event at a position the verifier has may have come by the
        // live tail: skipped quietly (the tail counts replays).
        match take(inner, &message, Seen::MaybeBefore) {
            Ok(()) => {}
            Err(Untaken::Diverged(position)) => return Err(FollowError::Diverged(position)),
            Err(Untaken::Hole(hole)) => {
                if !cursor.from_first {
                    cursor.last_sequence = 0;
                    cursor.from_first = true;
                    return Err(hole.into());
                }
                // Never folded past; the next event may come later in the
                // stream (published again after a loss).
                passed_a_hole = true;
            }
        }
        if pending == 0 && until == Until::End {
            if passed_a_hole {
                cursor.last_sequence = 0;
            } else {
                cursor.from_first = false;
            }
            return Ok(());
        }
    }
    Err(FollowError::ConsumerEnded)
}

/// What the catch-up search and the stream probe believe of a stream
/// message: with trusted keys, only an event latchd signed for the log the
/// verifier follows (a forger's messages claiming positions must not steer
/// the one nor vouch to the other).
pub(crate) struct Trust {
    keys: TrustedKeys,
    log: Option<latch_core::LogId>,
}

impl Trust {
    pub(crate) fn of(chain: &FeedChain) -> Self {
        Self {
            keys: chain.trusted().clone(),
            log: chain.log(),
        }
    }

    fn signed(&self, headers: &async_nats::HeaderMap, position: Position) -> bool {
        if self.keys.is_empty() {
            return true;
        }
        let header = |name: &str| headers.get(name).map(|v| v.as_str());
        latch_bus::signed_headers(&self.keys, header).is_some_and(|(log, signed_at, _)| {
            signed_at == position && self.log.is_none_or(|ours| ours == log)
        })
    }

    /// Whether only what latchd signed counts.
    pub(crate) fn is_checking(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The position of a stream message that is a Latch event whose
    /// `Latch-Position` and payload agree and, with trusted keys, that
    /// latchd signed for the log the verifier follows; `None` for anything
    /// else.
    pub(crate) fn position_of(
        &self,
        message: &jetstream::message::StreamMessage,
    ) -> Option<Position> {
        message
            .headers
            .get(latch_bus::headers::LATCH_POSITION)
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .filter(|&position| {
                latch_bus::decode(&message.payload)
                    .is_ok_and(|recorded| recorded.position.get() == position)
            })
            .map(Position::new)
            .filter(|&position| self.signed(&message.headers, position))
    }
}

/// The first existing stream message at or after `sequence` (up to
/// `last`) that is a Latch event, with its position (messages that are not
/// Latch events are skipped).
async fn message_at_or_after(
    stream: &jetstream::stream::Stream,
    sequence: u64,
    last: u64,
    trusted: &Trust,
) -> Result<Option<(u64, Position)>, jetstream::stream::RawMessageError> {
    let mut sequence = sequence;
    while sequence <= last {
        match stream.get_raw_message(sequence).await {
            // A foreign message must not steer the search: only a Latch
            // event whose header and payload agree counts.
            Ok(message) => match trusted.position_of(&message) {
                Some(position) => return Ok(Some((sequence, position))),
                None => sequence += 1,
            },
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                sequence += 1
            }
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// Binary search for the first stream sequence whose position is after
/// `have` (positions grow with sequences); `last + 1` when there is none yet.
/// Anything it gets slightly wrong is caught by the consumer: positions at
/// or below `have` are skipped, and a hole makes it re-read.
async fn first_sequence_after(
    stream: &jetstream::stream::Stream,
    first: u64,
    last: u64,
    have: Position,
    trusted: &Trust,
) -> Result<u64, jetstream::stream::RawMessageError> {
    let (mut low, mut high) = (first, last + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        match message_at_or_after(stream, middle, last, trusted).await? {
            Some((sequence, position)) if position > have => high = middle.min(sequence),
            Some((sequence, _)) => low = sequence + 1,
            None => high = middle,
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        Inner {
            state: RwLock::new(Tracked {
                view: VerifierView::new(),
                usage: UsageSlots::new(Utc::now()),
            }),
            chain: Mutex::new(FeedChain::from_start(TrustedKeys::default())),
            started: Instant::now(),
            fresh_at_ms: AtomicU64::new(0),
            announced: Mutex::new(None),
            heartbeat_at_ms: AtomicU64::new(0),
            replicated_feed: std::sync::atomic::AtomicBool::new(false),
            max_staleness: Duration::from_secs(5),
            initial_trust: TrustedKeys::default(),
            suspected: Mutex::new(None),
            divergence_checked_at_ms: AtomicU64::new(0),
            counters: Counters::default(),
            counts_usage: false,
            refused: RefusedUses::default(),
            follow: Follow::LiveTail,
        }
    }

    /// A genuine heartbeat replayed late vouches as of when latchd sent
    /// it: it cannot stretch freshness to twice `max_staleness`.
    #[test]
    fn a_heartbeat_vouches_as_of_its_own_time() {
        let inner = inner();
        std::thread::sleep(Duration::from_millis(1500));
        let sent = Utc::now() - chrono::TimeDelta::milliseconds(1000);
        inner.take_heartbeat(&Heartbeat::new(Position::ZERO, sent));
        let fresh_at = inner.fresh_at_ms.load(Ordering::SeqCst);
        let now = inner.now_ms();
        assert!(
            fresh_at <= now - 900 && fresh_at >= now - 1200,
            "fresh as of {fresh_at} ms, now {now} ms"
        );
    }

    #[test]
    fn a_heartbeat_ahead_of_the_view_vouches_only_once_it_is_reached() {
        let inner = inner();
        inner.announce(Position::new(3), 10);
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 0);
        inner.reached(Position::new(2));
        assert_eq!(
            inner.fresh_at_ms.load(Ordering::SeqCst),
            0,
            "not reached yet"
        );
        inner.reached(Position::new(3));
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10);
        // A heartbeat for a position the view has (0) vouches at once.
        inner.announce(Position::ZERO, 20);
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 20);
    }

    /// After a heartbeat announced position 5 (not reached yet), one for a
    /// position the view has (a deposed leader's last, or one held back)
    /// vouches for nothing; reaching 5 still does.
    #[test]
    fn a_heartbeat_behind_an_announced_position_vouches_for_nothing() {
        let inner = inner();
        inner.announce(Position::new(5), 10);
        inner.announce(Position::ZERO, 20);
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 0);
        inner.reached(Position::new(5));
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10);
    }

    fn asked(inner: &Inner, at_ms: u64) -> ProbeStart {
        ProbeStart {
            at_ms,
            have: inner.state.read().unwrap().view.position(),
            trust: Trust::of(&inner.chain.lock().unwrap()),
        }
    }

    fn tail(position: u64) -> StreamTail {
        StreamTail::Event {
            position: Position::new(position),
            hash: None,
        }
    }

    /// A view at `position` (the chain too), as the follower leaves it.
    fn at(inner: &Inner, position: u64, hash: [u8; 32]) {
        let log = latch_core::LogId::new();
        *inner.chain.lock().unwrap() = FeedChain::from_snapshot(
            TrustedKeys::new([latch_bus::SigningKey::generate().unwrap().public_key()]),
            log,
            Position::new(position),
            hash,
        );
        if position > 0 {
            inner
                .state
                .write()
                .unwrap()
                .view
                .apply(&latch_core::RecordedEvent {
                    position: Position::new(position),
                    version: 1,
                    envelope: latch_core::EventEnvelope {
                        id: latch_core::EventId::new(),
                        at: Utc::now(),
                        actor: latch_core::Actor::System,
                        request_id: None,
                        idempotency_key_sha256: None,
                        event: latch_core::Event::AccountEnabled {
                            account_id: AccountId::new(),
                        },
                    },
                });
        }
    }

    /// A stream end the view has reached vouches as of when the probe was
    /// sent; one ahead of it only once the view reaches it, and still as
    /// of when the probe was sent.
    #[test]
    fn a_stream_end_vouches_as_of_the_probe_once_reached() {
        let inner = inner();
        let probe = asked(&inner, 10);
        assert_eq!(
            inner.take_stream_tail(&StreamTail::Empty, &probe),
            TailVerdict::Reached
        );
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10);

        let probe = asked(&inner, 20);
        assert_eq!(inner.take_stream_tail(&tail(2), &probe), TailVerdict::Ahead);
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10, "not reached");
        inner.reached(Position::new(1));
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10, "not reached");
        inner.reached(Position::new(2));
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 20);
    }

    /// A stream end below the view (truncated, or an older event replayed
    /// at it) or below an announced position vouches for nothing.
    #[test]
    fn a_stream_end_behind_the_view_or_an_announcement_vouches_for_nothing() {
        let inner = inner();
        at(&inner, 5, [0; 32]);
        let probe = asked(&inner, 10);
        assert_eq!(
            inner.take_stream_tail(&tail(4), &probe),
            TailVerdict::Behind {
                have: Position::new(5)
            }
        );
        assert_eq!(
            inner.take_stream_tail(&StreamTail::Empty, &probe),
            TailVerdict::Behind {
                have: Position::new(5)
            }
        );
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 0);

        inner.announce(Position::new(8), 5);
        assert_eq!(
            inner.take_stream_tail(&tail(5), &asked(&inner, 20)),
            TailVerdict::BelowAnnounced {
                announced: Position::new(8)
            }
        );
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 0);
    }

    /// With trusted keys, the stream's event at the view's own position
    /// vouches only if it is the event the view applied (its chain hash).
    #[test]
    fn another_event_at_the_view_s_position_vouches_for_nothing() {
        let inner = inner();
        let ours = [3; 32];
        at(&inner, 5, ours);
        let other = StreamTail::Event {
            position: Position::new(5),
            hash: Some(hex_of(&[4; 32])),
        };
        assert_eq!(
            inner.take_stream_tail(&other, &asked(&inner, 10)),
            TailVerdict::OtherEvent
        );
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 0);
        let same = StreamTail::Event {
            position: Position::new(5),
            hash: Some(hex_of(&ours).to_uppercase()),
        };
        assert_eq!(
            inner.take_stream_tail(&same, &asked(&inner, 10)),
            TailVerdict::Reached
        );
        assert_eq!(inner.fresh_at_ms.load(Ordering::SeqCst), 10);
    }

    /// Only a heartbeat that vouched counts as heard: forged or unsigned
    /// ones must not hold the stream probe back.
    #[test]
    fn only_a_heartbeat_that_vouches_holds_the_probe_back() {
        let inner = inner();
        at(&inner, 0, [0; 32]);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!inner.heard_heartbeat_within(Duration::from_millis(50)));
        inner.take_heartbeat(&Heartbeat::new(Position::ZERO, Utc::now()));
        assert!(
            !inner.heard_heartbeat_within(Duration::from_millis(50)),
            "unsigned"
        );
        assert!(inner.counters.snapshot().rejected > 0);
        let unchecked = self::inner();
        unchecked.take_heartbeat(&Heartbeat::new(Position::ZERO, Utc::now()));
        assert!(unchecked.heard_heartbeat_within(Duration::from_millis(50)));
    }

    /// Heartbeats arrive at time = their position while the consumer
    /// reaches positions concurrently: the verifier is never fresh as of a
    /// heartbeat whose position it has not reached. (With the position and
    /// its arrival time in two separate atomics, a `reached` between the two
    /// stores paired an older position with a newer time.)
    #[test]
    fn freshness_is_never_paired_with_a_position_not_reached() {
        let inner = Arc::new(inner());
        let announcer = {
            let inner = inner.clone();
            std::thread::spawn(move || {
                for position in 1..=200_000u64 {
                    inner.announce(Position::new(position), position);
                }
            })
        };
        let mut position = 0u64;
        while !announcer.is_finished() {
            position += 1;
            inner.reached(Position::new(position));
            let fresh = inner.fresh_at_ms.load(Ordering::SeqCst);
            assert!(
                fresh <= position,
                "fresh as of the heartbeat for {fresh} with only {position} reached"
            );
        }
        announcer.join().unwrap();
    }
}
