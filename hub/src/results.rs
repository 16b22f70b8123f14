//! Query results on the wire: JSON, CSV, Arrow IPC stream or Parquet, streamed batch by batch
//! so that a large result never sits whole in memory.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use http_body::Frame;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::ApiError;

/// Trailer: whether the row limit cut the result.
pub const TRUNCATED_TRAILER: &str = "simpul-truncated";
/// Trailer: rows sent.
pub const ROW_COUNT_TRAILER: &str = "simpul-row-count";
/// Header: the row limit that applied.
pub const ROW_LIMIT_HEADER: &str = "simpul-row-limit";

/// A response format for query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// `{"columns":[…],"rows":[{…}],"row_count":n,"truncated":bool}`.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Arrow IPC stream.
    Arrow,
    /// A Parquet file; `simpul.truncated` and `simpul.row_count` are in its footer.
    Parquet,
}

impl ResultFormat {
    /// Picks the format from `?format=` if given, else from the Accept header (q-values
    /// honoured). No preference means JSON.
    pub fn negotiate(
        format_param: Option<&str>,
        accept: Option<&HeaderValue>,
    ) -> Result<Self, ApiError> {
        if let Some(name) = format_param {
            return Self::from_name(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "format '{name}' is not one of json, csv, arrow, parquet"
                ))
            });
        }
        let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
            return Ok(Self::Json);
        };
        let mut ranges: Vec<(f32, &str)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let q = parts
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q, media)
            })
            .filter(|(q, _)| *q > 0.0)
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .iter()
            .find_map(|(_, media)| Self::from_media_type(media))
            .ok_or_else(|| {
                ApiError::not_acceptable(format!(
                    "cannot answer with '{accept}'; ask for application/json, text/csv, \
                     application/vnd.apache.arrow.stream or application/vnd.apache.parquet"
                ))
            })
    }

    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "arrow" => Some(Self::Arrow),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    fn from_media_type(media: &str) -> Option<Self> {
        match media.to_ascii_lowercase().as_str() {
            "*/*" | "application/*" | "application/json" => Some(Self::Json),
            "text/csv" | "text/*" => Some(Self::Csv),
            "application/vnd.apache.arrow.stream" => Some(Self::Arrow),
            "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The Content-Type of responses in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    fn encoder(self, schema: &SchemaRef) -> Result<Box<dyn Encoder>, ApiError> {
        Ok(match self {
            Self::Json => Box::new(JsonEncoder::new(schema)),
            Self::Csv => Box::new(CsvEncoder { header: true }),
            Self::Arrow => Box::new(ArrowEncoder::new(schema).map_err(ApiError::internal)?),
            Self::Parquet => Box::new(ParquetEncoder::new(schema).map_err(ApiError::internal)?),
        })
    }
}

/// How a streamed result ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Rows sent.
    pub rows: u64,
    /// Whether the row limit cut the result.
    pub truncated: bool,
    /// Why the result stopped early, if it failed.
    pub error: Option<String>,
}

trait Encoder: Send {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError>;
    fn finish(&mut self, outcome: &Outcome) -> Result<Vec<u8>, arrow::error::ArrowError>;
    /// Whether the format can carry an error in-band; otherwise the body is aborted.
    fn reports_errors(&self) -> bool {
        false
    }
}

/// A query whose first batch has arrived: errors that happen before any row is sent become
/// problem responses; later ones end the stream.
pub struct StartedQuery {
    /// The result schema.
    pub schema: SchemaRef,
    /// The first batch, if any.
    pub first: Option<RecordBatch>,
    /// The remaining batches.
    pub rest: SendableRecordBatchStream,
}

/// Starts a query's stream and waits (until `deadline`) for its first batch.
pub async fn start(
    mut stream: SendableRecordBatchStream,
    deadline: Instant,
    timeout_secs: u64,
) -> Result<StartedQuery, ApiError> {
    let schema = stream.schema();
    let first = match tokio::time::timeout_at(deadline, stream.next()).await {
        Err(_) => return Err(ApiError::timeout(timeout_secs)),
        Ok(None) => None,
        Ok(Some(Err(e))) => return Err(crate::api::datafusion_error(e)),
        Ok(Some(Ok(batch))) => Some(batch),
    };
    Ok(StartedQuery {
        schema,
        first,
        rest: stream,
    })
}

/// Streams a started query as a response in `format`, sending at most `row_limit` rows and
/// stopping at `deadline`. The body ends with trailers saying whether the limit cut the result
/// (sent to clients that ask for them with `TE: trailers`).
pub fn respond(
    query: StartedQuery,
    format: ResultFormat,
    row_limit: u64,
    deadline: Instant,
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let encoder = format.encoder(&query.schema)?;
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        let rows = drive(query, encoder, row_limit, deadline, tx).await;
        crate::metrics::query_finished(endpoint, started.elapsed().as_secs_f64(), rows);
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
    headers.insert(
        HeaderName::from_static(ROW_LIMIT_HEADER),
        HeaderValue::from(row_limit),
    );
    headers.insert(
        header::TRAILER,
        HeaderValue::from_static("simpul-truncated, simpul-row-count"),
    );
    Ok(response)
}

