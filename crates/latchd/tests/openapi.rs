//! The OpenAPI document covers every route latchd serves, and nothing else,
//! and says what every operation answers (tests/openapi_contract.rs holds
//! it to a live latchd).

use latchd::api::{openapi_document, served_routes};
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

#[test]
fn every_served_route_is_documented() {
    let document = openapi_document();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    let served = served_routes();
    for (method, path) in &served {
        let operation = paths.get(*path).and_then(|p| p.get(*method));
        assert!(
            operation.is_some(),
            "{} {path} is served but missing from the OpenAPI document",
            method.to_uppercase()
        );
        let responses = operation.unwrap()["responses"].as_object().unwrap();
        assert!(
            !responses.is_empty(),
            "{method} {path} documents no responses"
        );
    }
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            assert!(
                served.iter().any(|(m, p)| m == method && p == path),
                "{} {path} is documented but not served",
                method.to_uppercase()
            );
        }
    }
    assert!(
        document["components"]["schemas"]["Problem"].is_object(),
        "errors are documented"
    );
}

#[test]
fn every_error_is_problem_json_and_the_common_ones_are_listed() {
    let document = openapi_document();
    for (method, path, operation) in operations(document) {
        let what = format!("{} {path}", method.to_uppercase());
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            assert!(
                response["description"].as_str().is_some_and(|d| !d.is_empty()),
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
            assert!(responses.contains_key(status), "{what} does not list {status}");
        }
        for (status, response) in responses {
            if status.as_str() < "400" {
                continue;
            }
            let content = response["content"].as_object().unwrap_or_else(|| {
                panic!("{what} {status} has no content")
            });
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
    let body = |method: &str, path: &str| document["paths"][path][method]["requestBody"]["required"].clone();
    assert_eq!(body("put", "/v1/policy"), true);
    assert_eq!(body("post", "/v1/accounts"), true);
    assert_eq!(body("post", "/v1/tokens/{id}/revoke"), false);
    let schema = |name: &str, property: &str| {
        document["components"]["schemas"][name]["properties"][property].clone()
    };
    assert!(schema("DisableAccount", "reason")["pattern"].is_string());
    assert!(schema("CreateAccount", "name")["pattern"].is_string());
    assert!(schema("IssueToken", "ttl")["pattern"].as_str().unwrap().contains("never"));
    assert!(schema("DefineRole", "permissions")["items"]["pattern"].is_string());
}
