//! `POST /v1/backup`: a consistent backup of the running latchd's log into
//! a new directory on latchd's host (`latchd backup --to DIR` calls it).
//! Needs `backup:create`, which only `admin` holds by default: it writes
//! where latchd's user may write.

use axum::Json;
use axum::extract::{Extension, State};
use latch_core::api_permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;
use crate::backup::{BackupError, take_backup};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// An absolute path on latchd's host that does not exist yet.
    pub to: String,
    /// Rewrite the copy's JSON records in the binary format (ADR 0027);
    /// the running log is left as it is, every hash as it was.
    #[serde(default)]
    pub upgrade_records: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    /// The backup: a data directory (`<dir>/log`).
    pub dir: String,
    /// The last event it holds.
    pub position: u64,
    /// Its chain head: `latch audit verify --data-dir <dir>` must end here.
    pub head_hash: String,
    /// Records the copy's upgrade rewrote, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_upgraded: Option<u64>,
    pub took_ms: u64,
}

/// Back up the event log, consistently, while latchd runs.
#[utoipa::path(post, path = "/v1/backup", tag = "operations", request_body = BackupRequest,
    responses((status = 201, body = BackupView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 500, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<BackupRequest>,
) -> Result<(axum::http::StatusCode, Json<BackupView>), Problem> {
    caller.require(&api_permission::BACKUP_CREATE)?;
    let to = std::path::PathBuf::from(&body.value.to);
    let upgrade_records = body.value.upgrade_records;
    let store = app.commands.store().clone();
    let started = std::time::Instant::now();
    let taken = tokio::task::spawn_blocking(move || take_backup(&store, &to, upgrade_records))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|error| match error {
            BackupError::NotAbsolute(_) => Problem::invalid(format!("to: {error}")),
            BackupError::Exists(_) => Problem::conflict(format!("to: {error}")),
            BackupError::Create { .. } | BackupError::Store(_) | BackupError::Upgrade { .. } => {
                Problem::internal(error.to_string())
            }
        })?;
    tracing::info!(dir = %taken.dir.display(), position = taken.position, "backup taken");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(BackupView {
            dir: taken.dir.display().to_string(),
            position: taken.position,
            head_hash: taken.head_hash.to_hex(),
            records_upgraded: taken.upgraded.map(|report| report.rewritten),
            took_ms: started.elapsed().as_millis() as u64,
        }),
    ))
}
