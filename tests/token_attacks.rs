//! Issue 15, findings 1, 4 and 5, performed as the attacker would, through
//! the real latchd and latch binaries: a weak token replaying an admin's
//! Idempotency-Key, a leaked token rotating itself into a family of live
//! tokens, a non-admin locking the admin out, and the break-glass that
//! brings administration back.

use latch_e2e::{Latchd, account_with_token, binary, ok, stderr, stdout};
use serde_json::{Value, json};

/// A token of the admin's own account, scoped to `events:read` only: the
/// weak insider of the review.
fn weak_token_of_the_admin_account(latchd: &Latchd, admin: &str) -> String {
    let admin_account = latchd.admin_account_id();
    let issued = latchd.post(
        &format!("/v1/accounts/{admin_account}/tokens"),
        admin,
        json!({"name": "dashboard", "scopes": ["events:read"]}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    issued.body["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_weak_token_cannot_replay_an_admin_s_idempotency_key() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let weak = weak_token_of_the_admin_account(&latchd, &admin);

    // The admin rotates itself with a key, as docs/nats.md shows.
    let key = "rotate-admin-2026-12-01";
    let rotated = latchd.raw(
        "POST",
        "/v1/tokens/self/rotate",
        Some(&admin),
        &[("Idempotency-Key", key)],
        serde_json::to_vec(&json!({})).unwrap(),
    );
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let admin_successor = rotated.body["id"].as_str().unwrap().to_owned();
    let admin_secret = rotated.body["token"].as_str().unwrap().to_owned();

    // The weak token reads the log: the key is nowhere, only its digest.
    let events = latchd.get("/v1/events?limit=1000", &weak);
    assert_eq!(events.status, 200, "{:?}", events.body);
    let text = events.body.to_string();
    assert!(!text.contains(key), "the events API shows the key: {text}");
    assert!(
        text.contains("idempotency_key_sha256"),
        "the digest is recorded: {text}"
    );

    // Replaying the key on the self-rotation route rotates the weak token
    // itself (its own request, its own key space): never the admin's secret.
    let replay = latchd.raw(
        "POST",
        "/v1/tokens/self/rotate",
        Some(&weak),
        &[("Idempotency-Key", key)],
        serde_json::to_vec(&json!({})).unwrap(),
    );
    assert_ne!(replay.body["id"].as_str(), Some(admin_successor.as_str()));
    assert!(!replay.body.to_string().contains(&admin_secret));
    if replay.status < 300 {
        assert_eq!(replay.body["scopes"], json!(["events:read"]), "{:?}", replay.body);
    }
    // And on the admin successor's own rotate route: refused outright.
    let direct = latchd.raw(
        "POST",
        &format!("/v1/tokens/{admin_successor}/rotate"),
        Some(&weak),
        &[("Idempotency-Key", key)],
        serde_json::to_vec(&json!({})).unwrap(),
    );
    assert_eq!(direct.status, 403, "{:?}", direct.body);
    assert!(!direct.body.to_string().contains(&admin_secret));

    // The admin's own retry still gets its answer back, once.
    let retry = latchd.raw(
        "POST",
        "/v1/tokens/self/rotate",
        Some(&admin),
        &[("Idempotency-Key", key)],
        serde_json::to_vec(&json!({})).unwrap(),
    );
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body["id"].as_str(), Some(admin_successor.as_str()));
}

#[test]
fn a_retry_is_refused_once_the_caller_lost_the_permission() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let defined = latchd.call(
        "PUT",
        "/v1/roles/issuer",
        Some(&admin),
        Some(&json!({"permissions": ["tokens:write", "accounts:read"]})),
    );
    assert!(defined.status < 300, "{:?}", defined.body);
    let (account, _, issuer) = account_with_token(&latchd, &admin, "issuer", "issuer", None);
    let issue = |key: &str| {
        latchd.raw(
            "POST",
            &format!("/v1/accounts/{account}/tokens"),
            Some(&issuer),
            &[("Idempotency-Key", key)],
            serde_json::to_vec(&json!({"name": "child", "scopes": ["accounts:read"]})).unwrap(),
        )
    };
    assert_eq!(issue("k1").status, 201);
    // Its role loses tokens:write; the same request replayed is refused.
    let shrunk = latchd.call(
        "PUT",
        "/v1/roles/issuer",
        Some(&admin),
        Some(&json!({"permissions": ["accounts:read"]})),
    );
    assert!(shrunk.status < 300, "{:?}", shrunk.body);
    let replay = issue("k1");
    assert_eq!(replay.status, 403, "{:?}", replay.body);
    assert!(replay.body.get("token").is_none());
}

#[test]
fn a_leaked_token_cannot_mint_a_family_that_outlives_its_revocation() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let policy = latchd.call(
        "PUT",
        "/v1/policy",
        Some(&admin),
        Some(&json!({"max_tokens_per_account": 2, "rotation_grace": "1h"})),
    );
    assert!(policy.status < 300, "{:?}", policy.body);
    let (account, first, leaked) =
        account_with_token(&latchd, &admin, "ci", "auditor", Some(vec!["audit:read"]));

    // A grace beyond policy is refused.
    let long = latchd.latch(
        Some(&leaked),
        &["token", "rotate", "--self", "--grace", "36500d"],
    );
    assert!(!long.status.success(), "{}", stdout(&long));
    assert!(stderr(&long).contains("rotation_grace"), "{}", stderr(&long));

    // Five self-rotations, each with the newest secret.
    let mut secret = leaked.clone();
    for _ in 0..5 {
        let out = ok(latchd.latch(
            Some(&secret),
            &["--output", "json", "token", "rotate", "--self"],
        ));
        let issued: Value = serde_json::from_str(&out).unwrap();
        secret = issued["token"].as_str().unwrap().to_owned();
    }
    let tokens = latchd.get(&format!("/v1/accounts/{account}/tokens"), &admin);
    let live = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "active")
        .count();
    assert!(live <= 2, "{live} live tokens: {:?}", tokens.body);

    // Revoking the original with --family takes every generation.
    ok(latchd.latch(
        Some(&admin),
        &["token", "revoke", &first, "--family", "--reason", "leaked"],
    ));
    for token in [&leaked, &secret] {
        let checked = latchd.post("/v1/introspect", &admin, json!({"token": token}));
        assert_eq!(checked.body["active"], json!(false), "{:?}", checked.body);
    }
    let tokens = latchd.get(&format!("/v1/accounts/{account}/tokens"), &admin);
    assert!(
        tokens.body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] != "active"),
        "{:?}",
        tokens.body
    );
}

