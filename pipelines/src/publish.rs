//! Checking the records of one bus publish against their dataset, before the group commit
//! lands them with other publishes' records.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use simpul_catalog::{Catalog, DatasetMeta, LakeTable, SchemaBinding, WriteMode};
use simpul_connectors::{RawBatch, RawBatchReader};
use simpul_schemas::RejectedRow;

use crate::ingest::{
    Checker, DatasetDefaults, IngestError, IngestOptions, SchemaChoice, apply_contract,
    resolve_target,
};

/// One publish's records after validation.
#[derive(Debug)]
pub struct CheckedRecords {
    /// The table's schema, which every valid batch has.
    pub table_schema: SchemaRef,
    /// The schema's personal (`x-pii`) columns, written without statistics.
    pub personal: Vec<String>,
    /// The valid rows, typed as the table stores them.
    pub valid: Vec<RecordBatch>,
    /// Every refused record with its reasons.
    pub rejected: Vec<RejectedRow>,
    /// Records in the body, malformed ones included.
    pub records_read: u64,
}

impl CheckedRecords {
    /// Rows that will be committed.
    pub fn accepted(&self) -> u64 {
        self.valid.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Reads and validates every record of `reader` against `dataset`'s schema and contract.
/// Unknown columns are refused under `freeze` and dropped under `discard_columns`; a publish
/// never changes the table's schema, so under `evolve` they are refused too (ingest a file to
/// evolve the dataset).
pub async fn check_records(
    catalog: &Arc<Catalog>,
    dataset: &DatasetMeta,
    reader: Box<dyn RawBatchReader>,
    actor: &str,
) -> Result<CheckedRecords, IngestError> {
    let header = reader.columns();
    let omits_null_columns = reader.omits_null_columns();
    // A small body (a few records) is read and checked in place: a hop to the blocking pool
    // costs more than the work.
    let small = reader.progress().total() <= INLINE_BYTES;
    let raw: Vec<RawBatch> = if small {
        reader.collect::<Result<Vec<_>, _>>()?
    } else {
        tokio::task::spawn_blocking(move || reader.collect::<Result<Vec<_>, _>>())
            .await
            .map_err(|e| IngestError::Invalid(format!("reading the records failed: {e}")))??
    };
    let options = IngestOptions {
        dataset: dataset.id.clone(),
        mode: WriteMode::Append,
        defaults: DatasetDefaults {
            title: dataset.title.clone(),
            description: dataset.description.clone(),
            owner: dataset.owner.clone(),
            classification: dataset.classification,
            tags: dataset.tags.clone(),
            contract: dataset.contract,
        },
        schema: match &dataset.schema_ref {
            Some(text) => SchemaChoice::Canonical(SchemaBinding::parse(text)?),
            None => SchemaChoice::Infer,
        },
        actor: actor.to_string(),
        source: format!("bus publish by {actor}"),
        upsert_keys: Vec::new(),
        run: None,
    };
    // The schema as last loaded: the committer checks it against the current version.
    let existing = catalog
        .lake
        .cached_schema(&LakeTable::Data(dataset.id.clone()))
        .await?;
    let first = raw.first();
    let mut target =
        resolve_target(catalog, &options, existing, Some(dataset), first, &header).await?;
    let input: Vec<String> = match first {
        Some(batch) => batch
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => header,
    };
    let parsed = raw
        .iter()
        .any(|b| b.batch.num_columns() > 0 && b.batch.num_rows() > 0);
    if !parsed && raw.iter().all(|b| b.malformed.is_empty()) {
        return Err(IngestError::Invalid("the body holds no records".into()));
    }
    // A body of nothing but malformed records has no columns to check: every record is a
    // reject, kept with its reason.
    if parsed {
        apply_contract(&mut target, &input, first, omits_null_columns, &options)?;
    }
    if !target.added_columns.is_empty() {
        return Err(IngestError::Invalid(format!(
            "{} has no column {}; a publish does not add columns (ingest a file to evolve the dataset)",
            dataset.id,
            target.added_columns.join(", ")
        )));
    }
    let checker = Checker {
        schema: target.schema.clone(),
        table_schema: target.table_schema.clone(),
        discarded_columns: target.discarded_columns.clone(),
    };
    let table_schema = target.table_schema.clone();
    let personal: Vec<String> = target.schema.pii_columns().map(String::from).collect();
    let check = move || {
        let mut checked = CheckedRecords {
            table_schema,
            personal,
            valid: Vec::new(),
            rejected: Vec::new(),
            records_read: 0,
        };
        for batch in raw {
            if batch.batch.num_rows() == 0 {
                checked.records_read += batch.records_read();
                checked.rejected.extend(batch.malformed);
                continue;
            }
            let one = checker.check(batch)?;
            checked.records_read += one.records_read;
            if one.valid.num_rows() > 0 {
                checked.valid.push(one.valid);
            }
            checked.rejected.extend(one.rejected);
        }
        Ok(checked)
    };
    if small {
        return check();
    }
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| IngestError::Invalid(format!("validating the records failed: {e}")))?
}

/// Bodies up to this size are checked on the request's own task.
const INLINE_BYTES: u64 = 64 * 1024;
