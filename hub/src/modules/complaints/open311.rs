//! Open311 GeoReport v2 (JSON) at `/open311/v2`, for the apps and clients that already speak
//! it. Services are the routing categories. Posting needs an API key (`api_key` as Open311
//! says, or a bearer header).
//!
//! Reading is public, so it shows what a request is about and where it stands, never who
//! made it or where they are: the category, the status, the dates, the OPD, and the place
//! to the desa (its name and its centroid). The street address (`x-pii` in the `pengaduan`
//! schema), the exact point and the free text (where residents write names and phone
//! numbers, SMS reports verbatim) stay with the handling OPD.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use simpul_catalog::parse_timestamp;

use super::api::{NewCaseBody, check_new_case, check_schema};
use super::{CASE_COLUMNS, CaseRow, Complaints, workflow};
use crate::api::ApiError;
use crate::server::AppState;

/// Most requests one listing returns.
const MAX_REQUESTS: i64 = 1000;
/// The widest `start_date`–`end_date` window, in days.
const MAX_WINDOW_DAYS: i64 = 90;

/// One service request, as GeoReport v2 defines it, plus Simpul's extension field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequest {
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_notes: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub service_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub agency_responsible: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_notice: Option<String>,
    pub requested_datetime: DateTime<FixedOffset>,
    #[serde(default)]
    pub updated_datetime: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_datetime: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipcode: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub long: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// Extension: the PLIPMAS state behind `open`/`closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simpul_status: Option<String>,
}

/// One service, as GeoReport v2 lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    pub service_code: String,
    pub service_name: String,
    pub description: String,
    pub metadata: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub keywords: String,
    pub group: String,
}

fn wib() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

fn in_wib(text: &str) -> Option<DateTime<FixedOffset>> {
    parse_timestamp(text).map(|t| t.with_timezone(&wib()))
}

fn module(app: &AppState) -> Result<&Complaints, ApiError> {
    app.module::<Complaints>()
        .ok_or_else(|| ApiError::not_found("complaints are turned off on this hub"))
}

impl Complaints {
    fn service_request(&self, case: &CaseRow) -> ServiceRequest {
        let place = PublicPlace::of(case);
        let place = place.as_ref();
        let closed = workflow::is_closed(case.kind(), &case.status);
        let category = case
            .category
            .as_deref()
            .and_then(|c| self.routing.category(c));
        // The SLA deadline is the end of its WIB day.
        let expected = case
            .deadline
            .as_deref()
            .filter(|_| !closed && case.deadline_duty.as_deref() == Some("agency"))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .and_then(|t| t.and_local_timezone(wib()).single());
        ServiceRequest {
            service_request_id: case.id.clone(),
            status: if closed { "closed" } else { "open" }.into(),
            status_notes: Some(format!("PLIPMAS: {}", case.status)),
            service_name: category.map(|c| c.name.clone()),
            service_code: case.category.clone(),
            description: None,
            agency_responsible: case.opd.clone(),
            service_notice: None,
            requested_datetime: in_wib(&case.received_at)
                .unwrap_or_else(|| Utc::now().with_timezone(&wib())),
            updated_datetime: in_wib(&case.updated_at),
            expected_datetime: expected,
            address: place.map(|p| p.name.clone()),
            address_id: place.map(|p| p.kode.clone()),
            zipcode: None,
            lat: place.map(|p| p.lat),
            long: place.map(|p| p.lng),
            media_url: None,
            simpul_status: Some(case.status.clone()),
        }
    }
}

/// Where a request is, as far as the public is told: its desa (or kecamatan), by name and
/// centroid.
#[derive(Debug, Clone, PartialEq)]
struct PublicPlace {
    kode: String,
    name: String,
    lat: f64,
    lng: f64,
}

impl PublicPlace {
    /// The case's desa from its `kode_wilayah`, else from its point; a kecamatan when the
    /// case names only that.
    fn of(case: &CaseRow) -> Option<Self> {
        let desa_map = crate::geo::Boundaries::purwakarta();
        let kecamatan_map = crate::geo::Boundaries::kecamatan();
        let point = case
            .lat
            .zip(case.lng)
            .and_then(|(lat, lng)| crate::geo::Point::new(lat, lng));
        let by_code = case.kode_wilayah.as_deref();
        if let Some(desa) = by_code
            .and_then(|k| desa_map.desa(k))
            .or_else(|| point.and_then(|p| desa_map.locate(p)))
        {
            let kecamatan = kecamatan_map
                .desa(desa.kecamatan())
                .map_or(String::new(), |k| format!(", Kecamatan {}", k.nama));
            return Some(Self {
                kode: desa.kode.clone(),
                name: format!("{}{kecamatan}", desa.nama),
                lat: desa.centroid.lat,
                lng: desa.centroid.lng,
            });
        }
        let kecamatan = by_code.and_then(|k| kecamatan_map.desa(crate::geo::kecamatan_of(k)))?;
        Some(Self {
            kode: kecamatan.kode.clone(),
            name: format!("Kecamatan {}", kecamatan.nama),
            lat: kecamatan.centroid.lat,
            lng: kecamatan.centroid.lng,
        })
    }
}

