//! One line a person reads for each event: what changed, in words.

use chrono::{DateTime, SecondsFormat, Utc};
use latch_core::{Event, PolicySettings};

pub fn summary(event: &Event) -> String {
    match event {
        Event::AccountCreated {
            name,
            role,
            description,
            ..
        } => {
            let mut line = format!("account {name} created with role {role}");
            if !description.is_empty() {
                line.push_str(&format!(" ({description})"));
            }
            line
        }
        Event::AccountUpdated {
            role, description, ..
        } => {
            let mut changes = Vec::new();
            if let Some(role) = role {
                changes.push(format!("role set to {role}"));
            }
            if let Some(description) = description {
                changes.push(format!("description set to {description:?}"));
            }
            format!("account updated: {}", changes.join(", "))
        }
        Event::AccountDisabled { reason, .. } => {
            format!("account disabled (its tokens suspended): {reason}")
        }
        Event::AccountEnabled { .. } => "account enabled (its tokens resume)".into(),
        Event::AccountDeleted { .. } => "account deleted".into(),
        Event::TokenIssued {
            name,
            scopes,
            expires_at,
            allowed_cidrs,
            rotated_from,
            parent,
            oidc,
            ..
        } => {
            let mut line = format!(
                "token {name:?} issued with scopes {scopes}, {}",
                expiry(*expires_at)
            );
            if !allowed_cidrs.is_empty() {
                let cidrs: Vec<String> = allowed_cidrs.iter().map(ToString::to_string).collect();
                line.push_str(&format!(", only from {}", cidrs.join(" ")));
            }
            if let Some(from) = rotated_from {
                line.push_str(&format!(", replacing {from}"));
            }
            if let Some(parent) = parent {
                line.push_str(&format!(", exchanged from token {parent} (revoked with it)"));
            }
            if let Some(oidc) = oidc {
                line.push_str(&format!(
                    ", exchanged for an OIDC token of {} for {} (jti {}) under trust policy {}",
                    oidc.issuer, oidc.subject, oidc.jti, oidc.policy_id
                ));
            }
            line
        }
        Event::TokenRevoked { reason, .. } if reason.is_empty() => "token revoked".into(),
        Event::TokenRevoked { reason, .. } => format!("token revoked: {reason}"),
        Event::TokenRotated {
            successor_id,
            expires_at,
            ..
        } => format!(
            "token rotated to {successor_id}; it keeps working until {}",
            time(*expires_at)
        ),
        Event::TokenExpiring { expires_at, .. } => {
            format!("token expires soon, at {}", time(*expires_at))
        }
        Event::TokenExpired { expires_at, .. } => {
            format!("token expired at {}", time(*expires_at))
        }
        Event::TokenRotationDue { issued_at, .. } => {
            format!("token due for rotation (issued {})", time(*issued_at))
        }
        Event::TokenLeakReported {
            source, location, ..
        } if location.is_empty() => format!("token leaked: reported by {source}"),
        Event::TokenLeakReported {
            source, location, ..
        } => format!("token leaked: reported by {source}, found at {location}"),
        Event::TokenReuseDetected {
            seen_at,
            source_address,
            service,
            successor_id,
            on_reuse,
            ..
        } => {
            let mut line = format!(
                "token presented after rotation or revocation, at {service} at {}",
                time(*seen_at)
            );
            if let Some(address) = source_address {
                line.push_str(&format!(" from {address}"));
            }
            match (on_reuse, successor_id) {
                (latch_core::OnReuse::Revoke, Some(successor)) => line.push_str(&format!(
                    "; policy on_reuse is revoke: its successors from {successor} back are revoked"
                )),
                (_, Some(successor)) => line.push_str(&format!("; its successor is {successor}")),
                _ => {}
            }
            line
        }
        Event::RoleDefined {
            name, permissions, ..
        } => format!("role {name} defined as {permissions}"),
        Event::RoleDeleted { name } => format!("role {name} deleted"),
        Event::PolicyUpdated { role, settings } => format!(
            "{} policy set: {}",
            role.as_ref()
                .map_or_else(|| "global".to_owned(), |r| format!("role {r}'s")),
            policy(settings)
        ),
        Event::SigningKeyRotated { public_key } => {
            format!("latchd signs its feed with a new key from here on: {public_key}")
        }
        Event::TrustPolicyAdded {
            policy_id,
            issuer,
            audience,
            claims,
            scopes,
            max_ttl,
            ..
        } => format!(
            "trust policy {policy_id} added: OIDC tokens of {issuer} for {audience} with {} may be exchanged for tokens with {}, for at most {max_ttl}",
            claims
                .iter()
                .map(|(name, pattern)| format!("{name}={pattern}"))
                .collect::<Vec<_>>()
                .join(", "),
            scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
        ),
        Event::TrustPolicyRemoved { policy_id, .. } => format!("trust policy {policy_id} removed"),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn expiry(expires_at: Option<DateTime<Utc>>) -> String {
    match expires_at {
        Some(at) => format!("expires {}", time(at)),
        None => "never expires".into(),
    }
}

fn policy(settings: &PolicySettings) -> String {
    let fields: Vec<String> = [
        ("max_ttl", settings.max_ttl.map(|s| s.to_string())),
        ("default_ttl", settings.default_ttl.map(|s| s.to_string())),
        (
            "rotation_period",
            settings.rotation_period.map(|s| s.to_string()),
        ),
        (
            "expiry_warning",
            settings.expiry_warning.map(|s| s.to_string()),
        ),
        (
            "rotation_grace",
            settings.rotation_grace.map(|s| s.to_string()),
        ),
        (
            "max_tokens_per_account",
            settings.max_tokens_per_account.map(|n| n.to_string()),
        ),
        (
            "require_expiry",
            settings.require_expiry.map(|b| b.to_string()),
        ),
        ("on_reuse", settings.on_reuse.map(|o| o.to_string())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
    .collect();
    if fields.is_empty() {
        "defaults".into()
    } else {
        fields.join(" ")
    }
}
