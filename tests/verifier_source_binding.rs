//! A token bound to source addresses (`allowed_cidrs`) is honoured by the
//! verifier: `verify_from` applies the binding to the caller's address, and
//! plain `verify`, which knows no address, refuses such a token instead of
//! ignoring the binding (issue 15, finding 9). Real latchd, real NATS.

use std::time::Duration;

use latch_core::Rejection;
use latch_e2e::{Latchd, account_with_token};
use latch_verify::{Denial, NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_verify_refuses_a_token_bound_to_source_addresses() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, unbound) = account_with_token(&latchd, &admin, "edge", "auditor", None);
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "bound", "allowed_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let bound = issued.body["token"].as_str().unwrap().to_owned();
    let everywhere = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "anywhere", "allowed_cidrs": ["0.0.0.0/0", "::/0"]}),
    );
    assert_eq!(everywhere.status, 201, "{:?}", everywhere.body);
    let anywhere = everywhere.body["token"].as_str().unwrap().to_owned();

    let mut config = VerifierConfig::new(NatsConnection::new(latchd.nats().url()));
    config.connect_timeout = Duration::from_secs(15);
    let verifier = Verifier::connect(config).await.unwrap();
    let read = Permission::parse("audit:read").unwrap();
    let started = std::time::Instant::now();
    while verifier.verify(&unbound, &read).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the verifier caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    while verifier
        .verify_from(&bound, &read, "10.1.2.3".parse().unwrap())
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the verifier caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Without an address the binding cannot be checked: refused.
    assert_eq!(
        verifier.verify(&bound, &read),
        Err(Denial::Rejected(Rejection::SourceNotAllowed))
    );
    // With one, it is applied.
    assert!(
        verifier
            .verify_from(&bound, &read, "2001:db8::1".parse().unwrap())
            .is_ok()
    );
    assert_eq!(
        verifier.verify_from(&bound, &read, "192.168.0.1".parse().unwrap()),
        Err(Denial::Rejected(Rejection::SourceNotAllowed))
    );
    // Tokens with no binding (or one that allows every address) need none.
    assert!(verifier.verify(&unbound, &read).is_ok());
    assert!(verifier.verify(&anywhere, &read).is_ok());
}
