//! Bus exchanges: publishing with signed receipts and idempotency keys, group commit, the
//! change feed with its signed seal, the message log and its offline verification, and key
//! rotation. Signatures are checked here with ring directly, from the documented formats,
//! not with the hub's own code.

use std::sync::Arc;

use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::Hub;

const RESIDENT_A: &str = r#"{"nik":"3214011505900001","nama":"Budi Santoso","tanggal_lahir":"1990-05-15","jenis_kelamin":"L","kode_wilayah":"32.14.01.1001","telepon":"081234567889"}"#;
const RESIDENT_B: &str = r#"{"nik":"3214015506920002","nama":"Siti Aminah","tanggal_lahir":"1992-06-15","jenis_kelamin":"P","kode_wilayah":"32.14.01.1001"}"#;
const RESIDENT_C: &str = r#"{"nik":"3214012010850003","nama":"Asep Sunandar","tanggal_lahir":"1985-10-20","jenis_kelamin":"L","kode_wilayah":"32.14.01.1001"}"#;
/// Not a valid resident: the NIK is short, the sex is not L or P.
const INVALID: &str = r#"{"nik":"32140","nama":"X","tanggal_lahir":"1990-01-01","jenis_kelamin":"Q","kode_wilayah":"32.14.01.1001"}"#;

/// A hub with an empty `dukcapil.warga` dataset bound to `penduduk` (NIK, name, address
/// and phone are personal), made by ingesting a header-only CSV.
fn hub_with_dataset() -> Hub {
    let hub = Hub::start();
    hub.empty_residents("dukcapil.warga");
    hub
}

async fn publish(
    hub: &Hub,
    key: &str,
    dataset: &str,
    idempotency_key: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = hub
        .http
        .post(format!("{}/api/v1/bus/datasets/{dataset}/records", hub.url))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = idempotency_key {
        request = request.header("idempotency-key", k);
    }
    request.send().await.expect("send publish")
}

/// The `i`th of a run of distinct valid residents, each with a NIK, a name and a phone.
fn resident(i: u64) -> Value {
    json!({
        "nik": format!("3214011505{:06}", 900000 + i),
        "nama": format!("Warga {i}"),
        "tanggal_lahir": "1990-05-15",
        "jenis_kelamin": "L",
        "kode_wilayah": "32.14.01.1001",
        "telepon": format!("0812345{i:05}"),
    })
}

async fn hub_keys(hub: &Hub) -> Vec<Value> {
    let keys = hub.json("/api/v1/bus/keys").await;
    keys["keys"].as_array().cloned().unwrap()
}

fn verify(keys: &[Value], key_id: &str, message: &[u8], signature: &str) -> bool {
    let Some(key) = keys.iter().find(|k| k["key_id"] == key_id) else {
        return false;
    };
    let public = hex::decode(key["public_key"].as_str().unwrap()).unwrap();
    let Ok(signature) = hex::decode(signature) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &signature)
        .is_ok()
}

/// The receipt's signed bytes, as documented in the README.
fn receipt_verifies(keys: &[Value], receipt: &Value) -> bool {
    let version = receipt["version"]
        .as_i64()
        .map_or_else(|| "-".to_string(), |v| v.to_string());
    let key_id = receipt["signature"]["key_id"].as_str().unwrap();
    let message = format!(
        "simpul-receipt-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        receipt["message_id"].as_str().unwrap(),
        receipt["dataset"].as_str().unwrap(),
        version,
        receipt["accepted"],
        receipt["rejected"],
        receipt["rejects"].as_str().unwrap(),
        receipt["payload_sha256"].as_str().unwrap(),
        receipt["committed_at"].as_str().unwrap(),
        key_id,
    );
    verify(
        keys,
        key_id,
        message.as_bytes(),
        receipt["signature"]["signature"].as_str().unwrap(),
    )
}

