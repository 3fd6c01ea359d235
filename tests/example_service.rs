//! The example certificate service, protected by the verifier, beside the
//! real latchd and a real nats-server: a token works there, and stops
//! working once revoked through latchd's API.

use std::time::{Duration, Instant};

use latch_e2e::{CertificateService, Latchd};
use serde_json::json;

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

    let service = CertificateService::start(&latchd);
    let issue = |token: &str| service.issue(token);
    let started = Instant::now();
    while issue(&token) != 201 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service never accepted the token"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        service.list(&token),
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
