//! Specifications of the validator, on the shipped schemas and on table-derived ones.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use serde_json::{Value, json};

use crate::{
    CompiledSchema, RAW_ENCODING_JSON, RAW_ENCODING_KEY, SHIPPED_SCHEMAS, Validation,
    consecutive_positions,
};

fn shipped(name: &str) -> CompiledSchema {
    let (_, text) = SHIPPED_SCHEMAS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("shipped schema");
    CompiledSchema::compile(name, serde_json::from_str(text).expect("json")).expect("compiles")
}

/// A CSV-like batch: text cells, `None` for an empty field.
fn text_batch(columns: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
        .collect();
    let arrays = columns
        .iter()
        .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as Arc<dyn Array>)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// A JSON-source batch from records: cells are JSON texts, a missing key is a null cell.
fn json_batch(records: &[Value]) -> RecordBatch {
    let mut names: Vec<String> = Vec::new();
    for record in records {
        for key in record.as_object().unwrap().keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    let encoding = HashMap::from([(RAW_ENCODING_KEY.to_string(), RAW_ENCODING_JSON.to_string())]);
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, true).with_metadata(encoding.clone()))
        .collect();
    let arrays = names
        .iter()
        .map(|n| {
            Arc::new(StringArray::from_iter(
                records.iter().map(|r| r.get(n).map(|v| v.to_string())),
            )) as Arc<dyn Array>
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn validate(schema: &CompiledSchema, batch: &RecordBatch) -> Validation {
    schema
        .validate(batch, &consecutive_positions("t", 2, batch.num_rows()))
        .expect("validates")
}

fn keywords(validation: &Validation, rejected: usize) -> Vec<String> {
    validation.rejected[rejected]
        .errors
        .iter()
        .map(|e| e.keyword.clone())
        .collect()
}

fn resident(overrides: Value) -> Value {
    let mut record = json!({
        "nik": "3214015505900002",
        "nama": "Siti Aminah",
        "tanggal_lahir": "1990-05-15",
        "jenis_kelamin": "P",
        "kode_wilayah": "32.14.01.2001",
    });
    for (k, v) in overrides.as_object().unwrap() {
        record[k] = v.clone();
    }
    record
}

#[test]
fn a_valid_resident_is_stored_typed_and_normalised() {
    let schema = shipped("penduduk");
    let record = resident(
        json!({"nik": "3214 0155 0590 0002", "kode_wilayah": "3214012001", "telepon": "0812-3456-7890"}),
    );
    let out = validate(&schema, &json_batch(&[record]));
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let valid = &out.valid;
    let text = |name: &str| {
        valid
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(text("nik"), "3214015505900002");
    assert_eq!(text("kode_wilayah"), "32.14.01.2001");
    assert_eq!(text("telepon"), "+6281234567890");
    assert_eq!(
        valid.column_by_name("tanggal_lahir").unwrap().data_type(),
        &DataType::Date32
    );
}

#[test]
fn every_broken_rule_of_a_resident_is_reported() {
    let schema = shipped("penduduk");
    let records = [
        resident(json!({"nik": "3214013512900002"})),
        resident(json!({"jenis_kelamin": "X"})),
        resident(json!({"kode_wilayah": "32.14.01"})),
        resident(json!({"nama": null})),
        resident(json!({"catatan": "tidak ada di skema"})),
        json!({"nik": "3214015505900002", "nama": "Siti"}),
    ];
    let out = validate(&schema, &json_batch(&records));
    assert_eq!(out.valid.num_rows(), 0);
    assert_eq!(
        keywords(&out, 0),
        vec!["format", "pattern"],
        "the if/then rule on women's NIKs fails too"
    );
    assert!(out.rejected[0].errors[0].message.contains("birth day 35"));
    assert_eq!(keywords(&out, 1), vec!["enum"]);
    assert_eq!(keywords(&out, 2), vec!["format"]);
    assert_eq!(keywords(&out, 3), vec!["type"]);
    assert_eq!(keywords(&out, 4), vec!["additionalProperties"]);
    assert_eq!(keywords(&out, 5), vec!["required", "required", "required"]);
    assert_eq!(out.rejected[5].errors[0].pointer, "/tanggal_lahir");
}

#[test]
fn a_woman_with_a_man_s_nik_fails_the_schema_level_rule() {
    let schema = shipped("penduduk");
    let out = validate(
        &schema,
        &json_batch(&[resident(json!({"nik": "3214011505900001"}))]),
    );
    assert_eq!(
        out.rejected.len(),
        1,
        "if jenis_kelamin = P then the NIK day is over 40"
    );
    assert_eq!(keywords(&out, 0), vec!["pattern"]);
    assert_eq!(out.rejected[0].errors[0].pointer, "/nik");
}

#[test]
fn json_types_are_strict_but_integral_floats_are_integers() {
    let schema = shipped("fasilitas_kesehatan");
    let base = json!({
        "kode": "P3214010101", "nama": "Puskesmas Purwakarta", "jenis": "puskesmas",
        "kode_wilayah": "32.14.01.1001", "lat": -6.5398, "lng": 107.4552,
    });
    let with = |k: &str, v: Value| {
        let mut r = base.clone();
        r[k] = v;
        r
    };
    let out = validate(
        &schema,
        &json_batch(&[
            with("tempat_tidur", json!(12.0)),
            with("tempat_tidur", json!("12")),
            with("igd_24_jam", json!("true")),
        ]),
    );
    assert_eq!(
        out.valid.num_rows(),
        1,
        "12.0 is an integer in JSON Schema 2020-12"
    );
    assert_eq!(
        out.valid
            .column_by_name("tempat_tidur")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        12
    );
    assert_eq!(keywords(&out, 0), vec!["type"], "\"12\" is text");
    assert_eq!(keywords(&out, 1), vec!["type"], "\"true\" is text");
}

#[test]
fn coordinates_at_zero_zero_are_a_missing_location() {
    let schema = shipped("ambulans");
    let unit = |lat: f64, lng: f64| {
        json!({"kode": "AMB-01", "nomor_polisi": "T 1234 AB", "jenis": "gawat_darurat",
               "pangkalan_faskes": "RSUD", "status": "tersedia", "di_aplikasi": true, "lat": lat, "lng": lng})
    };
    let out = validate(&schema, &json_batch(&[unit(0.0, 0.0), unit(-6.55, 107.44)]));
    assert_eq!(out.valid.num_rows(), 1);
    let errors = keywords(&out, 0);
    assert!(errors.contains(&"x-koordinat".to_string()), "{errors:?}");
    assert!(
        out.rejected[0]
            .errors
            .iter()
            .any(|e| e.message.contains("0,0"))
    );
}

#[test]
fn duplicate_primary_keys_in_a_batch_are_refused_after_the_first() {
    let schema = shipped("penduduk");
    let out = validate(
        &schema,
        &json_batch(&[
            resident(json!({})),
            resident(json!({"nik": "3214 0155 0590 0002"})),
        ]),
    );
    assert_eq!(out.valid.num_rows(), 1);
    assert_eq!(keywords(&out, 0), vec!["x-primary-key"]);
    assert!(
        out.rejected[0].errors[0].message.contains("line 2"),
        "{:?}",
        out.rejected[0].errors
    );
}

#[test]
fn long_primary_keys_that_differ_only_at_the_end_are_distinct() {
    let schema = shipped("observasi_statistik");
    let observation = |indikator: String| {
        json!({
            "indikator": indikator,
            "kode_wilayah": "32.14",
            "periode": "2025",
            "nilai": 1.5,
            "satuan": "PERSEN",
            "sumber": "BPS",
        })
    };
    let stem = "a".repeat(90);
    let out = validate(
        &schema,
        &json_batch(&[
            observation(format!("{stem}x")),
            observation(format!("{stem}y")),
            observation(format!("{stem}x")),
        ]),
    );
    assert_eq!(out.valid.num_rows(), 2, "{:?}", out.rejected);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].position.line, 4,
        "the third row, after a header line"
    );
    assert_eq!(keywords(&out, 0), vec!["x-primary-key"]);
    assert!(
        out.rejected[0].errors[0]
            .message
            .contains("first appears at line 2"),
        "{:?}",
        out.rejected[0].errors
    );
}

#[test]
fn arrays_are_checked_by_jsonschema_and_stored_as_json_text() {
    let schema = shipped("jenis_izin");
    let licence = |requirements: Value| {
        json!({"kode": "PBG", "nama": "Persetujuan Bangunan Gedung", "opd": "DPMPTSP",
               "lama_proses_hari_kerja": 28, "biaya": 0, "persyaratan": requirements})
    };
    let out = validate(
        &schema,
        &json_batch(&[
            licence(json!(["KTP", "Gambar teknis"])),
            licence(json!([])),
            licence(json!(["KTP", ""])),
        ]),
    );
    assert_eq!(out.valid.num_rows(), 1);
    assert_eq!(
        out.valid
            .column_by_name("persyaratan")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        r#"["KTP","Gambar teknis"]"#
    );
    assert_eq!(keywords(&out, 0), vec!["minItems"]);
    assert_eq!(keywords(&out, 1), vec!["minLength"]);
    assert_eq!(out.rejected[1].errors[0].pointer, "/persyaratan/1");
}

#[test]
fn csv_text_reads_indonesian_numbers_and_wib_times() {
    let table = Schema::new(vec![
        Field::new("nilai", DataType::Float64, true),
        Field::new("jumlah", DataType::Int64, true),
        Field::new("aktif", DataType::Boolean, true),
        Field::new(
            "waktu",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    let schema = CompiledSchema::from_arrow("t", &table);
    let batch = text_batch(&[
        (
            "nilai",
            vec![
                Some("1,77"),
                Some("1.063.932"),
                Some("1.063.932,5"),
                Some("dua"),
            ],
        ),
        (
            "jumlah",
            vec![Some("1.000"), Some("12"), Some("12.0"), Some("1,5")],
        ),
        (
            "aktif",
            vec![Some("ya"), Some("FALSE"), Some("1"), Some("mungkin")],
        ),
        (
            "waktu",
            vec![
                Some("2025-01-01 07:00:00"),
                Some("2025-01-01T00:00:00Z"),
                None,
                Some("kemarin"),
            ],
        ),
    ]);
    let out = validate(&schema, &batch);
    assert_eq!(out.valid.num_rows(), 3);
    let nilai = out.valid.column(0).as_primitive::<Float64Type>();
    assert_eq!(
        (nilai.value(0), nilai.value(1), nilai.value(2)),
        (1.77, 1_063_932.0, 1_063_932.5)
    );
    let jumlah = out.valid.column(1).as_primitive::<Int64Type>();
    assert_eq!(
        (jumlah.value(0), jumlah.value(1), jumlah.value(2)),
        (1000, 12, 12)
    );
    let waktu = out
        .valid
        .column(3)
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(waktu.value(0), waktu.value(1), "07:00 WIB is 00:00 UTC");
    assert!(waktu.is_null(2), "an empty field is absent");
    assert_eq!(keywords(&out, 0), vec!["type", "type", "type", "format"]);
    assert_eq!(
        out.rejected[0].record["nilai"], "dua",
        "the original text is kept"
    );
}

#[test]
fn typed_sources_are_cast_without_losing_information() {
    let schema = CompiledSchema::from_arrow(
        "t",
        &Schema::new(vec![Field::new("n", DataType::Int64, true)]),
    );
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Float64, true)])),
        vec![Arc::new(Float64Array::from(vec![2.0, 1.5]))],
    )
    .unwrap();
    let out = validate(&schema, &batch);
    assert_eq!(out.valid.num_rows(), 1);
    assert_eq!(out.rejected[0].record["n"], "1.5");
}

