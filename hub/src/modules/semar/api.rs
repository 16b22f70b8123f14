//! `/api/v1/semar/…`: SEMAR's canonical API.
//!
//! Who may do what follows the bus's access rules on SEMAR's datasets: a `publish` right
//! (or a producer key of the owning member, or admin) on
//! - `semar.residents` to register residents,
//! - `semar.calls` to create calls (the app's backend, the operators' console),
//! - `semar.dispatches` to confirm and cancel calls, watch the live view and keep the
//!   Drupadi roster (operators),
//! - `semar.events` to record crew steps (the crews' apps),
//! - `semar.units` to send GPS pings and register units.
//!
//! Facilities, Drupadi and the KPIs are open to every key. Personal data in answers is masked
//! without a `pii` right on the dataset it belongs to.

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_catalog::{DatasetId, MaskKind, timestamp};
use simpul_schemas::formats::{normalize_kode_desa, normalize_nik, normalize_telepon};

use super::lifecycle::Step;
use super::store::{self, CallRow, UnitRow};
use super::{Placement, Semar, names};
use crate::api::{ApiError, ApiJson};
use crate::auth::{Caller, may_publish, may_see_pii};
use crate::geo::{Boundaries, Point, kecamatan_of};
use crate::modules::check_record;
use crate::server::AppState;

const RESIDENTS: &str = "semar.residents";
const CALLS: &str = "semar.calls";
const DISPATCHES: &str = "semar.dispatches";
const EVENTS: &str = "semar.events";
const UNITS: &str = "semar.units";

fn semar(app: &AppState) -> Result<&Semar, ApiError> {
    app.module::<Semar>().ok_or_else(|| {
        ApiError::not_found("SEMAR is turned off on this hub (semar.enabled = false)")
    })
}

/// Refuses `caller` unless it may publish to `dataset` (see the module's documentation).
async fn require(
    app: &AppState,
    caller: &Caller,
    dataset: &str,
    action: &str,
) -> Result<(), ApiError> {
    let id: DatasetId = dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::internal(e))?;
    let meta = app.catalog.dataset(&id).await?;
    if may_publish(app, caller, &meta).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{action} needs a publish right on {dataset} (a grant, a producer key of {}, or an admin key); {} has none",
            meta.owner,
            caller.id()
        )))
    }
}

async fn sees_pii(app: &AppState, caller: &Caller, dataset: &str) -> Result<bool, ApiError> {
    let id: DatasetId = dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::internal(e))?;
    let meta = app.catalog.dataset(&id).await?;
    may_see_pii(app, caller, &meta).await
}

/// A place from `lat`/`lng` (which must lie in the regency) or a desa code (its centroid).
fn locate(
    lat: Option<f64>,
    lng: Option<f64>,
    kode_wilayah: Option<&str>,
) -> Result<Option<(Point, String, &'static str)>, ApiError> {
    let boundaries = Boundaries::purwakarta();
    match (lat, lng) {
        (Some(lat), Some(lng)) => {
            let point = Point::new(lat, lng).ok_or_else(|| {
                ApiError::unprocessable(format!("lat {lat}, lng {lng} is not a position on Earth"))
            })?;
            let desa = boundaries.locate(point).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "lat {lat}, lng {lng} is outside Kabupaten Purwakarta: SEMAR serves calls inside the regency"
                ))
            })?;
            Ok(Some((point, desa.kode.clone(), "gps")))
        }
        (Some(_), None) | (None, Some(_)) => Err(ApiError::unprocessable(
            "send lat and lng together, or kode_wilayah alone",
        )),
        (None, None) => match kode_wilayah {
            Some(kode) => {
                let kode = normalize_kode_desa(kode)
                    .map_err(|e| ApiError::unprocessable(format!("kode_wilayah: {e}")))?;
                let desa = boundaries.desa(&kode).ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "kode_wilayah {kode} is not a desa or kelurahan of Kabupaten Purwakarta"
                    ))
                })?;
                Ok(Some((desa.centroid, kode, "desa_centroid")))
            }
            None => Ok(None),
        },
    }
}

fn mask(value: &Option<String>, kind: MaskKind, unmasked: bool) -> Value {
    match value {
        Some(v) if unmasked => json!(v),
        Some(v) => json!(kind.mask(v)),
        None => Value::Null,
    }
}

fn call_json(call: &CallRow, pii: bool) -> Value {
    json!({
        "id": call.id,
        "received_at": call.received_at,
        "channel": call.channel,
        "nik": mask(&call.nik, MaskKind::Identifier, pii),
        "caller_name": mask(&call.caller_name, MaskKind::Name, pii),
        "caller_phone": mask(&call.caller_phone, MaskKind::Phone, pii),
        "complaint": call.complaint,
        "kode_wilayah": call.kode_wilayah,
        "kecamatan": kecamatan_of(&call.kode_wilayah),
        "lat": call.lat,
        "lng": call.lng,
        "location_source": call.location_source,
        "status": call.status,
        "confirmed_at": call.confirmed_at,
        "closed_at": call.closed_at,
        "close_reason": call.close_reason,
    })
}

fn placement_json(placement: &Placement) -> Value {
    match placement {
        Placement::Assigned(dispatch) => json!({"dispatch": dispatch.to_json()}),
        Placement::Queued(position) => json!({"queue_position": position}),
        Placement::Changed => json!({"changed": true}),
    }
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::unprocessable(format!(
                "{field} must be RFC 3339 with an offset, 2026-12-01T08:30:00+07:00; got '{text}'"
            ))
        })
}

// ---------------------------------------------------------------------------------------
// Registration

