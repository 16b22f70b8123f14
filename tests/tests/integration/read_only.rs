//! SQL access is read-only: each kind of write is refused with a clear 400, and nothing in
//! the lake or the state store changes.

use crate::harness::{Hub, snapshot_files};

async fn assert_refused(sql: &str, kind: &str) {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let before = snapshot_files(hub.dir.path());
    let response = hub.sql(&hub.admin_key, sql, "application/json").await;
    assert_eq!(response.status(), 400, "{sql}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("/read-only"),
        "{sql}: {problem}"
    );
    assert!(
        detail.starts_with(kind),
        "{sql}: the message names the statement kind: {detail}"
    );
    let after = snapshot_files(hub.dir.path());
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f) && !f.0.ends_with("serve.log"))
        .filter(|f| !f.0.to_string_lossy().contains("state.db"))
        .collect();
    assert!(changed.is_empty(), "{sql} changed files: {changed:?}");
    let rows = hub.rows("select count(*) as n from ref.wilayah").await;
    assert_eq!(rows[0]["n"], 210, "{sql}: the table is intact");
    let history: serde_json::Value = hub.json("/api/v1/datasets/ref.wilayah/versions").await;
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{sql}: no new version"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_create_table() {
    assert_refused("create table ref.salinan (kode varchar)", "CREATE TABLE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_create_table_as_select() {
    assert_refused(
        "create table ref.salinan as select * from ref.wilayah",
        "CREATE TABLE",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_create_view() {
    assert_refused(
        "create view ref.v as select * from ref.wilayah",
        "CREATE VIEW",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_insert() {
    assert_refused(
        "insert into ref.wilayah (kode) values ('32.14.99')",
        "INSERT INTO",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_update() {
    assert_refused("update ref.wilayah set nama = 'x'", "UPDATE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_delete() {
    assert_refused("delete from ref.wilayah", "DELETE FROM").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_drop_table() {
    assert_refused("drop table ref.wilayah", "DROP TABLE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_truncate() {
    assert_refused("truncate table ref.wilayah", "TRUNCATE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_copy_to_a_file() {
    assert_refused(
        "copy (select * from ref.wilayah) to '/tmp/wilayah.csv'",
        "COPY",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_create_external_table() {
    assert_refused(
        "create external table passwd stored as csv location '/etc/passwd'",
        "CREATE EXTERNAL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_set() {
    assert_refused("set datafusion.execution.batch_size = 1", "SET").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_write_hidden_in_explain_analyze() {
    assert_refused(
        "explain analyze insert into ref.wilayah (kode) values ('x')",
        "INSERT INTO",
    )
    .await;
}
