//! What the commands send: a JSON body of the fields given, and a POST
//! that a retry may repeat safely (`--idempotency-key`).

use serde_json::{Map, Value};

use crate::client::{CliError, Client, Headers};

/// A JSON object of the pairs that have a value: a flag left out is a
/// field left out.
pub fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    Value::Object(map)
}

/// POSTs `body` to `path`, with the `Idempotency-Key` when one is given.
pub fn post(
    client: &Client,
    path: &str,
    body: Value,
    idempotency_key: Option<String>,
) -> Result<Value, CliError> {
    client.send(
        "POST",
        path,
        Some(&body),
        &Headers {
            idempotency_key,
            if_match: None,
        },
    )
}
