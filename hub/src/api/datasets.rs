//! The catalog API: list, show, update and history of datasets.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_catalog::{DatasetFilter, DatasetId, DatasetPatch, Lake, LakeTable, PublishMode, Role};

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::server::AppState;

/// Parses a dataset id from the path, answering 400 for malformed ids.
pub(super) fn dataset_id(raw: &str) -> Result<DatasetId, ApiError> {
    raw.parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::bad_request(e.to_string()))
}

pub(super) async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    Query(filter): Query<DatasetFilter>,
) -> Result<Json<Value>, ApiError> {
    let (datasets, total) = app.catalog.state.list_datasets(&filter).await?;
    Ok(Json(json!({
        "total": total,
        "limit": filter.limit.unwrap_or(50).clamp(1, 500),
        "offset": filter.offset.unwrap_or(0).max(0),
        "datasets": datasets,
    })))
}

pub(super) async fn show(
    State(app): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = dataset_id(&id)?;
    let meta = app.catalog.dataset(&id).await?;
    let delta = app
        .catalog
        .lake
        .load_existing(&LakeTable::Data(id.clone()))
        .await?;
    let stats = Lake::stats(&delta)?;
    let schema = Lake::arrow_schema(&delta)?;
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    let freshness = meta.freshness(chrono::Utc::now());
    let lineage = app.catalog.state.lineage(&id.to_string()).await?;
    Ok(Json(json!({
        "dataset": meta,
        "freshness": freshness,
        "lineage": lineage,
        "schema": {"fields": fields},
        "statistics": stats,
        "rejects_table": format!("{}.{}", id.namespace(), id.rejects_name()),
    })))
}

pub(super) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<DatasetPatch>,
) -> Result<Json<Value>, ApiError> {
    let id = dataset_id(&id)?;
    let meta = app.catalog.dataset(&id).await?;
    if !caller.can_write(Some(&meta)) {
        return Err(ApiError::forbidden(format!(
            "{id} is owned by {}; only its owner's producers and admins may change it",
            meta.owner
        )));
    }
    if patch.owner.is_some() && caller.0.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may hand a dataset to another owner",
        ));
    }
    if patch.write_mode == Some(PublishMode::Upsert) {
        crate::publish::upsert_keys(&app.catalog, &meta)
            .await
            .map_err(ApiError::unprocessable)?;
    }
    let updated = app.catalog.state.update_dataset(&id, &patch).await?;
    app.catalog
        .state
        .audit(
            caller.id(),
            "dataset.update",
            &id.to_string(),
            json!({
                "title": patch.title, "description": patch.description, "owner": patch.owner,
                "classification": patch.classification, "tags": patch.tags,
                "contract": patch.contract, "write_mode": patch.write_mode,
            }),
        )
        .await?;
    Ok(Json(json!({ "dataset": updated })))
}

/// Query parameters of the history.
#[derive(Debug, Deserialize)]
pub(super) struct VersionParams {
    /// At most this many commits, newest first (default 100).
    limit: Option<usize>,
}

pub(super) async fn versions(
    State(app): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<VersionParams>,
) -> Result<Json<Value>, ApiError> {
    let id = dataset_id(&id)?;
    app.catalog.dataset(&id).await?;
    let history = app
        .catalog
        .lake
        .history(
            &LakeTable::Data(id.clone()),
            Some(params.limit.unwrap_or(100).max(1)),
        )
        .await?;
    Ok(Json(json!({ "dataset": id, "versions": history })))
}
