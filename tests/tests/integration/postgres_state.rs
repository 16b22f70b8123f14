//! The state store on a real PostgreSQL server instead of SQLite.
//!
//! Runs when `SIMPUL_TEST_POSTGRES_URL` names a server the tests may create databases on
//! (`.ci/run` starts one); otherwise it says loudly that it was skipped.

use std::process::Command;

use crate::harness::{Hub, fixture};

/// Creates a fresh database on the test server and returns its URL.
pub(crate) fn fresh_database(admin_url: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("simpul_test_{}_{nanos}", std::process::id());
    let status = Command::new("psql")
        .arg(admin_url)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            &format!("create database {name}"),
        ])
        .status()
        .expect("psql is installed with the PostgreSQL server");
    assert!(status.success(), "cannot create database {name}");
    let mut url = reqwest::Url::parse(admin_url).expect("SIMPUL_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_keeps_its_state_on_postgresql() {
    let Ok(admin_url) = std::env::var("SIMPUL_TEST_POSTGRES_URL") else {
        // Written to stderr directly, past the test harness's output capture, so that the skip
        // shows in every run.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n*** SKIPPED the_hub_keeps_its_state_on_postgresql: SIMPUL_TEST_POSTGRES_URL is not set. \
              Start PostgreSQL and set it (see README, Development) to run this test. ***\n",
        );
        return;
    };
    let state_url = fresh_database(&admin_url);
    let mut hub = Hub::start_with_env(&[
        ("SIMPUL_STATE_URL", state_url.as_str()),
        ("SIMPUL_DEMO_DATA", "false"),
    ]);

    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    let report = hub.cli_ok(&[
        "ingest",
        file.to_str().unwrap(),
        "--dataset",
        "stats.gk",
        "--tag",
        "sosial",
    ]);
    assert!(report.contains("rows written:  81"), "{report}");
    let listed: serde_json::Value = hub.json("/api/v1/datasets?tag=sosial").await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["datasets"][0]["row_count"], 81);

    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let rows = hub.rows("select count(*) as n from stats.gk").await;
    assert_eq!(rows[0]["n"], 81);
    assert_eq!(hub.get(&analyst, "/api/v1/datasets").await.status(), 200);
    hub.cli_ok(&["keys", "revoke", "bappeda-analisis"]);
    assert_eq!(hub.get(&analyst, "/api/v1/datasets").await.status(), 401);

    // User accounts and published aggregates keep their rows in PostgreSQL too.
    let made = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/users",
            &serde_json::json!({"id": "rina", "member": "BAPPEDA", "subsystem": "ANALISIS",
                                "role": "analyst", "password": "sandi-awal-rina-2026"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let reset = hub
        .put_json(
            &hub.admin_key,
            "/api/v1/users/rina/password",
            &serde_json::json!({"password": "sandi-baru-rina-2026"}),
        )
        .await;
    assert_eq!(reset.status(), 204);
    assert_eq!(hub.json("/api/v1/users").await["users"][0]["id"], "rina");
    let address = hub.pg_url.trim_start_matches("postgresql://");
    let (pg, connection) = tokio_postgres::connect(
        &format!("postgresql://rina:sandi-baru-rina-2026@{address}/simpul"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("rina logs in with her new password");
    tokio::spawn(connection);
    let n: i64 = pg
        .query_one("select count(*) from stats.gk", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 81);
    let aggregate = serde_json::json!({
        "sql": "select tahun, count(*) as n from stats.gk group by tahun",
        "aggregate": {"count": "n", "keys": ["tahun"], "min_count": 5}
    });
    let saved = hub
        .put_json(&hub.admin_key, "/api/v1/queries/gk_per_tahun", &aggregate)
        .await;
    assert_eq!(saved.status(), 201, "{}", saved.text().await.unwrap());
    let listed = hub.json("/api/v1/queries").await;
    let gk = listed["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "gk_per_tahun")
        .expect("the saved aggregate");
    assert_eq!(gk["aggregate"]["min_count"], 5);

    let body = std::fs::read(&file).unwrap();
    for _ in 0..2 {
        let upload = hub
            .http
            .post(format!("{}/api/v1/datasets/stats.unggah/ingest", hub.url))
            .bearer_auth(&hub.admin_key)
            .header("content-type", "text/csv")
            .header("idempotency-key", "sekali")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 201);
    }
    assert_eq!(
        hub.rows("select count(*) as n from stats.unggah").await[0]["n"],
        81
    );

    assert_eq!(
        hub.restart(),
        None,
        "the admin key lives in PostgreSQL and is not issued again"
    );
    assert_eq!(
        hub.rows("select count(*) as n from ref.wilayah").await[0]["n"],
        210
    );
    // Op-monitoring records land in PostgreSQL too (written in the background).
    let mut monitored = 0;
    for _ in 0..100 {
        monitored = hub
            .rows("select count(*) as n from simpul.opmon where service = '/api/v1/sql'")
            .await[0]["n"]
            .as_i64()
            .unwrap();
        if monitored > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(monitored > 0, "no op-monitoring record in PostgreSQL");

    // Bus publishes: idempotency keys, the message log's chain and seals, and the hub's
    // public keys live in PostgreSQL too, and verify offline.
    hub.empty_residents("dukcapil.warga");
    for attempt in 0..2 {
        let response = hub
            .http
            .post(format!("{}/api/v1/bus/datasets/dukcapil.warga/records", hub.url))
            .bearer_auth(&hub.admin_key)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "pg-1")
            .body(r#"{"nik":"3214011505900001","nama":"Budi Santoso","tanggal_lahir":"1990-05-15","jenis_kelamin":"L","kode_wilayah":"32.14.01.1001"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().contains_key("idempotency-replayed"),
            attempt == 1
        );
    }
    let verified = hub.cli_ok(&["messagelog", "verify"]);
    assert!(verified.contains("intact: 2 records"), "{verified}");
}
