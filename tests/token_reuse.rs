//! Reuse detection (issue 21): a token presented after it was rotated out
//! (past its grace) or revoked — at a verifier, which reports it with its
//! usage reports, or at latchd — raises one `token.reuse_detected`; under
//! policy `on_reuse: revoke` its successor is refused at verifiers next.
//! Real latchd, real NATS, real verifier.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use latch_core::{AccountId, Rejection, TokenId};
use latch_e2e::{Latchd, account_with_token};
use latch_verify::{Denial, NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::{Value, json};

async fn reporting_verifier(latchd: &Latchd) -> Verifier {
    let mut config = VerifierConfig::new(NatsConnection::new(latchd.nats().url()));
    config.connect_timeout = Duration::from_secs(15);
    config.usage_report_every = Some(Duration::from_millis(200));
    config.name = "billing-api/1".into();
    Verifier::connect(config).await.unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reuse_events(latchd: &Latchd) -> Vec<Value> {
    let page = latchd.get("/v1/events?type=token.reuse_detected&limit=1000", &latchd.admin_token());
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["events"].as_array().cloned().unwrap_or_default()
}

/// Rotates `token_id` with a one-second grace; the successor's (id, secret).
fn rotate(latchd: &Latchd, admin: &str, token_id: &str) -> (String, String) {
    let rotated = latchd.post(&format!("/v1/tokens/{token_id}/rotate"), admin, json!({"grace": "1s"}));
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    (
        rotated.body["id"].as_str().unwrap().to_owned(),
        rotated.body["token"].as_str().unwrap().to_owned(),
    )
}

fn peer() -> IpAddr {
    "203.0.113.7".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_token_presented_at_a_verifier_is_reuse_and_on_reuse_revoke_ends_its_successor() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    // `pipeline` accounts revoke on reuse; the rest only alert (default).
    let role = latchd.call("PUT", "/v1/roles/pipeline", Some(&admin), Some(&json!({"permissions": ["audit:read"]})));
    assert!(role.status < 300, "{:?}", role.body);
    let policy = latchd.call("PUT", "/v1/policy?role=pipeline", Some(&admin), Some(&json!({"on_reuse": "revoke"})));
    assert_eq!(policy.status, 200, "{:?}", policy.body);
    assert_eq!(policy.body["effective"]["pipeline"]["on_reuse"], "revoke");
    assert_eq!(policy.body["effective"]["auditor"]["on_reuse"], "alert");

    let (_, lax_old_id, lax_old) = account_with_token(&latchd, &admin, "lax", "auditor", None);
    let (_, strict_old_id, strict_old) = account_with_token(&latchd, &admin, "strict", "pipeline", None);
    let verifier = reporting_verifier(&latchd).await;
    let read = Permission::parse("audit:read").unwrap();
    let rotated_at = Instant::now();
    let (lax_new_id, lax_new) = rotate(&latchd, &admin, &lax_old_id);
    let (strict_new_id, strict_new) = rotate(&latchd, &admin, &strict_old_id);
    until("the verifier knows the successors", || {
        verifier.verify(&lax_new, &read).is_ok() && verifier.verify(&strict_new, &read).is_ok()
    })
    .await;

    // Within the grace the old tokens are no reuse: a pipeline retrying
    // with its old token is fine. Just after it, a verifier refuses them,
    // but its claim is no reuse either until the clock skew verifiers are
    // allowed (30 s) has passed: a verifier whose clock runs fast refuses
    // a token a moment early.
    assert!(verifier.verify_from(&lax_old, &read, peer()).is_ok());
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(rotated_at.elapsed())).await;
    assert_eq!(verifier.verify_from(&lax_old, &read, peer()), Err(Denial::Rejected(Rejection::Expired)));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(reuse_events(&latchd).is_empty(), "a refusal within the clock skew is no reuse");
    tokio::time::sleep(Duration::from_secs(33).saturating_sub(rotated_at.elapsed())).await;

    // After: refused, reported, told once.
    for _ in 0..5 {
        for old in [&lax_old, &strict_old] {
            assert_eq!(verifier.verify_from(old, &read, peer()), Err(Denial::Rejected(Rejection::Expired)));
        }
    }
    let mut events = Vec::new();
    until("both reuses are told", || {
        events = reuse_events(&latchd);
        events.len() >= 2
    })
    .await;
    let of = |token_id: &str| -> Value {
        events
            .iter()
            .find(|e| e["data"]["token_id"] == token_id)
            .unwrap_or_else(|| panic!("no reuse of {token_id}: {events:?}"))["data"]
            .clone()
    };
    let lax = of(&lax_old_id);
    assert_eq!(lax["service"], "billing-api/1");
    assert_eq!(lax["source_address"], "203.0.113.7");
    assert_eq!(lax["successor_id"], lax_new_id.as_str());
    assert_eq!(lax["on_reuse"], "alert");
    assert_eq!(of(&strict_old_id)["on_reuse"], "revoke");

    // Under `revoke` the successor is refused at the verifier next; under
    // `alert` it keeps working.
    until("the verifier refuses the strict successor", || {
        verifier.verify(&strict_new, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    assert!(verifier.verify(&lax_new, &read).is_ok());
    let revoked = latchd.get(&format!("/v1/tokens/{strict_new_id}"), &admin);
    assert!(revoked.body["revoke_reason"].as_str().unwrap_or_default().contains("on_reuse is revoke"), "{:?}", revoked.body);

    // Presented again, at the verifier and at latchd: still told once.
    for _ in 0..5 {
        let _ = verifier.verify_from(&lax_old, &read, peer());
        assert_eq!(latchd.get("/v1/tokens/self", &lax_old).status, 401);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let told: Vec<Value> = reuse_events(&latchd)
        .into_iter()
        .filter(|e| e["data"]["token_id"] == lax_old_id.as_str())
        .collect();
    assert_eq!(told.len(), 1, "at most once per token per window: {told:?}");
}

#[test]
fn a_revoked_token_presented_at_latchd_is_reuse() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, token_id, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let revoked = latchd.post(&format!("/v1/tokens/{token_id}/revoke"), &admin, json!({"reason": "left the team"}));
    assert_eq!(revoked.status, 200);
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    latch_e2e::eventually("latchd tells the reuse", || !reuse_events(&latchd).is_empty());
    let events = reuse_events(&latchd);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["token_id"], token_id.as_str());
    assert_eq!(events[0]["data"]["service"], "latchd");
    assert_eq!(events[0]["data"]["source_address"], "127.0.0.1");
    assert!(events[0]["data"].get("successor_id").is_none());
}

/// Anyone who may publish on `latch.usage.>` can claim a reuse; latchd
/// believes only what its own state says could be one.
#[test]
fn a_forged_reuse_claim_about_a_live_token_or_one_in_its_grace_changes_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, live_id, _) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let (_, rotated_id, _) = account_with_token(&latchd, &admin, "other", "auditor", None);
    let rotated = latchd.post(&format!("/v1/tokens/{rotated_id}/rotate"), &admin, json!({"grace": "1h"}));
    assert_eq!(rotated.status, 201);
    let head = latchd.head();
    let account: AccountId = account.parse().unwrap();
    let claim = |token_id: &str, account: AccountId| latch_bus::UsageReport {
        verifier: "mallory".into(),
        account_id: account,
        uses: Vec::new(),
        refused: vec![latch_bus::TokenUse {
            token_id: token_id.parse::<TokenId>().unwrap(),
            count: 1,
            first_at: chrono::Utc::now(),
            last_at: chrono::Utc::now(),
            last_from: Some(peer()),
        }],
    };
    let nats_url = latchd.nats().url();
    latch_e2e::block_on(async move {
        let client = async_nats::connect(nats_url).await.unwrap();
        // A live token; a token in its grace (under another account's
        // subject, too); a token the account does not hold.
        for report in [
            claim(&live_id, account),
            claim(&rotated_id, account),
            claim(&TokenId::new().to_string(), account),
        ] {
            client
                .publish(latch_bus::subject::usage_subject(report.account_id), report.encode().into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(latchd.head(), head, "nothing appended");
    assert!(reuse_events(&latchd).is_empty());
}
