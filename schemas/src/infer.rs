use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::raw::{RAW_ENCODING_JSON, RAW_ENCODING_KEY};

/// Infers a dataset schema from a sample batch.
///
/// Typed columns (Parquet) keep their type, made Delta-compatible. Text columns become the
/// narrowest of Int64, Float64, Boolean, Date32, Timestamp(µs, UTC) that fits every non-empty
/// sample value, else Utf8. In JSON, types are kept: numbers, booleans and strings (which may
/// become dates or timestamps); arrays and objects are stored as JSON text. Identifier-like columns (`kode*`, `nik`, `nomor*`, `no_*`,
/// `telepon*`, `*_kode`) always stay text, as do numbers with a leading zero (`0812…`).
pub fn infer_schema(sample: &RecordBatch) -> SchemaRef {
    let fields: Vec<Field> = sample
        .schema()
        .fields()
        .iter()
        .zip(sample.columns())
        .map(|(field, column)| {
            let data_type = match column.data_type() {
                DataType::Utf8 if is_identifier_like(field.name()) => DataType::Utf8,
                DataType::Utf8
                    if field.metadata().get(RAW_ENCODING_KEY).map(String::as_str)
                        == Some(RAW_ENCODING_JSON) =>
                {
                    infer_json_type(column.as_string::<i32>().iter().flatten())
                }
                DataType::Utf8 => infer_text_type(column.as_string::<i32>().iter().flatten()),
                other => delta_compatible_type(other),
            };
            Field::new(field.name(), data_type, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Rewrites a schema into types that Delta readers (Spark, Trino, DuckDB) accept without
/// table features: no unsigned integers, no views, no timestamps without time zone.
pub fn delta_compatible_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            Field::new(
                f.name(),
                delta_compatible_type(f.data_type()),
                f.is_nullable(),
            )
            .with_metadata(f.metadata().clone())
        })
        .collect();
    Arc::new(Schema::new(fields).with_metadata(schema.metadata().clone()))
}

fn delta_compatible_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, _) | DataType::Date64 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Interval(_) => DataType::Utf8,
        DataType::Dictionary(_, value) => delta_compatible_type(value),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            DataType::List(Arc::new(Field::new(
                item.name(),
                delta_compatible_type(item.data_type()),
                true,
            )))
        }
        DataType::FixedSizeList(item, _) => DataType::List(Arc::new(Field::new(
            item.name(),
            delta_compatible_type(item.data_type()),
            true,
        ))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), delta_compatible_type(f.data_type()), true))
                .collect(),
        ),
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

fn is_identifier_like(name: &str) -> bool {
    name == "nik"
        || name.starts_with("kode")
        || name.ends_with("_kode")
        || name.starts_with("nomor")
        || name.starts_with("no_")
        || name.starts_with("telepon")
}

/// The narrowest candidate type that every value parses as.
fn infer_text_type<'a>(values: impl Iterator<Item = &'a str>) -> DataType {
    let mut candidates = TextCandidates::all();
    let mut seen_any = false;
    for value in values {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        seen_any = true;
        candidates.narrow(value);
        if candidates.is_text_only() {
            break;
        }
    }
    if !seen_any {
        return DataType::Utf8;
    }
    candidates.best()
}

/// The type of a column of JSON texts: one JSON type throughout, else text.
fn infer_json_type<'a>(cells: impl Iterator<Item = &'a str>) -> DataType {
    let mut strings = TextCandidates::all();
    strings.int = false;
    strings.float = false;
    strings.boolean = false;
    let (mut any, mut ints, mut floats, mut bools, mut texts, mut other) = (false, 0, 0, 0, 0, 0);
    for cell in cells {
        match cell.as_bytes().first() {
            Some(b'n') => continue,
            Some(b'"') => {
                texts += 1;
                let text: String = serde_json::from_str(cell).unwrap_or_default();
                if !text.is_empty() {
                    strings.narrow(&text);
                }
            }
            Some(b't' | b'f') => bools += 1,
            Some(b'[' | b'{') => other += 1,
            Some(_) if cell.contains(['.', 'e', 'E']) => floats += 1,
            Some(_) => ints += 1,
            None => continue,
        }
        any = true;
    }
    let kinds = [ints + floats > 0, bools > 0, texts > 0, other > 0];
    if !any || kinds.iter().filter(|k| **k).count() != 1 {
        return DataType::Utf8;
    }
    if ints + floats > 0 {
        return if floats > 0 {
            DataType::Float64
        } else {
            DataType::Int64
        };
    }
    if bools > 0 {
        return DataType::Boolean;
    }
    if texts > 0 {
        return strings.best();
    }
    DataType::Utf8
}

struct TextCandidates {
    int: bool,
    float: bool,
    boolean: bool,
    date: bool,
    timestamp: bool,
}

impl TextCandidates {
    fn all() -> Self {
        Self {
            int: true,
            float: true,
            boolean: true,
            date: true,
            timestamp: true,
        }
    }

    fn narrow(&mut self, value: &str) {
        let leading_zero = has_leading_zero(value);
        self.int &= !leading_zero && value.parse::<i64>().is_ok();
        self.float &= !leading_zero && is_plain_decimal(value);
        self.boolean &= value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false");
        self.date &= NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok();
        self.timestamp &= parses_as_timestamp(value);
    }

    fn is_text_only(&self) -> bool {
        !(self.int || self.float || self.boolean || self.date || self.timestamp)
    }

