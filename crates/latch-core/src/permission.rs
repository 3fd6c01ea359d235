//! `Permission`: a `resource:action` string with `*` wildcards.
//!
//! Either segment may be `*`: `certificates:issue`, `certificates:*`,
//! `*:read` and `*` (short for `*:*`). A permission *covers* another when
//! each of its segments is `*` or equal to the other's. A wildcard is only
//! covered by a wildcard, so `certificates:issue` never covers
//! `certificates:*`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

const WILDCARD: &str = "*";
const MAX_SEGMENT_LEN: usize = 64;

/// One permission. Stored as its text with the position of the colon, so
/// checks compare slices and never allocate.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    text: Box<str>,
    colon: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PermissionError {
    #[error("permission {0:?} must be written resource:action (e.g. certificates:issue) or *")]
    Shape(String),
    #[error(
        "permission {0:?}: each segment must be * or 1-64 characters of a-z, 0-9, '_', '-' or '.', starting with a letter or digit"
    )]
    Segment(String),
}

impl Permission {
    /// Everything: `*`.
    pub fn all() -> Self {
        Self::from_segments(WILDCARD, WILDCARD)
    }

    pub fn parse(text: &str) -> Result<Self, PermissionError> {
        if text == WILDCARD {
            return Ok(Self::all());
        }
        let (resource, action) = text
            .split_once(':')
            .ok_or_else(|| PermissionError::Shape(text.to_owned()))?;
        if action.contains(':') {
            return Err(PermissionError::Shape(text.to_owned()));
        }
        if !valid_segment(resource) || !valid_segment(action) {
            return Err(PermissionError::Segment(text.to_owned()));
        }
        Ok(Self::from_segments(resource, action))
    }

    fn from_segments(resource: &str, action: &str) -> Self {
        let mut text = String::with_capacity(resource.len() + 1 + action.len());
        text.push_str(resource);
        text.push(':');
        text.push_str(action);
        Self {
            text: text.into_boxed_str(),
            colon: resource.len(),
        }
    }

    pub fn resource(&self) -> &str {
        &self.text[..self.colon]
    }

    pub fn action(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The permission as it is written: `resource:action`, or `*` for
    /// everything. What `Display` writes.
    pub fn as_str(&self) -> &str {
        if self.resource() == WILDCARD && self.action() == WILDCARD {
            WILDCARD
        } else {
            &self.text
        }
    }

    /// Whether holding `self` grants `other`.
    pub fn covers(&self, other: &Permission) -> bool {
        segment_covers(self.resource(), other.resource())
            && segment_covers(self.action(), other.action())
    }

    /// The permissions both `self` and `other` grant, if any: the segment-wise
    /// meet, since wildcards are per segment.
    pub fn meet(&self, other: &Permission) -> Option<Permission> {
        let resource = segment_meet(self.resource(), other.resource())?;
        let action = segment_meet(self.action(), other.action())?;
        Some(Self::from_segments(resource, action))
    }
}

fn segment_covers(held: &str, wanted: &str) -> bool {
    held == WILDCARD || held == wanted
}

fn segment_meet<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    match (a, b) {
        (WILDCARD, other) | (other, WILDCARD) => Some(other),
        (a, b) if a == b => Some(a),
        _ => None,
    }
}

fn valid_segment(segment: &str) -> bool {
    if segment == WILDCARD {
        return true;
    }
    let bytes = segment.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SEGMENT_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({self})")
    }
}

impl FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }

    #[test]
    fn wildcards_cover_per_segment() {
        assert!(p("*").covers(&p("certificates:issue")));
        assert!(p("*").covers(&p("*:read")));
        assert!(p("certificates:*").covers(&p("certificates:issue")));
        assert!(p("*:read").covers(&p("accounts:read")));
        assert!(!p("*:read").covers(&p("accounts:write")));
        assert!(!p("certificates:issue").covers(&p("certificates:*")));
        assert!(!p("certificates:*").covers(&p("*")));
        assert_eq!(p("*:*"), p("*"));
        assert_eq!(p("*:*").to_string(), "*");
        assert_eq!(p("*:*").as_str(), "*");
        assert_eq!(p("*:read").as_str(), "*:read");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "certificates",
            ":issue",
            "certificates:",
            "a:b:c",
            "Certs:issue",
            "certs:is sue",
            "-a:b",
            "**",
        ] {
            assert!(
                Permission::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn meet_is_what_both_grant() {
        assert_eq!(
            p("certificates:*").meet(&p("*:read")),
            Some(p("certificates:read"))
        );
        assert_eq!(p("*").meet(&p("audit:read")), Some(p("audit:read")));
        assert_eq!(p("certificates:issue").meet(&p("certificates:read")), None);
    }
}

crate::serde_as_text::serde_as_text!(Permission);
