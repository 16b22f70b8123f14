//! Lands a module's changed state-store rows in its lake datasets, each bound to a
//! canonical schema and upserted by its key, through the same validate → commit path as
//! every ingest. SEMAR (`semar.*`) and the complaints module (`complaints.*`) use it.
//!
//! A row is marked exported only if it did not change after it was read, so a change made
//! during an export goes out in the next one. A record the schema refuses lands in the
//! dataset's rejects with its reason.

use std::sync::Arc;

use serde_json::Value;
use simpul_catalog::{
    Catalog, CatalogError, Classification, Contract, DatasetId, SchemaBinding, WriteMode,
};
use simpul_connectors::records::RecordsReader;
use simpul_pipelines::{DatasetDefaults, IngestOptions, SchemaChoice};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Most rows of one table in one export round; the rest go in the next round.
const ROUND_ROWS: i64 = 5_000;
/// A dataset's small files are compacted once its table holds this many.
const COMPACT_AT_SMALL_FILES: usize = 256;

/// One exported table.
pub(crate) struct Export {
    pub dataset: &'static str,
    pub schema: &'static str,
    pub major: u64,
    pub key: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub classification: Classification,
    /// The state-store table and its key column.
    pub table: &'static str,
    pub table_key: &'static str,
    /// An extra SQL condition on the table's rows (`kind = 'complaint'`), or empty.
    pub filter: &'static str,
    /// Whether rows change after they are written (then `updated_at` guards the mark).
    pub mutable: bool,
    pub select: &'static str,
    pub record: fn(&AnyRow) -> Result<Value, sqlx::Error>,
}

/// Who exports what: a module's datasets and how their commits are signed.
pub(crate) struct Exporter<'a> {
    pub catalog: &'a Arc<Catalog>,
    pub owner: &'a str,
    pub tags: &'a [&'a str],
    /// The actor and source recorded with every commit (`semar`, `semar export`).
    pub actor: &'a str,
    pub exports: &'a [Export],
}

impl Exporter<'_> {
    fn options(&self, export: &Export, upsert: bool) -> Result<IngestOptions, String> {
        let dataset: DatasetId = export
            .dataset
            .parse()
            .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
        Ok(IngestOptions {
            dataset,
            mode: WriteMode::Append,
            defaults: DatasetDefaults {
                title: export.title.into(),
                description: export.description.into(),
                owner: self.owner.to_string(),
                classification: export.classification,
                tags: self.tags.iter().map(|t| t.to_string()).collect(),
                contract: Contract::Freeze,
            },
            schema: SchemaChoice::Canonical(SchemaBinding {
                name: export.schema.into(),
                major: export.major,
            }),
            actor: self.actor.to_string(),
            source: format!("{} export", self.actor),
            upsert_keys: if upsert {
                vec![export.key.into()]
            } else {
                Vec::new()
            },
            run: None,
        })
    }

    /// Validates and commits `records` (JSON objects, in memory) to the export's dataset,
    /// by its key with `upsert`; `columns` name the input's columns when there are no
    /// records (an empty dataset to create).
    async fn ingest(
        &self,
        export: &Export,
        columns: Vec<String>,
        records: Vec<serde_json::Map<String, Value>>,
        upsert: bool,
    ) -> Result<u64, String> {
        let origin = format!("{} export", self.actor);
        let reader = RecordsReader::new(&origin, columns, records);
        let report = simpul_pipelines::ingest(
            self.catalog,
            Box::new(reader),
            self.options(export, upsert)?,
        )
        .await
        .map_err(|e| format!("{}: {e}", export.dataset))?;
        if report.rows_rejected > 0 {
            tracing::warn!(
                dataset = export.dataset,
                rejected = report.rows_rejected,
                "module records refused by their schema; they are in the rejects table"
            );
        }
        Ok(report.rows_written + report.rows_rejected)
    }

    /// Makes the datasets, empty, if they do not exist, so that grants and SQL can name
    /// them before the first record.
    pub async fn ensure_datasets(&self) -> Result<(), CatalogError> {
        for export in self.exports {
            let id: DatasetId =
                export
                    .dataset
                    .parse()
                    .map_err(|e: simpul_catalog::InvalidDatasetId| {
                        CatalogError::Invalid(e.to_string())
                    })?;
            if self.catalog.state.dataset(&id).await?.is_some() {
                continue;
            }
            let binding = SchemaBinding {
                name: export.schema.into(),
                major: export.major,
            };
            let compiled = self
                .catalog
                .schemas
                .resolve(&self.catalog.state, &binding)
                .await?;
            // No rows: the schema's columns.
            let columns: Vec<String> = compiled
                .arrow
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            self.ingest(export, columns, Vec::new(), false)
                .await
                .map_err(CatalogError::Invalid)?;
        }
        Ok(())
    }

    /// One export round over every table; returns the records landed.
    pub async fn run(&self) -> Result<u64, String> {
        let mut landed = 0;
        for export in self.exports {
            landed += self.export_table(export).await?;
        }
        Ok(landed)
    }

    async fn export_table(&self, export: &Export) -> Result<u64, String> {
        let pool = self.catalog.state.pool();
        let filter = if export.filter.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", export.filter)
        };
        let mut landed = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {} FROM {} WHERE exported = 0{filter} ORDER BY {} LIMIT {ROUND_ROWS}",
                export.select, export.table, export.table_key
            ))
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
            if rows.is_empty() {
                break;
            }
            let mut records = Vec::with_capacity(rows.len());
            let mut marks: Vec<(String, Option<String>)> = Vec::with_capacity(rows.len());
            for row in &rows {
                match (export.record)(row).map_err(|e| e.to_string())? {
                    Value::Object(record) => records.push(record),
                    other => {
                        return Err(format!(
                            "{}: an exported record is not an object: {other}",
                            export.dataset
                        ));
                    }
                }
                let key: String = row.try_get(export.table_key).map_err(|e| e.to_string())?;
                let updated = if export.mutable {
                    Some(
                        row.try_get::<String, _>("updated_at")
                            .map_err(|e| e.to_string())?,
                    )
                } else {
                    None
                };
                marks.push((key, updated));
            }
            // Always by key, immutable rows too: rows landed by a round whose marks were lost
            // (a crash between the commit and the mark) land again as the same rows, not as
            // copies.
            landed += self.ingest(export, Vec::new(), records, true).await?;
            let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
            for (key, updated) in &marks {
                let query = match updated {
                    Some(_) => format!(
                        "UPDATE {} SET exported = 1 WHERE {} = $1 AND updated_at = $2",
                        export.table, export.table_key
                    ),
                    None => format!(
                        "UPDATE {} SET exported = 1 WHERE {} = $1",
                        export.table, export.table_key
                    ),
                };
                let mut statement = sqlx::query(&query).bind(key);
                if let Some(updated) = updated {
                    statement = statement.bind(updated);
                }
                statement
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tx.commit().await.map_err(|e| e.to_string())?;
            self.compact_if_needed(export).await;
            if (rows.len() as i64) < ROUND_ROWS {
                break;
            }
        }
        Ok(landed)
    }

    async fn compact_if_needed(&self, export: &Export) {
        let Ok(id) = export.dataset.parse::<DatasetId>() else {
            return;
        };
        match self.catalog.refresh_stats(&id).await {
            Ok(stats) if stats.small_files >= COMPACT_AT_SMALL_FILES => {
                if let Err(e) = self.catalog.compact(&id).await {
                    tracing::warn!(dataset = export.dataset, error = %e, "cannot compact a module dataset");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(dataset = export.dataset, error = %e, "no stats for a module dataset")
            }
        }
    }
}
