//! The row limit cuts results and says so; the timeout stops long queries.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Hub, read_parquet};

const ALL_DESA: &str = "select kode from ref.wilayah order by kode";

#[tokio::test(flavor = "multi_thread")]
async fn the_row_limit_cuts_results_and_every_format_says_so() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_QUERY_ROW_LIMIT", "5"),
    ]);

    let response = hub.sql(&hub.admin_key, ALL_DESA, "application/json").await;
    assert_eq!(response.headers()["simpul-row-limit"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["rows"].as_array().unwrap().len(), 5);
    assert_eq!(body["row_count"], 5);
    assert_eq!(body["truncated"], true);

    let exact: serde_json::Value = hub
        .sql(
            &hub.admin_key,
            "select kode from ref.wilayah order by kode limit 5",
            "application/json",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        exact["truncated"], false,
        "a result of exactly the limit is whole"
    );

    let response = hub
        .sql(&hub.admin_key, ALL_DESA, "application/vnd.apache.parquet")
        .await;
    let parquet = read_parquet(response.bytes().await.unwrap());
    assert_eq!(parquet.footer["simpul.truncated"], "true");
    assert_eq!(parquet.footer["simpul.row_count"], "5");
    let rows: usize = parquet.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);

    // CSV and Arrow carry the verdict in HTTP trailers, sent to clients that ask for them.
    let address = hub.url.trim_start_matches("http://").to_string();
    let body = serde_json::json!({ "sql": ALL_DESA }).to_string();
    let request = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nAccept: text/csv\r\n\
         TE: trailers\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        hub.admin_key,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.contains("transfer-encoding: chunked"), "{raw}");
    assert!(raw.contains("32.14.01.1001"), "{raw}");
    assert!(raw.contains("simpul-truncated: true"), "{raw}");
    assert!(raw.contains("simpul-row-count: 5"), "{raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_past_the_timeout_is_stopped_with_504() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_QUERY_TIMEOUT_SECS", "1"),
    ]);
    // Ten billion generated rows: minutes of work, stopped after one second.
    let slow = "select sum(value) from range(10000000000)";
    let started = std::time::Instant::now();
    let response = hub.sql(&hub.admin_key, slow, "application/json").await;
    assert_eq!(response.status(), 504);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("1 s"),
        "{problem}"
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "the answer came at the timeout, not at the end"
    );
    let health = hub
        .http
        .get(format!("{}/health/live", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let rows = hub.rows("select count(*) as n from ref.wilayah").await;
    assert_eq!(
        rows[0]["n"], 210,
        "the stopped query frees its threads for the next one"
    );
}
