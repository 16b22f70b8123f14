//! The query log and the operational tables SQL admins see as `simpul.*`.
//!
//! Every SQL query, whatever protocol carried it, leaves one row in `query_log`: who ran it,
//! its text, the tables it read, rows and bytes returned, how long it took and how it ended.
//! Admins read it, and the admin audit log, as `simpul.query_log` and `simpul.audit`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Every row reached the client.
    Succeeded,
    /// Planning or execution failed.
    Failed,
    /// Refused before it ran: a write, a syntax error, a busy hub.
    Refused,
    /// Stopped by its timeout.
    TimedOut,
    /// The client cancelled it or went away before the last row.
    Cancelled,
}

impl QueryOutcome {
    /// The word stored in `query_log.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One finished query.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    /// When it started.
    pub at: DateTime<Utc>,
    /// The API client that ran it.
    pub client_id: String,
    /// `http`, `pgwire`, `flight` or `saved`.
    pub protocol: String,
    /// The SQL text as sent.
    pub sql: String,
    /// The datasets it read, `namespace.name`.
    pub tables: Vec<String>,
    /// Rows returned.
    pub rows: u64,
    /// Bytes of the returned Arrow batches.
    pub bytes: u64,
    /// Wall time from receipt to the last row, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: QueryOutcome,
    /// The error, in the words the client saw.
    pub error: Option<String>,
}

