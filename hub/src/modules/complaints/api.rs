//! `/api/v1/complaints/…`: PLIPMAS cases, their transitions and deadlines, La Pewarta's SMS.
//!
//! Who may do what: any producer or admin key files a case; the handling OPD's keys (member
//! = the case's `opd`), the Regent's office (`complaints.regent_member`) and admins act on it
//! and see the complainant's identity; every other key sees the case with identity masked.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_catalog::{Role, timestamp};
use simpul_schemas::formats::{normalize_kode_wilayah, normalize_nik, normalize_telepon};

use super::{CASE_COLUMNS, CaseRow, Complaints, Kind, NewCase, Transition, db};
use crate::api::{ApiError, ApiJson, JsonWithBytes};
use crate::auth::Caller;
use crate::idempotent::Begun;
use crate::server::AppState;

pub(super) fn module(app: &AppState) -> Result<&Complaints, ApiError> {
    app.module::<Complaints>().ok_or_else(|| {
        ApiError::not_found("complaints are turned off on this hub (complaints.enabled = false)")
    })
}

/// Whether `caller` handles `case`: admin, the case's OPD, or the Regent's office.
fn handles(module: &Complaints, caller: &Caller, case: &CaseRow) -> bool {
    match caller.0.role {
        Role::Admin => true,
        Role::Producer => {
            case.opd.as_deref() == Some(caller.0.member.as_str())
                || caller.0.member == module.config.regent_member
        }
        Role::Analyst => false,
    }
}

fn sees_identity(module: &Complaints, caller: &Caller, case: &CaseRow) -> bool {
    caller.0.role == Role::Admin
        || case.opd.as_deref() == Some(caller.0.member.as_str())
        || caller.0.member == module.config.regent_member
}

/// Evidence may show who complained: those who see the identity, and the key that filed the
/// case (a portal or app filing for a resident).
pub(super) fn may_see_attachments(module: &Complaints, caller: &Caller, case: &CaseRow) -> bool {
    sees_identity(module, caller, case) || case.created_by == caller.id()
}

const CHANNELS: [&str; 6] = ["web", "surat", "faks", "sms", "open311", "langsung"];

/// `POST /complaints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCaseBody {
    kind: String,
    channel: String,
    #[serde(default)]
    category: Option<String>,
    description: String,
    #[serde(default)]
    nik: Option<String>,
    #[serde(default)]
    nama: Option<String>,
    #[serde(default)]
    telepon: Option<String>,
    #[serde(default)]
    kode_wilayah: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lng: Option<f64>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
}

impl NewCaseBody {
    /// A complaint posted through Open311.
    pub(crate) fn open311(
        category: String,
        description: String,
        nama: Option<String>,
        telepon: Option<String>,
        lat: Option<f64>,
        lng: Option<f64>,
        address: Option<String>,
    ) -> Self {
        Self {
            kind: "complaint".into(),
            channel: "open311".into(),
            category: Some(category),
            description,
            nik: None,
            nama,
            telepon,
            kode_wilayah: None,
            lat,
            lng,
            address,
            received_at: None,
        }
    }
}

