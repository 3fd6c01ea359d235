//! No rotting docs: every `latch …` and `latchd …` command written in the
//! README and in docs/ (in `sh` blocks and in inline code) must be accepted
//! by the real binaries as they are now: the subcommands, flags and values
//! must parse. (`LATCH_CHECK_ARGS` makes a binary stop right after parsing
//! its arguments.) What the commands do is exercised by the other
//! end-to-end tests and, for `scripts/run`, by CI's `scripts/smoke`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A command found in the documentation, and where.
#[derive(Debug)]
struct Documented {
    file: String,
    line: usize,
    words: Vec<String>,
    /// Inline code in prose: often a fragment (`latch audit verify
    /// --data-dir`), so its subcommands and flags are checked, not values.
    inline: bool,
}

fn documentation() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Splits shell text into words, honouring quotes; `$(…)` stays one word.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                in_word = true;
                word.push('$');
                let mut depth = 0;
                for q in chars.by_ref() {
                    word.push(q);
                    match q {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `latch`/`latchd` commands in one shell line: at the start of each
/// `&&`, `;` or `|` segment (after `VAR=value` prefixes), and inside `$(…)`.
fn commands_in(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut words = shell_words(line);
    // A comment ends the line.
    if let Some(at) = words.iter().position(|w| w.starts_with('#')) {
        words.truncate(at);
    }
    for segment in words.split(|w| matches!(w.as_str(), "&&" | "||" | ";" | "|")) {
        let mut rest: Vec<String> = segment
            .iter()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .cloned()
            .collect();
        // Redirections are the shell's, not the command's.
        let mut cleaned = Vec::new();
        let mut skip_next = false;
        for word in rest.drain(..) {
            if skip_next {
                skip_next = false;
                continue;
            }
            if matches!(word.as_str(), "<" | ">" | ">>" | "2>" | "2>&1") {
                skip_next = word != "2>&1";
                continue;
            }
            cleaned.push(word);
        }
        for word in segment {
            for inner in substitutions(word) {
                found.extend(commands_in(&inner));
            }
        }
        // `docker compose exec <service> latch …` runs the same CLI.
        if cleaned.len() > 4 && cleaned[..3] == ["docker", "compose", "exec"] {
            cleaned.drain(..4);
        }
        if cleaned
            .first()
            .is_some_and(|w| w == "latch" || w == "latchd")
        {
            found.push(cleaned);
        }
    }
    found
}

/// The commands inside `$(…)` in a word.
fn substitutions(word: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = word;
    while let Some(start) = rest.find("$(") {
        let after = &rest[start + 2..];
        let mut depth = 1;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        found.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    found
}

fn documented_commands() -> Vec<Documented> {
    let mut all = Vec::new();
    for path in documentation() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut in_shell = false;
        let mut in_other = false;
        let mut pending = String::new();
        let mut pending_line = 0;
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start();
            if let Some(language) = trimmed.strip_prefix("```") {
                if in_shell || in_other {
                    in_shell = false;
                    in_other = false;
                } else if matches!(language.trim(), "sh" | "bash" | "shell" | "console") {
                    in_shell = true;
                } else {
                    in_other = true;
                }
                continue;
            }
            if in_shell {
                let line = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
                if pending.is_empty() {
                    pending_line = index + 1;
                }
                if let Some(continued) = line.strip_suffix('\\') {
                    pending.push_str(continued);
                    pending.push(' ');
                    continue;
                }
                pending.push_str(line);
                for words in commands_in(&std::mem::take(&mut pending)) {
                    all.push(Documented {
                        file: file.clone(),
                        line: pending_line,
                        words,
                        inline: false,
                    });
                }
            } else if !in_other {
                // Inline code in prose: `latch …` spans that are whole
                // commands (fragments with an ellipsis are skipped).
                for (n, span) in raw.split('`').enumerate() {
                    if n % 2 == 1
                        && (span.starts_with("latch ") || span.starts_with("latchd "))
                        && !span.contains('…')
                        && !span.contains("...")
                    {
                        for words in commands_in(span) {
                            all.push(Documented {
                                file: file.clone(),
                                line: index + 1,
                                words,
                                inline: true,
                            });
                        }
                    }
                }
            }
        }
    }
    all
}

/// Runs a binary with the documentation check on and no `LATCH_*`
/// settings from the environment: (success, stdout, stderr).
fn run(words: &[String]) -> (bool, String, String) {
    let mut run = Command::new(latch_e2e::binary(&words[0]));
    run.args(&words[1..]).env("LATCH_CHECK_ARGS", "1");
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCH_") && name != "LATCH_CHECK_ARGS" {
            run.env_remove(name);
        }
    }
    let output = run.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A whole command: it must parse as written.
