//! `rest_json` read speed: a local mock API serves RECORDS records (1,000,000 by default) in
//! pages of 1,000 in Open Data Jabar's shape (`data`, `meta.total_record`), and the connector
//! reads them all into raw Arrow batches, one page at a time and then with concurrent pages.
//!
//! Run: `cargo run --release -p simpul-connectors --example rest_json_bench [RECORDS]`
//!
//! The mock runs as a child process (this example with `serve`), so the peak RSS printed is the
//! reader's alone (`VmHWM` of this process).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use axum::extract::Query;
use axum::routing::get;
use futures::StreamExt;
use serde_json::json;
use simpul_connectors::opendata_jabar::OpendataJabarConfig;
use simpul_connectors::rest_json::STREAM;
use simpul_connectors::{ReadEvent, Source};

const PAGE: u64 = 1000;

/// Record `i` of the mock dataset: the long format of Open Data Jabar.
fn record(i: u64) -> serde_json::Value {
    let kabupaten = [3201, 3202, 3203, 3214, 3215, 3216, 3217, 3273, 3275];
    json!({
        "id": i + 1,
        "kode_provinsi": 32,
        "nama_provinsi": "JAWA BARAT",
        "kode_kabupaten_kota": kabupaten[(i % 9) as usize],
        "nama_kabupaten_kota": format!("KABUPATEN {}", i % 9),
        "jumlah_penduduk_miskin": (i * 7919) % 100_000,
        "satuan": "JIWA",
        "tahun": 2010 + (i / 100_000),
    })
}

async fn serve(total: u64) {
    let router = axum::Router::new().route(
        "/api-backend/bigdata/bps/od_kemiskinan",
        get(move |Query(q): Query<HashMap<String, u64>>| async move {
            let skip = q.get("skip").copied().unwrap_or(0);
            let limit = q.get("limit").copied().unwrap_or(PAGE);
            let data: Vec<_> = (skip..(skip + limit).min(total)).map(record).collect();
            axum::Json(json!({
                "message": "Data retrieved successfully",
                "error": 0,
                "data": data,
                "meta": {
                    "skip": skip,
                    "limit": limit,
                    "total_record": total,
                    "total_page": total.div_ceil(limit),
                },
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    axum::serve(listener, router).await.expect("serve");
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn read(url: &str, concurrency: usize, total: u64) -> (f64, u64) {
    let source = OpendataJabarConfig {
        url: url.to_string(),
        limit: PAGE,
        concurrency,
        requests_per_second: None,
        query: Vec::new(),
    }
    .source()
    .expect("source");
    let started = Instant::now();
    let mut rows = 0u64;
    let mut events = source.read(STREAM, None);
    while let Some(event) = events.next().await {
        if let ReadEvent::Batch(batch) = event.expect("read") {
            rows += batch.batch.num_rows() as u64;
        }
    }
    assert_eq!(rows, total, "every record arrives once");
    (started.elapsed().as_secs_f64(), rows)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("serve") {
        let total = args
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(1_000_000);
        serve(total).await;
        return;
    }
    let total: u64 = first.and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut child = Command::new(std::env::current_exe().expect("self"))
        .args(["serve", &total.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the mock API");
    let mut address = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut address)
        .expect("address");
    let url = format!(
        "http://{}/api-backend/bigdata/bps/od_kemiskinan",
        address.trim()
    );
    println!(
        "| pages fetched at once | records | pages | seconds | records/s | peak RSS MiB (reader) |"
    );
    println!("|---|---|---|---|---|---|");
    for concurrency in [1, 4] {
        let (seconds, rows) = read(&url, concurrency, total).await;
        println!(
            "| {concurrency} | {rows} | {} | {seconds:.2} | {:.0} | {:.0} |",
            total.div_ceil(PAGE),
            rows as f64 / seconds,
            peak_rss_mib()
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
