//! The bus's exchanges: publishing records to a dataset (`POST /bus/datasets/{id}/records`),
//! reading its change feed (`GET /bus/datasets/{id}/changes`), and the hub's public keys
//! that verify receipts, feeds and the message log.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simpul_catalog::{DatasetMeta, IdempotencyClaim, KeyClaim, MessageEntry, Role};
use simpul_connectors::file::FileFormat;
use simpul_pipelines::IngestError;

use super::datasets::dataset_id;
use super::{ApiError, answer, media_type, replay};
use crate::auth::Caller;
use crate::changes::FeedFormat;
use crate::publish::PublishRequest;
use crate::server::AppState;

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    crate::idempotent::key_of(headers)?.ok_or_else(|| {
        ApiError::bad_request(
            "a publish needs an Idempotency-Key header (a UUID is fine): a retry with the same key is never applied twice",
        )
    })
}

fn publish_format(raw: Option<&str>, headers: &HeaderMap) -> Result<FileFormat, ApiError> {
    let name = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.into_owned());
    let format = match &name {
        Some(name) => FileFormat::from_name(name),
        None => FileFormat::from_media_type(&media_type(headers).unwrap_or_default()),
    };
    match format {
        Some(
            f @ (FileFormat::Ndjson
            | FileFormat::JsonArray
            | FileFormat::Csv(_)
            | FileFormat::ArrowIpc),
        ) => Ok(f),
        _ => Err(ApiError::unsupported_media_type(
            "publish records as application/x-ndjson, application/json (an array), text/csv or \
             application/vnd.apache.arrow.stream, or pass ?format=ndjson|json|csv|arrow",
        )),
    }
}

/// Reads the whole body, refusing it past the limit.
async fn read_body(app: &AppState, body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let limit = app.config.http.body_limit_bytes;
    super::extract::read_limited(body, headers, limit, || ApiError::too_large(limit)).await
}

/// `POST /api/v1/bus/datasets/{id}/records`: validates the records, lands them in the next
/// group commit, and answers with the signed receipt.
pub(super) async fn publish(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = dataset_id(&id)?;
    let dataset = app.catalog.dataset(&id).await?;
    if let Some(reason) = app.write_refusal(&caller, &id, false) {
        return Err(ApiError::forbidden(reason));
    }
    if !crate::auth::may_publish(&app, &caller, &dataset).await? {
        return Err(ApiError::forbidden(format!(
            "{} may not publish to {id}: publishing needs a producer key of {}, an admin key, or a publish grant",
            caller.id(),
            dataset.owner
        )));
    }
    // Publish keys live apart from upload keys (`POST …/ingest`) of the same client.
    let sent_key = idempotency_key(&headers)?;
    let key = format!("bus:{sent_key}");
    let format = publish_format(raw.as_deref(), &headers)?;
    let body = read_body(&app, body, &headers).await?;
    // From the claim on, the publish runs on a task of its own: a client that goes away
    // mid-way drops only its wait for the answer, and the key is still either completed
    // by the committer or released, never left claimed with nobody to finish it.
    tokio::spawn(claim_and_publish(
        app, caller, dataset, format, body, key, sent_key,
    ))
    .await
    .map_err(|e| ApiError::internal(format!("the publish stopped: {e}")))?
}

/// A publish whose body was read, from its key's claim to its answer. `key` is the key as
/// stored (`bus:` + `sent_key`, the header's value).
async fn claim_and_publish(
    app: AppState,
    caller: Caller,
    dataset: DatasetMeta,
    format: FileFormat,
    body: Bytes,
    key: String,
    sent_key: String,
) -> Result<Response, ApiError> {
    let sha256 = hex::encode(Sha256::digest(&body));
    let body_len = body.len() as u64;
    let claim = KeyClaim {
        client_id: caller.id().to_string(),
        key: key.clone(),
        request_sha256: sha256.clone(),
    };
    match app
        .publisher
        .claim(claim)
        .await
        .map_err(ApiError::internal)?
    {
        IdempotencyClaim::Proceed => {}
        IdempotencyClaim::Replay { status, body } => {
            // A retry is an exchange too: logged, with the version it was first given.
            let stored: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            app.messagelog
                .record(MessageEntry {
                    message_id: uuid::Uuid::now_v7().to_string(),
                    at: chrono::Utc::now(),
                    service: "publish".into(),
                    client_id: Some(caller.id().to_string()),
                    peer: None,
                    dataset: Some(dataset.id.to_string()),
                    version: stored["receipt"]["version"].as_i64(),
                    request_bytes: body_len,
                    response_bytes: body.len() as u64,
                    status,
                    payload_sha256: Some(sha256),
                    detail: json!({
                        "replay_of": stored["receipt"]["message_id"],
                        "idempotency_key": sent_key,
                    }),
                })
                .await;
            return Ok(replay(status, body));
        }
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::conflict(format!(
                "Idempotency-Key '{sent_key}' was already used for a different body; use a new key for new records"
            )));
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::conflict(format!(
                "a publish with Idempotency-Key '{sent_key}' is still running; retry in a moment"
            ))
            .with_retry_after(1));
        }
    }
    match publish_claimed(&app, &caller, &dataset, format, body, sha256, &key).await {
        // The committer stored the answer under the key with the commit's other answers.
        Ok(published) => Ok(answer(published.status, published.body.to_string())),
        Err(e) => {
            app.catalog
                .state
                .release_idempotency_key(caller.id(), &key)
                .await?;
            Err(e)
        }
    }
}

