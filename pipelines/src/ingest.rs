use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use serde::Serialize;
use simpul_catalog::{
    AppTransaction, Catalog, CatalogError, Classification, CommitOptions, Contract, DatasetId,
    DatasetMeta, Lake, LakeTable, NewDataset, SchemaBinding, TableWriter, WriteMode,
};
use simpul_connectors::{RawBatch, RawBatchReader, SourceError};
use simpul_schemas::{
    ColumnMismatch, CompiledSchema, RejectedRow, check_columns, delta_compatible_schema,
    infer_schema,
};
use tokio::sync::{mpsc, oneshot};

use crate::land::{Landing, Rows, land};
use crate::rejects::{REJECTS_PERSONAL, rejects_batch, rejects_schema};

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
    /// What later ingests do with unknown columns.
    pub contract: Contract,
}

/// Where a new dataset's schema comes from. An existing dataset keeps its own.
#[derive(Debug, Clone)]
pub enum SchemaChoice {
    /// Infer column types from the first rows.
    Infer,
    /// Use these column types, without a canonical schema.
    Columns(SchemaRef),
    /// Bind the dataset to a canonical schema (`name@major`) and validate against it.
    Canonical(SchemaBinding),
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
    /// The schema of a new dataset.
    pub schema: SchemaChoice,
    /// Who is ingesting (`cli`, an API client id), for the commit and the audit log.
    pub actor: String,
    /// The input's name as recorded in the commit (a file name, a request id).
    pub source: String,
    /// When not empty, rows are upserted by these columns (Delta merge) instead of added.
    pub upsert_keys: Vec<String>,
    /// For a pipeline run: what lands in the same commit as the data.
    pub run: Option<RunCommit>,
}

