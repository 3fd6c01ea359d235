//! `latch-bench checkpoint --data-dir DIR`: what a checkpoint of the state
//! at the head of an existing log costs, in bytes, to write and to read
//! back (what every investigation that starts from one pays before its
//! tail), and the process's resident memory with it read.
//!
//! The state is replayed with latch-audit (from whatever checkpoint of the
//! current format the log has), then encoded and decoded `rounds` times
//! with this build's format, so a kept `latch-bench audit --keep`
//! directory measures a format change before and after on the same state.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use latch_audit::Moment;
use latch_store::EventStore;
use serde_json::json;

use super::resident_bytes;

pub(crate) fn run(data_dir: &Path, rounds: usize) -> anyhow::Result<()> {
    let store = EventStore::open_read_only(&data_dir.join("log"))
        .with_context(|| format!("opening the log in {}", data_dir.display()))?;
    let head = store.head();
    let started = Instant::now();
    let replayed = latch_audit::replay(&store, Moment::Position(head.position), &mut |_, _| {})?;
    let replay_took = started.elapsed();
    let state = replayed.state;
    let tokens = state.token_count();

    let mut encodes = Vec::with_capacity(rounds);
    let mut bytes = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        bytes = latch_audit::encode_checkpoint(&state, head.hash);
        encodes.push(started.elapsed());
    }
    drop(state);

    let mut decodes = Vec::with_capacity(rounds);
    let mut resident_after_decode = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let (decoded, hash) = latch_audit::decode_checkpoint(&bytes)
            .context("this build cannot decode the checkpoint it encoded")?;
        decodes.push(started.elapsed());
        anyhow::ensure!(hash == head.hash && decoded.token_count() == tokens, "the checkpoint does not round-trip");
        resident_after_decode = resident_after_decode.max(resident_bytes());
    }
    encodes.sort();
    decodes.sort();
    let seconds = |d: &std::time::Duration| d.as_secs_f64();
    println!(
        "{}",
        json!({
            "scenario": "checkpoint",
            "events": head.position.get(),
            "tokens": tokens,
            "replay_to_head_seconds": replay_took.as_secs_f64(),
            "replayed_from_checkpoint": replayed.from_checkpoint.map(|p| p.get()),
            "bytes": bytes.len(),
            "encode_seconds": { "min": seconds(&encodes[0]), "median": seconds(&encodes[encodes.len() / 2]) },
            "decode_seconds": { "min": seconds(&decodes[0]), "median": seconds(&decodes[decodes.len() / 2]) },
            // The process's, with a decoded state held (and the encoded bytes).
            "resident_bytes_with_decoded_state": resident_after_decode,
        })
    );
    Ok(())
}