/// Checks a new case's fields and fills its category and OPD: the one given, else by the
/// routing keywords, else none (triage).
pub(crate) fn check_new_case(module: &Complaints, body: NewCaseBody) -> Result<NewCase, ApiError> {
    let kind = Kind::parse(&body.kind).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "kind must be complaint or information; got '{}'",
            body.kind
        ))
    })?;
    if !CHANNELS.contains(&body.channel.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "channel must be one of {}; got '{}'",
            CHANNELS.join(", "),
            body.channel
        )));
    }
    let description = body.description.trim().to_string();
    if description.is_empty() || description.chars().count() > 10_000 {
        return Err(ApiError::unprocessable(
            "description must say what the case is about (at most 10,000 characters)",
        ));
    }
    let nik = body
        .nik
        .as_deref()
        .map(|n| normalize_nik(n).map_err(|e| ApiError::unprocessable(format!("nik: {e}"))))
        .transpose()?;
    let telepon = body
        .telepon
        .as_deref()
        .map(|p| normalize_telepon(p).map_err(|e| ApiError::unprocessable(format!("telepon: {e}"))))
        .transpose()?;
    let kode_wilayah = body
        .kode_wilayah
        .as_deref()
        .map(|k| {
            normalize_kode_wilayah(k)
                .map_err(|e| ApiError::unprocessable(format!("kode_wilayah: {e}")))
        })
        .transpose()?;
    let nama = body
        .nama
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if kind == Kind::Information && nama.is_none() {
        return Err(ApiError::unprocessable(
            "an information request needs the requester's nama (Law 14/2008 asks for the requester's identity)",
        ));
    }
    let point = match (body.lat, body.lng) {
        (None, None) => None,
        (Some(lat), Some(lng)) => Some(crate::geo::Point::new(lat, lng).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "lat {lat}, lng {lng} is not a place on Earth (WGS84 degrees)"
            ))
        })?),
        _ => return Err(ApiError::unprocessable("send lat and lng together")),
    };
    // A point in the regency names its desa, for the trends by kecamatan; a place outside it
    // keeps no region code (the case may still be not_competent).
    let kode_wilayah = kode_wilayah.or_else(|| {
        point
            .and_then(|p| crate::geo::Boundaries::purwakarta().locate(p))
            .map(|desa| desa.kode.clone())
    });
    let now = Utc::now();
    let received_at = match &body.received_at {
        None => now,
        Some(_) if ["web", "sms", "open311"].contains(&body.channel.as_str()) => {
            return Err(ApiError::unprocessable(
                "received_at is for letters, faxes and walk-ins registered after they arrived",
            ));
        }
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::unprocessable(format!("received_at must be RFC 3339; got '{text}'"))
                })?;
            if at > now + chrono::Duration::minutes(2) {
                return Err(ApiError::unprocessable("received_at is in the future"));
            }
            at
        }
    };
    let category = match (&body.category, kind) {
        (Some(code), _) => Some(module.routing.category(code).ok_or_else(|| {
            ApiError::unprocessable(format!("no category '{code}' in the routing rules"))
        })?),
        (None, Kind::Complaint) => module.routing.classify(&description),
        (None, Kind::Information) => None,
    };
    Ok(NewCase {
        kind,
        channel: body.channel,
        category: category.map(|c| c.code.clone()),
        opd: category.map(|c| c.opd.clone()),
        description,
        nik,
        nama,
        telepon,
        kode_wilayah,
        lat: body.lat,
        lng: body.lng,
        address: body
            .address
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        received_at,
    })
}

/// Validates a new case against its canonical schema.
pub(crate) async fn check_schema(
    module: &Complaints,
    id: &str,
    new: &NewCase,
) -> Result<(), ApiError> {
    let (schema, record) = match new.kind {
        Kind::Complaint => (
            "pengaduan",
            json!({
                "id": id, "kanal": new.channel, "kategori": new.category.clone().unwrap_or_else(|| "lainnya".into()),
                "isi": new.description, "status": "received", "anonim": new.nama.is_none(),
                "nik": new.nik, "nama": new.nama, "telepon": new.telepon, "kode_wilayah": new.kode_wilayah,
                "opd_tujuan": new.opd, "diterima_pada": timestamp(new.received_at),
            }),
        ),
        Kind::Information => (
            "permohonan_informasi",
            json!({
                "id": id, "nama_pemohon": new.nama, "nik_pemohon": new.nik, "telepon": new.telepon,
                "informasi_diminta": new.description, "status": "registered", "diterima_pada": timestamp(new.received_at),
            }),
        ),
    };
    crate::modules::check_record(&module.catalog, schema, &record).await
}

