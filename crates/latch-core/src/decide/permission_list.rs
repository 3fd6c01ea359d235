//! Permissions written out for a rejection: space-separated, as a role or
//! a token's scopes are shown.

use crate::permission::Permission;

pub(super) fn listed<'a>(permissions: impl Iterator<Item = &'a Permission>) -> String {
    permissions
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
