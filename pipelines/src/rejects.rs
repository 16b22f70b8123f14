use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use simpul_schemas::RejectedRow;

static REJECTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("errors", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, true),
        Field::new(
            "rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// The columns of a rejects table that can hold personal data: the raw record, and the
/// reasons, which quote the values they refuse. Their files carry no statistics.
pub const REJECTS_PERSONAL: [&str; 3] = ["reason", "errors", "record"];

/// The schema of every `<dataset>__rejects` table: which run refused the row, where the row
/// came from (source and line), the reasons in one line and as JSON (`pointer`, `keyword`,
/// `message`), and the original values as JSON.
pub fn rejects_schema() -> SchemaRef {
    REJECTS_SCHEMA.clone()
}

/// Turns rejected rows into a batch of the rejects table.
pub fn rejects_batch(
    run_id: &str,
    rows: &[RejectedRow],
    at: DateTime<Utc>,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| Some(&*r.position.source)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| Some(r.position.line as i64)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(RejectedRow::reason),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
            serde_json::to_string(&r.errors).unwrap_or_else(|_| "[]".into())
        }))),
        Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|r| (!r.record.is_null()).then(|| r.record.to_string())),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n]).with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(rejects_schema(), columns)
}
