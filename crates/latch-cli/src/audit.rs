//! `latch audit …`: investigations over the event log, against a running
//! latchd (needs `audit:read`) or offline against a data directory or a
//! backup of one (`--data-dir`, opened read-only: safe while latchd runs).

use std::path::PathBuf;

use clap::Subcommand;
use latch_store::{ChainVerdict, EventStore};
use serde_json::Value;

use crate::client::{CliError, Client};
use crate::output::{self, Output};

#[derive(Subcommand)]
pub enum AuditCommand {
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

pub fn audit(client: &Client, out: Output, command: AuditCommand) -> Result<(), CliError> {
    match command {
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
        } => {
            let verdict: Value = match data_dir {
                Some(dir) => {
                    serde_json::to_value(verify_offline(&dir)?).expect("a verdict serialises")
                }
                None => client.get("/v1/audit/chain")?,
            };
            report(out, &verdict, chain_line)
        }
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
        Some("intact") => format!(
            "intact: {} events, head position {}, head hash {}",
            verdict["checked"],
            verdict["head"],
            verdict["head_hash"].as_str().unwrap_or("")
        ),
        _ => format!(
            "BROKEN at position {}: {}",
            verdict["position"],
            verdict["problem"].as_str().unwrap_or("")
        ),
    }
}

/// The data directory's log: latchd keeps it in `<data-dir>/log`; a bare
/// log directory works too.
fn open_log(dir: &std::path::Path) -> Result<EventStore, CliError> {
    let log = if dir.join("log").is_dir() {
        dir.join("log")
    } else {
        dir.to_owned()
    };
    EventStore::open_read_only(&log).map_err(|e| {
        CliError::Usage(format!(
            "cannot open the Latch log in {}: {e}",
            log.display()
        ))
    })
}

fn verify_offline(dir: &std::path::Path) -> Result<ChainVerdict, CliError> {
    open_log(dir)?
        .verify_chain()
        .map_err(|e| CliError::Other(format!("reading the log: {e}")))
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
