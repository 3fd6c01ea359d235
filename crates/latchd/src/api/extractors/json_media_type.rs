//! A request body is read as JSON only when its `Content-Type` says it is
//! JSON: `application/json` or a `+json` type (`application/merge-patch+json`),
//! parameters such as `charset` allowed. Anything else is 415, so a body a
//! client meant as something else is never acted on.

use axum::http::{HeaderMap, StatusCode, header};

use crate::api::problem::Problem;

/// Whether the headers declare a JSON body.
pub fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", "json")) => true,
        Some(("application", subtype)) => {
            subtype.len() > "+json".len() && subtype.ends_with("+json")
        }
        _ => false,
    }
}

/// 415, naming what was sent and what is accepted.
pub fn unsupported(headers: &HeaderMap) -> Problem {
    let sent = match headers.get(header::CONTENT_TYPE) {
        Some(value) => format!(
            "Content-Type {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ),
        None => "no Content-Type".to_owned(),
    };
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!("the request body has {sent}; send it as Content-Type: application/json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn json_and_plus_json_are_json() {
        for accepted in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(declares_json(&with(accepted)), "{accepted}");
        }
        for refused in [
            "text/plain",
            "text/json",
            "application/+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert!(!declares_json(&with(refused)), "{refused}");
        }
        assert!(!declares_json(&HeaderMap::new()));
    }
}
