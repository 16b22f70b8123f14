//! Running a pipeline: read its source from the last landed cursor, transform, validate and
//! commit the rows and the new cursor together, exactly once.
//!
//! Exactly once rests on the lake, not on the run history: every run's data commit carries
//! the Delta application transaction `simpul.pipeline.<name>` with the run's number, and the
//! cursor it reached in the commit's metadata. A run starts from the cursor of the last run
//! the table holds, so a run killed before its commit leaves nothing and is read again, and
//! a run killed after its commit is not read again. Two runs of one pipeline never overlap:
//! a lock within the process and a lease in the state store across processes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use simpul_catalog::instance::{holder_is_gone, host_name};
use simpul_catalog::{
    AppTransaction, Catalog, CatalogError, Classification, Contract, DatasetId, LakeTable, NewRun,
    PipelineRun, RunOutcome, RunStatus, SchemaBinding, SourceDescription,
    WriteMode as LakeWriteMode,
};
use simpul_connectors::{
    RawBatch, RawBatchReader, ReadEvent, ReadProgress, Source, SourceError, SourceMetadata,
};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};

use crate::definition::{PipelineDefinition, SyncMode, WriteMode};
use crate::ingest::{
    DatasetDefaults, IngestOptions, IngestReport, RunCommit, SchemaChoice, ingest,
};
use crate::transform::Transform;

/// How long a run's lease lasts without renewal; a holder that died frees it after this.
const LEASE_SECONDS: i64 = 60;

/// How far back the lake's history is searched for a landed run's cursor when the run
/// history lost it (a process that died between the commit and the history update).
const HISTORY_SEARCH: usize = 1000;

/// What started a run.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `schedule`, `manual` (CLI) or `api`.
    pub kind: TriggerKind,
    /// Who: `scheduler`, `cli`, an API client id.
    pub actor: String,
}

/// The kinds of trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// The cron schedule, for the schedule time given.
    Schedule(DateTime<Utc>),
    /// `simpul pipelines run`.
    Manual,
    /// `POST /api/v1/pipelines/{name}/runs`.
    Api,
}

impl TriggerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Schedule(_) => "schedule",
            Self::Manual => "manual",
            Self::Api => "api",
        }
    }
}

/// Why a run could not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run of the pipeline is under way (here or in another process).
    #[error("pipeline {0} is already running; try again when that run ends")]
    Busy(String),
    /// The state store or the lake failed outside the run itself.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Rows and bytes read so far by a run, for a progress bar.
