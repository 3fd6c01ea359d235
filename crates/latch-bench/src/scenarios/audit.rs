//! `latch-bench audit`: investigations over a log of a million events, as
//! `latch audit … --data-dir` runs them (the same latch-audit calls, the
//! output serialised to a sink), and, when the `latch` binary was built
//! next to this one, the real commands with their output sent to /dev/null.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use latch_audit::{Moment, StateScope, TokenStory};
use latch_core::{AccountId, EventEnvelope, Permission, Position, TokenId};
use latch_store::EventStore;
use latchd::{CommandHandler, HandlerConfig, SystemClock};
use serde_json::json;

pub async fn run(
    base: &Path,
    events: u64,
    checkpoint_every: u64,
    activity: u64,
    keep: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(base)?;
    let log = dir.path().join("log");
    let building = Instant::now();
    {
        let store = Arc::new(EventStore::open(&log)?);
        let config = HandlerConfig {
            snapshot_every: if checkpoint_every == 0 { u64::MAX } else { checkpoint_every },
            // Built in minutes: no daily checkpoints, every periodic one kept.
            checkpoint_every: chrono::TimeDelta::days(365_000),
            checkpoints_kept: 1_000_000,
            ..HandlerConfig::default()
        };
        let (handler, _) = CommandHandler::start(store, Arc::new(SystemClock), config)?;
        latchd::bootstrap(&handler.handle(), dir.path()).await?;
        latch_bench::build_log(&handler.handle(), events).await?;
        handler.shutdown().await;
    }
    {
        if checkpoint_every == 0 {
            // The shutdown checkpoint too: every question replays it all.
            // (The handler's threads let go of the store shortly after.)
            let mut opened = EventStore::open(&log);
            for _ in 0..100 {
                if opened.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                opened = EventStore::open(&log);
            }
            let store = opened?;
            let head = store.head().position;
            store.save_snapshot_keeping(head, b"none", None, 1)?;
        }
    }
    let built = building.elapsed();

    // Read-only, as the CLI opens a data directory.
    let store = EventStore::open_read_only(&log)?;
    let head = store.head().position;
    let middle = Position::new(head.get() / 2);
    let middle_at = store
        .event(middle)?
        .ok_or_else(|| anyhow::anyhow!("no event at {middle}"))?
        .decode::<EventEnvelope>()?
        .at;

    // state --at <the middle of the log, as a time>
    let started = Instant::now();
    let replayed = latch_audit::replay(&store, Moment::Time(middle_at), &mut |_, _| {})?;
    let state_replay = started.elapsed();
    let mut state_lines = 0u64;
    latch_audit::state_entries(&replayed, StateScope::default(), |entry| {
        state_lines += 1;
        serde_json::to_writer(std::io::sink(), &entry).is_ok()
    });
    let state_total = started.elapsed();
    let middle_events = replayed.events;
    let middle_replayed = replayed.replayed;
    drop(replayed);

    // state at ten moments spread over the log (by position, as `--at N`).
    let mut moments = Vec::new();
    for tenth in 1..=10u64 {
        let position = Position::new(head.get() * tenth / 10);
        let started = Instant::now();
        let replayed = latch_audit::replay(&store, Moment::Position(position), &mut |_, _| {})?;
        moments.push((started.elapsed().as_secs_f64(), replayed.replayed));
    }
    let slowest_moment = moments.iter().map(|(s, _)| *s).fold(0.0, f64::max);
    let (checkpoints, checkpoint_bytes) = store.snapshots_size()?;
    // The newest checkpoint decoded alone: what every question that starts
    // from one pays before its tail.
    let newest_checkpoint = match store.latest_snapshot()? {
        Some((position, bytes)) => {
            let started = Instant::now();
            let decoded = latch_audit::decode_checkpoint(&bytes).map(|(state, _)| state.token_count());
            json!({
                "position": position.get(),
                "bytes": bytes.len(),
                "decode_seconds": started.elapsed().as_secs_f64(),
                "tokens": decoded,
            })
        }
        None => serde_json::Value::Null,
    };
    let log_bytes = latch_bench::directory_bytes(&log);
    let index_bytes = store.index_bytes()?;

    // who-can at the head: every auditor token holds certificates:read.
    let started = Instant::now();
    let replayed = latch_audit::replay(&store, Moment::Position(head), &mut |_, _| {})?;
    let who_can_replay = started.elapsed();
    let permission = Permission::parse("certificates:read")?;
    let mut holders = 0u64;
    latch_audit::who_can(&replayed, &permission, |holder| {
        holders += 1;
        serde_json::to_writer(std::io::sink(), &holder).is_ok()
    });
    let who_can_total = started.elapsed();
    let (some_account, some_token) = replayed
        .state
        .accounts()
        .last()
        .and_then(|account| replayed.state.tokens_of(account.id).next())
        .map(|token| (token.account_id, token.id))
        .ok_or_else(|| anyhow::anyhow!("no token in the log"))?;
    drop(replayed);

    // The API activity a busy latchd keeps beside its log, written as
    // latchd writes it (indexed): one record in 50,000 is a use of the
    // story's token.
    drop(store);
    let activity_written = write_activity(&log, (some_account, some_token), activity)?;
    let store = EventStore::open_read_only(&log)?;

    // One token's story (from the indexes: its events, then its uses),
    // five times: the first reads from a store just opened, as the CLI
    // does; the others find RocksDB's tables open and blocks cached.
    let mut story_rounds = Vec::new();
    let mut story_entries = 0u64;
    for _ in 0..5 {
        let started = Instant::now();
        let story = TokenStory::read(&store, some_token, Utc::now(), &mut |_, _| {})?;
        story_entries = 0;
        story.tell(&store, |_| {
            story_entries += 1;
            true
        })?;
        story_rounds.push(started.elapsed().as_secs_f64());
    }
    let story_took = Duration::from_secs_f64(story_rounds[0]);

    // What the story paid for its uses before the activity index: a scan
    // of every record.
    let started = Instant::now();
    let mut story_token_records = 0u64;
    latch_audit::ActivityRecord::scan(&store, None, |record| {
        story_token_records += u64::from(record.token_id == Some(some_token));
        true
    })?;
    let activity_scan_took = started.elapsed();

    let started = Instant::now();
    let chain = store.verify_chain()?;
    let chain_took = started.elapsed();

    let export = dir.path().join("export.ndjson");
    let started = Instant::now();
    {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&export)?);
        latch_store::write_export(&store, Position::FIRST, head, &mut out)?;
        out.flush()?;
    }
    let export_took = started.elapsed();
    let export_bytes = std::fs::metadata(&export)?.len();
    let started = Instant::now();
    let verdict = latch_store::verify_export(BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(&export)?,
    ));
    let export_verify_took = started.elapsed();
    std::fs::remove_file(&export)?;

    let per_second = |took: Duration| head.get() as f64 / took.as_secs_f64();
    let middle_text = middle_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let cli = beside_this_binary("latch").map(|latch| {
        let data_dir = dir.path().to_str().unwrap_or_default().to_owned();
        let head_text = head.get().to_string();
        json!({
            "state_at_middle_seconds": time_command(&latch, &["audit", "state", "--at", &middle_text, "--data-dir", &data_dir, "--output", "ndjson"]),
            "who_can_at_head_seconds": time_command(&latch, &["audit", "who-can", "certificates:read", "--at", &head_text, "--data-dir", &data_dir, "--output", "ndjson"]),
            "token_story_seconds": time_command(&latch, &["audit", "token", &some_token.to_string(), "--data-dir", &data_dir, "--output", "ndjson"]),
            "verify_seconds": time_command(&latch, &["audit", "verify", "--data-dir", &data_dir]),
            "export_seconds": time_command(&latch, &["audit", "export", "--data-dir", &data_dir]),
        })
    });

    println!(
        "{}",
        json!({
            "scenario": "audit",
            "events": head.get(),
            "build_seconds": built.as_secs_f64(),
            "checkpoints": {
                "every_events": checkpoint_every,
                "kept": checkpoints,
                "bytes": checkpoint_bytes,
                "log_directory_bytes": log_bytes,
                "newest": newest_checkpoint,
            },
            "index_bytes": index_bytes,
            "state_at_ten_moments": {
                "slowest_seconds": slowest_moment,
                "seconds_and_events_replayed": moments,
            },
            "state_at_middle": {
                "at": middle_text,
                "events": middle_events,
                "events_replayed": middle_replayed,
                "replay_seconds": state_replay.as_secs_f64(),
                "seconds_with_output": state_total.as_secs_f64(),
                "lines": state_lines,
            },
            "who_can_at_head": {
                "permission": permission.to_string(),
                "replay_seconds": who_can_replay.as_secs_f64(),
                "seconds_with_output": who_can_total.as_secs_f64(),
                "lines": holders,
            },
            "token_story": {
                "seconds": story_took.as_secs_f64(),
                "seconds_each_round": story_rounds,
                "entries": story_entries,
            },
            "activity": {
                "records": activity,
                "write_seconds": activity_written.as_secs_f64(),
                "story_token_records": story_token_records,
                "scan_every_record_seconds": activity_scan_took.as_secs_f64(),
            },
            "verify_chain": {
                "intact": matches!(chain, latch_store::ChainVerdict::Intact { .. }),
                "seconds": chain_took.as_secs_f64(),
                "events_per_second": per_second(chain_took),
            },
            "export": {
                "seconds": export_took.as_secs_f64(),
                "events_per_second": per_second(export_took),
                "bytes": export_bytes,
            },
            "export_verify": {
                "intact": matches!(verdict, latch_store::ExportVerdict::Intact { .. }),
                "seconds": export_verify_took.as_secs_f64(),
                "events_per_second": per_second(export_verify_took),
            },
            "cli": cli,
        })
    );
    if keep {
        let kept = dir.keep();
        eprintln!("data directory kept: {}", kept.display());
    }
    Ok(())
}

