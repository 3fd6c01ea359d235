//! `GET /v1/snapshot`: the compact view verifiers check tokens against, for
//! them to start from, so they read only the stream's tail. Needs `events:read` (the `verifier`
//! role has it); it holds nothing `/v1/events` does not already show.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use latch_core::api_permission;

use crate::api::app_state::AppState;
use crate::api::caller::Caller;
use crate::api::problem::Problem;

/// The verifier view at the position in `Latch-Position`, encoded as
/// `latch_bus::verifier_snapshot` describes.
#[utoipa::path(get, path = "/v1/snapshot", tag = "events",
    responses((status = 200, description = "application/vnd.latch.snapshot: the postcard-encoded verifier view", content_type = "application/vnd.latch.snapshot"),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn snapshot(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    caller.require(api_permission::EVENTS_READ)?;
    let commands = app.commands.clone();
    let (bytes, position) = tokio::task::spawn_blocking(move || {
        let view = commands.verifier_view();
        (latch_bus::verifier_snapshot::encode(&view), view.position())
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?;
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(latch_bus::verifier_snapshot::CONTENT_TYPE),
    );
    headers.insert(
        latch_bus::headers::LATCH_POSITION,
        HeaderValue::from_str(&position.to_string()).expect("digits"),
    );
    Ok(response)
}
