//! latchd's HTTP API. Where to look:
//!
//! - `routes/`: one file per resource; each handler's `#[utoipa::path]`
//!   both serves and documents it, and `routes/mod.rs` lists them (the one
//!   place to add a route).
//! - `layers/`: what runs around every request, outermost first: the
//!   request id, authentication before the body is read (`read_body`),
//!   HTTP metrics, and on `/v1` routes the gate that refuses unauthenticated
//!   requests and records every request (`authenticate_and_audit`).
//! - `extractors/`: what a handler takes from a request: the `Caller`, a
//!   JSON body, the command headers, an `Acting` caller submitting a command.
//! - `problem.rs`: every error, as RFC 9457 problem+json; `openapi.rs`: the
//!   document served at `/v1/openapi.json`.

mod app_state;
pub(crate) mod console;
mod extractors;
mod issued_secrets;
mod layers;
mod ndjson;
mod openapi;
mod openapi_contract;
mod problem;
mod prometheus_text;
mod request_limits;
mod routes;
mod whole_number;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;

pub use app_state::AppState;
pub use console::SessionSettings as ConsoleSessionSettings;
pub use latch_audit::ActivityRecord;
pub use layers::failure_limiter::{FailureBudget, Rate, RateError, SourceKey};
pub use openapi::{ApiDoc, document as openapi_document};
pub use problem::Problem;
pub use request_limits::RequestLimits;

/// Marks a request that came over NATS (latchd's command service), not a
/// socket: its activity record says `nats` where an address would be.
#[derive(Debug, Clone, Copy)]
pub struct NatsTransport;

/// latchd's router: every route of `routes`, inside the layers.
pub fn router(app: AppState) -> Router {
    let (authenticated, _) = routes::authenticated()
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            layers::authenticate_and_audit::layer,
        ))
        .split_for_parts();
    let (public, _) = routes::public().split_for_parts();
    authenticated
        .merge(public)
        .merge(console::router(app.clone()))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            layers::http_metrics::layer,
        ))
        .fallback(|| async { Problem::not_found("no such route; see GET /v1/openapi.json") })
        .layer(DefaultBodyLimit::max(extractors::json_body::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            layers::read_body::layer,
        ))
        .layer(middleware::from_fn(layers::request_id::layer))
        .with_state(app)
}
