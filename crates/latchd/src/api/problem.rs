//! RFC 9457 problem details: every error latchd's API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_core::{DomainError, RejectionKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::command_outcome::{CommandRejection, HandlerFailure};

/// `application/problem+json`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:latch:problem:forbidden`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for a human; never contains a token secret.
    pub detail: String,
    /// For 403: the permission the caller lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For 307 from an HA standby: the leader's URL for this request (the
    /// `Location` header).
    #[serde(skip)]
    pub location: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:latch:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            missing_permission: None,
            request_id: None,
            location: None,
        }
    }

    /// An HA standby's answer to a write: the leader at `location` decides
    /// it (307 keeps the method and body).
    pub fn at_leader(location: String) -> Self {
        let mut problem = Self::new(
            StatusCode::TEMPORARY_REDIRECT,
            "not-leader",
            format!("this latchd is a standby; the leader decides commands: {location}"),
        );
        problem.location = Some(location);
        problem
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden(permission: &str) -> Self {
        let mut problem = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("missing permission {permission}"),
        );
        problem.missing_permission = Some(permission.to_owned());
        problem
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<DomainError> for Problem {
    fn from(error: DomainError) -> Self {
        let detail = error.to_string();
        match (error.kind(), &error) {
            (_, DomainError::MissingPermission(permission)) => Problem::forbidden(permission),
            (RejectionKind::Forbidden, _) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
            }
            (RejectionKind::NotFound, _) => Problem::not_found(detail),
            (RejectionKind::Conflict, _) => Problem::conflict(detail),
            (RejectionKind::Invalid, _) => Problem::invalid(detail),
        }
    }
}

impl From<CommandRejection> for Problem {
    fn from(rejection: CommandRejection) -> Self {
        match rejection {
            CommandRejection::Domain(error) => error.into(),
            CommandRejection::VersionConflict { .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                format!("{rejection}; read it again and retry"),
            ),
            CommandRejection::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            ),
        }
    }
}

impl From<HandlerFailure> for Problem {
    fn from(failure: HandlerFailure) -> Self {
        tracing::error!(error = %failure, "command could not be completed");
        match failure {
            HandlerFailure::Stopped => {
                Problem::unavailable("latchd is shutting down; retry with the same Idempotency-Key")
            }
            HandlerFailure::NotLeader => Problem::unavailable(
                "this latchd is a standby and the command was not run; send it to the leader (see /readyz), with the same Idempotency-Key",
            ),
            HandlerFailure::Replication(problem) => Problem::unavailable(format!(
                "the command was not acknowledged by the replicated event stream ({problem}); this node stepped down. Retry with the same Idempotency-Key: a retry is answered, never run twice"
            )),
            other => Problem::internal(format!("{other}; retry with the same Idempotency-Key")),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(location) = self.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"latch\", error=\"invalid_token\""),
            );
        }
        // Handlers return problems without the request id; the request-id
        // layer adds it (see `request_id::stamp_problem`).
        response.extensions_mut().insert(ProblemMarker);
        response
    }
}

/// Marks a response as a problem, so outer layers can enrich it.
#[derive(Debug, Clone, Copy)]
pub struct ProblemMarker;
