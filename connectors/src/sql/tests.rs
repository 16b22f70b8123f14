//! The `sql` source against real PostgreSQL and MariaDB servers on loopback. `.ci/run`
//! starts both; locally, set `SIMPUL_TEST_POSTGRES_URL` and `SIMPUL_TEST_MARIADB_URL` (see
//! the README). Without a server, each test says so loudly and passes.

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use sqlx::Connection;

use super::*;
use crate::rest_json::tests::read_all;

/// A fresh database on the server at `SIMPUL_TEST_<var>_URL`, and its URL.
async fn database(var: &str) -> Option<String> {
    let Ok(admin) = std::env::var(var) else {
        // Written past the test harness's capture, so that the skip shows in every run.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "\n*** SKIPPED a sql connector test: {var} is not set. Start the server and set it \
                 (see README, Development) to run it. ***\n"
            )
            .as_bytes(),
        );
        return None;
    };
    let name = format!("simpul_sql_{}", uuid_like());
    let mut url = url::Url::parse(&admin).unwrap();
    if admin.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn source(url: &str, extra: &str) -> Sql {
    let text = format!("url = {url:?}\n{extra}");
    let config: SqlConfig = toml::from_str(&text).unwrap();
    config.source().unwrap()
}

async fn execute(url: &str, statements: &[&str]) {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

fn one_batch(batches: &[RawBatch]) -> &RecordBatch {
    assert_eq!(batches.len(), 1, "one batch");
    &batches[0].batch
}

/// Types map as the module says, on either server, for the `pasien` table below.
fn check_typed_rows(batch: &RecordBatch) {
    let schema = batch.schema();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(
        types,
        vec![
            ("id", &DataType::Int64),
            ("nik", &DataType::Utf8),
            ("aktif", &DataType::Boolean),
            ("umur", &DataType::Int64),
            ("berat", &DataType::Float64),
            ("biaya", &DataType::Utf8),
            ("tanggal_lahir", &DataType::Date32),
            ("datang", &utc),
            ("updated_at", &utc),
        ]
    );
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(1), 2);
    assert_eq!(
        batch.column(1).as_string::<i32>().value(0),
        "3214014101900001"
    );
    assert!(batch.column(2).as_boolean().value(0));
    assert_eq!(batch.column(3).as_primitive::<Int64Type>().value(0), 36);
    assert_eq!(batch.column(4).as_primitive::<Float64Type>().value(0), 61.5);
    assert_eq!(
        batch.column(5).as_string::<i32>().value(0),
        "150000.50",
        "exact decimals as text"
    );
    let born = batch.column(6).as_primitive::<Date32Type>().value(0);
    assert_eq!(
        born,
        days_since_epoch(NaiveDate::from_ymd_opt(1990, 1, 1).unwrap())
    );
    // 08:30 WIB without a zone is 01:30 UTC.
    let arrived = batch
        .column(7)
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    assert_eq!(
        DateTime::from_timestamp_micros(arrived)
            .unwrap()
            .to_rfc3339(),
        "2026-11-02T01:30:00+00:00"
    );
    let updated = batch
        .column(8)
        .as_primitive::<TimestampMicrosecondType>()
        .value(1);
    assert_eq!(
        DateTime::from_timestamp_micros(updated)
            .unwrap()
            .to_rfc3339(),
        "2026-11-02T02:00:00+00:00",
        "a zoned time stays UTC"
    );
}

