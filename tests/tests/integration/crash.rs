//! Crash consistency: the real binary on a real data directory is killed with SIGKILL while
//! clients write, at moments drawn from a fixed seed (`SIMPUL_CRASH_SEED` replays another),
//! then started again; every client retries what it was not answered with the same key and
//! body. Afterwards every write is in the lake exactly once, every retry ended in an answer
//! (never an endless 409), the message log verifies and is complete against the lake, and
//! the catalog's version and counts are the lake's. Crash points inside the process
//! (`SIMPUL_FAULT_POINT`, debug builds only) cut a publish between its commit and its
//! bookkeeping, and before its commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::Hub;
use crate::postgres_state::fresh_database;

/// The seed of the kill times; print it with a failure to replay the run.
fn seed() -> u64 {
    std::env::var("SIMPUL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_207)
}

/// A valid resident whose NIK no other record of this test binary has (280,000 of them).
fn resident() -> Value {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    json!({
        "nik": format!("321401{:02}0590{:04}", 1 + (n / 10_000) % 28, n % 10_000),
        "nama": format!("Warga {n}"),
        "tanggal_lahir": "1990-05-15",
        "jenis_kelamin": "L",
        "kode_wilayah": "32.14.01.1001",
        "telepon": format!("0813{n:08}"),
    })
}

/// Refused by the `penduduk` schema: a short NIK and an unknown sex.
const INVALID: &str = r#"{"nik":"32140","nama":"X","tanggal_lahir":"1990-01-01","jenis_kelamin":"Q","kode_wilayah":"32.14.01.1001"}"#;

/// One write a client sends until it is answered: its key, its body, the NIKs of its valid
/// records.
#[derive(Clone, Debug)]
struct Write {
    path: String,
    content_type: &'static str,
    key: String,
    body: String,
    niks: Vec<String>,
}

/// What the writers saw, shared between their tasks.
#[derive(Default)]
struct Ledger {
    /// Writes answered 200/201, by key, with the version their receipt or report named.
    answered: BTreeMap<String, (Write, i64)>,
    /// Writes sent but not answered when the hub died.
    pending: Vec<Write>,
}

enum Sent {
    Answered(i64),
    /// The hub is gone (connection refused or cut): retry after the restart.
    Cut,
    /// Still running under its key (409): ask again.
    Busy,
}

async fn send(http: &reqwest::Client, url: &str, admin_key: &str, write: &Write) -> Sent {
    let response = http
        .post(format!("{url}{}", write.path))
        .bearer_auth(admin_key)
        .header("content-type", write.content_type)
        .header("idempotency-key", &write.key)
        .body(write.body.clone())
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    let Ok(response) = response else {
        return Sent::Cut;
    };
    let status = response.status().as_u16();
    let Ok(text) = response.text().await else {
        return Sent::Cut;
    };
    match status {
        200 | 201 => {
            let answer: Value = serde_json::from_str(&text).expect("a JSON answer");
            if write.path == SEMAR_CALLS {
                // A call is a row of the state store, not a lake version.
                assert_eq!(answer["complaint"], write.key.as_str(), "{answer}");
                return Sent::Answered(0);
            }
            let version = answer["receipt"]["version"]
                .as_i64()
                .or_else(|| answer["version"].as_i64())
                .unwrap_or_else(|| panic!("an answer without a version: {answer}"));
            Sent::Answered(version)
        }
        409 => Sent::Busy,
        other => panic!("write {} answered {other}: {text}", write.key),
    }
}

const SEMAR_CALLS: &str = "/api/v1/semar/calls";

/// The `n`th write of client `client` in round `round`: single publishes, bulk publishes
/// with a refused record, CSV uploads, or SEMAR calls, by the client's number.
fn next_write(client: usize, round: usize, n: u64) -> Write {
    match client % 5 {
        // A SEMAR call by phone; its complaint is its key, to count it by.
        4 => {
            let key = format!("call-{client}-{round}-{n}");
            Write {
                path: SEMAR_CALLS.into(),
                content_type: "application/json",
                body: json!({"channel": "phone", "caller_phone": "081234567001",
                             "complaint": key, "kode_wilayah": "32.14.01.1001"})
                .to_string(),
                key,
                niks: Vec::new(),
            }
        }
        // Bulk: twenty records and one refused.
        1 => {
            let records: Vec<Value> = (0..20).map(|_| resident()).collect();
            let mut body: String = records.iter().map(|r| format!("{r}\n")).collect();
            body.push_str(INVALID);
            body.push('\n');
            Write {
                path: "/api/v1/bus/datasets/dukcapil.warga/records".into(),
                content_type: "application/x-ndjson",
                key: format!("bulk-{client}-{round}-{n}"),
                body,
                niks: records
                    .iter()
                    .map(|r| r["nik"].as_str().unwrap().into())
                    .collect(),
            }
        }
        // An upload of five rows to another dataset.
        3 => {
            let records: Vec<Value> = (0..5).map(|_| resident()).collect();
            let mut body = String::from(
                "nik,no_kk,nama,tempat_lahir,tanggal_lahir,jenis_kelamin,alamat,rt,rw,kode_wilayah,telepon,status_hidup\n",
            );
            for r in &records {
                body.push_str(&format!(
                    "{},,{},,{},{},,,,{},{},true\n",
                    r["nik"].as_str().unwrap(),
                    r["nama"].as_str().unwrap(),
                    r["tanggal_lahir"].as_str().unwrap(),
                    r["jenis_kelamin"].as_str().unwrap(),
                    r["kode_wilayah"].as_str().unwrap(),
                    r["telepon"].as_str().unwrap(),
                ));
            }
            Write {
                path: "/api/v1/datasets/dukcapil.unggah/ingest".into(),
                content_type: "text/csv",
                key: format!("upload-{client}-{round}-{n}"),
                body,
                niks: records
                    .iter()
                    .map(|r| r["nik"].as_str().unwrap().into())
                    .collect(),
            }
        }
        // A single record.
        _ => {
            let record = resident();
            Write {
                path: "/api/v1/bus/datasets/dukcapil.warga/records".into(),
                content_type: "application/x-ndjson",
                key: format!("single-{client}-{round}-{n}"),
                body: format!("{record}\n"),
                niks: vec![record["nik"].as_str().unwrap().into()],
            }
        }
    }
}

const CLIENTS: usize = 10;

/// One client: writes until the hub dies under it; what it was sending then is pending.
async fn client(
    url: String,
    admin_key: String,
    client: usize,
    round: usize,
    ledger: Arc<Mutex<Ledger>>,
) {
    let http = reqwest::Client::new();
    for n in 0.. {
        let write = next_write(client, round, n);
        loop {
            match send(&http, &url, &admin_key, &write).await {
                Sent::Answered(version) => {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.answered.insert(write.key.clone(), (write, version));
                    break;
                }
                Sent::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
                Sent::Cut => {
                    ledger.lock().unwrap().pending.push(write);
                    return;
                }
            }
        }
    }
}

/// Retries a write after a restart until it is answered; a key still claimed a minute on is
/// the bug this harness is for.
async fn retry_until_answered(hub: &Hub, write: &Write) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match send(&hub.http, &hub.url, &hub.admin_key, write).await {
            Sent::Answered(version) => return version,
            Sent::Busy | Sent::Cut => {
                assert!(
                    Instant::now() < deadline,
                    "the retry of {} still gets no answer a minute after the restart (seed {})",
                    write.key,
                    seed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every answered write is in its dataset exactly once; the catalog's version and counts
/// are the lake's; the message log verifies and is complete; no key is left claimed.
async fn check_invariants(hub: &Hub, ledger: &Ledger, round: usize) {
    let context = format!("after round {round} (seed {})", seed());
    let paths = [
        ("dukcapil.warga", "/api/v1/bus/"),
        ("dukcapil.unggah", "/api/v1/datasets/"),
    ];
    for (dataset, prefix) in paths {
        if !ledger
            .answered
            .values()
            .any(|(w, _)| w.path.starts_with(prefix))
        {
            continue;
        }
        let expected: Vec<&String> = ledger
            .answered
            .values()
            .filter(|(w, _)| w.path.starts_with(prefix))
            .flat_map(|(w, _)| &w.niks)
            .collect();
        let counts = hub
            .rows(&format!(
                "select nik, count(*) as n from {dataset} group by nik having count(*) > 1 limit 5"
            ))
            .await;
        assert!(
            counts.is_empty(),
            "{dataset} holds a record twice {context}: {counts:?}"
        );
        let total = hub
            .rows(&format!("select count(*) as n from {dataset}"))
            .await;
        assert_eq!(
            total[0]["n"].as_u64().unwrap() as usize,
            expected.len(),
            "{dataset} holds other than the answered writes' records {context}"
        );
        let meta = hub.json(&format!("/api/v1/datasets/{dataset}")).await;
        let meta = &meta["dataset"];
        assert_eq!(
            meta["row_count"].as_u64().unwrap() as usize,
            expected.len(),
            "{context}: {meta}"
        );
        let versions = hub
            .json(&format!("/api/v1/datasets/{dataset}/versions"))
            .await;
        let latest = versions["versions"][0]["version"].as_i64().unwrap();
        assert_eq!(
            meta["current_version"].as_i64().unwrap(),
            latest,
            "the catalog's version {context}"
        );
        // Every answer names a version that the lake has.
        for (write, version) in ledger
            .answered
            .values()
            .filter(|(w, _)| w.path.starts_with(prefix))
        {
            assert!(
                *version <= latest,
                "{} answered version {version} of {latest} {context}",
                write.key
            );
        }
    }
    let verified = hub.cli(&["messagelog", "verify"]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{context}: {stdout}");
    assert!(
        stdout.contains("message log complete"),
        "{context}: {stdout}"
    );
}

/// Every answered SEMAR call is stored once, and no call is stored that was not answered.
async fn check_calls(state_url: &str, ledger: &Ledger) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(state_url).await.unwrap();
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT complaint, COUNT(*) FROM semar_calls WHERE complaint LIKE 'call-%' GROUP BY complaint HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        twice.is_empty(),
        "calls stored twice (seed {}): {twice:?}",
        seed()
    );
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM semar_calls WHERE complaint LIKE 'call-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let answered = ledger
        .answered
        .values()
        .filter(|(w, _)| w.path == SEMAR_CALLS)
        .count();
    assert!(answered > 0, "no SEMAR call was answered");
    assert_eq!(stored as usize, answered, "seed {}", seed());
}

/// Writers on every path, killed at seeded moments, `rounds` times; then the invariants.
async fn writers_killed_at_random_moments(hub: &mut Hub, rounds: usize, state_url: &str) {
    hub.empty_residents("dukcapil.warga");
    hub.empty_residents("dukcapil.unggah");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut pending_total = 0;
    for round in 0..rounds {
        let writers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client(
                    hub.url.clone(),
                    hub.admin_key.clone(),
                    c,
                    round,
                    ledger.clone(),
                ))
            })
            .collect();
        let kill_after = Duration::from_millis(rng.random_range(300..2_500));
        tokio::time::sleep(kill_after).await;
        assert!(hub.restart().is_none());
        for writer in writers {
            writer.await.unwrap();
        }
        let pending = std::mem::take(&mut ledger.lock().unwrap().pending);
        pending_total += pending.len();
        for write in pending {
            let version = retry_until_answered(hub, &write).await;
            ledger
                .lock()
                .unwrap()
                .answered
                .insert(write.key.clone(), (write, version));
        }
        let ledger = ledger.lock().unwrap();
        assert!(
            !ledger.answered.is_empty(),
            "round {round}: no write was answered"
        );
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "crash harness (seed {}): {rounds} kills, {} writes answered, {pending_total} of them cut mid-way and retried",
        seed(),
        ledger.answered.len()
    );
    // Every round left writes in flight, so the kills cut through requests, not idle time.
    assert!(
        pending_total >= rounds,
        "only {pending_total} writes were in flight at {rounds} kills"
    );
    check_invariants(hub, &ledger, rounds).await;
    check_calls(state_url, &ledger).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_killed_at_random_moments_end_whole_on_sqlite() {
    let mut hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let state_url = format!(
        "sqlite://{}?mode=ro",
        hub.dir.path().join("state.db").display()
    );
    writers_killed_at_random_moments(&mut hub, 8, &state_url).await;
    // No key is left claimed.
    let pool = hub.state_store().await;
    let claimed: (i64,) =
        sqlx::query_as("select count(*) from idempotency_keys where state = 'in_progress'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(claimed.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_killed_at_random_moments_end_whole_on_postgresql() {
    let Ok(admin_url) = std::env::var("SIMPUL_TEST_POSTGRES_URL") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n*** SKIPPED writers_killed_at_random_moments_end_whole_on_postgresql: SIMPUL_TEST_POSTGRES_URL is not set. ***\n",
        );
        return;
    };
    let state_url = fresh_database(&admin_url);
    let mut hub = Hub::start_with_env(&[
        ("SIMPUL_STATE_URL", state_url.as_str()),
        ("SIMPUL_DEMO_DATA", "false"),
    ]);
    writers_killed_at_random_moments(&mut hub, 4, &state_url).await;
}