/// `POST /api/v1/complaints`: files a complaint or an information request. With an
/// `Idempotency-Key`, a retry gets the case filed the first time.
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonWithBytes(body, bytes): JsonWithBytes<NewCaseBody>,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    caller.require(&[Role::Producer, Role::Admin], "filing a case")?;
    let new = check_new_case(module, body)?;
    check_schema(module, "check", &new).await?;
    let Some(key) = crate::idempotent::key_of(&headers)? else {
        let (status, body) = create_case(module, &caller, &new, None).await?;
        return Ok((status, Json(body)).into_response());
    };
    let claimed = match crate::idempotent::begin(
        &app,
        caller.id(),
        "complaints",
        &key,
        &bytes,
        CASE_INTENT,
        json!({}),
    )
    .await?
    {
        Begun::Answered(replayed) => return Ok(replayed),
        Begun::Fresh(claimed) => claimed,
    };
    let outcome = create_case(module, &caller, &new, Some(claimed.id.clone())).await;
    claimed.finish(&app, outcome).await
}

async fn create_case(
    module: &Complaints,
    caller: &Caller,
    new: &NewCase,
    id: Option<String>,
) -> Result<(StatusCode, Value), ApiError> {
    let case = module
        .create(new, caller.id(), None, id)
        .await?
        .ok_or_else(|| ApiError::internal("the new case vanished"))?;
    let identity = sees_identity(module, caller, &case) || case.created_by == caller.id();
    Ok((StatusCode::CREATED, module.case_json(&case, identity)))
}

/// The kind of intent a case's filing stores under its idempotency key.
pub(crate) const CASE_INTENT: &str = "complaints.case";
/// The kind of intent a case's step (a transition, an answer) stores under its key.
pub(crate) const STEP_INTENT: &str = "complaints.step";

/// The answer a filing or a step would have sent, for one stored by a process that died
/// before it answered (`None`: it was never stored). A step answers with the case as it is
/// now, which is the case the step left unless someone acted on it since.
pub(crate) async fn stored_answer(
    module: &Complaints,
    kind: &str,
    id: &str,
) -> Result<Option<(u16, String)>, simpul_catalog::CatalogError> {
    let (case_id, status) = if kind == CASE_INTENT {
        (id.to_string(), 201)
    } else {
        let stored: Option<(String,)> =
            sqlx::query_as("SELECT case_id FROM complaint_events WHERE id = $1")
                .bind(id)
                .fetch_optional(module.catalog.state.pool())
                .await?;
        let Some((case_id,)) = stored else {
            return Ok(None);
        };
        (case_id, 200)
    };
    let case = module
        .case(&case_id)
        .await
        .map_err(|e| simpul_catalog::CatalogError::State(e.detail().to_string()))?;
    // Only the case's handlers and its filer hold keys that file or act on it, and both
    // see its identity.
    Ok(case.map(|case| (status, module.case_json(&case, true).to_string())))
}

/// Runs one step of a case under the request's `Idempotency-Key`, if it sent one: a retry
/// gets the answer of the first try, never a second step.
async fn step(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    bytes: &[u8],
    mut request: Transition,
    run: impl AsyncFnOnce(Transition) -> Result<CaseRow, ApiError>,
) -> Result<Response, ApiError> {
    let module = module(app)?;
    let Some(key) = crate::idempotent::key_of(headers)? else {
        let case = run(request).await?;
        return Ok(Json(module.case_json(&case, true)).into_response());
    };
    let claimed = match crate::idempotent::begin(
        app,
        caller.id(),
        "complaints",
        &key,
        bytes,
        STEP_INTENT,
        json!({}),
    )
    .await?
    {
        Begun::Answered(replayed) => return Ok(replayed),
        Begun::Fresh(claimed) => claimed,
    };
    request.event_id = Some(claimed.id.clone());
    let outcome = run(request)
        .await
        .map(|case| (StatusCode::OK, module.case_json(&case, true)));
    claimed.finish(app, outcome).await
}

/// `GET /complaints?opd=&status=&limit=`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    opd: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/complaints`: cases, newest first; `opd=none` is the triage queue.
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let mut sql = format!("SELECT {CASE_COLUMNS} FROM complaint_cases WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    match query.opd.as_deref() {
        Some("none") => sql.push_str(" AND opd IS NULL"),
        Some(opd) => {
            binds.push(opd.to_uppercase());
            sql.push_str(&format!(" AND opd = ${}", binds.len()));
        }
        None => {}
    }
    if let Some(status) = &query.status {
        binds.push(status.clone());
        sql.push_str(&format!(" AND status = ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY received_at DESC LIMIT {limit}"));
    let cases: Vec<Value> = module
        .cases(&sql, &binds)
        .await?
        .iter()
        .map(|c| module.case_json(c, sees_identity(module, &caller, c)))
        .collect();
    Ok(Json(json!({"cases": cases})))
}