/// `POST /semar/residents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewResident {
    nik: String,
    nama: String,
    telepon: String,
    alamat: String,
    kode_wilayah: String,
}

/// `POST /api/v1/semar/residents`: registers a resident by NIK, checked against the
/// population dataset when it exists.
pub(crate) async fn register(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<NewResident>,
) -> Result<Response, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, RESIDENTS, "registering residents").await?;
    let nik = normalize_nik(&input.nik).map_err(|e| {
        ApiError::unprocessable(format!("nik: {e}")).with_member("field", json!("nik"))
    })?;
    let telepon = normalize_telepon(&input.telepon)
        .map_err(|e| ApiError::unprocessable(format!("telepon: {e}")))?;
    let kode_wilayah = normalize_kode_desa(&input.kode_wilayah)
        .map_err(|e| ApiError::unprocessable(format!("kode_wilayah: {e}")))?;
    if Boundaries::purwakarta().desa(&kode_wilayah).is_none() {
        return Err(ApiError::unprocessable(format!(
            "kode_wilayah {kode_wilayah} is not a desa or kelurahan of Kabupaten Purwakarta (the KTP address)"
        )));
    }
    let now = Utc::now();
    let record = json!({
        "nik": nik, "nama": input.nama.trim(), "telepon": telepon, "alamat": input.alamat.trim(),
        "kode_wilayah": kode_wilayah, "terverifikasi": false, "didaftarkan_pada": timestamp(now),
    });
    check_record(&semar.catalog, "pendaftaran_semar", &record).await?;
    let verified = population_check(semar, &nik, input.nama.trim()).await?;
    let inserted = sqlx::query(
        "INSERT INTO semar_residents (nik, nama, telepon, alamat, kode_wilayah, verified, registered_at, registered_by, updated_at, exported) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, 0) ON CONFLICT (nik) DO NOTHING",
    )
    .bind(&nik)
    .bind(input.nama.trim())
    .bind(&telepon)
    .bind(input.alamat.trim())
    .bind(&kode_wilayah)
    .bind(i64::from(verified.is_some()))
    .bind(timestamp(now))
    .bind(caller.id())
    .execute(app.catalog.state.pool())
    .await
    .map_err(super::db)?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(format!(
            "NIK {} is already registered",
            MaskKind::Identifier.mask(&nik)
        )));
    }
    app.catalog
        .state
        .audit(
            caller.id(),
            "semar.resident.register",
            &MaskKind::Identifier.mask(&nik),
            json!({"verified": verified.is_some(), "kode_wilayah": kode_wilayah}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "nik": nik,
            "nama": input.nama.trim(),
            "kode_wilayah": kode_wilayah,
            "verified": verified.is_some(),
            "verified_against": verified,
            "registered_at": timestamp(now),
        })),
    )
        .into_response())
}

/// With a population dataset: the NIK must be in it and the name must match loosely
/// (`Some(dataset)`). Without one: `None`, and the registration is unverified.
async fn population_check(
    semar: &Semar,
    nik: &str,
    nama: &str,
) -> Result<Option<String>, ApiError> {
    let dataset: DatasetId = semar
        .config
        .population_dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::internal(e))?;
    if semar.catalog.state.dataset(&dataset).await?.is_none() {
        return Ok(None);
    }
    let rows = super::facilities::query_json(
        semar,
        &format!("select nama from {dataset} where nik = $1"),
        vec![datafusion::scalar::ScalarValue::Utf8(Some(nik.to_string()))],
    )
    .await
    .map_err(|e| ApiError::unavailable(format!("cannot check the NIK against {dataset}: {e}")))?;
    let Some(registered) = rows
        .first()
        .and_then(|r| r.get("nama"))
        .and_then(Value::as_str)
    else {
        return Err(ApiError::unprocessable(format!(
            "NIK {} is not in the population data ({dataset}); check the number on the KTP",
            MaskKind::Identifier.mask(nik)
        ))
        .with_member("field", json!("nik")));
    };
    if !names::loosely_equal(nama, registered) {
        return Err(ApiError::unprocessable(format!(
            "the name does not match the population data ({dataset}) for NIK {}; write it as on the KTP",
            MaskKind::Identifier.mask(nik)
        ))
        .with_member("field", json!("nama")));
    }
    Ok(Some(dataset.to_string()))
}

// ---------------------------------------------------------------------------------------
// Calls

/// `POST /semar/calls`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCall {
    channel: String,
    #[serde(default)]
    nik: Option<String>,
    #[serde(default)]
    caller_name: Option<String>,
    #[serde(default)]
    caller_phone: Option<String>,
    complaint: String,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lng: Option<f64>,
    #[serde(default)]
    kode_wilayah: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
}

/// `POST /api/v1/semar/calls`: a new call, pending the operator's confirmation. Needs an
/// `Idempotency-Key`: a retry returns the same call.
pub(crate) async fn create_call(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, CALLS, "creating calls").await?;
    let key = crate::idempotent::key_of(&headers)?.ok_or_else(|| {
        ApiError::bad_request(
            "a call needs an Idempotency-Key header (a UUID is fine): a retried call is never created twice",
        )
    })?;
    // The call's id is chosen before it is stored and kept under the key: should this
    // process die in between, recovery answers the retry with the call if it was stored.
    let claimed = match crate::idempotent::begin(
        &app,
        caller.id(),
        "semar",
        &key,
        &body,
        CALL_INTENT,
        json!({}),
    )
    .await?
    {
        crate::idempotent::Begun::Answered(replayed) => return Ok(replayed),
        crate::idempotent::Begun::Fresh(claimed) => claimed,
    };
    let outcome = async {
        let input: NewCall = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a SEMAR call: {e}")))?;
        let call = new_call(semar, &caller, input, claimed.id.clone()).await?;
        Ok((StatusCode::CREATED, call_json(&call, true)))
    }
    .await;
    claimed.finish(&app, outcome).await
}

