//! A body is acted on only when it is declared as JSON: anything else is
//! 415 problem+json and appends nothing. `PUT /v1/policy` without a body is
//! refused, not read as an empty policy.

use latch_e2e::Latchd;
use serde_json::json;

#[test]
fn a_body_not_declared_as_json_is_415_and_appends_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let head = latchd.head();
    let body = br#"{"name":"plain","role":"auditor"}"#.to_vec();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
        "multipart/form-data; boundary=x",
    ] {
        let reply = latchd.raw(
            "POST",
            "/v1/accounts",
            Some(&admin),
            &[("Content-Type", content_type)],
            body.clone(),
        );
        assert_eq!(reply.status, 415, "{content_type}: {:?}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json", "{content_type}");
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(content_type) && detail.contains("application/json"),
            "{content_type}: {detail}"
        );
        assert!(reply.body["request_id"].is_string());
    }
    assert_eq!(latchd.head(), head, "no refused body appended anything");
    let listed = latchd.get("/v1/accounts", &admin);
    assert!(
        !listed.body.to_string().contains("\"plain\""),
        "{:?}",
        listed.body
    );

    // JSON with parameters, and +json types, are JSON.
    for (name, content_type) in [
        ("charset", "application/json; charset=utf-8"),
        ("plus-json", "application/vnd.latch+json"),
    ] {
        let reply = latchd.raw(
            "POST",
            "/v1/accounts",
            Some(&admin),
            &[("Content-Type", content_type)],
            serde_json::to_vec(&json!({ "name": name, "role": "auditor" })).unwrap(),
        );
        assert_eq!(reply.status, 201, "{content_type}: {:?}", reply.body);
    }
}

#[test]
fn put_policy_without_a_body_is_refused() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let set = latchd.call(
        "PUT",
        "/v1/policy",
        Some(&admin),
        Some(&json!({ "max_ttl": "30d" })),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let head = latchd.head();
    let missing = latchd.raw("PUT", "/v1/policy", Some(&admin), &[], Vec::new());
    assert_eq!(missing.status, 400, "{:?}", missing.body);
    assert_eq!(missing.content_type, "application/problem+json");
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("needs a body"),
        "{:?}",
        missing.body
    );
    assert_eq!(latchd.head(), head, "nothing appended");
    let policy = latchd.get("/v1/policy", &admin);
    assert_eq!(policy.body["global"]["max_ttl"], "30d", "{}", policy.body);
}
