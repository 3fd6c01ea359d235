//! The stream probe against a real nats-server with no latchd: once a
//! verifier accepted heartbeats saying the feed is replicated (an HA
//! cluster's) and they stopped, the stream's last Latch event keeps it
//! current while its view has reached it; with the probe off, NATS gone,
//! or only a single latchd's heartbeats ever seen (not replicated, or
//! claiming it without latchd's signature over the claim), it goes stale;
//! and nothing a forger can put at the stream's end (unsigned or wrongly
//! signed events, an older genuine event) vouches for a verifier that
//! trusts latchd's key. The events and heartbeats are written here as
//! latchd's log and relay write them (records chained by hash, signed in
//! batches of one); the tests start heartbeats before a verifier connects
//! and drop them to play latchd gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use latch_bus::{BatchEvent, Heartbeat, STREAM_NAME, SigningKey, TrustedKeys, subject};
use latch_core::{
    AccountId, Actor, Event, EventEnvelope, EventId, LogId, RecordedEvent, TokenDigest,
};
use latch_testkit::NatsServer;
use latch_verify::{NatsConnection, Position, Verifier, VerifierConfig};

/// Probes start 400 ms after the last heartbeat and repeat every 400 ms.
const MAX_STALENESS: Duration = Duration::from_millis(1200);
/// How long after its last proof a verifier must be stale, with slack for
/// a loaded test machine.
const STALE_WITHIN: Duration = Duration::from_millis(4000);

fn config(nats: &NatsServer) -> VerifierConfig {
    let mut config = VerifierConfig::new(NatsConnection::new(nats.url()));
    config.max_staleness = MAX_STALENESS;
    config.connect_timeout = Duration::from_secs(10);
    config.usage_report_every = None;
    config
}

/// An event message as the relay publishes it.
#[derive(Clone)]
struct EventMessage {
    subject: String,
    headers: async_nats::HeaderMap,
    payload: Vec<u8>,
}

/// A log as latchd writes it: records chained by hash, each event signed
/// with `key` (none: unsigned, as from a latchd with signing off, or a
/// forger).
struct Log {
    id: LogId,
    key: Option<Arc<SigningKey>>,
    /// The chain hash at each position (index 0: position 0).
    hashes: Vec<[u8; 32]>,
}

impl Log {
    fn new(key: Option<SigningKey>) -> Self {
        Self {
            id: LogId::new(),
            key: key.map(Arc::new),
            hashes: vec![[0; 32]],
        }
    }

    /// A forger's log that claims to continue `log` at `position` (an
    /// unsigned one, or signed by its own `key`).
    fn forged(log: &Log, position: u64, key: Option<SigningKey>) -> Self {
        Self {
            id: log.id,
            key: key.map(Arc::new),
            hashes: vec![[7; 32]; position as usize + 1],
        }
    }

    fn hash_at(&self, position: Position) -> [u8; 32] {
        self.hashes[position.get() as usize]
    }

    /// The next event (an account disabled: any event will do).
    fn next(&mut self) -> EventMessage {
        let position = self.hashes.len() as u64;
        let envelope = EventEnvelope {
            id: EventId::new(),
            at: chrono::Utc::now(),
            actor: Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event: Event::AccountDisabled {
                account_id: AccountId::new(),
                reason: format!("event {position}"),
            },
        };
        let prev = TokenDigest::from_bytes(*self.hashes.last().expect("position 0"));
        let record = serde_json::json!({
            "position": position,
            "stream": "test",
            "version": 1,
            "prev_hash": prev.to_hex(),
            "data": envelope,
        })
        .to_string();
        // The chain hash: SHA-256 of the record (as a token digest is of
        // the token's text).
        let hash = *TokenDigest::of(&record).as_bytes();
        self.hashes.push(hash);
        let recorded = RecordedEvent {
            position: Position::new(position),
            version: 1,
            envelope,
        };
        let subject = latch_bus::event_subject(&recorded.envelope.event);
        let (headers, payload) = match &self.key {
            Some(key) => {
                let event = BatchEvent {
                    recorded: recorded.clone(),
                    record,
                    hash,
                };
                let signed = latch_bus::sign_batch(std::slice::from_ref(&event), self.id, key)
                    .pop()
                    .expect("one event, one message");
                (
                    latch_bus::headers::event_headers(&recorded, signed.headers()),
                    signed.payload,
                )
            }
            None => (
                latch_bus::headers::event_headers(&recorded, []),
                latch_bus::encode(&recorded),
            ),
        };
        EventMessage {
            subject,
            headers,
            payload,
        }
    }

