//! `POST /api/v1/datasets/{id}/ingest`: upload a file (CSV, NDJSON, JSON array, Parquet, a spreadsheet) into
//! a dataset, through the same validate → commit path as `simpul ingest`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use simpul_catalog::{Classification, Contract, DatasetId, IdempotencyClaim, WriteMode};
use simpul_connectors::file::FileFormat;
use simpul_pipelines::{DatasetDefaults, IngestOptions, IngestReport, SchemaChoice};
use tokio::io::AsyncWriteExt;

use super::datasets::dataset_id;
use super::{ApiError, media_type, replay};
use crate::auth::Caller;
use crate::server::AppState;

/// Query parameters of an upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadParams {
    /// `append` (default) or `overwrite`.
    mode: Option<String>,
    /// `csv`, `ndjson`, `json`, `parquet`; the Content-Type decides when absent.
    format: Option<String>,
    /// Title, if this upload creates the dataset.
    title: Option<String>,
    /// Description, if this upload creates the dataset.
    description: Option<String>,
    /// Classification, if this upload creates the dataset (default `internal`).
    classification: Option<Classification>,
    /// Canonical schema to bind a new dataset to (`penduduk` or `penduduk@1`).
    schema: Option<String>,
    /// Contract for unknown columns, if this upload creates the dataset (default `freeze`).
    contract: Option<Contract>,
}

/// A body saved to a temporary file, removed when dropped.
struct SavedBody {
    path: PathBuf,
    sha256: String,
}

impl Drop for SavedBody {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = dataset_id(&id)?;
    let existing = app.catalog.state.dataset(&id).await?;
    if let Some(reason) = app.write_refusal(&caller, &id, existing.is_none()) {
        return Err(ApiError::forbidden(reason));
    }
    if !caller.can_write(existing.as_ref()) {
        let owner = existing.as_ref().map_or("its owner", |d| d.owner.as_str());
        return Err(ApiError::forbidden(format!(
            "{} may not write {id}: writing needs an admin key or a producer key of {owner}",
            caller.id()
        )));
    }
    let mode = match params.mode.as_deref() {
        None | Some("append") => WriteMode::Append,
        Some("overwrite") => WriteMode::Overwrite,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "mode must be append or overwrite, not '{other}'"
            )));
        }
    };
    let format = upload_format(params.format.as_deref(), &headers)?;
    let saved = save_body(&app, body, &headers).await?;
    let idempotency_key = crate::idempotent::key_of(&headers)?;

    if let Some(key) = &idempotency_key {
        match app
            .catalog
            .state
            .claim_idempotency_key(caller.id(), key, &saved.sha256)
            .await?
        {
            IdempotencyClaim::Proceed => {}
            IdempotencyClaim::Replay { status, body } => return Ok(replay(status, body)),
            IdempotencyClaim::Mismatch => {
                return Err(ApiError::conflict(format!(
                    "Idempotency-Key '{key}' was already used for a different body; use a new key for a new upload"
                )));
            }
            IdempotencyClaim::InProgress => {
                return Err(ApiError::conflict(format!(
                    "a request with Idempotency-Key '{key}' is still running or was interrupted; \
                     check GET /api/v1/datasets/{id}/versions before retrying with a new key"
                ))
                .with_retry_after(5));
            }
        }
    }

    if let Some(key) = &idempotency_key {
        // Before anything is committed: should this process die, recovery finds the
        // upload's commit by its source and answers the retry with it.
        let intent = crate::recovery::IngestIntent {
            kind: crate::recovery::IngestIntent::KIND.into(),
            dataset: id.to_string(),
            source: upload_source(&caller, Some(key)),
            creating: existing.is_none(),
            title: params.title.clone().unwrap_or_default(),
            description: params.description.clone().unwrap_or_default(),
            owner: caller.0.member.clone(),
            classification: params.classification.unwrap_or(Classification::Internal),
            contract: params.contract.unwrap_or_default(),
        };
        let intent = serde_json::to_value(intent).map_err(ApiError::internal)?;
        let recorded = app
            .catalog
            .state
            .record_idempotency_intents(&[(caller.id().to_string(), key.clone(), intent)])
            .await;
        if let Err(e) = recorded {
            app.catalog
                .state
                .release_idempotency_key(caller.id(), key)
                .await?;
            return Err(e.into());
        }
    }

    let upload = Upload {
        id: &id,
        creating: existing.is_none(),
        params: &params,
        mode,
        format: &format,
        saved: &saved,
        idempotency_key: idempotency_key.as_deref(),
    };
    let outcome = run_ingest(&app, &caller, upload).await;
    match (&outcome, &idempotency_key) {
        (Ok((status, body)), Some(key)) => {
            app.catalog
                .state
                .complete_idempotency_key(caller.id(), key, status.as_u16(), &body.to_string())
                .await?;
        }
        (Err(_), Some(key)) => {
            app.catalog
                .state
                .release_idempotency_key(caller.id(), key)
                .await?
        }
        _ => {}
    }
    let (status, body) = outcome?;
    Ok((status, axum::Json(body)).into_response())
}

