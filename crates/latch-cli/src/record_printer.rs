//! Printing a stream of records (events, a replayed state, who-can, a
//! token's story) as they come, never collected: one JSON line each
//! (`ndjson`), one JSON array written as it goes (`json`), or tables with
//! fixed column widths, a section for each kind of record (`table`).

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::output::{Output, cell, printable};

pub struct RecordPrinter {
    output: Output,
    out: std::io::BufWriter<std::io::Stdout>,
    /// The section the last table row belonged to.
    section: Option<&'static str>,
    printed: u64,
}

/// A table column: heading, width (0: the last, unpadded) and how to show
/// a record's value.
struct Column {
    heading: &'static str,
    width: usize,
    show: fn(&Value) -> String,
}

/// How a kind of record is shown in a table.
enum Layout {
    /// A line of its own.
    Line(fn(&Value) -> String),
    /// A row of a section (with its heading printed when the section starts).
    Row {
        section: &'static str,
        columns: &'static [Column],
    },
}

impl RecordPrinter {
    pub fn new(output: Output) -> Self {
        Self {
            output,
            out: std::io::BufWriter::new(std::io::stdout()),
            section: None,
            printed: 0,
        }
    }

    /// Prints one record; `kind` says which (`event`, `token`, `role`, …).
    /// Fails when stdout is closed (`| head`), so the caller stops reading.
    pub fn print(&mut self, kind: &str, record: &Value) -> std::io::Result<()> {
        match self.output {
            Output::Table => self.row(kind, record)?,
            _ => self.write_json(record)?,
        }
        self.printed_one()
    }

    /// Prints one record as `print` does, written straight from it (its
    /// fields in their order) for JSON and NDJSON: only a table, which
    /// reads its fields, builds a JSON value of it, and `kind` tells the
    /// kind from that value. A large answer (who-can, a state) spent
    /// more time building values than anything else.
    pub fn print_record<T: Serialize + ?Sized>(
        &mut self,
        kind: impl FnOnce(&Value) -> &'static str,
        record: &T,
    ) -> std::io::Result<()> {
        match self.output {
            Output::Table => {
                let value = serde_json::to_value(record)?;
                self.row(kind(&value), &value)?;
            }
            _ => self.write_json(record)?,
        }
        self.printed_one()
    }

    fn write_json<T: Serialize + ?Sized>(&mut self, record: &T) -> std::io::Result<()> {
        if self.output == Output::Ndjson {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")
        } else {
            self.out
                .write_all(if self.printed == 0 { b"[\n" } else { b",\n" })?;
            serde_json::to_writer_pretty(&mut self.out, record)?;
            Ok(())
        }
    }

