//! Operational monitoring: every HTTP call becomes an `OpmonRecord` (X-Road's op-monitoring
//! fields), written by a background task in batches and readable by admins as `simpul.opmon`.
//!
//! The record is sent when the response body has ended (or was dropped), so
//! `response_out_ts` and `response_size` are those of the bytes that really left. Calls never
//! wait for the state store: records go through a bounded channel, and when it is full (the
//! store far behind) a record is dropped and counted in `simpul_opmon_dropped_total`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use futures::FutureExt;
use http_body::{Frame, SizeHint};
use simpul_catalog::{ApiClient, OpmonRecord, StateStore};
use tokio::sync::mpsc;

use crate::server::AppState;

/// Records waiting for the writer, at most.
const QUEUE: usize = 10_000;
/// Records per transaction, at most.
const BATCH: usize = 500;
/// How long the writer waits for more records before storing a batch.
const GATHER: Duration = Duration::from_millis(100);

/// Where the `Caller` extractor leaves the authenticated client for the record.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<Option<ApiClient>>>);

impl CallerSlot {
    /// Notes the authenticated client of this call.
    pub fn set(&self, client: &ApiClient) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(client.clone());
        }
    }

    fn take(&self) -> Option<ApiClient> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The sending side of the record queue.
#[derive(Debug, Clone)]
pub struct Recorder(mpsc::Sender<OpmonRecord>);

impl Recorder {
    /// Starts the writer task on the current runtime.
    pub fn start(state: StateStore) -> Self {
        let (tx, mut rx) = mpsc::channel::<OpmonRecord>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // Under load, gather what arrives in the next moment too: one transaction
                // per gathering instead of one per call.
                if batch.len() < BATCH {
                    tokio::time::sleep(GATHER).await;
                    let room = BATCH - batch.len();
                    let _ = rx.recv_many(&mut batch, room).now_or_never();
                }
                if let Err(e) = state.insert_opmon(&batch).await {
                    tracing::warn!(error = %e, records = batch.len(), "cannot store op-monitoring records");
                    metrics::counter!("simpul_opmon_dropped_total").increment(batch.len() as u64);
                }
                batch.clear();
            }
        });
        Self(tx)
    }

    fn send(&self, record: OpmonRecord) {
        if self.0.try_send(record).is_err() {
            metrics::counter!("simpul_opmon_dropped_total").increment(1);
        }
    }
}

/// The middleware: notes the request, and hands the response body a guard that sends the
/// record when the body ends.
pub async fn record(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_in_ts = Utc::now();
    let service = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let request_size = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let pending = Pending {
        recorder: app.opmon.clone(),
        slot,
        record: Some(OpmonRecord {
            request_in_ts,
            response_out_ts: request_in_ts,
            client_id: None,
            member: None,
            subsystem: None,
            service,
            method,
            path,
            request_size,
            response_size: 0,
            succeeded: status < 400,
            status,
        }),
        whole: false,
    };
    response.map(|body| {
        Body::new(CountedBody {
            inner: body,
            pending,
        })
    })
}

/// The record of one call, sent once when its body ends or is dropped.
struct Pending {
    recorder: Recorder,
    slot: CallerSlot,
    record: Option<OpmonRecord>,
    whole: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.response_out_ts = Utc::now();
        record.succeeded = record.succeeded && self.whole;
        if let Some(client) = self.slot.take() {
            record.client_id = Some(client.id);
            record.member = Some(client.member);
            record.subsystem = Some(client.subsystem);
        }
        self.recorder.send(record);
    }
}

struct CountedBody {
    inner: Body,
    pending: Pending,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), self.pending.record.as_mut())
                {
                    record.response_size += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.pending.whole = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        // A body the server never had to poll (empty, or a known end) was sent whole.
        self.pending.whole |= http_body::Body::is_end_stream(&self.inner);
    }
}
