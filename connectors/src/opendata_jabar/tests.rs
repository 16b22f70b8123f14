//! The Open Data Jabar preset against a mock that replays the real API's shape.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::*;
use crate::rest_json::tests::{ids, read_all, serve};

/// One real page of the API (`limit=100&skip=0`, 378 records in all).
const REAL_PAGE: &str = include_str!("../../../tests/fixtures/opendata_jabar/api_page_skip_0.json");

/// The whole dataset the real page belongs to: `meta.total_record` records, numbered like
/// the real ones, the other fields taken from the real page in turn.
fn dataset() -> (Value, Vec<Value>) {
    let page: Value = serde_json::from_str(REAL_PAGE).unwrap();
    let total = page["meta"]["total_record"].as_u64().unwrap() as usize;
    let real = page["data"].as_array().unwrap();
    let records = (0..total)
        .map(|i| {
            let mut record = real[i % real.len()].clone();
            record["id"] = json!(i + 1);
            record
        })
        .collect();
    (page, records)
}

/// Pages the dataset by `skip` and `limit`, with `meta` as the real API writes it.
async fn page(
    State((template, records)): State<(Value, Vec<Value>)>,
    Query(q): Query<HashMap<String, usize>>,
) -> Json<Value> {
    let (skip, limit) = (q["skip"], q["limit"]);
    let mut body = template;
    body["data"] = json!(records.iter().skip(skip).take(limit).collect::<Vec<_>>());
    body["meta"] = json!({
        "skip": skip,
        "limit": limit,
        "total_record": records.len(),
        "total_page": records.len().div_ceil(limit),
    });
    Json(body)
}

fn preset(url: String, limit: u64) -> OpendataJabarConfig {
    OpendataJabarConfig {
        url,
        limit,
        concurrency: 2,
        requests_per_second: None,
        query: Vec::new(),
    }
}

#[tokio::test]
async fn reads_every_page_of_the_real_shape_once() {
    let (template, records) = dataset();
    let router = Router::new()
        .route("/api-backend/bigdata/bpbd/banjir", get(page))
        .with_state((template, records.clone()));
    let base = serve(router).await;
    let source = preset(format!("{base}/api-backend/bigdata/bpbd/banjir"), 100)
        .source()
        .unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    let got = ids(&batches);
    assert_eq!(got.len(), 378, "meta.total_record records, in 4 pages");
    let expected: Vec<String> = (1..=378).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "each once, in order");
    let columns: Vec<String> = batches[0]
        .batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns,
        vec![
            "id",
            "kode_provinsi",
            "nama_provinsi",
            "kode_kabupaten_kota",
            "nama_kabupaten_kota",
            "jumlah_banjir",
            "satuan",
            "tahun"
        ]
    );
    let last = batches.last().unwrap();
    let position = last.positions.last().unwrap();
    assert!(position.source.contains("skip=300"), "{}", position.source);
    assert_eq!(position.line, 78);
}

#[tokio::test]
async fn an_error_flag_in_a_200_response_fails_the_read() {
    let router = Router::new().route(
        "/api-backend/bigdata/x/y",
        get(|| async {
            Json(json!({ "message": "Dataset tidak ditemukan", "error": 1, "data": [] }))
        }),
    );
    let base = serve(router).await;
    let source = preset(format!("{base}/api-backend/bigdata/x/y"), 100)
        .source()
        .unwrap();
    let error = read_all(&source, None).await.unwrap_err().to_string();
    assert!(
        error.contains("Dataset tidak ditemukan") && error.contains("/error"),
        "{error}"
    );
}
