//! Records already in memory (a module's state-store rows as JSON objects) as a raw batch
//! reader, so that they are validated and committed like any input without being written
//! out as text and parsed back.

use std::sync::Arc;

use serde_json::{Map, Value};
use simpul_schemas::SourcePosition;

use crate::file::{BATCH_ROWS, objects_batch};
use crate::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// JSON objects, read in batches of [`BATCH_ROWS`]; each row's position is its 1-based
/// index in the list.
pub struct RecordsReader {
    origin: Arc<str>,
    columns: Vec<String>,
    records: std::vec::IntoIter<Map<String, Value>>,
    read: u64,
    progress: ReadProgress,
}

impl RecordsReader {
    /// A reader over `records`, named `origin` in rejects and errors. `columns` are the
    /// input's columns when there are no records to tell them (an empty table to create);
    /// otherwise the records' keys are.
    pub fn new(origin: &str, columns: Vec<String>, records: Vec<Map<String, Value>>) -> Self {
        let progress = ReadProgress::new(records.len() as u64);
        Self {
            origin: Arc::from(origin),
            columns,
            records: records.into_iter(),
            read: 0,
            progress,
        }
    }
}

impl Iterator for RecordsReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let objects: Vec<Map<String, Value>> = self.records.by_ref().take(BATCH_ROWS).collect();
        if objects.is_empty() {
            return None;
        }
        let first = self.read + 1;
        self.read += objects.len() as u64;
        self.progress.set(self.read);
        let positions = (first..=self.read)
            .map(|line| SourcePosition {
                source: self.origin.clone(),
                line,
            })
            .collect();
        Some(
            objects_batch(&objects)
                .map(|batch| {
                    if self.columns.is_empty() {
                        self.columns = batch
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.name().clone())
                            .collect();
                    }
                    RawBatch {
                        batch,
                        positions,
                        malformed: Vec::new(),
                    }
                })
                .map_err(|source| SourceError::Arrow {
                    path: self.origin.to_string(),
                    source,
                }),
        )
    }
}

impl RawBatchReader for RecordsReader {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }

    fn omits_null_columns(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_as_json_text_columns_in_batches_with_their_positions() {
        let records: Vec<Map<String, Value>> = (0..BATCH_ROWS + 2)
            .map(|i| {
                let mut object = Map::new();
                object.insert("Kode".into(), Value::from(format!("K{i}")));
                if i % 2 == 0 {
                    object.insert("jumlah".into(), Value::from(i));
                }
                object
            })
            .collect();
        let mut reader = RecordsReader::new("semar export", Vec::new(), records);
        let first = reader.next().unwrap().unwrap();
        assert_eq!(first.batch.num_rows(), BATCH_ROWS);
        assert_eq!(reader.columns(), vec!["kode", "jumlah"]);
        let kode = arrow::array::AsArray::as_string::<i32>(first.batch.column(0));
        assert_eq!(kode.value(1), "\"K1\"");
        let second = reader.next().unwrap().unwrap();
        assert_eq!(second.batch.num_rows(), 2);
        assert_eq!(second.positions[1].line, (BATCH_ROWS + 2) as u64);
        assert!(reader.next().is_none());
        assert_eq!(reader.progress().read(), (BATCH_ROWS + 2) as u64);
    }
}
