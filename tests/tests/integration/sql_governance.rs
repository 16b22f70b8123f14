//! Query governance over HTTP: the admission queue, the memory limit, masking, time travel
//! and the query log.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Hub, fixture};

/// Runs for minutes unless stopped.
const ENDLESS: &str = "select count(*) from generate_series(1, 100000000000) where value % 7 = 3";

#[tokio::test(flavor = "multi_thread")]
async fn a_query_that_finds_no_free_slot_gets_503_with_retry_after() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_QUERY_MAX_CONCURRENT", "1"),
        ("SIMPUL_QUERY_MAX_QUEUED", "1"),
        ("SIMPUL_QUERY_QUEUE_TIMEOUT_SECS", "1"),
        ("SIMPUL_QUERY_TIMEOUT_SECS", "4"),
    ]);
    let (busy, (waiting, refused)) = tokio::join!(
        hub.sql(&hub.admin_key, ENDLESS, "application/json"),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // One may wait, for a second; a second waiter is refused at once.
            tokio::join!(
                hub.sql(&hub.admin_key, "select 1 as x", "application/json"),
                async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    hub.sql(&hub.admin_key, "select 2 as x", "application/json")
                        .await
                }
            )
        }
    );
    for response in [waiting, refused] {
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("query."),
            "{body}"
        );
    }
    assert_eq!(busy.status(), 504, "the long query hits query.timeout_secs");
    let after = hub.rows("select 3 as x").await;
    assert_eq!(after, vec![json!({"x": 3})], "a slot is free again");
    let outcomes = hub
        .rows("select outcome, count(*) as n from simpul.query_log where outcome <> 'succeeded' group by outcome order by outcome")
        .await;
    assert_eq!(
        outcomes,
        vec![
            json!({"outcome": "refused", "n": 2}),
            json!({"outcome": "timed_out", "n": 1})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_limit_spills_what_it_can_and_refuses_the_rest_clearly() {
    let hub = Hub::start_with_env(&[("SIMPUL_QUERY_MEMORY_LIMIT_MB", "8")]);
    let grouped = hub
        .rows(
            "select count(*) as groups from (select value % 3000000 as k, count(*) \
             from generate_series(1, 6000000) group by 1)",
        )
        .await;
    assert_eq!(grouped[0]["groups"], 3_000_000, "the aggregation spilled");
    let response = hub
        .sql(
            &hub.admin_key,
            "select value from generate_series(1, 3000000) order by value desc limit 2 offset 1000000",
            "application/json",
        )
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("needs more memory than allowed"),
        "{body}"
    );
    assert_eq!(hub.rows("select 1 as x").await, vec![json!({"x": 1})]);
}

#[tokio::test(flavor = "multi_thread")]
async fn analysts_see_personal_columns_masked_over_http_sql_and_records() {
    let hub = Hub::start();
    hub.ingest_residents();
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let response = hub
        .sql(
            &analyst,
            "select nik, nama, jenis_kelamin from dukcapil.penduduk order by nik",
            "application/json",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["rows"][0],
        json!({"nik": "3214**********01", "nama": "B*** S******", "jenis_kelamin": "L"})
    );
    let records: Value = hub
        .get(
            &analyst,
            "/api/v1/datasets/dukcapil.penduduk/records?columns=nik,alamat&limit=1",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        records["rows"][0],
        json!({"nik": "3214**********01", "alamat": "[disamarkan]"})
    );
    let admin = hub
        .rows("select nik from dukcapil.penduduk order by nik limit 1")
        .await;
    assert_eq!(admin, vec![json!({"nik": "3214011505900001"})]);
    let hidden = hub
        .sql(&analyst, "select * from simpul.audit", "application/json")
        .await;
    assert_eq!(hidden.status(), 400, "operational tables are for admins");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_of_and_as_of_read_earlier_versions_in_sql() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", "stats.gk"]);
    let first_commit = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", "stats.gk"]);
    let counts = hub
        .rows(&format!(
            "select (select count(*) from stats.gk) as now, \
                    (select count(*) from version_of('stats.gk', 1)) as v1, \
                    (select count(*) from as_of('stats.gk', '{}')) as then",
            first_commit.to_rfc3339()
        ))
        .await;
    assert_eq!(counts, vec![json!({"now": 162, "v1": 81, "then": 81})]);
    for (sql, words) in [
        (
            "select * from version_of('stats.gk', 99)",
            "version 99 does not exist",
        ),
        (
            "select * from version_of('stats.gk', 'one')",
            "version_of takes",
        ),
        ("select * from as_of('stats.gk', 'yesterday')", "RFC 3339"),
        (
            "select * from as_of('stats.gk', '2000-01-01T00:00:00Z')",
            "did not exist yet",
        ),
        (
            "select * from version_of('stats.nope', 1)",
            "does not exist",
        ),
    ] {
        let response = hub.sql(&hub.admin_key, sql, "application/json").await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status == 400 || status == 404, "{sql}: {status} {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(words),
            "{sql}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_http_query_is_in_the_query_log_with_its_tables_rows_and_outcome() {
    let hub = Hub::start();
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let ok = hub
        .sql(
            &analyst,
            "select kode from ref.wilayah where level = 'kecamatan'",
            "text/csv",
        )
        .await;
    assert_eq!(ok.status(), 200);
    let _ = ok.text().await;
    let refused = hub
        .sql(&analyst, "drop table ref.wilayah", "application/json")
        .await;
    assert_eq!(refused.status(), 400);
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = hub
            .rows(
                "select protocol, sql, tables, rows, outcome, error is null as clean \
                 from simpul.query_log where client_id = 'bappeda-analitik' order by at",
            )
            .await;
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows,
        vec![
            json!({"protocol": "http", "sql": "select kode from ref.wilayah where level = 'kecamatan'",
                   "tables": "ref.wilayah", "rows": 17, "outcome": "succeeded", "clean": true}),
            json!({"protocol": "http", "sql": "drop table ref.wilayah", "tables": "",
                   "rows": 0, "outcome": "refused", "clean": false}),
        ]
    );
}
