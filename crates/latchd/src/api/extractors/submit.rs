//! Submitting a command on behalf of the caller: the one path every
//! mutating route takes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use latch_core::Command;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::problem::Problem;
use crate::api::layers::request_id::RequestId;
use crate::command_handler::{CommandRequest, Idempotency};
use crate::command_outcome::CommandReceipt;

pub struct Submission<'a> {
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
    pub key: Option<String>,
    pub fingerprint: String,
    pub expected_version: Option<u64>,
}

impl Submission<'_> {
    pub async fn submit(
        &self,
        app: &AppState,
        command: Command,
    ) -> Result<CommandReceipt, Problem> {
        let request = CommandRequest {
            command,
            actor: self.caller.actor(),
            request_id: Some(self.request_id.0.clone()),
            idempotency: self.key.as_ref().map(|key| Idempotency {
                key: key.clone(),
                fingerprint: self.fingerprint.clone(),
            }),
            expected_version: self.expected_version,
        };
        Ok(app.commands.submit(request).await??)
    }

    /// The key as the handler scopes it: per caller account.
    pub fn scoped_key(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|key| crate::command_handler::scope_key(&self.caller.actor(), key))
    }
}

/// The caller of a mutating route, with what its commands carry: the
/// extractor every such route takes instead of state, caller and request id.
pub struct Acting {
    pub app: AppState,
    pub caller: Caller,
    pub request_id: RequestId,
}

impl Acting {
    pub fn submission(
        &self,
        key: Option<String>,
        fingerprint: String,
        expected_version: Option<u64>,
    ) -> Submission<'_> {
        Submission {
            caller: &self.caller,
            request_id: &self.request_id,
            key,
            fingerprint,
            expected_version,
        }
    }
}

impl FromRequestParts<AppState> for Acting {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The activity layer authenticated the request before routing.
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::unauthenticated("not authenticated"))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new()));
        if let Some(elsewhere) = standby_answer(app, &parts.uri) {
            return Err(elsewhere);
        }
        Ok(Self {
            app: app.clone(),
            caller,
            request_id,
        })
    }
}

/// An HA standby decides no command: the caller is sent to the leader,
/// whose URL a latchd of the cluster signed (see `ha::lease`), or told to
/// retry when there is none. `None` on a leader or a single latchd.
pub fn standby_answer(app: &AppState, uri: &axum::http::Uri) -> Option<Problem> {
    let ha = app.ha.get()?;
    if ha.role() != crate::ha::Role::Standby {
        return None;
    }
    Some(match ha.leader() {
        Some(leader) => {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            Problem::at_leader(format!("{}{path}", leader.url.trim_end_matches('/')))
        }
        None => Problem::unavailable(
            "this latchd is a standby and no leader is elected yet; retry in a moment with the same Idempotency-Key",
        ),
    })
}
