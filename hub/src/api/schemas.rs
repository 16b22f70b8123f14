//! The schema registry over HTTP, and validation without writing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use simpul_catalog::SchemaVersion;
use simpul_connectors::file::{FileFormat, open_bytes};

use super::{ApiError, media_type};
use crate::auth::Caller;
use crate::server::AppState;

/// Errors listed in one validation answer; the counts are always complete.
const MAX_LISTED_ERRORS: usize = 1000;

pub(super) async fn list(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let versions = app.catalog.state.schema_versions(None).await?;
    let mut by_name: BTreeMap<String, Vec<SchemaVersion>> = BTreeMap::new();
    for version in versions {
        by_name
            .entry(version.name.clone())
            .or_default()
            .push(version);
    }
    let schemas: Vec<Value> = by_name
        .into_iter()
        .map(|(name, versions)| {
            let latest = versions
                .last()
                .map(|v| (v.version.clone(), v.title.clone()));
            json!({
                "name": name,
                "title": latest.as_ref().map(|l| l.1.clone()),
                "latest": latest.map(|l| l.0),
                "versions": versions.iter().map(|v| v.version.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "schemas": schemas })))
}

pub(super) async fn versions(
    State(app): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = app.catalog.state.schema_versions(Some(&name)).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "schema '{name}' is not registered"
        )));
    }
    Ok(Json(json!({ "name": name, "versions": versions })))
}

pub(super) async fn document(
    State(app): State<AppState>,
    _caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let document = app
        .catalog
        .state
        .schema_document(&name, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schema {name} {version} is not registered")))?;
    let mut response = Json(document).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(response)
}

/// `POST /api/v1/validate/{schema}`: checks a payload against a schema (`penduduk`,
/// `penduduk@1` or `penduduk@1.0.0`) and returns every error, writing nothing.
pub(super) async fn validate(
    State(app): State<AppState>,
    _caller: Caller,
    Path(schema): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let compiled = match schema.split_once('@') {
        Some((name, version)) if version.contains('.') => {
            app.catalog
                .schemas
                .compiled(&app.catalog.state, name, version)
                .await
        }
        _ => {
            let binding = crate::schemas::binding(&app.catalog, &schema)
                .await
                .map_err(ApiError::not_found)?;
            app.catalog
                .schemas
                .resolve(&app.catalog.state, &binding)
                .await
        }
    }
    .map_err(|e| ApiError::not_found(e.to_string()))?;
    let (format, body) = payload_format(&headers, body)?;
    let reader =
        open_bytes("payload", body, &format).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (mut rows, mut rejected) = (0u64, 0u64);
    let mut errors: Vec<Value> = Vec::new();
    let mut report = |line: u64, list: &[simpul_schemas::FieldError]| {
        for error in list {
            if errors.len() < MAX_LISTED_ERRORS {
                errors.push(json!({
                    "line": line, "pointer": error.pointer, "keyword": error.keyword, "message": error.message,
                }));
            }
        }
    };
    for batch in reader {
        let batch = batch.map_err(|e| ApiError::unprocessable(e.to_string()))?;
        rows += batch.records_read();
        let validation = compiled
            .validate(&batch.batch, &batch.positions)
            .map_err(ApiError::internal)?;
        for reject in batch.malformed.iter().chain(&validation.rejected) {
            rejected += 1;
            report(reject.position.line, &reject.errors);
        }
    }
    Ok(Json(json!({
        "schema": compiled.name,
        "version": compiled.version,
        "records": rows,
        "valid": rows - rejected,
        "invalid": rejected,
        "errors": errors,
        "errors_truncated": errors.len() >= MAX_LISTED_ERRORS,
    })))
}

/// The payload's format from its Content-Type: a JSON object or array, NDJSON or CSV. A
/// lone JSON object is validated as one record.
fn payload_format(headers: &HeaderMap, body: Bytes) -> Result<(FileFormat, Bytes), ApiError> {
    let media = media_type(headers)
        .filter(|m| m != "application/x-www-form-urlencoded")
        .unwrap_or_else(|| "application/json".into());
    let format = FileFormat::from_media_type(&media)
        .filter(|f| !matches!(f, FileFormat::Parquet))
        .ok_or_else(|| {
            ApiError::unsupported_media_type(format!(
                "cannot validate a body of type '{media}'; send application/json (one record or an array), \
                 application/x-ndjson or text/csv"
            ))
        })?;
    let lone_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let body = if format == FileFormat::JsonArray && lone_object {
        let mut wrapped = Vec::with_capacity(body.len() + 2);
        wrapped.push(b'[');
        wrapped.extend_from_slice(&body);
        wrapped.push(b']');
        Bytes::from(wrapped)
    } else {
        body
    };
    Ok((format, body))
}
