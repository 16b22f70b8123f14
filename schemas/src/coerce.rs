use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, new_null_array};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::reject::{FieldError, RejectedRow, SourcePosition};

/// The outcome of fitting a raw batch to a dataset schema.
#[derive(Debug)]
pub struct CoercedBatch {
    /// The rows that fit, typed as the target schema.
    pub valid: RecordBatch,
    /// The rows that did not fit, with their original values and every reason.
    pub rejected: Vec<RejectedRow>,
}

/// Casts every column of `raw` to the type of the same-named column of `target`, column by
/// column (vectorized), and splits the rows into those that fit and those that do not.
///
/// A value is refused when it is present but does not parse as the target type, when a cast
/// would lose information (`1.5` into an integer column), or when a required column is empty.
/// Text timestamps without an offset are read as WIB (UTC+07:00), the regency's local time.
/// `positions[i]` locates raw row `i` in its source. Columns of `target` that `raw` lacks are
/// filled with nulls; callers that must refuse such input check the columns first.
pub fn coerce_batch(
    raw: &RecordBatch,
    positions: &[SourcePosition],
    target: &SchemaRef,
) -> Result<CoercedBatch, ArrowError> {
    let rows = raw.num_rows();
    let mut columns = Vec::with_capacity(target.fields().len());
    let mut failures: Vec<(String, BooleanArray, &'static str, String)> = Vec::new();

    for field in target.fields() {
        let Some(source) = raw.column_by_name(field.name()) else {
            columns.push(new_null_array(field.data_type(), rows));
            if !field.is_nullable() {
                let all = BooleanArray::from(vec![true; rows]);
                failures.push((
                    field.name().clone(),
                    all,
                    "required",
                    "column is missing".into(),
                ));
            }
            continue;
        };
        let cast = cast_column(source, field.data_type())?;
        let type_failures = failed_casts(source, &cast)?;
        if type_failures.true_count() > 0 {
            let message = format!("is not a valid {}", describe_type(field.data_type()));
            failures.push((field.name().clone(), type_failures, "type", message));
        }
        if !field.is_nullable() && cast.null_count() > 0 {
            let missing = BooleanArray::from_iter((0..rows).map(|i| Some(source.is_null(i))));
            if missing.true_count() > 0 {
                failures.push((
                    field.name().clone(),
                    missing,
                    "required",
                    "is required".into(),
                ));
            }
        }
        columns.push(cast);
    }

    if failures.is_empty() {
        return Ok(CoercedBatch {
            valid: RecordBatch::try_new(target.clone(), columns)?,
            rejected: Vec::new(),
        });
    }

    // Until the refused rows are gone a required column may still hold nulls, so filter
    // under an all-nullable schema and apply the real one afterwards.
    let relaxed = Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let typed = RecordBatch::try_new(relaxed, columns)?;
    let rejected_mask = any_true(rows, failures.iter().map(|(_, mask, _, _)| mask));
    let rejected = collect_rejections(raw, positions, &rejected_mask, &failures)?;
    let kept = filter_record_batch(&typed, &not(&rejected_mask)?)?;
    let valid = RecordBatch::try_new(target.clone(), kept.columns().to_vec())?;
    Ok(CoercedBatch { valid, rejected })
}

fn cast_column(source: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    match (source.data_type(), to) {
        (DataType::Utf8, DataType::Timestamp(unit, Some(tz))) if tz.as_ref() == "UTC" => {
            // Parse in WIB so that naive local times land on the right instant; values with an
            // explicit offset are unaffected. The stored instants are then labelled UTC.
            let wib = DataType::Timestamp(*unit, Some("+07:00".into()));
            let parsed = cast_with_options(source, &wib, &options)?;
            cast_with_options(&parsed, to, &options)
        }
        _ => cast_with_options(source, to, &options),
    }
}

/// Rows whose value was present but did not survive the cast, or survived it changed.
fn failed_casts(source: &ArrayRef, cast: &ArrayRef) -> Result<BooleanArray, ArrowError> {
    let became_null = BooleanArray::from_iter(
        (0..source.len()).map(|i| Some(source.is_valid(i) && cast.is_null(i))),
    );
    if !is_lossy_numeric_cast(source.data_type(), cast.data_type()) {
        return Ok(became_null);
    }
    let round_trip = cast_with_options(cast, source.data_type(), &CastOptions::default())?;
    let unchanged = eq(source, &round_trip)?;
    Ok(BooleanArray::from_iter((0..source.len()).map(|i| {
        Some(became_null.value(i) || (unchanged.is_valid(i) && !unchanged.value(i)))
    })))
}

fn is_lossy_numeric_cast(from: &DataType, to: &DataType) -> bool {
    from.is_numeric() && to.is_numeric() && from != to
}

fn any_true<'a>(rows: usize, masks: impl Iterator<Item = &'a BooleanArray>) -> BooleanArray {
    let mut out = BooleanBufferBuilder::new(rows);
    out.append_n(rows, false);
    for mask in masks {
        for i in 0..rows {
            if mask.value(i) {
                out.set_bit(i, true);
            }
        }
    }
    BooleanArray::new(out.finish(), None)
}