/// What a pipeline run commits together with its rows, so that the rows and the cursor land
/// exactly once.
#[derive(Debug, Clone)]
pub struct RunCommit {
    /// The pipeline's application transaction: its id and this run's number.
    pub transaction: AppTransaction,
    /// Extra keys for the commit's metadata (the pipeline's name, the run number).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The checkpoint this run resumed from: when the source ends on the same one and
    /// nothing was read, there is nothing to commit.
    pub resumed_from: Option<serde_json::Value>,
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
    /// The canonical schema the rows were checked against (`penduduk 1.0.0`), if any.
    pub schema: Option<String>,
    /// Records read from the input, including malformed ones.
    pub rows_read: u64,
    /// Rows committed to the dataset.
    pub rows_written: u64,
    /// Rows committed to the rejects table.
    pub rows_rejected: u64,
    /// Columns added to the table (contract `evolve`).
    pub added_columns: Vec<String>,
    /// Columns dropped from the input (contract `discard_columns`).
    pub discarded_columns: Vec<String>,
    /// The dataset's version after the ingest.
    pub version: i64,
    /// The rejects table's version, if rejects were committed.
    pub rejects_version: Option<i64>,
    /// Up to five rejected rows, to show a person what went wrong.
    pub sample_rejects: Vec<RejectedRow>,
    /// Bytes of input read.
    pub bytes_read: u64,
    /// The source's checkpoint after the last batch (committed with the data).
    pub checkpoint: Option<serde_json::Value>,
    /// Whether this ingest made a data commit (a run with nothing new makes none).
    pub committed: bool,
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
    /// The request does not fit the dataset (a different schema binding, …).
    #[error("{0}")]
    Invalid(String),
    /// The lake or the state store failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Arrow data could not be built.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The resolved plan of an ingest: what the rows are checked against and where they go.
pub(crate) struct Target {
    pub(crate) schema: Arc<CompiledSchema>,
    pub(crate) table_schema: SchemaRef,
    binding: Option<SchemaBinding>,
    contract: Contract,
    pub(crate) added_columns: Vec<String>,
    pub(crate) discarded_columns: Vec<String>,
}

/// Reads every batch of `reader`, validates it against the dataset's schema and commits the
/// valid rows and the rejects. Either the whole input is committed (valid rows in the
/// dataset, refused rows in `<dataset>__rejects`) or, on error, nothing is.
pub async fn ingest(
    catalog: &Arc<Catalog>,
    reader: Box<dyn RawBatchReader>,
    options: IngestOptions,
) -> Result<IngestReport, IngestError> {
    let run_id = uuid::Uuid::now_v7().to_string();
    let header_columns = reader.columns();
    let omits_null_columns = reader.omits_null_columns();
    let (mut batches, finished) = spawn_reader(reader);
    let first = batches.recv().await.transpose()?;
    let input_columns: Vec<String> = match &first {
        Some(batch) => batch
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => header_columns.clone(),
    };

    let data_table = LakeTable::Data(options.dataset.clone());
    let existing = match catalog.lake.load(&data_table).await? {
        Some(table) => Some(Lake::arrow_schema(&table)?),
        None => None,
    };
    let meta = catalog.state.dataset(&options.dataset).await?;
    let created = existing.is_none();
    let mut target = resolve_target(
        catalog,
        &options,
        existing,
        meta.as_ref(),
        first.as_ref(),
        &header_columns,
    )
    .await?;
    apply_contract(
        &mut target,
        &input_columns,
        first.as_ref(),
        omits_null_columns,
        &options,
    )?;

    if !options.upsert_keys.is_empty() {
        check_upsert_keys(&options, &target.table_schema)?;
    }
    let rejects_table = LakeTable::Rejects(options.dataset.clone());
    let data = if options.upsert_keys.is_empty() {
        let personal: Vec<&str> = target.schema.pii_columns().collect();
        Rows::Files(Box::new(catalog.lake.writer(
            &data_table,
            target.table_schema.clone(),
            &personal,
        )?))
    } else {
        Rows::Upsert(Vec::new())
    };
    let mut run = Run {
        run_id: run_id.clone(),
        data,
        rejects: catalog
            .lake
            .writer(&rejects_table, rejects_schema(), &REJECTS_PERSONAL)?,
        target,
        rows_read: 0,
        rows_rejected: 0,
        sample_rejects: Vec::new(),
    };
    let checker = Checker {
        schema: run.target.schema.clone(),
        table_schema: run.target.table_schema.clone(),
        discarded_columns: run.target.discarded_columns.clone(),
    };
    let mut checked = spawn_checker(checker, first, batches);
    while let Some(batch) = checked.recv().await {
        run.add(batch?).await?;
    }
    let finished = finished.await.unwrap_or_default();
    run.commit(catalog, &options, created, finished).await
}

/// Refuses upsert keys the table does not have.
fn check_upsert_keys(options: &IngestOptions, table: &Schema) -> Result<(), IngestError> {
    let missing: Vec<&str> = options
        .upsert_keys
        .iter()
        .filter(|k| table.field_with_name(k).is_err())
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(IngestError::Invalid(format!(
            "{} has no column {} to upsert by",
            options.dataset,
            missing.join(", ")
        )))
    }
}

/// What the reader knew once it was exhausted.
#[derive(Debug, Default)]
struct ReaderEnd {
    checkpoint: Option<serde_json::Value>,
    bytes_read: u64,
}

/// What the validation stage needs of the target.
pub(crate) struct Checker {
    pub(crate) schema: Arc<CompiledSchema>,
    pub(crate) table_schema: SchemaRef,
    pub(crate) discarded_columns: Vec<String>,
}

/// One raw batch after validation: the valid rows as the table stores them, and every
/// refused row (malformed in the source or invalid for the schema).
pub(crate) struct Checked {
    pub(crate) records_read: u64,
    pub(crate) valid: RecordBatch,
    pub(crate) rejected: Vec<RejectedRow>,
}

impl Checker {
    pub(crate) fn check(&self, raw: RawBatch) -> Result<Checked, IngestError> {
        let records_read = raw.records_read();
        let RawBatch {
            batch,
            positions,
            mut malformed,
        } = raw;
        let batch = self.drop_discarded(batch)?;
        let validation = self.schema.validate(&batch, &positions)?;
        malformed.extend(validation.rejected);
        let valid = RecordBatch::try_new(
            self.table_schema.clone(),
            validation.valid.columns().to_vec(),
        )?;
        Ok(Checked {
            records_read,
            valid,
            rejected: malformed,
        })
    }

