//! A newcomer can follow `--help`: every subcommand of `latch` and `latchd`
//! says what it does, and every argument and flag says what it is. Walks
//! the real binaries' help, subcommand by subcommand.

use std::process::Command;

fn help(binary: &str, path: &[String]) -> String {
    let output = Command::new(latch_e2e::binary(binary))
        .args(path)
        .arg("-h")
        .env_remove("LATCH_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{binary} {path:?} -h failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The entries of one section (`Commands:`, `Arguments:`, `Options:`) with
/// their descriptions, which clap puts on the entry's line or the next.
fn section(text: &str, heading: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| *l == heading) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    let mut i = start + 1;
    while i < lines.len() && lines[i].starts_with("  ") {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent <= 6 {
            let (name, rest) = match trimmed.split_once("  ") {
                Some((name, rest)) => (name.trim().to_owned(), rest.trim().to_owned()),
                None => (trimmed.trim().to_owned(), String::new()),
            };
            let description = if rest.is_empty() {
                lines
                    .get(i + 1)
                    .filter(|next| next.len() - next.trim_start().len() > 6)
                    .map(|next| next.trim().to_owned())
                    .unwrap_or_default()
            } else {
                rest
            };
            entries.push((name, description));
        }
        i += 1;
    }
    entries
}

fn walk(binary: &str, path: Vec<String>, missing: &mut Vec<String>, seen: &mut usize) {
    let text = help(binary, &path);
    *seen += 1;
    let about = text.lines().next().unwrap_or_default();
    if about.is_empty() || about.starts_with("Usage:") {
        missing.push(format!("{binary} {}: no description", path.join(" ")));
    }
    for heading in ["Arguments:", "Options:"] {
        for (name, description) in section(&text, heading) {
            let description = description.trim_start_matches('[');
            if description.is_empty()
                || description.starts_with("env:")
                || description.starts_with("default:")
            {
                missing.push(format!("{binary} {} {name}: no help", path.join(" ")));
            }
        }
    }
    for (name, description) in section(&text, "Commands:") {
        if name == "help" {
            continue;
        }
        if description.is_empty() {
            missing.push(format!(
                "{binary} {} {name}: no description",
                path.join(" ")
            ));
        }
        let mut deeper = path.clone();
        deeper.push(name);
        walk(binary, deeper, missing, seen);
    }
}

#[test]
fn every_subcommand_and_flag_says_what_it_is() {
    let mut missing = Vec::new();
    let mut seen = 0;
    walk("latch", Vec::new(), &mut missing, &mut seen);
    walk("latchd", Vec::new(), &mut missing, &mut seen);
    assert!(
        seen > 25,
        "only {seen} help pages found: the walk is broken"
    );
    assert!(
        missing.is_empty(),
        "{} gaps in --help:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
