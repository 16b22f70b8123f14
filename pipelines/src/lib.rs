//! Pipelines: the one data path, read → validate → commit.
//!
//! Owns ingestion runs: it pulls raw batches from a connector, validates them against the
//! dataset's schema (its canonical schema, or its table's types), applies the dataset's
//! contract to unknown columns, and lands valid rows and rejects in the lake as commits,
//! then updates the catalog. Accounting always holds:
//! rows read = rows written + rows rejected.
//!
//! Knows nothing about HTTP or the CLI; it is called by both.

mod definition;
mod ingest;
mod rejects;

pub use definition::{
    DefinitionError, PipelineDefinition, SourceDefinition, SyncMode, TargetDefinition, WriteMode,
    load_dir,
};
pub use ingest::{DatasetDefaults, IngestError, IngestOptions, IngestReport, SchemaChoice, ingest};
pub use rejects::rejects_schema;
