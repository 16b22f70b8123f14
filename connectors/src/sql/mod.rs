//! The `sql` source: a table or a query of an OPD's PostgreSQL or MySQL/MariaDB database,
//! read in one read-only transaction and streamed into typed Arrow batches.
//!
//! Types map to Arrow as they are: booleans, whole numbers (`Int64`), floating point
//! (`Float64`), text, dates (`Date32`) and times (`Timestamp(µs, UTC)`). A time without a
//! zone (PostgreSQL `timestamp`, MySQL `DATETIME`) is read as WIB, the regency's clock.
//! Every other type (`numeric`/`DECIMAL`, `uuid`, `json`, unsigned 64-bit, …) is read as its
//! text, exactly, and typed by validation downstream.
//!
//! Incremental reads order by the cursor column and keep its largest value; the next read
//! asks for rows above it (`>`), so a row must get a larger cursor value when it changes.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_schemas::{SourcePosition, normalize_column_name};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Executor, Row, Statement, TypeInfo};

use crate::file::BATCH_ROWS;
use crate::raw::{RawBatch, SourceError};
use crate::source::{ReadEvent, Source, StreamInfo, event_stream, unknown_stream};

/// The one stream a `sql` source offers.
pub const STREAM: &str = "rows";

/// WIB is UTC+7 all year.
const WIB_SECONDS: i64 = 7 * 3600;

/// A `sql` source's settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `postgres://user:pass@host/db` or `mysql://…` (`mariadb://` also works). Use `env:NAME`.
    pub url: String,
    /// The table (`table` or `schema.table`); or give `query`.
    #[serde(default)]
    pub table: Option<String>,
    /// A `SELECT` whose rows are read; or give `table`.
    #[serde(default)]
    pub query: Option<String>,
    /// The column incremental reads resume from (the pipeline's `cursor_field`).
    #[serde(default)]
    pub cursor_column: Option<String>,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: f64,
}

fn default_connect_timeout() -> f64 {
    30.0
}

/// Which database the source talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    MySql,
}

/// A pool of connections to it, made on first use.
enum Database {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// How one column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    I16,
    I32,
    I64,
    I8,
    F32,
    F64,
    Text,
    Date,
    /// A time without a zone, read as WIB.
    LocalTime,
    Timestamp,
}

impl Kind {
    fn arrow(self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::I8 | Self::I16 | Self::I32 | Self::I64 => DataType::Int64,
            Self::F32 | Self::F64 => DataType::Float64,
            Self::Text => DataType::Utf8,
            Self::Date => DataType::Date32,
            Self::LocalTime | Self::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

/// What the select list does to a column before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    /// Read it as it is.
    None,
    /// Turn it into its text (types Arrow has no exact match for).
    Text,
    /// Turn it into a signed 64-bit number (MySQL's narrower unsigned numbers).
    Signed,
}

/// One column of the source: its name there, its name in Simpul, how it is read, and what
/// the select list does to it.
#[derive(Debug, Clone)]
struct SourceColumn {
    name: String,
    normalized: String,
    kind: Kind,
    cast: Cast,
    /// The database's own type name (for the cursor parameter's cast).
    type_name: String,
}

/// A `sql` source.
pub struct Sql {
    config: SqlConfig,
    backend: Backend,
    /// The URL with `mariadb://` read as `mysql://`.
    url: String,
    database: tokio::sync::OnceCell<Database>,
    /// The URL without its password, for positions and errors.
    shown_url: String,
}

impl SqlConfig {
    /// The source; connects lazily, on the first check, discover or read.
    pub fn source(&self) -> Result<Sql, SourceError> {
        let invalid = |reason: String| SourceError::Config {
            connector: "sql".into(),
            reason,
        };
        match (&self.table, &self.query) {
            (Some(table), None) => {
                table_parts(table).map_err(invalid)?;
            }
            (None, Some(query)) if !query.trim().is_empty() => {}
            _ => return Err(invalid("give exactly one of table and query".into())),
        }
        if let Some(column) = &self.cursor_column {
            plain_identifier(column).map_err(invalid)?;
        }
        let url = match self.url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => self.url.clone(),
        };
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("mysql://") {
            Backend::MySql
        } else {
            return Err(invalid(format!(
                "url must start with postgres://, mysql:// or mariadb://, not '{}'",
                redact(&url)
            )));
        };
        Ok(Sql {
            config: self.clone(),
            backend,
            shown_url: redact(&url),
            url,
            database: tokio::sync::OnceCell::new(),
        })
    }
}