impl StateStore {
    /// Appends one query to the log.
    pub async fn record_query(&self, record: &QueryRecord) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO query_log (id, at, client_id, protocol, sql_text, tables, row_count, \
             byte_count, duration_ms, outcome, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(timestamp(record.at))
        .bind(&record.client_id)
        .bind(&record.protocol)
        .bind(&record.sql)
        .bind(serde_json::to_string(&record.tables).unwrap_or_else(|_| "[]".into()))
        .bind(i64::try_from(record.rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(record.bytes).unwrap_or(i64::MAX))
        .bind(i64::try_from(record.duration_ms).unwrap_or(i64::MAX))
        .bind(record.outcome.as_str())
        .bind(record.error.as_deref())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The operational tables, by name in the `simpul` schema.
pub const OPERATIONAL_TABLES: [&str; 6] = [
    "audit",
    "datasets",
    "message_log",
    "opmon",
    "pipeline_runs",
    "query_log",
];

/// A state-store table shown to SQL, read in full when a query scans it.
#[derive(Debug)]
pub struct OperationalTable {
    state: StateStore,
    kind: Operational,
    schema: SchemaRef,
}

#[derive(Debug, Clone, Copy)]
enum Operational {
    Datasets,
    PipelineRuns,
    QueryLog,
    Audit,
    Opmon,
    MessageLog,
}

fn utc_micros(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn nullable_utc_micros(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

impl OperationalTable {
    /// The table called `name` in the `simpul` schema, if there is one.
    pub fn named(state: &StateStore, name: &str) -> Option<Self> {
        let (kind, fields) = match name {
            "query_log" => (
                Operational::QueryLog,
                vec![
                    Field::new("id", DataType::Utf8, false),
                    utc_micros("at"),
                    Field::new("client_id", DataType::Utf8, false),
                    Field::new("protocol", DataType::Utf8, false),
                    Field::new("sql", DataType::Utf8, false),
                    Field::new("tables", DataType::Utf8, false),
                    Field::new("rows", DataType::Int64, false),
                    Field::new("bytes", DataType::Int64, false),
                    Field::new("duration_ms", DataType::Int64, false),
                    Field::new("outcome", DataType::Utf8, false),
                    Field::new("error", DataType::Utf8, true),
                ],
            ),
            "audit" => (
                Operational::Audit,
                vec![
                    Field::new("id", DataType::Utf8, false),
                    utc_micros("at"),
                    Field::new("actor", DataType::Utf8, false),
                    Field::new("action", DataType::Utf8, false),
                    Field::new("target", DataType::Utf8, false),
                    Field::new("detail", DataType::Utf8, false),
                ],
            ),
            "opmon" => (
                Operational::Opmon,
                vec![
                    Field::new("id", DataType::Utf8, false),
                    utc_micros("request_in_ts"),
                    utc_micros("response_out_ts"),
                    Field::new("client_id", DataType::Utf8, true),
                    Field::new("member", DataType::Utf8, true),
                    Field::new("subsystem", DataType::Utf8, true),
                    Field::new("service", DataType::Utf8, false),
                    Field::new("method", DataType::Utf8, false),
                    Field::new("path", DataType::Utf8, false),
                    Field::new("request_size", DataType::Int64, false),
                    Field::new("response_size", DataType::Int64, false),
                    Field::new("succeeded", DataType::Boolean, false),
                    Field::new("status", DataType::Int64, false),
                ],
            ),
            "message_log" => (
                Operational::MessageLog,
                vec![
                    Field::new("message_id", DataType::Utf8, false),
                    utc_micros("at"),
                    Field::new("seq", DataType::Int64, false),
                    Field::new("service", DataType::Utf8, false),
                    Field::new("client_id", DataType::Utf8, true),
                    Field::new("peer", DataType::Utf8, true),
                    Field::new("dataset", DataType::Utf8, true),
                    Field::new("version", DataType::Int64, true),
                    Field::new("request_bytes", DataType::Int64, false),
                    Field::new("response_bytes", DataType::Int64, false),
                    Field::new("status", DataType::Int64, false),
                    Field::new("payload_sha256", DataType::Utf8, true),
                    Field::new("detail", DataType::Utf8, false),
                    Field::new("prev_hash", DataType::Utf8, false),
                    Field::new("hash", DataType::Utf8, false),
                ],
            ),
            "datasets" => (
                Operational::Datasets,
                vec![
                    Field::new("id", DataType::Utf8, false),
                    utc_micros("updated_at"),
                    Field::new("owner", DataType::Utf8, false),
                    Field::new("classification", DataType::Utf8, false),
                    Field::new("schema_ref", DataType::Utf8, true),
                    Field::new("row_count", DataType::Int64, false),
                    Field::new("rejected_count", DataType::Int64, false),
                    Field::new("size_bytes", DataType::Int64, false),
                    nullable_utc_micros("last_commit_at"),
                    nullable_utc_micros("refreshed_at"),
                    Field::new("freshness_sla", DataType::Utf8, true),
                    Field::new("stale", DataType::Boolean, true),
                ],
            ),
            "pipeline_runs" => (
                Operational::PipelineRuns,
                vec![
                    Field::new("id", DataType::Utf8, false),
                    utc_micros("started_at"),
                    Field::new("pipeline", DataType::Utf8, false),
                    Field::new("run_number", DataType::Int64, false),
                    Field::new("dataset", DataType::Utf8, false),
                    Field::new("trigger_kind", DataType::Utf8, false),
                    Field::new("status", DataType::Utf8, false),
                    nullable_utc_micros("ended_at"),
                    Field::new("rows_read", DataType::Int64, false),
                    Field::new("rows_committed", DataType::Int64, false),
                    Field::new("rows_rejected", DataType::Int64, false),
                    Field::new("error", DataType::Utf8, true),
                ],
            ),
            _ => return None,
        };
        Some(Self {
            state: state.clone(),
            kind,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    async fn batch(&self) -> Result<RecordBatch, CatalogError> {
        let sql = match self.kind {
            Operational::Datasets => {
                "SELECT id, updated_at, owner, classification, schema_ref, row_count, rejected_count, \
                 size_bytes, last_commit_at, refreshed_at, freshness_sla FROM datasets ORDER BY id"
            }
            Operational::PipelineRuns => {
                "SELECT id, started_at, pipeline, run_number, dataset, trigger_kind, status, ended_at, \
                 rows_read, rows_committed, rows_rejected, error FROM pipeline_runs \
                 ORDER BY started_at, id"
            }
            Operational::QueryLog => {
                "SELECT id, at, client_id, protocol, sql_text, tables, row_count, byte_count, \
                 duration_ms, outcome, error FROM query_log ORDER BY at, id"
            }
            Operational::Audit => {
                "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY at, id"
            }
            Operational::Opmon => {
                "SELECT id, request_in_ts, response_out_ts, client_id, member, subsystem, service, \
                 method, path, request_size, response_size, succeeded, status FROM opmon \
                 ORDER BY request_in_ts, id"
            }
            Operational::MessageLog => {
                "SELECT message_id, at, seq, service, client_id, peer, dataset, version, request_bytes, \
                 response_bytes, status, payload_sha256, detail, prev_hash, hash FROM message_log ORDER BY seq"
            }
        };
        let rows = sqlx::query(sql).fetch_all(self.state.pool()).await?;
        let text = |index: usize| -> Result<ArrayRef, CatalogError> {
            let values: Vec<Option<String>> = rows
                .iter()
                .map(|row| row.try_get::<Option<String>, _>(index))
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(StringArray::from(values)))
        };
        let number = |index: usize| -> Result<ArrayRef, CatalogError> {
            let values: Vec<i64> = rows
                .iter()
                .map(|row| row.try_get::<i64, _>(index))
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(Int64Array::from(values)))
        };
        let time = |index: usize| -> Result<ArrayRef, CatalogError> {
            let values: Vec<i64> = rows
                .iter()
                .map(|row| {
                    row.try_get::<String, _>(index)
                        .map(|t| parse_timestamp(&t).map_or(0, |t| t.timestamp_micros()))
                })
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(
                TimestampMicrosecondArray::from(values).with_timezone("UTC"),
            ))
        };
        let maybe_time = |index: usize| -> Result<ArrayRef, CatalogError> {
            let values: Vec<Option<i64>> = rows
                .iter()
                .map(|row| {
                    row.try_get::<Option<String>, _>(index).map(|t| {
                        t.and_then(|t| parse_timestamp(&t))
                            .map(|t| t.timestamp_micros())
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(
                TimestampMicrosecondArray::from(values).with_timezone("UTC"),
            ))
        };
        let at = time(1)?;
        let columns = match self.kind {
            Operational::Datasets => {
                let now = chrono::Utc::now();
                let stale: Vec<Option<bool>> = rows
                    .iter()
                    .map(|row| {
                        let sla: Option<String> = row.try_get(10).ok().flatten();
                        let refreshed: Option<String> = row.try_get(9).ok().flatten();
                        let limit = crate::runs::parse_freshness(sla.as_deref()?).ok()?;
                        let refreshed = refreshed.as_deref().and_then(parse_timestamp);
                        Some(refreshed.is_none_or(|at| now - at > limit))
                    })
                    .collect();
                vec![
                    text(0)?,
                    at,
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    number(5)?,
                    number(6)?,
                    number(7)?,
                    maybe_time(8)?,
                    maybe_time(9)?,
                    text(10)?,
                    Arc::new(arrow::array::BooleanArray::from(stale)) as ArrayRef,
                ]
            }
            Operational::PipelineRuns => vec![
                text(0)?,
                at,
                text(2)?,
                number(3)?,
                text(4)?,
                text(5)?,
                text(6)?,
                maybe_time(7)?,
                number(8)?,
                number(9)?,
                number(10)?,
                text(11)?,
            ],
            Operational::QueryLog => {
                let tables: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        let json: String = row.try_get(5).unwrap_or_default();
                        serde_json::from_str::<Vec<String>>(&json)
                            .map(|t| t.join(", "))
                            .unwrap_or(json)
                    })
                    .collect();
                vec![
                    text(0)?,
                    at,
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    Arc::new(StringArray::from(tables)) as ArrayRef,
                    number(6)?,
                    number(7)?,
                    number(8)?,
                    text(9)?,
                    text(10)?,
                ]
            }
            Operational::Audit => vec![text(0)?, at, text(2)?, text(3)?, text(4)?, text(5)?],
            Operational::Opmon => {
                let succeeded: Vec<bool> = rows
                    .iter()
                    .map(|row| row.try_get::<i64, _>(11).map(|v| v != 0))
                    .collect::<Result<_, _>>()?;
                vec![
                    text(0)?,
                    at,
                    time(2)?,
                    text(3)?,
                    text(4)?,
                    text(5)?,
                    text(6)?,
                    text(7)?,
                    text(8)?,
                    number(9)?,
                    number(10)?,
                    Arc::new(arrow::array::BooleanArray::from(succeeded)) as ArrayRef,
                    number(12)?,
                ]
            }
            Operational::MessageLog => {
                let versions: Vec<Option<i64>> = rows
                    .iter()
                    .map(|row| row.try_get::<Option<i64>, _>(7))
                    .collect::<Result<_, _>>()?;
                vec![
                    text(0)?,
                    at,
                    number(2)?,
                    text(3)?,
                    text(4)?,
                    text(5)?,
                    text(6)?,
                    Arc::new(Int64Array::from(versions)) as ArrayRef,
                    number(8)?,
                    number(9)?,
                    number(10)?,
                    text(11)?,
                    text(12)?,
                    text(13)?,
                    text(14)?,
                ]
            }
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for OperationalTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self
            .batch()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
