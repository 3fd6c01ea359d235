//! The OpenAPI document latchd serves is held to what latchd does: every
//! authenticated operation answers 401 problem+json without a token, every
//! body that is not declared as JSON is 415, every required body is refused
//! when missing, and each of those answers is documented, as
//! problem+json, for that operation. None of it appends anything.

use latch_e2e::Latchd;
use serde_json::Value;

/// A path with its parameters filled in, and required query parameters added.
fn concrete(path: &str, operation: &Value) -> String {
    let mut url = path
        .replace("{id}", "01a232bd-0000-7000-8000-000000000000")
        .replace("{name}", "probe-role");
    let required: Vec<String> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| match p["name"].as_str().unwrap() {
            "permission" => "permission=certificates:issue".to_owned(),
            other => panic!("{path}: no sample value for the required query parameter {other}"),
        })
        .collect();
    if !required.is_empty() {
        url = format!("{url}?{}", required.join("&"));
    }
    url
}

#[track_caller]
fn documented_problem(operation: &Value, what: &str, status: u16) {
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{what} answers {status} but the document does not list it"
    );
    assert!(
        response["content"]["application/problem+json"]["schema"]["$ref"]
            == "#/components/schemas/Problem",
        "{what} {status} is served as problem+json but documented as {:?}",
        response["content"]
    );
}

#[test]
fn the_served_document_says_what_latchd_answers() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let reply = latchd.call("GET", "/v1/openapi.json", None, None);
    assert_eq!(reply.status, 200);
    let document = reply.body;
    let head = latchd.head();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_none() {
                continue;
            }
            let verb = method.to_uppercase();
            let what = format!("{verb} {path}");
            let url = concrete(path, operation);

            let anonymous = latchd.raw(&verb, &url, None, &[], Vec::new());
            assert_eq!(anonymous.status, 401, "{what} without a token: {:?}", anonymous.body);
            assert_eq!(anonymous.content_type, "application/problem+json", "{what}");
            documented_problem(operation, &what, 401);

            // GitLab's token revocation API takes GitLab's pre-shared
            // token, not a Latch token (tests/leak_reports.rs checks it
            // with one).
            let latch_token = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|s| s.get("bearer").is_some()));
            let Some(body) = operation.get("requestBody").filter(|_| latch_token) else {
                checked += 1;
                continue;
            };
            let plain = latchd.raw(
                &verb,
                &url,
                Some(&admin),
                &[("Content-Type", "text/plain")],
                b"{}".to_vec(),
            );
            assert_eq!(plain.status, 415, "{what} with text/plain: {:?}", plain.body);
            assert_eq!(plain.content_type, "application/problem+json", "{what}");
            documented_problem(operation, &what, 415);

            if body["required"] == true {
                let missing = latchd.raw(&verb, &url, Some(&admin), &[], Vec::new());
                assert!(
                    [400, 422].contains(&missing.status),
                    "{what} documents a required body but answers {} without one: {:?}",
                    missing.status,
                    missing.body
                );
                assert_eq!(missing.content_type, "application/problem+json", "{what}");
                documented_problem(operation, &what, missing.status);
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations checked");
    assert_eq!(latchd.head(), head, "no refused request appended anything");
}

#[test]
fn who_can_without_its_required_permission_is_400_as_documented() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let document = latchd.call("GET", "/v1/openapi.json", None, None).body;
    let operation = &document["paths"]["/v1/audit/who-can"]["get"];
    let missing = latchd.get("/v1/audit/who-can", &admin);
    assert_eq!(missing.status, 400, "{:?}", missing.body);
    documented_problem(operation, "GET /v1/audit/who-can", 400);
}

#[test]
fn values_of_the_documented_shapes_are_accepted() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let created = latchd.post(
        "/v1/accounts",
        &admin,
        serde_json::json!({ "name": "0.shape_check-1", "role": "auditor", "description": "" }),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let issued = latchd.post(
        &format!("/v1/accounts/{id}/tokens"),
        &admin,
        serde_json::json!({
            "name": "x",
            "ttl": "0001d",
            "scopes": ["*:read"],
            "allowed_cidrs": ["0.0.0.0/0", "10.1.2.3/8", "255.255.255.255/32", "::/0",
                              "fe80::1/64", "2001:db8::/32", "1:2:3:4:5:6:7:8/128", "::1/128"]
        }),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
}
