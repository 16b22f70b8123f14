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

/// The test setting `var`, or `None` after a loud line saying that `test` is skipped.
fn setting_or_skip(var: &str, test: &str) -> Option<String> {
    let value = std::env::var(var).ok();
    if value.is_none() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("\n*** SKIPPED {test}: {var} is not set. ***\n").as_bytes(),
        );
    }
    value
}

/// A fresh PostgreSQL database for `test`, or `None` (skipped, loudly) without a server.
fn postgres_or_skip(test: &str) -> Option<String> {
    setting_or_skip("SIMPUL_TEST_POSTGRES_URL", test).map(|admin| fresh_database(&admin))
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
    let Some(state_url) =
        postgres_or_skip("writers_killed_at_random_moments_end_whole_on_postgresql")
    else {
        return;
    };
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
        // A module's export may land again, as the same rows in a new version, what a
        // snapshot caught between its lake commit and its exported marks.
        let module = id.starts_with("complaints.") || id.starts_with("semar.");
        tables.push(json!({
            "id": id,
            "version": if module { Value::Null } else { dataset["current_version"].clone() },
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
    restore_with(dir, args, &[])
}

/// [`restore_into`] with settings in the environment.
fn restore_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let restore = std::process::Command::new(crate::harness::simpul_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
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

/// One request of the module and pipeline flows.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    content_type: &'static str,
    key: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn json(path: String, key: Option<String>, body: Value) -> Request {
        Request {
            path,
            content_type: "application/json",
            key,
            body: body.to_string().into_bytes(),
        }
    }
}

/// Sends `request` until it is answered other than "still running" (409 with
/// `Retry-After`); `None` when the hub is gone.
async fn ask(
    http: &reqwest::Client,
    url: &str,
    admin_key: &str,
    request: &Request,
) -> Option<(u16, Value)> {
    loop {
        let mut builder = http
            .post(format!("{url}{}", request.path))
            .bearer_auth(admin_key)
            .header("content-type", request.content_type)
            .body(request.body.clone())
            .timeout(Duration::from_secs(60));
        if let Some(key) = &request.key {
            builder = builder.header("idempotency-key", key);
        }
        let response = builder.send().await.ok()?;
        let status = response.status().as_u16();
        let busy = status == 409 && response.headers().contains_key("retry-after");
        let text = response.text().await.ok()?;
        if busy {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Some((status, answer));
    }
}

/// What the module and pipeline flows were answered, and what was cut.
#[derive(Default)]
struct Flows {
    /// Filed complaints: the key's description → the case's id.
    cases: BTreeMap<String, String>,
    /// Answered steps: (case, status it went to).
    steps: Vec<(String, String)>,
    /// Kept attachments: (case, SHA-256).
    attachments: Vec<(String, String)>,
    /// Calls created and confirmed.
    confirmed: Vec<String>,
    /// Rows written to the pipeline's folder.
    pipeline_rows: u64,
    /// Requests cut by a kill, retried after the restart.
    pending: Vec<Cut>,
}

/// One client of the flows: its connection to the hub and the shared record.
struct Flow {
    http: reqwest::Client,
    url: String,
    admin_key: String,
    flows: Arc<Mutex<Flows>>,
}

impl Flow {
    fn of(hub: &Hub, flows: &Arc<Mutex<Flows>>) -> Flow {
        Flow {
            http: reqwest::Client::new(),
            url: hub.url.clone(),
            admin_key: hub.admin_key.clone(),
            flows: flows.clone(),
        }
    }

    async fn ask(&self, request: &Request) -> Option<(u16, Value)> {
        ask(&self.http, &self.url, &self.admin_key, request).await
    }

    /// Keeps a request the kill cut, to retry after the restart.
    fn cut(&self, cut: Cut) {
        self.flows.lock().unwrap().pending.push(cut);
    }
}

/// A request cut by a kill, with what its answer would be recorded as.
#[derive(Debug)]
enum Cut {
    Case(String, Request),
    Step(String, String, Request),
    Attachment(String, String, Request),
    Call(Request),
    Confirm(String),
    Finish(String),
    Run,
}

const PIPELINE: &str = "crash_masuk";

fn pdf_for(case: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% bukti untuk {case}\n%%EOF\n").into_bytes()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Records the answer of a cut request once it comes.
fn record(flows: &mut Flows, cut: &Cut, status: u16, answer: &Value) {
    let ok = |what: &str| {
        assert!(
            (200..300).contains(&status),
            "{what} answered {status} after the restart: {answer} (seed {})",
            seed()
        )
    };
    match cut {
        Cut::Case(description, _) => {
            ok(description);
            flows
                .cases
                .insert(description.clone(), answer["id"].as_str().unwrap().into());
        }
        Cut::Step(case, to, _) => {
            ok(to);
            flows.steps.push((case.clone(), to.clone()));
        }
        Cut::Attachment(case, sha, _) => {
            ok("an attachment");
            flows.attachments.push((case.clone(), sha.clone()));
        }
        Cut::Call(_) | Cut::Finish(_) | Cut::Run => {}
        Cut::Confirm(call) => {
            ok("a confirmation");
            flows.confirmed.push(call.clone());
        }
    }
}

/// One complaint after another: filed, responded to, given evidence, answered; each
/// request under its own key (the attachment is keyed by its content).
async fn complaint_flow(flow: Flow, client: usize, round: usize) {
    let (flows, cut) = (&flow.flows, |c: Cut| flow.cut(c));
    for n in 0.. {
        let description = format!("crash-case {client}-{round}-{n}");
        let filing = Request::json(
            "/api/v1/complaints".into(),
            Some(format!("case-{client}-{round}-{n}")),
            json!({"kind": "complaint", "channel": "langsung", "description": description}),
        );
        let Some((status, case)) = flow.ask(&filing).await else {
            return cut(Cut::Case(description, filing));
        };
        assert_eq!(status, 201, "{case}");
        let id = case["id"].as_str().unwrap().to_string();
        flows.lock().unwrap().cases.insert(description, id.clone());
        for (to, path, body) in [
            ("responded", "transitions", json!({"to": "responded"})),
            (
                "answered",
                "answer",
                json!({"text": "Sudah ditangani petugas"}),
            ),
        ] {
            if to == "answered" {
                let pdf = pdf_for(&id);
                let sha = sha256_hex(&pdf);
                let upload = Request {
                    path: format!("/api/v1/complaints/{id}/attachments?filename=bukti.pdf"),
                    content_type: "application/pdf",
                    key: None,
                    body: pdf,
                };
                let Some((status, kept)) = flow.ask(&upload).await else {
                    return cut(Cut::Attachment(id, sha, upload));
                };
                assert!(status == 201 || status == 200, "{kept}");
                flows.lock().unwrap().attachments.push((id.clone(), sha));
            }
            let step = Request::json(
                format!("/api/v1/complaints/{id}/{path}"),
                Some(format!("step-{id}-{to}")),
                body,
            );
            let Some((status, answer)) = flow.ask(&step).await else {
                return cut(Cut::Step(id, to.into(), step));
            };
            assert_eq!(status, 200, "{answer}");
            flows.lock().unwrap().steps.push((id.clone(), to.into()));
        }
    }
}

/// Drives a dispatch from wherever it is back to service; `false` when the hub is gone.
async fn finish_dispatch(
    http: &reqwest::Client,
    url: &str,
    admin_key: &str,
    dispatch: &str,
) -> bool {
    loop {
        let Ok(response) = http
            .get(format!("{url}/api/v1/semar/dispatches/{dispatch}"))
            .bearer_auth(admin_key)
            .timeout(Duration::from_secs(60))
            .send()
            .await
        else {
            return false;
        };
        let Ok(current) = response.json::<Value>().await else {
            return false;
        };
        let Some(next) = current["allowed_next"]
            .as_array()
            .and_then(|n| n.iter().find(|s| *s != "cancelled"))
            .and_then(|s| s.as_str())
            .map(str::to_string)
        else {
            return true;
        };
        let mut body = json!({"event": next});
        if next == "left_scene" {
            body["facility"] = json!("RS-BAYUASIH");
        }
        let event = Request::json(
            format!("/api/v1/semar/dispatches/{dispatch}/events"),
            None,
            body,
        );
        let Some((status, answer)) = ask(http, url, admin_key, &event).await else {
            return false;
        };
        // 409: the step was taken by the try the kill cut; read the dispatch again.
        assert!(
            matches!(status, 200 | 201 | 409),
            "{next}: {status} {answer}"
        );
    }
}

/// SEMAR calls one after another: created under a key, confirmed (and so assigned or
/// queued), and an assigned unit driven back to service.
async fn semar_flow(flow: Flow, client: usize, round: usize) {
    let (flows, cut) = (&flow.flows, |c: Cut| flow.cut(c));
    for n in 0.. {
        let create = Request::json(
            SEMAR_CALLS.into(),
            Some(format!("semar-{client}-{round}-{n}")),
            json!({"channel": "phone", "caller_phone": "081234567001", "complaint": format!("sesak napas {n}"),
                   "kode_wilayah": "32.14.01.1001"}),
        );
        let Some((status, call)) = flow.ask(&create).await else {
            return cut(Cut::Call(create));
        };
        assert_eq!(status, 201, "{call}");
        let id = call["id"].as_str().unwrap().to_string();
        let confirm = Request::json(format!("{SEMAR_CALLS}/{id}/confirm"), None, json!({}));
        let Some((status, confirmed)) = flow.ask(&confirm).await else {
            return cut(Cut::Confirm(id));
        };
        assert_eq!(status, 200, "{confirmed}");
        flows.lock().unwrap().confirmed.push(id);
        if let Some(dispatch) = confirmed["dispatch"]["id"].as_str()
            && !finish_dispatch(&flow.http, &flow.url, &flow.admin_key, dispatch).await
        {
            return cut(Cut::Finish(dispatch.to_string()));
        }
    }
}

/// A file dropped into the pipeline's folder, then a run; ten rows a file.
async fn pipeline_flow(flow: Flow, inbox: std::path::PathBuf, round: usize) {
    let flows = &flow.flows;
    for n in 0.. {
        let mut csv = String::from("id,nilai\n");
        for row in 0..10 {
            csv.push_str(&format!("r{round}-{n}-{row},{row}\n"));
        }
        let name = format!("f-{round}-{n:04}.csv");
        std::fs::write(inbox.join(format!(".{name}")), csv).unwrap();
        std::fs::rename(inbox.join(format!(".{name}")), inbox.join(name)).unwrap();
        flows.lock().unwrap().pipeline_rows += 10;
        let run = Request::json(
            format!("/api/v1/pipelines/{PIPELINE}/runs?wait=true"),
            None,
            json!({}),
        );
        let Some((status, answer)) = flow.ask(&run).await else {
            return flow.cut(Cut::Run);
        };
        assert!(matches!(status, 200..=202), "{status} {answer}");
    }
}

/// Retries a cut request after the restart until it is answered.
async fn retry_cut(hub: &Hub, flows: &Arc<Mutex<Flows>>, cut: Cut) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "{cut:?} gets no answer a minute after the restart (seed {})",
            seed()
        );
        let request = match &cut {
            Cut::Case(_, r) | Cut::Step(_, _, r) | Cut::Attachment(_, _, r) | Cut::Call(r) => {
                r.clone()
            }
            Cut::Confirm(call) => {
                Request::json(format!("{SEMAR_CALLS}/{call}/confirm"), None, json!({}))
            }
            Cut::Finish(dispatch) => {
                if finish_dispatch(&hub.http, &hub.url, &hub.admin_key, dispatch).await {
                    return;
                }
                continue;
            }
            // The last run after the restart lands what a cut run did not.
            Cut::Run => return,
        };
        if let Some((status, answer)) = ask(&hub.http, &hub.url, &hub.admin_key, &request).await {
            record(&mut flows.lock().unwrap(), &cut, status, &answer);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Counts from the state store: `sql` must return one integer.
async fn count_of(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The module and pipeline invariants after the last restart: every answered filing, step,
/// attachment and confirmation is stored once with its audit record; nothing is stored
/// twice; SEMAR's units, dispatches, calls and queue agree; the exports and the pipeline's
/// table hold every row once.
async fn check_flows(hub: &Hub, flows: &Flows, state_url: &str) {
    let context = format!("(seed {})", seed());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(state_url).await.unwrap();
    // Complaints: each answered filing is one case; no case was filed that was not answered.
    let filed = count_of(
        &pool,
        "SELECT COUNT(*) FROM complaint_cases WHERE description LIKE 'crash-case %'",
    )
    .await;
    assert_eq!(filed as usize, flows.cases.len(), "cases stored {context}");
    for (description, id) in &flows.cases {
        let (stored,): (String,) =
            sqlx::query_as("SELECT description FROM complaint_cases WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(&stored, description, "{context}");
    }
    let twice: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT case_id, to_status, COUNT(*) FROM complaint_events GROUP BY case_id, to_status HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(twice.is_empty(), "steps applied twice {context}: {twice:?}");
    for (case, to) in &flows.steps {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM complaint_events WHERE case_id = $1 AND to_status = $2",
        )
        .bind(case)
        .bind(to)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 1, "{case} → {to} {context}");
    }
    // Every stored case and step has its audit record, and no other.
    let events = count_of(
        &pool,
        "SELECT COUNT(*) FROM complaint_events e JOIN complaint_cases c ON c.id = e.case_id \
         WHERE c.description LIKE 'crash-case %' AND e.from_status IS NOT NULL",
    )
    .await;
    let audited_steps = count_of(
        &pool,
        "SELECT COUNT(*) FROM audit_log a JOIN complaint_cases c ON c.id = a.target \
         WHERE c.description LIKE 'crash-case %' AND a.action = 'complaints.case.transition'",
    )
    .await;
    assert_eq!(audited_steps, events, "audited steps {context}");
    let audited_cases = count_of(
        &pool,
        "SELECT COUNT(*) FROM audit_log a JOIN complaint_cases c ON c.id = a.target \
         WHERE c.description LIKE 'crash-case %' AND a.action = 'complaints.case.create'",
    )
    .await;
    assert_eq!(audited_cases, filed, "audited filings {context}");
    // Attachments: each answered one is kept once and reads back whole.
    for (case, sha) in &flows.attachments {
        let listed = hub
            .json(&format!("/api/v1/complaints/{case}/attachments"))
            .await;
        let kept: Vec<&Value> = listed["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["sha256"] == sha.as_str())
            .collect();
        assert_eq!(kept.len(), 1, "{case}: {listed} {context}");
        let id = kept[0]["id"].as_str().unwrap();
        let bytes = hub
            .get(
                &hub.admin_key,
                &format!("/api/v1/complaints/{case}/attachments/{id}"),
            )
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(&sha256_hex(&bytes), sha, "{context}");
    }

    // SEMAR: a unit is on duty exactly when it has an open dispatch; a call is assigned
    // exactly when it has one; no call waits while a unit is free.
    for (what, sql) in [
        (
            "units on duty without a job, or free with one",
            "SELECT COUNT(*) FROM semar_units u WHERE (u.status = 'bertugas') <> \
             EXISTS (SELECT 1 FROM semar_dispatches d WHERE d.unit_kode = u.kode AND d.open = 1)",
        ),
        (
            "calls assigned without a dispatch, or waiting with one",
            "SELECT COUNT(*) FROM semar_calls c WHERE (c.status = 'ditugaskan') <> \
             EXISTS (SELECT 1 FROM semar_dispatches d WHERE d.call_id = c.id AND d.open = 1)",
        ),
        (
            "calls dispatched twice",
            "SELECT COUNT(*) FROM (SELECT call_id FROM semar_dispatches GROUP BY call_id HAVING COUNT(*) > 1) x",
        ),
    ] {
        assert_eq!(count_of(&pool, sql).await, 0, "{what} {context}");
    }
    let waiting = count_of(
        &pool,
        "SELECT COUNT(*) FROM semar_calls WHERE status IN ('dikonfirmasi', 'dalam_antrean')",
    )
    .await;
    let free = count_of(
        &pool,
        "SELECT COUNT(*) FROM semar_units WHERE status = 'tersedia'",
    )
    .await;
    assert!(
        waiting == 0 || free == 0,
        "{waiting} calls wait while {free} units are free {context}"
    );
    assert!(!flows.confirmed.is_empty(), "no call was confirmed");
    for call in &flows.confirmed {
        let (status,): (String,) = sqlx::query_as("SELECT status FROM semar_calls WHERE id = $1")
            .bind(call)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_ne!(status, "menunggu_konfirmasi", "{call} {context}");
    }

    // The exports: the lake holds every stored case and call once.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (dataset, table) in [
        (
            "complaints.cases",
            "complaint_cases WHERE kind = 'complaint'",
        ),
        ("semar.calls", "semar_calls"),
    ] {
        let stored = count_of(&pool, &format!("SELECT COUNT(*) FROM {table}")).await;
        loop {
            let rows = hub
                .rows(&format!(
                    "select count(*) as n, count(distinct id) as d from {dataset}"
                ))
                .await;
            let (n, d) = (
                rows[0]["n"].as_i64().unwrap(),
                rows[0]["d"].as_i64().unwrap(),
            );
            assert_eq!(n, d, "{dataset} holds a row twice {context}");
            if n == stored {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{dataset} holds {n} of {stored} rows {context}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The pipeline: one more run lands what was left; every row once; no run left running.
    let run = Request::json(
        format!("/api/v1/pipelines/{PIPELINE}/runs?wait=true"),
        None,
        json!({}),
    );
    let (status, answer) = ask(&hub.http, &hub.url, &hub.admin_key, &run)
        .await
        .unwrap();
    assert!(matches!(status, 200..=202), "{status} {answer}");
    let rows = hub
        .rows("select count(*) as n, count(distinct id) as d from stats.crash_masuk")
        .await;
    assert_eq!(
        rows[0]["n"].as_u64().unwrap(),
        flows.pipeline_rows,
        "pipeline rows {context}"
    );
    assert_eq!(rows[0]["d"], rows[0]["n"], "{context}");
    let history = hub
        .json(&format!("/api/v1/pipelines/{PIPELINE}/runs"))
        .await;
    for run in history["runs"].as_array().unwrap() {
        assert_ne!(run["status"], "running", "{run} {context}");
    }
    let claimed = count_of(
        &pool,
        "SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_progress'",
    )
    .await;
    assert_eq!(claimed, 0, "keys left claimed {context}");
}

/// Complaints with their steps and evidence, SEMAR calls with their dispatches, module
/// exports every second and pipeline runs, killed at seeded moments `rounds` times, then the
/// invariants.
async fn module_and_pipeline_writes_killed(hub: &mut Hub, rounds: usize, state_url: &str) {
    let inbox = hub.dir.path().join("masuk");
    std::fs::create_dir_all(&inbox).unwrap();
    let pipelines = hub.dir.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    std::fs::write(
        pipelines.join(format!("{PIPELINE}.toml")),
        format!(
            "name = \"{PIPELINE}\"\nsync_mode = \"incremental\"\n[source]\nconnector = \"file\"\nurl = \"{}\"\nglob = \"*.csv\"\n[target]\ndataset = \"stats.crash_masuk\"\n",
            inbox.display()
        ),
    )
    .unwrap();
    assert!(hub.restart().is_none());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed() ^ 0x5e3a);
    let flows = Arc::new(Mutex::new(Flows::default()));
    let mut cut_total = 0;
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for c in 0..2 {
            tasks.push(tokio::spawn(complaint_flow(
                Flow::of(hub, &flows),
                c,
                round,
            )));
            tasks.push(tokio::spawn(semar_flow(Flow::of(hub, &flows), c, round)));
        }
        tasks.push(tokio::spawn(pipeline_flow(
            Flow::of(hub, &flows),
            inbox.clone(),
            round,
        )));
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
        assert!(hub.restart().is_none());
        for task in tasks {
            task.await.unwrap();
        }
        let cut = std::mem::take(&mut flows.lock().unwrap().pending);
        cut_total += cut.len();
        for c in cut {
            retry_cut(hub, &flows, c).await;
        }
    }
    let flows = std::mem::take(&mut *flows.lock().unwrap());
    eprintln!(
        "crash harness, modules (seed {}): {rounds} kills, {} cases, {} steps, {} attachments, {} calls confirmed, {} pipeline rows, {cut_total} requests cut and retried",
        seed(),
        flows.cases.len(),
        flows.steps.len(),
        flows.attachments.len(),
        flows.confirmed.len(),
        flows.pipeline_rows,
    );
    assert!(
        cut_total >= rounds,
        "only {cut_total} requests were in flight at {rounds} kills"
    );
    check_flows(hub, &flows, state_url).await;
}

/// Module exports every second, so that kills land in them too.
const MODULE_ENV: [(&str, &str); 2] = [
    ("SIMPUL_COMPLAINTS_EXPORT_INTERVAL_SECS", "1"),
    ("SIMPUL_SEMAR_EXPORT_INTERVAL_SECS", "1"),
];

#[tokio::test(flavor = "multi_thread")]
async fn module_and_pipeline_writes_killed_at_random_moments_end_whole_on_sqlite() {
    let mut hub = Hub::start_with_env(&MODULE_ENV);
    let state_url = format!(
        "sqlite://{}?mode=ro",
        hub.dir.path().join("state.db").display()
    );
    module_and_pipeline_writes_killed(&mut hub, 6, &state_url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn module_and_pipeline_writes_killed_at_random_moments_end_whole_on_postgresql() {
    let Some(state_url) = postgres_or_skip(
        "module_and_pipeline_writes_killed_at_random_moments_end_whole_on_postgresql",
    ) else {
        return;
    };
    let mut env = MODULE_ENV.to_vec();
    env.push(("SIMPUL_STATE_URL", state_url.as_str()));
    let mut hub = Hub::start_with_env(&env);
    module_and_pipeline_writes_killed(&mut hub, 4, &state_url).await;
}

/// A filing, a step and a SEMAR call cut after their rows were stored and before their
/// answers were: each retry with its key gets the answer of the row that was stored, and
/// nothing is stored twice.
#[tokio::test(flavor = "multi_thread")]
async fn state_writes_cut_before_their_answers_are_answered_on_retry() {
    let mut hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let filing = Request::json(
        "/api/v1/complaints".into(),
        Some("cut-filing".into()),
        json!({"kind": "complaint", "channel": "langsung", "description": "crash-case cut"}),
    );
    let call = Request::json(
        SEMAR_CALLS.into(),
        Some("cut-call".into()),
        json!({"channel": "phone", "caller_phone": "081234567001", "complaint": "pingsan",
               "kode_wilayah": "32.14.01.1001"}),
    );
    let mut flows = Flows::default();
    for (request, cut) in [
        (&filing, Cut::Case("crash-case cut".into(), filing.clone())),
        (&call, Cut::Call(call.clone())),
    ] {
        assert!(
            hub.restart_with(&[("SIMPUL_FAULT_POINT", "state_write.before_answer")])
                .is_none()
        );
        assert!(
            ask(&hub.http, &hub.url, &hub.admin_key, request)
                .await
                .is_none()
        );
        assert!(hub.restart().is_none());
        let (status, answer) = ask(&hub.http, &hub.url, &hub.admin_key, request)
            .await
            .unwrap();
        record(&mut flows, &cut, status, &answer);
        // Asked again, the same answer.
        let (again, replayed) = ask(&hub.http, &hub.url, &hub.admin_key, request)
            .await
            .unwrap();
        assert_eq!((again, &replayed["id"]), (status, &answer["id"]));
    }
    let case = flows.cases["crash-case cut"].clone();
    let step = Request::json(
        format!("/api/v1/complaints/{case}/transitions"),
        Some("cut-step".into()),
        json!({"to": "responded"}),
    );
    assert!(
        hub.restart_with(&[("SIMPUL_FAULT_POINT", "state_write.before_answer")])
            .is_none()
    );
    assert!(
        ask(&hub.http, &hub.url, &hub.admin_key, &step)
            .await
            .is_none()
    );
    assert!(hub.restart().is_none());
    let (status, answer) = ask(&hub.http, &hub.url, &hub.admin_key, &step)
        .await
        .unwrap();
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("responded")),
        "{answer}"
    );
    flows.steps.push((case.clone(), "responded".into()));

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!(
        "sqlite://{}?mode=ro",
        hub.dir.path().join("state.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(
        count_of(
            &pool,
            "SELECT COUNT(*) FROM complaint_cases WHERE description = 'crash-case cut'"
        )
        .await,
        1
    );
    assert_eq!(
        count_of(
            &pool,
            "SELECT COUNT(*) FROM semar_calls WHERE complaint = 'pingsan'"
        )
        .await,
        1
    );
    let steps: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM complaint_events WHERE case_id = $1 AND to_status = 'responded'",
    )
    .bind(&case)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(steps, 1);
    assert_eq!(
        count_of(
            &pool,
            "SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_progress'"
        )
        .await,
        0
    );
}

/// A backup to an `s3://` URL on a real S3-protocol server (started by `.ci/run`), then its
/// verification and a restore from it into a fresh directory, where the hub serves the
/// same contents and its message log verifies.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_to_s3_verifies_and_restores_whole() {
    let Some(endpoint) = setting_or_skip(
        "SIMPUL_TEST_S3_ENDPOINT",
        "a_backup_to_s3_verifies_and_restores_whole",
    ) else {
        return;
    };
    let bucket = format!("simpul-backup-{}", std::process::id());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let env = [
        ("SIMPUL_DEMO_DATA", "false"),
        (
            "SIMPUL_LAKE_STORAGE_OPTIONS_AWS_ENDPOINT",
            endpoint.as_str(),
        ),
        ("SIMPUL_LAKE_STORAGE_OPTIONS_AWS_ACCESS_KEY_ID", "simpul"),
        (
            "SIMPUL_LAKE_STORAGE_OPTIONS_AWS_SECRET_ACCESS_KEY",
            "simpul-secret",
        ),
        ("SIMPUL_LAKE_STORAGE_OPTIONS_AWS_REGION", "us-east-1"),
        ("SIMPUL_LAKE_STORAGE_OPTIONS_AWS_ALLOW_HTTP", "true"),
    ];
    let hub = Hub::start_with_env(&env);
    hub.empty_residents("dukcapil.warga");
    for n in 0..5 {
        let write = next_write(1, 20, n);
        assert!(matches!(
            send(&hub.http, &hub.url, &hub.admin_key, &write).await,
            Sent::Answered(_)
        ));
    }
    let dest = format!("s3://{bucket}/purwakarta");
    let first = hub.cli_ok(&["backup", &dest]);
    assert!(first.contains("0 already in the backup"), "{first}");
    let second = hub.cli_ok(&["backup", &dest]);
    assert!(second.contains("copied: 0 objects"), "{second}");
    let verified = hub.cli_ok(&["backup", "verify", &dest]);
    assert!(
        verified.contains("backup intact: 2 snapshots"),
        "{verified}"
    );

    let restored_dir = tempfile::tempdir().unwrap();
    restore_with(restored_dir.path(), &["restore", &dest], &env);
    let original = hub_contents(&hub).await;
    let restored = Hub::start_existing(restored_dir, &env, &hub.admin_key);
    assert_eq!(hub_contents(&restored).await, original);
    let log = restored.cli(&["messagelog", "verify"]);
    let out = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.status.success() && out.contains("message log complete"),
        "{out}"
    );
}