#[derive(Debug, Default)]
pub struct RunProgress {
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl RunProgress {
    /// Records read so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes of record text read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// What a finished run reports: its history row and, when it ingested, the ingest report.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run as the history keeps it.
    pub run: PipelineRun,
    /// Up to five rejected rows, for a person to see what went wrong.
    pub sample_rejects: Vec<simpul_schemas::RejectedRow>,
}

/// Told of every run once it is recorded (the hub logs federation pulls with it).
pub type RunObserver = Arc<
    dyn Fn(PipelineDefinition, PipelineRun) -> futures::future::BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// Runs pipelines; one per hub process, shared by the scheduler, the API and the CLI.
pub struct Runner {
    catalog: Arc<Catalog>,
    holder: String,
    default_owner: String,
    observer: Option<RunObserver>,
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    background: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

/// A run that holds its pipeline's lock and lease and is recorded as `running`.
pub struct StartedRun {
    catalog: Arc<Catalog>,
    definition: PipelineDefinition,
    record: PipelineRun,
    resume: Option<serde_json::Value>,
    holder: String,
    default_owner: String,
    observer: Option<RunObserver>,
    _lock: OwnedMutexGuard<()>,
    renewal: AbortOnDrop,
}

/// A background task that stops when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runner {
    /// A runner writing through `catalog`; datasets it creates without an owner belong to
    /// `default_owner`.
    pub fn new(catalog: Arc<Catalog>, default_owner: &str) -> Self {
        Self {
            catalog,
            holder: format!(
                "{}:{}:{}",
                host_name(),
                std::process::id(),
                uuid::Uuid::new_v4()
            ),
            default_owner: default_owner.to_string(),
            observer: None,
            locks: std::sync::Mutex::new(HashMap::new()),
            background: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// The same runner, telling `observer` of every run it records.
    pub fn with_observer(mut self, observer: RunObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Executes a started run in the background; [`Runner::drain`] waits for it. The
    /// receiver gets the result, for a caller that waits (the run goes on if it stops
    /// waiting).
    pub fn spawn(
        &self,
        started: StartedRun,
    ) -> tokio::sync::oneshot::Receiver<Result<RunResult, RunError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        while background.try_join_next().is_some() {}
        background.spawn(async move {
            let pipeline = started.definition.name.clone();
            let result = started.execute(Arc::default()).await;
            if let Err(error) = &result {
                tracing::error!(%pipeline, %error, "could not record the end of a pipeline run");
            }
            let _ = tx.send(result);
        });
        rx
    }

    /// Waits up to `grace` for the runs executing in the background to end (at shut-down, so
    /// that a commit under way finishes); returns how many were still running.
    pub async fn drain(&self, grace: std::time::Duration) -> usize {
        let mut running = {
            let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *background)
        };
        let all_ended = async { while running.join_next().await.is_some() {} };
        match tokio::time::timeout(grace, all_ended).await {
            Ok(()) => 0,
            Err(_) => running.len(),
        }
    }

    /// What the pipeline's next schedule time is counted from (see
    /// `StateStore::schedule_baseline`).
    pub async fn schedule_baseline(
        &self,
        pipeline: &str,
    ) -> Result<Option<DateTime<Utc>>, CatalogError> {
        self.catalog.state.schedule_baseline(pipeline).await
    }

    /// Whether a run of `pipeline` is under way in this process.
    pub fn is_running(&self, pipeline: &str) -> bool {
        self.lock_of(pipeline).try_lock().is_err()
    }

    fn lock_of(&self, pipeline: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(pipeline.to_string()).or_default().clone()
    }

    /// Takes the pipeline's lock and lease, settles runs that died before they ended, finds
    /// the cursor to resume from, and records the new run as `running`.
    pub async fn start(
        &self,
        definition: &PipelineDefinition,
        trigger: &Trigger,
    ) -> Result<StartedRun, RunError> {
        let name = definition.name.clone();
        let lock = self
            .lock_of(&name)
            .try_lock_owned()
            .map_err(|_| RunError::Busy(name.clone()))?;
        let ttl = chrono::Duration::seconds(LEASE_SECONDS);
        let state = &self.catalog.state;
        if !state
            .acquire_lease(&name, &self.holder, ttl, holder_is_gone)
            .await?
        {
            return Err(RunError::Busy(name));
        }
        let started = self.record_start(definition, trigger).await;
        let (record, resume) = match started {
            Ok(started) => started,
            Err(error) => {
                let _ = state.release_lease(&name, &self.holder).await;
                return Err(error);
            }
        };
        let renewal = AbortOnDrop(tokio::spawn(renew_lease(
            self.catalog.clone(),
            name,
            self.holder.clone(),
        )));
        Ok(StartedRun {
            catalog: self.catalog.clone(),
            definition: definition.clone(),
            record,
            resume,
            holder: self.holder.clone(),
            default_owner: self.default_owner.clone(),
            observer: self.observer.clone(),
            _lock: lock,
            renewal,
        })
    }

    async fn record_start(
        &self,
        definition: &PipelineDefinition,
        trigger: &Trigger,
    ) -> Result<(PipelineRun, Option<serde_json::Value>), RunError> {
        let dataset: DatasetId = definition
            .target
            .dataset
            .parse()
            .map_err(|e: simpul_catalog::InvalidDatasetId| CatalogError::from(e))?;
        let landed = self.landed_run(definition, &dataset).await?;
        let resume = match (&landed, definition.sync_mode) {
            (Some(run), SyncMode::Incremental) => run.checkpoint.clone(),
            _ => None,
        };
        let state = &self.catalog.state;
        let record = state
            .start_run(&NewRun {
                pipeline: definition.name.clone(),
                dataset: dataset.to_string(),
                trigger: trigger.kind.name().to_string(),
                actor: trigger.actor.clone(),
                scheduled_for: match trigger.kind {
                    TriggerKind::Schedule(at) => Some(at),
                    _ => None,
                },
                after_number: landed.as_ref().map_or(0, |r| r.run_number),
            })
            .await?;
        state
            .audit(
                &trigger.actor,
                "pipeline.run",
                &definition.name,
                serde_json::json!({"run": record.run_number, "trigger": record.trigger}),
            )
            .await?;
        Ok((record, resume))
    }

    /// The newest run the lake holds, with its cursor, after settling every run the history
    /// still calls `running` (none is: this process holds the lease).
    async fn landed_run(
        &self,
        definition: &PipelineDefinition,
        dataset: &DatasetId,
    ) -> Result<Option<PipelineRun>, CatalogError> {
        let state = &self.catalog.state;
        let table = LakeTable::Data(dataset.clone());
        let app_id = app_id(&definition.name);
        let landed = self
            .catalog
            .lake
            .transaction_version(&table, &app_id)
            .await?;
        for abandoned in state.abandoned_runs(&definition.name).await? {
            if Some(abandoned.run_number) == landed {
                self.recover_landed(definition, &table, &abandoned).await?;
            } else {
                state
                    .fail_run(
                        &abandoned.id,
                        RunStatus::Interrupted,
                        &RunOutcome::default(),
                        "the process running it stopped before it committed; nothing of it landed, \
                         and the next run read its records again",
                    )
                    .await?;
            }
        }
        let Some(number) = landed else {
            return Ok(None);
        };
        match state.run_by_number(&definition.name, number).await? {
            Some(run) if run.status == RunStatus::Succeeded => Ok(Some(run)),
            // The history was reset or lost this run: the lake still knows what landed.
            _ => {
                let found = self.landed_commit(definition, &table, number).await?;
                Ok(found.map(|(version, outcome)| PipelineRun {
                    id: String::new(),
                    pipeline: definition.name.clone(),
                    run_number: number,
                    dataset: dataset.to_string(),
                    trigger: String::new(),
                    actor: String::new(),
                    scheduled_for: None,
                    status: RunStatus::Succeeded,
                    started_at: Utc::now(),
                    ended_at: None,
                    rows_read: outcome.rows_read,
                    rows_committed: outcome.rows_committed,
                    rows_rejected: outcome.rows_rejected,
                    bytes_read: 0,
                    delta_version: Some(version),
                    checkpoint: outcome.checkpoint,
                    error: None,
                }))
            }
        }
    }

    /// A run that committed but died before it updated the history: its outcome is read
    /// back from its commit.
    async fn recover_landed(
        &self,
        definition: &PipelineDefinition,
        table: &LakeTable,
        run: &PipelineRun,
    ) -> Result<(), CatalogError> {
        let Some((version, outcome)) = self
            .landed_commit(definition, table, run.run_number)
            .await?
        else {
            return Ok(());
        };
        self.catalog
            .state
            .finish_run(
                &run.id,
                &RunOutcome {
                    delta_version: Some(version),
                    ..outcome
                },
            )
            .await?;
        tracing::info!(
            pipeline = %definition.name,
            run = run.run_number,
            version,
            "recovered a run that committed before its process stopped"
        );
        Ok(())
    }

    /// The commit that landed run `number`, and what its metadata says.
    async fn landed_commit(
        &self,
        definition: &PipelineDefinition,
        table: &LakeTable,
        number: i64,
    ) -> Result<Option<(i64, RunOutcome)>, CatalogError> {
        let history = self
            .catalog
            .lake
            .history(table, Some(HISTORY_SEARCH))
            .await?;
        let found = history.into_iter().find(|v| {
            v.simpul.get("pipeline").and_then(|p| p.as_str()) == Some(definition.name.as_str())
                && v.simpul.get("run_number").and_then(|n| n.as_i64()) == Some(number)
        });
        Ok(found.map(|v| {
            let count = |key: &str| v.simpul.get(key).and_then(|n| n.as_i64()).unwrap_or(0);
            let checkpoint = v.simpul.get("checkpoint").cloned().filter(|c| !c.is_null());
            let outcome = RunOutcome {
                rows_read: count("rows_read"),
                rows_committed: count("rows_written"),
                rows_rejected: count("rows_rejected"),
                bytes_read: 0,
                delta_version: Some(v.version),
                checkpoint,
            };
            (v.version, outcome)
        }))
    }
}

impl StartedRun {
    /// The run as recorded when it started.
    pub fn record(&self) -> &PipelineRun {
        &self.record
    }

