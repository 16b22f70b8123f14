//! Streaming a change-feed read: NDJSON rows (each with `_change_type`, `_commit_version`
//! and `_commit_timestamp`) ending with one `{"_seal": …}` line that the hub signs over the
//! SHA-256 of every line before it, or an Arrow IPC stream for bulk readers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use http_body::Frame;
use sha2::{Digest, Sha256};
use simpul_catalog::{DatasetId, FeedSeal, MessageEntry, Signature, Signed, SqlAccess};
use tokio::sync::mpsc;

use crate::api::ApiError;
use crate::read::{Planned, Read, RowLimit};
use crate::server::AppState;

/// Header: the last version the read covers; the next read's `since_version`.
pub const TO_VERSION_HEADER: &str = "simpul-to-version";

/// How a change feed is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// One JSON object per line, then the signed seal line.
    Ndjson,
    /// An Arrow IPC stream (unsigned; the version range is in the headers).
    Arrow,
}

impl FeedFormat {
    /// `ndjson` or `arrow`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "arrow" => Some(Self::Arrow),
            _ => None,
        }
    }

    /// Arrow when the client asks for it, NDJSON otherwise.
    pub fn from_accept(accept: Option<&HeaderValue>) -> Self {
        match accept.and_then(|a| a.to_str().ok()) {
            Some(a) if a.contains("application/vnd.apache.arrow.stream") => Self::Arrow,
            _ => Self::Ndjson,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// A change-feed read through the read door: its rows and the last version they cover.
pub struct FeedRows {
    /// The last version covered; the next read's `since_version`.
    pub to_version: i64,
    /// The rows, in commit order, recorded in the query log when they end.
    pub rows: SendableRecordBatchStream,
}

/// Reads the rows of `dataset` committed after `since_version` (at most `max_versions`
/// commits of them) as `access` may see them, through the read door as `protocol`.
pub async fn read(
    app: &AppState,
    access: &SqlAccess,
    protocol: &'static str,
    dataset: &DatasetId,
    since_version: i64,
    max_versions: Option<i64>,
) -> Result<FeedRows, ApiError> {
    let read = Read {
        client_id: access.client_id.clone(),
        protocol,
        text: format!(
            "changes of {dataset} since_version={since_version}{}",
            max_versions.map_or(String::new(), |n| format!(" max_versions={n}"))
        ),
        rows: RowLimit::Every,
    };
    let mut to_version = since_version;
    let reading = app
        .reads
        .read(read, async {
            let feed = app
                .catalog
                .changes(
                    dataset,
                    access,
                    since_version,
                    max_versions,
                    &app.session_settings(),
                )
                .await?;
            to_version = feed.to_version;
            let frame = match feed.frame {
                Some(frame) => frame,
                // No version is newer: a plan of no rows, still read (and logged).
                None => datafusion::prelude::DataFrame::new(
                    datafusion::prelude::SessionContext::new().state(),
                    datafusion::logical_expr::LogicalPlanBuilder::empty(false).build()?,
                ),
            };
            Ok(Planned::of(
                frame,
                vec![format!(
                    "{dataset}@v{}..v{}",
                    feed.from_version, feed.to_version
                )],
            ))
        })
        .await?;
    Ok(FeedRows {
        to_version,
        rows: reading.stream,
    })
}

/// Streams `feed` and logs the exchange once the body ended.
pub fn respond(
    app: &AppState,
    dataset: &DatasetId,
    since_version: i64,
    feed: FeedRows,
    format: FeedFormat,
    mut entry: MessageEntry,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let app = app.clone();
    let to_version = feed.to_version;
    let mut seal = FeedSeal {
        dataset: dataset.to_string(),
        since_version,
        to_version: feed.to_version,
        rows: 0,
        sha256: String::new(),
        signature: Signature {
            key_id: String::new(),
            signature: String::new(),
        },
    };
    tokio::spawn(async move {
        let mut sent: u64 = 0;
        let outcome = stream_rows(feed, format, &tx, &mut seal, &mut sent).await;
        if format == FeedFormat::Ndjson && outcome.is_ok() {
            seal.sign(&app.signer);
            let line = format!("{}\n", serde_json::json!({ "_seal": seal }));
            sent += line.len() as u64;
            let _ = tx.send(Ok(Frame::data(Bytes::from(line)))).await;
        }
        entry.at = chrono::Utc::now();
        entry.response_bytes = sent;
        entry.payload_sha256 = (!seal.sha256.is_empty()).then(|| seal.sha256.clone());
        entry.detail["rows"] = seal.rows.into();
        if let Err(e) = outcome {
            entry.status = 500;
            entry.detail["error"] = e.clone().into();
            if format == FeedFormat::Ndjson {
                let line = format!("{}\n", serde_json::json!({ "_error": e }));
                let _ = tx.send(Ok(Frame::data(Bytes::from(line)))).await;
            } else {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        }
        app.messagelog.record(entry).await;
    });
    let body = Body::new(http_body_util::StreamBody::new(futures::stream::poll_fn(
        move |cx| rx.poll_recv(cx),
    )));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(TO_VERSION_HEADER, HeaderValue::from(to_version));
    response
}

async fn stream_rows(
    feed: FeedRows,
    format: FeedFormat,
    tx: &mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    seal: &mut FeedSeal,
    sent: &mut u64,
) -> Result<(), String> {
    let mut hasher = Sha256::new();
    let mut arrow_writer = None;
    let mut rows = feed.rows;
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        let bytes = match format {
            FeedFormat::Ndjson => {
                let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
                writer.write(&batch).map_err(|e| e.to_string())?;
                writer.finish().map_err(|e| e.to_string())?;
                writer.into_inner()
            }
            FeedFormat::Arrow => {
                let writer = match &mut arrow_writer {
                    Some(w) => w,
                    None => arrow_writer.insert(
                        arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
                            .map_err(|e| e.to_string())?,
                    ),
                };
                writer.write(&batch).map_err(|e| e.to_string())?;
                std::mem::take(writer.get_mut())
            }
        };
        seal.rows += batch.num_rows() as u64;
        hasher.update(&bytes);
        *sent += bytes.len() as u64;
        if tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_err() {
            return Err("the client went away".into());
        }
    }
    if let Some(mut writer) = arrow_writer {
        writer.finish().map_err(|e| e.to_string())?;
        let bytes = std::mem::take(writer.get_mut());
        *sent += bytes.len() as u64;
        let _ = tx.send(Ok(Frame::data(Bytes::from(bytes)))).await;
    }
    seal.sha256 = hex::encode(hasher.finalize());
    Ok(())
}
