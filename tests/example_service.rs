//! The example certificate service, protected by the verifier, beside the
//! real latchd and a real nats-server: a token works there, and stops
//! working once revoked through latchd's API.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, binary};
use serde_json::json;

struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn revoking_through_latchd_locks_the_token_out_of_the_service() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let role = json!({ "permissions": ["certificates:issue", "certificates:read"] });
    assert_eq!(
        latchd
            .call("PUT", "/v1/roles/cert-operator", Some(&admin), Some(&role))
            .status,
        200
    );
    let (_, token_id, token) = latch_e2e::account_with_token(
        &latchd,
        &admin,
        "ci-deploy",
        "cert-operator",
        Some(vec!["certificates:issue"]),
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The service trusts latchd's signing key: it believes only the signed feed.
    let key = Command::new(binary("latchd"))
        .args(["key", "show", "--data-dir"])
        .arg(&latchd.data_dir)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let _service = Service(
        Command::new(binary("certificate-service"))
            .env("LATCH_PUBLIC_KEY", &key)
            .args([
                "--nats-url",
                &latchd.nats().url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--max-staleness-seconds",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let issue = |token: &str| -> u16 {
        match agent
            .post(format!("http://127.0.0.1:{port}/certificates"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(json!({ "common_name": "api.example.com" }))
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    };
    let started = Instant::now();
    while issue(&token) != 201 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service never accepted the token"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = agent
        .get(format!("http://127.0.0.1:{port}/certificates"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(
        list.status().as_u16(),
        403,
        "the token is scoped to certificates:issue only"
    );

    let revoked_at = Instant::now();
    assert_eq!(
        latchd
            .post(
                &format!("/v1/tokens/{token_id}/revoke"),
                &admin,
                json!({ "reason": "leaked" })
            )
            .status,
        200
    );
    while issue(&token) != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the revocation never reached the service"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!(
        "revoke response to first rejection: {:?}",
        revoked_at.elapsed()
    );
}
