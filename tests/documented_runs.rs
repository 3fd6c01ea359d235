//! Documented commands *run* (issue 17): every `sh` block of README.md and
//! docs/*.md is run, in the order a reader meets them (the README's quick
//! start, then the API guide's examples, the leaked-token runbook, the
//! investigations guide and the operations guide), as one bash script with `set -euo pipefail`, against
//! a live latchd, with the real `latch` and `latchd` binaries. Each command
//! must exit 0, and the lines whose comment says what they print must print
//! it.
//!
//! A block that cannot run here says so itself, with a first line
//! `# not run by the tests: <why>` (it starts a server, needs Docker or
//! certificates, runs the benchmarks). The test fills in only what the
//! docs leave to the reader: a token id where a doc writes `<token-id>`, a
//! scratch directory for `/backups/`, the test's latchd for
//! `/var/lib/latch` and `http://127.0.0.1:7420`, and the setup a guide
//! assumes (the `ci-pipeline` account of the investigations guide, the
//! leaked token of the runbook). `tests/documented_commands.rs` checks
//! that every documented command *parses*; this one that they *work*.

use std::path::{Path, PathBuf};
use std::process::Command;

use latch_e2e::{Latchd, binary};

/// How a block that is not run says why.
const SKIP: &str = "# not run by the tests:";

#[derive(Debug)]
struct Block {
    file: &'static str,
    line: usize,
    text: String,
}

fn sh_blocks(file: &'static str) -> Vec<Block> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```sh" => {
                current = Some(Block {
                    file,
                    line: i + 1,
                    text: String::new(),
                })
            }
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    blocks
}

/// A documentation file as the test runs it: what it does first (the
/// setup the guide assumes), and how the reader's placeholders are filled.
struct Guide {
    file: &'static str,
    setup: &'static str,
    fill: &'static [(&'static str, &'static str)],
}

/// In reading order. Every file with `sh` blocks must be here.
const GUIDES: &[Guide] = &[
    Guide {
        file: "README.md",
        setup: "",
        fill: &[
            ("<token-id>", "$(token_id ci-deploy deploy)"),
            ("/backups/", "$BACKUPS/"),
        ],
    },
    Guide {
        file: "docs/api.md",
        setup: "",
        fill: &[],
    },
    Guide {
        file: "docs/ci-identity.md",
        setup: "",
        fill: &[],
    },
    Guide {
        file: "docs/runbook-leaked-token.md",
        // The leaked token, in the file the runbook reads it from, and
        // another live token of the account for its rotation step.
        setup: "latch token issue ci-deploy --name leaked --scope certificates:issue --ttl 30d --output raw > leaked-token.txt\n\
                latch token issue ci-deploy --name other --scope certificates:issue --ttl 30d --output raw > /dev/null\n",
        fill: &[
            ("<token-id>", "$(token_id ci-deploy leaked)"),
            ("<other-token-id>", "$(token_id ci-deploy other)"),
            ("/backups/", "$BACKUPS/"),
        ],
    },
    Guide {
        file: "docs/leaks.md",
        setup: "",
        fill: &[],
    },
    Guide {
        file: "docs/investigations.md",
        // The account and token the guide investigates, and the backup it
        // verifies.
        setup: "latch account create ci-pipeline --role cert-operator --description 'the pipeline of the guide'\n\
                latch token issue ci-pipeline --name deploy-2 --scope certificates:issue --ttl 30d --output raw > /dev/null\n\
                latchd backup --to \"$BACKUPS/latch-2026-11-06\"\n",
        fill: &[
            ("<token-id>", "$(token_id ci-pipeline deploy-2)"),
            ("<id>", "$(token_id ci-pipeline deploy-2)"),
            ("01a1…-deploy-2", "$(token_id ci-pipeline deploy-2)"),
            ("/backups/", "$BACKUPS/"),
            // The guide exports the week of its story; this log is from
            // today, and an export of a range with no events is refused.
            ("--until 2026-11-09T00:00:00Z", "--until 2100-01-01T00:00:00Z"),
        ],
    },
    Guide {
        file: "docs/operations.md",
        setup: "",
        fill: &[
            ("/var/lib/latch", "$DATA_DIR"),
            ("http://127.0.0.1:7420", "$LATCH_URL"),
            // The README made a backup of the same name.
            ("/backups/", "$BACKUPS/operations-"),
        ],
    },
    Guide {
        file: "docs/benchmarks.md",
        setup: "",
        fill: &[],
    },
];