    /// Reads, validates and commits; records the outcome (a failure in plain words) and gives
    /// the lease back. A failed run commits nothing.
    pub async fn execute(self, progress: Arc<RunProgress>) -> Result<RunResult, RunError> {
        let recorded = self.run_and_record(progress).await;
        // Whatever happened, the lease goes back (if this future is dropped instead, the
        // renewal stops with it and the lease expires).
        self.renewal.abort();
        let released = self
            .catalog
            .state
            .release_lease(&self.definition.name, &self.holder)
            .await;
        let sample_rejects = recorded?;
        released?;
        let run = self
            .catalog
            .state
            .run(&self.record.id)
            .await?
            .ok_or_else(|| CatalogError::State(format!("run {} vanished", self.record.id)))?;
        if let Some(observer) = &self.observer {
            observer(self.definition.clone(), run.clone()).await;
        }
        Ok(RunResult {
            run,
            sample_rejects,
        })
    }

    /// Runs, then records the outcome; returns the sample of rejected rows.
    async fn run_and_record(
        &self,
        progress: Arc<RunProgress>,
    ) -> Result<Vec<simpul_schemas::RejectedRow>, RunError> {
        let name = &self.definition.name;
        let result = self.ingest(progress).await;
        let state = &self.catalog.state;
        Ok(match result {
            Ok((report, described)) => {
                self.record_success(&report, described).await?;
                report.sample_rejects
            }
            Err(error) => {
                tracing::warn!(pipeline = %name, run = self.record.run_number, %error, "pipeline run failed");
                state
                    .fail_run(
                        &self.record.id,
                        RunStatus::Failed,
                        &RunOutcome::default(),
                        &error,
                    )
                    .await?;
                state
                    .audit(
                        &self.record.actor,
                        "pipeline.run_failed",
                        name,
                        serde_json::json!({"run": self.record.run_number, "error": error}),
                    )
                    .await?;
                Vec::new()
            }
        })
    }