    fn printed_one(&mut self) -> std::io::Result<()> {
        self.printed += 1;
        // A follower wants each event as it comes; a big answer, throughput.
        if self.printed.is_multiple_of(256) || self.output == Output::Ndjson && self.printed < 256 {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes out what is buffered (between pages of a follower).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Closes the output (the JSON array's bracket).
    pub fn finish(mut self) -> std::io::Result<()> {
        if matches!(self.output, Output::Json | Output::Raw) {
            self.out
                .write_all(if self.printed == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }

    fn row(&mut self, kind: &str, record: &Value) -> std::io::Result<()> {
        match layout(kind) {
            Layout::Line(show) => {
                if self.section.take().is_some() {
                    writeln!(self.out)?;
                }
                // One record, several lines: each written out on its own
                // (the fields in them are escaped already).
                for line in show(record).split('\n') {
                    writeln!(self.out, "{}", printable(line))?;
                }
                Ok(())
            }
            Layout::Row { section, columns } => {
                if self.section != Some(section) {
                    if self.printed > 0 {
                        writeln!(self.out)?;
                    }
                    if !section.is_empty() {
                        writeln!(self.out, "{section}")?;
                    }
                    let headings: Vec<String> =
                        columns.iter().map(|c| c.heading.to_owned()).collect();
                    line(&mut self.out, columns, headings)?;
                    self.section = Some(section);
                }
                let cells = columns.iter().map(|c| (c.show)(record)).collect();
                line(&mut self.out, columns, cells)
            }
        }
    }
}

fn line(out: &mut impl Write, columns: &[Column], cells: Vec<String>) -> std::io::Result<()> {
    let padded: Vec<String> = cells
        .iter()
        .zip(columns)
        .map(|(text, column)| format!("{:<width$}", printable(text), width = column.width))
        .collect();
    writeln!(out, "{}", padded.join("  ").trim_end())
}

fn layout(kind: &str) -> Layout {
    match kind {
        "event" => Layout::Row {
            section: "",
            columns: EVENT,
        },
        "moment" => Layout::Line(moment_line),
        "role" => Layout::Row {
            section: "ROLES",
            columns: ROLE,
        },
        "account" => Layout::Row {
            section: "ACCOUNTS",
            columns: ACCOUNT,
        },
        "token" => Layout::Row {
            section: "TOKENS",
            columns: TOKEN,
        },
        "holder_account" => Layout::Row {
            section: "ACCOUNTS WHOSE ROLE GRANTS IT",
            columns: HOLDER_ACCOUNT,
        },
        "holder_token" => Layout::Row {
            section: "TOKENS THAT COULD USE IT",
            columns: HOLDER_TOKEN,
        },
        "story_token" => Layout::Line(story_header),
        _ => Layout::Row {
            section: "TIMELINE",
            columns: TIMELINE,
        },
    }
}

const EVENT: &[Column] = &[
    column("POSITION", 8, |v| field(v, "position")),
    column("TIME", 20, |v| time(v, "at")),
    column("TYPE", 18, |v| field(v, "type")),
    column("SUBJECT", 36, subject),
    column("ACTOR", 36, |v| actor(&v["actor"])),
    column("SUMMARY", 0, |v| field(v, "summary")),
];
const ROLE: &[Column] = &[
    column("NAME", 20, |v| field(v, "name")),
    column("BUILTIN", 7, |v| field(v, "builtin")),
    column("PERMISSIONS", 0, |v| field(v, "permissions")),
];
const ACCOUNT: &[Column] = &[
    column("ID", 36, |v| field(v, "id")),
    column("NAME", 20, |v| field(v, "name")),
    column("ROLE", 16, |v| field(v, "role")),
    column("STATUS", 8, |v| field(v, "status")),
    column("PERMISSIONS", 0, |v| field(v, "permissions")),
];
const TOKEN: &[Column] = &[
    column("ID", 36, |v| field(v, "id")),
    column("ACCOUNT", 20, |v| field(v, "account_name")),
    column("NAME", 16, |v| field(v, "name")),
    column("STATUS", 9, |v| field(v, "status")),
    column("EXPIRES", 20, |v| time(v, "expires_at")),
    column("EFFECTIVE", 0, |v| field(v, "effective_permissions")),
];
const HOLDER_ACCOUNT: &[Column] = &[
    column("ACCOUNT", 20, |v| field(v, "account_name")),
    column("ID", 36, |v| field(v, "account_id")),
    column("ROLE", 16, |v| field(v, "role")),
    column("TOKENS", 6, |v| field(v, "holding_tokens")),
    column("ROLE GRANTS", 0, |v| field(v, "role_grants")),
];
const HOLDER_TOKEN: &[Column] = &[
    column("TOKEN", 36, |v| field(v, "token_id")),
    column("NAME", 16, |v| field(v, "token_name")),
    column("ACCOUNT", 20, |v| field(v, "account_name")),
    column("EXPIRES", 20, |v| time(v, "expires_at")),
    column("SCOPE GRANTS", 20, |v| field(v, "scope_grants")),
    column("ROLE GRANTS", 0, |v| field(v, "role_grants")),
];
const TIMELINE: &[Column] = &[
    column("TIME", 20, |v| time(v, "at")),
    column("WHAT", 18, what),
    column("BY / FROM", 36, by_or_from),
    column("DETAIL", 0, detail),
];

const fn column(heading: &'static str, width: usize, show: fn(&Value) -> String) -> Column {
    Column {
        heading,
        width,
        show,
    }
}

/// A field as a table shows it: `cell` writes control characters out, so
/// a name cannot break or rewrite the lines around it.
fn field(record: &Value, name: &str) -> String {
    cell(record, name)
}

/// A time to the second: what a person compares in a table.
fn time(record: &Value, name: &str) -> String {
    match record[name].as_str() {
        Some(text) if text.len() > 20 && text.ends_with('Z') && text.is_char_boundary(19) => {
            format!("{}Z", printable(&text[..19]))
        }
        Some(text) => printable(text).into_owned(),
        None => match name {
            "expires_at" => "never".into(),
            _ => String::new(),
        },
    }
}

fn actor(actor: &Value) -> String {
    match actor["kind"].as_str() {
        Some("system") => "system".into(),
        _ => printable(
            actor["account_name"]
                .as_str()
                .or(actor["account_id"].as_str())
                .unwrap_or_default(),
        )
        .into_owned(),
    }
}

/// What an event is about: its token, else its account, else its role.
fn subject(event: &Value) -> String {
    let data = &event["data"];
    ["token_id", "account_id", "name", "role"]
        .iter()
        .find_map(|f| data[*f].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn moment_line(moment: &Value) -> String {
    let at = time(moment, "at");
    let position = field(moment, "position");
    match moment["permission"].as_str() {
        Some(permission) => format!(
            "who could do {} at {at} (log position {position})",
            printable(permission)
        ),
        None => format!(
            "state at {at} (log position {position}, {} events replayed)",
            field(moment, "events")
        ),
    }
}

fn story_header(token: &Value) -> String {
    let mut lines = vec![
        format!(
            "token {} {:?} of account {} ({})",
            field(token, "id"),
            // Quoted, its control characters escaped as Rust does (from the
            // raw text: `cell` would escape them once already).
            token["name"].as_str().unwrap_or_default(),
            field(token, "account_name"),
            field(token, "account_id")
        ),
        format!(
            "  issued {} by {}, expires {}",
            time(token, "issued_at"),
            actor(&token["issued_by"]),
            time(token, "expires_at")
        ),
        format!("  scopes: {}", field(token, "scopes")),
        format!(
            "  now: {}; may do: {}",
            field(token, "status"),
            or_nothing(field(token, "effective_permissions"))
        ),
    ];
    if token["revoked_at"].is_string() {
        lines.push(format!(
            "  revoked {} by {}: {}",
            time(token, "revoked_at"),
            actor(&token["revoked_by"]),
            field(token, "revoke_reason")
        ));
    }
    for (label, name) in [
        ("rotated from", "rotated_from"),
        ("rotated to", "rotated_to"),
    ] {
        if let Some(id) = token[name].as_str() {
            lines.push(format!("  {label} {id}"));
        }
    }
    lines.push(format!(
        "  uses recorded: {} (last {} from {})",
        field(token, "use_count"),
        or_nothing(time(token, "last_used_at")),
        or_nothing(field(token, "last_used_from"))
    ));
    lines.join("\n")
}

fn or_nothing(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

fn what(entry: &Value) -> String {
    match entry["kind"].as_str() {
        Some("event") => field(entry, "type"),
        Some("request") => format!("{} {}", field(entry, "method"), field(entry, "status")),
        Some("verifier_use") => "verified".into(),
        other => other.unwrap_or_default().to_owned(),
    }
}

fn by_or_from(entry: &Value) -> String {
    match entry["kind"].as_str() {
        Some("event") => actor(&entry["actor"]),
        Some("request") => field(entry, "remote_addr"),
        Some("verifier_use") => format!("{} at {}", field(entry, "from"), field(entry, "verifier")),
        _ => String::new(),
    }
}

fn detail(entry: &Value) -> String {
    match entry["kind"].as_str() {
        Some("event") => {
            let mut text = field(entry, "summary");
            if entry["permissions_changed"] == Value::Bool(true) {
                text.push_str(&format!(
                    " → {}; may do: {}",
                    field(entry, "status"),
                    or_nothing(field(entry, "effective_permissions"))
                ));
            }
            text
        }
        Some("request") => field(entry, "path"),
        Some("verifier_use") => format!("{} accepted use(s)", field(entry, "uses")),
        _ => String::new(),
    }
}
