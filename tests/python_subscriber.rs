//! The Python snippet in docs/nats.md, run as written against a real latchd
//! and nats-server: it prints the id of a token revoked through the API.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, account_with_token};
use serde_json::json;

/// What `latchd key show` prints for this latchd.
fn public_key(latchd: &Latchd) -> String {
    let shown = Command::new(latch_e2e::binary("latchd"))
        .args(["key", "show", "--data-dir"])
        .arg(&latchd.data_dir)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    String::from_utf8(shown.stdout).unwrap().trim().to_owned()
}

fn snippet() -> String {
    latch_e2e::doc_snippet("nats.md", "python-subscriber", "python")
}

#[test]
fn the_documented_python_subscriber_sees_a_revocation() {
    let python = Command::new("python3")
        .args(["-c", "import nats, cryptography"])
        .status();
    assert!(
        python.is_ok_and(|s| s.success()),
        "python3 with nats-py and cryptography is needed: `pip install nats-py cryptography` (scripts/prereqs installs them)"
    );
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, token_id, _) = account_with_token(&latchd, &admin, "ci-deploy", "auditor", None);

    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), snippet()).unwrap();
    let mut child = Command::new("python3")
        .arg(script.path())
        .env("NATS_URL", latchd.nats().url())
        .env("LATCH_PUBLIC_KEY", public_key(&latchd))
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
    // A forger's revocation, shaped like latchd's but unsigned, and a
    // signed-looking one whose record does not match its signature.
    let url = latchd.nats().url();
    latch_e2e::block_on(async move {
        let client = async_nats::connect(url).await.unwrap();
        let forged = json!({"type": "latch.token.revoked", "data": {"token_id": "forged", "account_id": "forged"}});
        client
            .publish(
                "latch.events.token.revoked.forged",
                forged.to_string().into(),
            )
            .await
            .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Latch-Signature", "0000000000000000:AAAA");
        headers.insert("Latch-Log-Id", "01a22100-0000-7000-8000-00000000000f");
        let record = json!({"position": 9, "stream": "s", "version": 1, "prev_hash": "00", "data": {"id": "01a22100-0000-7000-8000-000000000001", "type": "token.revoked", "data": {"token_id": "forged", "account_id": "forged"}}});
        let signed_looking = json!({"latchrecord": record.to_string()});
        client
            .publish_with_headers(
                "latch.events.token.revoked.forged",
                headers,
                signed_looking.to_string().into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    let mut refusals = 0;
    while refusals < 2 {
        let next = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the subscriber answers the forgeries");
        assert!(
            !next.contains("forged") || next.starts_with("refused"),
            "{next}"
        );
        if next.starts_with("refused") {
            refusals += 1;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("revoked "), "{line}");
    assert!(
        expected.iter().any(|id| line.contains(id.as_str())),
        "{line} names a revoked token"
    );
    assert!(line.ends_with(&format!("of account {account}")), "{line}");
}
