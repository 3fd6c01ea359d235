//! The full lifecycle over HTTP against the real latchd binary: create →
//! issue → use → rotate (old works within grace, new works) → revoke → 401;
//! disabling an account; a role shrink reducing a token's effective scopes;
//! a restart keeping all state; idempotent retries.

use latch_e2e::{Latchd, account_with_token};
use serde_json::json;

#[test]
fn create_issue_use_rotate_revoke() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    assert_eq!(latchd.get("/v1/tokens/self", &admin).status, 200);

    let (account, token_id, token) =
        account_with_token(&latchd, &admin, "ci-deploy", "auditor", None);
    assert_eq!(token.len(), 44);
    assert!(token.starts_with("latch_"));

    // Use it.
    let me = latchd.get("/v1/tokens/self", &token);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["id"], token_id.as_str());
    assert_eq!(me.body["account_id"], account.as_str());
    assert_eq!(
        latchd.get("/v1/accounts", &token).status,
        200,
        "auditor reads accounts"
    );

    // Rotate itself with a grace period: both work.
    let rotated = latchd.post("/v1/tokens/self/rotate", &token, json!({ "grace": "1h" }));
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let new_token = rotated.body["token"].as_str().unwrap().to_owned();
    let new_id = rotated.body["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated.body["rotated_from"], token_id.as_str());
    assert_eq!(
        latchd.get("/v1/tokens/self", &token).status,
        200,
        "old token works within grace"
    );
    assert_eq!(
        latchd.get("/v1/tokens/self", &new_token).status,
        200,
        "new token works"
    );
    let old = latchd.get(&format!("/v1/tokens/{token_id}"), &admin);
    assert_eq!(old.body["rotated_to"], new_id.as_str());

    // Rotating the old one again is a clear conflict.
    let again = latchd.post(&format!("/v1/tokens/{token_id}/rotate"), &admin, json!({}));
    assert_eq!(again.status, 409, "{:?}", again.body);

    // Revoke: 401 from now on.
    let revoked = latchd.post(
        &format!("/v1/tokens/{new_id}/revoke"),
        &admin,
        json!({ "reason": "leaked in a build log" }),
    );
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    let denied = latchd.get("/v1/tokens/self", &new_token);
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(denied.content_type, "application/problem+json");

    // A token can revoke itself.
    assert_eq!(
        latchd
            .post("/v1/tokens/self/revoke", &token, json!({}))
            .status,
        200
    );
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);

    // The log tells the story.
    let events = latchd.get(&format!("/v1/events?account={account}"), &admin);
    // (Presenting the revoked token again above is reuse: latchd tells,
    // a moment later, with token.reuse_detected; tests/token_reuse.rs.)
    let types: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| *t != "token.reuse_detected")
        .collect();
    assert_eq!(
        types,
        [
            "account.created",
            "token.issued",
            "token.issued",
            "token.rotated",
            "token.revoked",
            "token.revoked"
        ]
    );
}

#[test]
fn disabling_an_account_suspends_its_tokens_until_enabled() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, token) = account_with_token(&latchd, &admin, "provisioner", "auditor", None);
    let disabled = latchd.post(
        &format!("/v1/accounts/{account}/disable"),
        &admin,
        json!({ "reason": "suspected leak" }),
    );
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    let shown = latchd.get(&format!("/v1/accounts/{account}/tokens"), &admin);
    assert_eq!(shown.body["tokens"][0]["status"], "suspended");
    assert_eq!(
        latchd
            .post(&format!("/v1/accounts/{account}/enable"), &admin, json!({}))
            .status,
        200
    );
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 200);
    // Deleting revokes for good.
    assert_eq!(
        latchd
            .call(
                "DELETE",
                &format!("/v1/accounts/{account}"),
                Some(&admin),
                None
            )
            .status,
        200
    );
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    assert_eq!(
        latchd
            .post(&format!("/v1/accounts/{account}/enable"), &admin, json!({}))
            .status,
        409
    );
}

#[test]
fn shrinking_a_role_shrinks_every_token_at_once() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let role = latchd.call(
        "PUT",
        "/v1/roles/inventory",
        Some(&admin),
        Some(&json!({ "permissions": ["accounts:read", "tokens:read", "certificates:read"] })),
    );
    assert_eq!(role.status, 200, "{:?}", role.body);
    let (_, token_id, token) = account_with_token(
        &latchd,
        &admin,
        "inventory-sync",
        "inventory",
        Some(vec!["accounts:read", "tokens:read"]),
    );
    assert_eq!(latchd.get("/v1/accounts", &token).status, 200);

    let shrunk = latchd.call(
        "PUT",
        "/v1/roles/inventory",
        Some(&admin),
        Some(&json!({ "permissions": ["tokens:read"] })),
    );
    assert_eq!(shrunk.status, 200);
    let denied = latchd.get("/v1/accounts", &token);
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["missing_permission"], "accounts:read");
    let view = latchd.get(&format!("/v1/tokens/{token_id}"), &admin);
    assert_eq!(view.body["scopes"], json!(["accounts:read", "tokens:read"]));
    assert_eq!(view.body["effective_permissions"], json!(["tokens:read"]));
}

