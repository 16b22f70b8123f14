//! Prometheus metrics: requests, query time, rows ingested.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::api::ApiError;
use crate::auth::Caller;
use crate::server::AppState;

/// Seconds buckets for request and query durations.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// Installs the process-wide recorder and returns the handle that renders it.
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// Counts every request and times it, by route template (not raw path) and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("simpul_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("simpul_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: any valid key may scrape (Prometheus sends it as a bearer token).
pub async fn render(State(app): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    record_pipeline_gauges(&app).await?;
    metrics::gauge!("simpul_sql_queries_running").set(app.reads.gate().running() as f64);
    metrics::gauge!("simpul_sql_queries_waiting").set(app.reads.gate().waiting() as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}

/// Sets the pipeline and freshness gauges from the state store, just before a scrape.
async fn record_pipeline_gauges(app: &AppState) -> Result<(), ApiError> {
    let dir = app.config.effective_pipelines_dir();
    let report = crate::pipelines::report(&app.catalog, &dir).await?;
    for pipeline in &report.pipelines {
        let name = pipeline.name.clone();
        metrics::gauge!("simpul_pipeline_failing", "pipeline" => name.clone())
            .set(if pipeline.failing { 1.0 } else { 0.0 });
        if let Some(run) = &pipeline.last_run {
            metrics::gauge!("simpul_pipeline_last_run_timestamp_seconds", "pipeline" => name.clone())
                .set(run.started_at.timestamp() as f64);
            metrics::gauge!("simpul_pipeline_last_run_rows_committed", "pipeline" => name)
                .set(run.rows_committed as f64);
        }
    }
    metrics::gauge!("simpul_pipeline_bad_files").set(report.bad_files.len() as f64);
    let now = chrono::Utc::now();
    for dataset in app.catalog.state.datasets_with_freshness().await? {
        if let Some(freshness) = dataset.freshness(now) {
            metrics::gauge!("simpul_dataset_stale", "dataset" => dataset.id.to_string())
                .set(if freshness.stale { 1.0 } else { 0.0 });
        }
    }
    Ok(())
}

/// Records a finished query.
pub fn query_finished(endpoint: &'static str, seconds: f64, rows: u64) {
    metrics::histogram!("simpul_query_duration_seconds", "endpoint" => endpoint).record(seconds);
    metrics::counter!("simpul_query_rows_total", "endpoint" => endpoint).increment(rows);
}

/// Records rows that an ingest wrote and rejected.
pub fn rows_ingested(dataset: &str, written: u64, rejected: u64) {
    metrics::counter!("simpul_rows_ingested_total", "dataset" => dataset.to_string())
        .increment(written);
    metrics::counter!("simpul_rows_rejected_total", "dataset" => dataset.to_string())
        .increment(rejected);
}

/// Counts a webhook delivery attempt by outcome.
pub fn webhook_attempt(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    metrics::counter!("simpul_webhook_attempts_total", "outcome" => outcome).increment(1);
}

/// Counts a SQL query by protocol and outcome.
pub fn sql_query(protocol: &'static str, outcome: &'static str) {
    metrics::counter!("simpul_sql_queries_total", "protocol" => protocol, "outcome" => outcome)
        .increment(1);
}