/// The kind of intent a call's creation stores under its idempotency key.
pub(crate) const CALL_INTENT: &str = "semar.call";

/// The answer a call's creation gives, for a call stored by a process that died before it
/// answered; `None` when the call was never stored.
pub(crate) async fn created_call_answer(
    state: &simpul_catalog::StateStore,
    call_id: &str,
) -> Result<Option<String>, simpul_catalog::CatalogError> {
    Ok(super::store::call(state, call_id)
        .await?
        .map(|call| call_json(&call, true).to_string()))
}

async fn new_call(
    semar: &Semar,
    caller: &Caller,
    input: NewCall,
    id: String,
) -> Result<CallRow, ApiError> {
    let state = &semar.catalog.state;
    if !["app", "phone", "sms"].contains(&input.channel.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "channel must be app, phone or sms; got '{}'",
            input.channel
        )));
    }
    let nik = input
        .nik
        .as_deref()
        .map(|n| {
            normalize_nik(n).map_err(|e| {
                ApiError::unprocessable(format!("nik: {e}")).with_member("field", json!("nik"))
            })
        })
        .transpose()?;
    let mut caller_name = input
        .caller_name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let mut caller_phone = input
        .caller_phone
        .as_deref()
        .map(|p| {
            normalize_telepon(p).map_err(|e| ApiError::unprocessable(format!("caller_phone: {e}")))
        })
        .transpose()?;
    if let Some(nik) = &nik {
        let registered: Option<(String, String)> =
            sqlx::query_as("SELECT nama, telepon FROM semar_residents WHERE nik = $1")
                .bind(nik)
                .fetch_optional(state.pool())
                .await
                .map_err(super::db)?;
        match registered {
            Some((nama, telepon)) => {
                caller_name.get_or_insert(nama);
                caller_phone.get_or_insert(telepon);
            }
            None if input.channel == "app" => {
                return Err(ApiError::unprocessable(format!(
                    "NIK {} is not registered with SEMAR: register it first (POST /api/v1/semar/residents)",
                    MaskKind::Identifier.mask(nik)
                )));
            }
            None => {}
        }
    } else if input.channel == "app" {
        return Err(ApiError::unprocessable(
            "an app call needs the caller's nik",
        ));
    }
    if input.channel != "app" && caller_phone.is_none() && nik.is_none() {
        return Err(ApiError::unprocessable(
            "a phone or SMS call needs the caller's caller_phone (or nik), so the operator can call back",
        ));
    }
    let (point, kode_wilayah, source) =
        locate(input.lat, input.lng, input.kode_wilayah.as_deref())?.ok_or_else(|| {
            ApiError::unprocessable(
                "a call needs its place: lat and lng, or kode_wilayah (the desa's centre is used)",
            )
        })?;
    let now = Utc::now();
    let received_at = match (&input.received_at, input.channel.as_str()) {
        (Some(_), "app") => {
            return Err(ApiError::unprocessable(
                "received_at is for calls an operator enters; an app call is received now",
            ));
        }
        (Some(text), _) => {
            let at = parse_time("received_at", text)?;
            if at > now + chrono::Duration::minutes(2) || at < now - chrono::Duration::hours(24) {
                return Err(ApiError::unprocessable(format!(
                    "received_at {text} must be within the last 24 hours and not in the future"
                )));
            }
            at
        }
        (None, _) => now,
    };
    let call = CallRow {
        id,
        received_at: timestamp(received_at),
        channel: input.channel,
        nik,
        caller_name,
        caller_phone,
        complaint: input.complaint.trim().to_string(),
        kode_wilayah,
        lat: point.lat,
        lng: point.lng,
        location_source: source.into(),
        status: super::CallStatus::MenungguKonfirmasi.name().into(),
        created_by: caller.id().to_string(),
        confirmed_at: None,
        confirmed_by: None,
        closed_at: None,
        close_reason: None,
    };
    insert_call(semar, &call, None).await?;
    state
        .audit(
            caller.id(),
            "semar.call.create",
            &call.id,
            json!({"channel": call.channel, "kode_wilayah": call.kode_wilayah}),
        )
        .await?;
    Ok(call)
}

