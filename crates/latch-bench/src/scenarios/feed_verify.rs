//! `latch-bench feed-verify`: how many events a second a verifier can
//! check and fold while it catches up on a signed feed.
//!
//! Builds a real log of about `events` events through the command handler
//! (accounts, tokens, revocations, as `replay` does), then builds each
//! event's message exactly as the relay does (`latch_bus::sign_event` over
//! the stored record, with the `Latch-Log-Id`, `Latch-Hash` and
//! `Latch-Signature` headers) and keeps them all in memory. Then times,
//! each over every message, on one core:
//!
//! - `FeedChain::accept` + `VerifierView::apply`: what a verifier with
//!   trusted keys does per event (what is timed here leaves out NATS, the
//!   verifier's lock and its usage slots);
//! - `accept` alone, and `apply` alone (over the events `accept` returned);
//! - the same messages through a `FeedChain` with no trusted keys (signing
//!   off: decode the CloudEvent, apply), for comparison;
//! - the parts of `accept` that are cryptography: SHA-256 of each record,
//!   and Ed25519 verification of each signature;
//! - then the same events signed as the relay signs them now, one
//!   signature per batch of 256 (`latch_bus::sign_batch`, a Merkle root
//!   and a proof per event): building and signing them, and `accept` +
//!   `apply` over them.

use std::time::{Duration, Instant};

use latch_bus::feed_signing::event_message;
use latch_bus::{FeedChain, SignedEvent, SigningKey, TrustedKeys};
use latch_core::{EventId, Position, RecordedEvent, VerifierView};
use latchd::HandlerConfig;
use serde_json::json;

/// One message as a verifier receives it, and what its signature covers.
struct Message {
    signed: SignedEvent,
    position: Position,
    event_id: EventId,
    hash: [u8; 32],
    record_len: usize,
}

fn accept(chain: &mut FeedChain, m: &Message) -> anyhow::Result<RecordedEvent> {
    let signed = &m.signed;
    chain
        .accept(|name| signed.header(name), &signed.payload)
        .map_err(|rejection| anyhow::anyhow!("refused at {}: {rejection}", m.position))
}

/// The relay's batch (`latchd::relay::BATCH`): at most this many events
/// share a signature.
const RELAY_BATCH: usize = 256;