    /// Heartbeats for `position` from a `feed`, each sent when made
    /// (signed when the log is).
    fn heartbeats_at(
        &self,
        position: Position,
        feed: Feed,
    ) -> impl Fn() -> Heartbeat + Send + 'static {
        let (id, key, hash) = (self.id, self.key.clone(), self.hash_at(position));
        move || {
            let mut beat = Heartbeat::new(position, chrono::Utc::now());
            beat.replicated = feed == Feed::Replicated;
            if let Some(key) = &key {
                latch_bus::sign_heartbeat(&mut beat, id, &hash, key);
            }
            if feed == Feed::FlippedToReplicated {
                beat.replicated = true;
            }
            beat
        }
    }
}

/// The broker as the relay and a forger use it.
struct Broker {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Broker {
    /// Connects and creates the stream (`duplicate_window`: how long
    /// JetStream drops a message whose `Nats-Msg-Id` it has seen).
    async fn start(nats: &NatsServer, duplicate_window: Duration) -> Self {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client.clone());
        js.create_stream(jetstream::stream::Config {
            name: STREAM_NAME.to_owned(),
            subjects: vec![subject::EVENTS_WILDCARD.to_owned()],
            duplicate_window,
            ..Default::default()
        })
        .await
        .unwrap();
        Self { client, js }
    }