#[test]
fn a_restart_keeps_all_state_and_bootstraps_only_once() {
    let temp = tempfile::tempdir().unwrap();
    let mut latchd = Latchd::start_in(temp.path());
    let admin = latchd.admin_token();
    let (account, token_id, token) =
        account_with_token(&latchd, &admin, "survivor", "auditor", None);
    let revoked_holder = account_with_token(&latchd, &admin, "revoked-one", "auditor", None);
    latchd.post(
        &format!("/v1/tokens/{}/revoke", revoked_holder.1),
        &admin,
        json!({}),
    );
    let head = latchd.head();
    latchd.stop();

    let latchd = Latchd::start_in(temp.path());
    assert_eq!(latchd.admin_token(), admin, "no second bootstrap");
    assert_eq!(latchd.head(), head);
    assert_eq!(
        latchd.get("/v1/tokens/self", &token).body["id"],
        token_id.as_str()
    );
    assert_eq!(
        latchd.get(&format!("/v1/accounts/{account}"), &admin).body["name"],
        "survivor"
    );
    assert_eq!(latchd.get("/v1/tokens/self", &revoked_holder.2).status, 401);
    let accounts = latchd.get("/v1/accounts?status=active", &admin);
    assert_eq!(accounts.body["accounts"].as_array().unwrap().len(), 3);
}

#[test]
fn an_idempotent_issue_returns_the_same_token_and_appends_once() {
    let temp = tempfile::tempdir().unwrap();
    let mut latchd = Latchd::start_in(temp.path());
    let admin = latchd.admin_token();
    let created = latchd.post(
        "/v1/accounts",
        &admin,
        json!({ "name": "pipeline", "role": "auditor" }),
    );
    let account = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/accounts/{account}/tokens");
    let body = serde_json::to_vec(&json!({ "name": "deploy" })).unwrap();
    let headers = [("Idempotency-Key", "deploy-2026-03-02")];
    let first = latchd.raw("POST", &path, Some(&admin), &headers, body.clone());
    assert_eq!(first.status, 201);
    let head = latchd.head();
    let retry = latchd.raw("POST", &path, Some(&admin), &headers, body.clone());
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body["id"], first.body["id"]);
    assert_eq!(
        retry.body["token"], first.body["token"],
        "secret still held in memory"
    );
    assert_eq!(latchd.head(), head, "nothing appended");

    // A different request under the same key is refused.
    let other = latchd.raw(
        "POST",
        &path,
        Some(&admin),
        &headers,
        serde_json::to_vec(&json!({ "name": "other" })).unwrap(),
    );
    assert_eq!(other.status, 422, "{:?}", other.body);

    // After a restart the secret is gone (never on disk): a clear 409 that says to rotate.
    latchd.stop();
    let latchd = Latchd::start_in(temp.path());
    let after_restart = latchd.raw("POST", &path, Some(&admin), &headers, body);
    assert_eq!(after_restart.status, 409, "{:?}", after_restart.body);
    assert!(
        after_restart.body["detail"]
            .as_str()
            .unwrap()
            .contains("rotate")
    );
    assert_eq!(latchd.head(), head);
}

#[test]
fn if_match_guards_against_lost_updates() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let created = latchd.post(
        "/v1/accounts",
        &admin,
        json!({ "name": "guarded", "role": "auditor" }),
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let etag = created.header("etag").unwrap().to_owned();
    let patch = |etag: &str, description: &str| {
        latchd.raw(
            "PATCH",
            &format!("/v1/accounts/{id}"),
            Some(&admin),
            &[("If-Match", etag)],
            serde_json::to_vec(&json!({ "description": description })).unwrap(),
        )
    };
    assert_eq!(patch(&etag, "first").status, 200);
    let stale = patch(&etag, "second");
    assert_eq!(stale.status, 412, "{:?}", stale.body);
}

#[test]
fn every_request_is_in_the_activity_audit() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account_id, token_id, token) = account_with_token(&latchd, &admin, "watched", "auditor", None);
    assert_eq!(
        latchd
            .post(
                "/v1/accounts",
                &token,
                json!({ "name": "nope", "role": "auditor" })
            )
            .status,
        403
    );
    assert_eq!(latchd.get("/v1/accounts", "latch_garbage").status, 401);
    let audit = latchd.get(&format!("/v1/audit?token={token_id}&status=403"), &admin);
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let records = audit.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["route"], "/v1/accounts");
    assert_eq!(records[0]["method"], "POST");
    assert_eq!(records[0]["remote_addr"], "127.0.0.1");
    assert!(
        records[0]["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    // The account's records (from the activity index) are its token's:
    // the refused request among them, none of the admin's.
    let by_account = latchd.get(&format!("/v1/audit?account={account_id}&limit=1000"), &admin);
    assert_eq!(by_account.status, 200, "{:?}", by_account.body);
    let of_account = by_account.body["records"].as_array().unwrap();
    assert!(of_account.iter().all(|r| r["account_id"] == account_id.as_str()), "{of_account:?}");
    assert!(of_account.iter().any(|r| r["status"] == 403 && r["route"] == "/v1/accounts"));
    let unauthenticated = latchd.get("/v1/audit?status=401", &admin);
    assert!(
        unauthenticated.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["account_id"].is_null())
    );
}
