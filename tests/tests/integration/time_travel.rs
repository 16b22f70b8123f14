//! Versions: an overwrite keeps the old version readable, and everything survives a restart.

use crate::harness::{Hub, fixture};

fn only_year(year: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines.filter(|l| l.ends_with(&format!(",{year}"))) {
        out.push_str(line);
        out.push('\n');
    }
    let path = dir.join(format!("gk_{year}.csv"));
    std::fs::write(&path, out).unwrap();
    path
}

async fn record_count(hub: &Hub, query: &str) -> (u64, String) {
    let response = hub
        .get(
            &hub.admin_key,
            &format!("/api/v1/datasets/stats.gk/records?{query}"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let version = response.headers()["simpul-version"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    (body["row_count"].as_u64().unwrap(), version)
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_keeps_old_versions_readable_and_data_survives_a_restart() {
    let mut hub = Hub::start();
    let full = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&["ingest", full.to_str().unwrap(), "--dataset", "stats.gk"]);
    let only_2018 = only_year("2018", hub.dir.path());
    let report = hub.cli_ok(&[
        "ingest",
        only_2018.to_str().unwrap(),
        "--dataset",
        "stats.gk",
        "--mode",
        "overwrite",
    ]);
    assert!(report.contains("version 2"), "{report}");

    assert_eq!(record_count(&hub, "").await, (27, "2".to_string()));
    assert_eq!(record_count(&hub, "version=1").await, (81, "1".to_string()));
    assert_eq!(record_count(&hub, "version=0").await, (0, "0".to_string()));
    let missing = hub
        .get(
            &hub.admin_key,
            "/api/v1/datasets/stats.gk/records?version=9",
        )
        .await;
    assert_eq!(missing.status(), 404);

    let history: serde_json::Value = hub.json("/api/v1/datasets/stats.gk/versions").await;
    let versions = history["versions"].as_array().unwrap();
    let summary: Vec<(i64, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(2, "WRITE"), (1, "WRITE"), (0, "CREATE TABLE")]
    );
    assert_eq!(versions[0]["parameters"]["mode"], "Overwrite");
    assert_eq!(versions[0]["simpul"]["rows_written"], 27);

    let old_key = hub.admin_key.clone();
    let printed = hub.restart();
    assert_eq!(
        printed, None,
        "the admin key is printed on the first start only"
    );
    assert_eq!(record_count(&hub, "").await, (27, "2".to_string()));
    assert_eq!(record_count(&hub, "version=1").await, (81, "1".to_string()));
    let rows = hub.rows("select count(*) as n from ref.wilayah").await;
    assert_eq!(
        rows[0]["n"], 210,
        "reference data is loaded once, not again on restart"
    );
    assert_eq!(hub.get(&old_key, "/api/v1/datasets").await.status(), 200);
}