    /// Publishes into the stream and waits until it is stored.
    async fn publish(&self, message: &EventMessage) {
        let ack = self
            .js
            .publish_with_headers(
                message.subject.clone(),
                message.headers.clone(),
                message.payload.clone().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(!ack.duplicate, "the stream dropped it as a duplicate");
    }

    /// Heartbeats from `beat` every 100 ms, as latchd's relay sends them
    /// (every second), until the returned handle is dropped.
    fn heartbeats(&self, beat: impl Fn() -> Heartbeat + Send + 'static) -> Heartbeats {
        let client = self.client.clone();
        Heartbeats(tokio::spawn(async move {
            loop {
                client
                    .publish(subject::HEARTBEAT, beat().encode().into())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }

    async fn stream(&self) -> jetstream::stream::Stream {
        self.js.get_stream(STREAM_NAME).await.unwrap()
    }
}

/// What heartbeats say of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// An HA cluster's: `replicated`, signed as such. Only these let a
    /// verifier probe the stream.
    Replicated,
    /// A single latchd's: not replicated.
    Single,
    /// A single latchd's genuine heartbeat with `replicated` turned on
    /// after it was signed (by whoever may publish on `latch.heartbeat`).
    FlippedToReplicated,
}

/// Sends heartbeats until dropped.
struct Heartbeats(tokio::task::JoinHandle<()>);

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks `holds` every 20 ms for `duration`.
async fn throughout(what: &str, duration: Duration, mut holds: impl FnMut() -> bool) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        assert!(holds(), "no longer so: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_feed_is_replicated_the_stream_keeps_a_verifier_current_without_heartbeats() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let mut log = Log::new(None);
    for _ in 0..3 {
        broker.publish(&log.next()).await;
    }
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(3), Feed::Replicated));
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    assert_eq!(verifier.position(), Position::new(3));

    // The cluster is gone, no heartbeat: the stream alone keeps it current
    // for many times max_staleness.
    drop(beating);
    throughout("current on the stream's word", MAX_STALENESS * 5, || {
        !verifier.is_stale()
    })
    .await;
    let stats = verifier.stats();
    assert!(stats.stream_probes >= 5, "{stats:?}");
    assert_eq!(stats.stream_probe_failures, 0, "{stats:?}");
    assert_eq!(stats.stream_probe_refusals, 0, "{stats:?}");

    // An event published meanwhile (a latchd that appends and has not
    // sent a heartbeat yet) is followed, and it stays current.
    broker.publish(&log.next()).await;
    until("the new event is applied", Duration::from_secs(5), || {
        verifier.position() == Position::new(4)
    })
    .await;
    throughout("current after it", MAX_STALENESS * 2, || {
        !verifier.is_stale()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_make_probes_unneeded_and_without_the_probe_a_verifier_goes_stale() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let mut log = Log::new(None);
    for _ in 0..3 {
        broker.publish(&log.next()).await;
    }
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(3), Feed::Replicated));
    // Probing only 800 ms after the last heartbeat: heartbeats every
    // 100 ms leave no room for a probe, even on a loaded machine.
    let max_staleness = MAX_STALENESS * 2;
    let mut probing = config(&nats);
    probing.max_staleness = max_staleness;
    let probing = Verifier::connect(probing).await.unwrap();
    let mut heartbeats_only = config(&nats);
    heartbeats_only.max_staleness = max_staleness;
    heartbeats_only.stream_probe = false;
    let heartbeats_only = Verifier::connect(heartbeats_only).await.unwrap();
    throughout("both current on heartbeats", max_staleness, || {
        !probing.is_stale() && !heartbeats_only.is_stale()
    })
    .await;
    assert_eq!(
        probing.stats().stream_probes,
        0,
        "no probe while heartbeats arrive"
    );

    // latchd stops: without the probe a verifier fails closed, as before;
    // with it, the stream vouches.
    drop(beating);
    let stopped = Instant::now();
    until(
        "stale without heartbeats",
        max_staleness + STALE_WITHIN,
        || heartbeats_only.is_stale(),
    )
    .await;
    assert!(stopped.elapsed() >= max_staleness / 2);
    assert_eq!(heartbeats_only.stats().stream_probes, 0);
    throughout(
        "the probing verifier stays current",
        max_staleness * 2,
        || !probing.is_stale(),
    )
    .await;
    assert!(probing.stats().stream_probes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_goes_stale_when_nats_stops_and_current_when_it_returns() {
    let mut nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let mut log = Log::new(None);
    for _ in 0..2 {
        broker.publish(&log.next()).await;
    }
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(2), Feed::Replicated));
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    drop(beating);
    throughout("current on the stream's word", MAX_STALENESS * 2, || {
        !verifier.is_stale()
    })
    .await;
    assert!(verifier.stats().stream_probes > 0);

    nats.stop();
    until("stale with NATS down", STALE_WITHIN, || verifier.is_stale()).await;
    until(
        "the failed probes are counted",
        Duration::from_secs(5),
        || verifier.stats().stream_probe_failures > 0,
    )
    .await;
    throughout("still stale", MAX_STALENESS * 2, || verifier.is_stale()).await;

    nats.restart();
    until(
        "current again once NATS is back",
        Duration::from_secs(20),
        || !verifier.is_stale(),
    )
    .await;
    assert_eq!(verifier.position(), Position::new(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_latchd_signed_keeps_a_verifier_that_trusts_its_key_current() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let key = SigningKey::generate().unwrap();
    let mut config = config(&nats);
    config.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    for _ in 0..3 {
        broker.publish(&log.next()).await;
    }
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(3), Feed::Replicated));
    let verifier = Verifier::connect(config).await.unwrap();
    assert_eq!(verifier.position(), Position::new(3));
    drop(beating);
    throughout(
        "current on the signed stream's word",
        MAX_STALENESS * 4,
        || !verifier.is_stale(),
    )
    .await;
    let stats = verifier.stats();
    assert!(stats.stream_probes > 0, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
}

/// The stream lost event 3: the view stops at 2, while the stream's last
/// genuine event is 4. A forger then adds, at the stream's end, events
/// claiming position 2: one signed with its own key, one unsigned, and
/// last a copy of genuine event 2 under another event id (its chain hash
/// right, its signature broken). Were any believed, the view (at 2) would
/// look current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_forged_events_at_the_stream_s_end_vouch_for_nothing() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let key = SigningKey::generate().unwrap();
    let mut config = config(&nats);
    config.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    broker.publish(&log.next()).await;
    let genuine = log.next();
    broker.publish(&genuine).await;
    let _lost = log.next();
    broker.publish(&log.next()).await;
    // In the stream before the verifier starts: its first probe meets
    // them, with nothing announced yet that they would contradict.
    let forger = SigningKey::generate().unwrap();
    broker
        .publish(&Log::forged(&log, 1, Some(forger)).next())
        .await;
    broker.publish(&Log::forged(&log, 1, None).next()).await;
    let mut copy = genuine.clone();
    copy.headers.insert(
        latch_bus::headers::NATS_MSG_ID,
        EventId::new().to_string().as_str(),
    );
    broker.publish(&copy).await;
    let two = Position::new(2);
    let beating = broker.heartbeats(log.heartbeats_at(two, Feed::Replicated));
    let verifier = Verifier::connect(config).await.unwrap();
    assert_eq!(verifier.position(), two);
    // (The forger's signed one claims a position the view has: skipped as
    // a copy.)
    until(
        "the unsigned forgery is refused",
        Duration::from_secs(5),
        || verifier.stats().rejected >= 1,
    )
    .await;

    drop(beating);
    until(
        "stale: the stream's last genuine event is not reached",
        STALE_WITHIN,
        || verifier.is_stale(),
    )
    .await;
    throughout(
        "stale whatever is at the stream's end",
        MAX_STALENESS * 3,
        || verifier.is_stale(),
    )
    .await;
    let stats = verifier.stats();
    assert!(stats.stream_probes > 0, "{stats:?}");
    assert_eq!(verifier.position(), two);
}

/// The stream lost event 3 and holds 4: a verifier whose view stops at 2
/// is not current on the stream's word, however often it probes; once
/// the stream holds what it lacks, it catches up and is current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_end_the_view_has_not_reached_vouches_only_once_reached() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let key = SigningKey::generate().unwrap();
    let mut config = config(&nats);
    config.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    broker.publish(&log.next()).await;
    broker.publish(&log.next()).await;
    let lost = log.next();
    broker.publish(&log.next()).await;
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(2), Feed::Replicated));
    let verifier = Verifier::connect(config).await.unwrap();
    assert_eq!(verifier.position(), Position::new(2));

    drop(beating);
    until(
        "stale: the stream's last event is not reached",
        STALE_WITHIN,
        || verifier.is_stale(),
    )
    .await;
    throughout("stale while it cannot reach it", MAX_STALENESS * 3, || {
        verifier.is_stale()
    })
    .await;
    let probes = verifier.stats().stream_probes;
    assert!(probes > 0);

    // The lost event is published again, then a new one.
    broker.publish(&lost).await;
    broker.publish(&log.next()).await;
    until(
        "current once it has the stream's last event",
        Duration::from_secs(10),
        || !verifier.is_stale(),
    )
    .await;
    assert_eq!(verifier.position(), Position::new(5));
    throughout("current", MAX_STALENESS * 2, || !verifier.is_stale()).await;
}

