//! Evidence attachments (photos, letters) of a case, in the lake's object store under
//! `_objects/complaints/<case>/<sha256>`, with their metadata in `complaint_attachments`.
//!
//! An upload is checked before anything is kept: its declared type must be one of
//! `complaints.attachment_types` and match the file's first bytes, it must fit
//! `complaints.attachment_max_bytes`, and the configured virus scanner (the hook point,
//! `complaints.attachment_scan_command`) must call it clean. The same bytes uploaded again to
//! the same case return the attachment already kept. Reading an attachment checks its
//! SHA-256 against the one recorded.

use std::process::Stdio;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simpul_catalog::timestamp;
use tokio::io::AsyncWriteExt;

use super::api::{may_see_attachments, module};
use super::{CaseRow, Complaints, db};
use crate::api::ApiError;
use crate::auth::Caller;
use crate::server::AppState;

/// Most attachments one case may hold.
pub const MAX_PER_CASE: i64 = 20;

/// The first bytes of the types whose content can be recognised.
fn sniff_matches(content_type: &str, head: &[u8]) -> Option<bool> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    Some(match content_type {
        "image/jpeg" => starts(&[0xFF, 0xD8, 0xFF]),
        "image/png" => starts(b"\x89PNG\r\n\x1a\n"),
        "image/gif" => starts(b"GIF87a") || starts(b"GIF89a"),
        "image/webp" => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
        "application/pdf" => starts(b"%PDF-"),
        _ => return None,
    })
}

/// The accepted types, from the configured list.
fn accepted(config: &crate::config::ComplaintsConfig) -> Vec<String> {
    config
        .attachment_types
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// One kept attachment.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Stored {
    id: String,
    case_id: String,
    file_name: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    object_key: String,
    scan: String,
    uploaded_by: String,
    uploaded_at: String,
}

const COLUMNS: &str = "id, case_id, file_name, content_type, size_bytes, sha256, object_key, scan, uploaded_by, uploaded_at";

impl Stored {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "case_id": self.case_id,
            "file_name": self.file_name,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "scan": self.scan,
            "uploaded_by": self.uploaded_by,
            "uploaded_at": self.uploaded_at,
            "href": format!("/api/v1/complaints/{}/attachments/{}", self.case_id, self.id),
        })
    }
}

/// The attachments of a case, oldest first, as JSON.
pub async fn list_json(module: &Complaints, case_id: &str) -> Result<Vec<Value>, ApiError> {
    let rows: Vec<Stored> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM complaint_attachments WHERE case_id = $1 ORDER BY uploaded_at, id"
    ))
    .bind(case_id)
    .fetch_all(module.catalog.state.pool())
    .await
    .map_err(db)?;
    Ok(rows.iter().map(Stored::json).collect())
}

/// The attachment of `case_id` with these bytes, if one is kept.
async fn kept(
    module: &Complaints,
    case_id: &str,
    sha256: &str,
) -> Result<Option<Stored>, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM complaint_attachments WHERE case_id = $1 AND sha256 = $2"
    ))
    .bind(case_id)
    .bind(sha256)
    .fetch_optional(module.catalog.state.pool())
    .await
    .map_err(db)
}

/// A file name safe to keep and to send back: no path, no control characters.
fn clean_file_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "lampiran".into()
    } else {
        cleaned
    }
}

/// Reads at most `limit` bytes of `body`; more is a 413. The rest of a body somewhat over
/// the limit (up to `limit` again) is read and dropped first, so that the client, still
/// sending, reads the 413 instead of a closed connection; a larger one is cut off.
async fn read_capped(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::payload_too_large(format!(
            "an attachment may be at most {limit} bytes (complaints.attachment_max_bytes)"
        ))
    };
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if (buffer.len() + chunk.len()) as u64 > limit {
            let mut dropped = (buffer.len() + chunk.len()) as u64;
            drop(buffer);
            while dropped <= limit.saturating_mul(2) {
                match stream.next().await {
                    Some(Ok(more)) => dropped += more.len() as u64,
                    _ => break,
                }
            }
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// What the scanner said.
enum Scan {
    Clean,
    NotScanned,
    Infected(String),
}

/// Runs the configured scanner with the file on standard input.
async fn scan(config: &crate::config::ComplaintsConfig, bytes: &Bytes) -> Result<Scan, ApiError> {
    let mut words = config.attachment_scan_command.split_whitespace();
    let Some(program) = words.next() else {
        return Ok(Scan::NotScanned);
    };
    let failed = |why: String| {
        tracing::warn!(%why, "the attachment virus scan failed");
        ApiError::unavailable(format!(
            "the virus scan failed ({why}); nothing was kept, try again later"
        ))
    };
    let mut child = tokio::process::Command::new(program)
        .args(words)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start {program}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no standard input".into()))?;
    let input = bytes.clone();
    let feed = tokio::spawn(async move {
        // A scanner that stops reading early (it found something) closes the pipe: fine.
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let limit = Duration::from_secs(config.attachment_scan_timeout_secs.max(1));
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("{program} took longer than {} s", limit.as_secs())))?
        .map_err(|e| failed(format!("{program}: {e}")))?;
    let _ = feed.await;
    let said = |text: &[u8]| {
        String::from_utf8_lossy(text)
            .trim()
            .chars()
            .take(500)
            .collect::<String>()
    };
    match output.status.code() {
        Some(0) => Ok(Scan::Clean),
        Some(1) => {
            let mut report = said(&output.stdout);
            if report.is_empty() {
                report = said(&output.stderr);
            }
            Ok(Scan::Infected(report))
        }
        code => Err(failed(format!(
            "{program} exited with {}: {}",
            code.map_or("a signal".to_string(), |c| c.to_string()),
            said(&output.stderr)
        ))),
    }
}

/// `POST /complaints/{id}/attachments?filename=`.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    filename: Option<String>,
}

