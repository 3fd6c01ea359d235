//! Reads every request body (at most `MAX_BODY_BYTES`) before routing.
//!
//! A response sent while the client is still sending its body makes hyper
//! drop the keep-alive connection, and a client that reuses it sees the peer
//! disconnect. Reading bodies first means no refusal (401, 404, a bad
//! header…) can race the body. An announced oversize body is refused from
//! its `Content-Length` alone, so a client that sent
//! `Expect: 100-continue` never has to send it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::json_body::{MAX_BODY_BYTES, too_large};

pub async fn layer(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES) {
        return closing(too_large().into_response());
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => closing(too_large().into_response()),
    }
}

/// The rest of the body was not read: the connection cannot be reused.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
