//! Bad input gets a clear 4xx problem+json and changes nothing.

use latch_e2e::Latchd;
use serde_json::json;

#[test]
fn bad_input_is_a_clear_problem_and_appends_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let created = latchd.post(
        "/v1/accounts",
        &admin,
        json!({ "name": "existing", "role": "auditor" }),
    );
    let account = created.body["id"].as_str().unwrap().to_owned();
    let head = latchd.head();
    let tokens = format!("/v1/accounts/{account}/tokens");

    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/accounts".into(),
            b"{\"name\": \"x\",".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"x","role":"auditor","colour":"red"}"#.to_vec(),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":42,"role":"auditor"}"#.to_vec(),
            400,
            "invalid type",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":"t","ttl":"10 years"}"#.to_vec(),
            422,
            "duration",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":"t","ttl":"0s"}"#.to_vec(),
            422,
            "duration",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":"t","allowed_cidrs":["10.0.0.0/33"]}"#.to_vec(),
            422,
            "CIDR",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":"t","scopes":["not a permission"]}"#.to_vec(),
            422,
            "scopes",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":"t","scopes":["accounts:write"]}"#.to_vec(),
            422,
            "beyond",
        ),
        (
            "POST",
            tokens.clone(),
            br#"{"name":""}"#.to_vec(),
            422,
            "name",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"x","role":"wizard"}"#.to_vec(),
            422,
            "role wizard",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"","role":"auditor"}"#.to_vec(),
            422,
            "account name",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"Bad Name!","role":"auditor"}"#.to_vec(),
            422,
            "account name",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"existing","role":"auditor"}"#.to_vec(),
            409,
            "already exists",
        ),
        (
            "PUT",
            "/v1/policy".into(),
            br#"{"max_ttl":"forever"}"#.to_vec(),
            422,
            "max_ttl",
        ),
        (
            "PUT",
            "/v1/roles/admin".into(),
            br#"{"permissions":["x:y"]}"#.to_vec(),
            422,
            "built in",
        ),
        (
            "GET",
            "/v1/events?type=token.exploded".into(),
            Vec::new(),
            400,
            "unknown event type",
        ),
        (
            "GET",
            "/v1/audit?token=not-a-token".into(),
            Vec::new(),
            400,
            "token: not an id",
        ),
        (
            "GET",
            "/v1/audit?account=existing".into(),
            Vec::new(),
            400,
            "account: not an id",
        ),
        (
            "GET",
            "/v1/accounts/not-a-uuid".into(),
            Vec::new(),
            404,
            "UUID",
        ),
        (
            "POST",
            "/v1/accounts".into(),
            br#"{"name":"x","role":"auditor"}"#.to_vec(),
            400,
            "Idempotency-Key",
        ),
    ];
    for (index, (method, path, body, status, detail)) in cases.into_iter().enumerate() {
        let headers: &[(&str, &str)] = if detail == "Idempotency-Key" {
            &[("Idempotency-Key", "has spaces in it")]
        } else {
            &[]
        };
        let reply = latchd.raw(method, &path, Some(&admin), headers, body);
        assert_eq!(
            reply.status, status,
            "case {index} ({detail}): {:?}",
            reply.body
        );
        assert_eq!(
            reply.content_type, "application/problem+json",
            "case {index}"
        );
        let text = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            text.contains(detail),
            "case {index}: detail {text:?} should mention {detail:?}"
        );
        assert!(
            reply.body["request_id"].as_str().is_some(),
            "case {index}: problem carries the request id"
        );
    }
    // A 10 MB body is refused before it is read.
    let large = latchd.announce_large_body("/v1/accounts", &admin, 10 * 1024 * 1024);
    assert_eq!(large.status, 413, "{:?}", large.body);
    assert_eq!(large.content_type, "application/problem+json");
    assert!(
        large.body["detail"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    assert_eq!(latchd.head(), head, "no bad request appended anything");
}

#[test]
fn unknown_routes_are_404_problems() {
    let latchd = Latchd::start();
    let reply = latchd.get("/v1/nope", &latchd.admin_token());
    assert_eq!(reply.status, 404);
    assert_eq!(reply.content_type, "application/problem+json");
}

#[test]
fn operations_endpoints_answer() {
    let latchd = Latchd::start();
    assert_eq!(latchd.call("GET", "/healthz", None, None).status, 200);
    assert_eq!(latchd.call("GET", "/readyz", None, None).status, 200);
    latchd.get("/v1/accounts", &latchd.admin_token());
    let metrics = latchd.call("GET", "/metrics", None, None);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            "latch_http_requests_total{method=\"GET\",route=\"/v1/accounts\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("latch_log_position"));
    assert!(text.contains("latch_commands_total{outcome=\"accepted\"}"));
    assert!(text.contains("latch_relay_lag_events"), "{text}");
    let pending: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("latch_scheduler_pending_notes "))
        .and_then(|value| value.parse().ok())
        .expect("the scheduler's gauge");
    assert!(
        pending >= 2,
        "at least the admin token's expiry warning and expiry are pending: {text}"
    );
    // The relay publishes to latchd's own broker and catches up.
    let started = std::time::Instant::now();
    loop {
        let ready = latchd.call("GET", "/readyz", None, None);
        let body = ready.body.as_str().unwrap_or_default().to_owned();
        if body.contains("relay_connected=true") && body.contains("relay_lag=0") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "relay never caught up: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let openapi = latchd.call("GET", "/v1/openapi.json", None, None);
    assert_eq!(openapi.status, 200);
    assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3.1"));
}