/// Validates a new call against `panggilan_darurat` and stores it (with its inbound SMS, in
/// the same transaction, when it came by SMS).
async fn insert_call(
    semar: &Semar,
    call: &CallRow,
    sms: Option<(&str, &str, &str)>,
) -> Result<bool, ApiError> {
    if call.complaint.is_empty() {
        return Err(ApiError::unprocessable("complaint must say what happened"));
    }
    let record = json!({
        "id": call.id, "waktu_panggilan": call.received_at, "kanal": call.channel,
        "nik_pemanggil": call.nik, "nama_pemanggil": call.caller_name, "telepon_pemanggil": call.caller_phone,
        "keluhan": call.complaint, "kode_wilayah": call.kode_wilayah, "lat": call.lat, "lng": call.lng,
        "status": call.status,
    });
    check_record(&semar.catalog, "panggilan_darurat", &record).await?;
    let state = &semar.catalog.state;
    let mut tx = state.pool().begin().await.map_err(super::db)?;
    if let Some((phone, text, dedup)) = sms {
        let kept = sqlx::query(
            "INSERT INTO semar_sms (id, direction, phone, text, at, dedup_key, call_id, status) \
             VALUES ($1, 'in', $2, $3, $4, $5, $6, 'received') ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(phone)
        .bind(text)
        .bind(timestamp(Utc::now()))
        .bind(dedup)
        .bind(&call.id)
        .execute(&mut *tx)
        .await
        .map_err(super::db)?;
        if kept.rows_affected() == 0 {
            tx.rollback().await.map_err(super::db)?;
            return Ok(false);
        }
    }
    sqlx::query(&format!(
        "INSERT INTO semar_calls ({}, updated_at, exported) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $2, 0)",
        store::CALL_COLUMNS
    ))
    .bind(&call.id)
    .bind(&call.received_at)
    .bind(&call.channel)
    .bind(&call.nik)
    .bind(&call.caller_name)
    .bind(&call.caller_phone)
    .bind(&call.complaint)
    .bind(&call.kode_wilayah)
    .bind(call.lat)
    .bind(call.lng)
    .bind(&call.location_source)
    .bind(&call.status)
    .bind(&call.created_by)
    .bind(&call.confirmed_at)
    .bind(&call.confirmed_by)
    .bind(&call.closed_at)
    .bind(&call.close_reason)
    .execute(&mut *tx)
    .await
    .map_err(super::db)?;
    tx.commit().await.map_err(super::db)?;
    semar.announce(
        "call",
        &call.id,
        json!({"status": call.status, "channel": call.channel, "kode_wilayah": call.kode_wilayah}),
    );
    metrics::counter!("simpul_semar_calls_total", "channel" => call.channel.clone()).increment(1);
    Ok(true)
}

/// `GET /semar/calls?status=`.
#[derive(Debug, Deserialize)]
pub(crate) struct CallFilter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/semar/calls`: calls, newest first (open ones unless `status=` says).
pub(crate) async fn list_calls(
    State(app): State<AppState>,
    caller: Caller,
    Query(filter): Query<CallFilter>,
) -> Result<Json<Value>, ApiError> {
    semar(&app)?;
    require(&app, &caller, DISPATCHES, "reading the call list").await?;
    let pii = sees_pii(&app, &caller, CALLS).await?;
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let rows = match filter.status.as_deref() {
        Some(status) => {
            if super::CallStatus::parse(status).is_none() {
                let names: Vec<&str> = super::CallStatus::ALL.iter().map(|s| s.name()).collect();
                return Err(ApiError::bad_request(format!(
                    "status must be one of {}; got '{status}'",
                    names.join(", ")
                )));
            }
            sqlx::query(&format!(
                "SELECT {} FROM semar_calls WHERE status = $1 ORDER BY received_at DESC LIMIT {limit}",
                store::CALL_COLUMNS
            ))
            .bind(status)
            .fetch_all(app.catalog.state.pool())
            .await
        }
        None => {
            sqlx::query(&format!(
                "SELECT {} FROM semar_calls WHERE status NOT IN ('selesai', 'dibatalkan') ORDER BY received_at DESC LIMIT {limit}",
                store::CALL_COLUMNS
            ))
            .fetch_all(app.catalog.state.pool())
            .await
        }
    }
    .map_err(super::db)?;
    let calls: Vec<Value> = rows
        .iter()
        .map(|r| store::call_from_row(r).map(|c| call_json(&c, pii)))
        .collect::<Result<_, _>>()
        .map_err(super::db)?;
    Ok(Json(json!({"calls": calls})))
}

/// `GET /api/v1/semar/calls/{id}`: one call with its dispatches.
pub(crate) async fn show_call(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    semar(&app)?;
    require(&app, &caller, CALLS, "reading a call").await?;
    let pii = sees_pii(&app, &caller, CALLS).await?;
    let call = store::call(&app.catalog.state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no SEMAR call {id}")))?;
    let dispatches = store::dispatches_of_call(&app.catalog.state, &id).await?;
    let mut body = call_json(&call, pii);
    body["dispatches"] = dispatches.iter().map(store::DispatchRow::to_json).collect();
    Ok(Json(body))
}

/// `POST /semar/calls/{id}/confirm`: optionally corrects the place first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirm {
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lng: Option<f64>,
    #[serde(default)]
    kode_wilayah: Option<String>,
}

fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))
}

/// `POST /api/v1/semar/calls/{id}/confirm`: the operator confirmed by phone; the nearest
/// free unit is assigned, or the call waits in the queue.
pub(crate) async fn confirm_call(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, DISPATCHES, "confirming calls").await?;
    let input: Confirm = optional_json(&body)?;
    let relocate = locate(input.lat, input.lng, input.kode_wilayah.as_deref())?;
    let (call, placement, replayed) = semar.confirm(&id, caller.id(), relocate).await?;
    let pii = sees_pii(&app, &caller, CALLS).await?;
    let mut answer = call_json(&call, pii);
    if let (Value::Object(answer), Value::Object(placed)) =
        (&mut answer, placement_json(&placement))
    {
        answer.extend(placed);
        answer.insert("replayed".into(), json!(replayed));
    }
    Ok(Json(answer))
}

/// `POST /semar/calls/{id}/cancel`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cancel {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/semar/calls/{id}/cancel`: ends a call; a unit on it is freed.
pub(crate) async fn cancel_call(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, DISPATCHES, "cancelling calls").await?;
    let input: Cancel = optional_json(&body)?;
    let reason = input
        .reason
        .unwrap_or_else(|| "cancelled by the operator".into());
    let (call, replayed) = semar.cancel_call(&id, caller.id(), &reason).await?;
    let pii = sees_pii(&app, &caller, CALLS).await?;
    let mut answer = call_json(&call, pii);
    answer["replayed"] = json!(replayed);
    Ok(Json(answer))
}