/// `schema.table` or `table`, each part a plain identifier.
fn table_parts(table: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 {
        return Err(format!("table '{table}' must be table or schema.table"));
    }
    for part in &parts {
        plain_identifier(part)?;
    }
    Ok(parts)
}

fn plain_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' must be a plain identifier: letters, digits and _, not starting with a digit"
        ))
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

impl Sql {
    /// The connection pool, made on first use (it needs the async runtime).
    async fn database(&self) -> Result<&Database, SourceError> {
        self.database
            .get_or_try_init(|| async {
                let timeout = Duration::from_secs_f64(self.config.connect_timeout_seconds.max(0.1));
                let connect_error = |e: sqlx::Error| SourceError::Config {
                    connector: "sql".into(),
                    reason: format!("cannot use {}: {e}", self.shown_url),
                };
                Ok(match self.backend {
                    Backend::Postgres => Database::Postgres(
                        PgPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(timeout)
                            .connect_lazy(&self.url)
                            .map_err(connect_error)?,
                    ),
                    Backend::MySql => Database::MySql(
                        MySqlPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(timeout)
                            .connect_lazy(&self.url)
                            .map_err(connect_error)?,
                    ),
                })
            })
            .await
    }

    fn quote(&self, name: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("\"{name}\""),
            Backend::MySql => format!("`{name}`"),
        }
    }

    /// The rows the source stands for, as a subquery.
    fn relation(&self) -> String {
        match (&self.config.table, &self.config.query) {
            (Some(table), _) => table_parts(table)
                .unwrap_or_default()
                .iter()
                .map(|p| self.quote(p))
                .collect::<Vec<_>>()
                .join("."),
            (None, Some(query)) => format!("({})", query.trim().trim_end_matches(';')),
            (None, None) => String::new(),
        }
    }

    fn sql_error(&self, e: sqlx::Error) -> SourceError {
        SourceError::Connect {
            url: self.shown_url.clone(),
            reason: e.to_string(),
        }
    }

    /// The columns of the relation, from a prepared statement (nothing is read).
    async fn columns(&self) -> Result<Vec<SourceColumn>, SourceError> {
        let probe = format!("SELECT * FROM {} AS simpul_source", self.relation());
        let described: Vec<(String, String)> = match self.database().await? {
            Database::Postgres(pool) => pool
                .prepare(&probe)
                .await
                .map_err(|e| self.sql_error(e))?
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
                .collect(),
            Database::MySql(pool) => pool
                .prepare(&probe)
                .await
                .map_err(|e| self.sql_error(e))?
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
                .collect(),
        };
        let postgres = self.backend == Backend::Postgres;
        let mut normalized: Vec<String> = Vec::new();
        Ok(described
            .into_iter()
            .map(|(name, type_name)| {
                let (kind, cast) = if postgres {
                    postgres_kind(&type_name)
                } else {
                    mysql_kind(&type_name)
                }
                .map_or((Kind::Text, Cast::Text), |(kind, cast)| (kind, cast));
                let base = normalize_column_name(&name);
                let mut unique = base.clone();
                let mut n = 2;
                while normalized.contains(&unique) {
                    unique = format!("{base}_{n}");
                    n += 1;
                }
                normalized.push(unique.clone());
                SourceColumn {
                    name,
                    normalized: unique,
                    kind,
                    cast,
                    type_name,
                }
            })
            .collect())
    }

    /// The query that reads the rows, after `cursor` when given.
    fn select(
        &self,
        columns: &[SourceColumn],
        cursor: Option<&Value>,
    ) -> Result<String, SourceError> {
        let list: Vec<String> = columns
            .iter()
            .map(|c| {
                let quoted = self.quote(&c.name);
                match (c.cast, self.backend) {
                    (Cast::None, _) => quoted,
                    (Cast::Text, Backend::Postgres) => format!("{quoted}::text AS {quoted}"),
                    (Cast::Text, Backend::MySql) => format!("CAST({quoted} AS CHAR) AS {quoted}"),
                    (Cast::Signed, _) => format!("CAST({quoted} AS SIGNED) AS {quoted}"),
                }
            })
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {} AS simpul_source",
            list.join(", "),
            self.relation()
        );
        let Some(column) = &self.config.cursor_column else {
            return Ok(sql);
        };
        let found = columns
            .iter()
            .find(|c| c.name == *column || c.normalized == *column)
            .ok_or_else(|| SourceError::Config {
                connector: "sql".into(),
                reason: format!("the cursor column '{column}' is not among the source's columns"),
            })?;
        let quoted = self.quote(&found.name);
        if cursor.is_some() {
            match self.backend {
                Backend::Postgres => sql.push_str(&format!(
                    " WHERE {quoted} > CAST($1 AS {})",
                    found.type_name
                )),
                Backend::MySql => sql.push_str(&format!(" WHERE {quoted} > ?")),
            }
        }
        sql.push_str(&format!(" ORDER BY {quoted}"));
        Ok(sql)
    }

    fn schema(columns: &[SourceColumn]) -> SchemaRef {
        Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.normalized, c.kind.arrow(), true))
                .collect::<Vec<_>>(),
        ))
    }

    async fn read_rows(
        &self,
        state: Option<Value>,
        tx: &tokio::sync::mpsc::Sender<Result<ReadEvent, SourceError>>,
    ) -> Result<(), SourceError> {
        let columns = self.columns().await?;
        let saved = state
            .and_then(|s| s.get("cursor").cloned())
            .filter(|c| !c.is_null());
        let cursor_text = saved.as_ref().map(cursor_param);
        let sql = self.select(&columns, saved.as_ref())?;
        let cursor_index = self.config.cursor_column.as_ref().and_then(|name| {
            columns
                .iter()
                .position(|c| c.name == *name || c.normalized == *name)
        });
        let mut batch = Batch::new(&columns, self.position_source(), 1);
        let mut last_cursor = saved.clone();
        macro_rules! stream_rows {
            ($pool:expr, $begin:expr, $row_ty:ty) => {{
                // A transaction that ends early (an error, a reader gone) rolls back when
                // dropped, so no connection goes back to the pool inside it.
                let mut transaction = $pool
                    .begin_with($begin)
                    .await
                    .map_err(|e| self.sql_error(e))?;
                let mut query = sqlx::query(&sql);
                if let Some(text) = &cursor_text {
                    query = query.bind(text.clone());
                }
                let mut rows = query.fetch(&mut *transaction);
                while let Some(row) = rows.next().await {
                    let row: $row_ty = row.map_err(|e| self.sql_error(e))?;
                    if let Some(value) = batch.push(&row, cursor_index)? {
                        last_cursor = Some(value);
                    }
                    if batch.rows == BATCH_ROWS && !self.send(&mut batch, &columns, tx).await? {
                        return Ok(());
                    }
                }
                drop(rows);
                transaction
                    .rollback()
                    .await
                    .map_err(|e| self.sql_error(e))?;
            }};
        }
        match self.database().await? {
            Database::Postgres(pool) => stream_rows!(pool, "BEGIN READ ONLY", PgRow),
            Database::MySql(pool) => stream_rows!(pool, "START TRANSACTION READ ONLY", MySqlRow),
        }
        if batch.rows > 0 && !self.send(&mut batch, &columns, tx).await? {
            return Ok(());
        }
        let checkpoint = match &self.config.cursor_column {
            Some(_) => json!({ "cursor": last_cursor }),
            None => json!({}),
        };
        let _ = tx.send(Ok(ReadEvent::Checkpoint(checkpoint))).await;
        Ok(())
    }

    /// Sends the batch built so far and starts a new one; false when nobody listens.
    async fn send(
        &self,
        batch: &mut Batch,
        columns: &[SourceColumn],
        tx: &tokio::sync::mpsc::Sender<Result<ReadEvent, SourceError>>,
    ) -> Result<bool, SourceError> {
        let next = Batch::new(
            columns,
            batch.source.clone(),
            batch.first_line + batch.rows as u64,
        );
        let full = std::mem::replace(batch, next);
        let raw = full.finish(Self::schema(columns), &self.shown_url)?;
        Ok(tx.send(Ok(ReadEvent::Batch(raw))).await.is_ok())
    }

    fn position_source(&self) -> Arc<str> {
        let what = match (&self.config.table, &self.config.query) {
            (Some(table), _) => table.clone(),
            _ => "query".into(),
        };
        Arc::from(format!("{what} at {}", self.shown_url))
    }
}