/// `GET /api/v1/complaints/{id}`: one case with its history and messages.
pub(crate) async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    let case = module
        .case(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    let identity = sees_identity(module, &caller, &case);
    let mut body = module.case_json(&case, identity);
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT from_status, to_status, actor, note, at, deadline FROM complaint_events WHERE case_id = $1 ORDER BY at, id",
    )
    .bind(&id)
    .fetch_all(module.catalog.state.pool())
    .await
    .map_err(db)?;
    body["events"] = events
        .into_iter()
        .map(|(from, to, actor, note, at, deadline)| json!({"from": from, "to": to, "actor": actor, "note": note, "at": at, "deadline": deadline}))
        .collect();
    let messages: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT direction, recipient, phone, text, at, status FROM complaint_messages WHERE case_id = $1 ORDER BY at, id",
    )
    .bind(&id)
    .fetch_all(module.catalog.state.pool())
    .await
    .map_err(db)?;
    body["attachments"] = if may_see_attachments(module, &caller, &case) {
        Value::Array(super::attachments::list_json(module, &id).await?)
    } else {
        Value::Null
    };
    body["messages"] = messages
        .into_iter()
        .map(|(direction, recipient, phone, text, at, status)| {
            let phone = if identity || recipient != "resident" && direction == "out" {
                phone
            } else {
                simpul_catalog::MaskKind::Phone.mask(&phone)
            };
            json!({"direction": direction, "recipient": recipient, "phone": phone, "text": text, "at": at, "status": status})
        })
        .collect();
    Ok(Json(body))
}

/// `(from, to, actor, note, at, deadline)` of one transition.
type EventRow = (
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// `POST /complaints/{id}/transitions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransitionBody {
    to: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    exemption_reason: Option<String>,
    #[serde(default)]
    expected_version: Option<i64>,
}

async fn acting_on(module: &Complaints, caller: &Caller, id: &str) -> Result<CaseRow, ApiError> {
    let case = module
        .case(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    if !handles(module, caller, &case) {
        return Err(ApiError::forbidden(format!(
            "case {id} is handled by {}; {} may not act on it (the OPD's keys, the Regent's office and admins may)",
            case.opd.as_deref().unwrap_or("nobody yet (triage)"),
            caller.id()
        )));
    }
    Ok(case)
}

/// `POST /api/v1/complaints/{id}/transitions`: one step of the workflow; 409 with the allowed
/// next states when illegal or when another official acted first.
pub(crate) async fn transition(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonWithBytes(body, bytes): JsonWithBytes<TransitionBody>,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    acting_on(module, &caller, &id).await?;
    let request = Transition {
        to: body.to,
        note: body.note,
        decision: body.decision,
        exemption_reason: body.exemption_reason,
        expected_version: body.expected_version,
        event_id: None,
    };
    step(&app, &caller, &headers, &bytes, request, async |request| {
        module.transition(&id, &request, caller.id()).await
    })
    .await
}

/// `POST /complaints/{id}/answer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerBody {
    text: String,
    #[serde(default)]
    expected_version: Option<i64>,
}

