//! `PermissionSet`: what a role grants or a token is scoped to.
//!
//! Kept in a normal form: no member covers another. For per-segment
//! wildcards that form is unique, so two sets are equal exactly when they
//! grant the same permissions.
//!
//! Held as a sorted slice (a set of a few members; every token has one),
//! shared: most tokens have the same scopes as many others, so a set read
//! with the same members as the set read before it on the thread is that
//! set again — no parse, no allocation — and a state of a million tokens
//! holds a few sets, not a million. The same order, equality, hash and
//! serialised form as the `BTreeSet` it replaced.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::permission::{Permission, PermissionError};

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(Arc<[Permission]>);

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
}

/// Adds `permission` to the normal form `members`: dropped if a member
/// covers it, dropping the members it covers.
fn insert(members: &mut Vec<Permission>, permission: Permission) {
    if members.iter().any(|held| held.covers(&permission)) {
        return;
    }
    members.retain(|held| !permission.covers(held));
    // Absent (it would cover itself), so this is where it goes.
    let at = members.binary_search(&permission).unwrap_or_else(|at| at);
    members.insert(at, permission);
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        let mut members = Vec::new();
        for permission in iter {
            insert(&mut members, permission);
        }
        PermissionSet(members.into())
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

thread_local! {
    /// The set read last on this thread: the next one is most often the
    /// same (a token's scopes are its neighbour's).
    static LAST_READ: RefCell<PermissionSet> = RefCell::default();
}

impl<'de> Deserialize<'de> for PermissionSet {
    /// Reads the members' texts as they come, comparing each with the
    /// member at its place in the set read last: while they are the same,
    /// nothing is parsed. A set the same member for member is that set (a
    /// set in normal form is its own normal form); from the first text
    /// that differs, the texts are parsed and normalised as ever.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let last = LAST_READ.try_with(|last| last.borrow().clone()).unwrap_or_default();
        let read = deserializer.deserialize_seq(Members {
            like: last.0,
            matched: 0,
            parsed: None,
        })?;
        let _ = LAST_READ.try_with(|last| *last.borrow_mut() = read.clone());
        Ok(read)
    }
}

/// A set's members as they are read: the first `matched` are the same as
/// `like`'s; once one is not, all are `parsed`.
struct Members {
    like: Arc<[Permission]>,
    matched: usize,
    parsed: Option<Vec<Permission>>,
}

impl Members {
    fn read<E: de::Error>(&mut self, text: &str) -> Result<(), E> {
        if let Some(parsed) = &mut self.parsed {
            parsed.push(Permission::parse(text).map_err(E::custom)?);
        } else if self.like.get(self.matched).is_some_and(|member| member.as_str() == text) {
            self.matched += 1;
        } else {
            let mut parsed = self.like[..self.matched].to_vec();
            parsed.push(Permission::parse(text).map_err(E::custom)?);
            self.parsed = Some(parsed);
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Members {
    type Value = PermissionSet;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a sequence of permissions")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<PermissionSet, A::Error> {
        while seq.next_element_seed(Member(&mut self))?.is_some() {}
        Ok(match self.parsed {
            Some(parsed) => parsed.into_iter().collect(),
            None if self.matched == self.like.len() => PermissionSet(self.like),
            // A prefix of a set in normal form is in normal form.
            None => PermissionSet(self.like[..self.matched].into()),
        })
    }
}

/// One member's text, handed to `Members::read` where the input holds it.
struct Member<'m>(&'m mut Members);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a permission")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.read(text)
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for permission in self.0.iter() {
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