#[test]
fn nobody_below_admin_locks_the_admin_out_and_the_last_admin_stays() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let defined = latchd.call(
        "PUT",
        "/v1/roles/account-manager",
        Some(&admin),
        Some(&json!({"permissions": ["accounts:write", "accounts:read", "tokens:write"]})),
    );
    assert!(defined.status < 300, "{:?}", defined.body);
    let (_, _, manager) =
        account_with_token(&latchd, &admin, "manager", "account-manager", None);
    let admin_account = latchd.admin_account_id();
    let admin_token_id = latchd.get("/v1/tokens/self", &admin).body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for (method, path, body) in [
        ("POST", format!("/v1/accounts/{admin_account}/disable"), Some(json!({"reason": "mine now"}))),
        ("DELETE", format!("/v1/accounts/{admin_account}"), None),
        ("PATCH", format!("/v1/accounts/{admin_account}"), Some(json!({"role": "auditor"}))),
        ("POST", format!("/v1/tokens/{admin_token_id}/revoke"), Some(json!({}))),
    ] {
        let reply = latchd.call(method, &path, Some(&manager), body.as_ref());
        assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
    }
    assert_eq!(latchd.get("/v1/tokens/self", &admin).status, 200);

    // The only admin cannot delete, disable or demote itself.
    for (method, path, body) in [
        ("DELETE", format!("/v1/accounts/{admin_account}"), None),
        ("POST", format!("/v1/accounts/{admin_account}/disable"), Some(json!({"reason": "oops"}))),
        ("PATCH", format!("/v1/accounts/{admin_account}"), Some(json!({"role": "auditor"}))),
    ] {
        let reply = latchd.call(method, &path, Some(&admin), body.as_ref());
        assert_eq!(reply.status, 409, "{method} {path}: {:?}", reply.body);
        assert!(
            reply.body["detail"].as_str().unwrap_or("").contains("last active account"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(latchd.get("/v1/tokens/self", &admin).status, 200);
}

#[test]
fn recover_admin_restores_administration_on_the_host_with_latchd_stopped() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    // The admin revokes its only token: nobody can administer Latch.
    let revoked = latchd.post("/v1/tokens/self/revoke", &admin, json!({"reason": "oops"}));
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(latchd.get("/v1/accounts", &admin).status, 401);

    // While latchd runs, the break-glass refuses (the log is locked).
    let data_dir = latchd.data_dir.clone();
    let recover = || {
        std::process::Command::new(binary("latchd"))
            .args(["recover-admin", "--data-dir"])
            .arg(&data_dir)
            .env_remove("LATCH_DATA_DIR")
            .output()
            .expect("run latchd recover-admin")
    };
    let refused = recover();
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("stop latchd first"), "{}", stderr(&refused));

    latchd.stop();
    let recovered = recover();
    assert!(recovered.status.success(), "{}", stderr(&recovered));
    assert!(stdout(&recovered).contains("issued token"), "{}", stdout(&recovered));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let latchd = Latchd::start_in(&data_dir);
    let restored = latchd.admin_token();
    assert_ne!(restored, admin);
    assert_eq!(latchd.get("/v1/accounts", &restored).status, 200);
    // The recovery is on the record: by system, under a break-glass request id.
    let events = latchd.get("/v1/events?limit=1000", &restored);
    let last = events.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "token.issued", "{last}");
    assert!(
        last["request_id"].as_str().unwrap_or("").contains("recover-admin"),
        "{last}"
    );
    assert!(!events.body.to_string().contains(&restored));
}
