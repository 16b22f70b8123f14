//! Queries run while an ingest commits: none fails, and each sees a whole version.

use std::process::Command;

use crate::harness::{Hub, fixture, simpul_bin};

const COPIES: i64 = 1000;
const TOTALS: &str = "select count(*) as n, sum(garis_kemiskinan_perkapita) as total from stats.gk";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_queries_see_either_the_old_or_the_new_version() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let file = fixture("garis_kemiskinan_kabupatenkota.csv");
    hub.cli_ok(&["ingest", file.to_str().unwrap(), "--dataset", "stats.gk"]);
    let before = hub.rows(TOTALS).await[0].clone();
    let (n, total) = (
        before["n"].as_i64().unwrap(),
        before["total"].as_i64().unwrap(),
    );
    assert_eq!(n, 81);

    // A thousand copies of the rows, so the commit lands while queries are running.
    let text = std::fs::read_to_string(&file).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let big = hub.dir.path().join("gk_x1000.csv");
    std::fs::write(&big, format!("{header}\n{}", body.repeat(COPIES as usize))).unwrap();
    let mut ingest = Command::new(simpul_bin())
        .arg("--data-dir")
        .arg(hub.dir.path())
        .args(["ingest", big.to_str().unwrap(), "--dataset", "stats.gk"])
        .spawn()
        .unwrap();
    let after_commit = (n * (COPIES + 1), total * (COPIES + 1));

    let mut seen = std::collections::BTreeSet::new();
    let mut rounds = 0;
    loop {
        let finished = ingest.try_wait().unwrap().is_some();
        let queries = (0..20).map(|_| async {
            let response = hub.sql(&hub.admin_key, TOTALS, "application/json").await;
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], serde_json::Value::Null, "{body}");
            let row = &body["rows"][0];
            (row["n"].as_i64().unwrap(), row["total"].as_i64().unwrap())
        });
        for result in futures::future::join_all(queries).await {
            assert!(
                result == (n, total) || result == after_commit,
                "a query saw a partial commit: {result:?}"
            );
            seen.insert(result);
        }
        rounds += 1;
        if finished {
            break;
        }
    }
    assert!(ingest.wait().unwrap().success());
    assert!(rounds >= 2, "the queries overlapped the ingest");
    let after = hub.rows(TOTALS).await[0].clone();
    assert_eq!(
        (
            after["n"].as_i64().unwrap(),
            after["total"].as_i64().unwrap()
        ),
        after_commit
    );
    assert!(
        seen.contains(&(n, total)),
        "some queries ran before the commit"
    );
}
