//! How results are printed: a readable table (default), JSON, or, for
//! commands that hand out a token, the raw token alone.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// One JSON value a line (for `latch audit …`; elsewhere as `json`).
    Ndjson,
    /// Only the token secret (token issue / rotate), for capture by a script.
    Raw,
}

/// A column: its heading and the JSON field (dotted for nesting) it shows.
pub type Column = (&'static str, &'static str);

pub fn print(output: Output, value: &Value, columns: &[Column]) {
    match output {
        Output::Json | Output::Raw => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Ndjson => println!("{}", serde_json::to_string(value).unwrap_or_default()),
        Output::Table => {
            let rows: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            print_table(&rows, columns);
        }
    }
}

pub fn cell(value: &Value, field: &str) -> String {
    let mut current = value;
    for part in field.split('.') {
        current = match current.get(part) {
            Some(next) => next,
            None => return String::new(),
        };
    }
    match current {
        Value::Null => String::new(),
        Value::String(s) => printable(s).into_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), |s| printable(s).into_owned()))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// `text` with its control characters written out (`\u{1b}`, `\n`): a
/// name or reason anyone who may issue a token chooses must not move the
/// cursor, recolour or rewrite an auditor's terminal. JSON output escapes
/// them already.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown.into()
}

/// An error as the CLI prints it to stderr: on one line, its control
/// characters written out. An error may carry latchd's problem detail or
/// text from the log, which someone else may have chosen.
pub fn error_line(error: &dyn std::fmt::Display) -> String {
    format!("error: {}", printable(&error.to_string()))
}

/// Rows without a heading, for output that continues a table (`--follow`).
pub fn print_rows(rows: &[&Value], columns: &[Column]) {
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|(_, field)| cell(row, field)).collect();
        println!("{}", cells.join("  "));
    }
}

pub fn print_table(rows: &[&Value], columns: &[Column]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, field)| cell(row, field)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (heading, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([heading.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| (*h).to_owned()).collect());
    for row in cells {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_from_latchd_is_printed_on_one_line_with_control_characters_written_out() {
        let error = crate::client::CliError::Api {
            status: 422,
            title: "Unprocessable".into(),
            detail: "name \u{1b}]0;owned\u{7} is taken\r\nerror: all good".into(),
            request_id: Some("r-1".into()),
        };
        let line = error_line(&error);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}]0;owned"), "{line}");
        assert!(line.starts_with("error: Unprocessable (422): "), "{line}");
    }

    #[test]
    fn a_table_cell_shows_control_characters_written_out() {
        let row = serde_json::json!({
            "name": "deploy\u{1b}[2J\u{1b}]0;owned\u{7}",
            "scopes": ["a:b\r", "c:d"],
            "plain": "ci-deploy ✓",
        });
        let name = cell(&row, "name");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert_eq!(name, "deploy\\u{1b}[2J\\u{1b}]0;owned\\u{7}");
        assert_eq!(cell(&row, "scopes"), "a:b\\r c:d");
        assert_eq!(cell(&row, "plain"), "ci-deploy ✓");
    }
}
