//! Security: no route without a token, no escalation, no cross-account
//! access, every kind of bad token refused, and no secret in latchd's logs.

use latch_e2e::{Latchd, account_with_token};
use serde_json::json;

const PLACEHOLDER_ID: &str = "0190c5a3-0000-7000-8000-000000000000";

#[test]
fn every_v1_route_without_a_token_is_401_and_recorded() {
    let latchd = Latchd::start();
    let routes: Vec<(&str, String)> = [
        ("POST", "/v1/accounts"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/accounts/{id}"),
        ("PATCH", "/v1/accounts/{id}"),
        ("DELETE", "/v1/accounts/{id}"),
        ("POST", "/v1/accounts/{id}/disable"),
        ("POST", "/v1/accounts/{id}/enable"),
        ("POST", "/v1/accounts/{id}/tokens"),
        ("GET", "/v1/accounts/{id}/tokens"),
        ("GET", "/v1/tokens"),
        ("GET", "/v1/tokens/{id}"),
        ("POST", "/v1/tokens/{id}/revoke"),
        ("POST", "/v1/tokens/{id}/rotate"),
        ("POST", "/v1/tokens/self/rotate"),
        ("POST", "/v1/introspect"),
        ("GET", "/v1/roles"),
        ("PUT", "/v1/roles/{id}"),
        ("DELETE", "/v1/roles/{id}"),
        ("GET", "/v1/policy"),
        ("PUT", "/v1/policy"),
        ("GET", "/v1/events"),
        ("GET", "/v1/snapshot"),
        ("GET", "/v1/audit"),
        ("POST", "/v1/leaks"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("DELETE", "/v1/webhooks/{id}"),
        ("GET", "/v1/webhooks/{id}/deliveries"),
        ("POST", "/v1/webhooks/{id}/deliveries/7/redeliver"),
        // The web console's sign-in and sign-out ride the same gate.
        ("POST", "/ui/session"),
        ("DELETE", "/ui/session"),
    ]
    .into_iter()
    .map(|(method, path)| (method, path.replace("{id}", PLACEHOLDER_ID)))
    .collect();
    for (method, path) in &routes {
        let reply = latchd.call(method, path, None, Some(&json!({})));
        assert_eq!(reply.status, 401, "{method} {path}: {:?}", reply.body);
        assert_eq!(
            reply.content_type, "application/problem+json",
            "{method} {path}"
        );
        assert!(
            reply.header("www-authenticate").is_some(),
            "{method} {path}"
        );
    }
    // The served-route list is the source of truth for this test's list.
    let served = latchd.get("/v1/openapi.json", "").body["paths"]
        .as_object()
        .unwrap()
        .len();
    assert!(served >= 17, "openapi lists {served} paths");
}

#[test]
fn escalation_is_403_and_appends_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let manager_role = json!({ "permissions": ["accounts:write", "accounts:read", "tokens:write", "roles:write", "certificates:read"] });
    assert_eq!(
        latchd
            .call(
                "PUT",
                "/v1/roles/manager",
                Some(&admin),
                Some(&manager_role)
            )
            .status,
        200
    );
    let operator_role = json!({ "permissions": ["certificates:issue", "certificates:read"] });
    assert_eq!(
        latchd
            .call(
                "PUT",
                "/v1/roles/cert-operator",
                Some(&admin),
                Some(&operator_role)
            )
            .status,
        200
    );
    let (_, _, manager) = account_with_token(&latchd, &admin, "team-manager", "manager", None);
    let (ops, _, _) = account_with_token(&latchd, &admin, "ops-bot", "cert-operator", None);
    let head = latchd.head();

    let attempts = [
        (
            "POST",
            "/v1/accounts".to_owned(),
            json!({ "name": "evil-admin", "role": "admin" }),
        ),
        (
            "POST",
            format!("/v1/accounts/{ops}/tokens"),
            json!({ "name": "t", "scopes": ["certificates:issue"] }),
        ),
        (
            "PUT",
            "/v1/roles/bigger".to_owned(),
            json!({ "permissions": ["certificates:*"] }),
        ),
        (
            "PATCH",
            format!("/v1/accounts/{ops}"),
            json!({ "role": "admin" }),
        ),
        (
            "PUT",
            "/v1/policy".to_owned(),
            json!({ "max_ttl": "1d", "default_ttl": "1d" }),
        ),
    ];
    for (method, path, body) in attempts {
        let reply = latchd.call(method, &path, Some(&manager), Some(&body));
        assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
    }
    assert_eq!(latchd.head(), head, "nothing appended");
}

/// Routes leave a command's permission to the domain (ADR 0020): this holds
/// every write route latchd documents to it. A token that holds every read
/// permission (`auditor`) sends each write a valid body aimed at the admin,
/// with an idempotency key it has already used: each is refused with 403
/// (not 400, 404, 409 or 422) and nothing is appended. A write route added
/// without an entry here fails the test.
#[test]
fn every_write_route_refuses_a_token_without_its_permission_and_appends_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let me = latchd.get("/v1/tokens/self", &admin);
    let admin_account = me.body["account_id"].as_str().unwrap().to_owned();
    let admin_token = me.body["id"].as_str().unwrap().to_owned();
    let victim_role = json!({ "permissions": ["certificates:read"] });
    assert_eq!(
        latchd
            .call("PUT", "/v1/roles/victim", Some(&admin), Some(&victim_role))
            .status,
        200
    );
    let (_, _, reader) = account_with_token(&latchd, &admin, "reader", "auditor", None);
    // The reader first spends its key on something it may do (rotating
    // itself, staying valid for a grace period), so a key check made before
    // the permission would answer 422.
    let rotated = latchd.raw(
        "POST",
        "/v1/tokens/self/rotate",
        Some(&reader),
        &[
            ("Idempotency-Key", "one-key-for-every-attack"),
            ("Content-Type", "application/json"),
        ],
        br#"{"grace": "10m"}"#.to_vec(),
    );
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let head = latchd.head();

    let attack = |method: &str, template: &str| -> Option<(String, serde_json::Value)> {
        let on_account = template.replace("{id}", &admin_account);
        let on_token = template.replace("{id}", &admin_token);
        Some(match (method, template) {
            ("POST", "/v1/accounts") => (
                template.to_owned(),
                json!({ "name": "evil", "role": "admin" }),
            ),
            ("PATCH", "/v1/accounts/{id}") => (on_account, json!({ "description": "x" })),
            ("DELETE", "/v1/accounts/{id}") => (on_account, serde_json::Value::Null),
            ("POST", "/v1/accounts/{id}/disable") => (on_account, json!({ "reason": "x" })),
            ("POST", "/v1/accounts/{id}/enable") => (on_account, json!({})),
            ("POST", "/v1/accounts/{id}/tokens") => (on_account, json!({ "name": "x" })),
            ("POST", "/v1/tokens/{id}/revoke") => (on_token, json!({ "family": true })),
            ("POST", "/v1/tokens/{id}/rotate") => (on_token, json!({})),
            ("POST", "/v1/introspect") => (template.to_owned(), json!({ "token": admin })),
            ("PUT", "/v1/roles/{name}") => (
                template.replace("{name}", "bigger"),
                json!({ "permissions": ["certificates:*"] }),
            ),
            ("DELETE", "/v1/roles/{name}") => (
                template.replace("{name}", "victim"),
                serde_json::Value::Null,
            ),
            ("PUT", "/v1/policy") => (template.to_owned(), json!({ "max_ttl": "1d" })),
            ("POST", "/v1/backup") => (
                template.to_owned(),
                json!({ "to": std::env::temp_dir().join("latch-attack-backup").display().to_string() }),
            ),
            ("POST", "/v1/accounts/{id}/trust-policies") => (
                on_account,
                json!({ "issuer": "https://evil.example", "audience": "x", "claims": { "sub": "evil" } }),
            ),
            ("DELETE", "/v1/accounts/{id}/trust-policies/{policy_id}") => (
                on_account.replace("{policy_id}", "01a24d10-0000-7000-8000-000000000000"),
                serde_json::Value::Null,
            ),
            // A token may always rotate itself.
            ("POST", "/v1/tokens/self/rotate") => return None,
            // No Authorization: the subject token in the body is the
            // credential (tests/token_exchange.rs attacks it, a reader's
            // token asking for more than it has included).
            ("POST", "/v1/token-exchange") => return None,
            // A reader reporting the admin token as leaked would revoke it.
            ("POST", "/v1/leaks") => (
                template.to_owned(),
                json!({ "tokens": [{ "token": admin, "location": "made up" }] }),
            ),
            // No Latch token: GitHub's signature and GitLab's pre-shared
            // token are the credentials (tests/leak_reports.rs attacks
            // both: unsigned, forged, replayed, another body, the admin
            // token as GitLab's).
            ("POST", "/v1/leaks/github") | ("POST", "/v1/leaks/gitlab/revoke_tokens") => return None,
            // A reader adding a webhook would receive every event.
            ("POST", "/v1/webhooks") => (
                template.to_owned(),
                json!({ "url": "https://evil.example/hook", "events": ["*"] }),
            ),
            ("DELETE", "/v1/webhooks/{id}") => (on_token, serde_json::Value::Null),
            ("POST", "/v1/webhooks/{id}/deliveries/{position}/redeliver") => (
                on_token.replace("{position}", "1"),
                json!({}),
            ),
            _ => panic!("{method} {template}: a write route with no attack here; add one"),
        })
    };

    let document = latchd.get("/v1/openapi.json", &admin).body;
    let mut attacked = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if method == "GET" {
                continue;
            }
            let Some((path, body)) = attack(&method, template) else {
                continue;
            };
            let body = if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            let reply = latchd.raw(
                &method,
                &path,
                Some(&reader),
                &[
                    ("Idempotency-Key", "one-key-for-every-attack"),
                    ("Content-Type", "application/json"),
                ],
                body,
            );
            assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
            attacked += 1;
        }
    }
    assert!(attacked >= 13, "{attacked} write routes attacked");
    assert_eq!(latchd.head(), head, "nothing appended");
}