/// Writes `records` activity records through the store's activity
/// index, `story` the caller of one in every 50,000; returns how long
/// that took.
fn write_activity(log: &Path, story: (AccountId, TokenId), records: u64) -> anyhow::Result<Duration> {
    let store = Arc::new(EventStore::open(log)?);
    store.index_activity_with(Arc::new(latch_audit::ActivityRecordIndexer))?.wait()?;
    let accounts: Vec<AccountId> = (0..1_000).map(|_| AccountId::new()).collect();
    let tokens: Vec<TokenId> = (0..10_000).map(|_| TokenId::new()).collect();
    let started = Instant::now();
    for n in 0..records {
        let (account_id, token_id) = match n % 50_000 {
            25_000 => story,
            _ => (accounts[n as usize % accounts.len()], tokens[n as usize % tokens.len()]),
        };
        latch_audit::ActivityRecord {
            id: uuid::Uuid::now_v7(),
            at: Utc::now(),
            request_id: format!("bench-{n}"),
            method: "GET".into(),
            route: "/v1/tokens/{id}".into(),
            path: format!("/v1/tokens/{token_id}"),
            remote_addr: "127.0.0.1:40000".into(),
            account_id: Some(account_id),
            token_id: Some(token_id),
            status: Some(200),
            duration_us: Some(180),
            verifier_uses: None,
        }
        .store(&store)?;
    }
    Ok(started.elapsed())
}

fn beside_this_binary(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(name);
    path.exists().then_some(path)
}

/// Wall-clock seconds of a run with stdout to /dev/null; `None` if it failed.
fn time_command(program: &Path, args: &[&str]) -> Option<f64> {
    let started = Instant::now();
    let status = Process::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| started.elapsed().as_secs_f64())
}
