//! Validator benchmark: the vectorized engine against row-by-row `jsonschema` on the same
//! 1,000,000 realistic `penduduk` and `observasi_statistik` records, 1% invalid.
//!
//! Run: `cargo run --release -p simpul-schemas --example validator_bench [ROWS]`
//! The data is generated with a fixed seed, so every run sees the same records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use simpul_schemas::{
    CompiledSchema, RAW_ENCODING_JSON, RAW_ENCODING_KEY, SHIPPED_SCHEMAS, consecutive_positions,
    reference_validator,
};

const WILAYAH_CSV: &str = include_str!("../../hub/reference/wilayah_3214.csv");
const BATCH_ROWS: usize = 16_384;

const GIVEN: [&str; 12] = [
    "Siti", "Asep", "Dewi", "Ujang", "Nur", "Ahmad", "Rina", "Dedi", "Euis", "Agus", "Lilis",
    "Cecep",
];
const FAMILY: [&str; 10] = [
    "Aminah",
    "Saepudin",
    "Lestari",
    "Hidayat",
    "Kurniasih",
    "Rahmat",
    "Suryani",
    "Gunawan",
    "Nurhayati",
    "Permana",
];
const PLACES: [&str; 6] = [
    "Purwakarta",
    "Bandung",
    "Karawang",
    "Subang",
    "Cianjur",
    "Jakarta",
];
const INDICATORS: [(&str, &str); 10] = [
    ("jumlah_penduduk", "JIWA"),
    ("garis_kemiskinan", "RUPIAH"),
    ("angka_partisipasi_sekolah", "PERSEN"),
    ("jumlah_posyandu", "UNIT"),
    ("panjang_jalan_desa", "KM"),
    ("jumlah_keluarga", "KK"),
    ("jumlah_sekolah_dasar", "UNIT"),
    ("luas_sawah", "HEKTARE"),
    ("jumlah_umkm", "UNIT"),
    ("angka_kematian_bayi", "PER 1000"),
];

fn desa_codes() -> Vec<String> {
    WILAYAH_CSV
        .lines()
        .skip(1)
        .filter(|l| l.contains(",desa,") || l.contains(",kelurahan,"))
        .filter_map(|l| l.split(',').next().map(String::from))
        .collect()
}

/// Residents with NIKs unique within any batch: the serial and kecamatan follow the row number.
fn resident(rng: &mut StdRng, desa: &[String], row: usize, broken: bool) -> Value {
    let woman = rng.random_bool(0.5);
    let (day, month, year) = (
        rng.random_range(1..=28u32),
        rng.random_range(1..=12u32),
        rng.random_range(1950..=2015u32),
    );
    let regency = if rng.random_bool(0.9) { "3214" } else { "3273" };
    let nik = format!(
        "{regency}{:02}{:02}{month:02}{:02}{:04}",
        (row / 9999) % 17 + 1,
        if woman { day + 40 } else { day },
        year % 100,
        row % 9999 + 1
    );
    let mut record = json!({
        "nik": nik,
        "no_kk": format!("{regency}{:012}", rng.random_range(0..999_999_999_999u64)),
        "nama": format!("{} {}", GIVEN[rng.random_range(0..GIVEN.len())], FAMILY[rng.random_range(0..FAMILY.len())]),
        "tempat_lahir": PLACES[rng.random_range(0..PLACES.len())],
        "tanggal_lahir": format!("{year}-{month:02}-{day:02}"),
        "jenis_kelamin": if woman { "P" } else { "L" },
        "alamat": format!("Jl. Raya {} No. {}", FAMILY[rng.random_range(0..FAMILY.len())], rng.random_range(1..200)),
        "rt": format!("{:03}", rng.random_range(1..20)),
        "rw": format!("{:03}", rng.random_range(1..10)),
        "kode_wilayah": desa[rng.random_range(0..desa.len())],
        "telepon": format!("08{}{:09}", rng.random_range(1..10), rng.random_range(0..999_999_999u32)),
        "status_hidup": true,
    });
    if broken {
        match rng.random_range(0..5) {
            0 => record["nik"] = json!(format!("{}3", &nik[..15]).replace(&nik[6..8], "35")),
            1 => record["tanggal_lahir"] = json!("1990-02-30"),
            2 => record["kode_wilayah"] = json!("32.99.01.2001"),
            3 => record["telepon"] = json!("12345"),
            _ => record["jenis_kelamin"] = json!("X"),
        }
    }
    record
}

/// Observations with unique (indikator, kode_wilayah, periode): the key follows the row number.
fn observation(rng: &mut StdRng, desa: &[String], row: usize, broken: bool) -> Value {
    let (indicator, unit) = INDICATORS[row % INDICATORS.len()];
    let place = (row / INDICATORS.len()) % desa.len();
    let month = row / (INDICATORS.len() * desa.len());
    let mut record = json!({
        "indikator": indicator,
        "kode_wilayah": desa[place],
        "periode": format!("{}-{:02}", 2026 - (month / 12) as i32, month % 12 + 1),
        "nilai": (rng.random_range(0.0..100_000.0f64) * 100.0).round() / 100.0,
        "satuan": unit,
        "sumber": "BPS Kabupaten Purwakarta",
    });
    if broken {
        match rng.random_range(0..3) {
            0 => record["periode"] = json!("2024-Q9"),
            1 => record["kode_wilayah"] = json!("bukan kode"),
            _ => record["nilai"] = json!("banyak"),
        }
    }
    record
}

