//! The console session's cookie and CSRF header, as requests carry them.
//!
//! The cookie is `HttpOnly` (no script reads it, so an injected script
//! could not carry it away), `SameSite=Strict` (no other site's page sends
//! it), `Path=/` (the console calls `/v1`). When latchd serves HTTPS (or is
//! told it is behind a proxy that does, `--console-secure-cookie`) it is
//! also `Secure` and named `__Host-latch_console`: a browser then accepts
//! it only from this exact origin over HTTPS, so a page on a sibling
//! subdomain cannot plant one of its own. A request carrying two session
//! cookies (one planted beside ours) is refused. Its value is only a
//! session id: never the token.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "latch_console";
/// The cookie's name when it is `Secure`.
pub const SECURE_COOKIE: &str = "__Host-latch_console";
/// The header every API request of a console session carries.
pub const CSRF_HEADER: &str = "x-latch-csrf";

/// What a request's `Cookie` headers say of the console session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCookie<'a> {
    None,
    One(&'a str),
    /// Two or more session cookies: one was planted beside ours.
    Several,
}

/// The name of the session cookie (`secure`: `Secure` and `__Host-`).
pub fn name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// The session id a request's `Cookie` headers carry under `name`.
pub fn session_id<'a>(headers: &'a HeaderMap, name: &str) -> SessionCookie<'a> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.trim());
    match (found.next(), found.next()) {
        (None, _) => SessionCookie::None,
        (Some(_), Some(_)) => SessionCookie::Several,
        (Some(value), None) if value.is_empty() || value.len() > 128 => SessionCookie::None,
        (Some(value), None) => SessionCookie::One(value),
    }
}

/// The request's `X-Latch-Csrf` header, if it is text.
pub fn csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// `Set-Cookie` opening a session that lasts at most `max_age_seconds`.
pub fn set(id: &str, max_age_seconds: u64, secure: bool) -> HeaderValue {
    let (name, secure) = (name(secure), if secure { "; Secure" } else { "" });
    HeaderValue::from_str(&format!(
        "{name}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("a session id is URL-safe base64")
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear(secure: bool) -> HeaderValue {
    let (name, secure) = (name(secure), if secure { "; Secure" } else { "" });
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; latch_consoleX=no"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2;  latch_console=abc ; c=3"));
        assert_eq!(session_id(&headers, COOKIE), SessionCookie::One("abc"));
        // Over HTTPS only the __Host- cookie counts.
        assert_eq!(session_id(&headers, SECURE_COOKIE), SessionCookie::None);
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("latch_console="));
        assert_eq!(session_id(&empty, COOKIE), SessionCookie::None);
        assert_eq!(session_id(&HeaderMap::new(), COOKIE), SessionCookie::None);
    }

    #[test]
    fn a_planted_second_session_cookie_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("latch_console=planted; latch_console=ours"));
        assert_eq!(session_id(&headers, COOKIE), SessionCookie::Several);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let cookie = set("abc", 60, true);
        let text = cookie.to_str().unwrap();
        for attribute in ["__Host-latch_console=abc", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60", "Secure"] {
            assert!(text.contains(attribute), "{text}");
        }
        let plain = set("abc", 60, false);
        assert!(plain.to_str().unwrap().starts_with("latch_console=abc"));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        assert!(clear(false).to_str().unwrap().contains("Max-Age=0"));
    }
}
