//! Query execution on its own threads.
//!
//! DataFusion operators are CPU-bound and may hold a thread for a long time. Running them on
//! the runtime that serves HTTP would let one heavy query starve health checks, timeouts and
//! every other request. Queries therefore run on a dedicated runtime and hand their batches
//! to the caller through a small channel; dropping the stream aborts the query.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::prelude::DataFrame;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::CatalogError;

/// Batches buffered between the query and its consumer: enough to overlap work, small
/// enough that a slow client holds back the query instead of filling memory.
const BUFFERED_BATCHES: usize = 2;

static QUERY_RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("simpul-query")
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the query runtime: {e}"))
});

/// Plans and runs a query on the query runtime and streams its batches back.
/// Text columns leave as `Utf8` whatever the plan read them as (see [`crate::plain_text`]).
pub async fn execute(frame: DataFrame) -> Result<SendableRecordBatchStream, CatalogError> {
    let frame = crate::plain_text(frame)?;
    let runtime = QUERY_RUNTIME
        .as_ref()
        .map_err(|e| CatalogError::Config(e.clone()))?;
    let (schema_tx, schema_rx) = oneshot::channel::<DfResult<SchemaRef>>();
    let (batch_tx, batch_rx) = mpsc::channel(BUFFERED_BATCHES);
    let task = runtime.spawn(async move {
        let task_ctx = Arc::new(frame.task_ctx());
        let plan = match frame.create_physical_plan().await {
            Ok(plan) => plan,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        let _ = schema_tx.send(Ok(plan.schema()));
        let mut stream = match datafusion::physical_plan::execute_stream(plan, task_ctx) {
            Ok(stream) => stream,
            Err(e) => {
                let _ = batch_tx.send(Err(e)).await;
                return;
            }
        };
        while let Some(batch) = stream.next().await {
            if batch_tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    let abort = AbortOnDrop(task);
    let schema = schema_rx.await.map_err(|_| {
        DataFusionError::Execution("the query stopped before it was planned".into())
    })??;
    Ok(Box::pin(ChannelStream {
        schema,
        batches: batch_rx,
        _query: abort,
    }))
}

/// Aborts the query task when the stream is dropped (the client went away).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ChannelStream {
    schema: SchemaRef,
    batches: mpsc::Receiver<DfResult<RecordBatch>>,
    _query: AbortOnDrop,
}

impl Stream for ChannelStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.batches.poll_recv(cx)
    }
}

impl RecordBatchStream for ChannelStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
