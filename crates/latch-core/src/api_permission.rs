//! The permissions latchd's own API checks. Roles and scopes are free-form
//! `resource:action` strings; these are the ones Latch itself gives meaning to.

pub const ACCOUNTS_READ: &str = "accounts:read";
pub const ACCOUNTS_WRITE: &str = "accounts:write";
pub const TOKENS_READ: &str = "tokens:read";
pub const TOKENS_WRITE: &str = "tokens:write";
pub const TOKENS_INTROSPECT: &str = "tokens:introspect";
pub const ROLES_READ: &str = "roles:read";
pub const ROLES_WRITE: &str = "roles:write";
pub const POLICY_READ: &str = "policy:read";
pub const POLICY_WRITE: &str = "policy:write";
pub const EVENTS_READ: &str = "events:read";
pub const AUDIT_READ: &str = "audit:read";
/// Take a backup of the log into a directory on latchd's host.
pub const BACKUP_CREATE: &str = "backup:create";

/// The built-in `verifier` role: follow the log and check tokens remotely.
pub const VERIFIER: &[&str] = &[EVENTS_READ, TOKENS_INTROSPECT];
