//! The vectorized engine must give the verdict `jsonschema` gives, for every canonical schema
//! and every row. Rows are generated from each schema: mostly plausible values, with wrong
//! types, nulls, missing fields, out-of-range numbers, broken formats and unknown columns
//! mixed in.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::{
    CompiledSchema, RAW_ENCODING_JSON, RAW_ENCODING_KEY, SHIPPED_SCHEMAS, consecutive_positions,
    reference_validator,
};

/// One generated cell: absent, or a JSON value (which may be `null`).
type Generated = Option<Value>;

fn any_wrong_value() -> BoxedStrategy<Generated> {
    prop_oneof![
        Just(Some(Value::Null)),
        Just(None),
        Just(Some(json!("12"))),
        Just(Some(json!(12))),
        Just(Some(json!(1.5))),
        Just(Some(json!(true))),
        Just(Some(json!(["x"]))),
        Just(Some(json!({"a": 1}))),
        Just(Some(json!(""))),
        "[a-zA-Z0-9 .,-]{0,12}".prop_map(|s| Some(Value::String(s))),
    ]
    .boxed()
}

fn nik() -> BoxedStrategy<String> {
    let build = |regency: &'static str,
                 kecamatan: u32,
                 day: u32,
                 month: u32,
                 year: u32,
                 serial: u32,
                 sep: &'static str| {
        format!("{regency}{sep}{kecamatan:02}{sep}{day:02}{month:02}{year:02}{sep}{serial:04}")
    };
    let separators = prop::sample::select(vec!["", "", " ", ".", "-"]);
    let valid = (
        prop::sample::select(vec!["3214", "3273", "3201", "9101", "9301"]),
        1u32..=40,
        prop_oneof![1u32..=28, 41u32..=68],
        1u32..=12,
        50u32..=99,
        1u32..=9999,
        separators.clone(),
    )
        .prop_map(move |(r, k, d, m, y, s, sep)| build(r, k, d, m, y, s, sep));
    let broken = (
        prop::sample::select(vec!["3214", "3299", "0000"]),
        1u32..=40,
        prop_oneof![Just(0u32), Just(32u32), Just(72u32), 1u32..=31],
        prop_oneof![Just(0u32), Just(13u32), 1u32..=12],
        0u32..=99,
        0u32..=9999,
        separators,
    )
        .prop_map(move |(r, k, d, m, y, s, sep)| build(r, k, d, m, y, s, sep));
    prop_oneof![4 => valid, 1 => broken, 1 => "[0-9]{14,17}"].boxed()
}

fn kode_wilayah(desa: bool) -> BoxedStrategy<String> {
    let codes = if desa {
        vec![
            "32.14.01.2001",
            "3214012001",
            "32.14.01.1001",
            "32.14.17.2009",
            "32.14.01",
            "32.99.01.2001",
            "32.14.1.2001",
        ]
    } else {
        vec![
            "32",
            "32.14",
            "3214",
            "321401",
            "32.14.01.2001",
            "32.99",
            "321",
            "32.14.01.20011",
            "abcd",
        ]
    };
    let (valid, invalid): (Vec<&str>, Vec<&str>) = codes.into_iter().partition(|c| {
        crate::formats::normalize_kode_wilayah(c).is_ok()
            && (!desa || c.replace('.', "").len() == 10)
    });
    prop_oneof![
        4 => prop::sample::select(valid).prop_map(String::from),
        1 => prop::sample::select(invalid).prop_map(String::from),
    ]
    .boxed()
}

fn telepon() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "08[1-9][0-9]{7,10}",
        2 => "\\+628[1-9][0-9]{7,9}",
        2 => "0264[0-9]{5,7}",
        1 => "(62|0)[0-9]{3,14}",
        1 => "[a-z0-9+]{1,8}",
    ]
    .boxed()
}

