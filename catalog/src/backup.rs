//! A logical copy of the state store: every table's rows as NDJSON, read in one transaction
//! so that the copy is one moment of the store, and loaded back into a store of either
//! kind (SQLite or PostgreSQL) whose migrations are those of the copy.
//!
//! The format (`simpul-state-v1`): a first line `{"format", "taken_at", "migration",
//! "tables": [{"table", "columns", "rows"}]}`, then per table a line `{"table", "columns"}`
//! followed by one line per row, a JSON array of the row's values in column order. Every
//! column is `TEXT`, `BIGINT` or `DOUBLE PRECISION`, so a value is a string, an integer, a
//! number or null.

use std::io::{BufRead, Write};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Column, Row, TypeInfo};

use crate::error::CatalogError;
use crate::state::{Backend, StateStore, timestamp};

/// The copy's format name.
pub const STATE_FORMAT: &str = "simpul-state-v1";

/// Tables that others refer to, loaded first and emptied last.
const PARENTS: [&str; 3] = ["api_clients", "bus_members", "bus_groups"];

/// What a copy holds, from its first line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateDumpHeader {
    /// [`STATE_FORMAT`].
    pub format: String,
    /// When the copy's transaction began.
    pub taken_at: String,
    /// The newest migration applied to the store copied.
    pub migration: i64,
    /// Every table with its columns and row count, in load order.
    pub tables: Vec<DumpedTable>,
}

/// One table of a copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpedTable {
    /// The table.
    pub table: String,
    /// Its columns, in the order of each row's values.
    pub columns: Vec<String>,
    /// Rows copied.
    pub rows: u64,
}

fn dump_error(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::State(format!("copying the state store: {e}"))
}

fn value_of(row: &AnyRow, i: usize) -> Result<serde_json::Value, CatalogError> {
    let kind = row.column(i).type_info().name().to_ascii_uppercase();
    let value = if kind.contains("INT") {
        row.try_get::<Option<i64>, _>(i)?
            .map(serde_json::Value::from)
    } else if kind.contains("DOUBLE") || kind.contains("REAL") || kind.contains("FLOAT") {
        row.try_get::<Option<f64>, _>(i)?
            .map(serde_json::Value::from)
    } else if kind == "NULL" {
        None
    } else {
        row.try_get::<Option<String>, _>(i)?
            .map(serde_json::Value::from)
    };
    Ok(value.unwrap_or(serde_json::Value::Null))
}

