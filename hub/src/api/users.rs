//! User accounts over HTTP, for admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use simpul_catalog::Role;

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::server::AppState;
use crate::users::{NewUser, create_user, revoke_user, set_password};

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin], "listing user accounts")?;
    let users = app.catalog.state.users().await?;
    Ok(Json(json!({ "users": users })))
}

pub(super) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "making user accounts")?;
    let user = create_user(&app.catalog.state, &request, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPassword {
    password: String,
}

pub(super) async fn password(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin], "setting passwords")?;
    if set_password(&app.catalog.state, &id, &request.password, caller.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_user(&id))
    }
}

pub(super) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin], "revoking user accounts")?;
    if revoke_user(&app.catalog.state, &id, caller.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_user(&id))
    }
}

fn no_such_user(id: &str) -> ApiError {
    ApiError::not_found(format!("there is no active user account '{id}'"))
}
