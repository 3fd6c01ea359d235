//! Token lifecycle under policy, through the real `latch` and `latchd`
//! binaries: policy limits, address binding, last use, and a pipeline that
//! rotates its own token.

use std::time::{Duration, Instant};

use latch_e2e::{Latchd, account_with_token, binary, ok, stderr};
use serde_json::{Value, json};

/// Runs `latch` expecting a policy rejection: exit 7 (422), a message naming
/// the policy and its value, and nothing appended.
#[track_caller]
fn refused(latchd: &Latchd, admin: &str, args: &[&str], says: &[&str]) {
    let head = latchd.head();
    let output = latchd.latch(Some(admin), args);
    assert_eq!(
        output.status.code(),
        Some(7),
        "exit code for a policy violation; stderr: {}",
        stderr(&output)
    );
    let message = stderr(&output);
    for words in says {
        assert!(
            message.contains(words),
            "the message names {words:?}: {message}"
        );
    }
    assert_eq!(latchd.head(), head, "a refused command appends nothing");
}

#[test]
fn each_policy_limit_refuses_with_a_clear_message_and_writes_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    ok(latchd.latch(
        Some(&admin),
        &[
            "role",
            "set",
            "cert-operator",
            "--permission",
            "certificates:issue",
        ],
    ));
    ok(latchd.latch(
        Some(&admin),
        &["account", "create", "ci", "--role", "cert-operator"],
    ));

    // Every token expires unless policy says otherwise.
    refused(
        &latchd,
        &admin,
        &["token", "issue", "ci", "--name", "t", "--ttl", "never"],
        &["require_expiry is true", "by default"],
    );
    ok(latchd.latch(
        Some(&admin),
        &["policy", "set", "--require-expiry", "false"],
    ));
    let forever: Value = serde_json::from_str(&ok(latchd.latch(
        Some(&admin),
        &[
            "token", "issue", "ci", "--name", "forever", "--ttl", "never", "--output", "json",
        ],
    )))
    .unwrap();
    assert_eq!(
        forever["expires_at"],
        Value::Null,
        "a token that never expires"
    );

    // `latch role set --max-ttl` sets the role's override.
    ok(latchd.latch(
        Some(&admin),
        &[
            "role",
            "set",
            "cert-operator",
            "--max-ttl",
            "30d",
            "--default-ttl",
            "7d",
        ],
    ));
    refused(
        &latchd,
        &admin,
        &["token", "issue", "ci", "--name", "t", "--ttl", "31d"],
        &[
            "ttl 31d is longer than allowed",
            "max_ttl is 30d",
            "for role cert-operator",
        ],
    );
    refused(
        &latchd,
        &admin,
        &["token", "issue", "ci", "--name", "t", "--ttl", "never"],
        &["max_ttl is 30d"],
    );
    ok(latchd.latch(
        Some(&admin),
        &["token", "issue", "ci", "--name", "month", "--ttl", "30d"],
    ));

    // A second flag on the role keeps the first.
    ok(latchd.latch(
        Some(&admin),
        &[
            "role",
            "set",
            "cert-operator",
            "--max-tokens-per-account",
            "2",
        ],
    ));
    let policy: Value = serde_json::from_str(&ok(
        latchd.latch(Some(&admin), &["policy", "show", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(policy["roles"]["cert-operator"]["max_ttl"], "30d");
    assert_eq!(
        policy["effective"]["cert-operator"]["max_tokens_per_account"],
        2
    );
    refused(
        &latchd,
        &admin,
        &["token", "issue", "ci", "--name", "third"],
        &[
            "max_tokens_per_account is 2",
            "for role cert-operator",
            "already holds 2 live token(s)",
        ],
    );

    // Bad policy input is refused too.
    let bad = latchd.latch(
        Some(&admin),
        &["policy", "set", "--max-ttl", "1d", "--default-ttl", "2d"],
    );
    assert_eq!(bad.status.code(), Some(7), "{}", stderr(&bad));
    let shown = ok(latchd.latch(Some(&admin), &["policy", "show"]));
    assert!(
        shown.contains("MAX_TOKENS") && shown.contains("REQUIRE_EXPIRY"),
        "{shown}"
    );
}

/// Issues `account` a token bound to `cidrs`; its secret.
fn bound_token(latchd: &Latchd, admin: &str, account: &str, cidrs: Value) -> String {
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        admin,
        json!({ "name": "bound", "allowed_cidrs": cidrs }),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    issued.body["token"].as_str().unwrap().to_owned()
}

#[test]
fn tokens_bound_to_addresses_work_only_from_them_at_latchd_ipv4() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, _) = account_with_token(&latchd, &admin, "bound", "auditor", None);
    let issue = |cidrs: Value| bound_token(&latchd, &admin, &account, cidrs);
    let loopback = issue(json!(["127.0.0.0/8"]));
    let elsewhere = issue(json!(["10.0.0.0/8", "2001:db8::/32"]));
    assert_eq!(latchd.get("/v1/tokens/self", &loopback).status, 200);
    let denied = latchd.get("/v1/tokens/self", &elsewhere);
    assert_eq!(denied.status, 401);
    assert!(
        denied.body["detail"]
            .as_str()
            .unwrap()
            .contains("source address"),
        "{:?}",
        denied.body
    );
    let bad = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({ "name": "b", "allowed_cidrs": ["10.0.0.300/8"] }),
    );
    assert_eq!(bad.status, 422, "{:?}", bad.body);
}

