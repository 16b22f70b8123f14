//! A pipeline's `transform`: one read-only SQL query over each raw batch, as table `input`,
//! before validation (renames, casts, long/wide reshaping).
//!
//! Columns reach the query as text: JSON strings without their quotes, other JSON values
//! (numbers, booleans, objects) as their JSON text, and a JSON `null` as SQL NULL. The
//! query's output is then validated like a file's columns: text by the documented text rules,
//! typed columns (from a `CAST`) by their type.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use simpul_connectors::RawBatch;
use simpul_schemas::{RAW_ENCODING_JSON, RAW_ENCODING_KEY, SourcePosition};

/// A pipeline's transform query, checked to be one read-only statement.
#[derive(Debug, Clone)]
pub struct Transform {
    sql: String,
}

impl Transform {
    /// The transform for `sql`; refuses anything but one query.
    pub fn new(sql: &str) -> Result<Self, String> {
        simpul_catalog::check_read_only(sql).map_err(|e| e.to_string())?;
        Ok(Self {
            sql: sql.to_string(),
        })
    }

    /// Runs the query over one batch. Rows keep their source positions when the query keeps
    /// the row count; otherwise each output row is positioned by its number in the output.
    pub async fn apply(&self, raw: RawBatch) -> Result<RawBatch, String> {
        let RawBatch {
            batch,
            positions,
            malformed,
        } = raw;
        let input = plain_text_columns(&batch)?;
        let rows_in = input.num_rows();
        // One partition: a batch is small, and row order must survive the query.
        let config = SessionConfig::new().with_target_partitions(1);
        let context = SessionContext::new_with_config(config);
        context
            .register_batch("input", input)
            .map_err(|e| e.strip_backtrace())?;
        let frame = context
            .sql(&self.sql)
            .await
            .map_err(|e| e.strip_backtrace())?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(|e| e.strip_backtrace())?;
        let output =
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
        let positions = if output.num_rows() == rows_in {
            positions
        } else {
            let source: Arc<str> = positions.first().map_or_else(
                || Arc::from("transform"),
                |p| Arc::from(format!("{} (transformed)", p.source)),
            );
            (1..=output.num_rows() as u64)
                .map(|line| SourcePosition {
                    source: source.clone(),
                    line,
                })
                .collect()
        };
        Ok(RawBatch {
            batch: output,
            positions,
            malformed,
        })
    }
}

/// The batch with every JSON-text column turned into plain text.
fn plain_text_columns(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let is_json =
            field.metadata().get(RAW_ENCODING_KEY).map(String::as_str) == Some(RAW_ENCODING_JSON);
        match column.as_any().downcast_ref::<StringArray>() {
            Some(texts) if is_json => {
                let plain: StringArray =
                    texts.iter().map(|cell| cell.and_then(plain_text)).collect();
                fields.push(Field::new(field.name(), field.data_type().clone(), true));
                columns.push(Arc::new(plain));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

/// One JSON text as plain text: a string without its quotes, `null` as no value, anything
/// else as written.
fn plain_text(cell: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(cell) {
        Ok(serde_json::Value::Null) => None,
        Ok(serde_json::Value::String(text)) => Some(text),
        _ => Some(cell.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn json_batch(columns: &[(&str, Vec<Option<&str>>)]) -> RawBatch {
        let metadata =
            HashMap::from([(RAW_ENCODING_KEY.to_string(), RAW_ENCODING_JSON.to_string())]);
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, _)| {
                Field::new(*name, arrow::datatypes::DataType::Utf8, true)
                    .with_metadata(metadata.clone())
            })
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, cells)| Arc::new(StringArray::from(cells.clone())) as ArrayRef)
            .collect();
        let rows = columns[0].1.len();
        RawBatch {
            batch: RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap(),
            positions: (1..=rows as u64)
                .map(|line| SourcePosition {
                    source: Arc::from("http://api/page1"),
                    line,
                })
                .collect(),
            malformed: Vec::new(),
        }
    }

    #[tokio::test]
    async fn renames_and_casts_see_plain_text_and_keep_positions() {
        let raw = json_batch(&[
            (
                "kode_kabupaten_kota",
                vec![Some("\"3214\""), Some("\"3215\"")],
            ),
            ("jumlah", vec![Some("12"), Some("null")]),
        ]);
        let transform = Transform::new(
            "select kode_kabupaten_kota as kode_wilayah, cast(jumlah as bigint) as nilai from input",
        )
        .unwrap();
        let out = transform.apply(raw).await.unwrap();
        let kode = out
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(kode.value(0), "3214");
        assert_eq!(out.batch.schema().field(0).name(), "kode_wilayah");
        let nilai = out
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!((nilai.value(0), nilai.is_null(1)), (12, true));
        assert_eq!(out.positions[1].line, 2);
        assert_eq!(&*out.positions[1].source, "http://api/page1");
    }

    #[tokio::test]
    async fn a_reshape_that_changes_the_row_count_positions_rows_by_output_number() {
        let raw = json_batch(&[
            ("kode", vec![Some("\"3214\"")]),
            ("laki_laki", vec![Some("10")]),
            ("perempuan", vec![Some("12")]),
        ]);
        let transform = Transform::new(
            "select kode, 'L' as jenis_kelamin, laki_laki as jumlah from input \
             union all select kode, 'P', perempuan from input",
        )
        .unwrap();
        let out = transform.apply(raw).await.unwrap();
        assert_eq!(out.batch.num_rows(), 2);
        assert_eq!(&*out.positions[1].source, "http://api/page1 (transformed)");
        assert_eq!(out.positions[1].line, 2);
    }

    #[test]
    fn a_transform_that_writes_is_refused() {
        assert!(Transform::new("insert into x select * from input").is_err());
        assert!(Transform::new("select 1; select 2").is_err());
    }

    #[tokio::test]
    async fn a_query_naming_a_missing_column_fails_with_the_reason() {
        let raw = json_batch(&[("kode", vec![Some("\"3214\"")])]);
        let error = Transform::new("select nama from input")
            .unwrap()
            .apply(raw)
            .await
            .unwrap_err();
        assert!(error.contains("nama"), "{error}");
    }
}
