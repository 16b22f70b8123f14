use std::io::Read;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;

use super::{normalized_schema, typed_raw_batch};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// Reads an Arrow IPC stream as typed batches, renaming columns to normalized names.
/// Positions are row numbers, 1-based.
pub(super) struct ArrowIpcReader<R: Read> {
    path: String,
    source: Arc<str>,
    reader: StreamReader<R>,
    schema: Arc<Schema>,
    rows_read: u64,
    progress: ReadProgress,
}

impl<R: Read> ArrowIpcReader<R> {
    pub(super) fn new(path: String, input: R, progress: ReadProgress) -> Result<Self, SourceError> {
        let reader = StreamReader::try_new(input, None).map_err(|e| SourceError::Format {
            path: path.clone(),
            format: "Arrow IPC stream",
            reason: e.to_string(),
        })?;
        let source_schema = reader.schema();
        let schema = normalized_schema(&source_schema);
        Ok(Self {
            source: path.as_str().into(),
            path,
            reader,
            schema,
            rows_read: 0,
            progress,
        })
    }
}

impl<R: Read> Iterator for ArrowIpcReader<R> {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => {
                return Some(Err(SourceError::Format {
                    path: self.path.clone(),
                    format: "Arrow IPC stream",
                    reason: e.to_string(),
                }));
            }
        };
        let first = self.rows_read + 1;
        self.rows_read += batch.num_rows() as u64;
        Some(typed_raw_batch(
            &self.schema,
            &batch,
            &self.source,
            &self.path,
            first,
        ))
    }
}

impl<R: Read + Send> RawBatchReader for ArrowIpcReader<R> {
    fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }
}