#[test]
fn a_scoped_token_cannot_reach_into_another_account() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, alice) = account_with_token(
        &latchd,
        &admin,
        "alice-bot",
        "auditor",
        Some(vec!["certificates:read"]),
    );
    let (bob_account, bob_token_id, bob) =
        account_with_token(&latchd, &admin, "bob-bot", "auditor", None);
    let head = latchd.head();
    assert_eq!(
        latchd
            .get(&format!("/v1/tokens/{bob_token_id}"), &alice)
            .status,
        403
    );
    assert_eq!(
        latchd
            .get(&format!("/v1/accounts/{bob_account}"), &alice)
            .status,
        403
    );
    assert_eq!(
        latchd
            .get(&format!("/v1/accounts/{bob_account}/tokens"), &alice)
            .status,
        403
    );
    assert_eq!(
        latchd
            .post(
                &format!("/v1/tokens/{bob_token_id}/revoke"),
                &alice,
                json!({})
            )
            .status,
        403
    );
    assert_eq!(
        latchd
            .post(
                &format!("/v1/tokens/{bob_token_id}/rotate"),
                &alice,
                json!({})
            )
            .status,
        403
    );
    assert_eq!(
        latchd
            .post(
                &format!("/v1/accounts/{bob_account}/disable"),
                &alice,
                json!({ "reason": "x" })
            )
            .status,
        403
    );
    assert_eq!(latchd.head(), head);
    assert_eq!(
        latchd.get("/v1/tokens/self", &bob).status,
        200,
        "bob unharmed"
    );
}