    async fn record_success(
        &self,
        report: &IngestReport,
        described: Option<SourceMetadata>,
    ) -> Result<(), RunError> {
        let state = &self.catalog.state;
        let outcome = RunOutcome {
            rows_read: report.rows_read as i64,
            rows_committed: report.rows_written as i64,
            rows_rejected: report.rows_rejected as i64,
            bytes_read: report.bytes_read as i64,
            delta_version: report.committed.then_some(report.version),
            // The cursor a run landed; a run that committed nothing landed none, and keeping
            // the same (for a folder, large) cursor again in every such run would only grow
            // the history.
            checkpoint: report
                .committed
                .then(|| report.checkpoint.clone())
                .flatten(),
        };
        crate::fault::point("after_data_commit");
        state.finish_run(&self.record.id, &outcome).await?;
        let dataset = &report.dataset;
        state.mark_refreshed(dataset, Utc::now()).await?;
        state
            .set_freshness_sla(dataset, self.definition.target.freshness.as_deref())
            .await?;
        state
            .record_lineage(
                &source_label(&self.definition),
                &self.definition.name,
                &dataset.to_string(),
            )
            .await?;
        if let Some(described) = described {
            let description = SourceDescription {
                title: described.title,
                description: described.description,
                publisher: described.publisher,
                license: described.license,
                tags: described.tags,
            };
            state
                .apply_source_description(dataset, &description)
                .await?;
        }
        Ok(())
    }