fn date() -> BoxedStrategy<String> {
    prop_oneof![
        10 => (1900u32..2030, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        1 => Just("2024-02-29".to_string()),
        1 => Just("2025-02-29".to_string()),
        1 => Just("2025-13-01".to_string()),
        1 => Just("2025/01/01".to_string()),
        1 => Just("01-01-2025".to_string()),
    ]
    .boxed()
}

fn date_time() -> BoxedStrategy<String> {
    prop_oneof![
        10 => (2000u32..2030, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60).prop_map(|(y, m, d, h, mi)| format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:00+07:00"
        )),
        2 => Just("2025-03-31T08:00:00Z".to_string()),
        2 => Just("2025-03-31T08:00:00.123Z".to_string()),
        1 => Just("2025-03-31 08:00:00".to_string()),
        1 => Just("2025-03-31T25:00:00Z".to_string()),
        1 => Just("2025-03-31".to_string()),
    ]
    .boxed()
}

fn text_for(schema: &Value) -> BoxedStrategy<String> {
    let format = schema.get("format").and_then(Value::as_str);
    match format {
        Some("nik") => return nik(),
        Some("kode-wilayah") => return kode_wilayah(false),
        Some("kode-wilayah-desa") => return kode_wilayah(true),
        Some("telepon-id") => return telepon(),
        Some("date") => return date(),
        Some("date-time") => return date_time(),
        Some("email") => {
            return prop_oneof!["[a-z]{1,8}@[a-z]{1,8}\\.go\\.id", "[a-z@.]{1,10}"].boxed();
        }
        Some("uri") => {
            return prop_oneof![
                "https://[a-z]{1,8}\\.go\\.id/[a-z0-9]{0,8}",
                "[a-z :/]{1,12}"
            ]
            .boxed();
        }
        _ => {}
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let texts: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        if !texts.is_empty() {
            return prop_oneof![4 => prop::sample::select(texts), 1 => "[a-z_]{1,10}"].boxed();
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let body = pattern.trim_start_matches('^').trim_end_matches('$');
        if let Ok(matching) = proptest::string::string_regex(body) {
            return prop_oneof![4 => matching, 1 => "[a-zA-Z0-9 -]{0,10}"].boxed();
        }
    }
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .min(40) as usize;
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    prop_oneof![
        6 => proptest::string::string_regex(&format!("[a-zA-Z ]{{{},{max}}}", min.max(1))).unwrap_or_else(|_| unreachable_regex()),
        1 => proptest::string::string_regex(&format!("[a-z]{{{},{}}}", max + 1, max + 3)).unwrap_or_else(|_| unreachable_regex()),
        1 => Just(String::new()),
    ]
    .boxed()
}

fn unreachable_regex() -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex("x").expect("a trivial regex")
}

fn number_for(schema: &Value, integer: bool) -> BoxedStrategy<Value> {
    let min = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .unwrap_or(-1000.0);
    let max = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .unwrap_or(1_000_000.0);
    if integer {
        let (lo, hi) = (min as i64 - 3, max as i64 + 3);
        prop_oneof![
            6 => (min as i64..=max as i64).prop_map(|i| json!(i)),
            1 => (lo..=hi).prop_map(|i| json!(i)),
            1 => Just(json!(min as i64 - 1)),
            1 => Just(json!(max as i64 + 1)),
            1 => (lo..=hi).prop_map(|i| json!(i as f64)),
            1 => Just(json!(2.5)),
        ]
        .boxed()
    } else {
        prop_oneof![
            6 => (min..max).prop_map(|f| json!(f)),
            1 => (min - 1.0..max + 1.0).prop_map(|f| json!(f)),
            1 => Just(json!(min)),
            1 => Just(json!(max)),
            1 => Just(json!(0)),
            1 => (-5i64..5).prop_map(|i| json!(i)),
        ]
        .boxed()
    }
}