/// The cursor as the text bound to the query's parameter.
fn cursor_param(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn postgres_kind(type_name: &str) -> Option<(Kind, Cast)> {
    let kind = match type_name {
        "BOOL" => Kind::Bool,
        "INT2" => Kind::I16,
        "INT4" => Kind::I32,
        "INT8" => Kind::I64,
        "FLOAT4" => Kind::F32,
        "FLOAT8" => Kind::F64,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => Kind::Text,
        "DATE" => Kind::Date,
        "TIMESTAMP" => Kind::LocalTime,
        "TIMESTAMPTZ" => Kind::Timestamp,
        _ => return None,
    };
    Some((kind, Cast::None))
}

fn mysql_kind(type_name: &str) -> Option<(Kind, Cast)> {
    let kind = match type_name {
        "BOOLEAN" => Kind::Bool,
        "TINYINT" => Kind::I8,
        "SMALLINT" => Kind::I16,
        "INT" | "MEDIUMINT" => Kind::I32,
        "BIGINT" => Kind::I64,
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED" => {
            return Some((Kind::I64, Cast::Signed));
        }
        "FLOAT" => Kind::F32,
        "DOUBLE" => Kind::F64,
        "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" => Kind::Text,
        "DATE" => Kind::Date,
        "DATETIME" => Kind::LocalTime,
        "TIMESTAMP" => Kind::Timestamp,
        _ => return None,
    };
    Some((kind, Cast::None))
}

