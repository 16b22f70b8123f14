//! The one read door. Every read of the lake, whoever asks and through whichever path (SQL
//! over HTTP, the records and rejects API, saved queries, dashboards, module KPIs and their
//! own look-ups, the change feed and webhooks, CKAN, the portal's downloads), is admitted by
//! the query gate, planned within the query's deadline, cut at its row limit, run on the
//! query runtime and recorded in the query log, here.
//!
//! A path says who reads (`client_id`), what it is (`protocol`, the query log's word for
//! it), how the request reads as text (`text`: the SQL, or the request line), and hands a
//! future that plans the read into a DataFrame with the caller's masks already applied
//! (`Catalog::plan_read_query`, `Catalog::provider_for`, `Catalog::changes`). The future is
//! only polled once the read is admitted, so planning counts against the deadline and a
//! refused read costs nothing.

use std::future::Future;
use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use serde_json::{Map, Value};
use simpul_catalog::{Catalog, CatalogError, QueryOutcome, SessionSettings};
use tokio::time::Instant;

use crate::api::ApiError;
use crate::config::QueryConfig;
use crate::query::{QueryGate, QueryTicket, StreamLimits, outcome_of};

/// How long a read of every row (a change feed) may stream, at most.
const BULK_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The door: the gate, the limits and the catalog every read goes through.
#[derive(Clone)]
pub struct ReadDoor(Arc<DoorInner>);

struct DoorInner {
    catalog: Arc<Catalog>,
    gate: QueryGate,
    limits: QueryConfig,
}

/// Who reads what, as the query log records it.
#[derive(Debug, Clone)]
pub struct Read {
    /// The API client (or module, for a module's own look-ups) that reads.
    pub client_id: String,
    /// Where the read came from: `http`, `records`, `rejects`, `saved`, `kpi`, `module`,
    /// `changes`, `webhook`, `ckan`, `portal`.
    pub protocol: &'static str,
    /// The SQL, or the request as text (`GET /api/v1/datasets/x/records?limit=5`).
    pub text: String,
    /// How many rows the reader gets at most.
    pub rows: RowLimit,
}

/// A read's row limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLimit {
    /// `query.row_limit`.
    Configured,
    /// The smaller of this and `query.row_limit`.
    AtMost(u64),
    /// Every row: a change feed, bounded by its versions instead (and by an hour).
    Every,
}

/// A read planned by its path: the frame, masked for the reader, and the tables it reads.
pub struct Planned {
    /// The plan.
    pub frame: DataFrame,
    /// `namespace.name` (with `@v3` for a version) of each table read.
    pub tables: Vec<String>,
    /// The rows already at hand (a cached result of the same plan on the same versions):
    /// sent instead of running the frame.
    pub ready: Option<SendableRecordBatchStream>,
    /// A last step over the rows the frame yields, before they are counted and recorded (a
    /// published aggregate's suppression of small groups).
    pub then:
        Option<Box<dyn FnOnce(SendableRecordBatchStream) -> SendableRecordBatchStream + Send>>,
}

impl Planned {
    /// The plan `frame`, reading `tables`.
    pub fn of(frame: DataFrame, tables: Vec<String>) -> Self {
        Self {
            frame,
            tables,
            ready: None,
            then: None,
        }
    }
}

/// Why a read could not be planned.
#[derive(Debug)]
pub enum PlanError {
    /// The catalog refused or failed.
    Catalog(CatalogError),
    /// The request itself is wrong (a bad filter, an unknown column).
    Api(ApiError),
}

impl From<CatalogError> for PlanError {
    fn from(e: CatalogError) -> Self {
        Self::Catalog(e)
    }
}

impl From<ApiError> for PlanError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<datafusion::error::DataFusionError> for PlanError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Api(crate::api::datafusion_error(e))
    }
}

impl PlanError {
    /// What the reader is told (the query log's outcome is [`PlanFailure::outcome`]).
    fn into_api_error(self) -> ApiError {
        match self {
            Self::Catalog(e) => ApiError::from(e),
            Self::Api(e) => e,
        }
    }
}

/// A planning failure of some path, as the query log records it. Each protocol plans with
/// its own error type (the PostgreSQL endpoint keeps its SQLSTATE codes) and the door
/// only needs to know how it ended.
pub trait PlanFailure: std::fmt::Display {
    /// The query log's outcome for it.
    fn outcome(&self) -> QueryOutcome;
}

impl PlanFailure for PlanError {
    fn outcome(&self) -> QueryOutcome {
        match self {
            Self::Catalog(e) => outcome_of(e),
            Self::Api(e) if e.status().is_client_error() => QueryOutcome::Refused,
            Self::Api(_) => QueryOutcome::Failed,
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Catalog(e) => write!(f, "{e}"),
            Self::Api(e) => write!(f, "{}", e.detail()),
        }
    }
}