#[tokio::test]
async fn postgres_tables_read_typed_and_incrementally() {
    let Some(url) = database("SIMPUL_TEST_POSTGRES_URL").await else {
        return;
    };
    execute(
        &url,
        &[
            "CREATE TABLE pasien (id int8 PRIMARY KEY, nik varchar(16), aktif bool, umur int4, \
             berat float8, biaya numeric(12,2), tanggal_lahir date, datang timestamp, \
             updated_at timestamptz)",
            "INSERT INTO pasien VALUES \
             (1, '3214014101900001', true, 36, 61.5, 150000.50, '1990-01-01', '2026-11-02 08:30:00', '2026-11-02T01:00:00Z'), \
             (2, '3214010202850002', false, 41, NULL, NULL, NULL, NULL, '2026-11-02T02:00:00Z')",
        ],
    )
    .await;
    let table = source(
        &url,
        "table = \"public.pasien\"\ncursor_column = \"updated_at\"",
    );
    let (batches, checkpoint) = read_all(&table, None).await.unwrap();
    check_typed_rows(one_batch(&batches));
    let checkpoint = checkpoint.unwrap();
    assert_eq!(checkpoint["cursor"], "2026-11-02T02:00:00.000000Z");
    assert!(
        batches[0].positions[0]
            .source
            .starts_with("public.pasien at postgres://")
    );

    let (batches, again) = read_all(&table, Some(checkpoint.clone())).await.unwrap();
    assert!(batches.is_empty(), "nothing new");
    assert_eq!(again, Some(checkpoint.clone()));
    execute(
        &url,
        &["INSERT INTO pasien (id, nik, updated_at) VALUES (3, '3214010303950003', '2026-11-03T00:00:00Z')"],
    )
    .await;
    let (batches, _) = read_all(&table, Some(checkpoint)).await.unwrap();
    let ids = one_batch(&batches).column(0).as_primitive::<Int64Type>();
    assert_eq!((ids.len(), ids.value(0)), (1, 3));

    let query = source(&url, "query = \"select id, nik from pasien where aktif\"");
    let (batches, _) = read_all(&query, None).await.unwrap();
    assert_eq!(one_batch(&batches).num_rows(), 1);
    let streams = query.discover().await.unwrap();
    assert_eq!(streams[0].schema.fields().len(), 2);
}

#[tokio::test]
async fn mariadb_tables_read_typed_and_incrementally() {
    let Some(url) = database("SIMPUL_TEST_MARIADB_URL").await else {
        return;
    };
    execute(
        &url,
        &[
            "CREATE TABLE pasien (id BIGINT PRIMARY KEY, nik VARCHAR(16), aktif BOOLEAN, \
             umur INT UNSIGNED, berat DOUBLE, biaya DECIMAL(12,2), tanggal_lahir DATE, \
             datang DATETIME, updated_at TIMESTAMP(6) NULL)",
            "SET time_zone = '+00:00'",
            "INSERT INTO pasien VALUES \
             (1, '3214014101900001', TRUE, 36, 61.5, 150000.50, '1990-01-01', '2026-11-02 08:30:00', '2026-11-02 01:00:00'), \
             (2, '3214010202850002', FALSE, 41, NULL, NULL, NULL, NULL, '2026-11-02 02:00:00')",
        ],
    )
    .await;
    let table = source(&url, "table = \"pasien\"\ncursor_column = \"id\"");
    let (batches, checkpoint) = read_all(&table, None).await.unwrap();
    check_typed_rows(one_batch(&batches));
    let checkpoint = checkpoint.unwrap();
    assert_eq!(checkpoint["cursor"], 2);
    execute(
        &url,
        &["INSERT INTO pasien (id, nik) VALUES (3, '3214010303950003'), (4, NULL)"],
    )
    .await;
    let (batches, checkpoint) = read_all(&table, Some(checkpoint)).await.unwrap();
    assert_eq!(one_batch(&batches).num_rows(), 2);
    assert_eq!(checkpoint.unwrap()["cursor"], 4);
}

#[tokio::test]
async fn wrong_credentials_and_missing_tables_are_clear_errors() {
    let Some(url) = database("SIMPUL_TEST_POSTGRES_URL").await else {
        return;
    };
    let missing = source(&url, "table = \"tidak_ada\"")
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("tidak_ada"), "{missing}");
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_username("bukan_pengguna").unwrap();
    let refused = source(wrong.as_str(), "table = \"x\"")
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("bukan_pengguna"), "{refused}");
}

#[test]
fn settings_that_cannot_work_are_refused() {
    for bad in [
        "url = \"postgres://h/db\"",
        "url = \"postgres://h/db\"\ntable = \"a\"\nquery = \"select 1\"",
        "url = \"postgres://h/db\"\ntable = \"a.b.c\"",
        "url = \"postgres://h/db\"\ntable = \"a; drop table x\"",
        "url = \"oracle://h/db\"\ntable = \"a\"",
        "url = \"postgres://h/db\"\ntable = \"a\"\ncursor_column = \"x y\"",
    ] {
        let config: SqlConfig = toml::from_str(bad).unwrap();
        assert!(config.source().is_err(), "{bad}");
    }
    let config: SqlConfig =
        toml::from_str("url = \"mysql://u:rahasia@h/db\"\ntable = \"a\"").unwrap();
    assert!(!config.source().unwrap().shown_url.contains("rahasia"));
}