/// A publish cut between its lake commit and its bookkeeping: before the restart the log is
/// found incomplete (the commit names a message the log lacks); after it, the retry gets the
/// receipt of the version that holds the row, the row is there once, and the log is whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_cut_after_its_commit_gets_its_receipt_on_retry() {
    let mut hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    hub.empty_residents("dukcapil.warga");
    assert!(
        hub.restart_with(&[("SIMPUL_FAULT_POINT", "bus.after_commit")])
            .is_none()
    );
    let write = next_write(0, 0, 0);
    assert!(matches!(
        send(&hub.http, &hub.url, &hub.admin_key, &write).await,
        Sent::Cut
    ));

    let found = hub.cli(&["messagelog", "verify"]);
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(!found.status.success(), "{stdout}");
    assert!(stdout.contains("INCOMPLETE: 1 messages"), "{stdout}");
    assert!(
        stdout.contains("the message log has no record of it"),
        "{stdout}"
    );

    assert!(hub.restart().is_none());
    let version = retry_until_answered(&hub, &write).await;
    let versions = hub.json("/api/v1/datasets/dukcapil.warga/versions").await;
    assert_eq!(
        versions["versions"][0]["version"].as_i64().unwrap(),
        version
    );
    let mut ledger = Ledger::default();
    ledger.answered.insert(write.key.clone(), (write, version));
    check_invariants(&hub, &ledger, 0).await;
    // The answer is the one stored: asking again replays it.
    let again = send(
        &hub.http,
        &hub.url,
        &hub.admin_key,
        &ledger.answered.values().next().unwrap().0,
    )
    .await;
    assert!(matches!(again, Sent::Answered(v) if v == version));
}