fn collect_rejections(
    raw: &RecordBatch,
    positions: &[SourcePosition],
    rejected_mask: &BooleanArray,
    failures: &[(String, BooleanArray, &'static str, String)],
) -> Result<Vec<RejectedRow>, ArrowError> {
    let format = FormatOptions::default().with_null("");
    let formatters = raw
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &format))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = raw.schema();
    let mut rejected = Vec::with_capacity(rejected_mask.true_count());
    for row in (0..raw.num_rows()).filter(|&i| rejected_mask.value(i)) {
        let mut record = serde_json::Map::new();
        for ((field, column), formatter) in
            schema.fields().iter().zip(raw.columns()).zip(&formatters)
        {
            record.insert(field.name().clone(), original_value(column, formatter, row));
        }
        let errors = failures
            .iter()
            .filter(|(_, mask, _, _)| mask.value(row))
            .map(|(column, _, keyword, message)| {
                let shown = raw
                    .column_by_name(column)
                    .filter(|c| c.is_valid(row))
                    .and_then(|c| value_as_text(c, row));
                let message = match shown {
                    Some(value) if *keyword == "type" => format!("'{value}' {message}"),
                    _ => message.clone(),
                };
                FieldError::field(column, keyword, message)
            })
            .collect();
        let position = positions.get(row).cloned().unwrap_or(SourcePosition {
            source: String::new(),
            line: row as u64 + 1,
        });
        rejected.push(RejectedRow {
            position,
            record: serde_json::Value::Object(record),
            errors,
        });
    }
    Ok(rejected)
}

fn original_value(column: &ArrayRef, formatter: &ArrayFormatter, row: usize) -> serde_json::Value {
    if column.is_null(row) {
        return serde_json::Value::Null;
    }
    match column.data_type() {
        DataType::Utf8 => serde_json::Value::String(column.as_string::<i32>().value(row).into()),
        _ => serde_json::Value::String(formatter.value(row).to_string()),
    }
}

fn value_as_text(column: &ArrayRef, row: usize) -> Option<String> {
    match column.data_type() {
        DataType::Utf8 => Some(column.as_string::<i32>().value(row).to_string()),
        _ => {
            let formatter =
                ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()).ok()?;
            Some(formatter.value(row).to_string())
        }
    }
}

fn describe_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            "whole number".to_string()
        }
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => "number".to_string(),
        DataType::Boolean => "boolean (true/false)".to_string(),
        DataType::Date32 => "date (YYYY-MM-DD)".to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            "timestamp (YYYY-MM-DD HH:MM:SS, optionally with an offset)".to_string()
        }
        other => format!("{other}"),
    }
}

/// Builds positions `first_line..` for a batch whose rows are consecutive lines.
pub fn consecutive_positions(source: &str, first_line: u64, rows: usize) -> Vec<SourcePosition> {
    (0..rows as u64)
        .map(|i| SourcePosition {
            source: source.to_string(),
            line: first_line + i,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn raw(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn keeps_fitting_rows_and_rejects_the_rest_with_reasons() {
        let batch = raw(vec![
            (
                "tahun",
                Arc::new(StringArray::from(vec!["2018", "dua ribu", "2020"])),
            ),
            ("nilai", Arc::new(StringArray::from(vec!["1.5", "2", "x"]))),
        ]);
        let target = Arc::new(Schema::new(vec![
            Field::new("tahun", DataType::Int64, true),
            Field::new("nilai", DataType::Float64, true),
        ]));
        let positions = consecutive_positions("f.csv", 2, 3);
        let out = coerce_batch(&batch, &positions, &target).unwrap();
        assert_eq!(out.valid.num_rows(), 1);
        let tahun = out
            .valid
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(tahun.value(0), 2018);
        assert_eq!(out.rejected.len(), 2);
        assert_eq!(out.rejected[0].position.line, 3);
        assert_eq!(out.rejected[0].errors[0].pointer, "/tahun");
        assert_eq!(out.rejected[0].errors[0].keyword, "type");
        assert_eq!(
            out.rejected[0].errors[0].message,
            "'dua ribu' is not a valid whole number"
        );
        assert_eq!(out.rejected[0].record["tahun"], "dua ribu");
        assert_eq!(out.rejected[1].position.line, 4);
        assert_eq!(out.rejected[1].reason(), "nilai: 'x' is not a valid number");
    }

    #[test]
    fn required_columns_refuse_empty_values() {
        let batch = raw(vec![(
            "kode",
            Arc::new(StringArray::from(vec![Some("32.14"), None])),
        )]);
        let target = Arc::new(Schema::new(vec![Field::new("kode", DataType::Utf8, false)]));
        let out = coerce_batch(&batch, &consecutive_positions("f", 1, 2), &target).unwrap();
        assert_eq!(out.valid.num_rows(), 1);
        assert_eq!(out.rejected[0].errors[0].keyword, "required");
    }

    #[test]
    fn lossy_numeric_casts_are_rejected_not_truncated() {
        let batch = raw(vec![("n", Arc::new(Float64Array::from(vec![2.0, 1.5])))]);
        let target = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let out = coerce_batch(&batch, &consecutive_positions("p", 1, 2), &target).unwrap();
        assert_eq!(out.valid.num_rows(), 1);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].record["n"], "1.5");
    }

    #[test]
    fn naive_timestamps_are_read_as_wib() {
        let batch = raw(vec![(
            "waktu",
            Arc::new(StringArray::from(vec![
                "2025-01-01 07:00:00",
                "2025-01-01T00:00:00Z",
            ])),
        )]);
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let target = Arc::new(Schema::new(vec![Field::new("waktu", utc, true)]));
        let out = coerce_batch(&batch, &consecutive_positions("f", 1, 2), &target).unwrap();
        let waktu = out
            .valid
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(waktu.value(0), waktu.value(1), "07:00 WIB is 00:00 UTC");
    }
}