/// `POST /api/v1/complaints/{id}/answer`: the OPD's answer. The case goes to `answered`, the
/// answer goes to the resident by SMS, and the Regent is told.
pub(crate) async fn answer(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonWithBytes(body, bytes): JsonWithBytes<AnswerBody>,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    acting_on(module, &caller, &id).await?;
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > 1000 {
        return Err(ApiError::unprocessable(
            "the answer is 1 to 1,000 characters",
        ));
    }
    let request = Transition {
        to: "answered".into(),
        note: Some(text.to_string()),
        expected_version: body.expected_version,
        ..Transition::default()
    };
    step(&app, &caller, &headers, &bytes, request, async |request| {
        let case = module.transition(&id, &request, caller.id()).await?;
        let short = &case.id[case.id.len() - 6..];
        if let Some(phone) = &case.telepon {
            module.notify(
                &case.id,
                "resident",
                phone,
                &format!(
                    "Jawaban aduan {short} dari {}: {text}",
                    case.opd.as_deref().unwrap_or("Pemkab Purwakarta")
                ),
            );
        }
        let regent = &module.routing.regent;
        module.notify(
            &case.id,
            "regent",
            &regent.telepon,
            &format!(
                "Aduan {short} dijawab oleh {}: {text}",
                case.opd.as_deref().unwrap_or("-")
            ),
        );
        Ok(case)
    })
    .await
}

/// `POST /complaints/{id}/route`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteBody {
    category: String,
}

/// `POST /api/v1/complaints/{id}/route`: gives a triage case its category and OPD
/// (verification and forwarding: the case becomes `responded`); the officials are told.
pub(crate) async fn route(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    if !(caller.0.role == Role::Admin || caller.0.member == module.config.regent_member) {
        return Err(ApiError::forbidden(
            "routing a triage case is for the Regent's office or an admin",
        ));
    }
    let category = module
        .routing
        .category(&body.category)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "no category '{}' in the routing rules",
                body.category
            ))
        })?
        .clone();
    let case = module
        .case(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    if case.opd.is_some() {
        return Err(ApiError::conflict(format!(
            "case {id} is already routed to {}",
            case.opd.unwrap_or_default()
        )));
    }
    let updated = sqlx::query(
        "UPDATE complaint_cases SET category = $2, opd = $3, version = version + 1, updated_at = $4, exported = 0 \
         WHERE id = $1 AND opd IS NULL AND version = $5",
    )
    .bind(&id)
    .bind(&category.code)
    .bind(&category.opd)
    .bind(timestamp(Utc::now()))
    .bind(case.version)
    .execute(module.catalog.state.pool())
    .await
    .map_err(db)?;
    if updated.rows_affected() != 1 {
        return Err(ApiError::conflict(format!(
            "case {id} changed meanwhile; read it again"
        )));
    }
    let forwarded = Transition {
        to: "responded".into(),
        note: Some(format!(
            "diteruskan ke {} ({})",
            category.opd, category.name
        )),
        ..Transition::default()
    };
    let case = module.transition(&id, &forwarded, caller.id()).await?;
    tell_officials(module, &case, &category);
    Ok(Json(module.case_json(&case, true)))
}

/// Sends a routed complaint to its officials and copies the Regent.
fn tell_officials(module: &Complaints, case: &CaseRow, category: &super::routing::Category) {
    let short = &case.id[case.id.len() - 6..];
    let text: String = case.description.chars().take(300).collect();
    for official in &category.officials {
        module.notify(
            &case.id,
            "official",
            &official.telepon,
            &format!("Aduan {short} ({}): {text}", category.name),
        );
    }
    let regent = &module.routing.regent;
    module.notify(
        &case.id,
        "regent",
        &regent.telepon,
        &format!(
            "Tembusan aduan {short} untuk {} ({}): {text}",
            category.opd, category.name
        ),
    );
}

/// `GET /api/v1/complaints/overdue`: open cases past an agency deadline, by OPD.
pub(crate) async fn overdue(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    let today = crate::calendar::wib_date(Utc::now()).to_string();
    let cases = module
        .cases(
            &format!(
                "SELECT {CASE_COLUMNS} FROM complaint_cases WHERE deadline_duty = 'agency' AND deadline < $1 \
                 AND closed_at IS NULL ORDER BY deadline, id"
            ),
            std::slice::from_ref(&today),
        )
        .await?;
    let mut by_opd: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for case in cases {
        let identity = sees_identity(module, &caller, &case);
        by_opd
            .entry(case.opd.clone().unwrap_or_else(|| "triage".into()))
            .or_default()
            .push(module.case_json(&case, identity));
    }
    let opds: Vec<Value> = by_opd
        .into_iter()
        .map(|(opd, cases)| json!({"opd": opd, "overdue": cases.len(), "cases": cases}))
        .collect();
    Ok(Json(json!({"as_of": today, "opds": opds})))
}

