//! The fuzzer in the suite (issue 17): schemathesis, at a pinned version,
//! generates requests from `/v1/openapi.json` against a fresh latchd, with
//! every check and every phase (examples, coverage, fuzzing and the
//! stateful phase that chains operations through their links), once with
//! an admin token and once with a read-only (auditor) token. Any failure —
//! a 5xx, a status code, media type, header or body the document does not
//! declare, valid data refused or invalid data accepted, a resource that
//! stays reachable after its deletion — fails the test.
//! `tests/schemathesis.toml` names the few refusals of schema-valid data
//! that depend on state or policy (and why).
//!
//! `scripts/prereqs` installs schemathesis (`python3 -m pip install
//! schemathesis==4.32.5`).

use std::path::Path;
use std::process::Command;

use latch_e2e::{Latchd, account_with_token};

const VERSION: &str = "4.32.5";

/// Cases per operation and phase: enough to find a contract mismatch in
/// every operation, bounded so both runs take a couple of minutes.
const MAX_EXAMPLES: &str = "12";

fn require_schemathesis() {
    let version = Command::new("schemathesis").arg("--version").output();
    let found = version
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        found.contains(VERSION),
        "schemathesis {VERSION} is needed (found: {:?}); install it with \
         `python3 -m pip install schemathesis=={VERSION}` (scripts/prereqs does)",
        found.trim()
    );
}

/// Runs schemathesis against `latchd` as `token`; panics with its report
/// on any failure.
fn fuzz(latchd: &Latchd, token: &str, who: &str, operations: &[&str]) {
    let reports = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let output = Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", latchd.url))
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", "17"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--suppress-health-check", "all"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(operations)
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(reports.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(reports.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures with the {who} token:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains("No operations"),
        "schemathesis tested nothing:\n{stdout}"
    );
}

#[test]
fn schemathesis_finds_nothing_with_an_admin_or_a_read_only_token() {
    require_schemathesis();
    // Generous limits for failed requests: the fuzzer makes many 401s on
    // purpose (checking that authentication is never ignored).
    let data = tempfile::tempdir().unwrap();
    let nats = latch_testkit::NatsServer::start();
    let args = [
        "--nats-url".to_owned(),
        nats.url(),
        "--unauthenticated-burst".to_owned(),
        "1000000".to_owned(),
    ];
    let latchd = Latchd::launch_with(data.path(), nats, "127.0.0.1", &args, &[], None);
    let admin = latchd.admin_token();
    let (_, _, auditor) = account_with_token(&latchd, &admin, "fuzz-auditor", "auditor", None);
    // `POST /v1/tokens/self/rotate` ends the calling token after its grace
    // (down to a second): fuzzed last, alone, so that it cannot turn the
    // rest of a run into 401s.
    let rest = ["--exclude-path", "/v1/tokens/self/rotate"];
    fuzz(&latchd, &auditor, "auditor", &rest);
    fuzz(&latchd, &admin, "admin", &rest);
    fuzz(&latchd, &auditor, "auditor", &["--include-path", "/v1/tokens/self/rotate"]);
    // The admin's run may change anything (it may well revoke the admin's
    // own token: latchd lets the last admin revoke its last token, since a
    // leaked one must go at once; `latchd recover-admin` is the way back)
    // but must leave latchd serving.
    let ready = latchd.raw("GET", "/readyz", None, &[], Vec::new());
    assert_eq!(ready.status, 200, "{:?}", ready.body);
}