    /// The run itself, and what the source says about its data; the error is a plain
    /// sentence for the history.
    async fn ingest(
        &self,
        progress: Arc<RunProgress>,
    ) -> Result<(IngestReport, Option<SourceMetadata>), String> {
        let definition = &self.definition;
        let mut settings = definition.source_settings()?;
        if definition.source.connector == "peer" {
            settings = self.peer_settings(settings).await?;
        }
        let source = simpul_connectors::build_source(&definition.source.connector, &settings)
            .map_err(|e| e.to_string())?;
        let transform = definition
            .transform
            .as_deref()
            .map(Transform::new)
            .transpose()
            .map_err(|e| format!("transform: {e}"))?;
        let binding = match &definition.target.schema {
            Some(text) => Some(
                self.catalog
                    .resolve_binding(text)
                    .await
                    .map_err(|e| format!("target schema: {e}"))?,
            ),
            None => None,
        };
        let options = self.ingest_options(binding)?;
        let stream = definition
            .stream
            .clone()
            .unwrap_or_else(|| source.default_stream().to_string());
        let (tx, rx) = mpsc::channel(2);
        let reader = SourceReader {
            events: rx,
            checkpoint: self.resume.clone(),
            progress,
        };
        let pump = pump(source.as_ref(), &stream, self.resume.clone(), transform, tx);
        let (_, report) = tokio::join!(pump, ingest(&self.catalog, Box::new(reader), options));
        let report = report.map_err(|e| e.to_string())?;
        // The data landed; a portal that cannot describe it does not undo that.
        let described = match source.metadata().await {
            Ok(described) => described,
            Err(error) => {
                tracing::warn!(pipeline = %definition.name, %error, "the source's metadata could not be read");
                None
            }
        };
        Ok((report, described))
    }

    /// A `peer` source's settings with the peer's base URL and keys from the registry: a
    /// hub pulls only from peers an admin registered (the default is none).
    async fn peer_settings(&self, mut settings: toml::Table) -> Result<toml::Table, String> {
        for key in ["base_url", "public_keys"] {
            if settings.contains_key(key) {
                return Err(format!(
                    "a peer source takes {key} from the peer registry, not from the pipeline file"
                ));
            }
        }
        let peer = settings
            .get("peer")
            .and_then(toml::Value::as_str)
            .ok_or("a peer source needs peer = \"INSTANCE/CLASS/MEMBER\"")?
            .to_string();
        let registered = self
            .catalog
            .state
            .peer(&peer)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "federation with {peer} is not allowed: it is not a registered peer (simpul bus peers add)"
                )
            })?;
        settings.insert("peer".into(), registered.member_id.into());
        settings.insert("base_url".into(), registered.base_url.into());
        settings.insert(
            "public_keys".into(),
            toml::Value::Array(registered.public_keys.into_iter().map(Into::into).collect()),
        );
        Ok(settings)
    }

    fn ingest_options(&self, binding: Option<SchemaBinding>) -> Result<IngestOptions, String> {
        let definition = &self.definition;
        let target = &definition.target;
        let dataset: DatasetId = target.dataset.parse().map_err(|e| format!("{e}"))?;
        let schema = match binding {
            Some(binding) => SchemaChoice::Canonical(binding),
            None => SchemaChoice::Infer,
        };
        let classification = match &target.classification {
            Some(text) => text.parse::<Classification>().map_err(|e| e.to_string())?,
            None => Classification::Internal,
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert("pipeline".into(), definition.name.clone().into());
        metadata.insert("run_number".into(), self.record.run_number.into());
        Ok(IngestOptions {
            dataset,
            mode: match definition.write_mode {
                WriteMode::Overwrite => LakeWriteMode::Overwrite,
                WriteMode::Append | WriteMode::Merge => LakeWriteMode::Append,
            },
            defaults: DatasetDefaults {
                title: String::new(),
                description: definition.description.clone(),
                owner: target
                    .owner
                    .clone()
                    .unwrap_or_else(|| self.default_owner.clone()),
                classification,
                tags: vec!["pipeline".into()],
                contract: Contract::Freeze,
            },
            schema,
            actor: format!("pipeline:{}", definition.name),
            source: source_label(definition),
            upsert_keys: match definition.write_mode {
                WriteMode::Merge => definition.primary_key.clone(),
                _ => Vec::new(),
            },
            run: Some(RunCommit {
                transaction: AppTransaction {
                    app_id: app_id(&definition.name),
                    version: self.record.run_number,
                },
                metadata,
                resumed_from: self.resume.clone(),
            }),
        })
    }
}