/// Builders for one batch of rows.
struct Batch {
    builders: Vec<Builder>,
    kinds: Vec<Kind>,
    rows: usize,
    /// The 1-based number, within the read, of this batch's first row.
    first_line: u64,
    source: Arc<str>,
}

enum Builder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Time(TimestampMicrosecondBuilder),
}

fn decode_error(e: sqlx::Error) -> SourceError {
    SourceError::Format {
        path: "sql".into(),
        format: "SQL row",
        reason: e.to_string(),
    }
}

/// Decodes the cells of one row into the builders; implemented for a row of each database.
trait RowCells {
    /// Appends the row; returns the cursor column's value, if it has one.
    fn push_into(
        &self,
        batch: &mut Batch,
        cursor: Option<usize>,
    ) -> Result<Option<Value>, SourceError>;
}

macro_rules! impl_row_cells {
    ($row:ty) => {
        impl RowCells for $row {
            fn push_into(
                &self,
                batch: &mut Batch,
                cursor: Option<usize>,
            ) -> Result<Option<Value>, SourceError> {
                macro_rules! cell {
                    ($ty:ty, $index:expr) => {
                        self.try_get::<Option<$ty>, _>($index)
                            .map_err(decode_error)?
                    };
                }
                let mut cursor_value = None;
                for index in 0..batch.kinds.len() {
                    let kind = batch.kinds[index];
                    let value: Option<Value> = match (kind, &mut batch.builders[index]) {
                        (Kind::Bool, Builder::Bool(b)) => {
                            let v = cell!(bool, index);
                            b.append_option(v);
                            v.map(Value::from)
                        }
                        (Kind::F32 | Kind::F64, Builder::Float(b)) => {
                            let v = if kind == Kind::F32 {
                                cell!(f32, index).map(f64::from)
                            } else {
                                cell!(f64, index)
                            };
                            b.append_option(v);
                            v.map(Value::from)
                        }
                        (Kind::Text, Builder::Text(b)) => {
                            let v = cell!(String, index);
                            b.append_option(v.as_deref());
                            v.map(Value::from)
                        }
                        (Kind::Date, Builder::Date(b)) => {
                            let v = cell!(NaiveDate, index);
                            b.append_option(v.map(days_since_epoch));
                            v.map(|d| Value::from(d.format("%Y-%m-%d").to_string()))
                        }
                        (Kind::LocalTime, Builder::Time(b)) => {
                            let v = cell!(NaiveDateTime, index);
                            b.append_option(
                                v.map(|t| t.and_utc().timestamp_micros() - WIB_SECONDS * 1_000_000),
                            );
                            v.map(|t| Value::from(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()))
                        }
                        (Kind::Timestamp, Builder::Time(b)) => {
                            let v = cell!(DateTime<Utc>, index);
                            b.append_option(v.map(|t| t.timestamp_micros()));
                            v.map(|t| {
                                Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                            })
                        }
                        (_, Builder::Int(b)) => {
                            let v = integer_cell!(self, kind, index);
                            b.append_option(v);
                            v.map(Value::from)
                        }
                        _ => None,
                    };
                    if Some(index) == cursor && value.is_some() {
                        cursor_value = value;
                    }
                }
                Ok(cursor_value)
            }
        }
    };
}

