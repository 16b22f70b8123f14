use std::io::Read;

use simpul_schemas::{FieldError, RejectedRow, SourcePosition};

use super::csv_scan::{Record, Scanner};
use super::{BATCH_ROWS, TextColumns, text_fields, unique_column_names};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// How a CSV file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field separator, `,` by default.
    pub delimiter: u8,
    /// Quote character, `"` by default.
    pub quote: u8,
    /// Whether the first record names the columns. Without one, columns are `column_1…`.
    pub has_header: bool,
    /// The text encoding when it is not UTF-8 (`windows-1252` for older Excel exports).
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            has_header: true,
            encoding: None,
        }
    }
}

/// Reads CSV into text columns. Values are trimmed; an empty value is null. A record with the
/// wrong number of fields or with bytes that are not UTF-8 is kept as malformed, with its line.
pub(super) struct CsvReader<R: Read> {
    path: String,
    /// The path as every row's source position shares it.
    source: std::sync::Arc<str>,
    scanner: Scanner<R>,
    columns: Vec<String>,
    /// The bytes of text in each column of the last batch, to size the next one's buffers.
    value_bytes: Vec<usize>,
    progress: ReadProgress,
    done: bool,
}

impl<R: Read + Send> CsvReader<R> {
    pub(super) fn new(
        path: String,
        input: R,
        options: CsvOptions,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let mut scanner = Scanner::new(input, options.delimiter, options.quote);
        let first = scanner.next_record().map_err(|e| io_error(&path, e))?;
        let Some(first) = first else {
            return Err(SourceError::Format {
                path,
                format: "CSV",
                reason: "the file is empty; expected a header row".into(),
            });
        };
        let columns = if options.has_header {
            let headers: Vec<String> = first
                .fields()
                .map(|h| String::from_utf8_lossy(h.trim_ascii()).into_owned())
                .collect();
            unique_column_names(headers.iter().map(String::as_str))
        } else {
            let names: Vec<String> = (1..=first.len()).map(|i| format!("column_{i}")).collect();
            scanner.unread();
            names
        };
        Ok(Self {
            source: path.as_str().into(),
            path,
            scanner,
            value_bytes: vec![0; columns.len()],
            columns,
            progress,
            done: false,
        })
    }

    fn read_batch(&mut self) -> Result<RawBatch, SourceError> {
        let mut builders = TextColumns::with_capacity(BATCH_ROWS, &self.value_bytes);
        let mut positions = Vec::with_capacity(BATCH_ROWS);
        let mut malformed = Vec::new();
        while positions.len() < BATCH_ROWS && malformed.len() < BATCH_ROWS {
            let record = match self.scanner.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => return Err(io_error(&self.path, e)),
            };
            let position = SourcePosition {
                source: self.source.clone(),
                line: record.line,
            };
            match check_record(&record, &self.columns) {
                Ok(text) => {
                    for (builder, field) in
                        builders.builders.iter_mut().zip(record.text_fields(text))
                    {
                        match field.trim_ascii() {
                            "" => builder.append_null(),
                            value => builder.append_value(value),
                        }
                    }
                    positions.push(position);
                }
                Err(error) => malformed.push(RejectedRow {
                    position,
                    record: raw_fields(&record),
                    errors: vec![error],
                }),
            }
        }
        self.value_bytes = builders.value_bytes();
        let batch = builders
            .finish(text_fields(&self.columns))
            .map_err(|source| SourceError::Arrow {
                path: self.path.clone(),
                source,
            })?;
        Ok(RawBatch {
            batch,
            positions,
            malformed,
        })
    }
}

/// The record as text, when it has the right number of fields and is UTF-8.
fn check_record<'r>(record: &Record<'r>, columns: &[String]) -> Result<&'r str, FieldError> {
    if record.len() != columns.len() {
        return Err(FieldError::record(
            "fields",
            format!("expected {} fields, found {}", columns.len(), record.len()),
        ));
    }
    if let Ok(text) = std::str::from_utf8(record.raw) {
        return Ok(text);
    }
    // Name the first field that is not UTF-8. Fields are cut at ASCII bytes, so some field
    // is; the record-wide error is only a guard.
    for (value, column) in record.fields().zip(columns) {
        if let Err(e) = std::str::from_utf8(value) {
            return Err(FieldError::field(
                column,
                "encoding",
                format!(
                    "is not valid UTF-8 (bad byte at offset {})",
                    e.valid_up_to()
                ),
            ));
        }
    }
    Err(FieldError::record(
        "encoding",
        "the record is not valid UTF-8",
    ))
}

