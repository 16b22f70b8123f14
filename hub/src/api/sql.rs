//! `POST /api/v1/sql`: read-only SQL over every dataset, streamed in the negotiated format.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use simpul_catalog::Role;

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::results::{self, ResultFormat};
use crate::server::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only statement.
    sql: String,
}

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct SqlParams {
    /// `json`, `csv`, `arrow` or `parquet`; overrides the Accept header.
    format: Option<String>,
}

pub(super) async fn run(
    State(app): State<AppState>,
    caller: Caller,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SqlRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Analyst, Role::Admin], "running SQL")?;
    let format = ResultFormat::negotiate(params.format.as_deref(), headers.get(header::ACCEPT))?;
    tracing::info!(client = caller.id(), sql = %request.sql, "sql query");
    let (stream, deadline) = start_sql(
        &app,
        caller.id(),
        &caller.sql_access(),
        &request.sql,
        "http",
    )
    .await?;
    let limits = &app.config.query;
    let started = results::start(stream, deadline, limits.timeout_secs).await?;
    results::respond(started, format, limits.row_limit, deadline, "sql")
}

/// Starts one read-only statement for `client_id` with `access`, through the read door
/// (`kind` names where it came from): its rows, within the configured limits, and when it
/// must be done. The portal's downloads use it too.
pub(crate) async fn start_sql(
    app: &AppState,
    client_id: &str,
    access: &simpul_catalog::SqlAccess,
    sql: &str,
    kind: &'static str,
) -> Result<
    (
        datafusion::execution::SendableRecordBatchStream,
        tokio::time::Instant,
    ),
    ApiError,
> {
    let read = crate::read::Read {
        client_id: client_id.to_string(),
        protocol: kind,
        text: sql.to_string(),
        rows: crate::read::RowLimit::Configured,
    };
    let reading = app
        .reads
        .read(read, app.reads.plan_sql(sql, None, access))
        .await?;
    Ok((reading.stream, reading.deadline))
}
