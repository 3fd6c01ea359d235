//! The web console at `/ui` (ADR 0024): a page and its scripts, embedded in
//! latchd, that call the same `/v1` API with the same authorization, and
//! the sign-in sessions they call it with.
//!
//! - `session_book.rs`: sessions in memory (idle and absolute expiry).
//! - `session_cookie.rs`: the cookie and CSRF header a session rides on.
//! - `session_routes.rs`: `/ui/session` (sign in, resume, sign out).
//! - `console_assets.rs`: the embedded files and their security headers.

mod console_assets;
mod session_book;
pub(crate) mod session_cookie;
mod session_routes;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::api::app_state::AppState;

pub use session_book::{ActiveSession, CsrfCheck, SessionBook, SessionSettings};
pub use session_cookie::SessionCookie;

/// `/ui`, `/ui/…` files and `/ui/session`. Signing in and out run inside
/// the `/v1` gate (`authenticate_and_audit`): authenticated, limited and
/// recorded as any API request.
pub fn router(app: AppState) -> Router<AppState> {
    let gated = axum::routing::post(session_routes::sign_in)
        .delete(session_routes::sign_out)
        .layer(middleware::from_fn_with_state(
            app,
            crate::api::layers::authenticate_and_audit::layer,
        ));
    Router::new()
        .route("/ui", get(console_assets::index))
        .route("/ui/", get(console_assets::index))
        .route(
            session_routes::PATH,
            gated.merge(get(session_routes::resume)),
        )
        .route("/ui/{*file}", get(console_assets::file))
}
