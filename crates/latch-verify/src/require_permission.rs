//! `RequirePermission`: a tower layer for axum services (feature `axum`).
//! Requests without a valid `Authorization: Bearer` token get 401, tokens
//! without the permission 403, a stale verifier 503 — each as RFC 9457
//! problem+json, like latchd. Accepted requests carry the `Verified`
//! principal in their extensions.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_core::{Permission, Rejection};
use tower::{Layer, Service};

use crate::denial::Denial;
use crate::verifier::Verifier;

/// Lets a request through only with a token that holds `permission`,
/// checked by `verifier` (`Verifier::verify_from` the request's peer
/// address: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
#[derive(Clone)]
pub struct RequirePermission {
    verifier: Verifier,
    permission: Permission,
}

impl RequirePermission {
    pub fn new(verifier: Verifier, permission: Permission) -> Self {
        Self {
            verifier,
            permission,
        }
    }
}

impl<S> Layer<S> for RequirePermission {
    type Service = RequirePermissionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequirePermissionService {
            inner,
            verifier: self.verifier.clone(),
            permission: self.permission.clone(),
        }
    }
}

/// The service `RequirePermission` wraps around an inner service.
#[derive(Clone)]
pub struct RequirePermissionService<S> {
    inner: S,
    verifier: Verifier,
    permission: Permission,
}

impl<S> Service<Request> for RequirePermissionService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let source = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let outcome = match (token, source) {
            (None, _) => Err(problem(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing Authorization: Bearer <token>".into(),
            )),
            (Some(token), Some(ip)) => self
                .verifier
                .verify_from(token, &self.permission, ip)
                .map_err(|d| self.denied(d)),
            // No connect info (the service was not served with
            // `into_make_service_with_connect_info::<SocketAddr>()`): fail
            // closed for tokens bound to addresses. 0.0.0.0 stands for
            // "unknown": it is never a peer's address, so only a token
            // that allows every address (or 0.0.0.0/8) accepts it, and
            // usage reports it as no address.
            (Some(token), None) => self
                .verifier
                .verify_from(token, &self.permission, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                .map_err(|d| match d {
                    Denial::Rejected(Rejection::SourceNotAllowed) => problem(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "this token may only be used from certain addresses, and this service \
                         does not know the request's source address (serve it with \
                         into_make_service_with_connect_info::<SocketAddr>())"
                            .into(),
                    ),
                    other => self.denied(other),
                }),
        };
        match outcome {
            Ok(verified) => {
                request.extensions_mut().insert(verified);
                Box::pin(self.inner.call(request))
            }
            Err(response) => Box::pin(async move { Ok(response) }),
        }
    }
}

impl<S> RequirePermissionService<S> {
    fn denied(&self, denial: Denial) -> Response {
        match denial {
            Denial::Stale => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "verifier-stale",
                denial.to_string(),
            ),
            Denial::Rejected(rejection) => problem(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                rejection.to_string(),
            ),
            Denial::MissingPermission => forbidden(&self.permission),
        }
    }
}

fn problem_body(status: StatusCode, slug: &str, detail: String) -> serde_json::Value {
    serde_json::json!({
        "type": format!("urn:latch:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    })
}

fn problem(status: StatusCode, slug: &str, detail: String) -> Response {
    respond(status, problem_body(status, slug, detail))
}

fn forbidden(permission: &Permission) -> Response {
    let status = StatusCode::FORBIDDEN;
    let mut body = problem_body(
        status,
        "forbidden",
        format!("missing permission {permission}"),
    );
    body["missing_permission"] = permission.to_string().into();
    respond(status, body)
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"latch\", error=\"invalid_token\""),
        );
    }
    response
}