    fn drop_discarded(&self, batch: RecordBatch) -> Result<RecordBatch, IngestError> {
        if self.discarded_columns.is_empty() {
            return Ok(batch);
        }
        let keep: Vec<usize> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !self.discarded_columns.contains(f.name()))
            .map(|(i, _)| i)
            .collect();
        Ok(batch.project(&keep)?)
    }
}

/// Validates on its own thread, between the reader's thread and the writer, so that reading,
/// validating and Parquet encoding overlap. Stops at the first error, which it passes on.
fn spawn_checker(
    checker: Checker,
    first: Option<RawBatch>,
    mut batches: mpsc::Receiver<Result<RawBatch, SourceError>>,
) -> mpsc::Receiver<Result<Checked, IngestError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let rest = std::iter::from_fn(|| batches.blocking_recv());
        for raw in first.map(Ok).into_iter().chain(rest) {
            let checked = raw
                .map_err(IngestError::from)
                .and_then(|raw| checker.check(raw));
            let failed = checked.is_err();
            if tx.blocking_send(checked).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Reads the (blocking) source on its own thread, two batches ahead of the writer. Once the
/// reader is exhausted, its checkpoint and byte count are sent on the second channel.
fn spawn_reader(
    mut reader: Box<dyn RawBatchReader>,
) -> (
    mpsc::Receiver<Result<RawBatch, SourceError>>,
    oneshot::Receiver<ReaderEnd>,
) {
    let (tx, rx) = mpsc::channel(2);
    let (end_tx, end_rx) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        for batch in reader.by_ref() {
            let failed = batch.is_err();
            if tx.blocking_send(batch).is_err() || failed {
                return;
            }
        }
        let _ = end_tx.send(ReaderEnd {
            checkpoint: reader.checkpoint(),
            bytes_read: reader.bytes_read(),
        });
    });
    (rx, end_rx)
}

/// Decides the schema the rows are checked against: the dataset's binding or table for an
/// existing dataset, else the requested binding, the given columns, or inferred ones.
pub(crate) async fn resolve_target(
    catalog: &Arc<Catalog>,
    options: &IngestOptions,
    existing: Option<SchemaRef>,
    meta: Option<&DatasetMeta>,
    first: Option<&RawBatch>,
    header: &[String],
) -> Result<Target, IngestError> {
    let name = options.dataset.to_string();
    let requested = match &options.schema {
        SchemaChoice::Canonical(binding) => Some(binding.clone()),
        _ => None,
    };
    let existing_binding = meta
        .and_then(|m| m.schema_ref.as_deref())
        .map(SchemaBinding::parse)
        .transpose()?;
    let contract = meta.map_or(options.defaults.contract, |m| m.contract);
    let (schema, table_schema, binding) = match (existing, existing_binding) {
        (Some(table_schema), Some(binding)) => {
            if requested.as_ref().is_some_and(|r| r != &binding) {
                return Err(IngestError::Invalid(format!(
                    "{name} is bound to schema {binding}; it cannot be ingested as another schema"
                )));
            }
            let canonical = catalog.schemas.resolve(&catalog.state, &binding).await?;
            (
                with_table_extras(&canonical, &table_schema),
                table_schema,
                Some(binding),
            )
        }
        (Some(table_schema), None) => {
            if let Some(binding) = requested {
                return Err(IngestError::Invalid(format!(
                    "{name} already exists without a schema; it cannot be bound to {binding} afterwards"
                )));
            }
            (
                Arc::new(CompiledSchema::from_arrow(&name, &table_schema)),
                table_schema,
                None,
            )
        }
        (None, _) => match &options.schema {
            SchemaChoice::Canonical(binding) => {
                let canonical = catalog.schemas.resolve(&catalog.state, binding).await?;
                let table_schema = canonical.arrow.clone();
                (canonical, table_schema, Some(binding.clone()))
            }
            SchemaChoice::Columns(columns) => {
                let columns = delta_compatible_schema(columns);
                (
                    Arc::new(CompiledSchema::from_arrow(&name, &columns)),
                    columns,
                    None,
                )
            }
            SchemaChoice::Infer => {
                let columns = inferred_schema(first, header, &options.source)?;
                (
                    Arc::new(CompiledSchema::from_arrow(&name, &columns)),
                    columns,
                    None,
                )
            }
        },
    };
    Ok(Target {
        schema,
        table_schema,
        binding,
        contract,
        added_columns: Vec::new(),
        discarded_columns: Vec::new(),
    })
}