/// One accepted upload, ready to ingest.
struct Upload<'a> {
    id: &'a DatasetId,
    creating: bool,
    params: &'a UploadParams,
    mode: WriteMode,
    format: &'a FileFormat,
    saved: &'a SavedBody,
    idempotency_key: Option<&'a str>,
}

async fn run_ingest(
    app: &AppState,
    caller: &Caller,
    upload: Upload<'_>,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let Upload {
        id,
        creating,
        params,
        mode,
        format,
        saved,
        idempotency_key,
    } = upload;
    let reader = simpul_connectors::file::open(&saved.path, format)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let source = upload_source(caller, idempotency_key);
    let options = IngestOptions {
        dataset: id.clone(),
        mode,
        defaults: DatasetDefaults {
            title: params.title.clone().unwrap_or_default(),
            description: params.description.clone().unwrap_or_default(),
            owner: caller.0.member.clone(),
            classification: params.classification.unwrap_or(Classification::Internal),
            tags: Vec::new(),
            contract: params.contract.unwrap_or_default(),
        },
        schema: match &params.schema {
            Some(name) => SchemaChoice::Canonical(
                crate::schemas::binding(&app.catalog, name)
                    .await
                    .map_err(ApiError::bad_request)?,
            ),
            None => SchemaChoice::Infer,
        },
        actor: caller.id().to_string(),
        source,
        upsert_keys: Vec::new(),
        run: None,
    };
    let report = simpul_pipelines::ingest(&app.catalog, reader, options).await?;
    crate::metrics::rows_ingested(&id.to_string(), report.rows_written, report.rows_rejected);
    let status = if creating {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, report_json(&report)))
}

/// The `source` an upload's commit records; with a key, it names the key, so that recovery
/// finds the commit of an interrupted upload.
fn upload_source(caller: &Caller, idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => format!("http upload by {} (Idempotency-Key {key})", caller.id()),
        None => format!("http upload by {}", caller.id()),
    }
}

fn report_json(report: &IngestReport) -> serde_json::Value {
    json!({
        "dataset": report.dataset,
        "run_id": report.run_id,
        "created": report.created,
        "version": report.version,
        "rows_read": report.rows_read,
        "rows_written": report.rows_written,
        "rows_rejected": report.rows_rejected,
        "schema": report.schema,
        "added_columns": report.added_columns,
        "discarded_columns": report.discarded_columns,
        "rejects": format!("/api/v1/datasets/{}/rejects", report.dataset),
        "sample_rejects": report.sample_rejects,
    })
}

fn upload_format(param: Option<&str>, headers: &HeaderMap) -> Result<FileFormat, ApiError> {
    if let Some(name) = param {
        return FileFormat::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "format '{name}' is not one of csv, tsv, ndjson, json, parquet, xlsx, xls, ods"
            ))
        });
    }
    let media = media_type(headers).unwrap_or_default();
    FileFormat::from_media_type(&media).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "cannot read a body of type '{media}'; send text/csv, application/x-ndjson, application/json \
             or application/vnd.apache.parquet, or pass ?format="
        ))
    })
}

/// Streams the body to a temporary file, hashing it, and refuses it past the body limit.
async fn save_body(app: &AppState, body: Body, headers: &HeaderMap) -> Result<SavedBody, ApiError> {
    let limit = app.config.http.body_limit_bytes;
    super::extract::declared_length(headers, limit)?;
    let dir = app.config.data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let mut saved = SavedBody {
        path: dir.join(format!("upload-{}", uuid::Uuid::new_v4())),
        sha256: String::new(),
    };
    let mut file = tokio::fs::File::create(&saved.path)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload was interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(ApiError::too_large(limit));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    saved.sha256 = hex::encode(hasher.finalize());
    Ok(saved)
}
