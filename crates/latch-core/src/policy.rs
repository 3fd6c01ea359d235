//! Token policy: a global setting with per-role overrides.
//!
//! Every field is optional at every layer: unset means "not set here". The
//! effective policy for a role takes the role's override, else the global
//! setting, else the built-in default.

use serde::{Deserialize, Serialize};

use crate::on_reuse::OnReuse;
use crate::span::Span;

/// One layer of policy, as `PUT /v1/policy` writes it and `policy.updated`
/// records it (the whole layer, not a patch, so replay needs no history).
/// Unset fields serialise as `null` (no `skip_serializing_if`: the state
/// snapshot format is not self-describing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Longest lifetime a token may be issued with.
    #[serde(default)]
    pub max_ttl: Option<Span>,
    /// Lifetime of a token issued without `ttl`.
    #[serde(default)]
    pub default_ttl: Option<Span>,
    /// Age after which a token is due for rotation (`token.rotation_due`).
    #[serde(default)]
    pub rotation_period: Option<Span>,
    /// How long before expiry `token.expiring` is announced.
    #[serde(default)]
    pub expiry_warning: Option<Span>,
    /// How long the old token keeps working after a rotation.
    #[serde(default)]
    pub rotation_grace: Option<Span>,
    /// How many live (unrevoked, unexpired) tokens one account may hold.
    #[serde(default)]
    pub max_tokens_per_account: Option<u32>,
    /// Whether every token must expire (`ttl: "never"` refused).
    #[serde(default)]
    pub require_expiry: Option<bool>,
    /// What a token presented after rotation or revocation sets off.
    #[serde(default)]
    pub on_reuse: Option<OnReuse>,
}

impl PolicySettings {
    /// `self` where set, else `fallback`.
    pub fn or(&self, fallback: &PolicySettings) -> PolicySettings {
        PolicySettings {
            max_ttl: self.max_ttl.or(fallback.max_ttl),
            default_ttl: self.default_ttl.or(fallback.default_ttl),
            rotation_period: self.rotation_period.or(fallback.rotation_period),
            expiry_warning: self.expiry_warning.or(fallback.expiry_warning),
            rotation_grace: self.rotation_grace.or(fallback.rotation_grace),
            max_tokens_per_account: self
                .max_tokens_per_account
                .or(fallback.max_tokens_per_account),
            require_expiry: self.require_expiry.or(fallback.require_expiry),
            on_reuse: self.on_reuse.or(fallback.on_reuse),
        }
    }
}

/// The policy that applies to a token: every field resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `None`: no limit beyond `default_ttl` being used when `ttl` is absent.
    pub max_ttl: Option<Span>,
    pub default_ttl: Span,
    /// `None`: tokens are never due for rotation by age.
    pub rotation_period: Option<Span>,
    pub expiry_warning: Span,
    pub rotation_grace: Span,
    /// `None`: no limit.
    pub max_tokens_per_account: Option<u32>,
    pub require_expiry: bool,
    pub on_reuse: OnReuse,
}

impl Policy {
    /// Built-in defaults: tokens live 90 days unless asked otherwise, a
    /// week's warning before expiry, an hour's grace on rotation, and every
    /// token expires.
    pub const DEFAULT_TTL: Span = Span::days(90);
    pub const DEFAULT_EXPIRY_WARNING: Span = Span::days(7);
    pub const DEFAULT_ROTATION_GRACE: Span = Span::hours(1);

    /// Resolves every field. A `default_ttl` nobody set is the built-in one
    /// capped at `max_ttl` (as Vault caps a default lease at the maximum), so
    /// setting only a lower `max_ttl` is consistent; an explicit
    /// `default_ttl` above `max_ttl` is kept and reported by
    /// [`Policy::inconsistency`].
    pub fn resolve(settings: &PolicySettings) -> Policy {
        let built_in_default = match settings.max_ttl {
            Some(max) => Self::DEFAULT_TTL.min(max),
            None => Self::DEFAULT_TTL,
        };
        Policy {
            max_ttl: settings.max_ttl,
            default_ttl: settings.default_ttl.unwrap_or(built_in_default),
            rotation_period: settings.rotation_period,
            expiry_warning: settings
                .expiry_warning
                .unwrap_or(Self::DEFAULT_EXPIRY_WARNING),
            rotation_grace: settings
                .rotation_grace
                .unwrap_or(Self::DEFAULT_ROTATION_GRACE),
            max_tokens_per_account: settings.max_tokens_per_account,
            require_expiry: settings.require_expiry.unwrap_or(true),
            on_reuse: settings.on_reuse.unwrap_or_default(),
        }
    }

    /// A policy whose default would break its own limit is not a policy.
    pub fn inconsistency(&self) -> Option<String> {
        match self.max_ttl {
            Some(max) if self.default_ttl > max => Some(format!(
                "default_ttl {} exceeds max_ttl {}",
                self.default_ttl, max
            )),
            _ if self.max_tokens_per_account == Some(0) => {
                Some("max_tokens_per_account 0 would forbid every token".to_owned())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_layer_overrides_global_which_overrides_defaults() {
        let global = PolicySettings {
            max_ttl: Some(Span::days(30)),
            default_ttl: Some(Span::days(7)),
            ..Default::default()
        };
        let role = PolicySettings {
            default_ttl: Some(Span::hours(1)),
            ..Default::default()
        };
        let policy = Policy::resolve(&role.or(&global));
        assert_eq!(policy.max_ttl, Some(Span::days(30)));
        assert_eq!(policy.default_ttl, Span::hours(1));
        assert_eq!(policy.rotation_grace, Policy::DEFAULT_ROTATION_GRACE);
        assert_eq!(policy.inconsistency(), None);
        let bad = PolicySettings {
            max_ttl: Some(Span::days(1)),
            default_ttl: Some(Span::days(2)),
            ..Default::default()
        };
        assert!(Policy::resolve(&bad).inconsistency().is_some());
    }

    #[test]
    fn an_unset_default_ttl_is_capped_at_max_ttl() {
        let only_max = PolicySettings {
            max_ttl: Some(Span::hours(1)),
            ..Default::default()
        };
        let policy = Policy::resolve(&only_max);
        assert_eq!(policy.default_ttl, Span::hours(1));
        assert_eq!(policy.inconsistency(), None);
        let generous = PolicySettings {
            max_ttl: Some(Span::days(365)),
            ..Default::default()
        };
        assert_eq!(Policy::resolve(&generous).default_ttl, Policy::DEFAULT_TTL);
    }
}