impl<R: Read + Send> Iterator for CsvReader<R> {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_batch() {
            Ok(batch) if batch.records_read() == 0 => None,
            other => Some(other),
        }
    }
}

impl<R: Read + Send> RawBatchReader for CsvReader<R> {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }
}

fn raw_fields(record: &Record<'_>) -> serde_json::Value {
    record
        .fields()
        .map(|f| serde_json::Value::String(String::from_utf8_lossy(f).into_owned()))
        .collect()
}

fn io_error(path: &str, source: std::io::Error) -> SourceError {
    SourceError::Io {
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;

    use super::*;

    fn read_all(text: &[u8]) -> (Vec<String>, Vec<RawBatch>) {
        let reader = CsvReader::new(
            "t.csv".into(),
            text,
            CsvOptions::default(),
            ReadProgress::new(text.len() as u64),
        )
        .unwrap();
        let columns = reader.columns();
        (columns, reader.collect::<Result<Vec<_>, _>>().unwrap())
    }

    #[test]
    fn strips_the_byte_order_mark_and_normalizes_headers() {
        let (columns, batches) = read_all("\u{feff}Kode,Nama Desa\n32.14,Cibatu\n".as_bytes());
        assert_eq!(columns, vec!["kode", "nama_desa"]);
        assert_eq!(
            batches[0].batch.column(0).as_string::<i32>().value(0),
            "32.14"
        );
    }

    #[test]
    fn keeps_rows_with_the_wrong_field_count_as_malformed_with_their_line() {
        let (_, batches) = read_all(b"a,b\n1,2\n3,4,5\n6\n7,8\n");
        let batch = &batches[0];
        assert_eq!(batch.batch.num_rows(), 2);
        assert_eq!(batch.malformed.len(), 2);
        assert_eq!(batch.malformed[0].position.line, 3);
        assert_eq!(
            batch.malformed[0].errors[0].message,
            "expected 2 fields, found 3"
        );
        assert_eq!(batch.malformed[1].position.line, 4);
        assert_eq!(
            batch.malformed[0].record,
            serde_json::json!(["3", "4", "5"])
        );
        assert_eq!(
            batch.positions.iter().map(|p| p.line).collect::<Vec<_>>(),
            vec![2, 5]
        );
    }

    #[test]
    fn keeps_invalid_utf8_rows_as_malformed() {
        let (_, batches) = read_all(b"a,b\n1,\xff\xfe\n2,ok\n");
        assert_eq!(batches[0].batch.num_rows(), 1);
        assert_eq!(batches[0].malformed[0].errors[0].keyword, "encoding");
        assert_eq!(batches[0].malformed[0].errors[0].pointer, "/b");
    }

    #[test]
    fn a_character_split_between_fields_is_malformed() {
        // 0xC3 0xA9 is "é"; here a comma separates its two bytes.
        let (_, batches) = read_all(b"a,b\n\xc3,\xa9\nx,\xc3\xa9\n");
        let batch = &batches[0];
        assert_eq!(batch.batch.num_rows(), 1);
        assert_eq!(batch.batch.column(1).as_string::<i32>().value(0), "é");
        assert_eq!(batch.malformed.len(), 1);
        assert_eq!(batch.malformed[0].errors[0].keyword, "encoding");
    }

    #[test]
    fn fields_and_headers_are_trimmed() {
        let (columns, batches) = read_all(b" a , b\n  1 ,\" two \"\n , \n");
        assert_eq!(columns, vec!["a", "b"]);
        let batch = &batches[0].batch;
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "1");
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "two");
        assert!(batch.column(0).is_null(1) && batch.column(1).is_null(1));
    }

    #[test]
    fn empty_file_is_an_error_and_header_only_file_has_no_rows() {
        let empty = CsvReader::new(
            "e.csv".into(),
            &b""[..],
            CsvOptions::default(),
            ReadProgress::default(),
        );
        assert!(matches!(empty, Err(SourceError::Format { .. })));
        let (columns, batches) = read_all(b"a,b\n");
        assert_eq!(columns, vec!["a", "b"]);
        assert!(batches.is_empty());
    }

    #[test]
    fn empty_values_are_null_and_large_cells_survive() {
        let big = "x".repeat(10 * 1024 * 1024);
        let text = format!("a,b\n,\"{big}\"\n");
        let (_, batches) = read_all(text.as_bytes());
        let batch = &batches[0].batch;
        assert!(batch.column(0).is_null(0));
        assert_eq!(batch.column(1).as_string::<i32>().value(0).len(), big.len());
    }
}
