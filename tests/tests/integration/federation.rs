//! Federation between two real hub processes on loopback: hub B pulls a dataset of hub A
//! through A's change feed with a `peer` pipeline, verifying A's seals, exactly once across
//! restarts, masked unless B holds `pii`; unregistered peers, missing grants and tampered
//! pages are refused.

use serde_json::{Value, json};

use crate::harness::Hub;

const HUB_A: &str = "ID-JABAR/GOV/HUB-A";

/// Hub A with a restricted `dukcapil.warga` (bound to `penduduk`) holding `n` residents.
async fn hub_a(n: u32) -> Hub {
    let a = Hub::start();
    a.empty_residents("dukcapil.warga");
    a.patch_dataset("dukcapil.warga", &json!({"classification": "restricted"}))
        .await;
    publish(&a, 0, n).await;
    a
}

/// Publishes residents `from..from + n` to hub A.
async fn publish(a: &Hub, from: u32, n: u32) {
    let body: String = (from..from + n)
        .map(|i| {
            format!(
                "{}\n",
                json!({
                    "nik": format!("32140115059{:05}", i + 1),
                    "nama": format!("Warga {i}"),
                    "tanggal_lahir": "1990-05-15",
                    "jenis_kelamin": "L",
                    "kode_wilayah": "32.14.01.1001",
                })
            )
        })
        .collect();
    let response = a
        .http
        .post(format!(
            "{}/api/v1/bus/datasets/dukcapil.warga/records",
            a.url
        ))
        .bearer_auth(&a.admin_key)
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", format!("fed-{from}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn public_key(a: &Hub) -> String {
    let keys = a.json("/api/v1/bus/keys").await;
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == keys["current"])
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn write_pipeline(b: &Hub, name: &str, peer: &str, key_var: &str, target: &str) {
    let dir = b.dir.path().join("pipelines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            r#"name = "{name}"
sync_mode = "incremental"

[source]
connector = "peer"
peer = "{peer}"
dataset = "dukcapil.warga"
api_key = "env:{key_var}"
max_versions = 1

[target]
dataset = "{target}"
classification = "restricted"
"#
        ),
    )
    .unwrap();
}

