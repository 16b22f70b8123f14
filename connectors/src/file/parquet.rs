use std::sync::Arc;

use arrow::datatypes::Schema;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use super::{BATCH_ROWS, normalized_schema, typed_raw_batch};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// Reads Parquet as typed batches, renaming columns to normalized names. Positions are row
/// numbers, 1-based.
pub(super) struct ParquetReader {
    path: String,
    /// The path as every row's source position shares it.
    source: std::sync::Arc<str>,
    reader: ParquetRecordBatchReader,
    schema: Arc<Schema>,
    rows_read: u64,
    total_rows: u64,
    progress: ReadProgress,
}

impl ParquetReader {
    pub(super) fn new<T: ChunkReader + 'static>(
        path: String,
        file: T,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let format_error = |e: parquet::errors::ParquetError| SourceError::Format {
            path: path.clone(),
            format: "Parquet",
            reason: e.to_string(),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(format_error)?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let source_schema = builder.schema().clone();
        let schema = normalized_schema(&source_schema);
        let reader = builder
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(format_error)?;
        Ok(Self {
            source: path.as_str().into(),
            path,
            reader,
            schema,
            rows_read: 0,
            total_rows,
            progress,
        })
    }
}

impl Iterator for ParquetReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => {
                return Some(Err(SourceError::Format {
                    path: self.path.clone(),
                    format: "Parquet",
                    reason: e.to_string(),
                }));
            }
        };
        let first = self.rows_read + 1;
        self.rows_read += batch.num_rows() as u64;
        if self.total_rows > 0 {
            let fraction = self.rows_read as f64 / self.total_rows as f64;
            self.progress
                .set((fraction * self.progress.total() as f64) as u64);
        }
        Some(typed_raw_batch(
            &self.schema,
            &batch,
            &self.source,
            &self.path,
            first,
        ))
    }
}

impl RawBatchReader for ParquetReader {
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