/// Sends the result and returns the rows sent.
async fn drive(
    query: StartedQuery,
    mut encoder: Box<dyn Encoder>,
    row_limit: u64,
    deadline: Instant,
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) -> u64 {
    let StartedQuery {
        first, mut rest, ..
    } = query;
    let mut outcome = Outcome::default();
    let mut next = first.map(Ok);
    loop {
        let batch = match next.take() {
            Some(batch) => batch,
            None => match tokio::time::timeout_at(deadline, rest.next()).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(_) => {
                    outcome.error =
                        Some("the query ran past its time limit (query.timeout_secs)".into());
                    break;
                }
            },
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                outcome.error = Some(e.find_root().to_string());
                break;
            }
        };
        let room = row_limit - outcome.rows;
        let batch = if batch.num_rows() as u64 > room {
            outcome.truncated = true;
            batch.slice(0, room as usize)
        } else {
            batch
        };
        outcome.rows += batch.num_rows() as u64;
        if !send_bytes(&tx, encoder.batch(&batch)).await || outcome.truncated {
            break;
        }
    }
    drop(rest);
    if outcome.error.is_some() && !encoder.reports_errors() {
        let message = outcome.error.clone().unwrap_or_default();
        let _ = tx.send(Err(std::io::Error::other(message))).await;
        return outcome.rows;
    }
    if !send_bytes(&tx, encoder.finish(&outcome)).await {
        return outcome.rows;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert(
        HeaderName::from_static(TRUNCATED_TRAILER),
        HeaderValue::from_static(if outcome.truncated { "true" } else { "false" }),
    );
    trailers.insert(
        HeaderName::from_static(ROW_COUNT_TRAILER),
        HeaderValue::from(outcome.rows),
    );
    let _ = tx.send(Ok(Frame::trailers(trailers))).await;
    outcome.rows
}

/// Sends encoded bytes; false when the client is gone or encoding failed (the body is then
/// aborted, so the client cannot mistake a partial result for a whole one).
async fn send_bytes(
    tx: &mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    bytes: Result<Vec<u8>, arrow::error::ArrowError>,
) -> bool {
    match bytes {
        Ok(bytes) if bytes.is_empty() => true,
        Ok(bytes) => tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_ok(),
        Err(e) => {
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            false
        }
    }
}

struct JsonEncoder {
    preamble: Option<Vec<u8>>,
    first_row: bool,
}

impl JsonEncoder {
    fn new(schema: &SchemaRef) -> Self {
        let columns: Vec<serde_json::Value> = schema
            .fields()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name(),
                    "type": f.data_type().to_string(),
                    "nullable": f.is_nullable(),
                })
            })
            .collect();
        let mut preamble = b"{\"columns\":".to_vec();
        preamble.extend(serde_json::to_vec(&columns).unwrap_or_else(|_| b"[]".to_vec()));
        preamble.extend(b",\"rows\":[");
        Self {
            preamble: Some(preamble),
            first_row: true,
        }
    }

    fn take_preamble(&mut self) -> Vec<u8> {
        self.preamble.take().unwrap_or_default()
    }
}

impl Encoder for JsonEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = self.take_preamble();
        let mut lines = Vec::new();
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut lines);
        writer.write(batch)?;
        writer.finish()?;
        drop(writer);
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if !self.first_row {
                out.push(b',');
            }
            self.first_row = false;
            out.extend_from_slice(line);
        }
        Ok(out)
    }

    fn finish(&mut self, outcome: &Outcome) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = self.take_preamble();
        let tail = serde_json::json!({
            "row_count": outcome.rows,
            "truncated": outcome.truncated,
            "error": outcome.error,
        });
        let tail = tail.to_string();
        out.extend(b"],");
        out.extend(tail.trim_start_matches('{').as_bytes());
        Ok(out)
    }

    fn reports_errors(&self) -> bool {
        true
    }
}

struct CsvEncoder {
    header: bool,
}

impl Encoder for CsvEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = Vec::new();
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(self.header)
            .build(&mut out);
        writer.write(&neutralized(batch)?)?;
        drop(writer);
        self.header = false;
        Ok(out)
    }

    fn finish(&mut self, _outcome: &Outcome) -> Result<Vec<u8>, arrow::error::ArrowError> {
        Ok(Vec::new())
    }
}

