//! The write door. Every commit of rows to the lake goes through [`land`]: uploads and
//! `simpul ingest`, pipeline runs, module exports and the shipped seeds (all through
//! [`crate::ingest`]), and the bus's group commits. It holds the order that keeps nothing
//! lost, rejects before data, and the one way rows reach a table: appended or overwritten
//! from staged files, or merged by key (the last row of each key in input order). Each
//! commit's files are flushed to disk before it returns, so an acknowledged write survives
//! a power cut.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use simpul_catalog::{
    CatalogError, CommitOptions, DatasetId, Lake, LakeTable, TableWriter, WriteMode,
};

use crate::rejects::rejects_schema;

/// Valid rows on their way to a table: streamed to files as they come (appends and
/// overwrites), or kept for one merge (upserts, by key).
pub enum Rows {
    /// Staged in files by a writer of the data table.
    Files(Box<TableWriter>),
    /// In memory, merged by the landing's `upsert_keys`.
    Upsert(Vec<RecordBatch>),
}

impl Rows {
    /// Rows so far.
    pub fn rows(&self) -> u64 {
        match self {
            Self::Files(writer) => writer.rows(),
            Self::Upsert(batches) => batches.iter().map(|b| b.num_rows() as u64).sum(),
        }
    }

    /// Adds a batch.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), CatalogError> {
        match self {
            Self::Files(writer) => writer.write(batch).await,
            Self::Upsert(batches) => {
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
                Ok(())
            }
        }
    }
}

/// One write: a dataset's refused rows and its valid rows, with their commits' details.
pub struct Landing {
    /// The dataset.
    pub dataset: DatasetId,
    /// Refused rows staged for the rejects table. A writer with no rows only makes sure the
    /// table exists; `None` leaves it alone.
    pub rejects: Option<TableWriter>,
    /// The rejects commit's metadata.
    pub rejects_commit: CommitOptions,
    /// The valid rows; `None` when there is no data commit to make.
    pub data: Option<Rows>,
    /// The data commit's metadata, schema evolution and run transaction.
    pub data_commit: CommitOptions,
    /// Append or overwrite, for staged files.
    pub mode: WriteMode,
    /// The key columns of a merge, for [`Rows::Upsert`].
    pub upsert_keys: Vec<String>,
    /// The data table's schema, for a merge that creates it.
    pub table_schema: SchemaRef,
    /// The personal columns, which get no statistics.
    pub personal: Vec<String>,
}

/// What a landing committed: each table as of its commit, if it made one.
pub struct Landed {
    /// The rejects table after its commit.
    pub rejects: Option<DeltaTable>,
    /// The data table after its commit.
    pub data: Option<DeltaTable>,
}

/// Commits `landing`: the rejects first (so a crash between the two commits may list a
/// refused row twice after a retry, but never loses it), then `between` (a crash point, or
/// a note that the rejects are in), then the data. Each commit's files are synced.
pub async fn land(
    lake: &Lake,
    landing: Landing,
    between: impl FnOnce(),
) -> Result<Landed, CatalogError> {
    let rejects_table = LakeTable::Rejects(landing.dataset.clone());
    let rejects = match landing.rejects {
        Some(writer) if writer.rows() > 0 => {
            let staged = writer.finish().await?;
            let committed = lake
                .commit(staged, WriteMode::Append, landing.rejects_commit)
                .await?;
            sync(lake, &rejects_table, &committed).await?;
            Some(committed)
        }
        Some(_) => {
            lake.create(&rejects_table, &rejects_schema()).await?;
            None
        }
        None => None,
    };
    between();
    let data_table = LakeTable::Data(landing.dataset.clone());
    let data = match landing.data {
        None => None,
        Some(Rows::Files(writer)) => {
            let staged = writer.finish().await?;
            Some(
                lake.commit(staged, landing.mode, landing.data_commit)
                    .await?,
            )
        }
        Some(Rows::Upsert(batches)) => {
            let batches = crate::ingest::last_per_key(batches, &landing.upsert_keys)
                .map_err(|e| CatalogError::Invalid(e.to_string()))?;
            let personal: Vec<&str> = landing.personal.iter().map(String::as_str).collect();
            Some(
                lake.merge(
                    &data_table,
                    landing.table_schema,
                    batches,
                    &landing.upsert_keys,
                    &personal,
                    landing.data_commit,
                )
                .await?,
            )
        }
    };
    if let Some(committed) = &data {
        sync(lake, &data_table, committed).await?;
    }
    Ok(Landed { rejects, data })
}

/// Flushes the files `committed`'s version added (and its log entry) to disk.
async fn sync(lake: &Lake, table: &LakeTable, committed: &DeltaTable) -> Result<(), CatalogError> {
    match committed.version() {
        Some(version) => lake.sync_version(table, version as i64).await,
        None => Ok(()),
    }
}