// ---------------------------------------------------------------------------------------
// Dispatches

/// `POST /semar/dispatches/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    event: String,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    facility: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lng: Option<f64>,
}

/// A crew step's details, checked.
#[derive(Debug)]
pub struct EventInput {
    /// When it happened by the device; now when absent.
    pub at: Option<DateTime<Utc>>,
    /// The destination or handover facility.
    pub facility: Option<String>,
    lat: Option<f64>,
    lng: Option<f64>,
}

impl EventInput {
    /// Where the unit was, when sent.
    pub fn point(&self) -> Option<Point> {
        Point::new(self.lat?, self.lng?)
    }
}

/// `GET /api/v1/semar/dispatches/{id}`.
pub(crate) async fn show_dispatch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    semar(&app)?;
    require(&app, &caller, EVENTS, "reading a dispatch").await?;
    let dispatch = store::dispatch(&app.catalog.state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no SEMAR dispatch {id}")))?;
    Ok(Json(dispatch.to_json()))
}

/// `POST /api/v1/semar/dispatches/{id}/events`: one crew step. Illegal transitions get 409
/// with the allowed next steps; a replayed step changes nothing.
pub(crate) async fn dispatch_event(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<Response, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, EVENTS, "recording crew steps").await?;
    let step = Step::parse(&body.event)
        .filter(|s| *s != Step::Assigned)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "event must be one of notified, en_route, on_scene, at_patient, left_scene, at_facility, handed_over, back_in_service, cancelled; got '{}'",
                body.event
            ))
        })?;
    let at = body
        .at
        .as_deref()
        .map(|t| parse_time("at", t))
        .transpose()?;
    if body.lat.is_some() != body.lng.is_some() {
        return Err(ApiError::unprocessable("send lat and lng together"));
    }
    if let (Some(lat), Some(lng)) = (body.lat, body.lng)
        && Point::new(lat, lng).is_none()
    {
        return Err(ApiError::unprocessable(format!(
            "lat {lat}, lng {lng} is not a position on Earth"
        )));
    }
    let input = EventInput {
        at,
        facility: body.facility,
        lat: body.lat,
        lng: body.lng,
    };
    let outcome = semar.record_event(&id, step, input, caller.id()).await?;
    let mut answer = outcome.dispatch.to_json();
    answer["call_status"] = json!(outcome.call.status);
    answer["replayed"] = json!(outcome.replayed);
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(answer)).into_response())
}

// ---------------------------------------------------------------------------------------
// Units

/// `POST /semar/ambulances/{kode}/location`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ping {
    lat: f64,
    lng: f64,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    speed_kmh: Option<f64>,
    #[serde(default)]
    heading: Option<f64>,
}

/// `POST /api/v1/semar/ambulances/{kode}/location`: one GPS ping.
pub(crate) async fn location(
    State(app): State<AppState>,
    caller: Caller,
    Path(kode): Path<String>,
    ApiJson(ping): ApiJson<Ping>,
) -> Result<Response, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, UNITS, "sending unit positions").await?;
    // Inside Indonesia, as the ambulans schema says; a unit may leave the regency.
    if !(-11.1..=6.1).contains(&ping.lat) || !(94.7..=141.1).contains(&ping.lng) {
        return Err(ApiError::unprocessable(format!(
            "lat {}, lng {} is outside Indonesia",
            ping.lat, ping.lng
        )));
    }
    let point = Point::new(ping.lat, ping.lng)
        .ok_or_else(|| ApiError::unprocessable("lat and lng must be numbers"))?;
    let at = ping
        .at
        .as_deref()
        .map(|t| parse_time("at", t))
        .transpose()?;
    // Speed and heading are for the operators' live map; only the position is kept.
    let mut motion = serde_json::Map::new();
    for (name, value) in [("speed_kmh", ping.speed_kmh), ("heading", ping.heading)] {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            motion.insert(name.into(), json!(v));
        }
    }
    let accepted = semar.ping(&kode, point, at, Value::Object(motion))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"unit": kode, "accepted": accepted})),
    )
        .into_response())
}

/// `PUT /semar/ambulances/{kode}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitBody {
    nomor_polisi: String,
    jenis: String,
    pangkalan_faskes: String,
    di_aplikasi: bool,
    status: String,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lng: Option<f64>,
}

/// `PUT /api/v1/semar/ambulances/{kode}`: registers or updates a unit.
pub(crate) async fn put_unit(
    State(app): State<AppState>,
    caller: Caller,
    Path(kode): Path<String>,
    ApiJson(body): ApiJson<UnitBody>,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, UNITS, "registering units").await?;
    let base = semar.facilities.get(&body.pangkalan_faskes);
    let point = match (body.lat, body.lng, &base) {
        (Some(lat), Some(lng), _) => Point::new(lat, lng)
            .ok_or_else(|| ApiError::unprocessable("lat and lng must be a position"))?,
        (None, None, Some(base)) => base.point,
        _ => {
            return Err(ApiError::unprocessable(format!(
                "unit {kode}: its base '{}' is not a known facility; send lat and lng",
                body.pangkalan_faskes
            )));
        }
    };
    let unit = UnitRow {
        kode: kode.clone(),
        nomor_polisi: body.nomor_polisi.trim().to_uppercase(),
        jenis: body.jenis,
        pangkalan_faskes: body.pangkalan_faskes,
        di_aplikasi: body.di_aplikasi,
        status: body.status,
        lat: point.lat,
        lng: point.lng,
        position_at: None,
    };
    let record = json!({
        "kode": unit.kode, "nomor_polisi": unit.nomor_polisi, "jenis": unit.jenis,
        "pangkalan_faskes": unit.pangkalan_faskes, "status": unit.status, "di_aplikasi": unit.di_aplikasi,
        "lat": unit.lat, "lng": unit.lng,
    });
    check_record(&semar.catalog, "ambulans", &record).await?;
    semar.put_unit(&unit, caller.id()).await?;
    Ok(Json(record))
}

