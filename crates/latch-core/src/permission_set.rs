//! `PermissionSet`: what a role grants or a token is scoped to.
//!
//! Kept in a normal form: no member covers another. For per-segment
//! wildcards that form is unique, so two sets are equal exactly when they
//! grant the same permissions.
//!
//! Held as a sorted `Vec` (a set of a few members; every token has one):
//! one small allocation, where a `BTreeSet` took a 280-byte node each, and
//! the same order, equality, hash and serialised form as the `BTreeSet`
//! it replaced.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::permission::{Permission, PermissionError};

#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct PermissionSet(Vec<Permission>);

impl PermissionSet {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses each string; the first bad one is the error.
    pub fn parse<I, S>(texts: I) -> Result<Self, PermissionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        texts
            .into_iter()
            .map(|t| Permission::parse(t.as_ref()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    /// Whether some member grants `wanted`.
    pub fn covers(&self, wanted: &Permission) -> bool {
        self.0.iter().any(|held| held.covers(wanted))
    }

    /// Whether every member of `other` is granted by `self`.
    pub fn covers_all(&self, other: &PermissionSet) -> bool {
        other.0.iter().all(|wanted| self.covers(wanted))
    }

    /// The members of `other` that `self` does not grant: what an error
    /// should name.
    pub fn not_covered<'a>(
        &'a self,
        other: &'a PermissionSet,
    ) -> impl Iterator<Item = &'a Permission> + 'a {
        other.0.iter().filter(move |wanted| !self.covers(wanted))
    }

    /// What both sets grant: a token's effective permissions are its scopes
    /// intersected with its account's role.
    pub fn intersect(&self, other: &PermissionSet) -> PermissionSet {
        self.0
            .iter()
            .flat_map(|a| other.0.iter().filter_map(move |b| a.meet(b)))
            .collect()
    }

    fn insert(&mut self, permission: Permission) {
        if self.covers(&permission) {
            return;
        }
        self.0.retain(|held| !permission.covers(held));
        // Absent (it would cover itself), so this is where it goes.
        let at = self.0.binary_search(&permission).unwrap_or_else(|at| at);
        self.0.insert(at, permission);
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        let mut set = PermissionSet::default();
        for permission in iter {
            set.insert(permission);
        }
        set.0.shrink_to_fit();
        set
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for permission in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            permission.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PermissionSet[{self}]")
    }
}
