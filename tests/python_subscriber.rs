//! The Python snippet in docs/nats.md, run as written against a real latchd
//! and nats-server: it prints the id of a token revoked through the API.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, account_with_token};
use serde_json::json;

fn snippet() -> String {
    latch_e2e::doc_snippet("nats.md", "python-subscriber", "python")
}

#[test]
fn the_documented_python_subscriber_sees_a_revocation() {
    let python = Command::new("python3").args(["-c", "import nats"]).status();
    assert!(
        python.is_ok_and(|s| s.success()),
        "python3 with nats-py is needed: `pip install nats-py` (scripts/prereqs installs it)"
    );
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, token_id, _) = account_with_token(&latchd, &admin, "ci-deploy", "auditor", None);

    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), snippet()).unwrap();
    let mut child = Command::new("python3")
        .arg(script.path())
        .env("NATS_URL", latchd.nats().url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });

    // Revoke until the subscriber is surely subscribed: the first revocation
    // could precede its SUB. Each try revokes a fresh token.
    let started = Instant::now();
    let mut expected = vec![token_id];
    assert_eq!(
        latchd
            .post(
                &format!("/v1/tokens/{}/revoke", expected[0]),
                &admin,
                json!({})
            )
            .status,
        200
    );
    let line = loop {
        if let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Python subscriber printed nothing"
        );
        let issued = latchd.post(
            &format!("/v1/accounts/{account}/tokens"),
            &admin,
            json!({ "name": "again" }),
        );
        let id = issued.body["id"].as_str().unwrap().to_owned();
        latchd.post(&format!("/v1/tokens/{id}/revoke"), &admin, json!({}));
        expected.push(id);
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("revoked "), "{line}");
    assert!(
        expected.iter().any(|id| line.contains(id.as_str())),
        "{line} names a revoked token"
    );
    assert!(line.ends_with(&format!("of account {account}")), "{line}");
}
