//! `replay`: events per second to rebuild state from a log, and
//! restart-to-ready time with a snapshot; then the same log's records
//! upgraded in place from JSON to the binary format (ADR 0027), and chain
//! verification and a one-thread replay measured in both.

mod envelope_decoding;

use std::time::Instant;

use anyhow::Context;
use latch_core::{EventEnvelope, Position, RecordedEvent, State, evolve};
use latch_store::{ChainHash, EventStore, RecordFormat};
use latchd::{HandlerConfig, rebuild};
use serde_json::json;

/// Builds a realistic log: accounts, each with several tokens, some
/// revoked; then rebuilds state from it twice: from scratch, and from a
/// snapshot as latchd does on restart.
pub(crate) async fn run(base: &std::path::Path, target_events: u64) -> anyhow::Result<()> {
    let config = HandlerConfig {
        snapshot_every: u64::MAX,
        // Written as every log before ADR 0027, to be upgraded below.
        record_format: RecordFormat::Json,
        ..HandlerConfig::default()
    };
    let (dir, store, handler) = latch_bench::bare_command_handler(base, config)?;
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

    // The records as JSON, then upgraded in place to the binary format.
    let records = latch_bench::measure_upgrade(&store, |store| {
        record_format_figures(store, dir.path())
    })?;

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
            "records": records,
        })
    );
    Ok(())
}

/// Chain verification, and a replay on this one thread (read, chain check,
/// decode, fold), over the log as its records are stored now; with the
/// log's size on disk.
fn record_format_figures(
    store: &EventStore,
    dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let formats = store.record_formats()?;
    let started = Instant::now();
    let verdict = store.verify_chain()?;
    let verify_took = started.elapsed();
    let latch_store::ChainVerdict::Intact {
        checked, head_hash, ..
    } = verdict
    else {
        anyhow::bail!("the chain is broken: {verdict:?}");
    };
    let started = Instant::now();
    let mut state = State::new();
    let mut replayed = 0u64;
    for record in store.iter_chained_records(Position::FIRST, ChainHash::GENESIS) {
        let record = record?;
        let envelope: EventEnvelope = serde_json::from_slice(record.data())?;
        evolve(
            &mut state,
            &RecordedEvent {
                position: record.position,
                version: record.version,
                envelope,
            },
        );
        replayed += 1;
    }
    let replay_took = started.elapsed();
    // The same, as latchd's rebuild and every investigation run it: the
    // chain read on a thread of its own, decoding shared by both.
    let started = Instant::now();
    let mut piped = State::new();
    let mut piped_events = 0u64;
    let head = store.head().position;
    latch_audit::for_each_recorded_after(
        store,
        Position::ZERO,
        ChainHash::GENESIS,
        head,
        &mut |_, _| {},
        |recorded| {
            evolve(&mut piped, &recorded);
            piped_events += 1;
            true
        },
    )?;
    let piped_took = started.elapsed();
    anyhow::ensure!(piped == state, "the two-thread replay disagrees with the one-thread one");
    Ok(json!({
        "records": formats,
        "log_bytes": latch_bench::directory_bytes(dir),
        "verify_chain_events_per_second": checked as f64 / verify_took.as_secs_f64(),
        "replay_one_thread_events_per_second": replayed as f64 / replay_took.as_secs_f64(),
        "replay_two_threads_events_per_second": piped_events as f64 / piped_took.as_secs_f64(),
        "head_hash": head_hash.to_hex(),
    }))
}