/// A whole-number cell of either database, read as the width its column has.
macro_rules! integer_cell {
    ($row:expr, $kind:expr, $index:expr) => {{
        let get = |e: sqlx::Error| decode_error(e);
        match $kind {
            Kind::I8 => $row
                .try_get::<Option<i8>, _>($index)
                .map_err(get)?
                .map(i64::from),
            Kind::I16 => $row
                .try_get::<Option<i16>, _>($index)
                .map_err(get)?
                .map(i64::from),
            Kind::I32 => $row
                .try_get::<Option<i32>, _>($index)
                .map_err(get)?
                .map(i64::from),
            _ => $row.try_get::<Option<i64>, _>($index).map_err(get)?,
        }
    }};
}

impl_row_cells!(PgRow);
impl_row_cells!(MySqlRow);

fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days() as i32
}

impl Batch {
    fn new(columns: &[SourceColumn], source: Arc<str>, first_line: u64) -> Self {
        Self {
            builders: columns
                .iter()
                .map(|c| match c.kind {
                    Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                    Kind::F32 | Kind::F64 => Builder::Float(Float64Builder::new()),
                    Kind::Text => Builder::Text(StringBuilder::new()),
                    Kind::Date => Builder::Date(Date32Builder::new()),
                    Kind::LocalTime | Kind::Timestamp => {
                        Builder::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                    }
                    _ => Builder::Int(Int64Builder::new()),
                })
                .collect(),
            kinds: columns.iter().map(|c| c.kind).collect(),
            rows: 0,
            first_line,
            source,
        }
    }

    fn push<R: RowCells>(
        &mut self,
        row: &R,
        cursor: Option<usize>,
    ) -> Result<Option<Value>, SourceError> {
        let value = row.push_into(self, cursor)?;
        self.rows += 1;
        Ok(value)
    }

    fn finish(mut self, schema: SchemaRef, shown_url: &str) -> Result<RawBatch, SourceError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Float(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = if columns.is_empty() {
            RecordBatch::new_empty(schema)
        } else {
            RecordBatch::try_new(schema, columns).map_err(|source| SourceError::Arrow {
                path: shown_url.to_string(),
                source,
            })?
        };
        let start = self.first_line;
        let positions = (start..start + self.rows as u64)
            .map(|line| SourcePosition {
                source: self.source.clone(),
                line,
            })
            .collect();
        Ok(RawBatch {
            batch,
            positions,
            malformed: Vec::new(),
        })
    }
}

impl Source for Sql {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json")).unwrap_or(Value::Null)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        async move { self.columns().await.map(|_| ()) }.boxed()
    }

    fn discover(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>> {
        async move {
            let columns = self.columns().await?;
            Ok(vec![StreamInfo {
                name: STREAM.into(),
                schema: Self::schema(&columns),
                incremental: self.config.cursor_column.is_some(),
            }])
        }
        .boxed()
    }

    fn default_stream(&self) -> &'static str {
        STREAM
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Value>,
    ) -> BoxStream<'_, Result<ReadEvent, SourceError>> {
        if stream != STREAM {
            return unknown_stream("sql", stream, STREAM);
        }
        event_stream(move |tx| async move { self.read_rows(state, &tx).await })
    }
}

#[cfg(test)]
mod tests;
