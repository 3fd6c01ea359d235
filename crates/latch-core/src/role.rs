//! Roles: named sets of permissions. Three are built in and fixed; the rest
//! are defined (and redefined) by `role.defined` events.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::api_permission;
use crate::permission_set::PermissionSet;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(Box<str>);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("role name {0:?} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter")]
pub struct RoleNameError(pub String);

impl RoleName {
    pub fn parse(text: &str) -> Result<Self, RoleNameError> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(RoleNameError(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn admin() -> Self {
        Self(BuiltinRole::Admin.name().into())
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

impl FromStr for RoleName {
    type Err = RoleNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A role as the projection holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: RoleName,
    pub permissions: PermissionSet,
    pub description: String,
    pub builtin: bool,
}

/// The roles every Latch has. They are code, not events: they cannot be
/// redefined or deleted, so their meaning is the same in every log
/// (see docs/adr/0004-builtin-roles-are-code.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinRole {
    /// Everything.
    Admin,
    /// Reads everything, including the audit trail; changes nothing.
    Auditor,
    /// What a verifier needs to bootstrap and follow the log.
    Verifier,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 3] = [
        BuiltinRole::Admin,
        BuiltinRole::Auditor,
        BuiltinRole::Verifier,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "admin",
            BuiltinRole::Auditor => "auditor",
            BuiltinRole::Verifier => "verifier",
        }
    }

    pub fn role(self) -> Role {
        let parsed =
            |texts: &[&str]| PermissionSet::parse(texts).expect("built-in permissions are valid");
        let (permissions, description) = match self {
            BuiltinRole::Admin => (parsed(&["*"]), "Every permission."),
            BuiltinRole::Auditor => (
                parsed(&["*:read", api_permission::AUDIT_READ.as_str()]),
                "Reads everything, including the audit trail; changes nothing.",
            ),
            BuiltinRole::Verifier => (
                api_permission::VERIFIER.clone(),
                "What a verifier needs to bootstrap and follow the log.",
            ),
        };
        Role {
            name: RoleName(self.name().into()),
            permissions,
            description: description.to_owned(),
            builtin: true,
        }
    }

    pub fn is_builtin(name: &RoleName) -> bool {
        Self::ALL.iter().any(|b| b.name() == name.as_str())
    }
}

crate::serde_as_text::serde_as_text!(RoleName);
