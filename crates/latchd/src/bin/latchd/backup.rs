//! `latchd backup`: asks the running latchd for a consistent backup, or
//! copies the data directory itself when none answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use latch_store::EventStore;
use latchd::{ADMIN_TOKEN_FILE, LOG_DIR, take_backup};

use crate::flags::BackupArgs;

/// `latchd backup`: asks the running latchd; copies the data directory
/// itself only when nothing answers at --url.
pub fn backup(args: &BackupArgs, data_dir: &Path) -> anyhow::Result<()> {
    let to = if args.to.is_absolute() {
        args.to.clone()
    } else {
        std::env::current_dir()?.join(&args.to)
    };
    match ask_running_latchd(args, data_dir, &to) {
        Ok(answer) => {
            println!(
                "backup taken by the running latchd: {} (position {}, head hash {})",
                answer["dir"].as_str().unwrap_or_default(),
                answer["position"],
                answer["head_hash"].as_str().unwrap_or_default()
            );
            say_upgraded(answer["records_upgraded"].as_u64());
            Ok(())
        }
        Err(BackupAsk::Refused(problem)) => anyhow::bail!("latchd refused the backup: {problem}"),
        Err(BackupAsk::NotRunning(why)) => {
            let log = data_dir.join(LOG_DIR);
            if !log.is_dir() {
                anyhow::bail!(
                    "no latchd answers at {} ({why}), and {} holds no event log",
                    args.url,
                    data_dir.display()
                );
            }
            let store = EventStore::open(&log).with_context(|| {
                format!(
                    "no latchd answers at {} ({why}), and the log in {} cannot be opened (is latchd running elsewhere?)",
                    args.url,
                    log.display()
                )
            })?;
            let taken = take_backup(&store, &to, args.upgrade_records)?;
            println!(
                "backup taken from {} (latchd not running): {} (position {}, head hash {})",
                data_dir.display(),
                taken.dir.display(),
                taken.position,
                taken.head_hash
            );
            say_upgraded(taken.upgraded.map(|report| report.rewritten));
            Ok(())
        }
    }
}

/// What `--upgrade-records` rewrote, when it was given.
fn say_upgraded(rewritten: Option<u64>) {
    if let Some(rewritten) = rewritten {
        println!("records rewritten in the binary format: {rewritten}");
    }
}

enum BackupAsk {
    NotRunning(String),
    Refused(String),
}

fn ask_running_latchd(
    args: &BackupArgs,
    data_dir: &Path,
    to: &Path,
) -> Result<serde_json::Value, BackupAsk> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| BackupAsk::Refused(format!("reading {}: {e}", ca.display())))?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect::<Vec<_>>();
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        // Rewriting a backup's records takes about a second per 125,000.
        .timeout_global(Some(Duration::from_secs(if args.upgrade_records { 24 * 3600 } else { 600 })))
        .build()
        .into();
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(|| data_dir.join(ADMIN_TOKEN_FILE));
    let url = format!("{}/v1/backup", args.url.trim_end_matches('/'));
    let body = serde_json::json!({
        "to": to.display().to_string(),
        "upgrade_records": args.upgrade_records,
    });
    let token = match std::fs::read_to_string(&token_file) {
        Ok(token) => token.trim().to_owned(),
        Err(error) => {
            // Without a token latchd cannot be asked; if it is not running,
            // the data directory can still be copied.
            return match agent
                .get(format!("{}/healthz", args.url.trim_end_matches('/')))
                .call()
            {
                Ok(_) => Err(BackupAsk::Refused(format!(
                    "latchd runs at {} but the token file {} cannot be read ({error}); give one holding backup:create with --token-file",
                    args.url,
                    token_file.display()
                ))),
                Err(e) => Err(BackupAsk::NotRunning(e.to_string())),
            };
        }
    };
    let mut response = agent
        .post(&url)
        .header("Authorization", format!("Bearer {token}"))
        .send_json(&body)
        .map_err(|e| BackupAsk::NotRunning(e.to_string()))?;
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.body_mut().read_json().map_err(|e| {
        BackupAsk::Refused(format!(
            "latchd answered {status} with an unreadable body: {e}"
        ))
    })?;
    if status == 201 {
        Ok(answer)
    } else {
        Err(BackupAsk::Refused(format!(
            "{status} {}",
            answer["detail"].as_str().unwrap_or_default()
        )))
    }
}
