//! The permissions latchd's own API checks. Roles and scopes are free-form
//! `resource:action` strings; these are the ones Latch itself gives meaning to.
//!
//! Each is a `Permission`, parsed once on first use:
//! `caller.require(&api_permission::ACCOUNTS_READ)`.

use std::sync::LazyLock;

use crate::permission::Permission;
use crate::permission_set::PermissionSet;

/// Declares each API permission as a `LazyLock<Permission>` parsed from its
/// text, and `declared()`, every one with its text, for the tests.
macro_rules! api_permissions {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)+) => {
        $(
            $(#[$doc])*
            pub static $name: LazyLock<Permission> = LazyLock::new(|| parsed($text));
        )+

        #[cfg(test)]
        fn declared() -> Vec<(&'static Permission, &'static str)> {
            vec![$((&*$name, $text)),+]
        }
    };
}

api_permissions! {
    ACCOUNTS_READ = "accounts:read";
    ACCOUNTS_WRITE = "accounts:write";
    TOKENS_READ = "tokens:read";
    TOKENS_WRITE = "tokens:write";
    TOKENS_INTROSPECT = "tokens:introspect";
    ROLES_READ = "roles:read";
    ROLES_WRITE = "roles:write";
    POLICY_READ = "policy:read";
    POLICY_WRITE = "policy:write";
    EVENTS_READ = "events:read";
    AUDIT_READ = "audit:read";
    /// Report leaked tokens (`POST /v1/leaks`, `latch leak report`): each
    /// reported token is revoked.
    LEAKS_REPORT = "leaks:report";
    /// List webhook endpoints (their URLs' origins) and deliveries.
    WEBHOOKS_READ = "webhooks:read";
    /// Add and remove webhook endpoints, redeliver.
    WEBHOOKS_WRITE = "webhooks:write";
    /// Take a backup of the log into a directory on latchd's host.
    BACKUP_CREATE = "backup:create";
}

/// The built-in `verifier` role: follow the log and check tokens remotely.
pub static VERIFIER: LazyLock<PermissionSet> = LazyLock::new(|| {
    [EVENTS_READ.clone(), TOKENS_INTROSPECT.clone()]
        .into_iter()
        .collect()
});

fn parsed(text: &str) -> Permission {
    Permission::parse(text).expect("API permissions are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_permission_parses_and_round_trips_its_text() {
        for (permission, text) in declared() {
            assert_eq!(permission.as_str(), text);
            assert_eq!(permission.to_string(), text);
            assert_eq!(Permission::parse(text).as_ref(), Ok(permission));
            assert_ne!(permission.resource(), "*", "{text} names one resource");
            assert_ne!(permission.action(), "*", "{text} names one action");
        }
    }

    #[test]
    fn the_verifier_role_follows_the_log_and_introspects() {
        assert_eq!(
            *VERIFIER,
            PermissionSet::parse(["events:read", "tokens:introspect"]).unwrap()
        );
    }
}
