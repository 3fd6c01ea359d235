//! `/v1/policy`: token policy, global and per role.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Query, State};
use latch_core::{Command, Policy, PolicySettings, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::routes::accounts::parse_role;
use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;
use crate::api::extractors::submit::Acting;

/// One layer of policy; unset fields fall back to the next layer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyLayer {
    #[serde(default)]
    pub max_ttl: Option<String>,
    #[serde(default)]
    pub default_ttl: Option<String>,
    #[serde(default)]
    pub rotation_period: Option<String>,
    #[serde(default)]
    pub expiry_warning: Option<String>,
    #[serde(default)]
    pub rotation_grace: Option<String>,
    /// Live tokens one account may hold.
    #[serde(default, deserialize_with = "crate::api::whole_number::optional_u32")]
    pub max_tokens_per_account: Option<u32>,
    /// Whether every token must expire (`ttl: "never"` refused).
    #[serde(default)]
    pub require_expiry: Option<bool>,
    /// What a token presented after rotation (past its grace) or
    /// revocation sets off: `alert` (default: `token.reuse_detected`) or
    /// `revoke` (also revoke the tokens rotated from it).
    #[serde(default)]
    #[schema(pattern = "^(alert|revoke)$")]
    pub on_reuse: Option<String>,
}

impl From<&PolicySettings> for PolicyLayer {
    fn from(settings: &PolicySettings) -> Self {
        let text = |span: Option<latch_core::Span>| span.map(|s| s.to_string());
        PolicyLayer {
            max_ttl: text(settings.max_ttl),
            default_ttl: text(settings.default_ttl),
            rotation_period: text(settings.rotation_period),
            expiry_warning: text(settings.expiry_warning),
            rotation_grace: text(settings.rotation_grace),
            max_tokens_per_account: settings.max_tokens_per_account,
            require_expiry: settings.require_expiry,
            on_reuse: settings.on_reuse.map(|o| o.as_str().to_owned()),
        }
    }
}

impl TryFrom<PolicyLayer> for PolicySettings {
    type Error = Problem;
    fn try_from(layer: PolicyLayer) -> Result<Self, Problem> {
        let span = |field: &str, text: Option<String>| {
            text.map(|t| {
                latch_core::Span::parse(&t).map_err(|e| Problem::invalid(format!("{field}: {e}")))
            })
            .transpose()
        };
        Ok(PolicySettings {
            max_ttl: span("max_ttl", layer.max_ttl)?,
            default_ttl: span("default_ttl", layer.default_ttl)?,
            rotation_period: span("rotation_period", layer.rotation_period)?,
            expiry_warning: span("expiry_warning", layer.expiry_warning)?,
            rotation_grace: span("rotation_grace", layer.rotation_grace)?,
            max_tokens_per_account: layer.max_tokens_per_account,
            require_expiry: layer.require_expiry,
            on_reuse: layer
                .on_reuse
                .map(|text| {
                    latch_core::OnReuse::parse(&text).ok_or_else(|| {
                        Problem::invalid(format!("on_reuse: {text:?} is neither alert nor revoke"))
                    })
                })
                .transpose()?,
        })
    }
}

/// Every field resolved.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectivePolicy {
    pub max_ttl: Option<String>,
    pub default_ttl: String,
    pub rotation_period: Option<String>,
    pub expiry_warning: String,
    pub rotation_grace: String,
    pub max_tokens_per_account: Option<u32>,
    pub require_expiry: bool,
    /// `alert` or `revoke`.
    pub on_reuse: String,
}

impl From<Policy> for EffectivePolicy {
    fn from(policy: Policy) -> Self {
        EffectivePolicy {
            max_ttl: policy.max_ttl.map(|s| s.to_string()),
            default_ttl: policy.default_ttl.to_string(),
            rotation_period: policy.rotation_period.map(|s| s.to_string()),
            expiry_warning: policy.expiry_warning.to_string(),
            rotation_grace: policy.rotation_grace.to_string(),
            max_tokens_per_account: policy.max_tokens_per_account,
            require_expiry: policy.require_expiry,
            on_reuse: policy.on_reuse.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub global: PolicyLayer,
    /// Per-role overrides.
    pub roles: BTreeMap<String, PolicyLayer>,
    /// What applies to each role now, all layers and defaults resolved.
    pub effective: BTreeMap<String, EffectivePolicy>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PolicyTarget {
    /// Set this role's override instead of the global layer.
    pub role: Option<String>,
}

fn view(app: &AppState) -> PolicyView {
    let state = app.commands.state();
    PolicyView {
        global: state.global_policy().into(),
        roles: state
            .roles()
            .filter_map(|r| {
                state
                    .role_policy(&r.name)
                    .map(|p| (r.name.to_string(), p.into()))
            })
            .collect(),
        effective: state
            .roles()
            .map(|r| (r.name.to_string(), state.effective_policy(&r.name).into()))
            .collect(),
    }
}

/// Read the policy.
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    responses((status = 200, body = PolicyView), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PolicyView>, Problem> {
    caller.require(&api_permission::POLICY_READ)?;
    Ok(Json(view(&app)))
}

/// Replace the global policy layer, or one role's override with `?role=`.
#[utoipa::path(put, path = "/v1/policy", tag = "policy", request_body = PolicyLayer, params(PolicyTarget),
    responses((status = 200, body = PolicyView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set(
    acting: Acting,
    target: Result<Query<PolicyTarget>, axum::extract::rejection::QueryRejection>,
    body: JsonBody<PolicyLayer>,
) -> Result<Json<PolicyView>, Problem> {
    let Query(target) =
        target.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    if !body.present {
        return Err(Problem::bad_request(
            "PUT /v1/policy needs a body: the whole policy layer, e.g. {\"max_ttl\":\"30d\"} ({} clears the layer)",
        ));
    }
    let role = target.role.as_deref().map(parse_role).transpose()?;
    let settings = PolicySettings::try_from(body.value)?;
    let submission = acting.submission(None, body.fingerprint, None);
    submission
        .submit(&acting.app, Command::SetPolicy { role, settings })
        .await?;
    Ok(Json(view(&acting.app)))
}