/// A CSV cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`,
/// a tab or a carriage return, and is not a plain number) with a `'` put before it, so that
/// Excel and LibreOffice show it as text (OWASP's advice against CSV injection). Data keeps
/// what was sent; only the downloaded file is changed.
pub fn neutralize_csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && text.trim().parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `batch` with its text cells and column names neutralized for CSV; the batch itself when
/// nothing needed it.
fn neutralized(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::borrow::Cow;
    let owned = |v: &str| matches!(neutralize_csv_cell(v), Cow::Owned(_));
    let schema = batch.schema();
    let mut changed = false;
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let mut field: Field = field.as_ref().clone();
        if owned(field.name()) {
            let name = neutralize_csv_cell(field.name()).into_owned();
            field = field.with_name(name);
            changed = true;
        }
        let risky = match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().iter().flatten().any(owned),
            DataType::LargeUtf8 => column.as_string::<i64>().iter().flatten().any(owned),
            DataType::Utf8View => column.as_string_view().iter().flatten().any(owned),
            _ => false,
        };
        if risky {
            let text = arrow::compute::cast(column, &DataType::Utf8)?;
            let out: StringArray = text
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(neutralize_csv_cell))
                .collect();
            fields.push(field.with_data_type(DataType::Utf8));
            columns.push(Arc::new(out) as ArrayRef);
            changed = true;
        } else {
            fields.push(field);
            columns.push(column.clone());
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// A `Write` whose bytes are taken out after each write, to stream a file format.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct ArrowEncoder {
    buffer: SharedBuffer,
    writer: Option<arrow::ipc::writer::StreamWriter<SharedBuffer>>,
}

impl ArrowEncoder {
    fn new(schema: &SchemaRef) -> Result<Self, arrow::error::ArrowError> {
        let buffer = SharedBuffer::default();
        let writer = arrow::ipc::writer::StreamWriter::try_new(buffer.clone(), schema)?;
        Ok(Self {
            buffer,
            writer: Some(writer),
        })
    }
}

impl Encoder for ArrowEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.write(batch)?;
        }
        Ok(self.buffer.take())
    }

    fn finish(&mut self, _outcome: &Outcome) -> Result<Vec<u8>, arrow::error::ArrowError> {
        if let Some(mut writer) = self.writer.take() {
            writer.finish()?;
        }
        Ok(self.buffer.take())
    }
}

/// Rows per Parquet row group while streaming; each finished group is sent at once.
const PARQUET_ROWS_PER_GROUP: usize = 64 * 1024;

struct ParquetEncoder {
    buffer: SharedBuffer,
    writer: Option<ArrowWriter<SharedBuffer>>,
}

impl ParquetEncoder {
    fn new(schema: &SchemaRef) -> Result<Self, parquet::errors::ParquetError> {
        let buffer = SharedBuffer::default();
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_row_count(Some(PARQUET_ROWS_PER_GROUP))
            .build();
        let writer = ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(properties))?;
        Ok(Self {
            buffer,
            writer: Some(writer),
        })
    }
}

impl Encoder for ParquetEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.write(batch)?;
        }
        Ok(self.buffer.take())
    }

    fn finish(&mut self, outcome: &Outcome) -> Result<Vec<u8>, arrow::error::ArrowError> {
        if let Some(mut writer) = self.writer.take() {
            writer.append_key_value_metadata(KeyValue::new(
                "simpul.truncated".into(),
                outcome.truncated.to_string(),
            ));
            writer.append_key_value_metadata(KeyValue::new(
                "simpul.row_count".into(),
                outcome.rows.to_string(),
            ));
            writer.close()?;
        }
        Ok(self.buffer.take())
    }
}

/// How long a query may run, from now.
pub fn deadline(timeout_secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(timeout_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_get_a_quote_first() {
        for (given, sent) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1", "'\t=1"),
            ("-6.5", "-6.5"),
            ("+62812", "+62812"),
            ("Purwakarta", "Purwakarta"),
        ] {
            assert_eq!(neutralize_csv_cell(given), sent);
        }
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("=x", arrow::datatypes::DataType::Utf8, true),
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::StringArray::from(vec![
                    Some("=1+1"),
                    None,
                    Some("ok"),
                ])),
                Arc::new(arrow::array::Int64Array::from(vec![1, -2, 3])),
            ],
        )
        .unwrap();
        let mut encoder = CsvEncoder { header: true };
        let text = String::from_utf8(encoder.batch(&batch).unwrap()).unwrap();
        assert_eq!(text, "'=x,n\n'=1+1,1\n,-2\nok,3\n");
    }

    fn accept(value: &str) -> Result<ResultFormat, ApiError> {
        ResultFormat::negotiate(None, Some(&HeaderValue::from_str(value).unwrap()))
    }

    #[test]
    fn negotiates_formats_by_accept_and_quality() {
        assert_eq!(
            ResultFormat::negotiate(None, None).unwrap(),
            ResultFormat::Json
        );
        assert_eq!(accept("text/csv").unwrap(), ResultFormat::Csv);
        assert_eq!(
            accept("application/vnd.apache.arrow.stream").unwrap(),
            ResultFormat::Arrow
        );
        assert_eq!(
            accept("text/csv;q=0.5, application/vnd.apache.parquet").unwrap(),
            ResultFormat::Parquet
        );
        assert_eq!(accept("text/html, */*;q=0.1").unwrap(), ResultFormat::Json);
        assert_eq!(
            accept("image/png").unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            ResultFormat::negotiate(
                Some("csv"),
                Some(&HeaderValue::from_static("application/json"))
            )
            .unwrap(),
            ResultFormat::Csv
        );
    }
}