/// Why a read did not start. Each protocol answers these in its own terms (HTTP status,
/// SQLSTATE, gRPC status).
#[derive(Debug)]
pub enum ReadError<E> {
    /// The gate is full: try again later.
    Busy(crate::query::Busy),
    /// Planning ran past the time limit (in seconds).
    TimedOut(u64),
    /// The client cancelled it or went away while it was planned.
    Cancelled(String),
    /// The path could not plan it.
    Plan(E),
    /// Its plan could not start.
    Execute(CatalogError),
}

impl<E: PlanFailure> ReadError<E> {
    /// How the query log records it.
    fn logged(&self) -> (QueryOutcome, String) {
        match self {
            Self::Busy(busy) => (QueryOutcome::Refused, busy.message.clone()),
            Self::TimedOut(secs) => (
                QueryOutcome::TimedOut,
                ApiError::timeout(*secs).detail().to_string(),
            ),
            Self::Cancelled(reason) => (QueryOutcome::Cancelled, reason.clone()),
            Self::Plan(e) => (e.outcome(), e.to_string()),
            Self::Execute(e) => (outcome_of(e), e.to_string()),
        }
    }
}

impl From<ReadError<PlanError>> for ApiError {
    fn from(error: ReadError<PlanError>) -> Self {
        match error {
            ReadError::Busy(busy) => busy.into(),
            ReadError::TimedOut(secs) => ApiError::timeout(secs),
            ReadError::Cancelled(reason) => ApiError::unavailable(reason),
            ReadError::Plan(e) => e.into_api_error(),
            ReadError::Execute(e) => e.into(),
        }
    }
}

/// What a protocol adds to a read: its own time limit (PostgreSQL's `statement_timeout`),
/// a signal that the client cancelled, and whether the reader wants the row one past the
/// limit (which tells it that the limit cut the rows) or exactly the limit.
#[derive(Default)]
pub struct Controls {
    /// The read's time limit, when not `query.timeout_secs`.
    pub timeout: Option<std::time::Duration>,
    /// Resolves when the client cancels or leaves.
    pub cancel: Option<crate::query::CancelSignal>,
    /// At most the row limit, without the one past it.
    pub exact_limit: bool,
}

/// A read under way: its rows (recorded in the query log when the stream ends or is
/// dropped), when it must be done, and its limit.
pub struct Reading {
    /// The rows, at most `row_limit` + 1 (one past the limit says the limit cut them).
    pub stream: SendableRecordBatchStream,
    /// When the read is stopped.
    pub deadline: Instant,
    /// Rows the reader gets.
    pub row_limit: u64,
    /// The tables read.
    pub tables: Vec<String>,
}

impl ReadDoor {
    /// The door over `catalog` with the configured query limits.
    pub fn new(catalog: Arc<Catalog>, limits: &QueryConfig) -> Self {
        Self(Arc::new(DoorInner {
            catalog,
            gate: QueryGate::new(limits),
            limits: limits.clone(),
        }))
    }

    /// The gate, for the protocols that admit their statements themselves (PostgreSQL,
    /// Flight SQL) and for `/metrics`.
    pub fn gate(&self) -> &QueryGate {
        &self.0.gate
    }