/// Feeds the source's events, transformed, to the ingest's reader. Stops when the reader is
/// gone (the ingest failed) or the source ends; a source error is passed on to fail the run.
async fn pump(
    source: &dyn Source,
    stream: &str,
    state: Option<serde_json::Value>,
    transform: Option<Transform>,
    tx: mpsc::Sender<Result<ReadEvent, SourceError>>,
) {
    let mut events = source.read(stream, state);
    while let Some(event) = events.next().await {
        let event = match (event, &transform) {
            (Ok(ReadEvent::Batch(raw)), Some(transform)) => transform
                .apply(raw)
                .await
                .map(ReadEvent::Batch)
                .map_err(SourceError::Transform),
            (event, _) => event,
        };
        let failed = event.is_err();
        if tx.send(event).await.is_err() || failed {
            return;
        }
    }
}

/// The source's events as the blocking reader the ingest takes; remembers the last
/// checkpoint.
struct SourceReader {
    events: mpsc::Receiver<Result<ReadEvent, SourceError>>,
    checkpoint: Option<serde_json::Value>,
    progress: Arc<RunProgress>,
}

impl Iterator for SourceReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.events.blocking_recv()? {
                Ok(ReadEvent::Checkpoint(state)) => self.checkpoint = Some(state),
                Ok(ReadEvent::Batch(raw)) => {
                    self.progress
                        .rows
                        .fetch_add(raw.records_read(), Ordering::Relaxed);
                    self.progress
                        .bytes
                        .fetch_add(text_bytes(&raw), Ordering::Relaxed);
                    return Some(Ok(raw));
                }
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

impl RawBatchReader for SourceReader {
    fn columns(&self) -> Vec<String> {
        Vec::new()
    }

    fn progress(&self) -> ReadProgress {
        ReadProgress::default()
    }

    fn omits_null_columns(&self) -> bool {
        true
    }

    fn checkpoint(&self) -> Option<serde_json::Value> {
        self.checkpoint.clone()
    }

    fn bytes_read(&self) -> u64 {
        self.progress.bytes()
    }
}

/// Bytes of the batch's cell values (text columns by their text, others by their buffers).
fn text_bytes(raw: &RawBatch) -> u64 {
    use arrow::array::{Array, StringArray};
    raw.batch
        .columns()
        .iter()
        .map(
            |column| match column.as_any().downcast_ref::<StringArray>() {
                Some(texts) => texts.values().len() as u64,
                None => column.get_buffer_memory_size() as u64,
            },
        )
        .sum()
}

/// The Delta application id of a pipeline's commits.
pub fn app_id(pipeline: &str) -> String {
    format!("simpul.pipeline.{pipeline}")
}

/// The source as lineage and commits name it: connector and address, never credentials.
fn source_label(definition: &PipelineDefinition) -> String {
    let config = &definition.source.config;
    let address = ["url", "path", "table", "query"]
        .iter()
        .find_map(|key| config.get(*key).and_then(|v| v.as_str()))
        .map(|text| match url::Url::parse(text) {
            Ok(mut url) if url.has_host() => {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.set_query(None);
                url.to_string()
            }
            _ => text.to_string(),
        })
        .unwrap_or_default();
    format!("{} {address}", definition.source.connector)
        .trim()
        .to_string()
}

/// Renews the lease while the run goes on; the task is aborted when the run ends.
async fn renew_lease(catalog: Arc<Catalog>, pipeline: String, holder: String) {
    let ttl = chrono::Duration::seconds(LEASE_SECONDS);
    let mut every =
        tokio::time::interval(std::time::Duration::from_secs((LEASE_SECONDS / 3) as u64));
    every.tick().await;
    loop {
        every.tick().await;
        match catalog.state.renew_lease(&pipeline, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(%pipeline, "lost the pipeline's lease to another process");
                return;
            }
            Err(error) => tracing::warn!(%pipeline, %error, "could not renew the pipeline's lease"),
        }
    }
}
