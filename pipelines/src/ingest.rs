use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use serde::Serialize;
use simpul_catalog::{
    Catalog, CatalogError, Classification, CommitOptions, DatasetId, LakeTable, NewDataset,
    TableWriter, WriteMode,
};
use simpul_connectors::{RawBatch, RawBatchReader, SourceError};
use simpul_schemas::{
    ColumnMismatch, FieldError, RejectedRow, check_columns, coerce_batch, delta_compatible_schema,
    infer_schema,
};
use tokio::sync::mpsc;

use crate::rejects::{rejects_batch, rejects_schema};

/// How to register a dataset that an ingest creates.
#[derive(Debug, Clone)]
pub struct DatasetDefaults {
    /// Title; the id when empty.
    pub title: String,
    /// Description.
    pub description: String,
    /// Owning member code.
    pub owner: String,
    /// Who may read it.
    pub classification: Classification,
    /// Tags.
    pub tags: Vec<String>,
}

/// One ingest: where the rows go and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The target dataset.
    pub dataset: DatasetId,
    /// Append to or replace the current rows.
    pub mode: WriteMode,
    /// Metadata used only if the dataset does not exist yet.
    pub defaults: DatasetDefaults,
    /// The schema to create the dataset with; inferred from the input when `None`.
    pub schema: Option<SchemaRef>,
    /// Who is ingesting (`cli`, an API client id), for the commit and the audit log.
    pub actor: String,
    /// The input's name as recorded in the commit (a file name, a request id).
    pub source: String,
}

/// What an ingest did. `rows_read == rows_written + rows_rejected` always.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// The dataset written.
    pub dataset: DatasetId,
    /// This run's id, also in the commit and in every rejects row.
    pub run_id: String,
    /// Whether this ingest created the dataset.
    pub created: bool,
    /// Records read from the input, including malformed ones.
    pub rows_read: u64,
    /// Rows committed to the dataset.
    pub rows_written: u64,
    /// Rows committed to the rejects table.
    pub rows_rejected: u64,
    /// The dataset's version after the ingest.
    pub version: i64,
    /// The rejects table's version, if rejects were committed.
    pub rejects_version: Option<i64>,
    /// Up to five rejected rows, to show a person what went wrong.
    pub sample_rejects: Vec<RejectedRow>,
}

/// Why an ingest committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input could not be read as a whole.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The input's columns do not match the dataset's.
    #[error("the columns of {source_name} do not match dataset {dataset}: {mismatch}")]
    ColumnMismatch {
        /// The dataset.
        dataset: DatasetId,
        /// The input.
        source_name: String,
        /// Which columns differ.
        mismatch: ColumnMismatch,
    },
    /// The input has no columns at all.
    #[error("{0} has no columns")]
    NoColumns(String),
    /// The lake or the state store failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Arrow data could not be built.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Reads every batch of `reader`, fits it to the dataset's schema and commits the valid rows
/// and the rejects. Either the whole input is committed (valid rows in the dataset, refused
/// rows in `<dataset>__rejects`) or, on error, nothing is.
pub async fn ingest(
    catalog: &Arc<Catalog>,
    reader: Box<dyn RawBatchReader>,
    options: IngestOptions,
) -> Result<IngestReport, IngestError> {
    let run_id = uuid::Uuid::now_v7().to_string();
    let header_columns = reader.columns();
    let omits_null_columns = reader.omits_null_columns();
    let mut batches = spawn_reader(reader);
    let first = batches.recv().await.transpose()?;

    let data_table = LakeTable::Data(options.dataset.clone());
    let existing = catalog.lake.load(&data_table).await?;
    let created = existing.is_none();
    let target = match (&existing, &options.schema) {
        (Some(table), _) => simpul_catalog::Lake::arrow_schema(table)?,
        (None, Some(schema)) => delta_compatible_schema(schema),
        (None, None) => inferred_schema(first.as_ref(), &header_columns, &options.source)?,
    };
    let input_columns: Vec<String> = match &first {
        Some(batch) => batch
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => header_columns,
    };
    check_input_columns(&target, &input_columns, omits_null_columns).map_err(|mismatch| {
        IngestError::ColumnMismatch {
            dataset: options.dataset.clone(),
            source_name: options.source.clone(),
            mismatch,
        }
    })?;

    let rejects_table = LakeTable::Rejects(options.dataset.clone());
    let mut run = Run {
        run_id: run_id.clone(),
        target: target.clone(),
        data: catalog.lake.writer(&data_table, target.clone())?,
        rejects: catalog.lake.writer(&rejects_table, rejects_schema())?,
        rows_read: 0,
        rows_rejected: 0,
        sample_rejects: Vec::new(),
    };
    if let Some(batch) = first {
        run.add(batch).await?;
    }
    while let Some(batch) = batches.recv().await {
        run.add(batch?).await?;
    }
    run.commit(catalog, &options, created).await
}

