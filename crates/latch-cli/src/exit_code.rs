//! Exit codes scripts can rely on. Documented in `latch --help`.

/// Success.
pub const OK: i32 = 0;
/// Anything not covered below.
pub const FAILURE: i32 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// 401: no token, or the token is malformed, unknown, expired or revoked.
pub const UNAUTHENTICATED: i32 = 3;
/// 403: the token lacks a permission.
pub const FORBIDDEN: i32 = 4;
/// 404: no such account, token, role or route.
pub const NOT_FOUND: i32 = 5;
/// 409 / 412: the request contradicts current state, or a stale If-Match.
pub const CONFLICT: i32 = 6;
/// 400 / 413 / 422: the request itself is invalid.
pub const INVALID: i32 = 7;
/// 5xx, or latchd could not be reached.
pub const UNAVAILABLE: i32 = 8;
/// `latch audit verify`: the log's hash chain is broken (altered).
pub const TAMPERED: i32 = 9;

pub fn for_status(status: u16) -> i32 {
    match status {
        401 => UNAUTHENTICATED,
        403 => FORBIDDEN,
        404 => NOT_FOUND,
        409 | 412 => CONFLICT,
        400 | 413 | 422 => INVALID,
        500..=599 => UNAVAILABLE,
        _ => FAILURE,
    }
}

pub const HELP: &str = "Exit codes: 0 ok, 1 other failure, 2 usage, 3 not authenticated (401), 4 forbidden (403), \
5 not found (404), 6 conflict (409/412), 7 invalid request (400/413/422), 8 latchd unavailable (5xx or unreachable), 9 the audited log or export was altered.";
