//! `/v1/roles`: named permission sets.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use latch_core::{Command, PermissionSet, Role, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::routes::accounts::parse_role;
use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;
use crate::api::extractors::submit::Acting;

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    pub permissions: Vec<String>,
    pub description: String,
    pub builtin: bool,
}

impl From<&Role> for RoleView {
    fn from(role: &Role) -> Self {
        RoleView {
            name: role.name.to_string(),
            permissions: role.permissions.iter().map(ToString::to_string).collect(),
            description: role.description.clone(),
            builtin: role.builtin,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineRole {
    /// `resource:action` strings with `*` wildcards.
    pub permissions: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// List roles, built-in and custom.
#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    responses((status = 200, body = RoleList), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<RoleList>, Problem> {
    caller.require(&api_permission::ROLES_READ)?;
    let state = app.commands.state();
    Ok(Json(RoleList {
        roles: state.roles().map(RoleView::from).collect(),
    }))
}

/// Define or redefine a custom role. Shrinking a role shrinks every token of its accounts at once.
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles", request_body = DefineRole, params(("name" = String, Path)),
    responses((status = 200, body = RoleView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn define(
    acting: Acting,
    Path(name): Path<String>,
    body: JsonBody<DefineRole>,
) -> Result<Json<RoleView>, Problem> {
    let name = parse_role(&name)?;
    let permissions = PermissionSet::parse(&body.value.permissions)
        .map_err(|e| Problem::invalid(format!("permissions: {e}")))?;
    let submission = acting.submission(None, body.fingerprint, None);
    let command = Command::DefineRole {
        name: name.clone(),
        permissions,
        description: body.value.description.unwrap_or_default(),
    };
    submission.submit(&acting.app, command).await?;
    let state = acting.app.commands.state();
    let role = state
        .role(&name)
        .ok_or_else(|| Problem::internal("role vanished"))?;
    Ok(Json(role.into()))
}

/// Delete a custom role no account holds.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(acting: Acting, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    let name = parse_role(&name)?;
    let submission = acting.submission(None, String::new(), None);
    submission
        .submit(&acting.app, Command::DeleteRole { name })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
