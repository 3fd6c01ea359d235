//! The OpenAPI 3.1 document, generated from the handlers' annotations as
//! `routes` registers them and served at `GET /v1/openapi.json` without
//! authentication. `ApiDoc` holds what is not a route's: the title, the
//! tags, the bearer scheme.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::openapi_contract;
use crate::api::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latch",
        description = "The authority for service accounts and API tokens. Every change is an event in a hash-chained log. \
                       Errors are RFC 9457 problem+json. POSTs honour Idempotency-Key."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Service accounts"),
        (name = "tokens", description = "API tokens"),
        (name = "roles", description = "Named permission sets"),
        (name = "policy", description = "Token lifetime and rotation policy"),
        (name = "events", description = "The event log"),
        (name = "audit", description = "API activity, the hash chain, exports and investigations"),
        (name = "operations", description = "Health, readiness, metrics, backups"),
        (name = "webhooks", description = "Notifications: events delivered to URLs, signed"),
        (name = "leaks", description = "Leak reports: from scanners, GitHub secret scanning and GitLab's token revocation API"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // GitLab's token revocation API presents a pre-shared token, not a
        // Latch token.
        components.add_security_scheme(
            "gitlab_revocation",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document latchd serves: generated from the annotations, then
/// completed with what they cannot say (`openapi_contract`).
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: LazyLock<serde_json::Value> = LazyLock::new(|| {
        let mut document =
            serde_json::to_value(routes::all().into_openapi()).unwrap_or_default();
        openapi_contract::complete(&mut document);
        document
    });
    &DOCUMENT
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(document())
}
