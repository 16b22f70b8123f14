//! Key management over HTTP, for admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use simpul_catalog::Role;

use super::{ApiError, ApiJson};
use crate::auth::{Caller, NewKey, issue_key, revoke_key};
use crate::server::AppState;

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin], "listing keys")?;
    let clients = app.catalog.state.clients().await?;
    Ok(Json(json!({ "clients": clients })))
}

pub(super) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "issuing keys")?;
    let (client, key) = issue_key(&app.catalog.state, &request, caller.id()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "client": client, "key": key })),
    ))
}

pub(super) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin], "revoking keys")?;
    if revoke_key(&app.catalog.state, &id, caller.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "there is no active API client with id '{id}'"
        )))
    }
}
