//! `ActorView`: who caused an event or made a request, as JSON.

use latch_core::{Actor, State};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActorView {
    /// `token` or `system`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The acting account's name, where a state was at hand to name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

impl ActorView {
    /// The actor, with its account's name as `state` knows it (names stay
    /// reserved after deletion, so one name is one account for good).
    pub fn named(actor: Actor, state: &State) -> Self {
        let mut view = ActorView::from(actor);
        if let Actor::Token { account_id, .. } = actor {
            view.account_name = state.account(account_id).map(|a| a.name.to_string());
        }
        view
    }
}

impl From<Actor> for ActorView {
    fn from(actor: Actor) -> Self {
        match actor {
            Actor::System => ActorView {
                kind: "system",
                account_id: None,
                account_name: None,
                token_id: None,
            },
            Actor::Token {
                account_id,
                token_id,
            } => ActorView {
                kind: "token",
                account_id: Some(account_id.to_string()),
                account_name: None,
                token_id: Some(token_id.to_string()),
            },
        }
    }
}
