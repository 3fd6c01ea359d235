//! `TrustPolicy`: which OIDC tokens (a CI platform's workload identity) an
//! account trusts, and what a token exchanged for one may be.
//!
//! "A token presented by issuer I, for audience A, whose claims match these
//! patterns, may be exchanged for a token of this account with at most
//! these scopes and this TTL." latchd checks the token's signature, issuer,
//! audience and times at the edge (`POST /v1/token-exchange`); `decide`
//! matches its claims against the policy as it is when the exchange is
//! decided, so a policy removed a moment before matches nothing.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::id::{AccountId, TrustPolicyId};
use crate::permission_set::PermissionSet;
use crate::span::Span;

/// Default and default cap of an exchanged token's lifetime.
pub const EXCHANGE_DEFAULT_TTL: Span = Span::minutes(15);
/// The longest a trust policy may let an exchanged token live.
pub const EXCHANGE_MAX_TTL: Span = Span::hours(12);
/// Longest claim pattern, issuer or audience.
pub const MAX_PATTERN: usize = 512;

/// A claim value pattern: the exact text, where `*` matches any run of
/// characters (none included). Claims that are booleans or numbers match
/// as their JSON text (`true`, `42`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimPattern(String);

impl ClaimPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a claim pattern must not be empty".into());
        }
        if text.len() > MAX_PATTERN {
            return Err(format!("a claim pattern is at most {MAX_PATTERN} bytes"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it matches anything at all (only `*`s).
    pub fn is_wildcard(&self) -> bool {
        self.0.chars().all(|c| c == '*')
    }

    /// Whether `value` matches: at most pattern × value steps, never the
    /// exponential blow-up of naive backtracking.
    pub fn matches(&self, value: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let value: Vec<char> = value.chars().collect();
        let (mut p, mut v) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while v < value.len() {
            if p < pattern.len() && pattern[p] != '*' && pattern[p] == value[v] {
                p += 1;
                v += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, v));
                p += 1;
            } else if let Some((star_p, star_v)) = star {
                p = star_p + 1;
                v = star_v + 1;
                star = Some((star_p, star_v + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for ClaimPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ClaimPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimPattern({:?})", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPolicy {
    pub id: TrustPolicyId,
    pub account_id: AccountId,
    /// The OIDC issuer (`iss`), exactly, e.g.
    /// `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// The audience the token must be for (one of its `aud`).
    pub audience: String,
    /// Claim name → pattern; every one must match.
    pub claims: BTreeMap<String, ClaimPattern>,
    /// The most an exchanged token may carry.
    pub scopes: PermissionSet,
    /// The longest an exchanged token may live.
    pub max_ttl: Span,
    #[serde(with = "crate::serde_time")]
    pub added_at: DateTime<Utc>,
    pub added_by: Actor,
}

impl TrustPolicy {
    /// The first claim (by name) the token's `claims` (values as text)
    /// lack or do not match; `None` when all match.
    pub fn mismatch<'c>(&'c self, claims: &BTreeMap<String, String>) -> Option<&'c str> {
        self.claims
            .iter()
            .find(|(name, pattern)| !claims.get(*name).is_some_and(|value| pattern.matches(value)))
            .map(|(name, _)| name.as_str())
    }
}

/// Where an exchanged token came from: recorded with its `token.issued`,
/// never the OIDC token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcExchange {
    pub policy_id: TrustPolicyId,
    pub issuer: String,
    pub subject: String,
    pub jti: String,
    /// When the OIDC token expires: until then its `jti` is refused.
    #[serde(with = "crate::serde_time::text")]
    pub token_expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> ClaimPattern {
        ClaimPattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_match_exactly_with_stars_for_any_run() {
        assert!(p("repo:acme/deploy:ref:refs/heads/main").matches("repo:acme/deploy:ref:refs/heads/main"));
        assert!(!p("repo:acme/deploy:ref:refs/heads/main").matches("repo:acme/deploy:ref:refs/heads/main2"));
        assert!(p("repo:acme/*:ref:refs/heads/main").matches("repo:acme/deploy:ref:refs/heads/main"));
        assert!(!p("repo:acme/*:ref:refs/heads/main").matches("repo:evil/x:ref:refs/heads/main"));
        assert!(p("repo:acme/*").matches("repo:acme/"));
        assert!(p("*").matches(""));
        assert!(p("a*b*c").matches("aXbYbZc"));
        assert!(!p("a*b*c").matches("aXbYbZ"));
        assert!(!p("acme").matches("ACME"), "case matters");
        assert!(p("**").is_wildcard() && !p("a*").is_wildcard());
    }

    #[test]
    fn a_long_adversarial_value_matches_in_linear_time() {
        let value = "a".repeat(100_000);
        assert!(!p("*a*a*a*a*a*a*a*a*b").matches(&value));
    }
}
