//! `latch leak report`: hand latchd the Latch tokens a scanner found
//! (a gitleaks or trufflehog JSON report, or tokens on standard input, one
//! per line); each live one is revoked at once, with every token rotated
//! or exchanged from it (`POST /v1/leaks`, permission `leaks:report`).
//!
//! Only findings with a Latch token's shape and checksum leave this
//! machine: a scanner's report also holds other secrets (cloud keys,
//! passwords), and those are none of latchd's business.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use clap::{ArgGroup, Subcommand};
use latch_core::TokenSecret;
use serde_json::{Value, json};

use crate::client::{CliError, Client};
use crate::output::{Output, print};
use crate::request::post;

/// The most tokens sent in one request (latchd's limit).
const PER_REQUEST: usize = 1_000;

#[derive(Subcommand)]
pub enum LeakCommand {
    /// Report leaked tokens: from a gitleaks or trufflehog JSON report, or
    /// from standard input (one token per line). Every live one is revoked.
    #[command(group(ArgGroup::new("from").args(["from_gitleaks", "from_trufflehog"])))]
    Report {
        /// A gitleaks report (`gitleaks detect --report-format json
        /// --report-path FILE`); `-` reads it from standard input.
        #[arg(long, value_name = "FILE")]
        from_gitleaks: Option<PathBuf>,
        /// A trufflehog report (`trufflehog … --json > FILE`, one finding
        /// per line); `-` reads it from standard input.
        #[arg(long, value_name = "FILE")]
        from_trufflehog: Option<PathBuf>,
        /// Where tokens read from standard input were found.
        #[arg(long)]
        location: Option<String>,
        /// The scanner's name as recorded (`scanner:<name>`); default: the
        /// report's kind, or `stdin`.
        #[arg(long)]
        scanner: Option<String>,
        /// Makes a retry of the same report safe.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

/// A token found, and where.
struct Finding {
    token: String,
    location: String,
}

pub fn run(client: &Client, out: Output, command: LeakCommand) -> Result<(), CliError> {
    let LeakCommand::Report {
        from_gitleaks,
        from_trufflehog,
        location,
        scanner,
        idempotency_key,
    } = command;
    let (findings, kind) = match (&from_gitleaks, &from_trufflehog) {
        (Some(file), _) => (gitleaks(&read(file)?)?, "gitleaks"),
        (_, Some(file)) => (trufflehog(&read(file)?)?, "trufflehog"),
        _ => (stdin_tokens(location.as_deref().unwrap_or(""))?, "stdin"),
    };
    let total = findings.len();
    let latch_tokens: Vec<&Finding> = findings
        .iter()
        .filter(|f| TokenSecret::parse(f.token.trim()).is_ok())
        .collect();
    let scanner = scanner.unwrap_or_else(|| kind.to_owned());
    let mut received = 0u64;
    let mut well_formed = 0u64;
    for (n, chunk) in latch_tokens.chunks(PER_REQUEST).enumerate() {
        let body = json!({
            "scanner": scanner,
            "tokens": chunk.iter().map(|f| json!({"token": f.token.trim(), "location": f.location})).collect::<Vec<_>>(),
        });
        let key = idempotency_key.as_ref().map(|k| format!("{k}-{n}"));
        let answer = post(client, "/v1/leaks", body, key)?;
        received += answer["received"].as_u64().unwrap_or(0);
        well_formed += answer["well_formed"].as_u64().unwrap_or(0);
    }
    let summary = json!({
        "findings": total,
        "latch_tokens": latch_tokens.len(),
        "reported": well_formed,
        "received": received,
    });
    if out == Output::Table {
        println!(
            "{total} finding(s), {} Latch token(s) reported: each one that was live is now revoked, with the tokens rotated or exchanged from it",
            latch_tokens.len()
        );
    } else {
        print(out, &summary, &[]);
    }
    Ok(())
}

fn read(file: &PathBuf) -> Result<String, CliError> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("reading standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("reading {}: {e}", file.display())))?;
    }
    Ok(text)
}

/// A gitleaks JSON report: an array of findings with `Secret` (or
/// `Match`), `File`, `StartLine` and `Commit`.
fn gitleaks(text: &str) -> Result<Vec<Finding>, CliError> {
    let report: Value = serde_json::from_str(text)
        .map_err(|e| CliError::Invalid(format!("not a gitleaks JSON report: {e}")))?;
    let Some(findings) = report.as_array() else {
        return Err(CliError::Invalid(
            "not a gitleaks JSON report: it must be an array of findings".into(),
        ));
    };
    Ok(findings
        .iter()
        .filter_map(|f| {
            let token = f["Secret"].as_str().or_else(|| f["Match"].as_str())?;
            let mut location = f["File"].as_str().unwrap_or("").to_owned();
            if let Some(line) = f["StartLine"].as_u64() {
                location.push_str(&format!(":{line}"));
            }
            if let Some(commit) = f["Commit"].as_str().filter(|c| !c.is_empty()) {
                location.push_str(&format!(" (commit {commit})"));
            }
            Some(Finding {
                token: token.to_owned(),
                location,
            })
        })
        .collect())
}

/// A trufflehog JSON report: one finding per line (or an array), with
/// `Raw` and `SourceMetadata.Data.<source>.{file, line, commit}`.
fn trufflehog(text: &str) -> Result<Vec<Finding>, CliError> {
    let objects: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(one @ Value::Object(_)) => vec![one],
        _ => text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|e| CliError::Invalid(format!("not a trufflehog JSON report: {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(objects
        .iter()
        .filter_map(|f| {
            let token = f["Raw"].as_str().or_else(|| f["RawV2"].as_str())?;
            let source = f["SourceMetadata"]["Data"]
                .as_object()
                .and_then(|data| data.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let mut location = source["file"]
                .as_str()
                .or_else(|| source["link"].as_str())
                .unwrap_or("")
                .to_owned();
            if let Some(line) = source["line"].as_u64() {
                location.push_str(&format!(":{line}"));
            }
            if let Some(commit) = source["commit"].as_str().filter(|c| !c.is_empty()) {
                location.push_str(&format!(" (commit {commit})"));
            }
            Some(Finding {
                token: token.to_owned(),
                location,
            })
        })
        .collect())
}

/// Tokens on standard input, one per line.
fn stdin_tokens(location: &str) -> Result<Vec<Finding>, CliError> {
    let mut findings = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| CliError::Usage(format!("reading standard input: {e}")))?;
        let token = line.trim();
        if !token.is_empty() {
            findings.push(Finding {
                token: token.to_owned(),
                location: location.to_owned(),
            });
        }
    }
    if findings.is_empty() {
        return Err(CliError::Usage(
            "no token on standard input: pipe tokens one per line, or give --from-gitleaks FILE or --from-trufflehog FILE".into(),
        ));
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitleaks_findings_carry_file_line_and_commit() {
        let report = r#"[{"Description":"Latch","StartLine":3,"EndLine":3,"Match":"TOKEN=latch_x","Secret":"latch_x","File":"deploy/.env","Commit":"abc123","RuleID":"latch-api-token"}]"#;
        let found = gitleaks(report).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].token, "latch_x");
        assert_eq!(found[0].location, "deploy/.env:3 (commit abc123)");
        assert!(gitleaks("{}").is_err());
    }

    #[test]
    fn trufflehog_findings_are_read_line_by_line() {
        let report = concat!(
            r#"{"SourceMetadata":{"Data":{"Filesystem":{"file":"ci.yml","line":7}}},"DetectorName":"Latch","Raw":"latch_a"}"#,
            "\n",
            r#"{"SourceMetadata":{"Data":{"Git":{"file":"x.py","line":1,"commit":"c0ffee"}}},"Raw":"latch_b"}"#,
            "\n"
        );
        let found = trufflehog(report).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].location, "ci.yml:7");
        assert_eq!(found[1].location, "x.py:1 (commit c0ffee)");
    }
}
