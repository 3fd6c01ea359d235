//! The OpenAPI document covers every route latchd serves, and nothing else.

use latchd::api::{ApiDoc, served_routes};
use utoipa::OpenApi;

#[test]
fn every_served_route_is_documented() {
    let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
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
