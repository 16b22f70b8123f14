//! The `/api/v1` routes, composed per area. One table (`crate::routes::route_table!`) makes
//! both the router and the operation list that `/api/v1/openapi.json` is written from, so the
//! document cannot miss a route.

mod bus;
mod datasets;
mod error;
mod exchange;
mod extract;
mod ingest;
mod keys;
mod openapi;
mod pipelines;
pub(crate) mod queries;
pub(crate) mod records;
mod schemas;
pub(crate) mod sql;
mod users;
mod webhooks;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use error::{ApiError, datafusion_error};
pub use extract::{
    ApiJson, JsonWithBytes, UNAUTHENTICATED_BODY_LIMIT, media_type, read_unauthenticated,
};

use crate::modules::complaints::api as complaints;
use crate::modules::complaints::attachments as complaints_attachments;
use crate::modules::semar::api as semar;

/// A stored answer: JSON, or problem+json for an error status.
pub(crate) fn answer(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let media = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// The stored answer of a request applied before, sent again for a retry with the same
/// `Idempotency-Key` and marked `Idempotency-Replayed: true`.
pub(crate) fn replay(status: u16, body: String) -> Response {
    let mut response = answer(status, body);
    response
        .headers_mut()
        .insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
}

crate::routes::route_table! {
    prefix "/api/v1";
    "/sql" => { post sql::run: "Run one read-only SQL statement; results as JSON, CSV, Arrow IPC or Parquet" }
    "/datasets" => { get datasets::list: "Search the catalog (q, owner, tag, classification, limit, offset)" }
    "/datasets/{id}" => {
        get datasets::show: "A dataset's metadata, schema, statistics, freshness and lineage",
        patch datasets::update: "Change a dataset's title, description, tags, classification or owner",
    }
    "/datasets/{id}/versions" => { get datasets::versions: "The dataset's Delta history, newest first" }
    "/datasets/{id}/records" => { get records::data: "Rows by filters, sort, columns and paging; version= for time travel" }
    "/datasets/{id}/rejects" => { get records::rejects: "The dataset's rejected rows with their reasons" }
    "/datasets/{id}/ingest" => { post ingest::upload: "Upload a file (CSV, TSV, NDJSON, JSON, Parquet, spreadsheets) into the dataset" }
    "/schemas" => { get schemas::list: "The canonical schemas with their versions" }
    "/schemas/{name}" => { get schemas::versions: "The versions of one canonical schema" }
    "/schemas/{name}/{version}" => { get schemas::document: "The raw JSON Schema document of one version" }
    "/validate/{schema}" => { post schemas::validate: "Validate a payload against a schema without writing; every error" }
    "/keys" => {
        get keys::list: "API clients (never their keys); admins",
        post keys::create: "Issue a key for a registered subsystem; admins",
    }
    "/keys/{id}" => { delete keys::revoke: "Revoke a client's key; admins" }
    "/users" => {
        get users::list: "User accounts (never their passwords); admins",
        post users::create: "Make a user account that logs in with a password (web pages, PostgreSQL); admins",
    }
    "/users/{id}" => { delete users::revoke: "Revoke a user account; its sessions end; admins" }
    "/users/{id}/password" => { put users::password: "Set a user account's password; admins" }
    "/pipelines" => { get pipelines::list: "Pipelines with schedule, newest run, failing state and freshness" }
    "/pipelines/{name}" => { get pipelines::show: "One pipeline" }
    "/pipelines/{name}/runs" => {
        get pipelines::runs: "A pipeline's run history, newest first",
        post pipelines::start: "Start a run (wait=true answers when it ended)",
    }
    "/pipelines/{name}/runs/{number}" => { get pipelines::run: "One run of a pipeline" }
    "/bus/members" => {
        get bus::members: "Every member with its subsystems (listClients)",
        post bus::add_member: "Register a member, INSTANCE/CLASS/MEMBER; admins",
    }
    "/bus/subsystems" => { post bus::add_subsystem: "Register a subsystem, INSTANCE/CLASS/MEMBER/SUBSYSTEM; admins" }
    "/bus/groups" => { post bus::add_group: "Register a group of subsystems; admins" }
    "/bus/groups/{code}/members" => { post bus::add_group_member: "Add a subsystem to a group; admins" }
    "/bus/grants" => {
        get bus::grants: "Grants the caller may see (dataset=, allowed=true for those in force)",
        post bus::add_grant: "Grant rights on a dataset to a subsystem or a group; owner or admin",
    }
    "/bus/grants/{id}" => { delete bus::revoke_grant: "Revoke a grant; owner or admin" }
    "/bus/datasets" => { get bus::datasets: "Datasets with the caller's rights (allowedMethods with allowed=true)" }
    "/bus/datasets/{id}/records" => { post exchange::publish: "Publish records (NDJSON, JSON array, CSV, Arrow IPC) with an Idempotency-Key; answers with the signed receipt" }
    "/bus/datasets/{id}/changes" => { get exchange::changes: "The rows committed after since_version, with version and commit time, NDJSON ending in a signed seal, or Arrow" }
    "/bus/keys" => { get exchange::keys: "The hub's Ed25519 public keys, current and retired, that verify receipts, feeds and the message log" }
    "/bus/webhooks" => {
        get webhooks::list: "The caller's webhook subscriptions (every one for admins)",
        post webhooks::create: "Subscribe a URL to a dataset's new rows; the HMAC secret is shown once",
    }
    "/bus/webhooks/{id}" => { delete webhooks::delete: "Delete a subscription; its pending deliveries stop" }
    "/bus/webhooks/{id}/deliveries" => { get webhooks::deliveries: "A subscription's deliveries with status, attempts and last error (status=)" }
    "/bus/deliveries/{id}/redeliver" => { post webhooks::redeliver: "Queue a delivery again (a dead-lettered one too), attempts reset" }
    "/bus/peers" => {
        get exchange::peers: "The hubs this hub federates with (none unless registered)",
        post exchange::put_peer: "Register a peer hub with its base URL and public keys, or replace them; admins",
    }
    "/bus/keys/rotate" => { post exchange::rotate_key: "Make a new signing key; older keys stay published; admins" }
    "/bus/requests" => {
        get bus::requests: "Access requests the caller may see (status=)",
        post bus::add_request: "Ask, for the caller's subsystem, for rights on a dataset",
    }
    "/bus/requests/{id}/{verb}" => { post bus::decide_request: "Approve (verb approve) or reject (verb reject) a pending request; owner or admin" }
    "/queries" => { get queries::list: "Saved queries with their SQL and parameters" }
    "/queries/{name}" => {
        get queries::run: "Run a saved query with its parameters",
        put queries::save: "Save a query; analysts change only queries they saved that no dashboard, module or file uses",
        delete queries::delete: "Delete a saved query, under the same rule",
    }
    "/queries/{name}/versions" => { get queries::versions: "Every version of a saved query: each change and the delete, with who and when" }
    "/semar/residents" => { post semar::register: "SEMAR: register a resident by NIK (checked against the population dataset when present)" }
    "/semar/calls" => {
        get semar::list_calls: "SEMAR: open calls, newest first (status= for others); operators",
        post semar::create_call: "SEMAR: a new call (app, phone or sms) pending confirmation; needs an Idempotency-Key",
    }
    "/semar/calls/{id}" => { get semar::show_call: "SEMAR: one call with its dispatches" }
    "/semar/calls/{id}/confirm" => { post semar::confirm_call: "SEMAR: confirm a call; the nearest free unit is assigned, or the call is queued" }
    "/semar/calls/{id}/cancel" => { post semar::cancel_call: "SEMAR: cancel a call; its unit is freed" }
    "/semar/dispatches/{id}" => { get semar::show_dispatch: "SEMAR: one dispatch with every step's time and the allowed next steps" }
    "/semar/dispatches/{id}/events" => { post semar::dispatch_event: "SEMAR: record a crew step (notified … handed_over, back_in_service, cancelled); 409 with the allowed next steps" }
    "/semar/ambulances" => { get semar::list_units: "SEMAR: the fleet with live positions, and the queue" }
    "/semar/ambulances/{kode}" => { put semar::put_unit: "SEMAR: register or update a unit" }
    "/semar/ambulances/{kode}/location" => { post semar::location: "SEMAR: one GPS ping from a unit" }
    "/semar/facilities/nearest" => { get semar::nearest_facilities: "SEMAR: nearest facilities (lat, lng, jenis, limit) with distance and estimated time" }
    "/semar/drupadi" => { get semar::drupadi: "SEMAR Drupadi: on-call doctors and midwives of a desa, then its kecamatan" }
    "/semar/drupadi/{id}" => { put semar::put_oncall: "SEMAR Drupadi: add or change a doctor or midwife on the roster" }
    "/semar/sms/inbound" => { post semar::sms_inbound [signed]: "SEMAR SMS fallback: a gateway webhook signed with the shared secret (HMAC-SHA256)" }
    "/semar/stream" => { get semar::stream: "SEMAR operator console: Server-Sent Events of calls, dispatches and units" }
    "/semar/kpi" => { get semar::kpi: "SEMAR KPIs: 90th-percentile response, % within 10 minutes, intervals, units, calls by area and channel" }
    "/complaints" => {
        get complaints::list: "PLIPMAS: cases, newest first (opd=, opd=none for triage, status=)",
        post complaints::create: "PLIPMAS: file a complaint or an information request; deadlines in working days",
    }
    "/complaints/overdue" => { get complaints::overdue: "PLIPMAS: open cases past an agency deadline, by OPD" }
    "/complaints/sms/inbound" => { post complaints::sms_inbound [signed]: "La Pewarta: an SMS gateway webhook (HMAC-SHA256), routed by keyword to the OPD" }
    "/complaints/{id}" => { get complaints::show: "PLIPMAS: one case with its deadline, history and messages" }
    "/complaints/{id}/transitions" => { post complaints::transition: "PLIPMAS: one workflow step; 409 with the allowed next states" }
    "/complaints/{id}/answer" => { post complaints::answer: "PLIPMAS / La Pewarta: the OPD's answer, sent to the resident by SMS, the Regent told" }
    "/complaints/{id}/route" => { post complaints::route: "La Pewarta: route a triage case to a category's OPD" }
    "/complaints/{id}/attachments" => {
        get complaints_attachments::list: "PLIPMAS: a case's evidence attachments with their SHA-256",
        post complaints_attachments::upload: "PLIPMAS: add evidence (the body is the file; type and size limits, virus scan)",
    }
    "/complaints/{id}/attachments/{attachment}" => { get complaints_attachments::download: "PLIPMAS: one attachment, checked against its SHA-256" }
    "/complaints/kpi" => { get complaints::kpi: "PLIPMAS / La Pewarta KPIs: % within SLA per step, response and close times, backlog, escalations, trend, channels" }
    "/openapi.json" => { get openapi::document: "This document (getOpenAPI)" }
}