/// `GET /open311/v2/services.json`.
async fn services(State(app): State<AppState>) -> Result<Json<Vec<Service>>, ApiError> {
    let module = module(&app)?;
    Ok(Json(
        module
            .routing
            .categories
            .iter()
            .map(|c| Service {
                service_code: c.code.clone(),
                service_name: c.name.clone(),
                description: format!("{} — ditangani {}", c.name, c.opd),
                metadata: false,
                kind: "realtime".into(),
                keywords: c.keywords.join(", "),
                group: c.opd.clone(),
            })
            .collect(),
    ))
}

/// `GET /open311/v2/services/{code}.json`: the service definition (no extra attributes).
async fn service(
    State(app): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    let code = file.strip_suffix(".json").unwrap_or(&file);
    if module.routing.category(code).is_none() {
        return Err(ApiError::not_found(format!(
            "no service '{code}'; GET /open311/v2/services.json lists them"
        )));
    }
    Ok(Json(json!({"service_code": code, "attributes": []})).into_response())
}

/// The fields a client may post, form-encoded or JSON.
fn post_fields(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, ApiError> {
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json_body {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}")))?;
        Ok(value
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect())
    } else {
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    }
}

/// `POST /open311/v2/requests.json`: a new complaint. Answers `[{"service_request_id", …}]`.
async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let module = module(&app)?;
    let body = crate::api::read_unauthenticated(body, &headers).await?;
    let fields = post_fields(&headers, &body)?;
    let key = fields
        .get("api_key")
        .cloned()
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        })
        .ok_or_else(|| {
            ApiError::unauthorized("posting a request needs api_key (an API key of this hub)")
        })?;
    let client = module
        .catalog
        .state
        .active_client_by_key_hash(&crate::auth::key_hash(key.trim()))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this api_key is unknown or has been revoked"))?;
    if client.role == simpul_catalog::Role::Analyst {
        return Err(ApiError::forbidden(
            "an analyst key is read-only; post requests with a producer or admin key",
        ));
    }
    let code = fields
        .get("service_code")
        .ok_or_else(|| ApiError::bad_request("service_code is required"))?;
    if module.routing.category(code).is_none() {
        return Err(ApiError::bad_request(format!(
            "no service '{code}'; GET /open311/v2/services.json lists them"
        )));
    }
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        fields
            .get(name)
            .map(|v| {
                v.parse::<f64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be a number; got '{v}'"))
                })
            })
            .transpose()
    };
    let name = [fields.get("first_name"), fields.get("last_name")]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let request = NewCaseBody::open311(
        code.clone(),
        fields.get("description").cloned().unwrap_or_default(),
        (!name.is_empty()).then_some(name),
        fields
            .get("phone")
            .cloned()
            .filter(|p| !p.trim().is_empty()),
        number("lat")?,
        number("long")?,
        fields.get("address_string").cloned(),
    );
    let new = check_new_case(module, request)?;
    check_schema(module, "check", &new).await?;
    let case = module
        .create(&new, &client.id, None, None)
        .await?
        .ok_or_else(|| ApiError::internal("the new request vanished"))?;
    let notice = format!(
        "Aduan diterima dan diteruskan ke {}.",
        case.opd.as_deref().unwrap_or("dinas terkait")
    );
    Ok((
        StatusCode::CREATED,
        Json(
            json!([{"service_request_id": case.id, "service_notice": notice, "account_id": null}]),
        ),
    )
        .into_response())
}

/// `GET /open311/v2/requests.json` filters.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    service_request_id: Option<String>,
    #[serde(default)]
    service_code: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
}

fn date_param(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be ISO 8601 with an offset, 2026-11-01T00:00:00+07:00; got '{text}'"
            ))
        })
}

/// `GET /open311/v2/requests.json`: requests, newest first, at most 1000, within at most 90
/// days (the last 90 by default); identity is never shown.
async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ServiceRequest>>, ApiError> {
    let module = module(&app)?;
    let end = query
        .end_date
        .as_deref()
        .map(|t| date_param("end_date", t))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let start = query
        .start_date
        .as_deref()
        .map(|t| date_param("start_date", t))
        .transpose()?
        .unwrap_or(end - chrono::Duration::days(MAX_WINDOW_DAYS));
    if start > end {
        return Err(ApiError::bad_request("start_date is after end_date"));
    }
    if end - start > chrono::Duration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::bad_request(format!(
            "start_date to end_date spans more than {MAX_WINDOW_DAYS} days; ask for a shorter window"
        )));
    }
    if let Some(status) = &query.status
        && !["open", "closed"].contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status must be open or closed; got '{status}'"
        )));
    }
    let mut sql = format!(
        "SELECT {CASE_COLUMNS} FROM complaint_cases WHERE kind = 'complaint' AND received_at >= $1 AND received_at <= $2"
    );
    let mut binds = vec![
        simpul_catalog::timestamp(start),
        simpul_catalog::timestamp(end),
    ];
    if let Some(code) = &query.service_code {
        binds.push(code.clone());
        sql.push_str(&format!(" AND category = ${}", binds.len()));
    }
    let ids: Vec<String> = query
        .service_request_id
        .as_deref()
        .map(|ids| {
            ids.split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        let first = binds.len() + 1;
        let placeholders: Vec<String> = (first..first + ids.len())
            .map(|n| format!("${n}"))
            .collect();
        sql.push_str(&format!(" AND id IN ({})", placeholders.join(", ")));
        binds.extend(ids);
    }
    match query.status.as_deref() {
        Some("closed") => sql.push_str(" AND closed_at IS NOT NULL"),
        Some(_) => sql.push_str(" AND closed_at IS NULL"),
        None => {}
    }
    sql.push_str(&format!(" ORDER BY received_at DESC LIMIT {MAX_REQUESTS}"));
    let requests: Vec<_> = module
        .cases(&sql, &binds)
        .await?
        .iter()
        .map(|c| module.service_request(c))
        .collect();
    log_read(
        &app,
        format!(
            "GET /open311/v2/requests.json?{}",
            raw.as_deref().unwrap_or_default()
        ),
        requests.len(),
    );
    Ok(Json(requests))
}

