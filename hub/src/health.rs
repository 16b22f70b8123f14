//! Liveness and readiness probes: open, so that orchestrators need no key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the state store answers a query and the lake's storage answers a listing.
/// Failing pipelines and stale datasets make the hub `degraded`: still ready (200), with the
/// details, so that an orchestrator does not restart a hub whose source is down.
async fn ready(State(app): State<AppState>) -> Response {
    let state = app.catalog.state.ping().await;
    let lake = app.catalog.lake.check().await;
    let check = |result: &Result<(), simpul_catalog::CatalogError>| match result {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "failing", "error": e.to_string()}),
    };
    let ok = state.is_ok() && lake.is_ok();
    let (pipelines, degraded) = if state.is_ok() {
        pipeline_check(&app).await
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

/// Failing pipelines, stale datasets and unusable pipeline files; whether any exist.
async fn pipeline_check(app: &AppState) -> (serde_json::Value, bool) {
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
            let detail = json!({
                "status": if degraded { "degraded" } else { "ok" },
                "pipelines": report.pipelines.len(),
                "failing": failing,
                "stale_datasets": stale,
                "bad_files": report.bad_files,
            });
            (detail, degraded)
        }
        (Err(e), _) | (_, Err(e)) => (json!({"status": "unknown", "error": e.to_string()}), true),
    }
}
