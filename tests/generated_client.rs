//! The OpenAPI document is usable, not just valid (issue 17): a Python
//! client is generated from latchd's `/v1/openapi.json` with
//! openapi-python-client (pinned; `scripts/prereqs` installs it) and
//! drives a token's lifecycle (`tests/generated_client/lifecycle.py`):
//! create an account, issue, introspect, act as the holder (and be refused
//! an escalation as a typed problem), rotate, list, revoke, show, disable.

use std::path::Path;
use std::process::Command;

use latch_e2e::Latchd;

const VERSION: &str = "0.29.1";

#[test]
fn a_client_generated_from_the_openapi_document_drives_a_token_lifecycle() {
    let found = Command::new("openapi-python-client")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        found.contains(VERSION),
        "openapi-python-client {VERSION} is needed (found: {:?}); install it with \
         `python3 -m pip install openapi-python-client=={VERSION}` (scripts/prereqs does)",
        found.trim()
    );
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let work = tempfile::tempdir().unwrap();
    let document = latchd.get("/v1/openapi.json", &admin);
    assert_eq!(document.status, 200);
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, document.body.to_string()).unwrap();

    let generated = Command::new("openapi-python-client")
        .arg("generate")
        .arg("--path")
        .arg(&spec)
        .arg("--output-path")
        .arg(work.path().join("latch_client"))
        .args(["--meta", "none"])
        .output()
        .expect("run openapi-python-client");
    let report = String::from_utf8_lossy(&generated.stdout);
    assert!(
        generated.status.success(),
        "the generator refused the document:\n{report}\n{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/generated_client/lifecycle.py");
    let run = Command::new("python3")
        .arg(&script)
        .env("PYTHONPATH", work.path())
        .env("LATCH_URL", &latchd.url)
        .env("LATCH_TOKEN", &admin)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("lifecycle ok"),
        "the generated client's lifecycle failed:\n{stdout}\n{}\n(generator report:\n{report})",
        String::from_utf8_lossy(&run.stderr)
    );
}
