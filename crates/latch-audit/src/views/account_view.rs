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
    /// Its tokens usable now (the API's account list and reads, for a
    /// caller with `tokens:read`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_tokens: Option<usize>,
    /// The last accepted use of any of its tokens (the API's account list
    /// and reads; absent when none was ever used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
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
            live_tokens: None,
            last_used_at: None,
        }
    }

    /// With how many of its tokens are live at `now` and when any of them
    /// was last used (`last_use` of each token; `None`: never used).
    pub fn with_tokens(
        mut self,
        account: &Account,
        state: &State,
        now: DateTime<Utc>,
        last_use: impl Fn(latch_core::TokenId) -> Option<DateTime<Utc>>,
    ) -> Self {
        let mut live = 0;
        let mut last_used_at = None;
        for token in state.tokens_of(account.id) {
            if state.token_is_live(token, now) {
                live += 1;
            }
            last_used_at = last_used_at.max(last_use(token.id));
        }
        self.live_tokens = Some(live);
        self.last_used_at = last_used_at;
        self
    }
}