/// The stream's last genuine event below what the view applied: the
/// stream lost its tail, or a forger published an older genuine event
/// again (past JetStream's duplicate window). Were it believed, the view
/// (ahead of it) would look current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_end_behind_the_view_vouches_for_nothing() {
    let nats = NatsServer::start();
    let duplicate_window = Duration::from_millis(500);
    let broker = Broker::start(&nats, duplicate_window).await;
    let key = SigningKey::generate().unwrap();
    let mut config = config(&nats);
    config.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    let mut published = Vec::new();
    for _ in 0..3 {
        let message = log.next();
        broker.publish(&message).await;
        published.push(message);
    }
    let beating = broker.heartbeats(log.heartbeats_at(Position::new(3), Feed::Replicated));
    let verifier = Verifier::connect(config).await.unwrap();
    assert_eq!(verifier.position(), Position::new(3));
    drop(beating);
    throughout("current on the stream's word", MAX_STALENESS * 2, || {
        !verifier.is_stale()
    })
    .await;
    assert!(verifier.stats().stream_probes > 0);

    // The stream loses its last event.
    let stream = broker.stream().await;
    assert!(stream.delete_message(3).await.unwrap());
    until("stale on a truncated stream", STALE_WITHIN, || {
        verifier.is_stale()
    })
    .await;
    throughout("stale", MAX_STALENESS * 2, || verifier.is_stale()).await;
    let refusals = verifier.stats().stream_probe_refusals;
    assert!(refusals > 0);

    // A new event brings the stream's end past the view again.
    broker.publish(&log.next()).await;
    until("current again", Duration::from_secs(5), || {
        !verifier.is_stale()
    })
    .await;
    assert_eq!(verifier.position(), Position::new(4));

    // A forger publishes genuine event 2 again.
    tokio::time::sleep(duplicate_window * 2).await;
    broker.publish(&published[1]).await;
    until("stale on a replayed older event", STALE_WITHIN, || {
        verifier.is_stale()
    })
    .await;
    throughout("stale", MAX_STALENESS * 2, || verifier.is_stale()).await;
    assert!(verifier.stats().stream_probe_refusals > refusals);
    assert_eq!(verifier.position(), Position::new(4));
}