/// Splits a change-feed body into its rows and checks its seal: the SHA-256 of every line
/// before it and the hub's signature. Returns the rows and the seal.
fn read_feed(keys: &[Value], body: &str) -> Result<(Vec<Value>, Value), String> {
    let seal_at = body
        .rfind("{\"_seal\"")
        .ok_or_else(|| format!("no seal in {body}"))?;
    let (data, seal_line) = body.split_at(seal_at);
    let seal: Value = serde_json::from_str(seal_line.trim()).map_err(|e| e.to_string())?;
    let seal = seal["_seal"].clone();
    let sha256 = hex::encode(Sha256::digest(data.as_bytes()));
    if seal["sha256"] != sha256.as_str() {
        return Err("the rows do not hash to the seal's sha256".into());
    }
    let key_id = seal["signature"]["key_id"].as_str().unwrap();
    let message = format!(
        "simpul-changes-v1\n{}\n{}\n{}\n{}\n{}\n{}",
        seal["dataset"].as_str().unwrap(),
        seal["since_version"],
        seal["to_version"],
        seal["rows"],
        sha256,
        key_id
    );
    if !verify(
        keys,
        key_id,
        message.as_bytes(),
        seal["signature"]["signature"].as_str().unwrap(),
    ) {
        return Err("the seal's signature does not verify".into());
    }
    let rows: Vec<Value> = data
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Ok((rows, seal))
}

