//! The PostgreSQL wire protocol endpoint, through real clients: tokio-postgres and psql.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::harness::Hub;

/// `postgresql://user:key@host:port/simpul`.
fn url(hub: &Hub, user: &str, key: &str) -> String {
    let address = hub.pg_url.trim_start_matches("postgresql://");
    format!("postgresql://{user}:{key}@{address}/simpul")
}

async fn connect(hub: &Hub, user: &str, key: &str) -> Client {
    connect_with_socket(hub, user, key).await.0
}

/// A client and the task that owns its socket: aborting the task closes the socket, as a
/// client that crashes or loses its network would.
async fn connect_with_socket(
    hub: &Hub,
    user: &str,
    key: &str,
) -> (Client, tokio::task::JoinHandle<()>) {
    let (client, connection) = tokio_postgres::connect(&url(hub, user, key), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    let socket = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, socket)
}

async fn login_error(hub: &Hub, user: &str, key: &str) -> tokio_postgres::Error {
    match tokio_postgres::connect(&url(hub, user, key), NoTls).await {
        Ok(_) => panic!("{user} logged in with a bad key"),
        Err(e) => e,
    }
}

fn psql(hub: &Hub, key: &str, args: &[&str]) -> String {
    let output = Command::new("psql")
        .arg(url(hub, "admin", key))
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .expect("psql must be installed (Debian package postgresql-client)");
    assert!(
        output.status.success(),
        "psql {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_lists_describes_and_queries_tables() {
    let hub = Hub::start();
    let key = hub.admin_key.clone();

    let tables = psql(&hub, &key, &["-c", r"\dt"]);
    let listed = |schema: &str, table: &str| {
        tables.lines().any(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            cells.len() >= 2 && cells[0] == schema && cells[1] == table
        })
    };
    assert!(listed("ref", "wilayah"), "{tables}");
    assert!(listed("semar", "dispatches"), "{tables}");
    assert!(tables.contains("wilayah__rejects"), "{tables}");

    let schemas = psql(&hub, &key, &["-c", r"\dn"]);
    assert!(schemas.contains(" ref "), "{schemas}");
    assert!(schemas.contains(" stats "), "{schemas}");

    let described = psql(&hub, &key, &["-c", r"\d ref.wilayah"]);
    assert!(described.contains("Table \"ref.wilayah\""), "{described}");
    for line in [
        " kode        | text             |           | not null |",
        " lat         | double precision |           |          |",
    ] {
        assert!(
            described.contains(line),
            "missing {line:?} in:\n{described}"
        );
    }

    let expanded = psql(
        &hub,
        &key,
        &[
            "-x",
            "-c",
            "select kode, nama from ref.wilayah where kode = '32.14.01'",
        ],
    );
    assert!(expanded.contains("kode | 32.14.01"), "{expanded}");
    assert!(expanded.contains("nama | Purwakarta"), "{expanded}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_queries_psql_sends_answer_as_psql_expects() {
    let hub = Hub::start();
    let client = connect(&hub, "admin", &hub.admin_key).await;
    // psql 15's \dt, verbatim.
    let rows = client
        .query(
            "SELECT n.nspname as \"Schema\", c.relname as \"Name\", \
             CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\", \
             pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" \
             FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam \
             WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' \
             AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2",
            &[],
        )
        .await
        .expect("\\dt query");
    let listed: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        listed.contains(&("ref".into(), "wilayah".into(), "table".into())),
        "{listed:?}"
    );

    // psql's \d: the OID by name, then the columns by that OID, on the same connection.
    let oid: u32 = client
        .query_one(
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(wilayah)$' COLLATE pg_catalog.default \
             AND n.nspname OPERATOR(pg_catalog.~) '^(ref)$' COLLATE pg_catalog.default ORDER BY 2, 3",
            &[],
        )
        .await
        .expect("\\d name lookup")
        .get(0);
    let columns = client
        .query(
            &format!(
                "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull \
                 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = '{oid}' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ),
            &[],
        )
        .await
        .expect("\\d columns");
    let columns: Vec<(String, String, bool)> = columns
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        columns.first(),
        Some(&("kode".to_string(), "text".to_string(), true))
    );
    assert!(
        columns.contains(&("lat".to_string(), "double precision".to_string(), false)),
        "{columns:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dbeaver_and_metabase_start_up_queries_are_answered() {
    let hub = Hub::start();
    let client = connect(&hub, "admin", &hub.admin_key).await;
    for set in [
        "SET extra_float_digits = 3",
        "SET application_name = 'DBeaver 24.3.0 - Main'",
        "SET search_path = public",
        "SET TIME ZONE 'Asia/Jakarta'",
        "SET statement_timeout = 0",
    ] {
        client
            .simple_query(set)
            .await
            .unwrap_or_else(|e| panic!("{set}: {e}"));
    }
    let version: String = client
        .query_one("select version()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.starts_with("PostgreSQL 16"), "{version}");
    let row = client
        .query_one(
            "select current_schema(), current_database(), pg_catalog.current_schemas(false)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "simpul");
    let read_only = client
        .simple_query("show transaction_read_only")
        .await
        .unwrap();
    let value = read_only.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("on"));
    // DBeaver's database and schema navigator.
    let databases = client
        .query("SELECT db.oid, db.datname FROM pg_catalog.pg_database db WHERE datallowconn ORDER BY db.datname", &[])
        .await
        .unwrap();
    assert!(databases.iter().any(|r| r.get::<_, String>(1) == "simpul"));
    let namespaces = client
        .query(
            "SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n ORDER BY n.nspname",
            &[],
        )
        .await
        .unwrap();
    assert!(namespaces.iter().any(|r| r.get::<_, String>(1) == "ref"));
    // Metabase lists tables through information_schema.
    let tables = client
        .query(
            "select table_schema, table_name from information_schema.tables \
             where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2",
            &[],
        )
        .await
        .unwrap();
    assert!(
        tables
            .iter()
            .any(|r| r.get::<_, String>(0) == "ref" && r.get::<_, String>(1) == "wilayah")
    );
    client.simple_query("BEGIN").await.unwrap();
    client.simple_query("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_of_each_common_type_bind_and_results_come_back_typed() {
    let hub = Hub::start();
    hub.ingest_residents();
    let client = connect(&hub, "admin", &hub.admin_key).await;

    let text = client
        .query_one(
            "select nama from ref.wilayah where kode = $1",
            &[&"32.14.01"],
        )
        .await
        .unwrap();
    assert_eq!(text.get::<_, String>(0), "Purwakarta");

    let float: i64 = client
        .query_one(
            "select count(*) from ref.wilayah where level = $1 and lat < $2",
            &[&"kecamatan", &-6.5f64],
        )
        .await
        .unwrap()
        .get(0);
    let all: i64 = client
        .query_one(
            "select count(*) from ref.wilayah where level = $1",
            &[&"kecamatan"],
        )
        .await
        .unwrap()
        .get(0);
    assert!(float > 0 && float < all, "{float} of {all}");

    let year: i64 = client
        .query_one(
            "select count(*) from stats.upah_minimum where tahun = $1",
            &[&2023i64],
        )
        .await
        .unwrap()
        .get(0);
    assert!(year > 0);

    let alive: i64 = client
        .query_one(
            "select count(*) from dukcapil.penduduk where status_hidup = $1 and tanggal_lahir < $2",
            &[&true, &chrono::NaiveDate::from_ymd_opt(1991, 1, 1).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alive, 2);

    let prepared = client
        .prepare("select kode from ref.wilayah where parent_kode = $1 order by kode limit $2")
        .await
        .unwrap();
    for (parent, n) in [("32.14.01", 2i64), ("32.14.02", 3)] {
        let rows = client.query(&prepared, &[&parent, &n]).await.unwrap();
        assert_eq!(rows.len(), n as usize);
        assert!(
            rows.iter()
                .all(|r| r.get::<_, String>(0).starts_with(parent))
        );
    }

    let row = client
        .query_one(
            "select cast(null as text) as nothing, \
                    cast('2026-01-01T07:00:00+07:00' as timestamptz) as at, \
                    cast(1234.5 as decimal(12, 2)) as amount, \
                    cast(42 as int) as small, true as yes",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    let at: DateTime<Utc> = row.get(1);
    assert_eq!(at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    assert_eq!(row.get::<_, Decimal>(2), Decimal::new(123450, 2));
    assert_eq!(row.get::<_, i32>(3), 42);
    assert!(row.get::<_, bool>(4));

    // The simple protocol carries text.
    let simple = client
        .simple_query("select kode, lat from ref.wilayah where kode = '32.14'")
        .await
        .unwrap();
    let SimpleQueryMessage::Row(first) = &simple[1] else {
        panic!("expected a row: {simple:?}");
    };
    assert_eq!(first.get("kode"), Some("32.14"));
    assert!(first.get("lat").unwrap().starts_with("-6.59"));
}

#[tokio::test(flavor = "multi_thread")]
/// That rows stream rather than arrive collected is shown by the cancellation test, whose
/// 500,000,000-row result is read 1,000 rows in; this one checks a large result whole.
async fn a_large_result_arrives_whole_over_the_extended_protocol() {
    let hub = Hub::start();
    let client = connect(&hub, "admin", &hub.admin_key).await;
    let params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let rows = client
        .query_raw(
            "select value, value * 2 as twice from generate_series(1, 300000)",
            params,
        )
        .await
        .unwrap();
    futures::pin_mut!(rows);
    let mut count = 0i64;
    let mut sum = 0i64;
    while let Some(row) = rows.try_next().await.unwrap() {
        count += 1;
        sum += row.get::<_, i64>(1);
    }
    assert_eq!(count, 300_000);
    assert_eq!(sum, 300_000 * 300_001);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_writes_and_producers_get_postgres_error_codes() {
    let hub = Hub::start();
    let error = login_error(&hub, "admin", "simpul_not-a-key").await;
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");
    let analyst = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let error = login_error(&hub, "admin", &analyst).await;
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");
    let message = error.as_db_error().unwrap().message();
    assert!(message.contains("bappeda-analitik"), "{message}");
    let producer = hub.key("DINKES", "SEMAR", "producer");
    let error = login_error(&hub, "dinkes-semar", &producer).await;
    assert_eq!(
        error.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{error}"
    );
    hub.cli_ok(&["keys", "revoke", "bappeda-analitik"]);
    let error = login_error(&hub, "bappeda-analitik", &analyst).await;
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");

    let client = connect(&hub, "admin", &hub.admin_key).await;
    for write in [
        "create table stats.x (a int)",
        "insert into ref.wilayah (kode) values ('x')",
        "delete from ref.wilayah",
        "drop table ref.wilayah",
        "copy (select 1) to '/tmp/x.csv'",
    ] {
        for error in [
            client.simple_query(write).await.unwrap_err(),
            client.query(write, &[]).await.unwrap_err(),
        ] {
            assert_eq!(
                error.code(),
                Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
                "{write}: {error}"
            );
            assert!(
                error.as_db_error().unwrap().message().contains("read-only"),
                "{write}: {error}"
            );
        }
    }
    let rows: i64 = client
        .query_one("select count(*) from ref.wilayah", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 210, "nothing was written");
    let error = client
        .query("select * from stats.tidak_ada", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_columns_are_masked_without_a_grant_and_every_query_is_logged() {
    let hub = Hub::start();
    hub.ingest_residents();
    let analyst_key = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let analyst = connect(&hub, "bappeda-analitik", &analyst_key).await;
    let rows = analyst
        .query(
            "select nik, no_kk, nama, alamat, telepon, tanggal_lahir, kode_wilayah \
             from dukcapil.penduduk order by tanggal_lahir",
            &[],
        )
        .await
        .unwrap();
    let first = &rows[0];
    assert_eq!(first.get::<_, String>("nik"), "3214**********03");
    assert_eq!(first.get::<_, String>("nama"), "A*** S******");
    assert_eq!(first.get::<_, String>("alamat"), "[disamarkan]");
    assert_eq!(first.get::<_, String>("kode_wilayah"), "32.14.02.2001");
    let budi = &rows[1];
    let phone: String = budi.get("telepon");
    assert!(phone.ends_with("89") && phone.contains("****"), "{phone}");
    // A guess at a real NIK matches nothing: filters see the masked values.
    let guessed: i64 = analyst
        .query_one(
            "select count(*) from dukcapil.penduduk where nik = $1",
            &[&"3214011505900001"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(guessed, 0);
    let rejects = analyst
        .query("select record from dukcapil.penduduk__rejects", &[])
        .await
        .unwrap();
    assert!(rejects.is_empty());
    let hidden = analyst
        .query("select * from simpul.query_log", &[])
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Some(&SqlState::UNDEFINED_TABLE), "{hidden}");

    let admin = connect(&hub, "admin", &hub.admin_key).await;
    let real: String = admin
        .query_one(
            "select nik from dukcapil.penduduk where nama = $1",
            &[&"Budi Santoso"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(real, "3214011505900001");

    // The query log is written after each query ends; wait for the analyst's four.
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = admin
            .query(
                "select protocol, sql, tables, rows, outcome from simpul.query_log \
                 where client_id = 'bappeda-analitik' order by at",
                &[],
            )
            .await
            .unwrap();
        if logged.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logged.len(), 4, "{logged:?}");
    let first = &logged[0];
    assert_eq!(first.get::<_, String>("protocol"), "pgwire");
    assert!(first.get::<_, String>("sql").contains("dukcapil.penduduk"));
    assert_eq!(first.get::<_, String>("tables"), "dukcapil.penduduk");
    assert_eq!(first.get::<_, i64>("rows"), 3);
    assert_eq!(first.get::<_, String>("outcome"), "succeeded");
    assert_eq!(logged[3].get::<_, String>("outcome"), "failed");
}

/// Rows of the query log for `client` whose outcome is `outcome`.
async fn logged_outcomes(admin: &Client, client: &str, outcome: &str) -> i64 {
    admin
        .query_one(
            "select count(*) from simpul.query_log where client_id = $1 and outcome = $2",
            &[&client, &outcome],
        )
        .await
        .unwrap()
        .get(0)
}

async fn queries_running(hub: &Hub) -> f64 {
    let metrics = hub.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("simpul_sql_queries_running "))
        .and_then(|v| v.trim().parse().ok())
        .expect("simpul_sql_queries_running in /metrics")
}

/// A query that runs for minutes unless stopped.
const ENDLESS: &str = "select count(*) from generate_series(1, 100000000000) where value % 7 = 3";

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_request_or_a_client_that_goes_away_stops_the_query() {
    let hub = Hub::start_with_env(&[("SIMPUL_QUERY_ROW_LIMIT", "1000000000")]);
    let analyst_key = hub.key("BAPPEDA", "ANALITIK", "analyst");
    let admin = connect(&hub, "admin", &hub.admin_key).await;

    // A cancel request, as psql sends on Ctrl-C.
    let client = connect(&hub, "bappeda-analitik", &analyst_key).await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move { client.query(ENDLESS, &[]).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    token.cancel_query(NoTls).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the cancelled query ends at once")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");

    // A client that disappears mid-query: its socket closes under the running query.
    let (client, socket) = connect_with_socket(&hub, "bappeda-analitik", &analyst_key).await;
    let running = tokio::spawn(async move { client.query(ENDLESS, &[]).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    socket.abort();
    let _ = running.await;

    // And one that goes away in the middle of a long stream of rows.
    let (client, socket) = connect_with_socket(&hub, "bappeda-analitik", &analyst_key).await;
    let params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let rows = client
        .query_raw("select value from generate_series(1, 500000000)", params)
        .await
        .unwrap();
    let taken: Vec<_> = rows.take(1000).collect().await;
    assert_eq!(taken.len(), 1000, "{:?}", taken.first());
    socket.abort();

    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = logged_outcomes(&admin, "bappeda-analitik", "cancelled").await;
        if cancelled == 3 && queries_running(&hub).await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cancelled, 3, "every stopped query is logged as cancelled");
    assert_eq!(queries_running(&hub).await, 0.0, "no query is left running");
    let after = connect(&hub, "bappeda-analitik", &analyst_key).await;
    let n: i64 = after
        .query_one("select count(*) from ref.wilayah", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 210);
}