/// What the whole script starts with.
const PRELUDE: &str = r#"set -euo pipefail
# The binaries under test are already built: a documented `cargo build`
# or `cargo run` is not repeated.
cargo() { echo "(cargo $*: the test runs the binaries it built)" >&2; }
# The id of the live token named $2 of account $1.
token_id() {
  latch token list "$1" --output json | jq -r --arg name "$2" \
    '[(if type == "array" then . else .tokens end)[] | select(.name == $name)][0].id'
}
"#;

/// Commands that follow forever are run for a moment: a timeout is their
/// success.
fn bounded(line: &str) -> String {
    if line.contains("--follow") && !line.trim_start().starts_with('#') {
        let command = line.split(" #").next().unwrap_or(line).trim_end();
        format!("timeout 3 {command} || [ $? -eq 124 ]\n")
    } else {
        format!("{line}\n")
    }
}

fn script(bin: &Path) -> (String, usize) {
    let mut script = String::from(PRELUDE);
    let mut ran = 0;
    for guide in GUIDES {
        script.push_str(&format!("echo '=== {} (setup)'\n{}", guide.file, guide.setup));
        for block in sh_blocks(guide.file) {
            if let Some(reason) = block.text.trim_start().strip_prefix(SKIP) {
                let reason = reason.lines().next().unwrap_or("").trim();
                assert!(
                    reason.len() > 10,
                    "{}:{} says it is not run but not why",
                    block.file,
                    block.line
                );
                continue;
            }
            let mut text = block.text.clone();
            for (placeholder, value) in guide.fill {
                text = text.replace(placeholder, value);
            }
            script.push_str(&format!(
                "echo '=== {}:{}'\nexport PATH=\"{}:$PATH\"\n",
                block.file,
                block.line,
                bin.display()
            ));
            // Continuation lines stay with their command.
            for line in text.replace("\\\n", "\u{1}").lines() {
                script.push_str(&bounded(line).replace('\u{1}', "\\\n"));
            }
            ran += 1;
        }
    }
    (script, ran)
}

#[test]
fn every_documented_block_that_talks_to_latchd_runs() {
    // Every file with sh blocks is a guide above, in reading order.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
            assert!(
                !text.contains("```sh") || GUIDES.iter().any(|g| g.file == name),
                "{name} has sh blocks: add it to GUIDES in tests/documented_runs.rs"
            );
        }
    }

    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("latch-data");
    let latchd = Latchd::start_in(&data_dir);
    let backups = work.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let bin: PathBuf = binary("latch").parent().unwrap().to_owned();
    let (script, ran) = script(&bin);
    assert!(ran >= 15, "only {ran} blocks ran");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("LATCH_URL", &latchd.url)
        .env("DATA_DIR", &data_dir)
        .env("BACKUPS", &backups)
        .env_remove("LATCH_TOKEN")
        .env_remove("LATCH_TOKEN_FILE")
        .env_remove("LATCH_CA_FILE")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a documented command failed (the last === line names its block):\n\
         --- stdout\n{stdout}\n--- stderr\n{stderr}\n--- latchd\n{}",
        latchd.logs()
    );

    // What the docs say these print.
    let section = |marker: &str| -> String {
        stdout
            .split("=== ")
            .filter(|s| s.starts_with(marker))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        section("README.md").contains("intact"),
        "README: `latch audit verify` says intact:\n{stdout}"
    );
    assert!(
        section("docs/runbook-leaked-token.md").contains("revoked"),
        "runbook: `latch token show <token-id>` says revoked:\n{stdout}"
    );
    assert!(
        section("docs/investigations.md").contains("deploy-2"),
        "investigations: the token's story names it:\n{stdout}"
    );
}
