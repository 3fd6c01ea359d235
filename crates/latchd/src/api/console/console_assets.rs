//! The console's files, embedded in latchd at build time (no Node
//! toolchain, nothing to install beside the binary), and the headers every
//! one of them is served with.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Scripts and styles from latchd only (no inline script or style, no
/// `eval`), requests to latchd only, no framing, no forms posting anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/ui/`, media type and text.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    text: &'static str,
}

macro_rules! assets {
    ($($name:literal => $media_type:literal),+ $(,)?) => {
        const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            media_type: $media_type,
            text: include_str!(concat!("../../../console/", $name)),
        }),+];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "js/console.js" => "text/javascript; charset=utf-8",
    "js/api.js" => "text/javascript; charset=utf-8",
    "js/dom.js" => "text/javascript; charset=utf-8",
    "js/format.js" => "text/javascript; charset=utf-8",
    "js/dialogs.js" => "text/javascript; charset=utf-8",
    "js/pages/sign_in.js" => "text/javascript; charset=utf-8",
    "js/pages/accounts.js" => "text/javascript; charset=utf-8",
    "js/pages/account.js" => "text/javascript; charset=utf-8",
    "js/pages/token_story.js" => "text/javascript; charset=utf-8",
    "js/pages/roles.js" => "text/javascript; charset=utf-8",
    "js/pages/who_can.js" => "text/javascript; charset=utf-8",
    "js/pages/attention.js" => "text/javascript; charset=utf-8",
    "js/pages/events.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}

/// `GET /ui` and `GET /ui/`: the console's page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{*file}`: a script, style or image.
pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return crate::api::problem::Problem::not_found(format!(
            "the console has no file {name:?}"
        ))
        .into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    // Small files, always revalidated, so an upgraded latchd serves its
    // own; the page itself never stored, so no back/forward cache brings
    // back a token's secret shown once.
    let cache = if asset.name == "index.html" { "no-store" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    security_headers(&mut headers);
    (StatusCode::OK, headers, asset.text).into_response()
}

/// What every console response carries.
pub fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_script_writes_markup_evaluates_text_or_stores_anything() {
        // Every value is put in the page as text (textContent), never
        // parsed as markup; nothing is kept in the browser's storage.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "localStorage",
                "sessionStorage",
                "indexedDB",
                "document.cookie",
                "setAttribute('style'",
                "setAttribute(\"style\"",
            ] {
                assert!(
                    !asset.text.contains(forbidden),
                    "{} uses {forbidden}",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = ASSETS.iter().find(|a| a.name == "index.html").unwrap().text;
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains("style="), "inline style attribute");
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "no event handler attributes");
    }
}
