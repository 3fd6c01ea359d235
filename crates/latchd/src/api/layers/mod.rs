//! What runs around every request, outermost first:
//!
//! 1. `request_id`: every request carries one (the caller's sane
//!    `X-Request-Id`, or a new UUIDv7).
//! 2. `read_body`: authenticates the bearer token (`authentication`) before
//!    any body is read, then reads the body — only a caller with a valid
//!    token may make latchd hold one.
//! 3. `http_metrics`: counts and times requests by route.
//! 4. `authenticate_and_audit` (on `/v1` routes): refuses a request without
//!    a valid token (401, or 429 once its source's `failure_limiter` budget
//!    is spent) and records every request in the activity audit, before and
//!    after it runs.

pub mod authenticate_and_audit;
pub mod authentication;
pub mod failure_limiter;
pub mod http_metrics;
pub mod read_body;
pub mod request_id;
