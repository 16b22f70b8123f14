//! The source model, after the Airbyte protocol: a source describes its configuration
//! (`spec`), tests its connection (`check`), lists its streams (`discover`) and reads one
//! stream from a saved state (`read`), giving raw batches and state checkpoints.

use std::future::Future;

use arrow::datatypes::SchemaRef;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;

use crate::raw::{RawBatch, SourceError};

/// One stream a source offers, with the columns found in a sample of it.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream's name, as `read` takes it.
    pub name: String,
    /// The Arrow schema inferred from the first records.
    pub schema: SchemaRef,
    /// Whether the stream can be read from a cursor (only new records).
    pub incremental: bool,
}

/// What reading a stream yields, in order.
#[derive(Debug)]
pub enum ReadEvent {
    /// Records as the source gave them.
    Batch(RawBatch),
    /// The state to resume from once every batch before it is committed.
    Checkpoint(serde_json::Value),
}

/// What a source says about the data it serves, for the catalog (CKAN's `package_show`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMetadata {
    /// The dataset's title at the source.
    pub title: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// The organization that publishes it.
    pub publisher: Option<String>,
    /// Its licence.
    pub license: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A source of records.
pub trait Source: Send + Sync {
    /// A JSON Schema of the source's configuration.
    fn spec(&self) -> serde_json::Value;

    /// Tests the connection and the credentials; the error says what is wrong in plain words.
    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>>;

    /// The streams the source offers.
    fn discover(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>>;

    /// The stream a pipeline reads when it names none.
    fn default_stream(&self) -> &'static str {
        "records"
    }

    /// What the source says about its data, when it says anything (most sources do not).
    fn metadata(&self) -> BoxFuture<'_, Result<Option<SourceMetadata>, SourceError>> {
        Box::pin(async { Ok(None) })
    }

    /// Reads `stream` from `state` (as a checkpoint gave it; `None` for everything).
    fn read(
        &self,
        stream: &str,
        state: Option<serde_json::Value>,
    ) -> BoxStream<'_, Result<ReadEvent, SourceError>>;
}

/// Where a source's reading future sends its events.
pub(crate) type EventSender = mpsc::Sender<Result<ReadEvent, SourceError>>;

/// The stream of events `produce` sends, two ahead of the reader. The future runs as the stream
/// is polled, alongside the events it sends; an error it returns is the stream's last item.
pub(crate) fn event_stream<'a, F, Fut>(produce: F) -> BoxStream<'a, Result<ReadEvent, SourceError>>
where
    F: FnOnce(EventSender) -> Fut,
    Fut: Future<Output = Result<(), SourceError>> + Send + 'a,
{
    let (tx, mut rx) = mpsc::channel(2);
    let errors = tx.clone();
    let run = produce(tx).map(move |outcome| async move {
        if let Err(error) = outcome {
            // The reader may be gone already; then nobody waits for the error.
            let _ = errors.send(Err(error)).await;
        }
    });
    let run = run.flatten();
    let events = stream::poll_fn(move |cx| rx.poll_recv(cx));
    stream::select(run.into_stream().filter_map(|()| async { None }), events).boxed()
}

/// The one-item stream that refuses a stream name the source does not have.
pub(crate) fn unknown_stream<'a>(
    connector: &str,
    asked: &str,
    only: &str,
) -> BoxStream<'a, Result<ReadEvent, SourceError>> {
    let error = SourceError::Config {
        connector: connector.to_string(),
        reason: format!("has no stream '{asked}'; its only stream is '{only}'"),
    };
    stream::once(async { Err(error) }).boxed()
}