/// `GET /api/v1/semar/ambulances`: the fleet with live positions, and the queue.
pub(crate) async fn list_units(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    require(&app, &caller, DISPATCHES, "reading the fleet").await?;
    Ok(Json(semar.fleet_view().await?))
}

// ---------------------------------------------------------------------------------------
// Facilities and Drupadi

/// `GET /semar/facilities/nearest`.
#[derive(Debug, Deserialize)]
pub(crate) struct Nearest {
    lat: Option<f64>,
    lng: Option<f64>,
    #[serde(default)]
    jenis: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

const FACILITY_KINDS: [&str; 8] = [
    "rumah_sakit",
    "puskesmas",
    "puskesmas_pembantu",
    "klinik",
    "praktik_dokter",
    "praktik_bidan",
    "laboratorium",
    "apotek",
];

/// `GET /api/v1/semar/facilities/nearest`: the nearest facilities with distance and
/// estimated travel time.
pub(crate) async fn nearest_facilities(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<Nearest>,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    let (Some(lat), Some(lng)) = (query.lat, query.lng) else {
        return Err(ApiError::bad_request(
            "give lat and lng, e.g. ?lat=-6.5569&lng=107.4433",
        ));
    };
    let point = Point::new(lat, lng).ok_or_else(|| {
        ApiError::bad_request(format!("lat {lat}, lng {lng} is not a position on Earth"))
    })?;
    if let Some(jenis) = &query.jenis
        && !FACILITY_KINDS.contains(&jenis.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "jenis must be one of {}; got '{jenis}'",
            FACILITY_KINDS.join(", ")
        )));
    }
    let limit = query.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 50"));
    }
    let facilities = semar.facilities.of_kind(query.jenis.as_deref());
    let origins: Vec<Point> = facilities.iter().map(|f| f.point).collect();
    let ranked = semar.travel.rank_from(point, &origins).await;
    let answer: Vec<Value> = ranked
        .into_iter()
        .take(limit)
        .map(|(i, estimate)| {
            let mut facility = serde_json::to_value(&facilities[i]).unwrap_or_default();
            facility["distance_m"] = json!(estimate.distance_m.round());
            facility["estimate_secs"] = json!(estimate.seconds.round());
            facility["estimate_source"] = json!(estimate.source.name());
            facility
        })
        .collect();
    Ok(Json(json!({
        "from": {"lat": lat, "lng": lng},
        "dataset": semar.config.facilities_dataset,
        "facilities": answer,
    })))
}

/// `GET /semar/drupadi?kode_wilayah=`.
#[derive(Debug, Deserialize)]
pub(crate) struct DrupadiQuery {
    kode_wilayah: Option<String>,
}

/// `GET /api/v1/semar/drupadi`: on-call doctors and midwives of the desa, then of its
/// kecamatan.
pub(crate) async fn drupadi(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<DrupadiQuery>,
) -> Result<Json<Value>, ApiError> {
    semar(&app)?;
    let raw = query.kode_wilayah.ok_or_else(|| {
        ApiError::bad_request("give kode_wilayah, the caller's desa: ?kode_wilayah=32.14.01.1001")
    })?;
    let kode = normalize_kode_desa(&raw)
        .map_err(|e| ApiError::bad_request(format!("kode_wilayah: {e}")))?;
    let desa = Boundaries::purwakarta().desa(&kode).ok_or_else(|| {
        ApiError::not_found(format!(
            "{kode} is not a desa or kelurahan of Kabupaten Purwakarta"
        ))
    })?;
    let kecamatan = kecamatan_of(&kode).to_string();
    let rows: Vec<(String, String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, nama, profesi, telepon, kode_wilayah, faskes FROM semar_oncall \
         WHERE on_call = 1 AND (kode_wilayah = $1 OR kode_wilayah LIKE $2) \
         ORDER BY CASE WHEN kode_wilayah = $1 THEN 0 ELSE 1 END, profesi, nama",
    )
    .bind(&kode)
    .bind(format!("{kecamatan}.%"))
    .fetch_all(app.catalog.state.pool())
    .await
    .map_err(super::db)?;
    let on_call: Vec<Value> = rows
        .into_iter()
        .map(|(id, nama, profesi, telepon, wilayah, faskes)| {
            json!({
                "id": id, "nama": nama, "profesi": profesi, "telepon": telepon,
                "kode_wilayah": wilayah, "faskes": faskes,
                "scope": if wilayah == kode { "desa" } else { "kecamatan" },
            })
        })
        .collect();
    Ok(Json(json!({
        "desa": {"kode": kode, "nama": desa.nama},
        "kecamatan": kecamatan,
        "on_call": on_call,
    })))
}

/// `PUT /semar/drupadi/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnCall {
    nama: String,
    profesi: String,
    telepon: String,
    kode_wilayah: String,
    #[serde(default)]
    faskes: Option<String>,
    on_call: bool,
}

