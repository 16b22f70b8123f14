//! Query governance shared by every SQL protocol: admission (a concurrency limit with a
//! bounded queue), the per-query deadline and cancellation, and the query log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream};
use simpul_catalog::{QueryOutcome, QueryRecord, StateStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::QueryConfig;

/// Admits queries: at most `max_concurrent` run, at most `max_queued` wait.
#[derive(Debug)]
pub struct QueryGate {
    running: Arc<Semaphore>,
    slots: usize,
    waiting: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
}

/// Why a query was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// What to tell the client.
    pub message: String,
    /// When to try again, in seconds.
    pub retry_after_secs: u64,
}

impl QueryGate {
    /// A gate with the configured limits.
    pub fn new(config: &QueryConfig) -> Self {
        Self {
            running: Arc::new(Semaphore::new(config.max_concurrent)),
            slots: config.max_concurrent,
            waiting: AtomicUsize::new(0),
            max_queued: config.max_queued,
            queue_timeout: Duration::from_secs(config.queue_timeout_secs),
        }
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.slots - self.running.available_permits()
    }

    /// Queries waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Admits `ticket`'s query; a refusal is recorded in the query log before it returns.
    pub async fn admit_ticket(
        &self,
        ticket: QueryTicket,
    ) -> Result<(QueryTicket, OwnedSemaphorePermit), Busy> {
        match self.admit().await {
            Ok(permit) => Ok((ticket, permit)),
            Err(busy) => {
                ticket.finish(QueryOutcome::Refused, Some(busy.message.clone()));
                Err(busy)
            }
        }
    }

    /// Waits for a slot, or refuses at once when the queue is full, or after the queue
    /// timeout.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if waiting >= self.max_queued {
            return Err(Busy {
                message: format!(
                    "the hub is running as many queries as it allows and {waiting} more are \
                     waiting (query.max_concurrent, query.max_queued); try again shortly"
                ),
                retry_after_secs: 1,
            });
        }
        match tokio::time::timeout(self.queue_timeout, self.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy {
                message: format!(
                    "no query slot became free within {} s (query.queue_timeout_secs); try again \
                     shortly",
                    self.queue_timeout.as_secs()
                ),
                retry_after_secs: self.queue_timeout.as_secs().clamp(1, 30),
            }),
        }
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a query that failed before it ran is recorded: statements that are not allowed (a
/// write, bad syntax) are refused, anything else failed.
pub fn outcome_of(error: &simpul_catalog::CatalogError) -> QueryOutcome {
    use simpul_catalog::CatalogError as E;
    match error {
        E::ReadOnly(_) | E::SqlSyntax(_) => QueryOutcome::Refused,
        _ => QueryOutcome::Failed,
    }
}

/// One query from receipt to its last row: what the query log records about it.
#[derive(Debug)]
pub struct QueryTicket {
    state: StateStore,
    at: DateTime<Utc>,
    started: Instant,
    client_id: String,
    protocol: &'static str,
    sql: String,
    tables: Vec<String>,
}

impl QueryTicket {
    /// Starts the record of a query.
    pub fn new(state: &StateStore, client_id: &str, protocol: &'static str, sql: &str) -> Self {
        Self {
            state: state.clone(),
            at: Utc::now(),
            started: Instant::now(),
            client_id: client_id.to_string(),
            protocol,
            sql: sql.to_string(),
            tables: Vec::new(),
        }
    }

    /// Notes the tables the plan reads.
    pub fn reads(&mut self, tables: Vec<String>) {
        self.tables = tables;
    }

    /// Records a query that ended before any row was streamed.
    pub fn finish(self, outcome: QueryOutcome, error: Option<String>) {
        self.record(0, 0, outcome, error);
    }

    /// Records a read that answered `rows` rows without streaming them (a module's own
    /// records).
    pub fn answered(self, rows: u64) {
        self.record(rows, 0, QueryOutcome::Succeeded, None);
    }

    fn record(self, rows: u64, bytes: u64, outcome: QueryOutcome, error: Option<String>) {
        crate::metrics::sql_query(self.protocol, outcome.as_str());
        let record = QueryRecord {
            at: self.at,
            client_id: self.client_id,
            protocol: self.protocol.to_string(),
            sql: self.sql,
            tables: self.tables,
            rows,
            bytes,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            outcome,
            error,
        };
        let state = self.state;
        let write = async move {
            if let Err(e) = state.record_query(&record).await {
                tracing::error!(error = %e, client = %record.client_id, "cannot write the query log");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(write);
            }
            Err(_) => tracing::error!("no runtime to write the query log on"),
        }
    }

    /// Wraps a running query's batches: the stream stops with an error at `deadline` or when
    /// `cancel` fires, holds the admission `permit` until it ends, and records the query
    /// when dropped. A stream dropped after more than `row_limit` rows was cut by the
    /// limit, which counts as success.
    pub fn stream(
        self,
        inner: SendableRecordBatchStream,
        limits: StreamLimits,
    ) -> SendableRecordBatchStream {
        let deadline = Box::pin(tokio::time::sleep_until(limits.deadline));
        Box::pin(RecordedStream {
            schema: inner.schema(),
            inner: Some(inner),
            ticket: Some(self),
            deadline,
            timeout_secs: limits.timeout_secs,
            cancel: limits.cancel,
            row_limit: limits.row_limit,
            rows: 0,
            bytes: 0,
            ended: None,
            _permit: limits.permit,
        })
    }
}

/// Resolves, with the reason, when a query must stop for its client.
pub type CancelSignal = Pin<Box<dyn Future<Output = String> + Send>>;

/// What bounds a streamed query.
pub struct StreamLimits {
    /// When the query is stopped.
    pub deadline: Instant,
    /// The configured timeout, for the message.
    pub timeout_secs: u64,
    /// Rows after which the client stops reading on purpose.
    pub row_limit: u64,
    /// Resolves, with the reason, when the client cancels the query or goes away.
    pub cancel: Option<CancelSignal>,
    /// The admission slot, released when the stream ends.
    pub permit: Option<OwnedSemaphorePermit>,
}

impl StreamLimits {
    /// The configured time and row limits, holding `permit`, with no cancel signal.
    pub fn configured(
        config: &QueryConfig,
        deadline: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            deadline,
            timeout_secs: config.timeout_secs,
            row_limit: config.row_limit,
            cancel: None,
            permit: Some(permit),
        }
    }
}