async fn run(b: &Hub, name: &str) -> Value {
    let response = b
        .http
        .post(format!("{}/api/v1/pipelines/{name}/runs?wait=true", b.url))
        .bearer_auth(&b.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["run"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_hub_pulls_every_row_once_signed_and_masked() {
    let a = hub_a(3).await;
    let key_b = a.key("HUB-B", "FEDERASI", "analyst");
    let key_c = a.key("HUB-C", "FEDERASI", "analyst");
    a.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/HUB-B/FEDERASI",
        "--right",
        "read",
    ]);

    let mut b = Hub::start_with_env(&[("KEY_ON_A", key_b.as_str()), ("KEY_OF_C", key_c.as_str())]);
    write_pipeline(&b, "dari_a", HUB_A, "KEY_ON_A", "provinsi.warga_a");
    // No federation by default: the peer is not registered yet.
    let refused = run(&b, "dari_a").await;
    assert_eq!(refused["status"], "failed");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not a registered peer"),
        "{refused}"
    );

    let key = public_key(&a).await;
    b.cli_ok(&[
        "bus",
        "peers",
        "add",
        HUB_A,
        "--url",
        &a.url,
        "--public-key",
        &key,
    ]);
    let first = run(&b, "dari_a").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["rows_committed"], 3);
    let rows = b
        .rows("select nik, nama from provinsi.warga_a order by nama")
        .await;
    assert_eq!(rows.len(), 3);
    // A sent the restricted personal columns masked: B holds no pii grant.
    assert!(
        rows.iter()
            .all(|r| r["nik"].as_str().unwrap().contains("**********")),
        "{rows:?}"
    );

    publish(&a, 3, 2).await;
    let second = run(&b, "dari_a").await;
    assert_eq!(second["rows_committed"], 2, "{second}");
    // After a crash and restart, the cursor is the peer version committed with the rows.
    b.restart();
    let third = run(&b, "dari_a").await;
    assert_eq!(third["status"], "succeeded");
    assert_eq!(third["rows_committed"], 0, "{third}");
    let rows = b
        .rows("select count(*) as n, count(distinct nama) as names from provinsi.warga_a")
        .await;
    assert_eq!(
        (rows[0]["n"].as_i64(), rows[0]["names"].as_i64()),
        (Some(5), Some(5))
    );

    // With pii granted, new rows arrive in clear.
    a.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/HUB-B/FEDERASI",
        "--right",
        "pii",
    ]);
    publish(&a, 5, 1).await;
    assert_eq!(run(&b, "dari_a").await["rows_committed"], 1);
    let clear = b
        .rows("select nik from provinsi.warga_a where nama = 'Warga 5'")
        .await;
    assert_eq!(clear[0]["nik"], "3214011505900006");

    // A hub without the grant gets 403, and lands nothing.
    write_pipeline(
        &b,
        "dari_a_tanpa_hak",
        HUB_A,
        "KEY_OF_C",
        "provinsi.warga_c",
    );
    let denied = run(&b, "dari_a_tanpa_hak").await;
    assert_eq!(denied["status"], "failed");
    assert!(
        denied["error"].as_str().unwrap().contains("403"),
        "{denied}"
    );

    // Every pull is in B's message log; A's logs each change-feed read it served.
    let pulls = b
        .rows("select status from simpul.message_log where service = 'federation' order by seq")
        .await;
    let statuses: Vec<i64> = pulls
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [502, 200, 200, 200, 200, 502]);
    let served = a
        .rows("select count(*) as n from simpul.message_log where service = 'changes' and client_id like 'hub-b%'")
        .await;
    assert!(served[0]["n"].as_i64().unwrap() >= 5, "{served:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_page_is_refused_and_logged() {
    let a = hub_a(2).await;
    let key_b = a.key("HUB-B", "FEDERASI", "analyst");
    a.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/HUB-B/FEDERASI",
        "--right",
        "read",
    ]);
    let genuine = a
        .get(
            &key_b,
            "/api/v1/bus/datasets/dukcapil.warga/changes?since_version=0",
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(genuine.contains("1990-05-15"), "{genuine}");
    // A man in the middle changes a row; then also recomputes the seal's hash.
    let tampered = genuine.replacen("1990-05-15", "1991-05-15", 1);
    let seal_at = tampered.rfind("{\"_seal\"").unwrap();
    let (rows, seal) = tampered.split_at(seal_at);
    let mut seal: Value = serde_json::from_str(seal.trim()).unwrap();
    seal["_seal"]["sha256"] = json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        rows.as_bytes()
    )));
    let rehashed = format!("{rows}{seal}\n");

    for (body, reason) in [
        (tampered.clone(), "does not hash to its seal"),
        (rehashed, "not signed by any of its registered keys"),
    ] {
        let router = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { ([("content-type", "application/x-ndjson")], body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let b = Hub::start_with_env(&[("KEY_ON_A", key_b.as_str())]);
        let key = public_key(&a).await;
        b.cli_ok(&[
            "bus",
            "peers",
            "add",
            HUB_A,
            "--url",
            &url,
            "--public-key",
            &key,
        ]);
        write_pipeline(&b, "dari_a", HUB_A, "KEY_ON_A", "provinsi.warga_a");
        let refused = run(&b, "dari_a").await;
        assert_eq!(refused["status"], "failed");
        assert!(
            refused["error"].as_str().unwrap().contains(reason),
            "{refused}"
        );
        let datasets = b.json("/api/v1/datasets?q=warga_a").await;
        let committed = datasets["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["row_count"].as_i64().unwrap_or(0) > 0);
        assert!(!committed, "nothing of a refused page lands: {datasets}");
        let logged = b
            .rows("select status, detail from simpul.message_log where service = 'federation'")
            .await;
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0]["status"], 502);
        assert!(logged[0]["detail"].as_str().unwrap().contains(reason));
    }
}