/// A publish cut after its intent and before its commit is released at the restart: the
/// retry applies it afresh, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_cut_before_its_commit_is_applied_by_its_retry() {
    let mut hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    hub.empty_residents("dukcapil.warga");
    let before = hub.json("/api/v1/datasets/dukcapil.warga/versions").await;
    assert!(
        hub.restart_with(&[("SIMPUL_FAULT_POINT", "bus.before_commit")])
            .is_none()
    );
    let write = next_write(1, 0, 0);
    assert!(matches!(
        send(&hub.http, &hub.url, &hub.admin_key, &write).await,
        Sent::Cut
    ));
    assert!(hub.restart().is_none());
    let unchanged = hub.json("/api/v1/datasets/dukcapil.warga/versions").await;
    assert_eq!(
        unchanged["versions"][0], before["versions"][0],
        "nothing was committed"
    );
    let version = retry_until_answered(&hub, &write).await;
    let mut ledger = Ledger::default();
    ledger.answered.insert(write.key.clone(), (write, version));
    check_invariants(&hub, &ledger, 0).await;
}

/// What two hubs must agree on after a restore: every dataset with its version and rows,
/// the keys, the grants, the complaint cases and the whole message log.
async fn hub_contents(hub: &Hub) -> Value {
    let datasets = hub.json("/api/v1/datasets?limit=500").await;
    let mut tables = Vec::new();
    for dataset in datasets["datasets"].as_array().unwrap() {
        let id = dataset["id"].as_str().unwrap();
        let rows = hub.rows(&format!("select count(*) as n from {id}")).await;
        tables.push(json!({
            "id": id,
            "version": dataset["current_version"],
            "row_count": dataset["row_count"],
            "rejected_count": dataset["rejected_count"],
            "rows": rows[0]["n"],
        }));
    }
    json!({
        "datasets": tables,
        "keys": hub.json("/api/v1/keys").await,
        "grants": hub.json("/api/v1/bus/grants").await,
        "cases": hub.rows("select * from complaints.cases order by id").await,
        "message_log": hub.rows("select seq, message_id, hash from simpul.message_log order by seq").await,
    })
}