/// Records a public read of the complaints in the query log, as every read is.
fn log_read(app: &AppState, text: String, rows: usize) {
    let read = crate::read::Read {
        client_id: crate::portal::PORTAL_CLIENT.to_string(),
        protocol: "open311",
        text,
        rows: crate::read::RowLimit::Configured,
    };
    app.reads
        .record(&read, vec!["complaint_cases".into()], rows as u64);
}

/// `GET /open311/v2/requests/{id}.json`: one request, in a one-element array.
async fn show(
    State(app): State<AppState>,
    Path(file): Path<String>,
) -> Result<Json<Vec<ServiceRequest>>, ApiError> {
    let module = module(&app)?;
    let id = file.strip_suffix(".json").unwrap_or(&file);
    let case = module
        .case(id)
        .await?
        .filter(|c| c.kind() == workflow::Kind::Complaint)
        .ok_or_else(|| ApiError::not_found(format!("no service request {id}")))?;
    log_read(&app, format!("GET /open311/v2/requests/{id}.json"), 1);
    Ok(Json(vec![module.service_request(&case)]))
}

// The Open311 routes, outside `/api/v1`. Reading is open; a post carries its `api_key`
// (as GeoReport v2 has it) or a bearer header, checked by the handler.
crate::routes::route_table! {
    prefix "";
    "/open311/v2/services.json" => { get services [open]: "Open311 GeoReport v2: the services (complaint categories)" }
    "/open311/v2/services/{code}" => { get service [open]: "Open311: one service's definition ({code}.json)" }
    "/open311/v2/requests.json" => {
        get list [open]: "Open311: requests (service_request_id, service_code, status, start_date/end_date within 90 days; at most 1000); never identity, the address, the exact point or the text",
        post create [open]: "Open311: post a request with api_key (form-encoded or JSON)",
    }
    "/open311/v2/requests/{id}" => { get show [open]: "Open311: one request ({id}.json)" }
}

#[cfg(test)]
mod tests {
    use super::ServiceRequest;

    #[test]
    fn the_real_chicago_records_parse_with_the_servers_types() {
        let text = include_str!("../../../../tests/fixtures/open311/service_requests.json");
        let requests: Vec<ServiceRequest> = serde_json::from_str(text).unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].service_request_id, "14-01100669");
        assert_eq!(
            requests[0].status_notes, None,
            "the record without status_notes"
        );
        assert_eq!(requests[1].status_notes.as_deref(), Some("Locked"));
        assert_eq!(
            requests[1].requested_datetime.offset().local_minus_utc(),
            -5 * 3600
        );
        assert_eq!(requests[0].long, Some(-87.66475146237676));
        // And they write back out with the same fields.
        let again: Vec<ServiceRequest> =
            serde_json::from_str(&serde_json::to_string(&requests).unwrap()).unwrap();
        assert_eq!(again, requests);
    }

    mod fuzz {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use proptest::prelude::*;

        use super::super::post_fields;

        fn headers(json: bool) -> HeaderMap {
            let mut headers = HeaderMap::new();
            let media = if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            headers.insert("content-type", media.parse().unwrap());
            headers
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn any_body_is_read_or_refused_without_a_panic(body in prop::collection::vec(any::<u8>(), 0..2048), json in any::<bool>()) {
                let _ = post_fields(&headers(json), &Bytes::from(body));
            }

            #[test]
            fn posted_fields_come_back_as_sent(fields in prop::collection::btree_map("[a-z_]{1,12}", ".{0,40}", 0..8)) {
                let form: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fields)
                    .finish();
                let read = post_fields(&headers(false), &Bytes::from(form)).unwrap();
                prop_assert_eq!(read.len(), fields.len());
                for (name, value) in &fields {
                    prop_assert_eq!(read.get(name), Some(value));
                }
                let json = serde_json::to_vec(&fields).unwrap();
                let read = post_fields(&headers(true), &Bytes::from(json)).unwrap();
                for (name, value) in &fields {
                    prop_assert_eq!(read.get(name), Some(value));
                }
            }
        }
    }
}