#[test]
fn tokens_bound_to_addresses_work_only_from_them_at_latchd_ipv6() {
    let latchd = Latchd::start_ipv6();
    let admin = latchd.admin_token();
    let (account, _, _) = account_with_token(&latchd, &admin, "bound", "auditor", None);
    let issue = |cidrs: Value| bound_token(&latchd, &admin, &account, cidrs);
    assert_eq!(
        latchd
            .get("/v1/tokens/self", &issue(json!(["::1/128"])))
            .status,
        200
    );
    assert_eq!(
        latchd
            .get("/v1/tokens/self", &issue(json!(["2001:db8::/32"])))
            .status,
        401
    );
    assert_eq!(
        latchd
            .get("/v1/tokens/self", &issue(json!(["127.0.0.0/8"])))
            .status,
        401,
        "an IPv4 range does not admit ::1"
    );
}

#[test]
fn last_use_at_latchd_and_at_a_verifier_shows_in_token_show_and_stale_tokens_are_found() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, token_id, token) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let (_, idle_id, _) = account_with_token(&latchd, &admin, "idle", "auditor", None);
    let show = |id: &str| -> Value {
        serde_json::from_str(&ok(
            latchd.latch(Some(&admin), &["token", "show", id, "--output", "json"])
        ))
        .unwrap()
    };
    assert_eq!(
        show(&token_id)["last_used_at"],
        Value::Null,
        "never used yet"
    );

    // A use at latchd itself.
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 200);
    let at_latchd = show(&token_id);
    assert_eq!(at_latchd["last_used_from"], "127.0.0.1");
    let first = at_latchd["last_used_at"].as_str().expect("used").to_owned();

    // Uses at a verifier, reported over NATS within seconds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nats_url = latchd.nats().url();
    let _verifier = runtime.block_on(async {
        let mut config =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats_url));
        config.usage_report_every = Some(Duration::from_millis(500));
        config.name = "certificate-service/test".into();
        let verifier = latch_verify::Verifier::connect(config).await.unwrap();
        let read = latch_verify::Permission::parse("accounts:read").unwrap();
        for _ in 0..3 {
            verifier
                .verify_from(&token, &read, "10.1.2.3".parse().unwrap())
                .unwrap();
        }
        verifier
    });
    let started = Instant::now();
    loop {
        let shown = show(&token_id);
        if shown["last_used_from"] == "10.1.2.3" {
            assert!(shown["last_used_at"].as_str().unwrap() > first.as_str());
            assert_eq!(
                shown["use_count"], 4,
                "one use at latchd, three at the verifier"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the verifier's report never arrived: {shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The verifier's report is in the audit trail beside the API requests.
    let audit = latchd.get(&format!("/v1/audit?token={token_id}"), &admin);
    let reports: Vec<&Value> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "VERIFY")
        .collect();
    assert_eq!(reports.len(), 1, "{:?}", audit.body);
    assert_eq!(reports[0]["path"], "certificate-service/test");
    assert_eq!(reports[0]["verifier_uses"], 3);
    assert_eq!(reports[0]["remote_addr"], "10.1.2.3");

    // Stale tokens: live, issued before the span and not used within it.
    let stale = |account: &str, since: &str| -> Vec<String> {
        let listed: Value = serde_json::from_str(&ok(latchd.latch(
            Some(&admin),
            &[
                "token",
                "list",
                account,
                "--unused-since",
                since,
                "--output",
                "json",
            ],
        )))
        .unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        stale("idle", "1d").is_empty(),
        "a token issued today is not stale for a day"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        stale("idle", "1s"),
        vec![idle_id],
        "never used, issued over a second ago"
    );
    assert!(stale("ci", "30d").is_empty());
    let bad = latchd.latch(
        Some(&admin),
        &["token", "list", "ci", "--unused-since", "soon"],
    );
    assert_eq!(bad.status.code(), Some(7), "{}", stderr(&bad));
}

#[test]
fn a_pipeline_rotates_its_own_token_with_latch_alone_and_keeps_working() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, old_id, old) = account_with_token(&latchd, &admin, "pipeline", "auditor", None);
    let bin_dir = binary("latch").parent().unwrap().to_owned();
    // What a scheduled CI job would run, with its token in LATCH_TOKEN.
    let script = r#"
set -euo pipefail
NEW=$(latch token rotate --self --grace 1h --output raw)
export LATCH_TOKEN="$NEW"
latch token show self --output json
"#;
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("LATCH_URL", &latchd.url)
        .env("LATCH_TOKEN", &old)
        .env_remove("LATCH_TOKEN_FILE")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("script failed: {}", stderr(&output)));
    assert_eq!(
        shown["rotated_from"],
        old_id.as_str(),
        "the new token shows where it came from"
    );
    assert_eq!(shown["status"], "active");
    // The old token keeps working through the grace period.
    assert_eq!(latchd.get("/v1/tokens/self", &old).status, 200);
    let old_shown = latchd.get(&format!("/v1/tokens/{old_id}"), &admin);
    assert_eq!(old_shown.body["rotated_to"], shown["id"]);
    // Rotating the old token again is a clear conflict.
    let again = latchd.latch(Some(&old), &["token", "rotate", "--self"]);
    assert_eq!(again.status.code(), Some(6), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already rotated"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_retried_self_rotation_with_the_same_idempotency_key_returns_the_same_token_once() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, old) = account_with_token(&latchd, &admin, "pipeline", "auditor", None);
    let rotate = || {
        latchd.latch(
            Some(&old),
            &[
                "token",
                "rotate",
                "--self",
                "--idempotency-key",
                "nightly-2026-11-28",
                "--output",
                "raw",
            ],
        )
    };
    let first = ok(rotate());
    let head = latchd.head();
    let retried = ok(rotate());
    assert_eq!(
        retried, first,
        "the retry returns the token the first call made"
    );
    assert_eq!(latchd.head(), head, "and appends nothing");
    assert_eq!(latchd.get("/v1/tokens/self", first.trim()).status, 200);
}
