//! latchd's HTTP API: routes, authentication, activity audit, errors.

mod account_routes;
mod activity;
mod app_state;
mod audit_routes;
mod authentication;
mod backup_route;
mod body_buffer;
mod caller;
mod command_headers;
mod event_routes;
mod failure_limiter;
mod http_metrics;
mod introspection;
mod investigation_routes;
mod issued_secrets;
mod json_body;
mod json_media_type;
mod ndjson;
mod openapi;
mod openapi_contract;
mod operations;
mod policy_routes;
mod problem;
mod request_id;
mod request_limits;
mod role_routes;
mod snapshot_route;
mod submit;
mod token_routes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

pub use app_state::AppState;
pub use failure_limiter::{FailureBudget, Rate, RateError, SourceKey};
pub use latch_audit::ActivityRecord;
pub use openapi::{ApiDoc, document as openapi_document};
pub use problem::Problem;
pub use request_limits::RequestLimits;

/// Marks a request that came over NATS (latchd's command service), not a
/// socket: its activity record says `nats` where an address would be.
#[derive(Debug, Clone, Copy)]
pub struct NatsTransport;

/// Builds the router while recording every route it serves, so a test can
/// hold the OpenAPI document to the routes that really exist.
struct RouteTable {
    router: Router<AppState>,
    routes: Vec<(&'static str, &'static str)>,
}

impl RouteTable {
    fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, handler);
        self.routes.push((method, path));
        self
    }
}

fn authenticated_routes() -> RouteTable {
    RouteTable::new()
        .add("post", "/v1/accounts", post(account_routes::create))
        .add("get", "/v1/accounts", get(account_routes::list))
        .add("get", "/v1/accounts/{id}", get(account_routes::show))
        .add("patch", "/v1/accounts/{id}", patch(account_routes::update))
        .add(
            "delete",
            "/v1/accounts/{id}",
            delete(account_routes::delete),
        )
        .add(
            "post",
            "/v1/accounts/{id}/disable",
            post(account_routes::disable),
        )
        .add(
            "post",
            "/v1/accounts/{id}/enable",
            post(account_routes::enable),
        )
        .add(
            "post",
            "/v1/accounts/{id}/tokens",
            post(token_routes::issue),
        )
        .add("get", "/v1/accounts/{id}/tokens", get(token_routes::list))
        .add("get", "/v1/tokens/{id}", get(token_routes::show))
        .add("post", "/v1/tokens/{id}/revoke", post(token_routes::revoke))
        .add("post", "/v1/tokens/{id}/rotate", post(token_routes::rotate))
        .add(
            "post",
            "/v1/tokens/self/rotate",
            post(token_routes::rotate_self),
        )
        .add("post", "/v1/introspect", post(introspection::introspect))
        .add("get", "/v1/roles", get(role_routes::list))
        .add("put", "/v1/roles/{name}", put(role_routes::define))
        .add("delete", "/v1/roles/{name}", delete(role_routes::delete))
        .add("get", "/v1/policy", get(policy_routes::show))
        .add("put", "/v1/policy", put(policy_routes::set))
        .add("get", "/v1/events", get(event_routes::list))
        .add("get", "/v1/snapshot", get(snapshot_route::snapshot))
        .add("get", "/v1/audit", get(audit_routes::list))
        .add("get", "/v1/audit/chain", get(audit_routes::chain))
        .add("get", "/v1/audit/export", get(audit_routes::export))
        .add("get", "/v1/audit/state", get(investigation_routes::state))
        .add(
            "get",
            "/v1/audit/who-can",
            get(investigation_routes::who_can),
        )
        .add(
            "get",
            "/v1/audit/tokens/{id}",
            get(investigation_routes::token_story),
        )
        .add("post", "/v1/backup", post(backup_route::create))
}

fn public_routes() -> RouteTable {
    RouteTable::new()
        .add("get", "/v1/openapi.json", get(openapi::openapi_json))
        .add("get", "/healthz", get(operations::healthz))
        .add("get", "/readyz", get(operations::readyz))
        .add("get", "/metrics", get(operations::metrics))
}

/// Every `(method, path template)` latchd serves.
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    let mut routes = authenticated_routes().routes;
    routes.extend(public_routes().routes);
    routes
}

pub fn router(app: AppState) -> Router {
    let authenticated = authenticated_routes()
        .router
        .route_layer(middleware::from_fn_with_state(app.clone(), activity::layer));
    authenticated
        .merge(public_routes().router)
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            http_metrics::layer,
        ))
        .fallback(|| async { Problem::not_found("no such route; see GET /v1/openapi.json") })
        .layer(DefaultBodyLimit::max(json_body::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            body_buffer::layer,
        ))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(app)
}