/// A single latchd publishes its events after it answers: if it dies
/// right after acknowledging a revocation, the stream lacks it. So a
/// verifier that only ever heard a single latchd's heartbeats (trusting
/// its key or not) never probes, and goes stale `max_staleness` after
/// they stop, though the stream's last event is exactly its view (a probe
/// would vouch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_latchd_s_verifiers_never_probe_and_go_stale_without_heartbeats() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let key = SigningKey::generate().unwrap();
    let mut trusting = config(&nats);
    trusting.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    for _ in 0..3 {
        broker.publish(&log.next()).await;
    }
    let three = Position::new(3);
    let beating = broker.heartbeats(log.heartbeats_at(three, Feed::Single));
    let trusting = Verifier::connect(trusting).await.unwrap();
    let untrusting = Verifier::connect(config(&nats)).await.unwrap();
    let verifiers = [&trusting, &untrusting];
    throughout("current on heartbeats", MAX_STALENESS, || {
        verifiers.iter().all(|verifier| !verifier.is_stale())
    })
    .await;

    drop(beating);
    let stopped = Instant::now();
    assert_eq!(broker.stream().await.cached_info().state.last_sequence, 3);
    until(
        "both stale without heartbeats",
        MAX_STALENESS + STALE_WITHIN,
        || verifiers.iter().all(|verifier| verifier.is_stale()),
    )
    .await;
    assert!(stopped.elapsed() >= MAX_STALENESS / 2);
    throughout(
        "stale, though the stream's last event is their view",
        MAX_STALENESS * 3,
        || verifiers.iter().all(|verifier| verifier.is_stale()),
    )
    .await;
    for verifier in verifiers {
        assert_eq!(verifier.position(), three);
        let stats = verifier.stats();
        assert_eq!(stats.stream_probes, 0, "{stats:?}");
        assert_eq!(stats.rejected, 0, "{stats:?}");
    }
}

/// latchd's signature covers `replicated`: a single latchd's genuine
/// heartbeat with the flag turned on by whoever may publish on
/// `latch.heartbeat` is refused by a verifier that trusts latchd's key,
/// and lets it probe no more than the genuine ones do: it goes stale once
/// heartbeats stop. The same stream does vouch once latchd's own signed
/// heartbeats say the feed is replicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_claiming_replication_without_latchd_s_signature_enables_no_probe() {
    let nats = NatsServer::start();
    let broker = Broker::start(&nats, Duration::ZERO).await;
    let key = SigningKey::generate().unwrap();
    let mut config = config(&nats);
    config.trusted_keys = TrustedKeys::new([key.public_key()]);
    let mut log = Log::new(Some(key));
    for _ in 0..3 {
        broker.publish(&log.next()).await;
    }
    let three = Position::new(3);
    let genuine = broker.heartbeats(log.heartbeats_at(three, Feed::Single));
    let flipped = broker.heartbeats(log.heartbeats_at(three, Feed::FlippedToReplicated));
    let verifier = Verifier::connect(config).await.unwrap();
    until(
        "the flipped heartbeats are refused",
        Duration::from_secs(5),
        || verifier.stats().rejected >= 3,
    )
    .await;

    drop((genuine, flipped));
    until(
        "stale without heartbeats",
        MAX_STALENESS + STALE_WITHIN,
        || verifier.is_stale(),
    )
    .await;
    throughout("still stale", MAX_STALENESS * 3, || verifier.is_stale()).await;
    let stats = verifier.stats();
    assert_eq!(stats.stream_probes, 0, "{stats:?}");

    // latchd's own replicated heartbeats: the stream then vouches.
    let replicated = broker.heartbeats(log.heartbeats_at(three, Feed::Replicated));
    until("current on them", Duration::from_secs(5), || {
        !verifier.is_stale()
    })
    .await;
    drop(replicated);
    let rejected = verifier.stats().rejected;
    throughout("current on the stream's word", MAX_STALENESS * 3, || {
        !verifier.is_stale()
    })
    .await;
    let stats = verifier.stats();
    assert!(stats.stream_probes > 0, "{stats:?}");
    assert_eq!(stats.rejected, rejected, "{stats:?}");
}
