//! `GET /v1/snapshot`: the compact view verifiers check tokens against, for
//! them to start from, so they read only the stream's tail. Needs `events:read` (the `verifier`
//! role has it); it holds nothing `/v1/events` does not already show.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use latch_core::api_permission;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
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
    caller.require(&api_permission::EVENTS_READ)?;
    let commands = app.commands.clone();
    let signer = app.signer.get().cloned();
    let (bytes, position, signed) = tokio::task::spawn_blocking(move || {
        let (bytes, position) = {
            let view = commands.verifier_view();
            (latch_bus::verifier_snapshot::encode(&view), view.position())
        };
        // Signed over the log, the position, its chain hash and the bytes:
        // a verifier that trusts latchd's key starts from nothing else.
        let signed = match (signer, commands.store().log_id()) {
            (Some(keyring), Some(log)) => {
                let hash = commands
                    .store()
                    .hash_at(position)?
                    .map_or([0; 32], |h| *h.as_bytes());
                let signature = keyring.for_position(position).sign(
                    &latch_bus::feed_signing::snapshot_message(log, position, &hash, &bytes),
                );
                Some((log, hash, signature))
            }
            _ => None,
        };
        Ok::<_, latch_store::StoreError>((bytes, position, signed))
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
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
    if let Some((log, hash, signature)) = signed {
        for (name, value) in [
            (latch_bus::headers::LATCH_LOG_ID, log.to_string()),
            (latch_bus::headers::LATCH_HASH, hex::encode(hash)),
            (latch_bus::headers::LATCH_SIGNATURE, signature),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).expect("ASCII"));
        }
    }
    Ok(response)
}