/// A table that evolved keeps columns its canonical schema lacks: they are checked for
/// type only.
fn with_table_extras(canonical: &Arc<CompiledSchema>, table: &Schema) -> Arc<CompiledSchema> {
    let extras: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| canonical.arrow.field_with_name(f.name()).is_err())
        .map(|f| f.as_ref().clone())
        .collect();
    if extras.is_empty() {
        canonical.clone()
    } else {
        Arc::new(canonical.with_extra_columns(&Schema::new(extras)))
    }
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

/// Applies the dataset's contract to the input's columns: unknown columns are refused
/// (freeze), added to the table (evolve) or dropped (discard_columns). Missing required
/// columns are always refused; without a canonical schema, files with a header must carry
/// every column.
pub(crate) fn apply_contract(
    target: &mut Target,
    input: &[String],
    first: Option<&RawBatch>,
    omits_null_columns: bool,
    options: &IngestOptions,
) -> Result<(), IngestError> {
    let known: Vec<&str> = target
        .schema
        .properties
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mismatch = match check_columns(known.iter().copied(), input.iter().map(String::as_str)) {
        Ok(()) => return Ok(()),
        Err(mismatch) => mismatch,
    };
    let missing_refused: Vec<String> = mismatch
        .missing
        .iter()
        .filter(|name| {
            let property = target.schema.properties.iter().find(|p| &&p.name == name);
            let required = property.is_some_and(|p| p.required);
            required || (target.binding.is_none() && !omits_null_columns)
        })
        .cloned()
        .collect();
    let unexpected = mismatch.unexpected;
    let refused_unexpected = if target.contract == Contract::Freeze {
        unexpected.clone()
    } else {
        Vec::new()
    };
    if !missing_refused.is_empty() || !refused_unexpected.is_empty() {
        return Err(IngestError::ColumnMismatch {
            dataset: options.dataset.clone(),
            source_name: options.source.clone(),
            mismatch: ColumnMismatch {
                missing: missing_refused,
                unexpected: refused_unexpected,
            },
        });
    }
    match target.contract {
        Contract::Freeze => {}
        Contract::DiscardColumns => target.discarded_columns = unexpected,
        Contract::Evolve => {
            let sample = first.map(|b| &b.batch);
            let added = evolved_fields(&unexpected, sample)?;
            let mut fields: Vec<Field> = target
                .table_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.extend(added.fields().iter().map(|f| f.as_ref().clone()));
            target.table_schema = Arc::new(Schema::new(fields));
            target.schema = Arc::new(target.schema.with_extra_columns(&added));
            target.added_columns = unexpected;
        }
    }
    Ok(())
}

