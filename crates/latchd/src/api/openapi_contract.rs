//! What the handlers' annotations do not say by themselves, added to the
//! generated OpenAPI document so that it describes what latchd really does
//! (a fuzzer or a generated client trusts every word of it):
//!
//! - every error of an authenticated operation is `application/problem+json`
//!   with the `Problem` schema, and each operation lists the errors the
//!   layers in front of every handler can answer: 401 (no or bad token), 403,
//!   429 (a source that failed too often), and for a body 400, 408, 413, 415
//!   and 422;
//! - a request body is required where an empty body is refused;
//! - names, durations, permissions, reasons and ids carry the patterns and
//!   lengths latch-core enforces (built-in role names where they are
//!   refused);
//! - NDJSON responses say that the schema is the one of each line.

use serde_json::{Map, Value, json};

/// `^…$` patterns latch-core's parsers accept (see `AccountName::parse`,
/// `RoleName::parse`, `Permission::parse`, `Span::parse`).
pub const ACCOUNT_NAME: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
pub const ROLE_NAME: &str = "^[a-z][a-z0-9_-]{0,63}$";
pub const PERMISSION: &str =
    "^(\\*|(\\*|[a-z0-9][a-z0-9._-]{0,63}):(\\*|[a-z0-9][a-z0-9._-]{0,63}))$";
/// Up to 9999 of a unit: always within latch-core's 100-year bound.
pub const DURATION: &str = "^0*[1-9][0-9]{0,3}[smhd]$";
pub const TTL: &str = "^(never|0*[1-9][0-9]{0,3}[smhd])$";
/// `If-Match`: a version as `ETag` gives it (`"3"`, or weak `W/"3"`).
pub const IF_MATCH: &str = "^(W/)?\"?[0-9]{1,19}\"?$";
/// `Idempotency-Key`: 1-255 visible ASCII characters.
pub const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";
/// An IPv4 or IPv6 network as `ipnet` parses it (address bits beyond the
/// prefix allowed; IPv4-embedded IPv6 forms left out).
pub const CIDR: &str = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}/(3[0-2]|[12]?[0-9])|(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$";
/// A required free text: not blank.
pub const NOT_BLANK: &str = "\\S";
pub const BUILT_IN_ROLES: [&str; 3] = ["admin", "auditor", "verifier"];
const MAX_TEXT: u64 = latch_core::MAX_TEXT as u64;

/// Completes the generated document in place.
pub fn complete(document: &mut Value) {
    constrain_schemas(document);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            complete_operation(path, method, operation);
        }
    }
    let required = required_bodies(document);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for (method, operation) in item.as_object_mut().into_iter().flatten() {
                if let Some(body) = operation.get_mut("requestBody") {
                    let key = format!("{} {path}", method.to_uppercase());
                    body["required"] = Value::Bool(required.contains(&key));
                }
            }
        }
    }
}

fn problem_content() -> Value {
    json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } })
}

fn complete_operation(path: &str, method: &str, operation: &mut Value) {
    // A token exchange carries its credential in the body, and a GitHub
    // report is authenticated by its signature: they answer as an
    // authenticated operation does.
    let authenticated = operation.get("security").is_some()
        || path == crate::api::routes::token_exchange::PATH
        || path == crate::api::routes::leaks::GITHUB_PATH;
    let has_body = operation.get("requestBody").is_some();
    let has_query = operation["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let has_parameters = operation["parameters"]
        .as_array()
        .is_some_and(|ps| !ps.is_empty());
    let conditional = operation["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"));
    constrain_parameters(path, method, operation);
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut errors: Vec<u16> = Vec::new();
    if authenticated {
        errors.extend([401, 403, 429]);
        if method == "post" {
            // A malformed Idempotency-Key.
            errors.push(400);
        }
    }
    if has_query {
        errors.push(400);
    }
    if authenticated && conditional {
        errors.push(412);
    }
    if authenticated && has_parameters {
        // A malformed header or query is 400; a well-formed value latchd
        // refuses (a role name, a position past the head) 422.
        errors.extend([400, 422]);
    }
    if has_body {
        errors.extend([400, 408, 413, 415, 422]);
    }
    for status in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let code: u16 = status.parse().unwrap_or(0);
        if response["description"].as_str().is_none_or(str::is_empty) {
            response["description"] = Value::String(describe(code).to_owned());
        }
        if authenticated && code >= 400 {
            response["content"] = problem_content();
        }
        if let Some(ndjson) = response
            .get_mut("content")
            .and_then(|content| content.get_mut("application/x-ndjson"))
        {
            let schema = ndjson.get("schema").cloned();
            if let Some(schema) = schema {
                ndjson["itemSchema"] = schema;
            }
            response["description"] = Value::String(
                "NDJSON: one JSON object per line, each matching the schema".to_owned(),
            );
        }
    }
}

fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Malformed request: JSON, unknown fields, wrong types, query or header",
        401 => "No valid token",
        403 => "The token lacks the permission the problem names",
        404 => "No such resource",
        408 => "The request body did not arrive in time",
        409 => "Conflicts with the current state",
        412 => "If-Match does not match the current version",
        413 => "The request body is larger than 64 KiB",
        415 => "The request body is not declared as JSON (application/json or +json)",
        422 => "Breaks a rule: name, duration, permission, CIDR, scopes beyond the role, policy",
        429 => "Too many failed requests from this source; see Retry-After",
        500 => "Internal error",
        503 => "Not ready",
        _ => "See the problem's detail",
    }
}

fn string_with(pattern: &str, max_length: Option<u64>) -> Value {
    let mut schema = json!({ "type": "string", "pattern": pattern });
    if let Some(max) = max_length {
        schema["maxLength"] = json!(max);
    }
    schema
}

fn constrain_parameters(path: &str, method: &str, operation: &mut Value) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let schema = match (path, name.as_str()) {
            (_, "id") if path != "/v1/roles/{name}" => Some(json!({ "type": "string", "format": "uuid" })),
            ("/v1/roles/{name}", "name") => {
                let mut schema = string_with(ROLE_NAME, None);
                if method == "put" || method == "delete" {
                    schema["not"] = json!({ "enum": BUILT_IN_ROLES });
                    schema["description"] =
                        json!("A custom role: the built-in roles cannot be changed or deleted.");
                }
                Some(schema)
            }
            ("/v1/audit/who-can", "permission") => Some(string_with(PERMISSION, None)),
            ("/v1/audit/who-can" | "/v1/audit/state", "at") => Some(json!({
                "anyOf": [
                    { "type": "string", "format": "date-time" },
                    { "type": "string", "pattern": "^[1-9][0-9]{0,18}$" }
                ]
            })),
            ("/v1/policy", "role") => Some(string_with(ROLE_NAME, None)),
            (_, "If-Match") => Some(string_with(IF_MATCH, None)),
            (_, "Idempotency-Key") => Some(string_with(IDEMPOTENCY_KEY, None)),
            ("/v1/events", "account" | "actor") => Some(json!({
                "anyOf": [
                    { "type": "string", "format": "uuid" },
                    { "type": "string", "pattern": ACCOUNT_NAME }
                ]
            })),
            ("/v1/accounts/{id}/tokens", "unused_since") => Some(string_with(DURATION, None)),
            ("/v1/audit", "status") => {
                Some(json!({ "type": "integer", "minimum": 0, "maximum": u16::MAX }))
            }
            ("/v1/audit" | "/v1/events", "limit") | ("/v1/events", "after" | "to") => {
                Some(json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }))
            }
            ("/v1/audit", "after") => Some(json!({ "type": "string", "format": "uuid" })),
            ("/v1/events", "token" | "actor_token") => {
                Some(json!({ "type": "string", "format": "uuid" }))
            }
            ("/v1/accounts", "role") => Some(string_with(ROLE_NAME, None)),
            ("/v1/accounts", "status") => {
                Some(json!({ "type": "string", "enum": ["active", "disabled", "deleted"] }))
            }
            _ => None,
        };
        if let Some(schema) = schema {
            parameter["schema"] = schema;
        }
    }
}