/// `POST /api/v1/complaints/sms/inbound`: La Pewarta. Signed like SEMAR's gateway webhook;
/// each message becomes one complaint, routed by keyword to its OPD (the officials and the
/// Regent are told by SMS) or left in triage, and the resident gets a reply.
pub(crate) async fn sms_inbound(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    if module.config.sms_secret.is_empty() {
        return Err(ApiError::not_found(
            "La Pewarta's SMS webhook is off: set complaints.sms_secret (SIMPUL_COMPLAINTS_SMS_SECRET)",
        ));
    }
    let body = crate::api::read_unauthenticated(body, &headers).await?;
    let sms = crate::sms::Inbound::parse(&module.config.sms_secret, &headers, &body)?;
    let (phone, text, received, dedup) = (
        sms.phone.clone(),
        sms.text.as_str(),
        sms.received_at,
        sms.dedup_key.clone(),
    );
    let category = module.routing.classify(text).cloned();
    let new = NewCase {
        kind: Kind::Complaint,
        channel: "sms".into(),
        category: category.as_ref().map(|c| c.code.clone()),
        opd: category.as_ref().map(|c| c.opd.clone()),
        description: text.chars().take(2000).collect(),
        nik: None,
        nama: None,
        telepon: Some(phone.clone()),
        kode_wilayah: None,
        lat: None,
        lng: None,
        address: None,
        received_at: received,
    };
    check_schema(module, "check", &new).await?;
    let Some(case) = module
        .create(&new, "la-pewarta", Some((text, &dedup)), None)
        .await?
    else {
        let existing: Option<(Option<String>,)> =
            sqlx::query_as("SELECT case_id FROM complaint_messages WHERE dedup_key = $1")
                .bind(&dedup)
                .fetch_optional(module.catalog.state.pool())
                .await
                .map_err(db)?;
        return Ok((
            StatusCode::OK,
            Json(json!({"case_id": existing.and_then(|e| e.0), "replayed": true})),
        )
            .into_response());
    };
    let short = case.id[case.id.len() - 6..].to_string();
    let (case, reply) = match &category {
        Some(category) => {
            let forwarded = Transition {
                to: "responded".into(),
                note: Some(format!(
                    "diteruskan otomatis ke {} ({})",
                    category.opd, category.name
                )),
                ..Transition::default()
            };
            let case = module
                .transition(&case.id, &forwarded, "la-pewarta")
                .await?;
            tell_officials(module, &case, category);
            let reply = format!(
                "La Pewarta: aduan Anda (nomor {short}) diterima dan diteruskan ke {}. Jawaban akan dikirim lewat SMS.",
                category.opd
            );
            (case, reply)
        }
        None => (
            case,
            format!(
                "La Pewarta: aduan Anda (nomor {short}) diterima dan sedang kami periksa untuk diteruskan ke dinas terkait."
            ),
        ),
    };
    module.notify(&case.id, "resident", &phone, &reply);
    Ok((
        StatusCode::CREATED,
        Json(json!({"case_id": case.id, "category": case.category, "opd": case.opd, "status": case.status, "reply": reply})),
    )
        .into_response())
}

/// `GET /api/v1/complaints/kpi`: % within SLA per step, median and p90 time to the first
/// response and to the close, the backlog by OPD, escalations, the "zero complaint" trend
/// and the channel mix, from the `complaints.*` datasets (brought up to date first), run
/// with the caller's own SQL rights.
pub(crate) async fn kpi(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<crate::modules::PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    let module = module(&app)?;
    let (from, to) = query.period()?;
    module.export().await.map_err(|e| {
        ApiError::unavailable(format!(
            "bringing the complaints datasets up to date failed: {e}"
        ))
    })?;
    let answer = super::kpi::compute(
        &app.reads,
        &timestamp(from),
        &timestamp(to),
        &caller.sql_access(),
    )
    .await
    .map_err(|e| ApiError::unavailable(format!("the complaints KPI queries failed: {e}")))?;
    Ok(Json(answer))
}
