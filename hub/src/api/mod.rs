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
    "/openapi.json" => { get openapi::document: "This document (getOpenAPI)" }
}
