//! `AccountView`: an account as the API and the audit tools print it.

use chrono::{DateTime, Utc};
use latch_core::{Account, AccountStatus, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::ActorView;

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub description: String,
    /// `active`, `disabled` or `deleted`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: ActorView,
    pub updated_at: DateTime<Utc>,
    /// For `If-Match`.
    pub version: u64,
    /// What the role grants in this state.
    pub permissions: Vec<String>,
}

impl AccountView {
    pub fn of(account: &Account, state: &State) -> Self {
        let (status, disabled_reason, status_since) = match &account.status {
            AccountStatus::Active => ("active", None, None),
            AccountStatus::Disabled { reason, since } => {
                ("disabled", Some(reason.clone()), Some(*since))
            }
            AccountStatus::Deleted { since } => ("deleted", None, Some(*since)),
        };
        AccountView {
            id: account.id.to_string(),
            name: account.name.to_string(),
            role: account.role.to_string(),
            description: account.description.clone(),
            status,
            disabled_reason,
            status_since,
            created_at: account.created_at,
            created_by: ActorView::named(account.created_by, state),
            updated_at: account.updated_at,
            version: account.version,
            permissions: state
                .role(&account.role)
                .map(|r| r.permissions.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }
}