    fn best(&self) -> DataType {
        if self.int {
            DataType::Int64
        } else if self.float {
            DataType::Float64
        } else if self.boolean {
            DataType::Boolean
        } else if self.date {
            DataType::Date32
        } else if self.timestamp {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        } else {
            DataType::Utf8
        }
    }
}

/// `0812…` and `007` are codes, not numbers; `0`, `0.5` and `-0.5` are numbers.
fn has_leading_zero(value: &str) -> bool {
    let digits = value.trim_start_matches(['-', '+']);
    digits.len() > 1 && digits.starts_with('0') && !digits[1..].starts_with('.')
}

/// Decimal notation only: `f64::from_str` would also accept `inf` and `NaN` as numbers.
fn is_plain_decimal(value: &str) -> bool {
    let body = value.strip_prefix(['-', '+']).unwrap_or(value);
    let mut mantissa_and_exponent = body.splitn(2, ['e', 'E']);
    let mantissa = mantissa_and_exponent.next().unwrap_or_default();
    let exponent_ok = mantissa_and_exponent.next().is_none_or(|exp| {
        let exp = exp.strip_prefix(['-', '+']).unwrap_or(exp);
        !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
    });
    let mut parts = mantissa.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or_default();
    exponent_ok
        && !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn parses_as_timestamp(value: &str) -> bool {
    DateTime::parse_from_rfc3339(value).is_ok()
        || NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok()
        || NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S").is_ok()
        || NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::StringArray;

    use super::*;

    fn infer_one(name: &str, values: &[Option<&str>]) -> DataType {
        let schema = Schema::new(vec![Field::new(name, DataType::Utf8, true)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(StringArray::from(values.to_vec()))],
        )
        .unwrap();
        infer_schema(&batch).field(0).data_type().clone()
    }

    #[test]
    fn infers_numbers_booleans_dates_and_timestamps() {
        assert_eq!(
            infer_one("tahun", &[Some("2018"), Some("2019")]),
            DataType::Int64
        );
        assert_eq!(
            infer_one("upah", &[Some("3204551.0"), Some("2376558")]),
            DataType::Float64
        );
        assert_eq!(
            infer_one("aktif", &[Some("true"), Some("FALSE")]),
            DataType::Boolean
        );
        assert_eq!(
            infer_one("tanggal", &[Some("2025-03-31")]),
            DataType::Date32
        );
        assert_eq!(
            infer_one(
                "waktu",
                &[
                    Some("2025-03-31T08:00:00+07:00"),
                    Some("2025-03-31 08:00:00")
                ]
            ),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn empty_values_do_not_decide_the_type() {
        assert_eq!(
            infer_one("tahun", &[None, Some(""), Some("2020")]),
            DataType::Int64
        );
        assert_eq!(infer_one("kosong", &[None, Some("")]), DataType::Utf8);
    }

    #[test]
    fn codes_and_phone_numbers_stay_text() {
        assert_eq!(
            infer_one("kode_kabupaten_kota", &[Some("3214")]),
            DataType::Utf8
        );
        assert_eq!(
            infer_one("nik", &[Some("3214010101900001")]),
            DataType::Utf8
        );
        assert_eq!(infer_one("hp", &[Some("081234567890")]), DataType::Utf8);
        assert_eq!(
            infer_one("nilai", &[Some("0.5"), Some("0")]),
            DataType::Float64
        );
    }

    #[test]
    fn words_that_rust_parses_as_floats_stay_text() {
        assert_eq!(
            infer_one("catatan", &[Some("NaN"), Some("inf")]),
            DataType::Utf8
        );
        assert_eq!(
            infer_one("nilai", &[Some("1e3"), Some(".5")]),
            DataType::Float64
        );
    }

    fn infer_json(cells: Vec<&str>) -> DataType {
        let field = Field::new("v", DataType::Utf8, true).with_metadata(HashMap::from([(
            RAW_ENCODING_KEY.to_string(),
            RAW_ENCODING_JSON.to_string(),
        )]));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![field])),
            vec![Arc::new(StringArray::from(cells))],
        )
        .unwrap();
        infer_schema(&batch).field(0).data_type().clone()
    }

    #[test]
    fn json_keeps_its_types() {
        assert_eq!(
            infer_json(vec!["\"12\""]),
            DataType::Utf8,
            "a quoted number is text"
        );
        assert_eq!(infer_json(vec!["12", "null", "13"]), DataType::Int64);
        assert_eq!(infer_json(vec!["12", "1.5"]), DataType::Float64);
        assert_eq!(infer_json(vec!["true"]), DataType::Boolean);
        assert_eq!(infer_json(vec!["\"2025-01-01\""]), DataType::Date32);
        assert_eq!(
            infer_json(vec!["12", "\"x\""]),
            DataType::Utf8,
            "mixed types are text"
        );
        assert_eq!(infer_json(vec!["[1, 2]"]), DataType::Utf8);
    }

    #[test]
    fn unsigned_and_naive_types_become_delta_compatible() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::UInt32, true),
            Field::new("b", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("c", DataType::Utf8View, true),
        ]);
        let out = delta_compatible_schema(&schema);
        assert_eq!(out.field(0).data_type(), &DataType::Int64);
        assert_eq!(
            out.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(out.field(2).data_type(), &DataType::Utf8);
    }
}
