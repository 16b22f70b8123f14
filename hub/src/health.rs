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
async fn ready(State(app): State<AppState>) -> Response {
    let state = app.catalog.state.ping().await;
    let lake = app.catalog.lake.check().await;
    let check = |result: &Result<(), simpul_catalog::CatalogError>| match result {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "failing", "error": e.to_string()}),
    };
    let ok = state.is_ok() && lake.is_ok();
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "checks": {"state_store": check(&state), "lake": check(&lake)},
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
