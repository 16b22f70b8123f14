//! The source model, after the Airbyte protocol: a source describes its configuration
//! (`spec`), tests its connection (`check`), lists its streams (`discover`) and reads one
//! stream from a saved state (`read`), giving raw batches and state checkpoints.

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

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