fn parse_problem(words: &[String]) -> Option<String> {
    let (ok, _, stderr) = run(words);
    (!ok).then_some(stderr)
}

/// A fragment: its subcommands must exist and each flag it names must be
/// one of that subcommand's (`a|b` names alternatives).
fn names_problem(words: &[String]) -> Option<String> {
    let alternatives: Vec<Vec<String>> = match words.iter().position(|w| w.contains('|')) {
        Some(at) => words[at]
            .split('|')
            .map(|alt| {
                let mut expanded = words.to_vec();
                expanded[at] = alt.to_owned();
                expanded
            })
            .collect(),
        None => vec![words.to_vec()],
    };
    for words in alternatives {
        let mut path = vec![words[0].clone()];
        for word in &words[1..] {
            if word.starts_with('-') || word.starts_with('<') {
                break;
            }
            let mut candidate = path.clone();
            candidate.push(word.clone());
            candidate.push("--help".into());
            if !run(&candidate).0 {
                break; // a value, not a subcommand
            }
            path.push(word.clone());
        }
        let mut help = path.clone();
        help.push("--help".into());
        let (ok, text, stderr) = run(&help);
        if !ok {
            return Some(stderr);
        }
        for word in &words[1..] {
            let flag = word.trim_matches(|c| c == '[' || c == ']');
            let flag = flag.split('=').next().unwrap_or(flag);
            if flag.starts_with("--") && flag.len() > 2 && !text.contains(flag) {
                return Some(format!("`{}` has no flag {flag}", path.join(" ")));
            }
        }
    }
    None
}

#[test]
fn every_documented_command_is_accepted_by_the_binaries() {
    let commands = documented_commands();
    for expected in [
        "README.md",
        "operations.md",
        "runbook-leaked-token.md",
        "investigations.md",
    ] {
        assert!(
            commands.iter().filter(|c| c.file == expected).count() >= 3,
            "too few commands found in {expected}: the extraction is broken"
        );
    }
    let mut failures = Vec::new();
    for command in &commands {
        let problem = if command.inline {
            names_problem(&command.words)
        } else {
            parse_problem(&command.words)
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{}:{}: {}\n{problem}",
                command.file,
                command.line,
                command.words.join(" "),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands are refused:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[test]
fn the_extraction_finds_commands_where_the_docs_put_them() {
    let found =
        commands_in(r#"TOKEN=$(latch token issue ci --name "a b" --output raw)   # comment"#);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        [
            "latch", "token", "issue", "ci", "--name", "a b", "--output", "raw"
        ]
    );
    let found = commands_in("LATCH_TOKEN=$TOKEN latch token rotate --self --grace 1h && echo ok");
    assert_eq!(
        found,
        [["latch", "token", "rotate", "--self", "--grace", "1h"]]
    );
    let found = commands_in("latch token introspect < leaked.txt | jq .");
    assert_eq!(found, [["latch", "token", "introspect"]]);
    let found = commands_in("latchd backup --to /backups/latch-$(date +%F)");
    assert_eq!(
        found,
        [["latchd", "backup", "--to", "/backups/latch-$(date +%F)"]]
    );
    assert!(commands_in("cargo run -p latchd").is_empty());
    let found = commands_in("docker compose exec latchd latch --token-file /t account list");
    assert_eq!(found, [["latch", "--token-file", "/t", "account", "list"]]);
}
