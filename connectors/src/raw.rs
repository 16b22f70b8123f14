use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use simpul_schemas::{RejectedRow, SourcePosition};

/// A batch of records as the source gave them, before typing.
#[derive(Debug)]
pub struct RawBatch {
    /// Text columns for untyped formats (CSV, JSON), typed columns for Parquet. Column names are
    /// already normalized (`simpul_schemas::normalize_column_name`).
    pub batch: RecordBatch,
    /// Where each row of `batch` came from.
    pub positions: Vec<SourcePosition>,
    /// Records that could not be parsed at all (wrong field count, invalid UTF-8, bad JSON).
    pub malformed: Vec<RejectedRow>,
}

impl RawBatch {
    /// Records this batch accounts for: parsed rows plus malformed ones.
    pub fn records_read(&self) -> u64 {
        (self.batch.num_rows() + self.malformed.len()) as u64
    }
}

/// A source of raw batches that reports how far it has read.
pub trait RawBatchReader: Iterator<Item = Result<RawBatch, SourceError>> + Send {
    /// The input's column names in source order, after normalization.
    fn columns(&self) -> Vec<String>;
    /// A handle to watch reading progress from another thread.
    fn progress(&self) -> ReadProgress;
    /// Whether a record may leave columns out (JSON objects omit nulls; CSV rows cannot).
    fn omits_null_columns(&self) -> bool {
        false
    }
    /// The state to resume from once every batch was read and committed; `None` for inputs
    /// that are read whole every time.
    fn checkpoint(&self) -> Option<serde_json::Value> {
        None
    }
    /// Bytes of input read so far.
    fn bytes_read(&self) -> u64 {
        self.progress().read()
    }
}

/// Bytes read so far out of the input's total, shared with a progress bar.
#[derive(Debug, Clone, Default)]
pub struct ReadProgress {
    read: Arc<AtomicU64>,
    total: u64,
}

impl ReadProgress {
    /// Progress for an input of `total` bytes.
    pub fn new(total: u64) -> Self {
        Self {
            read: Arc::new(AtomicU64::new(0)),
            total,
        }
    }

    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The input's size in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub(crate) fn add(&self, bytes: u64) {
        self.read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, bytes: u64) {
        self.read.store(bytes, Ordering::Relaxed);
    }
}

/// Why a source could not be read at all. Per-record problems are not errors: they become
/// malformed records in the batch.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The input.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input is not in the expected format as a whole.
    #[error("{path} is not valid {format}: {reason}")]
    Format {
        /// The input.
        path: String,
        /// The format it was read as.
        format: &'static str,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// A source's settings cannot work.
    #[error("connector {connector}: {reason}")]
    Config {
        /// The connector's name.
        connector: String,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// An HTTP source answered with an error status.
    #[error("{url} answered HTTP {status}: {reason}")]
    Http {
        /// The request's URL, without credentials.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        reason: String,
    },
    /// An HTTP source could not be reached or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The request's URL, without credentials.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An HTTP source answered, but not with what its configuration expects.
    #[error("{url}: {reason}")]
    Api {
        /// The request's URL, without credentials.
        url: String,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// A request kept failing after every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    Retried {
        /// Attempts made, the first included.
        attempts: u32,
        /// The last attempt's error.
        last: Box<SourceError>,
    },
    /// A pipeline's transform could not be applied to a batch.
    #[error("the pipeline's transform failed: {0}")]
    Transform(String),
    /// Building Arrow data failed.
    #[error("cannot build Arrow data from {path}: {source}")]
    Arrow {
        /// The input.
        path: String,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
}

impl SourceError {
    /// This error as the last of `attempts` failed attempts.
    pub(crate) fn after_attempts(self, attempts: u32) -> Self {
        Self::Retried {
            attempts,
            last: Box::new(self),
        }
    }
}
