//! The pipelines API: list pipelines with their newest run, start a run, read the history.
//!
//! A pipeline's source settings (URLs with keys, passwords) are never shown; only its
//! connector and target.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_catalog::{DatasetId, Role};
use simpul_pipelines::{PipelineDefinition, RunError, Trigger, TriggerKind, scan_dir};

use super::ApiError;
use crate::auth::Caller;
use crate::pipelines::{PipelineStatus, report};
use crate::server::AppState;

/// Query parameters of `POST /pipelines/{name}/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartParams {
    /// Answer when the run has ended instead of when it has started.
    #[serde(default)]
    wait: bool,
}

/// Query parameters of the run history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryParams {
    /// Most runs to return (default 50, at most 1000).
    limit: Option<i64>,
}

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let found = report(&app.catalog, &app.config.effective_pipelines_dir()).await?;
    let mut visible = Vec::new();
    for pipeline in found.pipelines {
        if may_see(&app, &caller, &pipeline.dataset).await? {
            visible.push(pipeline);
        }
    }
    let bad_files = if caller.0.role == Role::Admin {
        found.bad_files
    } else {
        Vec::new()
    };
    Ok(Json(json!({"pipelines": visible, "bad_files": bad_files})))
}

pub(super) async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PipelineStatus>, ApiError> {
    let found = report(&app.catalog, &app.config.effective_pipelines_dir()).await?;
    let pipeline = found
        .pipelines
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| no_such_pipeline(&name))?;
    if !may_see(&app, &caller, &pipeline.dataset).await? {
        return Err(no_such_pipeline(&name));
    }
    Ok(Json(pipeline))
}

pub(super) async fn start(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<StartParams>,
) -> Result<Response, ApiError> {
    let definition = definition(&app, &name)?;
    let target: DatasetId = definition
        .target
        .dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| ApiError::internal(e))?;
    let existing = app.catalog.state.dataset(&target).await?;
    let may_run = match caller.0.role {
        Role::Admin => true,
        Role::Producer => match &existing {
            Some(dataset) => dataset.owner == caller.0.member,
            None => definition
                .target
                .owner
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(&caller.0.member)),
        },
        Role::Analyst => false,
    };
    if !may_run {
        return Err(ApiError::forbidden(format!(
            "{} may not run pipeline {name}: that needs an admin key or a producer key of the owner of {target}",
            caller.id()
        )));
    }
    let trigger = Trigger {
        kind: TriggerKind::Api,
        actor: caller.id().to_string(),
    };
    let started = app
        .runner
        .start(&definition, &trigger)
        .await
        .map_err(|e| match e {
            RunError::Busy(_) => ApiError::conflict(e.to_string()),
            RunError::Catalog(e) => e.into(),
        })?;
    let location = format!(
        "/api/v1/pipelines/{name}/runs/{}",
        started.record().run_number
    );
    let run = started.record().clone();
    // The run goes on in the background even if this client stops waiting.
    let finished = app.runner.spawn(started);
    if params.wait {
        let result = finished
            .await
            .map_err(|_| ApiError::internal("the run's task ended without a result"))?
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok((
            StatusCode::OK,
            [(header::LOCATION, location)],
            Json(json!({"run": result.run, "sample_rejects": result.sample_rejects})),
        )
            .into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({"run": run})),
    )
        .into_response())
}

pub(super) async fn runs(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    let definition = definition(&app, &name)?;
    if !may_see(&app, &caller, &definition.target.dataset).await? {
        return Err(no_such_pipeline(&name));
    }
    let runs = app
        .catalog
        .state
        .runs(&name, params.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({"pipeline": name, "runs": runs})))
}

pub(super) async fn run(
    State(app): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let definition = definition(&app, &name)?;
    if !may_see(&app, &caller, &definition.target.dataset).await? {
        return Err(no_such_pipeline(&name));
    }
    let number: i64 = number
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{number}' is not a run number")))?;
    let run = app
        .catalog
        .state
        .run_by_number(&name, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pipeline {name} has no run {number}")))?;
    Ok(Json(json!({"run": run})))
}

/// Admins and analysts see every pipeline; producers those whose target their member owns
/// (or will own).
async fn may_see(app: &AppState, caller: &Caller, dataset: &str) -> Result<bool, ApiError> {
    if caller.0.role != Role::Producer {
        return Ok(true);
    }
    let Ok(id) = dataset.parse::<DatasetId>() else {
        return Ok(false);
    };
    Ok(app
        .catalog
        .state
        .dataset(&id)
        .await?
        .is_some_and(|d| d.owner == caller.0.member))
}

/// The pipeline's definition, read from its file now. A broken file answers 422 naming it.
fn definition(app: &AppState, name: &str) -> Result<PipelineDefinition, ApiError> {
    let dir = app.config.effective_pipelines_dir();
    let (definitions, errors) = scan_dir(&dir, |v| std::env::var(v).ok());
    if let Some(found) = definitions.into_iter().find(|d| d.name == name) {
        return Ok(found);
    }
    if let Some(error) = errors
        .iter()
        .find(|e| e.path.file_stem().is_some_and(|s| s == name))
    {
        return Err(ApiError::unprocessable(format!(
            "the file of pipeline {name} cannot be used: {error}"
        )));
    }
    Err(no_such_pipeline(name))
}

fn no_such_pipeline(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no pipeline '{name}'"))
}