    /// The catalog reads are planned against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.0.catalog
    }

    /// The configured limits.
    pub fn limits(&self) -> &QueryConfig {
        &self.0.limits
    }

    /// Session settings for the plans.
    pub fn settings(&self) -> SessionSettings {
        self.0.limits.session_settings()
    }

    /// Runs one read: admission, planning within the deadline, the row limit, execution on
    /// the query runtime, and one query-log record however it ends.
    pub async fn read<P>(&self, read: Read, plan: P) -> Result<Reading, ApiError>
    where
        P: Future<Output = Result<Planned, PlanError>>,
    {
        Ok(self.read_with(read, Controls::default(), plan).await?)
    }

    /// [`ReadDoor::read`] with a protocol's own controls and planning error: the one path
    /// of every read, HTTP, PostgreSQL and Flight SQL alike.
    pub async fn read_with<P, E>(
        &self,
        read: Read,
        controls: Controls,
        plan: P,
    ) -> Result<Reading, ReadError<E>>
    where
        P: Future<Output = Result<Planned, E>>,
        E: PlanFailure,
    {
        let limits = &self.0.limits;
        let ticket = QueryTicket::new(
            &self.0.catalog.state,
            &read.client_id,
            read.protocol,
            &read.text,
        );
        let (mut ticket, permit) = self
            .0
            .gate
            .admit_ticket(ticket)
            .await
            .map_err(ReadError::Busy)?;
        let row_limit = match read.rows {
            RowLimit::Configured => limits.row_limit,
            RowLimit::AtMost(n) => n.min(limits.row_limit),
            RowLimit::Every => u64::MAX,
        };
        let timeout = controls
            .timeout
            .unwrap_or(std::time::Duration::from_secs(limits.timeout_secs));
        let planning_deadline = Instant::now() + timeout;
        let (deadline, timeout_secs) = match read.rows {
            RowLimit::Every => (Instant::now() + BULK_READ_LIMIT, BULK_READ_LIMIT.as_secs()),
            _ => (planning_deadline, timeout.as_secs()),
        };
        let mut cancel = controls.cancel;
        let planning = tokio::time::timeout_at(planning_deadline, async {
            let planned = plan.await.map_err(ReadError::Plan)?;
            if let Some(ready) = planned.ready {
                return Ok((planned.tables, ready));
            }
            let frame = match row_limit {
                u64::MAX => planned.frame,
                limit if controls.exact_limit => simpul_catalog::limit_rows(planned.frame, limit)
                    .map_err(|e| ReadError::Execute(e.into()))?,
                // One row past the limit tells the reader whether the limit cut the rows.
                limit => simpul_catalog::limit_rows(planned.frame, limit + 1)
                    .map_err(|e| ReadError::Execute(e.into()))?,
            };
            let stream = simpul_catalog::execute(frame)
                .await
                .map_err(ReadError::Execute)?;
            let stream = match planned.then {
                Some(then) => then(stream),
                None => stream,
            };
            Ok::<_, ReadError<E>>((planned.tables, stream))
        });
        let started = match cancel.as_mut() {
            Some(signal) => tokio::select! {
                started = planning => started,
                reason = signal => Ok(Err(ReadError::Cancelled(reason))),
            },
            None => planning.await,
        };
        let (tables, stream) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let (outcome, detail) = e.logged();
                ticket.finish(outcome, Some(detail));
                return Err(e);
            }
            Err(_) => {
                let e = ReadError::TimedOut(timeout.as_secs());
                let (outcome, detail) = e.logged();
                ticket.finish(outcome, Some(detail));
                return Err(e);
            }
        };
        ticket.reads(tables.clone());
        let stream = ticket.stream(
            stream,
            StreamLimits {
                deadline,
                timeout_secs,
                row_limit,
                cancel,
                permit: Some(permit),
            },
        );
        Ok(Reading {
            stream,
            deadline,
            row_limit,
            tables,
        })
    }

    /// Records a read that is not a lake query, such as Open311's listing of the complaints
    /// module's own records, in the query log, as every read is: who, what and how many rows.
    pub fn record(&self, read: &Read, tables: Vec<String>, rows: u64) {
        let mut ticket = QueryTicket::new(
            &self.0.catalog.state,
            &read.client_id,
            read.protocol,
            &read.text,
        );
        ticket.reads(tables);
        ticket.answered(rows);
    }

    /// Records a read that ended before it was admitted, such as a statement the
    /// PostgreSQL endpoint could not prepare: who, what, and why.
    pub fn record_unrun(&self, read: &Read, outcome: QueryOutcome, detail: String) {
        QueryTicket::new(
            &self.0.catalog.state,
            &read.client_id,
            read.protocol,
            &read.text,
        )
        .finish(outcome, Some(detail));
    }

    /// Runs one read and collects its rows as JSON objects, for the modules' small reads
    /// (KPIs, look-ups). At most the row limit is kept; the stream still runs on the query
    /// runtime and is recorded.
    pub async fn rows<P>(&self, read: Read, plan: P) -> Result<Vec<Map<String, Value>>, ApiError>
    where
        P: Future<Output = Result<Planned, PlanError>>,
    {
        let mut reading = self.read(read, plan).await?;
        let mut batches = Vec::new();
        let mut rows = 0u64;
        while let Some(batch) = reading.stream.next().await {
            let batch = batch.map_err(crate::api::datafusion_error)?;
            rows += batch.num_rows() as u64;
            batches.push(batch);
            if rows > reading.row_limit {
                break;
            }
        }
        let rows = crate::modules::json_rows(&batches).map_err(ApiError::internal)?;
        Ok(rows
            .into_iter()
            .take(usize::try_from(reading.row_limit).unwrap_or(usize::MAX))
            .collect())
    }

    /// Plans `sql` for `access` with `params` bound: the plan of a SQL read.
    pub async fn plan_sql(
        &self,
        sql: &str,
        params: Option<datafusion::common::ParamValues>,
        access: &simpul_catalog::SqlAccess,
    ) -> Result<Planned, PlanError> {
        let planned = self
            .0
            .catalog
            .plan_read_query(sql, &self.settings(), access)
            .await?;
        let frame = match params {
            Some(params) => planned.frame.with_param_values(params)?,
            None => planned.frame,
        };
        Ok(Planned::of(frame, planned.tables))
    }
}