/// A value for one property, guided by its schema, wrong now and then.
fn cell_for(schema: &Value) -> BoxedStrategy<Generated> {
    let kinds: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => vec![],
    };
    let kind = kinds
        .iter()
        .find(|k| *k != "null")
        .cloned()
        .unwrap_or_default();
    let good: BoxedStrategy<Generated> = match kind.as_str() {
        "string" => text_for(schema)
            .prop_map(|s| Some(Value::String(s)))
            .boxed(),
        "integer" => number_for(schema, true).prop_map(Some).boxed(),
        "number" => number_for(schema, false).prop_map(Some).boxed(),
        "boolean" => any::<bool>().prop_map(|b| Some(Value::Bool(b))).boxed(),
        "array" => prop::collection::vec(
            prop_oneof![4 => "[A-Za-z ]{1,10}", 1 => Just(String::new())],
            0..4,
        )
        .prop_map(|items| Some(json!(items)))
        .boxed(),
        _ => any_wrong_value(),
    };
    prop_oneof![12 => good, 1 => any_wrong_value()].boxed()
}

/// Whole records for a schema: every property a generated cell, sometimes an unknown column.
fn record_for(document: &Value) -> BoxedStrategy<Map<String, Value>> {
    let properties: Vec<(String, Value)> = document["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let required: Vec<&str> = document["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Optional properties are often left out, as real records do.
    let cells: Vec<BoxedStrategy<Generated>> = properties
        .iter()
        .map(|(name, schema)| {
            if required.contains(&name.as_str()) {
                cell_for(schema)
            } else {
                prop_oneof![2 => Just(None), 3 => cell_for(schema)].boxed()
            }
        })
        .collect();
    let names: Vec<String> = properties.iter().map(|(n, _)| n.clone()).collect();
    (cells, prop::option::weighted(0.05, any_wrong_value()))
        .prop_map(move |(cells, extra)| {
            let mut record = Map::new();
            for (name, cell) in names.iter().zip(cells) {
                if let Some(value) = cell {
                    record.insert(name.clone(), value);
                }
            }
            if let Some(Some(value)) = extra {
                record.insert("kolom_asing".into(), value);
            }
            record
        })
        .boxed()
}

/// One record as a JSON-source raw batch.
fn raw_batch(record: &Map<String, Value>) -> RecordBatch {
    let encoding = HashMap::from([(RAW_ENCODING_KEY.to_string(), RAW_ENCODING_JSON.to_string())]);
    let fields: Vec<Field> = record
        .keys()
        .map(|k| Field::new(k, DataType::Utf8, true).with_metadata(encoding.clone()))
        .collect();
    let columns: Vec<Arc<dyn Array>> = record
        .values()
        .map(|v| Arc::new(StringArray::from(vec![v.to_string()])) as Arc<dyn Array>)
        .collect();
    if fields.is_empty() {
        let schema = Arc::new(Schema::empty());
        return RecordBatch::try_new_with_options(
            schema,
            vec![],
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .expect("empty batch");
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

#[test]
fn the_vectorized_verdict_equals_jsonschema_for_every_canonical_schema() {
    for (name, text) in SHIPPED_SCHEMAS {
        let document: Value = serde_json::from_str(text).expect("json");
        let engine = CompiledSchema::compile(name, document.clone()).expect("compiles");
        let reference = reference_validator(&document).expect("reference");
        // Each property may be generated wrong, so the wider a schema, the fewer whole
        // records come out valid: wide schemas get more cases to see enough of both.
        let width = document["properties"].as_object().map_or(0, |p| p.len());
        let mut runner = TestRunner::new(Config {
            cases: if width > 12 { 2000 } else { 600 },
            failure_persistence: None,
            ..Config::default()
        });
        let (valid, invalid) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let result = runner.run(&record_for(&document), |record| {
            let batch = raw_batch(&record);
            let ours = engine
                .validate(&batch, &consecutive_positions("p", 1, 1))
                .expect("validates");
            let expected = reference.is_valid(&Value::Object(record.clone()));
            let got = ours.rejected.is_empty();
            let counter = if got { &valid } else { &invalid };
            counter.set(counter.get() + 1);
            prop_assert_eq!(
                got,
                expected,
                "schema {}: record {} — our errors {:?}",
                name,
                Value::Object(record.clone()),
                ours.rejected.first().map(|r| &r.errors)
            );
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
        let (valid, invalid) = (valid.get(), invalid.get());
        assert!(
            valid > 20 && invalid > 20,
            "{name}: the generator must produce both verdicts ({valid} valid, {invalid} invalid)"
        );
    }
}