/// Types for columns an `evolve` ingest adds, inferred from the first batch; all nullable.
fn evolved_fields(names: &[String], sample: Option<&RecordBatch>) -> Result<Schema, IngestError> {
    let Some(sample) = sample else {
        return Ok(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
    };
    let indexes: Vec<usize> = names
        .iter()
        .filter_map(|n| sample.schema().index_of(n).ok())
        .collect();
    let projected = sample.project(&indexes)?;
    let inferred = infer_schema(&projected);
    Ok(Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// The state of one ingest between its first batch and its commit.
struct Run {
    run_id: String,
    target: Target,
    data: Rows,
    rejects: TableWriter,
    rows_read: u64,
    rows_rejected: u64,
    sample_rejects: Vec<RejectedRow>,
}

impl Run {
    async fn add(&mut self, checked: Checked) -> Result<(), IngestError> {
        let Checked {
            records_read,
            valid,
            rejected,
        } = checked;
        self.rows_read += records_read;
        self.data.write(valid).await?;
        if !rejected.is_empty() {
            self.rows_rejected += rejected.len() as u64;
            let room = 5usize.saturating_sub(self.sample_rejects.len());
            self.sample_rejects
                .extend(rejected.iter().take(room).cloned());
            self.rejects
                .write(rejects_batch(&self.run_id, &rejected, Utc::now())?)
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
        end: ReaderEnd,
    ) -> Result<IngestReport, IngestError> {
        let rows_written = self.data.rows();
        let mut metadata = commit_metadata(
            &self.run_id,
            options,
            self.rows_read,
            rows_written,
            self.rows_rejected,
        );
        if let Some(run) = &options.run {
            metadata.extend(run.metadata.clone());
            metadata.insert(
                "checkpoint".into(),
                end.checkpoint.clone().unwrap_or(serde_json::Value::Null),
            );
        }
        let schema_label = self
            .target
            .binding
            .as_ref()
            .map(|_| format!("{} {}", self.target.schema.name, self.target.schema.version));
        if let Some(label) = &schema_label {
            metadata.insert("schema".into(), serde_json::Value::String(label.clone()));
        }
        for (key, columns) in [
            ("added_columns", &self.target.added_columns),
            ("discarded_columns", &self.target.discarded_columns),
        ] {
            if !columns.is_empty() {
                metadata.insert(key.into(), serde_json::json!(columns));
            }
        }

        let data_table = LakeTable::Data(options.dataset.clone());
        let evolved = !self.target.added_columns.is_empty() && !created;
        // A run must land its cursor even when every row was refused; a run that read
        // nothing and ends where it started has nothing to land.
        let run_moved = options.run.as_ref().is_some_and(|run| {
            self.rows_read > 0 || end.checkpoint.is_some() && end.checkpoint != run.resumed_from
        });
        let must_commit = rows_written > 0
            || options.mode == WriteMode::Overwrite
            || created
            || evolved
            || run_moved;
        let landing = Landing {
            dataset: options.dataset.clone(),
            rejects: Some(self.rejects),
            rejects_commit: CommitOptions {
                metadata: metadata.clone(),
                ..Default::default()
            },
            data: must_commit.then_some(self.data),
            data_commit: CommitOptions {
                metadata: metadata.clone(),
                evolved_schema: evolved.then(|| self.target.table_schema.clone()),
                transaction: options.run.as_ref().map(|run| run.transaction.clone()),
            },
            mode: options.mode,
            upsert_keys: options.upsert_keys.clone(),
            table_schema: self.target.table_schema.clone(),
            personal: self
                .target
                .schema
                .pii_columns()
                .map(str::to_string)
                .collect(),
        };
        let landed = land(&catalog.lake, landing, || {
            crate::fault::point("after_rejects_commit");
        })
        .await?;
        let rejects_version = landed.rejects.as_ref().and_then(|t| t.version());
        let version = match &landed.data {
            Some(committed) => committed.version(),
            None => catalog.lake.load_existing(&data_table).await?.version(),
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
                schema_ref: self.target.binding.as_ref().map(ToString::to_string),
                contract: defaults.contract,
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
            schema: schema_label,
            rows_read: self.rows_read,
            rows_written,
            rows_rejected: self.rows_rejected,
            added_columns: self.target.added_columns,
            discarded_columns: self.target.discarded_columns,
            version: version.map_or(0, |v| v as i64),
            rejects_version: rejects_version.map(|v| v as i64),
            sample_rejects: self.sample_rejects,
            bytes_read: end.bytes_read,
            checkpoint: end.checkpoint,
            committed: must_commit,
        })
    }
}

/// Keeps, for every key, only its last row in input order: one merge must not meet a key
/// twice, and the newest record of a key is the one that counts.
pub fn last_per_key(
    batches: Vec<RecordBatch>,
    keys: &[String],
) -> Result<Vec<RecordBatch>, IngestError> {
    use arrow::row::{RowConverter, SortField};
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    let schema = first.schema();
    let indexes: Vec<usize> = keys
        .iter()
        .map(|k| schema.index_of(k))
        .collect::<Result<_, _>>()?;
    let converter = RowConverter::new(
        indexes
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(batches.len());
    for batch in batches.iter().rev() {
        let columns: Vec<_> = indexes.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = converter.convert_columns(&columns)?;
        let mut keep = vec![false; batch.num_rows()];
        for row in (0..batch.num_rows()).rev() {
            keep[row] = seen.insert(rows.row(row).owned());
        }
        let mask = arrow::array::BooleanArray::from(keep);
        kept.push(arrow::compute::filter_record_batch(batch, &mask)?);
    }
    kept.reverse();
    Ok(kept)
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