/// Runs `simpul restore …` into `dir`; returns what it printed.
fn restore_into(dir: &std::path::Path, args: &[&str]) -> String {
    let restore = std::process::Command::new(crate::harness::simpul_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("SIMPUL_CONFIG")
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    String::from_utf8_lossy(&restore.stdout).into_owned()
}

/// A backup taken while publishers write, then one after: the second copies only what is
/// new, the backup verifies, and each snapshot restores into a fresh directory where a hub
/// serves, its message log verifies and is complete, and (for the quiet snapshot) every
/// dataset, key, grant, case and log record equals the original's.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_under_load_restores_whole() {
    // Complaints land in the lake within a second, so that the quiet snapshot holds them.
    const ENV: [(&str, &str); 2] = [
        ("SIMPUL_DEMO_DATA", "false"),
        ("SIMPUL_COMPLAINTS_EXPORT_INTERVAL_SECS", "1"),
    ];
    let hub = Hub::start_with_env(&ENV);
    hub.empty_residents("dukcapil.warga");
    hub.empty_residents("dukcapil.unggah");
    hub.key("BAPPEDA", "ANALISIS", "analyst");
    let grant = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/grants",
            &json!({"dataset": "dukcapil.warga", "grantee": "ID-JABAR/GOV/BAPPEDA/ANALISIS", "rights": ["read"]}),
        )
        .await;
    assert_eq!(grant.status(), 201);
    let case = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/complaints",
            &json!({"kind": "complaint", "channel": "langsung", "description": "Lampu jalan mati di Jl. Veteran"}),
        )
        .await;
    assert_eq!(case.status(), 201);
    let dest = tempfile::tempdir().unwrap();
    let dest_path = dest.path().to_str().unwrap().to_string();

    // Publishers write while the first backup runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers: Vec<_> = (0..4)
        .map(|c| {
            let (url, key, stop, ledger) = (
                hub.url.clone(),
                hub.admin_key.clone(),
                stop.clone(),
                ledger.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let write = next_write(c, 9, n);
                    while let Sent::Busy = send(&http, &url, &key, &write).await {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ledger
                        .lock()
                        .unwrap()
                        .answered
                        .insert(write.key.clone(), (write, 0));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let first = hub.cli(&["backup", &dest_path]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        ledger.lock().unwrap().answered.len() > 10,
        "the publishers wrote too little to matter"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub.rows("select count(*) as n from complaints.cases").await[0]["n"] != 1 {
        assert!(Instant::now() < deadline, "the case never reached the lake");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The second run copies only what is new.
    let second = hub.cli_ok(&["backup", &dest_path]);
    assert!(second.contains("already in the backup"), "{second}");
    let unchanged: u64 = second
        .split("; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        unchanged > 0,
        "the second run copied everything again: {second}"
    );
    let verified = hub.cli_ok(&["backup", "verify", &dest_path]);
    assert!(
        verified.contains("backup intact: 2 snapshots"),
        "{verified}"
    );

    // The quiet snapshot: everything equal.
    let original = hub_contents(&hub).await;
    let restored_dir = tempfile::tempdir().unwrap();
    restore_into(restored_dir.path(), &["restore", &dest_path]);
    let restored = Hub::start_existing(restored_dir, &ENV, &hub.admin_key);
    // The complaints module exports its cases to the lake on its own schedule; the
    // restored hub exports the restored case as the original did.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut contents = hub_contents(&restored).await;
    while contents != original && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        contents = hub_contents(&restored).await;
    }
    assert_eq!(
        contents,
        original,
        "the restored hub's log:\n{}",
        std::fs::read_to_string(restored.dir.path().join("serve.log")).unwrap_or_default()
    );
    let log = restored.cli(&["messagelog", "verify"]);
    let out = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.status.success() && out.contains("message log complete"),
        "{out}"
    );

    // The snapshot taken under load, by its time: a hub serves it, whole.
    let manifests: Vec<String> = std::fs::read_dir(dest.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(manifests.len(), 2);
    let first_manifest: Value = {
        let mut names = manifests.clone();
        names.sort();
        let text = std::fs::read(
            dest.path()
                .join("snapshots")
                .join(&names[0])
                .join("manifest.json"),
        )
        .unwrap();
        serde_json::from_slice(&text).unwrap()
    };
    let under_load_dir = tempfile::tempdir().unwrap();
    let at = first_manifest["taken_at"].as_str().unwrap();
    let stdout = restore_into(under_load_dir.path(), &["restore", &dest_path, "--at", at]);
    assert!(
        stdout.contains(first_manifest["stamp"].as_str().unwrap()),
        "{stdout}"
    );
    let earlier = Hub::start_existing(under_load_dir, &ENV, &hub.admin_key);
    let log = earlier.cli(&["messagelog", "verify"]);
    let out = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.status.success() && out.contains("message log complete"),
        "{out}"
    );
    let contents = hub_contents(&earlier).await;
    for dataset in contents["datasets"].as_array().unwrap() {
        assert_eq!(dataset["row_count"], dataset["rows"], "{dataset}");
    }
    let warga = |c: &Value| {
        c["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "dukcapil.warga")
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert!(warga(&contents) <= warga(&original));

    // Delta removes old commits once a checkpoint covers them (every 10 commits here):
    // a backup of such a table still verifies, and a commit missing after the checkpoint
    // is named. Publish until the table has a checkpoint and a commit after it.
    let live_log = hub.table_dir("dukcapil", "warga").join("_delta_log");
    let newest_checkpoint = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (stem, rest) = name.split_once('.')?;
                rest.starts_with("checkpoint")
                    .then(|| stem.parse::<u64>().ok())?
            })
            .max()
    };
    for n in 0.. {
        let ready = newest_checkpoint(&live_log)
            .is_some_and(|c| live_log.join(format!("{:020}.json", c + 1)).exists());
        if ready {
            break;
        }
        assert!(n < 40, "no checkpoint after 40 more publishes");
        let write = next_write(0, 10, n);
        let sent = send(&hub.http, &hub.url, &hub.admin_key, &write).await;
        assert!(matches!(sent, Sent::Answered(_)));
    }
    let single = tempfile::tempdir().unwrap();
    let single_path = single.path().to_str().unwrap().to_string();
    hub.cli_ok(&["backup", &single_path]);
    let log_dir = single.path().join("lake/dukcapil/warga/_delta_log");
    let checkpoint = newest_checkpoint(&log_dir).expect("the backup holds the checkpoint");
    for version in 0..checkpoint {
        std::fs::remove_file(log_dir.join(format!("{version:020}.json"))).unwrap();
    }
    let verified = hub.cli_ok(&["backup", "verify", &single_path]);
    assert!(
        verified.contains("backup intact: 1 snapshots"),
        "{verified}"
    );
    let after = checkpoint + 1;
    std::fs::remove_file(log_dir.join(format!("{after:020}.json"))).unwrap();
    let broken = hub.cli(&["backup", "verify", &single_path]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{after:020}.json is missing")),
        "{stdout}"
    );

    // A restore never mixes with live data.
    let refused = hub.cli(&["restore", &dest_path]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
}