#[test]
fn required_columns_refuse_empty_csv_fields() {
    let schema = shipped("observasi_statistik");
    let batch = text_batch(&[
        (
            "indikator",
            vec![Some("garis_kemiskinan"), Some("garis_kemiskinan")],
        ),
        ("kode_wilayah", vec![Some("3214"), Some("32.14")]),
        ("periode", vec![Some("2024"), Some("2024-Q5")]),
        ("nilai", vec![Some("367273"), None]),
        ("satuan", vec![Some("RUPIAH"), Some("RUPIAH")]),
        ("sumber", vec![Some("BPS"), Some("BPS")]),
    ]);
    let out = validate(&schema, &batch);
    assert_eq!(out.valid.num_rows(), 1);
    assert_eq!(
        out.valid
            .column_by_name("kode_wilayah")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "32.14"
    );
    assert_eq!(keywords(&out, 0), vec!["pattern", "required"]);
}

#[test]
fn a_table_typed_text_column_takes_json_numbers_and_booleans_as_their_text() {
    // Open Data Jabar sends `kode_provinsi: 32`; a dataset without a canonical schema keeps
    // identifier columns as text, and the number is that text.
    let schema = CompiledSchema::from_arrow(
        "t",
        &Schema::new(vec![Field::new("kode_provinsi", DataType::Utf8, true)]),
    );
    let batch = json_batch(&[
        json!({"kode_provinsi": 32}),
        json!({"kode_provinsi": "32"}),
        json!({"kode_provinsi": true}),
        json!({"kode_provinsi": [32]}),
    ]);
    let out = validate(&schema, &batch);
    let kode = out.valid.column(0).as_string::<i32>();
    assert_eq!(
        (0..kode.len()).map(|i| kode.value(i)).collect::<Vec<_>>(),
        vec!["32", "32", "true"]
    );
    assert_eq!(out.rejected.len(), 1, "an array is not a text");
}

#[test]
fn a_canonical_text_property_refuses_a_json_number_as_json_schema_does() {
    let schema = shipped("observasi_statistik");
    let batch = json_batch(&[json!({
        "indikator": "garis_kemiskinan", "kode_wilayah": 3214, "periode": "2024",
        "nilai": 367273, "satuan": "RUPIAH", "sumber": "BPS"
    })]);
    let out = validate(&schema, &batch);
    assert_eq!(out.valid.num_rows(), 0);
    assert_eq!(keywords(&out, 0), vec!["type"]);
}
