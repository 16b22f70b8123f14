//! `POST /api/v1/sql`: read-only SQL over every dataset, streamed in the negotiated format.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use simpul_catalog::{CatalogError, QueryOutcome, Role};

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::query::{QueryTicket, StreamLimits};
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

/// Starts one read-only statement for `client_id` with `access`, through the query gate and
/// the query log (`kind` names where it came from): its rows, within the configured limits,
/// and when it must be done. The portal's downloads use it too.
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
    let ticket = QueryTicket::new(&app.catalog.state, client_id, kind, sql);
    let (mut ticket, permit) = app.gate.admit_ticket(ticket).await?;
    let limits = &app.config.query;
    let deadline = results::deadline(limits.timeout_secs);
    let planned = tokio::time::timeout_at(deadline, async {
        let planned = app
            .catalog
            .plan_read_query(sql, &app.session_settings(), access)
            .await?;
        // One row past the limit tells us whether the limit cut the result.
        let frame = simpul_catalog::limit_rows(planned.frame, limits.row_limit + 1)?;
        Ok::<_, CatalogError>((planned.tables, simpul_catalog::execute(frame).await?))
    })
    .await;
    let (tables, stream) = match planned {
        Ok(Ok(planned)) => planned,
        Ok(Err(e)) => {
            let outcome = crate::query::outcome_of(&e);
            let error = ApiError::from(e);
            ticket.finish(outcome, Some(error.detail().to_string()));
            return Err(error);
        }
        Err(_) => {
            let error = ApiError::timeout(limits.timeout_secs);
            ticket.finish(QueryOutcome::TimedOut, Some(error.detail().to_string()));
            return Err(error);
        }
    };
    ticket.reads(tables);
    Ok((
        ticket.stream(stream, StreamLimits::configured(limits, deadline, permit)),
        deadline,
    ))
}
