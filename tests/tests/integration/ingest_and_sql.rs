//! Ingest a real Open Data Jabar file and read it back over SQL in every format.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use crate::harness::{Hub, fixture, read_parquet};

/// Per year: (rows, sum of garis_kemiskinan_perkapita), computed straight from the fixture.
fn expected_by_year() -> BTreeMap<i64, (i64, i64)> {
    let mut reader = csv::Reader::from_path(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let year: i64 = record[7].parse().unwrap();
        let value: i64 = record[5].parse().unwrap();
        let entry = out.entry(year).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += value;
    }
    out
}

const BY_YEAR: &str = "select tahun, count(*) as n, sum(garis_kemiskinan_perkapita) as total \
                       from stats.garis_kemiskinan group by tahun order by tahun";

fn ingest_fixture(hub: &Hub) -> String {
    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&[
        "ingest",
        file.to_str().unwrap(),
        "--dataset",
        "stats.garis_kemiskinan",
    ])
}

fn batches_by_year(batches: &[RecordBatch]) -> BTreeMap<i64, (i64, i64)> {
    let mut out = BTreeMap::new();
    for batch in batches {
        let year = batch.column(0).as_primitive::<Int64Type>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        let total = batch.column(2).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            out.insert(year.value(i), (n.value(i), total.value(i)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_serves_the_seventeen_kecamatan_of_purwakarta() {
    let hub = Hub::start();
    let rows = hub
        .rows("select nama from ref.wilayah where level = 'kecamatan' order by kode")
        .await;
    let names: Vec<&str> = rows.iter().map(|r| r["nama"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 17);
    assert_eq!(names[0], "Purwakarta");
    assert_eq!(names[16], "Kiarapedes");
    let levels = hub
        .rows("select level, count(*) as n from ref.wilayah group by level order by level")
        .await;
    assert_eq!(
        levels,
        vec![
            serde_json::json!({"level": "desa", "n": 183}),
            serde_json::json!({"level": "kabupaten", "n": 1}),
            serde_json::json!({"level": "kecamatan", "n": 17}),
            serde_json::json!({"level": "kelurahan", "n": 9}),
        ]
    );
    let demo = hub
        .rows("select count(*) as n from stats.upah_minimum")
        .await;
    assert_eq!(demo[0]["n"], 189, "the demo dataset is loaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_ingest_reads_back_with_exact_aggregates_in_all_four_formats() {
    let hub = Hub::start();
    let report = ingest_fixture(&hub);
    assert!(report.contains("rows read:     81"), "{report}");
    assert!(report.contains("rows written:  81"), "{report}");
    assert!(report.contains("rows rejected: 0"), "{report}");
    let expected = expected_by_year();
    assert_eq!(expected.len(), 3);

    // JSON
    let rows = hub.rows(BY_YEAR).await;
    let from_json: BTreeMap<i64, (i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["tahun"].as_i64().unwrap(),
                (r["n"].as_i64().unwrap(), r["total"].as_i64().unwrap()),
            )
        })
        .collect();
    assert_eq!(from_json, expected);

    // CSV
    let response = hub.sql(&hub.admin_key, BY_YEAR, "text/csv").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("tahun,n,total"));
    let from_csv: BTreeMap<i64, (i64, i64)> = lines
        .map(|line| {
            let f: Vec<i64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            (f[0], (f[1], f[2]))
        })
        .collect();
    assert_eq!(from_csv, expected);

    // Arrow IPC stream
    let response = hub
        .sql(
            &hub.admin_key,
            BY_YEAR,
            "application/vnd.apache.arrow.stream",
        )
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let body = response.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches_by_year(&batches), expected);

    // Parquet
    let response = hub
        .sql(&hub.admin_key, BY_YEAR, "application/vnd.apache.parquet")
        .await;
    let parquet = read_parquet(response.bytes().await.unwrap());
    assert_eq!(parquet.footer["simpul.truncated"], "false");
    assert_eq!(batches_by_year(&parquet.batches), expected);

    let purwakarta = hub
        .rows("select garis_kemiskinan_perkapita as v from stats.garis_kemiskinan where kode_kabupaten_kota = '3214' and tahun = 2019")
        .await;
    assert_eq!(purwakarta, vec![serde_json::json!({"v": 367273})]);
}

/// Writes the fixture's rows as NDJSON, a JSON array and Parquet, the way other systems
/// export them: numbers as numbers, codes as strings.
fn fixture_in_other_formats(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut reader = csv::Reader::from_path(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let objects: Vec<serde_json::Value> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut object = serde_json::Map::new();
            for (name, value) in headers.iter().zip(r.iter()) {
                let json = match name {
                    "id" | "garis_kemiskinan_perkapita" | "tahun" => {
                        serde_json::json!(value.parse::<i64>().unwrap())
                    }
                    _ => serde_json::json!(value),
                };
                object.insert(name.to_string(), json);
            }
            serde_json::Value::Object(object)
        })
        .collect();

    let ndjson = dir.join("gk.ndjson");
    let mut file = std::fs::File::create(&ndjson).unwrap();
    for object in &objects {
        writeln!(file, "{object}").unwrap();
    }
    let array = dir.join("gk.json");
    std::fs::write(&array, serde_json::to_vec_pretty(&objects).unwrap()).unwrap();

    let schema = Arc::new(Schema::new(
        headers
            .iter()
            .map(|name| match name {
                "id" | "garis_kemiskinan_perkapita" | "tahun" => {
                    Field::new(name, DataType::Int64, true)
                }
                _ => Field::new(name, DataType::Utf8, true),
            })
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<Arc<dyn Array>> = schema
        .fields()
        .iter()
        .map(|field| -> Arc<dyn Array> {
            let values = objects.iter().map(|o| o[field.name()].clone());
            match field.data_type() {
                DataType::Int64 => Arc::new(arrow::array::Int64Array::from_iter(
                    values.map(|v| v.as_i64()),
                )),
                _ => Arc::new(arrow::array::StringArray::from_iter(
                    values.map(|v| v.as_str().map(String::from)),
                )),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let parquet = dir.join("gk.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&parquet).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    (ndjson, array, parquet)
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_json_array_and_parquet_ingest_to_the_same_rows_as_csv() {
    let hub = Hub::start();
    let (ndjson, array, parquet) = fixture_in_other_formats(hub.dir.path());
    let expected = expected_by_year();
    for (file, dataset) in [
        (&ndjson, "stats.gk_ndjson"),
        (&array, "stats.gk_json"),
        (&parquet, "stats.gk_parquet"),
    ] {
        let report = hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", dataset]);
        assert!(report.contains("rows written:  81"), "{dataset}: {report}");
        let rows = hub
            .rows(&BY_YEAR.replace("stats.garis_kemiskinan", dataset))
            .await;
        let got: BTreeMap<i64, (i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r["tahun"].as_i64().unwrap(),
                    (r["n"].as_i64().unwrap(), r["total"].as_i64().unwrap()),
                )
            })
            .collect();
        assert_eq!(got, expected, "{dataset}");
        let kode = hub
            .rows(&format!(
                "select kode_kabupaten_kota from {dataset} where id = 14"
            ))
            .await;
        assert_eq!(
            kode[0]["kode_kabupaten_kota"], "3214",
            "{dataset}: codes stay text"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_upload_creates_a_dataset_owned_by_the_producer_and_appends() {
    let hub = Hub::start();
    let producer = hub.key("BAPPEDA", "SIPD", "producer");
    let body = std::fs::read(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let upload = |body: Vec<u8>| {
        hub.http
            .post(format!(
                "{}/api/v1/datasets/stats.kemiskinan/ingest?classification=public",
                hub.url
            ))
            .bearer_auth(&producer)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let first = upload(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let report: serde_json::Value = first.json().await.unwrap();
    assert_eq!(report["rows_written"], 81);
    let second = upload(body).await.unwrap();
    assert_eq!(second.status(), 200);
    let rows = hub.rows("select count(*) as n from stats.kemiskinan").await;
    assert_eq!(rows[0]["n"], 162);
    let meta: serde_json::Value = hub.json("/api/v1/datasets/stats.kemiskinan").await;
    assert_eq!(meta["dataset"]["owner"], "BAPPEDA");
    assert_eq!(meta["dataset"]["classification"], "public");
    assert_eq!(meta["dataset"]["row_count"], 162);
    assert_eq!(meta["statistics"]["version"], 2);
}
