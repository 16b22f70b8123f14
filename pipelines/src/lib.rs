//! Pipelines: the one data path, read → transform → validate → commit.
//!
//! Owns ingestion runs: it pulls raw batches from a connector, validates them against the
//! dataset's schema (its canonical schema, or its table's types), applies the dataset's
//! contract to unknown columns, and lands valid rows and rejects in the lake as commits,
//! then updates the catalog. Accounting always holds:
//! rows read = rows written + rows rejected.
//!
//! Pipeline runs (`runner`) land their rows and their source cursor in one Delta commit with
//! the pipeline's application transaction, so a run lands exactly once whatever kills it;
//! the `scheduler` starts them on their cron schedules inside `simpul serve`.
//!
//! Knows nothing about HTTP or the CLI; it is called by both.

mod definition;
pub mod fault;
mod ingest;
mod land;
mod publish;
mod rejects;
mod runner;
mod scheduler;
mod transform;

pub use definition::{
    DefinitionError, PipelineDefinition, SourceDefinition, SyncMode, TargetDefinition, WriteMode,
    load_dir, scan_dir,
};
pub use fault::FAULT_POINT_VAR;
pub use ingest::{
    DatasetDefaults, IngestError, IngestOptions, IngestReport, RunCommit, SchemaChoice, ingest,
    last_per_key,
};
pub use land::{Landed, Landing, Rows, land};
pub use publish::{CheckedRecords, check_records};
pub use rejects::rejects_batch;
pub use rejects::{REJECTS_PERSONAL, rejects_schema};
pub use runner::{
    RunError, RunObserver, RunProgress, RunResult, Runner, StartedRun, Trigger, TriggerKind, app_id,
};
pub use scheduler::{Due, ScheduleSettings, due, run_schedule};
pub use transform::Transform;