/// `(component, property, schema)`: each constraint latch-core enforces.
fn property_constraints() -> Vec<(&'static str, &'static str, Value)> {
    let text = json!({ "maxLength": MAX_TEXT });
    let duration = string_with(DURATION, None);
    let role_permissions =
        json!({ "type": "array", "items": string_with(PERMISSION, None), "minItems": 1 });
    vec![
        ("CreateAccount", "name", string_with(ACCOUNT_NAME, None)),
        ("CreateAccount", "role", string_with(ROLE_NAME, None)),
        ("CreateAccount", "description", text.clone()),
        ("UpdateAccount", "role", string_with(ROLE_NAME, None)),
        ("UpdateAccount", "description", text.clone()),
        ("DisableAccount", "reason", string_with(NOT_BLANK, Some(MAX_TEXT))),
        ("IssueToken", "name", string_with(NOT_BLANK, Some(MAX_TEXT))),
        ("IssueToken", "scopes", role_permissions.clone()),
        ("IssueToken", "ttl", string_with(TTL, None)),
        (
            "IssueToken",
            "allowed_cidrs",
            json!({ "type": "array", "items": string_with(CIDR, None) }),
        ),
        ("RevokeToken", "reason", text.clone()),
        ("RotateToken", "grace", duration.clone()),
        ("DefineRole", "permissions", role_permissions),
        ("DefineRole", "description", text),
        ("PolicyLayer", "max_ttl", duration.clone()),
        ("PolicyLayer", "default_ttl", duration.clone()),
        ("PolicyLayer", "rotation_period", duration.clone()),
        ("PolicyLayer", "expiry_warning", duration.clone()),
        ("PolicyLayer", "rotation_grace", duration),
        ("BackupRequest", "to", string_with("^/", None)),
        (
            "TokenExchangeRequest",
            "grant_type",
            json!({ "type": "string", "enum": [crate::api::routes::token_exchange::GRANT_TYPE] }),
        ),
        (
            "TokenExchangeRequest",
            "subject_token_type",
            json!({ "type": "string", "enum": [
                crate::api::routes::token_exchange::ACCESS_TOKEN_TYPE,
                crate::api::routes::token_exchange::JWT_TOKEN_TYPE,
                crate::api::routes::token_exchange::ID_TOKEN_TYPE,
            ] }),
        ),
        (
            "TokenExchangeRequest",
            "requested_token_type",
            json!({ "type": "string", "enum": [crate::api::routes::token_exchange::ACCESS_TOKEN_TYPE] }),
        ),
        ("TokenExchangeRequest", "ttl", string_with(DURATION, None)),
        ("TokenExchangeRequest", "name", string_with(NOT_BLANK, Some(MAX_TEXT))),
        (
            "TokenExchangeRequest",
            "scope",
            string_with(
                "^(\\*|(\\*|[a-z0-9][a-z0-9._-]{0,63}):(\\*|[a-z0-9][a-z0-9._-]{0,63}))( (\\*|(\\*|[a-z0-9][a-z0-9._-]{0,63}):(\\*|[a-z0-9][a-z0-9._-]{0,63})))*$",
                None,
            ),
        ),
        ("AddTrustPolicy", "max_ttl", string_with(DURATION, None)),
        ("AddTrustPolicy", "audience", string_with(NOT_BLANK, Some(512))),
        (
            "AddTrustPolicy",
            "scopes",
            json!({ "type": "array", "items": string_with(PERMISSION, None), "minItems": 1 }),
        ),
        (
            "IntrospectRequest",
            "source_ip",
            json!({ "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }] }),
        ),
        (
            "PolicyLayer",
            "max_tokens_per_account",
            json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
        ),
    ]
}

fn constrain_schemas(document: &mut Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (component, property, constraint) in property_constraints() {
        let Some(target) = schemas
            .get_mut(component)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        merge(target, &constraint);
    }
}

/// Adds `constraint`'s keywords to a property schema, keeping `null`
/// allowed where the property was nullable.
fn merge(target: &mut Map<String, Value>, constraint: &Value) {
    let nullable = target
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t == "null"));
    for (key, value) in constraint.as_object().into_iter().flatten() {
        if key == "type" && nullable {
            let mut types = vec![value.clone()];
            types.push(json!("null"));
            target.insert(key.clone(), Value::Array(types));
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// `"METHOD path"` of each operation whose body is required: its schema
/// has required properties (an empty body reads as `{}`, which then fails),
/// or the route refuses a missing body (`PUT /v1/policy`).
fn required_bodies(document: &Value) -> Vec<String> {
    let mut required = vec!["PUT /v1/policy".to_owned()];
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let Some(reference) = operation
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
            else {
                continue;
            };
            let name = reference.rsplit('/').next().unwrap_or_default();
            let has_required = document["components"]["schemas"][name]["required"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            if has_required {
                required.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    required
}
