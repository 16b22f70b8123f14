//! Saved queries: typed parameters, the result cache keyed on table versions, TOML files.

use serde_json::{Value, json};

use crate::harness::{Hub, fixture};

async fn run(hub: &Hub, key: &str, path: &str) -> (u16, Option<String>, Value) {
    let response = hub.get(key, path).await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("simpul-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cache, response.json().await.unwrap())
}

async fn save(hub: &Hub, key: &str, name: &str, body: Value) -> (u16, Value) {
    let response = hub
        .http
        .put(format!("{}/api/v1/queries/{name}", hub.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_query_binds_typed_parameters_and_refuses_bad_ones() {
    let hub = Hub::start();
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let (status, cache, body) = run(
        &hub,
        &analyst,
        "/api/v1/queries/upah_minimum_kabupaten?tahun=2023&nama=KABUPATEN%20PURWAKARTA",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(body["row_count"], 1);
    assert_eq!(
        body["rows"][0]["nama_kabupaten_kota"],
        "KABUPATEN PURWAKARTA"
    );
    let (_, cache, again) = run(
        &hub,
        &analyst,
        "/api/v1/queries/upah_minimum_kabupaten?tahun=2023&nama=KABUPATEN%20PURWAKARTA",
    )
    .await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(again["rows"], body["rows"]);

    // A quote in a parameter is a value, not SQL.
    let (status, _, injected) = run(
        &hub,
        &analyst,
        "/api/v1/queries/upah_minimum_kabupaten?tahun=2023&nama=x%27%20or%20%271%27=%271",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(injected["row_count"], 0);

    for (query, words) in [
        ("", "needs parameter 'tahun'"),
        ("?tahun=dua", "must be a whole number"),
        ("?tahun=2023&kota=x", "no parameter 'kota'"),
    ] {
        let (status, _, body) = run(
            &hub,
            &analyst,
            &format!("/api/v1/queries/upah_minimum_kabupaten{query}"),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(words), "{body}");
    }
    let (status, _, _) = run(&hub, &analyst, "/api/v1/queries/tidak_ada").await;
    assert_eq!(status, 404);
    let producer = hub.key("DINKES", "SEMAR", "producer");
    let (status, _, _) = run(
        &hub,
        &producer,
        "/api/v1/queries/upah_minimum_kabupaten?tahun=2023",
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_to_a_table_the_query_reads_invalidates_its_cached_result() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", "stats.gk"]);
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let (status, body) = save(
        &hub,
        &analyst,
        "baris_per_tahun",
        json!({
            "description": "Rows of stats.gk in one year.",
            "sql": "select count(*) as n from stats.gk where tahun = $tahun",
            "params": {"tahun": {"type": "int", "default": 2019}}
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let path = "/api/v1/queries/baris_per_tahun";
    let (_, cache, first) = run(&hub, &analyst, path).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let n = first["rows"][0]["n"].as_i64().unwrap();
    assert!(n > 0);
    let (_, cache, _) = run(&hub, &analyst, path).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    let (_, cache, _) = run(&hub, &analyst, &format!("{path}?tahun=2018")).await;
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "other parameters, other entry"
    );

    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", "stats.gk"]);
    let (_, cache, after) = run(&hub, &analyst, path).await;
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "the commit moved the version"
    );
    assert_eq!(after["rows"][0]["n"].as_i64().unwrap(), 2 * n);

    let listed: Value = hub
        .get(&analyst, "/api/v1/queries")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["queries"][0]["name"], "baris_per_tahun");
    assert_eq!(listed["queries"][0]["updated_by"], "bappeda-analitik");
    let deleted = hub
        .http
        .delete(format!("{}{path}", hub.url))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, _, _) = run(&hub, &analyst, path).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_that_write_or_misuse_parameters_are_refused_at_save() {
    let hub = Hub::start();
    for (body, words) in [
        (json!({"sql": "drop table ref.wilayah"}), "read-only"),
        (
            json!({"sql": "select * from ref.wilayah where kode = $kode"}),
            "$kode is used but not declared",
        ),
        (
            json!({"sql": "select 1", "params": {"tahun": {"type": "int"}}}),
            "declared but the SQL never uses",
        ),
        (
            json!({"sql": "select * from ref.wilayah where kode = $1"}),
            "named parameters",
        ),
        (
            json!({"sql": "select $x", "params": {"x": {"type": "date", "default": "kemarin"}}}),
            "must be a date",
        ),
    ] {
        let (status, response) = save(&hub, &hub.admin_key, "salah", body.clone()).await;
        assert_eq!(status, 400, "{body}: {response}");
        assert!(
            response["detail"].as_str().unwrap().contains(words),
            "{body}: {response}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn query_files_in_the_queries_folder_load_at_start() {
    let mut hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let dir = hub.dir.path().join("queries");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kecamatan.toml"),
        "name = \"desa_per_kecamatan\"\n\
         sql = \"select count(*) as desa from ref.wilayah where parent_kode = $kecamatan\"\n\
         [params.kecamatan]\ntype = \"text\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rusak.toml"),
        "name = \"rusak\"\nsql = \"delete from ref.wilayah\"\n",
    )
    .unwrap();
    hub.restart();
    let (status, _, body) = run(
        &hub,
        &hub.admin_key,
        "/api/v1/queries/desa_per_kecamatan?kecamatan=32.14.01",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["rows"][0]["desa"].as_i64().unwrap() > 5);
    let (status, _, _) = run(&hub, &hub.admin_key, "/api/v1/queries/rusak").await;
    assert_eq!(status, 404, "the broken file was refused");
}
