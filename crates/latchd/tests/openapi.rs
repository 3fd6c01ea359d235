//! The OpenAPI document covers every route latchd serves, and nothing else,
//! and says what every operation answers (tests/openapi_contract.rs holds
//! it to a live latchd).

use latchd::api::openapi_document;
use serde_json::Value;

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation));
        }
    }
    all
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn ask(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, allow, String::from_utf8_lossy(&body).into_owned())
}

/// Routes are written once (`api/routes/mod.rs`, one `routes!` per path),
/// so the document and the router come from the same annotations. This
/// holds the result to latchd's real router: every documented operation
/// reaches a handler, and on every documented path the router serves
/// exactly the documented methods (a `routes!` that mixed two paths, or a
/// method routed by hand, would serve one undocumented).
#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else_on_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let node = latchd::Node::start(latchd::NodeConfig::new(dir.path()))
        .await
        .unwrap();
    let admin = std::fs::read_to_string(node.admin_token_file()).unwrap();
    let admin = admin.trim();
    let router = latchd::api::router(node.app().clone());
    let document = openapi_document();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "the document lists latchd's routes");
    for (path, item) in paths {
        let uri = concrete(path);
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for method in &documented {
            let operation = &item[method.to_lowercase()];
            assert!(
                !operation["responses"].as_object().unwrap().is_empty(),
                "{method} {path} documents no responses"
            );
            // Without a token: a served `/v1` route answers 401, a public one
            // itself; only an unserved one reaches the fallback (or 405).
            let (status, _, body) = ask(&router, method, &uri, None).await;
            assert!(
                !(status == 404 && body.contains("no such route")) && status != 405,
                "{method} {path} is documented but not served ({status} {body})"
            );
        }
        // As admin, past authentication: the router's own 405 lists what it
        // serves on the path.
        let (status, allow, _) = ask(&router, "TRACE", &uri, Some(admin)).await;
        assert_eq!(status, 405, "TRACE {path}");
        let mut served: Vec<String> = allow
            .split(',')
            .map(|m| m.trim().to_owned())
            // axum answers HEAD wherever it serves GET.
            .filter(|m| !m.is_empty() && (m != "HEAD" || !allow.contains("GET")))
            .collect();
        served.sort();
        documented.sort();
        assert_eq!(
            served, documented,
            "{path}: the methods served (Allow) are not the methods documented"
        );
    }
    let (status, _, body) = ask(&router, "GET", "/v1/not-a-route", Some(admin)).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        document["components"]["schemas"]["Problem"].is_object(),
        "errors are documented"
    );
}

/// The one place routes are added registers each through its annotation:
/// a route added with axum's own `route`/`nest` would be served without
/// being documented, and nothing else could notice.
#[test]
fn routes_are_added_only_through_their_annotations() {
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    for file in ["mod.rs", "routes/mod.rs"] {
        let text = std::fs::read_to_string(api.join(file)).unwrap();
        for by_hand in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !text.contains(by_hand),
                "src/api/{file} adds a route by hand ({by_hand}…): list its handler in a routes!(…) instead"
            );
        }
    }
}

/// Every NATS command (`latch.cmd.*`) is a documented HTTP route: the
/// command service runs it through the same router.
#[test]
fn every_nats_command_is_a_documented_route() {
    let document = openapi_document();
    for route in latch_bus::COMMAND_ROUTES {
        assert!(
            document["paths"][route.path][route.method.to_lowercase()].is_object(),
            "{} ({} {}) is not a documented route",
            route.subject(),
            route.method,
            route.path
        );
    }
}

#[test]
fn every_error_is_problem_json_and_the_common_ones_are_listed() {
    let document = openapi_document();
    for (method, path, operation) in operations(document) {
        let what = format!("{} {path}", method.to_uppercase());
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what} {status} has no description"
            );
            assert!(
                response.get("content").is_none_or(Value::is_object),
                "{what} {status}: content must be an object when present"
            );
        }
        if operation.get("security").is_none() {
            continue;
        }
        let mut expected = vec!["401", "403", "429"];
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        let has_query = operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        if has_query || method == "post" {
            expected.push("400");
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{what} does not list {status}"
            );
        }
        for (status, response) in responses {
            if status.as_str() < "400" {
                continue;
            }
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{what} {status} has no content"));
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/problem+json"],
                "{what} {status}"
            );
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{what} {status}"
            );
        }
        for (status, response) in responses {
            if let Some(ndjson) = response["content"].get("application/x-ndjson") {
                assert!(
                    ndjson["itemSchema"].is_object(),
                    "{what} {status}: NDJSON without the schema of its lines"
                );
            }
        }
    }
}

#[test]
fn parameters_are_where_and_as_required_as_latchd_reads_them() {
    let document = openapi_document();
    let parameter = |method: &str, path: &str, name: &str| -> Value {
        document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    };
    for (method, path, name, location, required) in [
        ("get", "/v1/audit/who-can", "permission", "query", true),
        ("get", "/v1/audit/who-can", "at", "query", false),
        ("get", "/v1/audit/state", "at", "query", false),
        ("get", "/v1/events", "after", "query", false),
        ("get", "/v1/accounts", "status", "query", false),
        ("put", "/v1/policy", "role", "query", false),
        ("get", "/v1/accounts/{id}", "id", "path", true),
    ] {
        let p = parameter(method, path, name);
        assert_eq!(p["in"], location, "{method} {path} {name}");
        assert_eq!(
            p["required"].as_bool().unwrap_or(false),
            required,
            "{method} {path} {name}"
        );
    }
    // Every path parameter is in the path template; every query one is not.
    for (method, path, operation) in operations(document) {
        for p in operation["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            let in_template = path.contains(&format!("{{{name}}}"));
            assert_eq!(p["in"] == "path", in_template, "{method} {path} {name}");
        }
    }
    let builtin = parameter("put", "/v1/roles/{name}", "name");
    assert_eq!(
        builtin["schema"]["not"]["enum"],
        serde_json::json!(["admin", "auditor", "verifier"])
    );
    let body = |method: &str, path: &str| {
        document["paths"][path][method]["requestBody"]["required"].clone()
    };
    assert_eq!(body("put", "/v1/policy"), true);
    assert_eq!(body("post", "/v1/accounts"), true);
    assert_eq!(body("post", "/v1/tokens/{id}/revoke"), false);
    let schema = |name: &str, property: &str| {
        document["components"]["schemas"][name]["properties"][property].clone()
    };
    assert!(schema("DisableAccount", "reason")["pattern"].is_string());
    assert!(schema("CreateAccount", "name")["pattern"].is_string());
    assert!(
        schema("IssueToken", "ttl")["pattern"]
            .as_str()
            .unwrap()
            .contains("never")
    );
    assert!(schema("DefineRole", "permissions")["items"]["pattern"].is_string());
}