struct RecordedStream {
    schema: SchemaRef,
    inner: Option<SendableRecordBatchStream>,
    ticket: Option<QueryTicket>,
    deadline: Pin<Box<Sleep>>,
    timeout_secs: u64,
    cancel: Option<CancelSignal>,
    row_limit: u64,
    rows: u64,
    bytes: u64,
    ended: Option<(QueryOutcome, Option<String>)>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The error a stream ends with when its query was stopped (cancelled or timed out), so
/// protocols can answer with their own code for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryStopped {
    /// Why: [`QueryOutcome::Cancelled`] or [`QueryOutcome::TimedOut`].
    pub outcome: QueryOutcome,
    /// What the client is told.
    pub message: String,
}

impl QueryStopped {
    /// The stop behind a query error, if the query was stopped.
    pub fn behind(error: &DataFusionError) -> Option<&QueryStopped> {
        match error.find_root() {
            DataFusionError::External(e) => e.downcast_ref::<QueryStopped>(),
            _ => None,
        }
    }
}

impl RecordedStream {
    /// Ends the stream early: the query is dropped at once, so its memory returns.
    fn stop(
        &mut self,
        outcome: QueryOutcome,
        message: String,
    ) -> Poll<Option<DfResult<RecordBatch>>> {
        self.inner = None;
        self.ended = Some((outcome, Some(message.clone())));
        Poll::Ready(Some(Err(DataFusionError::External(Box::new(
            QueryStopped { outcome, message },
        )))))
    }
}

impl Stream for RecordedStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.inner.is_none() {
            return Poll::Ready(None);
        }
        if let Some(cancel) = this.cancel.as_mut()
            && let Poll::Ready(reason) = cancel.poll_unpin(cx)
        {
            return this.stop(QueryOutcome::Cancelled, reason);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the query ran past its time limit of {} s (query.timeout_secs or the \
                 session's statement_timeout)",
                this.timeout_secs
            );
            return this.stop(QueryOutcome::TimedOut, message);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                this.rows += batch.num_rows() as u64;
                this.bytes += batch.get_array_memory_size() as u64;
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => {
                let message = e.find_root().to_string();
                this.inner = None;
                this.ended = Some((QueryOutcome::Failed, Some(message)));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.ended = Some((QueryOutcome::Succeeded, None));
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl RecordBatchStream for RecordedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for RecordedStream {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let (outcome, error) = match self.ended.take() {
            Some(ended) => ended,
            None if self.rows > self.row_limit => (QueryOutcome::Succeeded, None),
            None => (
                QueryOutcome::Cancelled,
                Some("the client stopped reading before the last row".into()),
            ),
        };
        let rows = self.rows.min(self.row_limit);
        ticket.record(rows, self.bytes, outcome, error);
    }
}
