//! A policy that sets only `max_ttl` below the built-in 90-day `default_ttl`
//! is valid: the default nobody set is capped at the maximum. An explicit
//! `default_ttl` above `max_ttl` is still refused.

use latch_e2e::{ok, stderr, stdout, Latchd};
use serde_json::json;

#[test]
fn the_documented_role_max_ttl_command_runs() {
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
            "--permission",
            "certificates:read",
        ],
    ));
    // As docs/api.md writes it.
    let documented = "latch role set cert-operator --max-ttl 30d";
    assert!(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
            .unwrap()
            .replace('\n', " ")
            .contains("latch role set <role> --max-ttl 30d"),
        "docs/api.md documents `{documented}`"
    );
    let words: Vec<&str> = documented.split_whitespace().skip(1).collect();
    let output = latchd.latch(Some(&admin), &words);
    assert!(
        output.status.success(),
        "{documented} exits {:?}: {}{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    let policy = latchd.get("/v1/policy", &admin);
    assert_eq!(policy.status, 200, "{:?}", policy.body);
    assert_eq!(policy.body["roles"]["cert-operator"]["max_ttl"], "30d", "{}", policy.body);
    assert_eq!(
        policy.body["roles"]["cert-operator"]["default_ttl"],
        serde_json::Value::Null,
        "{}",
        policy.body
    );
    let effective = &policy.body["effective"]["cert-operator"];
    assert_eq!(effective["default_ttl"], "30d", "{}", policy.body);

    // A token issued without ttl lives the capped default: 30 days.
    let account = latchd.post(
        "/v1/accounts",
        &admin,
        json!({ "name": "pipeline", "role": "cert-operator" }),
    );
    assert_eq!(account.status, 201, "{:?}", account.body);
    let id = account.body["id"].as_str().unwrap();
    let issued = latchd.post(
        &format!("/v1/accounts/{id}/tokens"),
        &admin,
        json!({ "name": "ci" }),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
}

#[test]
fn a_global_max_ttl_alone_is_accepted_and_an_explicit_default_above_it_is_not() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let set = latchd.call("PUT", "/v1/policy", Some(&admin), Some(&json!({ "max_ttl": "1h" })));
    assert_eq!(set.status, 200, "{:?}", set.body);
    let head = latchd.head();
    let refused = latchd.call(
        "PUT",
        "/v1/policy",
        Some(&admin),
        Some(&json!({ "max_ttl": "1h", "default_ttl": "2h" })),
    );
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("default_ttl 2h exceeds max_ttl 1h"),
        "{:?}",
        refused.body
    );
    assert_eq!(latchd.head(), head, "a refused policy appends nothing");
}