/// Reads the (blocking) source on its own thread, two batches ahead of the writer.
fn spawn_reader(reader: Box<dyn RawBatchReader>) -> mpsc::Receiver<Result<RawBatch, SourceError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        for batch in reader {
            let failed = batch.is_err();
            if tx.blocking_send(batch).is_err() || failed {
                break;
            }
        }
    });
    rx
}

fn inferred_schema(
    first: Option<&RawBatch>,
    header: &[String],
    source: &str,
) -> Result<SchemaRef, IngestError> {
    match first {
        Some(batch) if batch.batch.num_columns() > 0 => Ok(infer_schema(&batch.batch)),
        _ if !header.is_empty() => Ok(Arc::new(Schema::new(
            header
                .iter()
                .map(|name| Field::new(name, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ))),
        _ => Err(IngestError::NoColumns(source.to_string())),
    }
}

fn check_input_columns(
    target: &Schema,
    input: &[String],
    omits_null_columns: bool,
) -> Result<(), ColumnMismatch> {
    let table = target.fields().iter().map(|f| f.name().as_str());
    match check_columns(table, input.iter().map(String::as_str)) {
        Err(mismatch) if omits_null_columns && mismatch.unexpected.is_empty() => {
            let required_missing: Vec<String> = mismatch
                .missing
                .into_iter()
                .filter(|name| target.field_with_name(name).is_ok_and(|f| !f.is_nullable()))
                .collect();
            if required_missing.is_empty() {
                Ok(())
            } else {
                Err(ColumnMismatch {
                    missing: required_missing,
                    unexpected: Vec::new(),
                })
            }
        }
        other => other,
    }
}

/// The state of one ingest between its first batch and its commit.
struct Run {
    run_id: String,
    target: SchemaRef,
    data: TableWriter,
    rejects: TableWriter,
    rows_read: u64,
    rows_rejected: u64,
    sample_rejects: Vec<RejectedRow>,
}

impl Run {
    async fn add(&mut self, raw: RawBatch) -> Result<(), IngestError> {
        self.rows_read += raw.records_read();
        let RawBatch {
            batch,
            positions,
            mut malformed,
        } = raw;
        let (batch, positions, unknown) = split_unknown_columns(&self.target, batch, positions)?;
        malformed.extend(unknown);
        let coerced = coerce_batch(&batch, &positions, &self.target)?;
        malformed.extend(coerced.rejected);
        self.data.write(coerced.valid).await?;
        if !malformed.is_empty() {
            self.rows_rejected += malformed.len() as u64;
            let room = 5usize.saturating_sub(self.sample_rejects.len());
            self.sample_rejects
                .extend(malformed.iter().take(room).cloned());
            self.rejects
                .write(rejects_batch(&self.run_id, &malformed, Utc::now())?)
                .await?;
        }
        Ok(())
    }

    /// Rejects commit first: if the process dies between the two commits, a refused row may
    /// be listed twice after a re-run, but it is never lost.
    async fn commit(
        self,
        catalog: &Arc<Catalog>,
        options: &IngestOptions,
        created: bool,
    ) -> Result<IngestReport, IngestError> {
        let rows_written = self.data.rows();
        let data = self.data.finish().await?;
        let rejects = self.rejects.finish().await?;
        let metadata = commit_metadata(
            &self.run_id,
            options,
            self.rows_read,
            rows_written,
            self.rows_rejected,
        );

        let rejects_table = LakeTable::Rejects(options.dataset.clone());
        let rejects_version = if rejects.rows() > 0 {
            let committed = catalog
                .lake
                .commit(rejects, WriteMode::Append, commit_options(&metadata))
                .await?;
            committed.version()
        } else {
            catalog
                .lake
                .create(&rejects_table, &rejects_schema())
                .await?;
            None
        };

        let data_table = LakeTable::Data(options.dataset.clone());
        let must_commit = rows_written > 0 || options.mode == WriteMode::Overwrite || created;
        let version = if must_commit {
            catalog
                .lake
                .commit(data, options.mode, commit_options(&metadata))
                .await?
                .version()
        } else {
            catalog.lake.load_existing(&data_table).await?.version()
        };

        let defaults = &options.defaults;
        catalog
            .state
            .register_dataset(&NewDataset {
                id: options.dataset.clone(),
                title: defaults.title.clone(),
                description: defaults.description.clone(),
                owner: defaults.owner.clone(),
                classification: defaults.classification,
                schema_ref: None,
                tags: defaults.tags.clone(),
            })
            .await?;
        catalog.refresh_stats(&options.dataset).await?;
        catalog
            .state
            .audit(
                &options.actor,
                "dataset.ingest",
                &options.dataset.to_string(),
                serde_json::Value::Object(metadata),
            )
            .await?;
        Ok(IngestReport {
            dataset: options.dataset.clone(),
            run_id: self.run_id,
            created,
            rows_read: self.rows_read,
            rows_written,
            rows_rejected: self.rows_rejected,
            version: version.map_or(0, |v| v as i64),
            rejects_version: rejects_version.map(|v| v as i64),
            sample_rejects: self.sample_rejects,
        })
    }
}

fn commit_metadata(
    run_id: &str,
    options: &IngestOptions,
    read: u64,
    written: u64,
    rejected: u64,
) -> serde_json::Map<String, serde_json::Value> {
    let value = serde_json::json!({
        "run_id": run_id,
        "actor": options.actor,
        "source": options.source,
        "mode": options.mode,
        "rows_read": read,
        "rows_written": written,
        "rows_rejected": rejected,
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn commit_options(metadata: &serde_json::Map<String, serde_json::Value>) -> CommitOptions {
    CommitOptions {
        metadata: metadata.clone(),
    }
}

/// Drops columns the dataset does not have. Rows that carry a value in such a column are
/// refused (JSON records can introduce keys after the first batch); the others keep going.
fn split_unknown_columns(
    target: &Schema,
    batch: RecordBatch,
    positions: Vec<simpul_schemas::SourcePosition>,
) -> Result<
    (
        RecordBatch,
        Vec<simpul_schemas::SourcePosition>,
        Vec<RejectedRow>,
    ),
    IngestError,
> {
    let schema = batch.schema();
    let unknown: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| target.field_with_name(f.name()).is_err())
        .map(|(i, _)| i)
        .collect();
    if unknown.is_empty() {
        return Ok((batch, positions, Vec::new()));
    }
    let carries_unknown = BooleanArray::from_iter(
        (0..batch.num_rows())
            .map(|row| Some(unknown.iter().any(|&c| batch.column(c).is_valid(row)))),
    );
    let mut rejected = Vec::new();
    for row in (0..batch.num_rows()).filter(|&row| carries_unknown.value(row)) {
        let errors = unknown
            .iter()
            .filter(|&&c| batch.column(c).is_valid(row))
            .map(|&c| {
                let name = schema.field(c).name();
                FieldError::field(
                    name,
                    "additionalProperties",
                    format!("column '{name}' is not in the dataset"),
                )
            })
            .collect();
        rejected.push(RejectedRow {
            position: positions[row].clone(),
            record: row_as_json(&batch, row),
            errors,
        });
    }
    let keep = not(&carries_unknown)?;
    let kept_positions = positions
        .into_iter()
        .zip(keep.iter())
        .filter_map(|(p, k)| k.unwrap_or(false).then_some(p))
        .collect();
    let known: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !unknown.contains(i))
        .collect();
    let projected = filter_record_batch(&batch, &keep)?.project(&known)?;
    Ok((projected, kept_positions, rejected))
}

fn row_as_json(batch: &RecordBatch, row: usize) -> serde_json::Value {
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| {
            arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).ok()
        })
        .collect();
    let mut object = serde_json::Map::new();
    for ((field, column), formatter) in batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .zip(formatters)
    {
        let value = match (column.is_valid(row), formatter) {
            (true, Some(f)) => serde_json::Value::String(f.value(row).to_string()),
            _ => serde_json::Value::Null,
        };
        object.insert(field.name().clone(), value);
    }
    serde_json::Value::Object(object)
}
