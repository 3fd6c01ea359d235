//! What publishes events to NATS while `latch-bench append` appends: none,
//! latchd's relay (which signs every event), or this benchmark's copy of the
//! relay's publish loop (`publish_after`) with and without signing, so the
//! cost of signing shows apart from the cost of publishing.
//!
//! The copy does only what the relay does per event (read a batch after
//! the last acknowledged position, build each message, publish pipelined,
//! await the acks) and none of its once-a-session work (stream checks,
//! heartbeats). `unsigned` builds the message as the relay did before it
//! signed (commit 9cdcd5c): the CloudEvent alone, headers `Nats-Msg-Id` and
//! `Latch-Position`. `signed` builds it as the relay does now:
//! `latch_bus::sign_batch` over each batch read (one signature, a proof per
//! event), the record in the CloudEvent, and the `Latch-Log-Id`,
//! `Latch-Hash`, `Latch-Signature`, `Latch-Batch` and `Latch-Proof`
//! headers; `signed-each` signs every event alone (`sign_event`), as the
//! relay did before batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream;
use latch_bus::{StreamSettings, headers};
use latch_core::Position;
use latch_store::EventStore;
use tokio::sync::watch;

/// The relay's batch (`latchd::relay::BATCH`).
const BATCH: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RelayMode {
    /// Nothing publishes: the command handler alone.
    None,
    /// latchd's relay, as latchd runs it (it signs every event).
    Relay,
    /// The relay's publish loop as it was before signing.
    Unsigned,
    /// The relay's publish loop as it is now: one signature per batch
    /// (`sign_batch`).
    Signed,
    /// The relay's publish loop signing each event alone (`sign_event`),
    /// as it did before batches.
    SignedEach,
}

impl RelayMode {
    pub fn name(self) -> &'static str {
        match self {
            RelayMode::None => "none",
            RelayMode::Relay => "relay",
            RelayMode::Unsigned => "unsigned",
            RelayMode::Signed => "signed",
            RelayMode::SignedEach => "signed-each",
        }
    }
}

/// A publisher started beside the command handler.
pub struct Publisher {
    published: Arc<AtomicU64>,
    /// latchd's relay keeps its own count.
    relay: Option<Arc<latchd::RelayStatus>>,
    _nats: latch_testkit::NatsServer,
    _stop: watch::Sender<bool>,
}

impl Publisher {
    /// The last position the stream acknowledged.
    pub fn published(&self) -> u64 {
        match &self.relay {
            Some(status) => status.published.load(Ordering::SeqCst),
            None => self.published.load(Ordering::SeqCst),
        }
    }
}

/// Starts what `mode` names, publishing `store`'s events; `None` for none.
pub fn start(mode: RelayMode, store: &Arc<EventStore>) -> Option<Publisher> {
    if mode == RelayMode::None {
        return None;
    }
    let nats = latch_testkit::NatsServer::start();
    let (stop, shutdown) = watch::channel(false);
    let published = Arc::new(AtomicU64::new(0));
    let mut relay_status = None;
    if mode == RelayMode::Relay {
        let status = Arc::new(latchd::RelayStatus::default());
        let relay = latchd::Relay {
            store: store.clone(),
            nats: latch_bus::NatsConnection::new(nats.url()),
            clock: Arc::new(latchd::SystemClock),
            status: status.clone(),
            keyring: Arc::new(latchd::Keyring::ephemeral()),
            publishes_events: true,
        };
        tokio::spawn(relay.run(shutdown));
        relay_status = Some(status);
    } else {
        let key = matches!(mode, RelayMode::Signed | RelayMode::SignedEach)
            .then(|| latch_bus::SigningKey::generate().expect("random source works"));
        tokio::spawn(publish_loop(
            store.clone(),
            nats.url(),
            key,
            mode == RelayMode::SignedEach,
            published.clone(),
            shutdown,
        ));
    }
    Some(Publisher {
        published,
        relay: relay_status,
        _nats: nats,
        _stop: stop,
    })
}

async fn publish_loop(
    store: Arc<EventStore>,
    url: String,
    key: Option<latch_bus::SigningKey>,
    each: bool,
    published_to: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(error) =
        publish_loop_inner(&store, &url, key, each, &published_to, &mut shutdown).await
    {
        eprintln!("append: publisher failed: {error}");
    }
}

async fn publish_loop_inner(
    store: &EventStore,
    url: &str,
    key: Option<latch_bus::SigningKey>,
    each: bool,
    published_to: &AtomicU64,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let settings = StreamSettings::default();
    js.get_or_create_stream(jetstream::stream::Config {
        name: settings.name.to_owned(),
        subjects: settings.subjects.clone(),
        storage: jetstream::stream::StorageType::File,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = store.log_id().expect("a writable log has an id");
    let mut head = store.subscribe();
    let mut published = Position::ZERO;
    loop {
        while published < store.head().position {
            let events = store.read_after(published, BATCH)?;
            let mut pending = Vec::with_capacity(events.len());
            let recorded: Vec<latch_bus::BatchEvent> = events
                .iter()
                .map(|stored| {
                    Ok(latch_bus::BatchEvent {
                        recorded: latchd::to_recorded(stored)?,
                        record: stored.record(),
                        hash: *stored.hash.as_bytes(),
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let signed = key.as_ref().map(|key| match each {
                true => recorded
                    .iter()
                    .map(|e| latch_bus::sign_event(&e.recorded, &e.record, &e.hash, log, key))
                    .collect(),
                false => latch_bus::sign_batch(&recorded, log, key),
            });
            for (i, event) in recorded.iter().enumerate() {
                let recorded = &event.recorded;
                let (message_headers, payload) = match &signed {
                    Some(signed) => (
                        headers::event_headers(recorded, signed[i].headers()),
                        signed[i].payload.clone(),
                    ),
                    None => (
                        headers::event_headers(recorded, []),
                        latch_bus::encode(recorded),
                    ),
                };
                let subject = latch_bus::event_subject(&recorded.envelope.event);
                let ack = js
                    .publish_with_headers(subject, message_headers, payload.into())
                    .await?;
                pending.push((recorded.position, ack));
            }
            for (position, ack) in pending {
                ack.await?;
                published = position;
            }
            published_to.store(published.get(), Ordering::SeqCst);
        }
        tokio::select! {
            _ = head.changed() => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
