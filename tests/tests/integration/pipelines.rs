//! `simpul pipelines list|check|discover` on pipeline files, against a mock Open Data Jabar
//! API on loopback that answers in the real API's shape.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::harness::{Hub, fixture};

/// Serves the real fixture page at `/api-backend/bigdata/bpbd/banjir` (paged by skip and
/// limit) and a 404 at `/api-backend/bigdata/bpbd/hilang`.
async fn mock_opendata_jabar() -> String {
    let text = std::fs::read_to_string(fixture("opendata_jabar/api_page_skip_0.json")).unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    let router = Router::new()
        .route(
            "/api-backend/bigdata/bpbd/banjir",
            get(
                move |Query(q): Query<std::collections::HashMap<String, usize>>| {
                    let mut body = page.clone();
                    async move {
                        let limit = q.get("limit").copied().unwrap_or(100);
                        let data: Vec<Value> = body["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .take(limit)
                            .cloned()
                            .collect();
                        body["data"] = json!(data);
                        Json(body)
                    }
                },
            ),
        )
        .route(
            "/api-backend/bigdata/bpbd/hilang",
            get(|| async { (StatusCode::NOT_FOUND, "dataset tidak ada") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn write_pipeline(hub: &Hub, file: &str, name: &str, url: &str) {
    let dir = hub.dir.path().join("pipelines");
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"
name = "{name}"
schedule = "0 6 * * 1"
description = "Kejadian banjir per kabupaten/kota, Jawa Barat"

[source]
connector = "opendata_jabar"
url = "{url}"
limit = 50

[target]
dataset = "stats.banjir"
"#
    );
    std::fs::write(dir.join(file), text).unwrap();
}

// The CLI runs block this thread, so the mock server needs a worker of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_listed_checked_and_discovered_from_their_files() {
    let base = mock_opendata_jabar().await;
    let hub = Hub::start();
    write_pipeline(
        &hub,
        "banjir.toml",
        "banjir_jabar",
        &format!("{base}/api-backend/bigdata/bpbd/banjir"),
    );
    write_pipeline(
        &hub,
        "hilang.toml",
        "hilang",
        &format!("{base}/api-backend/bigdata/bpbd/hilang"),
    );

    let listed = hub.cli_ok(&["pipelines", "list"]);
    for expected in [
        "banjir_jabar",
        "hilang",
        "opendata_jabar",
        "stats.banjir",
        "0 6 * * 1",
        "WIB",
    ] {
        assert!(listed.contains(expected), "{expected} in:\n{listed}");
    }

    let checked = hub.cli_ok(&["pipelines", "check", "banjir_jabar"]);
    assert!(checked.contains("ok: banjir_jabar"), "{checked}");

    let discovered = hub.cli_ok(&["pipelines", "discover", "banjir_jabar"]);
    for column in [
        "kode_kabupaten_kota",
        "nama_kabupaten_kota",
        "jumlah_banjir",
        "tahun",
    ] {
        assert!(discovered.contains(column), "{column} in:\n{discovered}");
    }
    assert!(
        discovered.contains("Int64"),
        "inferred types:\n{discovered}"
    );

    let failed = hub.cli(&["pipelines", "check", "hilang"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("/api-backend/bigdata/bpbd/hilang") && stderr.contains("404"),
        "the error names the URL and the status: {stderr}"
    );

    let unknown = hub.cli(&["pipelines", "check", "tidak_ada"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("banjir_jabar, hilang"), "{stderr}");

    std::fs::write(
        hub.dir.path().join("pipelines/rusak.toml"),
        "name = \"rusak\"\n",
    )
    .unwrap();
    let broken = hub.cli(&["pipelines", "list"]);
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("rusak.toml"),
        "a bad file is named: {stderr}"
    );
}
