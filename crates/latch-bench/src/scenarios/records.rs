//! `latch-bench records`: the log's record formats (ADR 0027) at a scale
//! the command handler cannot build here (ten million events would be
//! eight million live tokens, more memory than this machine has): a real
//! log of `source_events` written by the command handler, then its
//! envelopes appended again and again, in their order, to a new indexed
//! log as JSON records until it holds `events`. On that log: disk, chain
//! verification, a read that checks and decodes every event on one
//! thread, and the upgrade in place to the binary format, then the same
//! figures again. (The copies repeat ids, so no state is folded here:
//! `replay` and `audit` measure that on real logs.)

use std::sync::Arc;
use std::time::Instant;

use latch_audit::LogIndexer;
use latch_core::{EventEnvelope, Position};
use latch_store::{
    AppendRequest, ChainHash, ChainVerdict, EventStore, NewEvent, RawValue, RecordFormat,
};
use latchd::HandlerConfig;
use serde_json::json;

pub(crate) async fn run(
    base: &std::path::Path,
    events: u64,
    source_events: u64,
) -> anyhow::Result<()> {
    let config = HandlerConfig {
        snapshot_every: u64::MAX,
        ..HandlerConfig::default()
    };
    let (source_dir, source, handler) = latch_bench::bare_command_handler(base, config)?;
    latch_bench::build_log(&handler.handle(), source_events).await?;
    handler.shutdown().await;
    let mut envelopes: Vec<(String, Box<RawValue>)> = Vec::new();
    for stored in source.iter_from(Position::FIRST) {
        let stored = stored?;
        envelopes.push((stored.stream, stored.data));
    }
    drop((handler, source, source_dir));

    let dir = tempfile::tempdir_in(base)?;
    let store = EventStore::open(dir.path())?;
    store.index_with(Arc::new(LogIndexer), &mut |_, _| {})?;
    store.set_record_format(RecordFormat::Json);
    let writing = Instant::now();
    let mut copies = envelopes.iter().cycle();
    let mut written = 0u64;
    while written < events {
        let batch = (events - written).min(1000);
        let request = AppendRequest {
            events: (0..batch)
                .map(|_| {
                    let (stream, data) = copies.next().expect("a cycle never ends");
                    NewEvent {
                        stream: stream.clone(),
                        data: data.clone(),
                    }
                })
                .collect(),
            expectations: Vec::new(),
            idempotency: None,
        };
        store.append(&[request])?;
        written += batch;
    }
    let write_took = writing.elapsed();

    let records = latch_bench::measure_upgrade(&store, |store| figures(store, dir.path()))?;
    println!(
        "{}",
        json!({
            "scenario": "records",
            "events": written,
            "source_events": envelopes.len(),
            "write_json_records_per_second": written as f64 / write_took.as_secs_f64(),
            "index_bytes": store.index_bytes()?,
            "records": records,
        })
    );
    Ok(())
}

/// Disk, chain verification, and a checked and decoded read of every
/// event on this one thread.
fn figures(store: &EventStore, dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let verdict = store.verify_chain()?;
    let verify_took = started.elapsed();
    let ChainVerdict::Intact {
        checked, head_hash, ..
    } = verdict
    else {
        anyhow::bail!("the chain is broken: {verdict:?}");
    };
    let started = Instant::now();
    let mut decoded = 0u64;
    for record in store.iter_chained_records(Position::FIRST, ChainHash::GENESIS) {
        let envelope: EventEnvelope = serde_json::from_slice(record?.data())?;
        std::hint::black_box(envelope);
        decoded += 1;
    }
    let decode_took = started.elapsed();
    Ok(json!({
        "records": store.record_formats()?,
        "log_bytes": latch_bench::directory_bytes(dir),
        "log_bytes_by_kind": latch_bench::rocksdb_bytes(dir),
        "verify_chain_events_per_second": checked as f64 / verify_took.as_secs_f64(),
        "verify_chain_seconds": verify_took.as_secs_f64(),
        "read_check_decode_one_thread_events_per_second": decoded as f64 / decode_took.as_secs_f64(),
        "head_hash": head_hash.to_hex(),
    }))
}
