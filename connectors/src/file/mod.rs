//! Files: CSV, NDJSON, JSON arrays, Parquet and spreadsheets, read into raw batches; and the
//! `file` connector, which reads the new and changed files of a folder on any object store.

mod arrow_ipc;
mod csv;
mod csv_scan;
mod encoding;
mod excel;
mod json;
mod parquet;
mod source;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use simpul_schemas::normalize_column_name;

use crate::raw::{RawBatchReader, ReadProgress, SourceError};

pub use self::csv::CsvOptions;
pub use self::encoding::encoding_for;
pub use self::excel::{
    CHILD_COMMAND as SPREADSHEET_CHILD_COMMAND, ExcelOptions, HEADER_SEARCH_ROWS,
    SpreadsheetSandbox, isolate_spreadsheets, run_spreadsheet_child,
};
pub(crate) use self::json::{json_kind, objects_batch};
pub use self::source::{FileSource, FileSourceConfig};

/// Rows per raw batch. The first batch is also the sample that schema inference sees.
pub const BATCH_ROWS: usize = 16_384;

/// A file format the `file` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// Delimited text with a header row.
    Csv(CsvOptions),
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    JsonArray,
    /// Apache Parquet.
    Parquet,
    /// An Arrow IPC stream (typed, like Parquet).
    ArrowIpc,
    /// A spreadsheet: xlsx, xlsm, xlsb, xls or ods.
    Spreadsheet(ExcelOptions),
}

impl FileFormat {
    /// Guesses the format from the file name's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Self::Csv(CsvOptions::default())),
            "tsv" => Some(Self::Csv(CsvOptions {
                delimiter: b'\t',
                ..CsvOptions::default()
            })),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "json" => Some(Self::JsonArray),
            "parquet" => Some(Self::Parquet),
            "arrow" | "arrows" => Some(Self::ArrowIpc),
            "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => {
                Some(Self::Spreadsheet(ExcelOptions::default()))
            }
            _ => None,
        }
    }

    /// The format of an HTTP body from its media type (`text/csv`, `application/x-ndjson`, …).
    pub fn from_media_type(media: &str) -> Option<Self> {
        match media {
            "text/csv" => Self::from_name("csv"),
            "text/tab-separated-values" => Self::from_name("tsv"),
            "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
                Some(Self::Ndjson)
            }
            "application/json" => Some(Self::JsonArray),
            "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
            "application/vnd.apache.arrow.stream" => Some(Self::ArrowIpc),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.ms-excel"
            | "application/vnd.oasis.opendocument.spreadsheet" => {
                Some(Self::Spreadsheet(ExcelOptions::default()))
            }
            _ => None,
        }
    }

    /// Parses a format name as given on the command line (`csv`, `ndjson`, `json`, `parquet`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv(CsvOptions::default())),
            "tsv" => Self::from_path(Path::new("x.tsv")),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "json" => Some(Self::JsonArray),
            "parquet" => Some(Self::Parquet),
            "arrow" => Some(Self::ArrowIpc),
            "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" | "excel" => {
                Some(Self::Spreadsheet(ExcelOptions::default()))
            }
            _ => None,
        }
    }
}

/// Opens a local file as a stream of raw batches.
pub fn open(path: &Path, format: &FileFormat) -> Result<Box<dyn RawBatchReader>, SourceError> {
    open_as(path, &path.display().to_string(), format)
}

/// Opens a local file as a stream of raw batches, naming it `name` in errors and positions
/// (the URL it was downloaded from).
pub fn open_as(
    path: &Path,
    name: &str,
    format: &FileFormat,
) -> Result<Box<dyn RawBatchReader>, SourceError> {
    let name = name.to_string();
    let open_file = || {
        let io_error = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let total = file.metadata().map_err(io_error)?.len();
        Ok::<_, SourceError>((file, ReadProgress::new(total)))
    };
    match format {
        FileFormat::Csv(options) => {
            let (file, progress) = open_file()?;
            let counted = CountingRead::new(file, progress.clone());
            match options.encoding.filter(|e| *e != encoding_rs::UTF_8) {
                Some(legacy) => Ok(Box::new(csv::CsvReader::new(
                    name,
                    encoding::TranscodingRead::new(counted, legacy),
                    options.clone(),
                    progress,
                )?)),
                None => Ok(Box::new(csv::CsvReader::new(
                    name,
                    counted,
                    options.clone(),
                    progress,
                )?)),
            }
        }
        FileFormat::Ndjson => {
            let (file, progress) = open_file()?;
            Ok(Box::new(json::JsonReader::ndjson(
                name.clone(),
                CountingRead::new(file, progress.clone()),
                progress,
            )))
        }
        FileFormat::JsonArray => {
            let (file, progress) = open_file()?;
            Ok(Box::new(json::JsonReader::array(
                name.clone(),
                CountingRead::new(file, progress.clone()),
                progress,
            )?))
        }
        FileFormat::Parquet => {
            let (file, progress) = open_file()?;
            let file = parquet::CheckedFile::new(file).map_err(|source| SourceError::Io {
                path: name.clone(),
                source,
            })?;
            Ok(Box::new(parquet::ParquetReader::new(
                name.clone(),
                file,
                progress,
            )?))
        }
        FileFormat::ArrowIpc => {
            let (file, progress) = open_file()?;
            Ok(Box::new(arrow_ipc::ArrowIpcReader::new(
                name.clone(),
                CountingRead::new(std::io::BufReader::new(file), progress.clone()),
                Some(progress.total()),
                progress,
            )?))
        }
        FileFormat::Spreadsheet(options) => {
            Ok(Box::new(excel::ExcelReader::open(path, &name, options)?))
        }
    }
}