/// `PUT /api/v1/semar/drupadi/{id}`: adds or changes one doctor or midwife on the roster.
pub(crate) async fn put_oncall(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OnCall>,
) -> Result<Json<Value>, ApiError> {
    semar(&app)?;
    require(&app, &caller, DISPATCHES, "keeping the Drupadi roster").await?;
    if !["dokter", "bidan"].contains(&body.profesi.as_str()) {
        return Err(ApiError::unprocessable("profesi must be dokter or bidan"));
    }
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::bad_request(
            "the id is 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    let telepon = normalize_telepon(&body.telepon)
        .map_err(|e| ApiError::unprocessable(format!("telepon: {e}")))?;
    let kode = normalize_kode_desa(&body.kode_wilayah)
        .map_err(|e| ApiError::unprocessable(format!("kode_wilayah: {e}")))?;
    if Boundaries::purwakarta().desa(&kode).is_none() {
        return Err(ApiError::unprocessable(format!(
            "{kode} is not a desa or kelurahan of Kabupaten Purwakarta"
        )));
    }
    if body.nama.trim().is_empty() {
        return Err(ApiError::unprocessable("nama must not be empty"));
    }
    sqlx::query(
        "INSERT INTO semar_oncall (id, nama, profesi, telepon, kode_wilayah, faskes, on_call, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET nama = $2, profesi = $3, \
         telepon = $4, kode_wilayah = $5, faskes = $6, on_call = $7, updated_at = $8, updated_by = $9",
    )
    .bind(&id)
    .bind(body.nama.trim())
    .bind(&body.profesi)
    .bind(&telepon)
    .bind(&kode)
    .bind(&body.faskes)
    .bind(i64::from(body.on_call))
    .bind(timestamp(Utc::now()))
    .bind(caller.id())
    .execute(app.catalog.state.pool())
    .await
    .map_err(super::db)?;
    app.catalog
        .state
        .audit(
            caller.id(),
            "semar.drupadi.put",
            &id,
            json!({"on_call": body.on_call, "kode_wilayah": kode}),
        )
        .await?;
    Ok(Json(json!({
        "id": id, "nama": body.nama.trim(), "profesi": body.profesi, "telepon": telepon,
        "kode_wilayah": kode, "faskes": body.faskes, "on_call": body.on_call,
    })))
}

// ---------------------------------------------------------------------------------------
// SMS

/// `POST /api/v1/semar/sms/inbound`: an SMS gateway's webhook, signed with the shared
/// secret. Makes a phone-channel call pending confirmation and replies by SMS.
pub(crate) async fn sms_inbound(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let semar = semar(&app)?;
    if semar.config.sms_secret.is_empty() {
        return Err(ApiError::not_found(
            "the SMS fallback is off on this hub: set semar.sms_secret (SIMPUL_SEMAR_SMS_SECRET) to the gateway's shared secret",
        ));
    }
    let body = crate::api::read_unauthenticated(body, &headers).await?;
    let sms = crate::sms::Inbound::parse(&semar.config.sms_secret, &headers, &body)?;
    let (phone, text, received, dedup) = (
        sms.phone.clone(),
        sms.text.as_str(),
        sms.received_at,
        sms.dedup_key.clone(),
    );
    let state = &semar.catalog.state;
    let existing: Option<(Option<String>,)> =
        sqlx::query_as("SELECT call_id FROM semar_sms WHERE dedup_key = $1")
            .bind(&dedup)
            .fetch_optional(state.pool())
            .await
            .map_err(super::db)?;
    if let Some((call_id,)) = existing {
        return Ok((
            StatusCode::OK,
            Json(json!({"call_id": call_id, "replayed": true})),
        )
            .into_response());
    }
    let registered: Option<(String, String, String)> =
        sqlx::query_as("SELECT nik, nama, kode_wilayah FROM semar_residents WHERE telepon = $1")
            .bind(&phone)
            .fetch_optional(state.pool())
            .await
            .map_err(super::db)?;
    let boundaries = Boundaries::purwakarta();
    let named = desa_in_text(text);
    let (point, kode, source) = match (named, &registered) {
        (Some(desa), _) => (desa.centroid, desa.kode.clone(), "desa_centroid"),
        (None, Some((_, _, kode))) => match boundaries.desa(kode) {
            Some(desa) => (desa.centroid, desa.kode.clone(), "desa_centroid"),
            None => unknown_place(),
        },
        (None, None) => unknown_place(),
    };
    let call = CallRow {
        id: uuid::Uuid::now_v7().to_string(),
        received_at: timestamp(received),
        channel: "phone".into(),
        nik: registered.as_ref().map(|r| r.0.clone()),
        caller_name: registered.as_ref().map(|r| r.1.clone()),
        caller_phone: Some(phone.clone()),
        complaint: text.chars().take(2000).collect(),
        kode_wilayah: kode,
        lat: point.lat,
        lng: point.lng,
        location_source: source.into(),
        status: super::CallStatus::MenungguKonfirmasi.name().into(),
        created_by: "sms-gateway".into(),
        confirmed_at: None,
        confirmed_by: None,
        closed_at: None,
        close_reason: None,
    };
    if !insert_call(semar, &call, Some((&phone, text, &dedup))).await? {
        // The same message arrived twice at once: the other request made the call.
        let existing: Option<(Option<String>,)> =
            sqlx::query_as("SELECT call_id FROM semar_sms WHERE dedup_key = $1")
                .bind(&dedup)
                .fetch_optional(state.pool())
                .await
                .map_err(super::db)?;
        return Ok((
            StatusCode::OK,
            Json(json!({"call_id": existing.and_then(|e| e.0), "replayed": true})),
        )
            .into_response());
    }
    let short = &call.id[call.id.len() - 6..];
    let reply = format!(
        "SEMAR: pesan darurat Anda diterima (nomor {short}). Operator akan segera menelepon {phone} untuk konfirmasi. \
         Bila sangat darurat, hubungi 112."
    );
    semar.sms.send(state, &phone, &reply, Some(&call.id));
    state
        .audit(
            "sms-gateway",
            "semar.call.create",
            &call.id,
            json!({"channel": "phone", "via": "sms", "location_source": call.location_source}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"call_id": call.id, "status": call.status, "location_source": call.location_source, "reply": reply})),
    )
        .into_response())
}

