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
    let limits = &app.config.query;
    let deadline = results::deadline(limits.timeout_secs);
    tracing::info!(client = caller.id(), sql = %request.sql, "sql query");
    let planned = tokio::time::timeout_at(deadline, async {
        let frame = app
            .catalog
            .plan_read_query(&request.sql, &app.session_settings())
            .await?;
        // One row past the limit tells us whether the limit cut the result.
        let frame = frame.limit(0, Some((limits.row_limit + 1) as usize))?;
        simpul_catalog::execute(frame).await
    })
    .await
    .map_err(|_| ApiError::timeout(limits.timeout_secs))??;
    let started = results::start(planned, deadline, limits.timeout_secs).await?;
    results::respond(started, format, limits.row_limit, deadline, "sql")
}
