//! `latch audit …`: investigations over the event log, against a running
//! latchd (needs `audit:read`) or offline against a data directory or a
//! backup of one (`--data-dir`, opened read-only: safe while latchd runs).
//! Online and offline run the same latch-audit code (latchd runs it for
//! the online answers), so they give the same answers.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use latch_audit::{AuditError, Moment, TokenStory};
use latch_core::{Permission, TokenId};
use latch_store::{ChainVerdict, EventStore, IndexStatus};
use serde_json::Value;

use crate::client::{CliError, Client};
use crate::output::{self, Output};
use crate::progress::Progress;
use crate::record_printer::RecordPrinter;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The event log, filtered: `latch audit events --token-id <id>`,
    /// `--account ci --type token.* --since 2026-11-01T00:00:00Z`, `--follow`.
    Events(super::audit_events::EventsArgs),
    /// One token's whole story in time order: who issued it with what
    /// scopes, every change to it or to what it may do, and every recorded
    /// use (requests to latchd, verifiers' reports).
    Token {
        /// The token's id.
        id: String,
        #[command(flatten)]
        source: Source,
    },
    /// The state as it was at a moment: roles, accounts, and each token
    /// with its status and effective permissions then.
    State {
        /// An RFC 3339 time (2026-11-03T14:02:00Z) or a log position (1042);
        /// now when left out.
        #[arg(long)]
        at: Option<Moment>,
        /// Only active accounts and tokens.
        #[arg(long)]
        active_only: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Every account and token that held a permission at a moment, and why.
    WhoCan {
        /// e.g. certificates:issue
        permission: String,
        /// An RFC 3339 time (2026-11-03T14:02:00Z) or a log position (1042);
        /// now when left out.
        #[arg(long)]
        at: Option<Moment>,
        #[command(flatten)]
        source: Source,
    },
    /// Walk the log's hash chain: prints the event count and the head hash
    /// that anchors the whole log, or the first position where the chain
    /// breaks (exit code 9).
    Verify {
        /// A latchd data directory (or a backup of one) to read offline
        /// instead of asking latchd.
        #[arg(long, conflicts_with = "file")]
        data_dir: Option<PathBuf>,
        /// Verify an export written by `latch audit export` instead: needs
        /// nothing but the file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// With --data-dir: also replay the whole log and check that every
        /// checkpoint holds the state the log gives at its position
        /// (investigations start from checkpoints; this proves none was
        /// forged). Costs a replay of the log.
        #[arg(long, requires = "data_dir")]
        checkpoints: bool,
        /// With --data-dir: also check the log's index (events by token,
        /// account, actor and time) against the events, entry for entry.
        /// A damaged index fails with exit code 1; `latch audit reindex`
        /// mends it. Costs a read of the log.
        #[arg(long, requires = "data_dir")]
        index: bool,
    },
    /// Rebuild the log's index (events by token, account, actor and time)
    /// from the events, in a data directory or backup no latchd is running
    /// on. latchd brings its own index up to date when it starts; this is
    /// for a backup, or an index `latch audit verify --index` found damaged.
    Reindex {
        /// The data directory (or a backup of one).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Rewrite the log's JSON records in the compact binary format, in
    /// place, in a data directory or backup no latchd is running on (a
    /// running latchd does it with --upgrade-records). Every hash stays as
    /// it was: the chain head before and after is the same, and printed.
    /// The chain is checked as it goes; a break stops it.
    Upgrade {
        /// The data directory (or a backup of one).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Export events recorded in [--since, --until) as NDJSON with each
    /// event's hash and the chain anchor, for `latch audit verify --file`.
    Export {
        /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z (default: the first event).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339 time (default: up to now).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Read a data directory offline instead of asking latchd.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Write here instead of stdout.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Where an investigation reads: latchd (default) or a data directory.
#[derive(Args)]
pub struct Source {
    /// A latchd data directory, or a backup of one, to read offline
    /// (read-only; safe while latchd runs; no token needed).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub fn run(client: &Client, out: Output, command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Events(args) => super::audit_events::run(client, out, args),
        AuditCommand::Token { id, source } => token(client, out, &id, source),
        AuditCommand::State {
            at,
            active_only,
            source,
        } => state(client, out, at, active_only, source),
        AuditCommand::WhoCan {
            permission,
            at,
            source,
        } => who_can(client, out, &permission, at, source),
        AuditCommand::Verify {
            file: Some(file), ..
        } => {
            let input = std::fs::File::open(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let verdict =
                serde_json::to_value(latch_store::verify_export(std::io::BufReader::new(input)))
                    .expect("a verdict serialises");
            report(out, &verdict, export_line)
        }
        AuditCommand::Verify {
            data_dir,
            file: None,
            checkpoints,
            index,
        } => {
            let Some(dir) = data_dir else {
                return report(out, &client.get("/v1/audit/chain")?, chain_line);
            };
            let store = open_log(&dir)?;
            let mut verdict = serde_json::to_value(verify_offline(&store, checkpoints)?)
                .expect("a verdict serialises");
            match index {
                true if verdict["verdict"] == "intact" => {
                    let sound = check_index_offline(&store, &mut verdict)?;
                    report(out, &verdict, chain_line)?;
                    match sound {
                        true => Ok(()),
                        false => Err(CliError::Other(format!(
                            "the log's index does not match its events: run `latch audit reindex --data-dir {}`",
                            dir.display()
                        ))),
                    }
                }
                _ => report(out, &verdict, chain_line),
            }
        }
        AuditCommand::Reindex { data_dir } => reindex(out, &data_dir),
        AuditCommand::Upgrade { data_dir } => upgrade(out, &data_dir),
        AuditCommand::Export {
            since,
            until,
            data_dir,
            file,
        } => {
            let sink: Box<dyn std::io::Write> = match &file {
                Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
                    CliError::Usage(format!("cannot write {}: {e}", path.display()))
                })?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut sink = std::io::BufWriter::new(sink);
            match data_dir {
                Some(dir) => {
                    let store = open_log(&dir)?;
                    let failed =
                        |e: latch_store::StoreError| CliError::Other(format!("exporting: {e}"));
                    let (first, last) = latch_store::positions_between(&store, since, until)
                        .map_err(failed)?
                        .ok_or_else(|| {
                            CliError::Other("no events were recorded in that time range".into())
                        })?;
                    latch_store::write_export(&store, first, last, &mut sink).map_err(failed)?;
                }
                None => {
                    let mut query = Vec::new();
                    if let Some(since) = since {
                        query.push(format!(
                            "since={}",
                            since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                        ));
                    }
                    if let Some(until) = until {
                        query.push(format!(
                            "until={}",
                            until.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                        ));
                    }
                    let path = if query.is_empty() {
                        "/v1/audit/export".to_owned()
                    } else {
                        format!("/v1/audit/export?{}", query.join("&"))
                    };
                    client.get_to(&path, &mut sink)?;
                }
            }
            std::io::Write::flush(&mut sink).map_err(|e| CliError::Other(e.to_string()))
        }
    }
}

fn token(client: &Client, out: Output, id: &str, source: Source) -> Result<(), CliError> {
    let token_id: TokenId = id
        .parse()
        .map_err(|_| CliError::Usage(format!("{id:?} is not a token id")))?;
    let mut printer = RecordPrinter::new(out);
    let kind = |entry: &Value| match entry["kind"].as_str() {
        Some("token") => "story_token",
        _ => "timeline",
    };
    match source.data_dir {
        Some(dir) => {
            let store = open_log(&dir)?;
            let progress = Progress::positions("reading the log");
            let story =
                TokenStory::read(&store, token_id, chrono::Utc::now(), &mut |done, total| {
                    progress.update(done, total)
                })
                .map_err(audit_error)?;
            progress.done();
            story
                .tell(&store, |entry| print(&mut printer, kind, &entry))
                .map_err(audit_error)?;
        }
        None => {
            let progress = Progress::waiting("latchd is reading the log");
            client.get_lines(&format!("/v1/audit/tokens/{token_id}"), |entry| {
                progress.done();
                Ok(print(&mut printer, kind, &entry))
            })?;
        }
    }
    finish(printer)
}

fn state(
    client: &Client,
    out: Output,
    at: Option<Moment>,
    active_only: bool,
    source: Source,
) -> Result<(), CliError> {
    let mut printer = RecordPrinter::new(out);
    let kind = |entry: &Value| match entry["kind"].as_str() {
        Some("moment") => "moment",
        Some("role") => "role",
        Some("account") => "account",
        _ => "token",
    };
    match source.data_dir {
        Some(dir) => {
            let replayed = replay_offline(&dir, at.unwrap_or_else(now))?;
            let scope = latch_audit::StateScope { active_only };
            latch_audit::state_entries(&replayed, scope, |entry| print(&mut printer, kind, &entry));
            left_to_the_exit(replayed);
        }
        None => {
            let progress = Progress::waiting("latchd is replaying the log");
            // A moment prints as a position or a UTC time with `Z`: no `+`
            // to escape in the query. Without `at`, latchd answers for its now.
            let mut query = Vec::new();
            if let Some(at) = at {
                query.push(format!("at={at}"));
            }
            if active_only {
                query.push("active_only=true".to_owned());
            }
            let path = if query.is_empty() {
                "/v1/audit/state".to_owned()
            } else {
                format!("/v1/audit/state?{}", query.join("&"))
            };
            client.get_lines(&path, |entry| {
                progress.done();
                Ok(print(&mut printer, kind, &entry))
            })?;
        }
    }
    finish(printer)
}

fn who_can(
    client: &Client,
    out: Output,
    permission: &str,
    at: Option<Moment>,
    source: Source,
) -> Result<(), CliError> {
    let permission = Permission::parse(permission)
        .map_err(|e| CliError::Usage(format!("permission {permission:?}: {e}")))?;
    let mut printer = RecordPrinter::new(out);
    let kind = |entry: &Value| match entry["kind"].as_str() {
        Some("moment") => "moment",
        Some("account") => "holder_account",
        _ => "holder_token",
    };
    match source.data_dir {
        Some(dir) => {
            let replayed = replay_offline(&dir, at.unwrap_or_else(now))?;
            latch_audit::who_can(&replayed, &permission, |holder| {
                print(&mut printer, kind, &holder)
            });
            left_to_the_exit(replayed);
        }
        None => {
            let progress = Progress::waiting("latchd is replaying the log");
            let path = match at {
                Some(at) => format!("/v1/audit/who-can?permission={permission}&at={at}"),
                None => format!("/v1/audit/who-can?permission={permission}"),
            };
            client.get_lines(&path, |entry| {
                progress.done();
                Ok(print(&mut printer, kind, &entry))
            })?;
        }
    }
    finish(printer)
}

/// An investigation without `--at` looks at now.
fn now() -> Moment {
    Moment::Time(chrono::Utc::now())
}

/// A replayed state not dropped: the command ends with the process, which
/// hands its memory back at once, where freeing a state of millions of
/// tokens one allocation at a time took a tenth of a large question.
fn left_to_the_exit(replayed: latch_audit::Replayed) {
    std::mem::forget(replayed);
}

/// Replays the data directory's log to `at`, with a progress bar on a terminal.
fn replay_offline(dir: &Path, at: Moment) -> Result<latch_audit::Replayed, CliError> {
    let store = open_log(dir)?;
    let progress = Progress::positions("replaying the log");
    let replayed = latch_audit::replay(&store, at, &mut |done, total| progress.update(done, total))
        .map_err(audit_error)?;
    progress.done();
    for position in &replayed.refused_checkpoints {
        eprintln!(
            "latch: warning: the checkpoint at position {position} disagrees with the log's hash chain there and was not used (altered?); run `latch audit verify --data-dir`"
        );
    }
    Ok(replayed)
}

/// Prints one entry (typed offline, JSON online) under the layout `kind`
/// picks; `false` once stdout is gone, to stop reading.
fn print(
    printer: &mut RecordPrinter,
    kind: impl Fn(&Value) -> &'static str,
    entry: &impl serde::Serialize,
) -> bool {
    printer.print_record(kind, entry).is_ok()
}

pub(crate) fn finish(printer: RecordPrinter) -> Result<(), CliError> {
    match printer.finish() {
        Ok(()) => Ok(()),
        // `| head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Other(format!("writing the answer: {e}"))),
    }
}

pub(crate) fn audit_error(error: AuditError) -> CliError {
    match error {
        AuditError::BeyondHead { .. } => CliError::Invalid(error.to_string()),
        AuditError::UnknownToken(_) => CliError::NotFound(error.to_string()),
        AuditError::BrokenChain { position, problem } => {
            eprintln!("the log's hash chain is broken at position {position}: {problem}");
            CliError::Tampered(position.get())
        }
        AuditError::IndexPointsNowhere(_) => CliError::Other(error.to_string()),
        AuditError::Store(e) => CliError::Other(format!("reading the log: {e}")),
    }
}

/// The table line for an export's verdict.
fn export_line(verdict: &Value) -> String {
    match verdict["verdict"].as_str() {
        Some("intact") => format!(
            "intact: {} events, positions {} to {}, anchor {}, last hash {}",
            verdict["events"],
            verdict["first"],
            verdict["last"],
            verdict["anchor"].as_str().unwrap_or(""),
            verdict["last_hash"].as_str().unwrap_or("")
        ),
        _ => format!(
            "BROKEN at line {}{}: {}",
            verdict["line"],
            verdict["position"]
                .as_u64()
                .map(|p| format!(" (position {p})"))
                .unwrap_or_default(),
            verdict["problem"].as_str().unwrap_or("")
        ),
    }
}

/// The table line for the log's chain verdict.
fn chain_line(verdict: &Value) -> String {
    match verdict["verdict"].as_str() {
        Some("intact") => {
            let mut line = format!(
                "intact: {} events, head position {}, head hash {}",
                verdict["checked"],
                verdict["head"],
                verdict["head_hash"].as_str().unwrap_or("")
            );
            let index = &verdict["index"];
            if let Some(state) = index["state"].as_str() {
                line.push_str(&format!(
                    "\nindex: {state} ({} entries, {} expected)",
                    index["found_entries"], index["expected_entries"]
                ));
            }
            line
        }
        _ => format!(
            "BROKEN at position {}: {}",
            verdict["position"],
            verdict["problem"].as_str().unwrap_or("")
        ),
    }
}

/// The data directory's log: latchd keeps it in `<data-dir>/log`; a bare
/// log directory works too.
pub(crate) fn open_log(dir: &Path) -> Result<EventStore, CliError> {
    let log = log_dir(dir);
    let store = EventStore::open_read_only(&log).map_err(|e| {
        CliError::Usage(format!(
            "cannot open the Latch log in {}: {e}",
            log.display()
        ))
    })?;
    note_unindexed(&store, dir);
    Ok(store)
}

fn log_dir(dir: &Path) -> PathBuf {
    if dir.join("log").is_dir() {
        dir.join("log")
    } else {
        dir.to_owned()
    }
}

/// Says on a terminal why an answer will take a whole read of the log.
fn note_unindexed(store: &EventStore, dir: &Path) {
    use std::io::IsTerminal;
    let status = store
        .index_status(latch_audit::LogIndexer::VERSION)
        .unwrap_or(IndexStatus::Missing);
    if std::io::stderr().is_terminal() && !status.is_fresh() {
        eprintln!(
            "note: the log's index is {}: questions read the whole log \
             (latchd brings it up to date when it starts; for a backup, run `latch audit reindex --data-dir {}`)",
            index_state(status),
            dir.display()
        );
    }
}

/// How the index stands, in words (a fresh one is "sound" only once
/// checked against the events).
fn index_state(status: IndexStatus) -> &'static str {
    match status {
        IndexStatus::Fresh => "whole",
        IndexStatus::Behind { .. } => "behind the log",
        IndexStatus::OtherVersion { .. } => "of another version",
        IndexStatus::Ahead { .. } => "ahead of the log (another log's?)",
        IndexStatus::Missing => "missing",
    }
}

/// Checks the index against the events and adds what it found to the
/// verdict (`index`); whether it is sound.
fn check_index_offline(store: &EventStore, verdict: &mut Value) -> Result<bool, CliError> {
    let progress = Progress::positions("checking the index against the log");
    let check = store
        .check_index(&latch_audit::LogIndexer, &mut |done, total| {
            progress.update(done.get(), total.get())
        })
        .map_err(|e| CliError::Other(format!("reading the log: {e}")))?;
    progress.done();
    let state = match check.status {
        IndexStatus::Fresh if check.is_sound() => "sound",
        IndexStatus::Fresh => "damaged",
        other => index_state(other),
    };
    verdict["index"] = serde_json::json!({
        "state": state,
        "expected_entries": check.expected.entries,
        "found_entries": check.found.entries,
    });
    Ok(check.is_sound())
}

/// `latch audit reindex`: rebuilds the index of a log no latchd holds.
fn reindex(out: Output, dir: &Path) -> Result<(), CliError> {
    let store = open_log_for_writing(dir, "it keeps its own index")?;
    let progress = Progress::positions("indexing the log");
    let started = std::time::Instant::now();
    let events = store
        .rebuild_index(&latch_audit::LogIndexer, &mut |done, total| {
            progress.update(done.get(), total.get())
        })
        .map_err(|e| CliError::Other(format!("indexing the log: {e}")))?;
    progress.done();
    let activity = store
        .reindex_activity(&latch_audit::ActivityRecordIndexer)
        .map_err(|e| CliError::Other(format!("indexing the API activity records: {e}")))?;
    let report = serde_json::json!({
        "indexed_events": events,
        "indexed_activity_records": activity,
        "head": store.head().position.get(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    match out {
        Output::Table => println!(
            "indexed {events} events and {activity} activity records in {:.1}s",
            started.elapsed().as_secs_f64()
        ),
        _ => output::print(out, &report, &[]),
    }
    Ok(())
}

/// Opens the log of a data directory no latchd runs on, to change it.
fn open_log_for_writing(dir: &Path, latchd_does_it: &str) -> Result<EventStore, CliError> {
    let log = log_dir(dir);
    if !log.join("CURRENT").is_file() {
        return Err(CliError::Usage(format!(
            "{} holds no Latch log",
            dir.display()
        )));
    }
    EventStore::open(&log).map_err(|e| {
        CliError::Usage(format!(
            "cannot open the Latch log in {} for writing (is latchd running on it? {latchd_does_it}): {e}",
            log.display()
        ))
    })
}

fn upgrade(out: Output, dir: &Path) -> Result<(), CliError> {
    let store = open_log_for_writing(dir, "start it with --upgrade-records instead")?;
    let before = store.head();
    let progress = Progress::positions("rewriting records in the binary format");
    let started = std::time::Instant::now();
    let upgraded = store
        .upgrade_records(|done, of| {
            progress.update(done.get(), of.get());
            true
        })
        .map_err(|e| CliError::Other(format!("upgrading the log's records: {e}")))?;
    progress.done();
    let after = store.head();
    let report = serde_json::json!({
        "rewritten": upgraded.rewritten,
        "already_binary": upgraded.already_binary,
        "kept_json": upgraded.kept_json,
        // Exact: latchd holds the log's lock while it runs, so nothing
        // else wrote to it meanwhile.
        "records": upgraded.formats(),
        "head": after.position.get(),
        "head_hash_before": before.hash.to_hex(),
        "head_hash": after.hash.to_hex(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    match out {
        Output::Table => {
            println!(
                "rewrote {} records in the binary format in {:.1}s ({} were already, {} kept as JSON)",
                upgraded.rewritten,
                started.elapsed().as_secs_f64(),
                upgraded.already_binary,
                upgraded.kept_json
            );
            println!(
                "head {} {} (before: {})",
                after.position, after.hash, before.hash
            );
        }
        _ => output::print(out, &report, &[]),
    }
    Ok(())
}

/// The chain and the checkpoints' chain hashes; with `states`, every
/// checkpoint's state against a replay of the log.
fn verify_offline(store: &EventStore, states: bool) -> Result<ChainVerdict, CliError> {
    let check = if states {
        latch_audit::CheckpointCheck::States
    } else {
        latch_audit::CheckpointCheck::Headers
    };
    let progress = Progress::positions("replaying the log against its checkpoints");
    let verdict = latch_audit::verify_log(store, check, &mut |done, total| {
        progress.update(done, total)
    })
    .map_err(|e| CliError::Other(format!("reading the log: {e}")))?;
    progress.done();
    Ok(verdict)
}

/// Prints a verdict (a line, or JSON) and fails with exit code 9 unless it
/// is intact.
fn report(out: Output, verdict: &Value, line: fn(&Value) -> String) -> Result<(), CliError> {
    match out {
        Output::Table => println!("{}", line(verdict)),
        _ => output::print(out, verdict, &[]),
    }
    match verdict["verdict"].as_str() {
        Some("intact") => Ok(()),
        _ => Err(CliError::Tampered(
            verdict["position"].as_u64().unwrap_or(0),
        )),
    }
}