impl StateStore {
    /// The store's tables, parents first, then by name (the migrations' own table aside).
    async fn table_names(&self) -> Result<Vec<String>, CatalogError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name <> '_sqlx_migrations' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename <> '_sqlx_migrations' ORDER BY tablename"
            }
        };
        let mut names: Vec<String> = sqlx::query_scalar(sql).fetch_all(self.pool()).await?;
        names.sort_by_key(|name| {
            (
                PARENTS
                    .iter()
                    .position(|p| p == name)
                    .unwrap_or(PARENTS.len()),
                name.clone(),
            )
        });
        Ok(names)
    }

    async fn column_names(&self, table: &str) -> Result<Vec<String>, CatalogError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
            }
            Backend::Postgres => format!(
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
            ),
        };
        Ok(sqlx::query_scalar(&sql).fetch_all(self.pool()).await?)
    }

    /// The newest migration applied.
    pub async fn migration_version(&self) -> Result<i64, CatalogError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(self.pool())
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// Copies every table to `out` as of one moment (one read transaction; on PostgreSQL
    /// `REPEATABLE READ`), while the hub keeps writing. Returns the copy's header.
    pub async fn dump(&self, out: &mut dyn Write) -> Result<StateDumpHeader, CatalogError> {
        let tables = self.table_names().await?;
        let migration = self.migration_version().await?;
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let taken_at = timestamp(Utc::now());
        let mut header = StateDumpHeader {
            format: STATE_FORMAT.into(),
            taken_at,
            migration,
            tables: Vec::with_capacity(tables.len()),
        };
        // The rows go to a buffer first: the header, which counts them, is the first line.
        let mut body: Vec<u8> = Vec::new();
        for table in tables {
            let columns = self.column_names(&table).await?;
            let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
            let sql = format!("SELECT {} FROM \"{table}\"", quoted.join(", "));
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
            serde_json::to_writer(
                &mut body,
                &serde_json::json!({ "table": table, "columns": columns }),
            )
            .map_err(dump_error)?;
            body.push(b'\n');
            for row in &rows {
                let values: Vec<serde_json::Value> = (0..columns.len())
                    .map(|i| value_of(row, i))
                    .collect::<Result<_, _>>()?;
                serde_json::to_writer(&mut body, &values).map_err(dump_error)?;
                body.push(b'\n');
            }
            header.tables.push(DumpedTable {
                table,
                columns,
                rows: rows.len() as u64,
            });
        }
        tx.commit().await?;
        serde_json::to_writer(&mut *out, &header).map_err(dump_error)?;
        out.write_all(b"\n").map_err(dump_error)?;
        out.write_all(&body).map_err(dump_error)?;
        Ok(header)
    }

    /// Replaces every table's rows with those of a copy made by [`StateStore::dump`], in one
    /// transaction. The copy must come from the same migrations as this store.
    pub async fn load_dump(
        &self,
        input: &mut dyn BufRead,
    ) -> Result<StateDumpHeader, CatalogError> {
        let invalid = |what: String| CatalogError::Invalid(format!("the state copy {what}"));
        let mut lines = input.lines();
        let first = lines
            .next()
            .ok_or_else(|| invalid("is empty".into()))?
            .map_err(dump_error)?;
        let header: StateDumpHeader = serde_json::from_str(&first)
            .map_err(|e| invalid(format!("does not start with its header: {e}")))?;
        if header.format != STATE_FORMAT {
            return Err(invalid(format!(
                "is of format '{}', not {STATE_FORMAT}",
                header.format
            )));
        }
        let migration = self.migration_version().await?;
        if header.migration != migration {
            return Err(invalid(format!(
                "was made by a hub at migration {}, and this one is at {migration}; restore with the release that made it",
                header.migration
            )));
        }
        let mut tx = self.pool().begin().await?;
        for table in header.tables.iter().rev() {
            sqlx::query(&format!("DELETE FROM \"{}\"", table.table))
                .execute(&mut *tx)
                .await?;
        }
        for table in &header.tables {
            let line = lines
                .next()
                .ok_or_else(|| invalid(format!("ends before table {}", table.table)))?
                .map_err(dump_error)?;
            let start: serde_json::Value = serde_json::from_str(&line).map_err(dump_error)?;
            if start["table"] != table.table.as_str() {
                return Err(invalid(format!(
                    "has {} where {} was due",
                    start["table"], table.table
                )));
            }
            let kinds = self.column_kinds(&table.table, &table.columns).await?;
            let quoted: Vec<String> = table.columns.iter().map(|c| format!("\"{c}\"")).collect();
            let placeholders: Vec<String> =
                (1..=table.columns.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "INSERT INTO \"{}\" ({}) VALUES ({})",
                table.table,
                quoted.join(", "),
                placeholders.join(", ")
            );
            for _ in 0..table.rows {
                let line = lines
                    .next()
                    .ok_or_else(|| invalid(format!("ends inside table {}", table.table)))?
                    .map_err(dump_error)?;
                let values: Vec<serde_json::Value> =
                    serde_json::from_str(&line).map_err(dump_error)?;
                if values.len() != kinds.len() {
                    return Err(invalid(format!(
                        "has a row of {} of the wrong width",
                        table.table
                    )));
                }
                let mut query = sqlx::query(&sql);
                for (value, kind) in values.iter().zip(&kinds) {
                    query = match (kind, value) {
                        (Kind::Integer, v) => query.bind(v.as_i64()),
                        (Kind::Double, v) => query.bind(v.as_f64()),
                        (Kind::Text, serde_json::Value::String(s)) => query.bind(Some(s.clone())),
                        (Kind::Text, serde_json::Value::Null) => query.bind(None::<String>),
                        (Kind::Text, other) => query.bind(Some(other.to_string())),
                    };
                }
                query.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(header)
    }

    /// How each of `columns` of `table` is bound.
    async fn column_kinds(
        &self,
        table: &str,
        columns: &[String],
    ) -> Result<Vec<Kind>, CatalogError> {
        let sql = match self.backend() {
            Backend::Sqlite => format!("SELECT name, type FROM pragma_table_info('{table}')"),
            Backend::Postgres => format!(
                "SELECT column_name AS name, data_type AS type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
        };
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        let mut declared = std::collections::HashMap::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let kind: String = row.try_get("type")?;
            declared.insert(name, kind.to_ascii_uppercase());
        }
        columns
            .iter()
            .map(|column| {
                let kind = declared.get(column).ok_or_else(|| {
                    CatalogError::Invalid(format!(
                        "the state copy names column {column} that table {table} does not have"
                    ))
                })?;
                Ok(if kind.contains("INT") {
                    Kind::Integer
                } else if kind.contains("DOUBLE") || kind.contains("REAL") || kind.contains("FLOAT")
                {
                    Kind::Double
                } else {
                    Kind::Text
                })
            })
            .collect()
    }
}

enum Kind {
    Integer,
    Double,
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_copy_loads_back_into_a_fresh_store_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let source = StateStore::connect(&url("a.db")).await.unwrap();
        source
            .audit("admin", "test.action", "x", serde_json::json!({"n": 1}))
            .await
            .unwrap();
        source.set_setting_once("k", "v'\"\n").await.unwrap();
        source.claim_idempotency_key("c", "key", "h").await.unwrap();
        let mut copy = Vec::new();
        let header = source.dump(&mut copy).await.unwrap();
        let audit = header
            .tables
            .iter()
            .find(|t| t.table == "audit_log")
            .unwrap();
        assert_eq!(audit.rows, 1);
        assert!(header.tables.iter().all(|t| t.table != "_sqlx_migrations"));

        let target = StateStore::connect(&url("b.db")).await.unwrap();
        target.set_setting_once("stale", "x").await.unwrap();
        target.load_dump(&mut copy.as_slice()).await.unwrap();
        assert_eq!(
            target.setting("k").await.unwrap().as_deref(),
            Some("v'\"\n")
        );
        assert_eq!(target.setting("stale").await.unwrap(), None);
        let mut again = Vec::new();
        target.dump(&mut again).await.unwrap();
        // Row for row the same, the copy's time aside.
        let body = |bytes: &[u8]| bytes.splitn(2, |b| *b == b'\n').nth(1).unwrap().to_vec();
        assert_eq!(body(&again), body(&copy));
    }
}