async fn publish_claimed(
    app: &AppState,
    caller: &Caller,
    dataset: &DatasetMeta,
    format: FileFormat,
    body: Bytes,
    sha256: String,
    key: &str,
) -> Result<crate::publish::Published, ApiError> {
    let request_bytes = body.len() as u64;
    let reader = simpul_connectors::file::open_bytes("body", body, &format)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let records = simpul_pipelines::check_records(&app.catalog, dataset, reader, caller.id())
        .await
        .map_err(|e| match e {
            IngestError::Source(e) => ApiError::bad_request(e.to_string()),
            IngestError::Catalog(e) => ApiError::from(e),
            other => ApiError::unprocessable(other.to_string()),
        })?;
    if records.records_read == 0 {
        return Err(ApiError::unprocessable("the body holds no records"));
    }
    let reasons: Vec<Value> = records
        .rejected
        .iter()
        .map(|r| {
            json!({
                "line": r.position.line,
                "reason": r.reason(),
                "errors": r.errors,
            })
        })
        .collect();
    let request = PublishRequest {
        message_id: uuid::Uuid::now_v7().to_string(),
        client_id: caller.id().to_string(),
        payload_sha256: sha256,
        request_bytes,
        idempotency_key: key.to_string(),
        records,
        reasons,
    };
    let published = app
        .publisher
        .publish(&dataset.id, request)
        .await
        .map_err(ApiError::internal)?;
    let receipt = &published.receipt;
    crate::metrics::rows_ingested(&dataset.id.to_string(), receipt.accepted, receipt.rejected);
    Ok(published)
}

/// The change feed's query string.
struct ChangesQuery {
    since_version: i64,
    max_versions: Option<i64>,
    format: FeedFormat,
}

impl ChangesQuery {
    fn parse(raw: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut since_version = None;
        let mut max_versions = None;
        let mut format = None;
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let number = |name: &str| {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{name} must be a whole number of 0 or more, not '{value}'"
                        ))
                    })
            };
            match key.as_ref() {
                "since_version" => since_version = Some(number("since_version")?),
                "max_versions" => max_versions = Some(number("max_versions")?),
                "format" => {
                    format = Some(FeedFormat::from_name(&value).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "format must be ndjson or arrow, not '{value}'"
                        ))
                    })?);
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter '{other}'; use since_version, max_versions, format"
                    )));
                }
            }
        }
        let format = match format {
            Some(format) => format,
            None => FeedFormat::from_accept(headers.get(header::ACCEPT)),
        };
        Ok(Self {
            since_version: since_version.ok_or_else(|| {
                ApiError::bad_request(
                    "since_version is required: 0 reads every change from the start",
                )
            })?,
            max_versions,
            format,
        })
    }
}

/// `GET /api/v1/bus/datasets/{id}/changes?since_version=N`: every row committed after
/// version N, with its version and commit time, ending with the hub's signed trailer.
pub(super) async fn changes(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = dataset_id(&id)?;
    let query = ChangesQuery::parse(raw.as_deref(), &headers)?;
    let feed = crate::changes::read(
        &app,
        &caller.sql_access(),
        "changes",
        &id,
        query.since_version,
        query.max_versions,
    )
    .await?;
    let entry = MessageEntry {
        message_id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        service: "changes".into(),
        client_id: Some(caller.id().to_string()),
        peer: None,
        dataset: Some(id.to_string()),
        version: Some(feed.to_version),
        request_bytes: 0,
        response_bytes: 0,
        status: 200,
        payload_sha256: None,
        detail: json!({"since_version": query.since_version}),
    };
    Ok(crate::changes::respond(
        &app,
        &id,
        query.since_version,
        feed,
        query.format,
        entry,
    ))
}

/// `GET /api/v1/bus/keys`: the hub's public keys, current and retired.
pub(super) async fn keys(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let keys = app.catalog.state.hub_keys().await?;
    Ok(Json(json!({
        "current": app.signer.key_id(),
        "keys": keys,
    })))
}

/// `POST /api/v1/bus/keys/rotate`: a new signing key; the old one stays published.
pub(super) async fn rotate_key(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "rotating the hub's signing key")?;
    let key = crate::bus::rotate_signing_key(&app.signer, &app.catalog.state, caller.id()).await?;
    Ok((StatusCode::CREATED, Json(json!(key))))
}

/// A peer registration.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPeer {
    /// The peer member, `INSTANCE/CLASS/MEMBER`.
    member_id: String,
    /// Its hub's base URL.
    base_url: String,
    /// Its Ed25519 public keys, hex.
    public_keys: Vec<String>,
}

/// `GET /api/v1/bus/peers`: the hubs this hub federates with.
pub(super) async fn peers(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "peers": app.catalog.state.peers().await? })))
}

/// `POST /api/v1/bus/peers`: registers a peer hub, or replaces its URL and keys.
pub(super) async fn put_peer(
    State(app): State<AppState>,
    caller: Caller,
    super::ApiJson(request): super::ApiJson<NewPeer>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin], "registering federation peers")?;
    let peer = crate::bus::register_peer(
        &app.catalog.state,
        &request.member_id,
        &request.base_url,
        &request.public_keys,
        caller.id(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(peer))))
}