async fn versions(hub: &Hub, dataset: &str) -> usize {
    let history = hub
        .json(&format!("/api/v1/datasets/{dataset}/versions"))
        .await;
    history["versions"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_lands_once_with_a_signed_receipt_and_keeps_its_rejects() {
    let hub = hub_with_dataset();
    let body = format!("{RESIDENT_A}\n{RESIDENT_B}\n{INVALID}\n");
    let before = versions(&hub, "dukcapil.warga").await;
    let first = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("k-1"),
        "application/x-ndjson",
        body.clone(),
    )
    .await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let receipt = &first["receipt"];
    assert_eq!(receipt["accepted"], 2, "{first}");
    assert_eq!(receipt["rejected"], 1);
    assert_eq!(receipt["dataset"], "dukcapil.warga");
    assert_eq!(
        receipt["payload_sha256"],
        hex::encode(Sha256::digest(body.as_bytes())).as_str()
    );
    assert_eq!(first["reasons"].as_array().unwrap().len(), 1);
    assert_eq!(first["reasons"][0]["line"], 3);
    let keys = hub_keys(&hub).await;
    assert!(receipt_verifies(&keys, receipt), "{receipt}");
    let mut forged = receipt.clone();
    forged["accepted"] = json!(3);
    assert!(!receipt_verifies(&keys, &forged));
    // Two commits: the rejects, then the rows, which the receipt names.
    let version = receipt["version"].as_i64().unwrap();
    assert_eq!(versions(&hub, "dukcapil.warga").await, before + 1);
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 2);
    let rejects = hub
        .get(&hub.admin_key, receipt["rejects"].as_str().unwrap())
        .await;
    assert_eq!(rejects.status(), 200);
    let rejects: Value = rejects.json().await.unwrap();
    assert_eq!(rejects["rows"].as_array().unwrap().len(), 1, "{rejects}");

    // The same key and body: the same receipt, nothing written.
    let again = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("k-1"),
        "application/x-ndjson",
        body.clone(),
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["receipt"], *receipt);
    assert_eq!(versions(&hub, "dukcapil.warga").await, before + 1);
    let latest = hub.json("/api/v1/datasets/dukcapil.warga").await;
    assert_eq!(latest["dataset"]["current_version"], version);

    // The same key with another body is refused.
    let other = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("k-1"),
        "application/x-ndjson",
        format!("{RESIDENT_C}\n"),
    )
    .await;
    assert_eq!(other.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_whose_client_goes_away_lands_once_and_its_retry_gets_the_receipt() {
    use tokio::io::AsyncWriteExt;

    let hub = hub_with_dataset();
    // Big enough to be validated off the request's task, which gives the client time to
    // hang up while the publish is between its key's claim and its commit.
    let rows = 5_000;
    let body: String = (0..rows)
        .map(|i| {
            format!(
                "{{\"nik\":\"321401{:02}0590{:04}\",\"nama\":\"Warga {i}\",\"tanggal_lahir\":\"1990-05-15\",\"jenis_kelamin\":\"L\",\"kode_wilayah\":\"32.14.01.1001\"}}\n",
                1 + (i / 10_000) % 28,
                i % 10_000
            )
        })
        .collect();
    let address = hub.url.trim_start_matches("http://").to_string();
    let request = format!(
        "POST /api/v1/bus/datasets/dukcapil.warga/records HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/x-ndjson\r\nIdempotency-Key: pergi\r\n\
         Content-Length: {}\r\n\r\n{body}",
        hub.admin_key,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    // Hang up without reading the answer.
    drop(stream);

    // The retry, with the same key and body, gets the receipt once the publish is done
    // (409 with Retry-After while it still runs), never a key stuck as running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let receipt = loop {
        let retry = publish(
            &hub,
            &hub.admin_key,
            "dukcapil.warga",
            Some("pergi"),
            "application/x-ndjson",
            body.clone(),
        )
        .await;
        let status = retry.status();
        let answer: Value = retry.json().await.unwrap();
        if status == 200 {
            break answer["receipt"].clone();
        }
        assert_eq!(status, 409, "{answer}");
        assert!(
            std::time::Instant::now() < deadline,
            "the key is still claimed 15 s after its client went away: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(receipt["accepted"], rows, "{receipt}");
    let landed = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(landed[0]["n"], rows, "the rows landed exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_take_ndjson_json_csv_and_arrow_and_refuse_bad_bodies() {
    let hub = hub_with_dataset();
    let array = format!("[{RESIDENT_A}]");
    let csv = "nik,nama,tanggal_lahir,jenis_kelamin,kode_wilayah\n3214015506920002,Siti Aminah,1992-06-15,P,32.14.01.1001\n";
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("nik", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("nama", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("tanggal_lahir", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("jenis_kelamin", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("kode_wilayah", arrow::datatypes::DataType::Utf8, false),
    ]));
    let column =
        |v: &str| -> arrow::array::ArrayRef { Arc::new(arrow::array::StringArray::from(vec![v])) };
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            column("3214012010850003"),
            column("Asep Sunandar"),
            column("1985-10-20"),
            column("L"),
            column("32.14.01.1001"),
        ],
    )
    .unwrap();
    let mut ipc = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &schema).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
    }
    for (n, (content_type, body)) in [
        ("application/json", array.into_bytes()),
        ("text/csv", csv.as_bytes().to_vec()),
        ("application/vnd.apache.arrow.stream", ipc),
    ]
    .into_iter()
    .enumerate()
    {
        let response = publish(
            &hub,
            &hub.admin_key,
            "dukcapil.warga",
            Some(&format!("fmt-{n}")),
            content_type,
            body,
        )
        .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{content_type}: {body}");
        assert_eq!(body["receipt"]["accepted"], 1, "{content_type}: {body}");
    }
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 3);

    // No idempotency key.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        None,
        "application/x-ndjson",
        RESIDENT_A,
    )
    .await;
    assert_eq!(response.status(), 400);
    // A malformed JSON array.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("bad-1"),
        "application/json",
        "[{\"nik\":",
    )
    .await;
    let status = response.status();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["reasons"].as_array().unwrap().len(), 1, "{problem}");
    assert!(
        problem["reasons"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("end of file"),
        "{problem}"
    );
    // Every record invalid: 422 with every reason, and the records kept as rejects.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("bad-2"),
        "application/x-ndjson",
        format!("{INVALID}\n{INVALID}\n"),
    )
    .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["reasons"].as_array().unwrap().len(), 2, "{problem}");
    assert!(
        problem["reasons"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("jenis_kelamin"),
        "{problem}"
    );
    assert_eq!(problem["receipt"]["rejected"], 2);
    assert!(problem["receipt"]["version"].is_null());
    // An unknown column under the freeze contract.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("bad-3"),
        "application/x-ndjson",
        "{\"nik\":\"3214011505900001\",\"hobi\":\"x\"}\n",
    )
    .await;
    assert_eq!(response.status(), 422);
    // Not a format the bus takes.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("bad-4"),
        "text/plain",
        "x",
    )
    .await;
    assert_eq!(response.status(), 415);
    // An unknown dataset.
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.tidak_ada",
        Some("bad-5"),
        "application/x-ndjson",
        RESIDENT_A,
    )
    .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_publish_is_refused_with_413() {
    let hub = Hub::start_with_env(&[("SIMPUL_HTTP_BODY_LIMIT_BYTES", "1000")]);
    let body = format!("{RESIDENT_A}\n").repeat(20);
    let response = publish(
        &hub,
        &hub.admin_key,
        "ref.wilayah",
        Some("big"),
        "application/x-ndjson",
        body,
    )
    .await;
    assert_eq!(response.status(), 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_needs_ownership_or_a_publish_grant() {
    let hub = hub_with_dataset();
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let other = hub.key("DINKES", "SEMAR", "producer");
    let owner = hub.key("DISKOMINFO", "PORTAL", "producer");
    for (key, n) in [(&analyst, 1), (&other, 2)] {
        let response = publish(
            &hub,
            key,
            "dukcapil.warga",
            Some(&format!("p-{n}")),
            "application/x-ndjson",
            RESIDENT_A,
        )
        .await;
        assert_eq!(response.status(), 403);
    }
    let response = publish(
        &hub,
        &owner,
        "dukcapil.warga",
        Some("p-3"),
        "application/x-ndjson",
        RESIDENT_A,
    )
    .await;
    assert_eq!(response.status(), 200);
    hub.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/DINKES/SEMAR",
        "--right",
        "publish",
    ]);
    let response = publish(
        &hub,
        &other,
        "dukcapil.warga",
        Some("p-4"),
        "application/x-ndjson",
        RESIDENT_B,
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_share_group_commits_and_each_gets_its_own_receipt() {
    let hub = Arc::new(hub_with_dataset());
    let before = versions(&hub, "dukcapil.warga").await;
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            let response = publish(
                &hub,
                &hub.admin_key,
                "dukcapil.warga",
                Some(&format!("c-{i}")),
                "application/x-ndjson",
                resident(i).to_string(),
            )
            .await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            body["receipt"].clone()
        }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(task.await.unwrap());
    }
    let keys = hub_keys(&hub).await;
    assert!(receipts.iter().all(|r| receipt_verifies(&keys, r)));
    let mut ids: Vec<&str> = receipts
        .iter()
        .map(|r| r["message_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    let commits = versions(&hub, "dukcapil.warga").await - before;
    let mut distinct: Vec<i64> = receipts
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        commits,
        "every commit answered some publishes"
    );
    assert!(
        commits < 40,
        "40 concurrent publishes took {commits} commits: nothing was grouped"
    );
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_change_feed_streams_inserts_and_upserts_signed_and_masked() {
    let hub = hub_with_dataset();
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("f-1"),
        "application/x-ndjson",
        format!("{RESIDENT_A}\n{RESIDENT_B}\n"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let first: Value = response.json().await.unwrap();
    let v1 = first["receipt"]["version"].as_i64().unwrap();

    // Upsert by the schema's primary key (nik): a changed record shows as an update.
    hub.patch_dataset("dukcapil.warga", &json!({"write_mode": "upsert"}))
        .await;
    let moved = RESIDENT_A.replace("Budi Santoso", "Budi Santosa");
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("f-2"),
        "application/x-ndjson",
        format!("{moved}\n{RESIDENT_C}\n"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    let v2 = second["receipt"]["version"].as_i64().unwrap();
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 3, "the upsert replaced Budi's row");

    let keys = hub_keys(&hub).await;
    let feed = |key: String, since: i64| {
        let hub = &hub;
        async move {
            let response = hub
                .get(
                    &key,
                    &format!("/api/v1/bus/datasets/dukcapil.warga/changes?since_version={since}"),
                )
                .await;
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, body) = feed(hub.admin_key.clone(), v1 - 1).await;
    assert_eq!(status, 200, "{body}");
    let (rows, seal) = read_feed(&keys, &body).unwrap();
    assert_eq!(seal["to_version"], v2);
    assert_eq!(seal["rows"], rows.len());
    let kinds: Vec<(String, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["_change_type"].as_str().unwrap().to_string(),
                r["_commit_version"].as_i64().unwrap(),
                r["nama"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.0 == "insert" && k.1 == v1)
            .count(),
        2,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("update".into(), v2, "Budi Santosa".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("insert".into(), v2, "Asep Sunandar".into())),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(rows.iter().all(|r| r["_commit_timestamp"].is_string()));
    // Resuming from the seal's version gives nothing new, still sealed.
    let (_, body) = feed(hub.admin_key.clone(), v2).await;
    let (rows, seal) = read_feed(&keys, &body).unwrap();
    assert!(rows.is_empty());
    assert_eq!(seal["to_version"], v2);

    // A tampered row breaks the seal.
    let (_, body) = feed(hub.admin_key.clone(), v1 - 1).await;
    let tampered = body.replacen("Siti Aminah", "Siti Aminah2", 1);
    assert!(read_feed(&keys, &tampered).is_err());

    // Another member reads the internal dataset with personal columns masked ...
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let (status, body) = feed(analyst.clone(), v1 - 1).await;
    assert_eq!(status, 200);
    let (rows, _) = read_feed(&keys, &body).unwrap();
    assert!(
        rows.iter()
            .all(|r| r["nik"].as_str().unwrap().contains("**********")),
        "{body}"
    );
    // ... and unmasked with a pii grant.
    hub.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/BAPPEDA/ANALISIS",
        "--right",
        "pii",
    ]);
    let (_, body) = feed(analyst.clone(), v1 - 1).await;
    let (rows, _) = read_feed(&keys, &body).unwrap();
    assert!(
        rows.iter().any(|r| r["nik"] == "3214011505900001"),
        "{body}"
    );
    // A restricted dataset needs a read grant: 403 without it.
    hub.patch_dataset("dukcapil.warga", &json!({"classification": "restricted"}))
        .await;
    let (status, _) = feed(analyst.clone(), 0).await;
    assert_eq!(status, 403);
    let (status, _) = feed(analyst, -1).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_message_log_verifies_offline_and_names_a_tampered_record() {
    let hub = hub_with_dataset();
    for n in 0..3 {
        let response = publish(
            &hub,
            &hub.admin_key,
            "dukcapil.warga",
            Some(&format!("m-{n}")),
            "application/x-ndjson",
            RESIDENT_A.replace("1505900001", &format!("150590000{}", n + 1)),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let response = hub
        .get(
            &hub.admin_key,
            "/api/v1/bus/datasets/dukcapil.warga/changes?since_version=0",
        )
        .await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    // The change-feed read is logged once its body ended.
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = hub
            .rows("select service from simpul.message_log order by seq")
            .await;
        if logged.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let services: Vec<&str> = logged
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["publish", "publish", "publish", "changes"]);

    let verified = hub.cli_ok(&["messagelog", "verify"]);
    assert!(verified.contains("intact: 4 records"), "{verified}");

    // Change one record's status behind the hub's back.
    let url = format!(
        "sqlite://{}?mode=rw",
        hub.dir.path().join("state.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE message_log SET status = 201 WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let output = hub.cli(&["messagelog", "verify"]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("BROKEN at record 2"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_keeps_old_receipts_verifiable() {
    let hub = hub_with_dataset();
    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("r-1"),
        "application/x-ndjson",
        RESIDENT_A,
    )
    .await;
    let old: Value = response.json().await.unwrap();
    let before = hub.json("/api/v1/bus/keys").await;
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let refused = hub
        .http
        .post(format!("{}/api/v1/bus/keys/rotate", hub.url))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let rotated = hub
        .http
        .post(format!("{}/api/v1/bus/keys/rotate", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    let after = hub.json("/api/v1/bus/keys").await;
    assert_ne!(after["current"], before["current"]);
    let keys = after["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let retired = keys
        .iter()
        .find(|k| k["key_id"] == before["current"])
        .unwrap();
    assert!(retired["retired_at"].is_string());

    let response = publish(
        &hub,
        &hub.admin_key,
        "dukcapil.warga",
        Some("r-2"),
        "application/x-ndjson",
        RESIDENT_B,
    )
    .await;
    let new: Value = response.json().await.unwrap();
    assert_eq!(new["receipt"]["signature"]["key_id"], after["current"]);
    assert_eq!(old["receipt"]["signature"]["key_id"], before["current"]);
    assert!(receipt_verifies(keys, &old["receipt"]));
    assert!(receipt_verifies(keys, &new["receipt"]));
    // The log's seals span both keys and still verify.
    let verified = hub.cli_ok(&["messagelog", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    let audit = hub
        .rows("select action from simpul.audit where action = 'hub_key.rotate'")
        .await;
    assert_eq!(audit.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn compacting_a_dataset_of_publishes_writes_no_statistics_of_its_personal_columns() {
    let hub = hub_with_dataset();
    // One publish at a time: one group commit and one small file each. The committer
    // compacts once the table holds 64.
    for i in 0..64u64 {
        let response = publish(
            &hub,
            &hub.admin_key,
            "dukcapil.warga",
            Some(&format!("k-{i}")),
            "application/x-ndjson",
            resident(i).to_string(),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    // The compaction runs after the 64th publish was answered.
    let log_dir = hub.table_dir("dukcapil", "warga").join("_delta_log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let compaction = loop {
        let found = std::fs::read_dir(&log_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .find(|text| text.contains(r#""operation":"OPTIMIZE""#));
        if let Some(text) = found {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction after 64 group commits"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let adds: Vec<Value> = compaction
        .lines()
        .filter_map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()?
                .get("add")
                .cloned()
        })
        .collect();
    assert!(!adds.is_empty(), "{compaction}");
    for add in &adds {
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        // Statistics are written, for the columns that are not personal.
        assert_eq!(
            stats["minValues"]["kode_wilayah"], "32.14.01.1001",
            "{stats}"
        );
        for personal in ["nik", "nama", "telepon"] {
            assert!(stats["minValues"].get(personal).is_none(), "{stats}");
            assert!(stats["maxValues"].get(personal).is_none(), "{stats}");
        }
    }
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 64);
}