async fn readable_case(
    module: &Complaints,
    caller: &Caller,
    id: &str,
) -> Result<CaseRow, ApiError> {
    let case = module
        .case(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    if !may_see_attachments(module, caller, &case) {
        return Err(ApiError::forbidden(format!(
            "the evidence of case {id} is for its OPD ({}), the Regent's office, admins and the key that filed it",
            case.opd.as_deref().unwrap_or("none yet")
        )));
    }
    Ok(case)
}

/// `POST /api/v1/complaints/{id}/attachments`: the body is the file, its `Content-Type` the
/// type; `?filename=` names it. 201 with the attachment; 200 with the one already kept when
/// the same bytes were uploaded before.
pub(crate) async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    let case = readable_case(module, &caller, &id).await?;
    if super::workflow::is_closed(case.kind(), &case.status) {
        return Err(ApiError::conflict(format!(
            "case {id} is closed ({}); evidence can no longer be added",
            case.status
        )));
    }
    let types = accepted(&module.config);
    let declared = crate::api::media_type(&headers).unwrap_or_default();
    if !types.contains(&declared) {
        return Err(ApiError::unsupported_media_type(format!(
            "an attachment's Content-Type must be one of {}; got '{}'",
            types.join(", "),
            if declared.is_empty() {
                "none"
            } else {
                &declared
            }
        )));
    }
    let limit = module.config.attachment_max_bytes;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit.saturating_mul(2)
    {
        // Far too large to read only to refuse it: answered at once, and the connection
        // closes (its unread body makes it unusable for another request).
        let mut refused = ApiError::payload_too_large(format!(
            "the attachment is {length} bytes; at most {limit} are accepted (complaints.attachment_max_bytes)"
        ))
        .into_response();
        refused
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(refused);
    }
    let bytes = read_capped(body, limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::unprocessable("the attachment is empty"));
    }
    if sniff_matches(&declared, &bytes[..bytes.len().min(16)]) == Some(false) {
        return Err(ApiError::unsupported_media_type(format!(
            "the file's content is not {declared}, as its Content-Type says"
        )));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let state = &module.catalog.state;
    if let Some(existing) = kept(module, &id, &sha256).await? {
        return Ok((StatusCode::OK, Json(existing.json())).into_response());
    }
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM complaint_attachments WHERE case_id = $1")
            .bind(&id)
            .fetch_one(state.pool())
            .await
            .map_err(db)?;
    if count >= MAX_PER_CASE {
        return Err(ApiError::unprocessable(format!(
            "case {id} already holds {MAX_PER_CASE} attachments, the most one case may hold"
        )));
    }
    let verdict = match scan(&module.config, &bytes).await? {
        Scan::Infected(report) => {
            state
                .audit(
                    caller.id(),
                    "complaints.attachment.refused",
                    &id,
                    json!({"sha256": sha256, "size_bytes": bytes.len(), "scanner": report}),
                )
                .await?;
            return Err(ApiError::unprocessable(format!(
                "the virus scanner refused the file: {report}"
            )));
        }
        Scan::Clean => "clean",
        Scan::NotScanned => "not_scanned",
    };
    let object_key = format!("complaints/{id}/{sha256}");
    module
        .catalog
        .lake
        .put_object(&object_key, bytes.clone())
        .await?;
    let stored = Stored {
        id: uuid::Uuid::now_v7().to_string(),
        case_id: id.clone(),
        file_name: clean_file_name(query.filename.as_deref()),
        content_type: declared,
        size_bytes: bytes.len() as i64,
        sha256,
        object_key,
        scan: verdict.into(),
        uploaded_by: caller.id().to_string(),
        uploaded_at: timestamp(Utc::now()),
    };
    let inserted = sqlx::query(&format!(
        "INSERT INTO complaint_attachments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (case_id, sha256) DO NOTHING"
    ))
    .bind(&stored.id)
    .bind(&stored.case_id)
    .bind(&stored.file_name)
    .bind(&stored.content_type)
    .bind(stored.size_bytes)
    .bind(&stored.sha256)
    .bind(&stored.object_key)
    .bind(&stored.scan)
    .bind(&stored.uploaded_by)
    .bind(&stored.uploaded_at)
    .execute(state.pool())
    .await
    .map_err(db)?;
    if inserted.rows_affected() == 0 {
        // The same file, uploaded twice at once: the other request kept it (same object).
        let kept = kept(module, &id, &stored.sha256)
            .await?
            .ok_or_else(|| ApiError::internal("a kept attachment vanished"))?;
        return Ok((StatusCode::OK, Json(kept.json())).into_response());
    }
    state
        .audit(
            caller.id(),
            "complaints.attachment.add",
            &id,
            json!({"attachment": stored.id, "sha256": stored.sha256, "size_bytes": stored.size_bytes,
                   "content_type": stored.content_type, "scan": stored.scan}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(stored.json())).into_response())
}