#[test]
fn altered_revoked_expired_and_misplaced_tokens_are_401() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, token_id, token) = account_with_token(&latchd, &admin, "target", "auditor", None);

    // One character changed, anywhere.
    for at in [6, 20, 43] {
        let mut chars: Vec<char> = token.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let altered: String = chars.into_iter().collect();
        assert_eq!(
            latchd.get("/v1/tokens/self", &altered).status,
            401,
            "changed at {at}"
        );
    }
    assert_eq!(latchd.get("/v1/tokens/self", "latch_tooshort").status, 401);

    // Expired: a one-second token, a moment later.
    let short = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "short", "ttl": "1s" }),
    );
    let short_token = short.body["token"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = latchd.get("/v1/tokens/self", &short_token);
    assert_eq!(expired.status, 401);
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"));

    // From a disallowed address (the test talks from 127.0.0.1).
    let bound = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "bound", "allowed_cidrs": ["10.0.0.0/8"] }),
    );
    let bound_token = bound.body["token"].as_str().unwrap().to_owned();
    assert_eq!(latchd.get("/v1/tokens/self", &bound_token).status, 401);
    let local = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "local", "allowed_cidrs": ["127.0.0.0/8", "::1/128"] }),
    );
    assert_eq!(
        latchd
            .get("/v1/tokens/self", local.body["token"].as_str().unwrap())
            .status,
        200
    );

    // Revoked.
    latchd.post(&format!("/v1/tokens/{token_id}/revoke"), &admin, json!({}));
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);

    // Introspection agrees, without revealing anything for inactive tokens.
    let introspector = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "i" }),
    );
    let _ = introspector;
    let active = latchd.post(
        "/v1/introspect",
        &admin,
        json!({ "token": local.body["token"] }),
    );
    assert_eq!(active.body["active"], true);
    assert_eq!(active.body["token_id"], local.body["id"]);
    let inactive = latchd.post("/v1/introspect", &admin, json!({ "token": token }));
    assert_eq!(inactive.body, json!({ "active": false }));
}