/// The regency's centre, for an SMS that names no place: the operator sets it at
/// confirmation.
fn unknown_place() -> (Point, String, &'static str) {
    let centre = Point {
        lat: -6.595_259_676_071_498,
        lng: 107.430_775_994_088,
    };
    let kode = Boundaries::purwakarta()
        .locate(centre)
        .map(|d| d.kode.clone())
        .unwrap_or_default();
    (centre, kode, "unknown")
}

/// A desa named in an SMS: its code (`32.14.01.1001`) or its name as a whole word (the
/// longest name wins, so "Nagri Kidul" beats "Nagri").
fn desa_in_text(text: &str) -> Option<&'static crate::geo::Desa> {
    let boundaries = Boundaries::purwakarta();
    let lower = text.to_lowercase();
    for word in lower.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        if let Ok(kode) = normalize_kode_desa(word.trim_matches('.'))
            && let Some(desa) = boundaries.desa(&kode)
        {
            return Some(desa);
        }
    }
    let padded = format!(
        " {} ",
        lower
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect::<String>()
    );
    boundaries
        .all()
        .iter()
        .filter(|d| padded.contains(&format!(" {} ", d.nama.to_lowercase())))
        .max_by_key(|d| d.nama.len())
}

// ---------------------------------------------------------------------------------------
// Live view and KPIs

/// `GET /semar/stream?locations=true`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    locations: bool,
}

/// `GET /api/v1/semar/stream`: Server-Sent Events of call, dispatch and unit changes (and GPS
/// positions with `locations=true`), after a `snapshot` of the fleet and the open calls.
pub(crate) async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let semar = app
        .shared_module::<Semar>()
        .ok_or_else(|| ApiError::not_found("SEMAR is turned off on this hub"))?;
    require(&app, &caller, DISPATCHES, "watching the live view").await?;
    let receiver = semar.live.subscribe();
    let mut snapshot = semar.fleet_view().await?;
    let open = sqlx::query(&format!(
        "SELECT {} FROM semar_calls WHERE status NOT IN ('selesai', 'dibatalkan') ORDER BY received_at",
        store::CALL_COLUMNS
    ))
    .fetch_all(app.catalog.state.pool())
    .await
    .map_err(super::db)?;
    let pii = sees_pii(&app, &caller, CALLS).await?;
    snapshot["calls"] = open
        .iter()
        .filter_map(|r| store::call_from_row(r).ok())
        .map(|c| call_json(&c, pii))
        .collect();
    let first = Event::default()
        .event("snapshot")
        .data(snapshot.to_string());
    let locations = query.locations;
    let events = futures::stream::unfold(
        (Some(first), receiver),
        move |(pending, mut receiver)| async move {
            if let Some(event) = pending {
                return Some((Ok(event), (None, receiver)));
            }
            loop {
                match receiver.recv().await {
                    Ok(change) => {
                        if change.kind == "location" && !locations {
                            continue;
                        }
                        let data = json!({"id": change.id, "data": change.data, "at": timestamp(Utc::now())});
                        let event = Event::default().event(change.kind).data(data.to_string());
                        return Some((Ok(event), (None, receiver)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let event = Event::default().event("lagged").data(
                            json!({"missed": missed, "hint": "reconnect for a fresh snapshot"})
                                .to_string(),
                        );
                        return Some((Ok(event), (None, receiver)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `GET /semar/kpi?from=&to=&kecamatan=`.
#[derive(Debug, Deserialize)]
pub(crate) struct KpiQuery {
    #[serde(flatten)]
    period: crate::modules::PeriodQuery,
    #[serde(default)]
    kecamatan: Option<String>,
}

/// `GET /api/v1/semar/kpi`: response times (90th percentile, % within 10 minutes), the
/// intervals, unit availability and utilisation, and calls by kecamatan, area type and
/// channel, from the `semar.*` datasets (brought up to date first).
pub(crate) async fn kpi(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<KpiQuery>,
) -> Result<Json<Value>, ApiError> {
    let semar = semar(&app)?;
    let (from, to) = query.period.period()?;
    let kecamatan = match query
        .kecamatan
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        None => String::new(),
        Some(kode) => {
            let known = Boundaries::purwakarta()
                .all()
                .iter()
                .any(|d| d.kecamatan() == kode);
            if !known {
                return Err(ApiError::bad_request(format!(
                    "kecamatan must be a kecamatan code of Purwakarta, 32.14.01 … 32.14.17; got '{kode}'"
                )));
            }
            kode.to_string()
        }
    };
    semar.export().await.map_err(|e| {
        ApiError::unavailable(format!(
            "bringing the SEMAR datasets up to date failed: {e}"
        ))
    })?;
    let period = super::kpi::Period {
        from: timestamp(from),
        to: timestamp(to),
        kecamatan,
    };
    let answer = super::kpi::compute(semar, &period, &caller.sql_access())
        .await
        .map_err(|e| ApiError::unavailable(format!("the SEMAR KPI queries failed: {e}")))?;
    Ok(Json(answer))
}