/// `GET /api/v1/complaints/{id}/attachments`: the case's evidence, oldest first.
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    readable_case(module, &caller, &id).await?;
    Ok(Json(json!({"attachments": list_json(module, &id).await?})))
}

/// `GET /api/v1/complaints/{id}/attachments/{attachment}`: the file, checked against its
/// SHA-256.
pub(crate) async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    readable_case(module, &caller, &id).await?;
    let stored: Stored = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM complaint_attachments WHERE case_id = $1 AND id = $2"
    ))
    .bind(&id)
    .bind(&attachment)
    .fetch_optional(module.catalog.state.pool())
    .await
    .map_err(db)?
    .ok_or_else(|| ApiError::not_found(format!("case {id} has no attachment {attachment}")))?;
    let bytes = module
        .catalog
        .lake
        .get_object(&stored.object_key)
        .await?
        .ok_or_else(|| {
            ApiError::internal(format!(
                "attachment {attachment} of case {id} is recorded but its file is missing from the object store"
            ))
        })?;
    if hex::encode(Sha256::digest(&bytes)) != stored.sha256 {
        return Err(ApiError::internal(format!(
            "attachment {attachment} of case {id} does not match its recorded SHA-256; the stored file is damaged"
        )));
    }
    audit_read(module, &caller, &id, &stored).await?;
    let disposition = format!("attachment; filename=\"{}\"", stored.file_name);
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    let value = |text: &str| HeaderValue::from_str(text).map_err(ApiError::internal);
    headers.insert(header::CONTENT_TYPE, value(&stored.content_type)?);
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition)
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    headers.insert("x-checksum-sha256", value(&stored.sha256)?);
    headers.insert(header::ETAG, value(&format!("\"{}\"", stored.sha256))?);
    Ok(response)
}

/// Reading evidence is an action on personal data: audited.
async fn audit_read(
    module: &Complaints,
    caller: &Caller,
    id: &str,
    stored: &Stored,
) -> Result<(), ApiError> {
    module
        .catalog
        .state
        .audit(
            caller.id(),
            "complaints.attachment.read",
            id,
            json!({"attachment": stored.id}),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_paths_and_quotes() {
        assert_eq!(clean_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(
            clean_file_name(Some("C:\\foto\\jalan \"rusak\".jpg")),
            "jalan rusak.jpg"
        );
        assert_eq!(clean_file_name(Some(".bashrc")), "bashrc");
        assert_eq!(clean_file_name(None), "lampiran");
    }

    #[test]
    fn known_types_are_checked_by_their_first_bytes() {
        assert_eq!(
            sniff_matches("image/png", b"\x89PNG\r\n\x1a\n...."),
            Some(true)
        );
        assert_eq!(sniff_matches("image/png", b"%PDF-1.7"), Some(false));
        assert_eq!(sniff_matches("application/pdf", b"%PDF-1.7"), Some(true));
        assert_eq!(
            sniff_matches("image/webp", b"RIFF\0\0\0\0WEBPVP8 "),
            Some(true)
        );
        assert_eq!(sniff_matches("text/plain", b"hello"), None);
    }
}
