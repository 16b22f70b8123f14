//! Liveness and readiness probes: open, so that orchestrators need no key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use simpul_catalog::Role;

use crate::auth::Caller;
use crate::server::AppState;

crate::routes::route_table! {
    prefix "";
    "/health/live" => { get live [open]: "Liveness" }
    "/health/ready" => { get ready [open]: "Readiness: the state store and the lake answer; pipelines and freshness (details with an admin key)" }
    "/metrics" => { get crate::metrics::render: "Prometheus metrics" }
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the state store answers a query and the lake's storage answers a listing.
/// Failing pipelines and stale datasets make the hub `degraded`: still ready (200), so that an
/// orchestrator does not restart a hub whose source is down. Anyone sees the statuses and
/// counts; the details (error texts, pipeline and dataset names) go to admins only, since
/// they name restricted datasets and what a source answered.
async fn ready(State(app): State<AppState>, caller: Option<Caller>) -> Response {
    let details = caller.is_some_and(|c| c.0.role == Role::Admin);
    let state = app.catalog.state.ping().await;
    let lake = app.catalog.lake.check().await;
    let check = |result: &Result<(), simpul_catalog::CatalogError>| match result {
        Ok(()) => json!({"status": "ok"}),
        Err(e) if details => json!({"status": "failing", "error": e.to_string()}),
        Err(_) => json!({"status": "failing"}),
    };
    let ok = state.is_ok() && lake.is_ok();
    let (pipelines, degraded) = if state.is_ok() {
        pipeline_check(&app, details).await
    } else {
        (json!({"status": "unknown"}), false)
    };
    let status = match (ok, degraded) {
        (false, _) => "failing",
        (true, true) => "degraded",
        (true, false) => "ok",
    };
    let body = json!({
        "status": status,
        "checks": {"state_store": check(&state), "lake": check(&lake), "pipelines": pipelines},
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Failing pipelines, stale datasets and unusable pipeline files, with their names and
/// errors when `details`, else only how many; whether any exist.
async fn pipeline_check(app: &AppState, details: bool) -> (serde_json::Value, bool) {
    let dir = app.config.effective_pipelines_dir();
    let report = crate::pipelines::report(&app.catalog, &dir).await;
    let stale = crate::pipelines::stale_datasets(&app.catalog).await;
    match (report, stale) {
        (Ok(report), Ok(stale)) => {
            let failing: Vec<serde_json::Value> = report
                .pipelines
                .iter()
                .filter(|p| p.failing)
                .map(|p| {
                    let error = p.last_run.as_ref().and_then(|r| r.error.clone());
                    json!({"pipeline": p.name, "error": error})
                })
                .collect();
            let degraded = !failing.is_empty() || !stale.is_empty() || !report.bad_files.is_empty();
            let status = if degraded { "degraded" } else { "ok" };
            let detail = if details {
                json!({
                    "status": status,
                    "pipelines": report.pipelines.len(),
                    "failing": failing,
                    "stale_datasets": stale,
                    "bad_files": report.bad_files,
                })
            } else {
                json!({
                    "status": status,
                    "pipelines": report.pipelines.len(),
                    "failing": failing.len(),
                    "stale_datasets": stale.len(),
                    "bad_files": report.bad_files.len(),
                })
            };
            (detail, degraded)
        }
        (Err(e), _) | (_, Err(e)) => {
            let error = if details {
                json!(e.to_string())
            } else {
                json!(null)
            };
            (json!({"status": "unknown", "error": error}), true)
        }
    }
}
