//! `/api/v1/bus`: the members and subsystems of the bus.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use simpul_catalog::Role;

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::bus::{Registration, list, register_member, register_subsystem};
use crate::server::AppState;

fn identity(app: &AppState) -> Result<simpul_catalog::BusIdentity, ApiError> {
    app.config.bus_identity().map_err(ApiError::internal)
}

/// Every member and its subsystems, for any registered client (X-Road's `listClients`).
pub(super) async fn members(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let identity = identity(&app)?;
    let members = list(&app.catalog.state, &identity).await?;
    Ok(Json(json!({
        "instance": identity.instance,
        "member_class": identity.member_class,
        "members": members,
    })))
}

pub(super) async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<Registration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering members")?;
    let member =
        register_member(&app.catalog.state, &identity(&app)?, &request, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!(member))))
}

pub(super) async fn add_subsystem(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<Registration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering subsystems")?;
    let subsystem =
        register_subsystem(&app.catalog.state, &identity(&app)?, &request, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!(subsystem))))
}