/// How the records reach the engine.
#[derive(Clone, Copy)]
enum Input {
    /// Typed Arrow columns, as a JSON or Parquet decoder hands them over: text as Utf8,
    /// numbers as Float64, booleans as Boolean. The counterpart of jsonschema's parsed `Value`.
    Typed,
    /// Every cell as CSV text (what `simpul ingest file.csv` validates).
    CsvText,
    /// Every cell as its JSON text, marked `simpul.encoding = json` (NDJSON uploads).
    JsonText,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Typed => "Arrow typed",
            Input::CsvText => "CSV text",
            Input::JsonText => "JSON text",
        }
    }
}

fn batches(records: &[Value], names: &[String], input: Input) -> Vec<RecordBatch> {
    let encoding = HashMap::from([(RAW_ENCODING_KEY.to_string(), RAW_ENCODING_JSON.to_string())]);
    let sample = |n: &String| {
        records
            .iter()
            .find_map(|r| r.get(n).filter(|v| !v.is_null()))
    };
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| {
                let data_type = match (input, sample(n)) {
                    (Input::Typed, Some(Value::Number(_))) => DataType::Float64,
                    (Input::Typed, Some(Value::Bool(_))) => DataType::Boolean,
                    _ => DataType::Utf8,
                };
                let field = Field::new(n, data_type, true);
                match input {
                    Input::JsonText => field.with_metadata(encoding.clone()),
                    _ => field,
                }
            })
            .collect::<Vec<_>>(),
    ));
    records
        .chunks(BATCH_ROWS)
        .map(|chunk| {
            let columns = schema
                .fields()
                .iter()
                .map(|field| {
                    let cells = chunk.iter().map(|r| r.get(field.name()));
                    let column: Arc<dyn Array> = match (input, field.data_type()) {
                        (_, DataType::Float64) => Arc::new(Float64Array::from_iter(
                            cells.map(|v| v.and_then(Value::as_f64)),
                        )),
                        (_, DataType::Boolean) => Arc::new(BooleanArray::from_iter(
                            cells.map(|v| v.and_then(Value::as_bool)),
                        )),
                        (Input::JsonText, _) => Arc::new(StringArray::from_iter(
                            cells.map(|v| v.map(Value::to_string)),
                        )),
                        _ => Arc::new(StringArray::from_iter(cells.map(|v| match v {
                            Some(Value::String(text)) => Some(text.clone()),
                            Some(Value::Null) | None => None,
                            Some(other) => Some(other.to_string()),
                        }))),
                    };
                    column
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        })
        .collect()
}

fn bench(name: &str, records: &[Value]) {
    let text = SHIPPED_SCHEMAS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("schema")
        .1;
    let document: Value = serde_json::from_str(text).expect("json");
    let engine = CompiledSchema::compile(name, document.clone()).expect("compiles");
    let reference = reference_validator(&document).expect("reference");
    let names: Vec<String> = document["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();

    let started = Instant::now();
    let row_by_row_invalid = records.iter().filter(|r| !reference.is_valid(r)).count();
    let row_by_row = started.elapsed().as_secs_f64();
    let rows = records.len() as f64;

    for input in [Input::Typed, Input::CsvText, Input::JsonText] {
        let batches = batches(records, &names, input);
        let started = Instant::now();
        let mut vectorized_invalid = 0;
        for batch in &batches {
            let positions = consecutive_positions("bench", 1, batch.num_rows());
            vectorized_invalid += engine
                .validate(batch, &positions)
                .expect("validates")
                .rejected
                .len();
        }
        let vectorized = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.1}× | {vectorized_invalid} / {row_by_row_invalid} |",
            records.len(),
            input.name(),
            vectorized,
            rows / vectorized,
            row_by_row,
            rows / row_by_row,
            row_by_row / vectorized,
        );
        assert_eq!(
            vectorized_invalid, row_by_row_invalid,
            "both engines must refuse the same rows"
        );
    }
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let desa = desa_codes();
    let mut rng = StdRng::seed_from_u64(3214);
    let residents: Vec<Value> = (0..rows)
        .map(|i| resident(&mut rng, &desa, i, i % 100 == 57))
        .collect();
    let observations: Vec<Value> = (0..rows)
        .map(|i| observation(&mut rng, &desa, i, i % 100 == 57))
        .collect();
    println!(
        "| schema | rows | engine input | vectorized s | vectorized rows/s | jsonschema s | jsonschema rows/s | speed-up | invalid (vectorized / jsonschema) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    bench("penduduk", &residents);
    bench("observasi_statistik", &observations);
}