#[test]
fn no_secret_appears_in_latchds_logs() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    let mut secrets = vec![admin.clone()];
    let (account, token_id, token) = account_with_token(&latchd, &admin, "quiet", "auditor", None);
    secrets.push(token.clone());
    let rotated = latchd.post(&format!("/v1/tokens/{token_id}/rotate"), &admin, json!({}));
    secrets.push(rotated.body["token"].as_str().unwrap().to_owned());
    let again = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "x", "ttl": "1d" }),
    );
    secrets.push(again.body["token"].as_str().unwrap().to_owned());
    latchd.post("/v1/introspect", &admin, json!({ "token": secrets[2] }));
    latchd.get("/v1/tokens/self", &format!("{}x", secrets[3]));
    latchd.stop();
    let logs = latchd.logs();
    assert!(
        logs.contains("admin.token"),
        "bootstrap says where the token is:\n{logs}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "a log that is not a terminal carries no escape codes:\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a token secret leaked into the logs"
        );
        assert!(
            !logs.contains(&secret[6..38]),
            "part of a token secret leaked into the logs"
        );
    }
    // Nor in the event log.
    let store_files = walk(&latchd.data_dir.join("log"));
    for file in store_files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for secret in &secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "a token secret is stored in {}",
                file.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_admin_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let latchd = Latchd::start();
    let mode = std::fs::metadata(latchd.data_dir.join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_refused_request_leaves_the_keep_alive_connection_usable() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    // Refused on the headers alone: no token; a malformed Idempotency-Key.
    for (extra_headers, expected) in [
        (String::new(), 401),
        (
            format!("Authorization: Bearer {admin}\r\nIdempotency-Key: a b\r\n"),
            400,
        ),
    ] {
        assert_eq!(
            refused_then_reused(&latchd, &extra_headers),
            (expected, 200)
        );
    }
}

/// Sends a POST whose body follows its headers a moment later (as clients
/// that write them separately do), then a second request on the same
/// connection; returns both statuses.
fn refused_then_reused(latchd: &Latchd, extra_headers: &str) -> (u16, u16) {
    use std::io::{BufRead, BufReader, Read, Write};
    let address = latchd.url.trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut read_response = || -> u16 {
        let mut status_line = String::new();
        if reader.read_line(&mut status_line).unwrap_or(0) == 0 {
            return 0;
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        status
    };
    let body = r#"{"name":"x","role":"auditor"}"#;
    write!(
        writer,
        "POST /v1/accounts HTTP/1.1\r\nHost: {address}\r\n{extra_headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let _ = writer.write_all(body.as_bytes());
    let first = read_response();
    let second = match write!(writer, "GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n") {
        Ok(()) => read_response(),
        Err(_) => 0,
    };
    (first, second)
}

/// Found by schemathesis (issue 17): a stale `If-Match` was answered before
/// the command was decided, so a caller without the permission learnt the
/// target's version (412 "is at version N"), and an invalid body got 412
/// instead of its error. Now the decision comes first.
#[test]
fn if_match_tells_nothing_to_a_caller_who_may_not_act() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (ops, _, weak) = account_with_token(&latchd, &admin, "ops-bot", "auditor", None);
    let head = latchd.head();
    let stale = [("If-Match", "\"0\""), ("Content-Type", "application/json")];
    for (token, body, status) in [
        (&weak, json!({ "reason": "x" }), 403),
        (&admin, json!({ "reason": "" }), 422),
    ] {
        let reply = latchd.raw(
            "POST",
            &format!("/v1/accounts/{ops}/disable"),
            Some(token),
            &stale,
            body.to_string().into_bytes(),
        );
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert!(
            !reply.body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("version"),
            "{:?}",
            reply.body
        );
    }
    // A body that is not an object (serde would read a struct from an
    // array) is refused as such.
    let reply = latchd.raw(
        "PATCH",
        &format!("/v1/accounts/{ops}"),
        Some(&admin),
        &stale,
        b"[null, null]".to_vec(),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(latchd.head(), head, "nothing appended");
}
