//! Every route latchd serves, each written once: its handler's
//! `#[utoipa::path]` both routes it and documents it (utoipa-axum's
//! `routes!`), so the OpenAPI document cannot miss a route or list one that
//! is not served. To add a route, write the handler with its annotation in
//! its resource's file and list it below, in one `routes!` per path (the
//! handlers of one `routes!` share their path).

mod accounts;
mod all_tokens;
mod audit;
mod backup;
mod events;
mod introspection;
mod investigations;
pub(crate) mod leaks;
mod operations;
mod policy;
mod roles;
mod snapshot;
pub(crate) mod token_exchange;
mod tokens;
mod trust_policies;
mod webhooks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::app_state::AppState;
use crate::api::openapi::{self, ApiDoc};

/// The routes that need a token (`/v1`, but the document itself).
pub fn authenticated() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::show, accounts::update, accounts::delete))
        .routes(routes!(accounts::disable))
        .routes(routes!(accounts::enable))
        .routes(routes!(tokens::issue, tokens::list))
        .routes(routes!(all_tokens::list_all))
        .routes(routes!(tokens::show))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::rotate))
        .routes(routes!(tokens::rotate_self))
        .routes(routes!(trust_policies::add_trust_policy, trust_policies::list_trust_policies))
        .routes(routes!(trust_policies::remove_trust_policy))
        .routes(routes!(introspection::introspect))
        .routes(routes!(roles::list))
        .routes(routes!(roles::define, roles::delete))
        .routes(routes!(policy::show, policy::set))
        .routes(routes!(events::list))
        .routes(routes!(snapshot::snapshot))
        .routes(routes!(audit::list))
        .routes(routes!(audit::chain))
        .routes(routes!(audit::export))
        .routes(routes!(investigations::state))
        .routes(routes!(investigations::who_can))
        .routes(routes!(investigations::token_story))
        .routes(routes!(backup::create))
        .routes(routes!(leaks::report_leaks))
        .routes(routes!(webhooks::add_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::remove_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::redeliver))
}

/// The routes anyone may call: the document, health, readiness, metrics.
pub fn public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(operations::healthz))
        .routes(routes!(operations::readyz))
        .routes(routes!(operations::metrics))
        .routes(routes!(token_exchange::token_exchange))
        .routes(routes!(leaks::github_report))
        .routes(routes!(leaks::gitlab_token_types))
        .routes(routes!(leaks::gitlab_revoke))
}

/// Every route, authenticated and public, with the document they make.
pub fn all() -> OpenApiRouter<AppState> {
    authenticated().merge(public())
}