/// Reads a file held in memory (for data embedded in the binary, or already buffered).
pub fn open_bytes(
    name: &str,
    data: bytes::Bytes,
    format: &FileFormat,
) -> Result<Box<dyn RawBatchReader>, SourceError> {
    let progress = ReadProgress::new(data.len() as u64);
    let name = name.to_string();
    match format {
        FileFormat::Csv(options) => Ok(Box::new(csv::CsvReader::new(
            name,
            CountingRead::new(std::io::Cursor::new(data), progress.clone()),
            options.clone(),
            progress,
        )?)),
        FileFormat::Ndjson => Ok(Box::new(json::JsonReader::ndjson(
            name,
            CountingRead::new(std::io::Cursor::new(data), progress.clone()),
            progress,
        ))),
        FileFormat::JsonArray => Ok(Box::new(json::JsonReader::array(
            name,
            CountingRead::new(std::io::Cursor::new(data), progress.clone()),
            progress,
        )?)),
        FileFormat::Parquet => Ok(Box::new(parquet::ParquetReader::new(name, data, progress)?)),
        FileFormat::ArrowIpc => Ok(Box::new(arrow_ipc::ArrowIpcReader::new(
            name,
            CountingRead::new(std::io::Cursor::new(data), progress.clone()),
            Some(progress.total()),
            progress,
        )?)),
        FileFormat::Spreadsheet(options) => Ok(Box::new(excel::ExcelReader::from_bytes(
            &name, data, options,
        )?)),
    }
}

/// Runs one step of a decoder this crate does not own (arrow-ipc, parquet) on input from
/// outside. Those decoders panic on some malformed input (an IPC schema with an integer of
/// width 0, an unknown type); here that panic becomes a format error, so that a bad upload is
/// answered with its reason and never unwinds through the hub's tasks.
pub(crate) fn contained<T>(
    path: &str,
    format: &'static str,
    step: impl FnOnce() -> Result<T, String>,
) -> Result<T, SourceError> {
    let reason = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(reason)) => reason,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "an unreadable part".into());
            format!("its decoder refused it: {message}")
        }
    };
    Err(SourceError::Format {
        path: path.to_string(),
        format,
        reason,
    })
}

/// A reader that reports the bytes it has read.
struct CountingRead<R> {
    inner: R,
    progress: ReadProgress,
}

impl<R> CountingRead<R> {
    fn new(inner: R, progress: ReadProgress) -> Self {
        Self { inner, progress }
    }
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

/// The schema of a typed input (Parquet, Arrow IPC) with normalized, unique column names.
fn normalized_schema(source: &arrow::datatypes::Schema) -> arrow::datatypes::SchemaRef {
    let names = unique_column_names(source.fields().iter().map(|f| f.name().as_str()));
    let fields: Vec<arrow::datatypes::Field> = source
        .fields()
        .iter()
        .zip(names)
        .map(|(f, name)| f.as_ref().clone().with_name(name))
        .collect();
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

/// A typed batch as a raw batch: renamed to `schema`, rows numbered from `first`.
fn typed_raw_batch(
    schema: &arrow::datatypes::SchemaRef,
    batch: &arrow::record_batch::RecordBatch,
    source: &std::sync::Arc<str>,
    path: &str,
    first: u64,
) -> Result<crate::RawBatch, SourceError> {
    let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
        .map_err(|source| SourceError::Arrow {
            path: path.to_string(),
            source,
        })?;
    Ok(crate::RawBatch {
        positions: (0..batch.num_rows() as u64)
            .map(|i| simpul_schemas::SourcePosition {
                source: source.clone(),
                line: first + i,
            })
            .collect(),
        batch,
        malformed: Vec::new(),
    })
}

/// Normalizes headers and makes them unique (`nama`, `nama_2`), so every column is addressable.
fn unique_column_names<'a>(raw: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for header in raw {
        let base = normalize_column_name(header);
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

/// Builders for the text columns of one batch.
struct TextColumns {
    builders: Vec<StringBuilder>,
}

impl TextColumns {
    fn new(width: usize) -> Self {
        Self {
            builders: (0..width).map(|_| StringBuilder::new()).collect(),
        }
    }

    /// Builders for `rows` rows and, per column, a little more text than `bytes` holds (the
    /// previous batch's sizes), so that each batch allocates its buffers once.
    fn with_capacity(rows: usize, bytes: &[usize]) -> Self {
        Self {
            builders: bytes
                .iter()
                .map(|&b| StringBuilder::with_capacity(rows, b + b / 8))
                .collect(),
        }
    }

    /// The bytes of text in each column so far.
    fn value_bytes(&self) -> Vec<usize> {
        self.builders
            .iter()
            .map(|b| b.values_slice().len())
            .collect()
    }

    /// Finishes the rows appended so far into a batch with these fields, and starts over.
    fn finish(&mut self, fields: Vec<Field>) -> Result<RecordBatch, arrow::error::ArrowError> {
        let schema = std::sync::Arc::new(Schema::new(fields));
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| std::sync::Arc::new(b.finish()) as ArrayRef)
            .collect();
        if columns.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        RecordBatch::try_new(schema, columns)
    }
}

fn text_fields(names: &[String]) -> Vec<Field> {
    names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect()
}
