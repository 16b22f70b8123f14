//! The `/api/v1` routes, composed per area.

mod bus;
mod datasets;
mod error;
mod extract;
mod ingest;
mod keys;
mod pipelines;
mod queries;
mod records;
mod schemas;
mod sql;

use axum::Router;
use axum::routing::{get, post};

pub use error::{ApiError, datafusion_error};
pub use extract::{ApiJson, media_type};

use crate::server::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sql", post(sql::run))
        .route("/datasets", get(datasets::list))
        .route(
            "/datasets/{id}",
            get(datasets::show).patch(datasets::update),
        )
        .route("/datasets/{id}/versions", get(datasets::versions))
        .route("/datasets/{id}/records", get(records::data))
        .route("/datasets/{id}/rejects", get(records::rejects))
        .route("/datasets/{id}/ingest", post(ingest::upload))
        .route("/schemas", get(schemas::list))
        .route("/schemas/{name}", get(schemas::versions))
        .route("/schemas/{name}/{version}", get(schemas::document))
        .route("/validate/{schema}", post(schemas::validate))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/pipelines", get(pipelines::list))
        .route("/pipelines/{name}", get(pipelines::show))
        .route(
            "/pipelines/{name}/runs",
            get(pipelines::runs).post(pipelines::start),
        )
        .route("/pipelines/{name}/runs/{number}", get(pipelines::run))
        .route("/bus/members", get(bus::members).post(bus::add_member))
        .route("/bus/subsystems", post(bus::add_subsystem))
        .route("/bus/groups", post(bus::add_group))
        .route("/bus/groups/{code}/members", post(bus::add_group_member))
        .route("/bus/grants", get(bus::grants).post(bus::add_grant))
        .route("/bus/grants/{id}", axum::routing::delete(bus::revoke_grant))
        .route("/bus/datasets", get(bus::datasets))
        .route("/bus/requests", get(bus::requests).post(bus::add_request))
        .route("/bus/requests/{id}/{verb}", post(bus::decide_request))
        .route("/queries", get(queries::list))
        .route(
            "/queries/{name}",
            get(queries::run).put(queries::save).delete(queries::delete),
        )
}
