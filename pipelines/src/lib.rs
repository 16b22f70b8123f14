//! Pipelines: the one data path, read → validate → commit.
//!
//! Owns ingestion runs: it pulls raw batches from a connector, fits them to the dataset's
//! schema (keeping every rejected row with its reason), and lands valid rows and rejects in
//! the lake as commits, then updates the catalog. Accounting always holds:
//! rows read = rows written + rows rejected.
//!
//! Knows nothing about HTTP or the CLI; it is called by both.

mod ingest;
mod rejects;

pub use ingest::{DatasetDefaults, IngestError, IngestOptions, IngestReport, ingest};
pub use rejects::rejects_schema;