fn per_second(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

pub async fn run(base: &std::path::Path, target_events: u64) -> anyhow::Result<()> {
    let config = HandlerConfig {
        snapshot_every: u64::MAX,
        ..HandlerConfig::default()
    };
    let (_dir, store, handler) = latch_bench::bare_command_handler(base, config)?;
    let building = Instant::now();
    latch_bench::build_log(&handler.handle(), target_events).await?;
    let built_in = building.elapsed();
    handler.shutdown().await;
    let log = store.log_id().expect("a writable log has an id");
    let events = store.head().position.get() as usize;
    eprintln!(
        "feed-verify: {events} events written in {:.1} s; signing them",
        built_in.as_secs_f64()
    );

    // The relay's side, per event: decode, re-serialise the record, sign.
    let key = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let trusted = TrustedKeys::new([key.public_key()]);
    let mut messages = Vec::with_capacity(events);
    let mut unsigned = Vec::with_capacity(events);
    let signing = Instant::now();
    for stored in store.iter_from(Position::FIRST) {
        let stored = stored?;
        let recorded = latchd::to_recorded(&stored)?;
        let record = stored.record();
        let signed = latch_bus::sign_event(&recorded, &record, stored.hash.as_bytes(), log, &key);
        messages.push(Message {
            signed,
            position: recorded.position,
            event_id: recorded.envelope.id,
            hash: *stored.hash.as_bytes(),
            record_len: record.len(),
        });
        unsigned.push(latch_bus::BatchEvent {
            recorded,
            record,
            hash: *stored.hash.as_bytes(),
        });
    }
    let signed_in = signing.elapsed();
    anyhow::ensure!(messages.len() == events, "read fewer events than written");
    let payload_bytes: usize = messages.iter().map(|m| m.signed.payload.len()).sum();
    let record_bytes: usize = messages.iter().map(|m| m.record_len).sum();
    // Signing alone (the relay's added cryptography), over the same messages.
    let sign_only = Instant::now();
    for m in &messages {
        std::hint::black_box(key.sign(&event_message(log, m.position, m.event_id, &m.hash)));
    }
    let sign_only = sign_only.elapsed();
    drop(store);
    eprintln!("feed-verify: verifying");

    // What a verifier with trusted keys does per event.
    let mut chain = FeedChain::from_start(trusted.clone());
    let mut view = VerifierView::new();
    let started = Instant::now();
    for m in &messages {
        view.apply(&accept(&mut chain, m)?);
    }
    let accept_apply = started.elapsed();
    anyhow::ensure!(
        view.position().get() as usize == events,
        "not every event applied"
    );
    let tokens = view.token_count();
    drop(view);

    // accept alone (keeping what it returns, for apply alone).
    let mut chain = FeedChain::from_start(trusted.clone());
    let mut accepted = Vec::with_capacity(events);
    let started = Instant::now();
    for m in &messages {
        accepted.push(accept(&mut chain, m)?);
    }
    let accept_only = started.elapsed();

    // apply alone.
    let mut view = VerifierView::new();
    let started = Instant::now();
    for recorded in &accepted {
        view.apply(recorded);
    }
    let apply_only = started.elapsed();
    drop((view, accepted));

    // Signing off: the same messages, no trusted keys.
    let mut chain = FeedChain::from_start(TrustedKeys::default());
    let mut view = VerifierView::new();
    let started = Instant::now();
    for m in &messages {
        view.apply(&accept(&mut chain, m)?);
    }
    let unchecked = started.elapsed();
    drop(view);

    // The cryptography in accept: SHA-256 of each record (recomputed from
    // the record bytes the message carries) and Ed25519 verification.
    let records: Vec<String> = messages
        .iter()
        .map(|m| {
            let event: latch_bus::CloudEvent = serde_json::from_slice(&m.signed.payload)?;
            Ok(event.latchrecord.unwrap_or_default())
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    for record in &records {
        std::hint::black_box(latch_store::ChainHash::of(record.as_bytes()));
    }
    let sha_only = started.elapsed();
    drop(records);
    let started = Instant::now();
    for m in &messages {
        // Each message a batch of one: its signature over the root, which
        // for one event is its leaf.
        latch_bus::verify_event_signature(
            &trusted,
            |name| m.signed.header(name),
            log,
            m.position,
            m.event_id,
            &m.hash,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let verify_only = started.elapsed();
    drop(messages);

    // Signed per batch, as the relay publishes them now.
    let started = Instant::now();
    let batched: Vec<SignedEvent> = unsigned
        .chunks(RELAY_BATCH)
        .flat_map(|batch| latch_bus::sign_batch(batch, log, &key))
        .collect();
    let batch_signed_in = started.elapsed();
    drop(unsigned);
    let batched_payload_bytes: usize = batched
        .iter()
        .map(|m| m.payload.len() + m.headers().map(|(n, v)| n.len() + v.len()).sum::<usize>())
        .sum();
    let mut chain = FeedChain::from_start(trusted.clone());
    let mut view = VerifierView::new();
    let started = Instant::now();
    for signed in &batched {
        let recorded = chain
            .accept(|name| signed.header(name), &signed.payload)
            .map_err(|rejection| anyhow::anyhow!("refused a batched event: {rejection}"))?;
        view.apply(&recorded);
    }
    let batched_accept_apply = started.elapsed();
    anyhow::ensure!(
        view.position().get() as usize == events,
        "not every batched event applied"
    );

    println!(
        "{}",
        json!({
            "scenario": "feed-verify",
            "events": events,
            "tokens": tokens,
            "payload_bytes_per_event": payload_bytes / events.max(1),
            "record_bytes_per_event": record_bytes / events.max(1),
            "build_log_seconds": built_in.as_secs_f64(),
            "relay_build_and_sign_events_per_second": per_second(events, signed_in),
            "sign_only_events_per_second": per_second(events, sign_only),
            "accept_and_apply_events_per_second": per_second(events, accept_apply),
            "accept_and_apply_seconds": accept_apply.as_secs_f64(),
            "accept_only_events_per_second": per_second(events, accept_only),
            "apply_only_events_per_second": per_second(events, apply_only),
            "unchecked_accept_and_apply_events_per_second": per_second(events, unchecked),
            "sha256_only_events_per_second": per_second(events, sha_only),
            "ed25519_verify_only_events_per_second": per_second(events, verify_only),
            "batched_relay_build_and_sign_events_per_second": per_second(events, batch_signed_in),
            "batched_accept_and_apply_events_per_second": per_second(events, batched_accept_apply),
            "batched_accept_and_apply_seconds": batched_accept_apply.as_secs_f64(),
            "batched_message_bytes_per_event": batched_payload_bytes / events.max(1),
            "batch": RELAY_BATCH,
            "setup": "messages built as latchd's relay builds them (sign_event over the stored record), all in memory; one thread; no NATS, no verifier lock, no usage slots",
        })
    );
    Ok(())
}
