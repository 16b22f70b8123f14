//! What the hub reports about pipelines and freshness: one place that the pipelines API,
//! `/health/ready` and `/metrics` all read, so they never disagree.

use std::path::Path;

use chrono::Utc;
use serde::Serialize;
use simpul_catalog::{Catalog, CatalogError, Freshness, PipelineRun, RunStatus};
use simpul_pipelines::{PipelineDefinition, scan_dir};

/// The pipelines of a folder, with their newest run.
pub struct PipelineReport {
    /// Each good pipeline file, with its status.
    pub pipelines: Vec<PipelineStatus>,
    /// Files that cannot be used, each naming the file and the reason.
    pub bad_files: Vec<String>,
}

/// One pipeline as the hub sees it now.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    /// The pipeline's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The connector.
    pub connector: String,
    /// The target dataset.
    pub dataset: String,
    /// The cron schedule; `None` for manual pipelines.
    pub schedule: Option<String>,
    /// The schedule's time zone.
    pub timezone: String,
    /// The next schedule time, in the pipeline's time zone (RFC 3339).
    pub next_run: Option<String>,
    /// `full_refresh` or `incremental`.
    pub sync_mode: &'static str,
    /// `append`, `overwrite` or `merge`.
    pub write_mode: &'static str,
    /// The newest run, if it ever ran.
    pub last_run: Option<PipelineRun>,
    /// Whether the newest finished run failed.
    pub failing: bool,
    /// The target's freshness against its SLA, when it declares one.
    pub freshness: Option<Freshness>,
}

/// Reads the folder again and joins each pipeline with its newest run and its target's
/// freshness.
pub async fn report(catalog: &Catalog, dir: &Path) -> Result<PipelineReport, CatalogError> {
    let (definitions, errors) = scan_dir(dir, |name| std::env::var(name).ok());
    let latest = catalog.state.latest_runs().await?;
    let mut pipelines = Vec::with_capacity(definitions.len());
    for definition in &definitions {
        let last_run = latest
            .iter()
            .find(|r| r.pipeline == definition.name)
            .cloned();
        let freshness = match definition.target.dataset.parse() {
            Ok(id) => catalog
                .state
                .dataset(&id)
                .await?
                .and_then(|meta| meta.freshness(Utc::now())),
            Err(_) => None,
        };
        pipelines.push(status(definition, last_run, freshness));
    }
    Ok(PipelineReport {
        pipelines,
        bad_files: errors.iter().map(ToString::to_string).collect(),
    })
}

fn status(
    definition: &PipelineDefinition,
    last_run: Option<PipelineRun>,
    freshness: Option<Freshness>,
) -> PipelineStatus {
    let failing = last_run
        .as_ref()
        .is_some_and(|r| matches!(r.status, RunStatus::Failed | RunStatus::Interrupted));
    PipelineStatus {
        name: definition.name.clone(),
        description: definition.description.clone(),
        connector: definition.source.connector.clone(),
        dataset: definition.target.dataset.clone(),
        schedule: definition.schedule.clone(),
        timezone: definition.timezone.clone(),
        next_run: definition.next_run(Utc::now()).map(|t| t.to_rfc3339()),
        sync_mode: definition.sync_mode.as_str(),
        write_mode: definition.write_mode.as_str(),
        last_run,
        failing,
        freshness,
    }
}

/// The ids of every dataset whose freshness SLA is broken now.
pub async fn stale_datasets(catalog: &Catalog) -> Result<Vec<String>, CatalogError> {
    let now = Utc::now();
    Ok(catalog
        .state
        .datasets_with_freshness()
        .await?
        .into_iter()
        .filter(|d| d.freshness(now).is_some_and(|f| f.stale))
        .map(|d| d.id.to_string())
        .collect())
}
