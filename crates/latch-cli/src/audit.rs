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
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn audit(client: &Client, out: Output, command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Verify { data_dir } => {
            let verdict: Value = match data_dir {
                Some(dir) => {
                    serde_json::to_value(verify_offline(&dir)?).expect("a verdict serialises")
                }
                None => client.get("/v1/audit/chain")?,
            };
            report(out, &verdict)
        }
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

fn report(out: Output, verdict: &Value) -> Result<(), CliError> {
    match out {
        Output::Table => match verdict["verdict"].as_str() {
            Some("intact") => println!(
                "intact: {} events, head position {}, head hash {}",
                verdict["checked"],
                verdict["head"],
                verdict["head_hash"].as_str().unwrap_or("")
            ),
            _ => println!(
                "BROKEN at position {}: {}",
                verdict["position"],
                verdict["problem"].as_str().unwrap_or("")
            ),
        },
        _ => output::print(out, verdict, &[]),
    }
    match verdict["verdict"].as_str() {
        Some("intact") => Ok(()),
        _ => Err(CliError::Tampered(
            verdict["position"].as_u64().unwrap_or(0),
        )),
    }
}
