//! Bad input gets a clear error and loses nothing.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Hub, fixture, simpul_bin, snapshot_files};

fn write(hub: &Hub, name: &str, bytes: &[u8]) -> String {
    let path = hub.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn ingest_fixture(hub: &Hub, dataset: &str) {
    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", dataset]);
}

const HEADER: &str = "id,kode_provinsi,nama_provinsi,kode_kabupaten_kota,nama_kabupaten_kota,garis_kemiskinan_perkapita,satuan,tahun\n";

#[tokio::test(flavor = "multi_thread")]
async fn malformed_rows_are_kept_in_rejects_with_line_and_reason() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    ingest_fixture(&hub, "stats.gk");
    let mut text = HEADER.as_bytes().to_vec();
    text.extend(b"100,32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,400000,RUPIAH,2021\n");
    text.extend(b"101,32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,400000,RUPIAH,2021,extra\n");
    text.extend(b"102,32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,400000,RUPIAH,dua ribu\n");
    text.extend(b"103,32,JAWA BARAT,3214,KABUPATEN PURWAK\xffRTA,400000,RUPIAH,2021\n");
    text.extend(b"104,32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,,RUPIAH,2021\n");
    let file = write(&hub, "messy.csv", &text);
    let report = hub.cli_ok(&["ingest", &file, "--dataset", "stats.gk"]);
    assert!(report.contains("rows read:     5"), "{report}");
    assert!(report.contains("rows written:  2"), "{report}");
    assert!(report.contains("rows rejected: 3"), "{report}");
    assert!(
        report.contains("line 3: expected 8 fields, found 9"),
        "{report}"
    );

    let rejects = hub
        .rows("select line, reason, errors, record, source from stats.gk__rejects order by line")
        .await;
    let lines: Vec<i64> = rejects
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4, 5]);
    assert_eq!(rejects[0]["reason"], "expected 8 fields, found 9");
    assert_eq!(
        rejects[1]["reason"],
        "tahun: 'dua ribu' is not a whole number"
    );
    let errors: serde_json::Value =
        serde_json::from_str(rejects[1]["errors"].as_str().unwrap()).unwrap();
    assert_eq!(errors[0]["pointer"], "/tahun");
    assert_eq!(errors[0]["keyword"], "type");
    let record: serde_json::Value =
        serde_json::from_str(rejects[1]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["id"], "102", "the original values are kept");
    assert!(
        rejects[2]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8")
    );
    assert!(
        rejects[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("messy.csv")
    );

    let totals = hub
        .rows("select count(*) as n from stats.gk where tahun = 2021")
        .await;
    assert_eq!(
        totals[0]["n"], 2,
        "the good rows landed; the empty value is a null"
    );
    let meta: serde_json::Value = hub.json("/api/v1/datasets/stats.gk").await;
    assert_eq!(meta["dataset"]["row_count"], 83);
    assert_eq!(meta["dataset"]["rejected_count"], 3);
    let via_api: serde_json::Value = hub
        .get(
            &hub.admin_key,
            "/api/v1/datasets/stats.gk/rejects?columns=line&sort=line",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        via_api["rows"],
        serde_json::json!([{"line": 3}, {"line": 4}, {"line": 5}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_with_other_columns_is_refused_naming_them_and_commits_nothing() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    ingest_fixture(&hub, "stats.gk");
    let before = snapshot_files(&hub.table_dir("stats", "gk"));
    let file = write(
        &hub,
        "renamed.csv",
        b"id,kode_provinsi,nama_provinsi,kode_kab,nama_kabupaten_kota,garis_kemiskinan_perkapita,satuan,tahun,catatan\n1,32,JB,3214,P,1,R,2021,x\n",
    );
    let output = hub.cli(&["ingest", &file, "--dataset", "stats.gk"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing column(s): kode_kabupaten_kota"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unexpected column(s): catatan, kode_kab"),
        "{stderr}"
    );
    assert_eq!(
        snapshot_files(&hub.table_dir("stats", "gk")),
        before,
        "nothing was written"
    );
    let rows = hub.rows("select count(*) as n from stats.gk").await;
    assert_eq!(rows[0]["n"], 81);
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_and_header_only_files() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let empty = write(&hub, "empty.csv", b"");
    let output = hub.cli(&["ingest", &empty, "--dataset", "stats.kosong"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the file is empty"));
    assert_eq!(
        hub.get(&hub.admin_key, "/api/v1/datasets/stats.kosong")
            .await
            .status(),
        404
    );

    let header_only = write(&hub, "header.csv", b"kode,nama\n");
    let report = hub.cli_ok(&["ingest", &header_only, "--dataset", "stats.header"]);
    assert!(report.contains("rows read:     0"), "{report}");
    let rows = hub.rows("select count(*) as n from stats.header").await;
    assert_eq!(rows[0]["n"], 0);
    let columns = hub
        .rows("select column_name from information_schema.columns where table_schema = 'stats' and table_name = 'header' order by ordinal_position")
        .await;
    assert_eq!(
        columns,
        vec![
            serde_json::json!({"column_name": "kode"}),
            serde_json::json!({"column_name": "nama"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_dataset_bad_sql_and_unknown_table_are_clear_errors() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let unknown = hub
        .get(&hub.admin_key, "/api/v1/datasets/stats.tidak_ada")
        .await;
    assert_eq!(unknown.status(), 404);
    let problem: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(problem["detail"], "dataset stats.tidak_ada does not exist");

    let bad = hub
        .sql(
            &hub.admin_key,
            "selec nama from ref.wilayah",
            "application/json",
        )
        .await;
    assert_eq!(bad.status(), 400);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("Expected"),
        "the parser's message: {problem}"
    );

    let missing = hub
        .sql(
            &hub.admin_key,
            "select * from stats.tidak_ada",
            "application/json",
        )
        .await;
    assert_eq!(missing.status(), 400);
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("tidak_ada"),
        "{problem}"
    );

    let not_json = hub
        .http
        .post(format!("{}/api/v1/sql", hub.url))
        .bearer_auth(&hub.admin_key)
        .body("select 1")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let unacceptable = hub.sql(&hub.admin_key, "select 1", "image/png").await;
    assert_eq!(unacceptable.status(), 406);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_HTTP_BODY_LIMIT_BYTES", "2000"),
    ]);
    let long_sql = format!("select '{}' as x", "a".repeat(5000));
    let response = hub.sql(&hub.admin_key, &long_sql, "application/json").await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let body = std::fs::read(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    assert!(body.len() > 2000);
    let upload = hub
        .http
        .post(format!("{}/api/v1/datasets/stats.besar/ingest", hub.url))
        .bearer_auth(&hub.admin_key)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 413);
    assert_eq!(
        hub.get(&hub.admin_key, "/api/v1/datasets/stats.besar")
            .await
            .status(),
        404
    );
    assert!(!hub.table_dir("stats", "besar").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_upload_is_applied_once() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let body = std::fs::read(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let send = |key: &'static str, body: Vec<u8>| {
        hub.http
            .post(format!("{}/api/v1/datasets/stats.gk/ingest", hub.url))
            .bearer_auth(&hub.admin_key)
            .header("content-type", "text/csv")
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    let first = send("unggah-1", body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = send("unggah-1", body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the retry gets the same answer");
    let rows = hub.rows("select count(*) as n from stats.gk").await;
    assert_eq!(rows[0]["n"], 81, "and nothing is written twice");

    let mut other = body.clone();
    other.extend(b"999,32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,1,RUPIAH,2021\n");
    let conflict = send("unggah-1", other).await.unwrap();
    assert_eq!(conflict.status(), 409);
}

/// Lines of a large CSV: enough rows that writing them takes a while in a debug build.
fn large_csv(rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 80);
    out.extend(HEADER.as_bytes());
    for i in 0..rows {
        writeln!(
            out,
            "{i},32,JAWA BARAT,3214,KABUPATEN PURWAKARTA,{},RUPIAH,{}",
            300_000 + i % 1000,
            2000 + i % 25
        )
        .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_an_ingest_midway_leaves_only_whole_commits() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    ingest_fixture(&hub, "stats.gk");
    let big = write(&hub, "big.csv", &large_csv(3_000_000));
    let table = hub.table_dir("stats", "gk");
    let files_before = snapshot_files(&table);

    let mut child = Command::new(simpul_bin())
        .arg("--data-dir")
        .arg(hub.dir.path())
        .args(["ingest", &big, "--dataset", "stats.gk"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the ingest has started writing data files, then kill it hard.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest finished before it could be killed"
        );
        let writing = snapshot_files(&table).len() > files_before.len();
        if writing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ingest never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let log: Vec<_> = snapshot_files(&table.join("_delta_log"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(
        log.len(),
        2,
        "no commit was made: create + the first ingest only"
    );
    let rows = hub.rows("select count(*) as n from stats.gk").await;
    assert_eq!(rows[0]["n"], 81, "the killed ingest left no partial rows");

    let report = hub.cli_ok(&[
        "ingest",
        &fixture("garis_kemiskinan_kabupatenkota.csv").to_string_lossy(),
        "--dataset",
        "stats.gk",
    ]);
    assert!(report.contains("rows written:  81"), "{report}");
    let rows = hub.rows("select count(*) as n from stats.gk").await;
    assert_eq!(rows[0]["n"], 162, "ingest works again after the crash");
}
