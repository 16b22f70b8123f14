//! One access matrix over every read path. NIKs, names, addresses and phone numbers are
//! planted in `x-pii` columns, some of them in rows that fail validation and land in the
//! rejects (whose reasons quote what they refuse). Each role reads them through every path;
//! no raw value may appear in any byte of an answer unless the caller holds `pii`, and every
//! read leaves its rows in the query log. The route list of the OpenAPI document (written
//! from the routers' own tables) is compared with the matrix, so a new read path that is not
//! here fails [`every_route_is_in_the_matrix_or_exempt_with_a_reason`].

use std::collections::BTreeSet;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use crate::harness::Hub;

/// Raw personal values planted in the data, as they could show: whole NIKs, phone digits
/// (stored as `+62…`), a name and an address.
const RAW: [&str; 8] = [
    "3214011505900001",
    "3214015506920002",
    "1234567889",
    "1298765432",
    "Budi Santoso",
    "Jl. Veteran No. 12",
    // In rows that fail validation: an impossible birth date in a NIK, a phone too long.
    "3214013213990009",
    "2345678901234",
];

const REFUSED_ROWS: &str = "3214013213990009,3214010101100001,Rahasia Tertolak,Purwakarta,1999-13-32,L,Jl. Veteran No. 12,001,002,32.14.01.1001,081277766655,true\n\
3214015506920044,3214010101100001,Rahasia Kedua,Purwakarta,1992-06-15,P,Kp. Rahasia,001,002,32.14.01.1001,0812345678901234,true\n";

/// A reader: who it is, and whether it should see raw values.
struct Reader {
    name: &'static str,
    client_id: &'static str,
    key: Option<String>,
    sees_raw: bool,
}

/// The raw values an answer holds.
fn leaked(text: &str) -> Vec<&'static str> {
    RAW.iter()
        .copied()
        .filter(|raw| text.contains(raw))
        .collect()
}

/// Every cell of `batches` as text, one line per row.
fn batches_text(batches: &[RecordBatch]) -> String {
    let mut text = String::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            for column in batch.columns() {
                text.push_str(&array_value_to_string(column, row).unwrap_or_default());
                text.push('\t');
            }
            text.push('\n');
        }
    }
    text
}

async fn logged(pool: &sqlx::SqlitePool, client: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM query_log WHERE client_id = ?1")
        .bind(client)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until `client` has `expected` more query-log rows than `before`, then a moment more
/// to see that no others come.
async fn assert_logged(
    pool: &sqlx::SqlitePool,
    client: &str,
    before: i64,
    expected: i64,
    path: &str,
) {
    let mut now = before;
    for _ in 0..100 {
        now = logged(pool, client).await;
        if now >= before + expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    now = now.max(logged(pool, client).await);
    assert_eq!(
        now - before,
        expected,
        "{path} as {client}: {expected} query-log rows expected"
    );
}

/// A GET's answer body as text (Parquet decoded to its cells).
async fn get_text(hub: &Hub, key: Option<&str>, path: &str, accept: &str) -> (u16, String) {
    let mut request = hub
        .http
        .get(format!("{}{path}", hub.url))
        .header("accept", accept);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let parquet = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or_default().contains("parquet"));
    let body = response.bytes().await.unwrap();
    let text = if parquet && status == 200 {
        batches_text(&crate::harness::read_parquet(body).batches)
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    (status, text)
}

async fn sql_text(hub: &Hub, key: &str, sql: &str, accept: &str) -> (u16, String) {
    let response = hub.sql(key, sql, accept).await;
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let text = if accept.contains("parquet") && status == 200 {
        batches_text(&crate::harness::read_parquet(body).batches)
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    (status, text)
}

async fn pg_text(hub: &Hub, user: &str, key: &str, sql: &str) -> String {
    let address = hub.pg_url.trim_start_matches("postgresql://");
    let (client, connection) = tokio_postgres::connect(
        &format!("postgresql://{user}:{key}@{address}/simpul"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut text = String::new();
    for message in client.simple_query(sql).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            for i in 0..row.len() {
                text.push_str(row.get(i).unwrap_or_default());
                text.push('\t');
            }
            text.push('\n');
        }
    }
    text
}

async fn flight_text(hub: &Hub, user: &str, key: &str, sql: &str) -> String {
    let channel = tonic::transport::Endpoint::from_shared(hub.flight_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(user, key).await.expect("handshake");
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches_text(&batches)
}

/// A dashboard page through a session made from `key`.
async fn page_text(hub: &Hub, key: &str, path: &str) -> String {
    hub.http
        .get(format!("{}{path}", hub.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The hub, its readers and the planted data.
async fn planted() -> (Hub, Vec<Reader>) {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let fixture = std::fs::read_to_string(crate::harness::fixture("penduduk_sample.csv")).unwrap();
    let csv = format!("{fixture}{REFUSED_ROWS}");
    let file = hub.dir.path().join("penduduk.csv");
    std::fs::write(&file, &csv).unwrap();
    let file = file.to_str().unwrap();
    for (dataset, classification) in [
        ("dukcapil.penduduk", "internal"),
        ("publik.penduduk", "public"),
    ] {
        let report = hub.cli_ok(&[
            "ingest",
            file,
            "--dataset",
            dataset,
            "--schema",
            "penduduk",
            "--classification",
            classification,
        ]);
        assert!(report.contains("rows rejected: 2"), "{report}");
    }
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let granted = hub.key("BAPPEDA", "RISET", "analyst");
    let grant = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/bus/grants",
            &json!({"dataset": "dukcapil.penduduk", "grantee": "ID-JABAR/GOV/BAPPEDA/RISET", "rights": ["read", "pii"]}),
        )
        .await;
    assert_eq!(grant.status(), 201);
    let saved = hub
        .put_json(
            &hub.admin_key,
            "/api/v1/queries/semua_penduduk",
            &json!({"sql": "select nik, nama, alamat, telepon from dukcapil.penduduk order by nik"}),
        )
        .await;
    assert_eq!(saved.status(), 201);
    let own = hub.dir.path().join("dashboards");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("penduduk.toml"),
        "title = \"Penduduk\"\n[[panel]]\ntitle = \"Semua\"\nquery = \"semua_penduduk\"\nvisual = \"table\"\n",
    )
    .unwrap();
    let readers = vec![
        Reader {
            name: "admin",
            client_id: "admin",
            key: Some(hub.admin_key.clone()),
            sees_raw: true,
        },
        Reader {
            name: "analyst with the pii grant",
            client_id: "bappeda-riset",
            key: Some(granted),
            sees_raw: true,
        },
        Reader {
            name: "analyst without a grant",
            client_id: "bappeda-analisis",
            key: Some(analyst),
            sees_raw: false,
        },
    ];
    (hub, readers)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_raw_personal_value_leaves_by_any_read_path_without_the_pii_grant() {
    let (hub, readers) = planted().await;
    let pool = hub.state_store().await;
    for reader in &readers {
        let key = reader.key.as_deref().unwrap();
        let mut answers: Vec<(String, String, i64)> = Vec::new();
        let mut check = |path: &str, text: String, expected_logs: i64| {
            answers.push((path.to_string(), text, expected_logs));
        };
        // Each read is checked for its query-log rows before the next one starts.
        macro_rules! read {
            ($path:expr, $expected:expr, $text:expr) => {{
                let before = logged(&pool, reader.client_id).await;
                let text = $text;
                assert_logged(&pool, reader.client_id, before, $expected, $path).await;
                check($path, text, $expected);
            }};
        }
        for (path, sql) in [
            ("sql", "select * from dukcapil.penduduk"),
            ("sql rejects", "select * from dukcapil.penduduk__rejects"),
            (
                "sql time travel",
                "select * from version_of('dukcapil.penduduk', 1)",
            ),
            (
                "sql time travel rejects",
                "select * from version_of('dukcapil.penduduk__rejects', 1)",
            ),
        ] {
            for accept in [
                "application/json",
                "text/csv",
                "application/vnd.apache.parquet",
            ] {
                read!(&format!("{path} ({accept})"), 1, {
                    let (status, text) = sql_text(&hub, key, sql, accept).await;
                    assert_eq!(status, 200, "{path} as {}: {text}", reader.name);
                    text
                });
            }
        }
        read!(
            "postgres",
            1,
            pg_text(
                &hub,
                reader.client_id,
                key,
                "select * from dukcapil.penduduk"
            )
            .await
        );
        read!(
            "postgres rejects",
            1,
            pg_text(
                &hub,
                reader.client_id,
                key,
                "select * from dukcapil.penduduk__rejects"
            )
            .await
        );
        read!(
            "flight sql",
            1,
            flight_text(
                &hub,
                reader.client_id,
                key,
                "select * from dukcapil.penduduk"
            )
            .await
        );
        for (path, logs) in [
            ("/api/v1/datasets/dukcapil.penduduk/records", 1),
            ("/api/v1/datasets/dukcapil.penduduk/records?version=1", 1),
            ("/api/v1/datasets/dukcapil.penduduk/rejects", 1),
            ("/api/v1/datasets/dukcapil.penduduk/records?format=csv", 1),
            (
                "/api/v1/datasets/dukcapil.penduduk/rejects?format=parquet",
                1,
            ),
            (
                "/api/v1/bus/datasets/dukcapil.penduduk/changes?since_version=0",
                1,
            ),
            ("/api/v1/queries/semua_penduduk", 1),
            ("/api/v1/queries/semua_penduduk?format=csv", 1),
            ("/api/v1/semar/kpi", 3),
            ("/api/v1/complaints/kpi", 6),
        ] {
            read!(path, logs, {
                let (status, text) = get_text(&hub, Some(key), path, "*/*").await;
                assert_eq!(status, 200, "{path} as {}: {text}", reader.name);
                text
            });
        }
        read!(
            "/dashboards/penduduk",
            1,
            page_text(&hub, key, "/dashboards/penduduk").await
        );
        read!(
            "/dashboards/penduduk/panels/1.csv",
            1,
            page_text(&hub, key, "/dashboards/penduduk/panels/1.csv").await
        );

        for (path, text, _) in &answers {
            let found = leaked(text);
            if reader.sees_raw {
                // The paths that show rows at all show them whole to a holder of the grant.
                let rows_path = !path.contains("kpi");
                assert!(
                    !rows_path || !found.is_empty(),
                    "{path} as {}: raw values expected, none in {text}",
                    reader.name
                );
            } else {
                assert!(
                    found.is_empty(),
                    "{path} as {}: raw personal values {found:?} in {text}",
                    reader.name
                );
            }
        }
    }
}

type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook target on loopback that keeps each delivery's body by its `who` parameter.
async fn receiver() -> (String, Deliveries) {
    let received: Deliveries = Default::default();
    let kept = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |axum::extract::Query(query): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >,
                  body: String| {
                let kept = kept.clone();
                async move {
                    let who = query.get("who").cloned().unwrap_or_default();
                    kept.lock().unwrap().push((who, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_deliver_rows_as_the_subscriber_may_see_them() {
    let (hub, readers) = planted().await;
    let (url, received) = receiver().await;
    for reader in readers.iter().skip(1) {
        let key = reader.key.as_deref().unwrap();
        let answer = hub
            .post_json(
                key,
                "/api/v1/bus/webhooks",
                &json!({"dataset": "dukcapil.penduduk", "url": format!("{url}?who={}", reader.client_id), "since_version": 0}),
            )
            .await;
        assert_eq!(answer.status(), 201, "{}", reader.name);
    }
    let pool = hub.state_store().await;
    let mut bodies = Vec::new();
    for _ in 0..300 {
        bodies = received.lock().unwrap().clone();
        if bodies.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for reader in readers.iter().skip(1) {
        let (_, body) = bodies
            .iter()
            .find(|(who, _)| who == reader.client_id)
            .unwrap_or_else(|| panic!("no delivery for {}: {bodies:?}", reader.name));
        let found = leaked(body);
        assert_eq!(
            !found.is_empty(),
            reader.sees_raw,
            "a delivery to {}: {found:?} in {body}",
            reader.name
        );
        assert!(
            logged(&pool, reader.client_id).await >= 1,
            "a delivery's read is in the query log under its subscriber"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_paths_show_no_personal_value_and_log_every_read() {
    let (hub, _) = planted().await;
    let pool = hub.state_store().await;
    // A complaint whose resident wrote identity into the text, posted through Open311.
    let posted = hub
        .http
        .post(format!("{}/open311/v2/requests.json", hub.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::dashboards::encode(&[
            ("api_key", hub.admin_key.clone()),
            ("service_code", "jalan".into()),
            (
                "description",
                "Jalan rusak depan rumah Budi Santoso, NIK 3214011505900001, telepon 081234567889"
                    .into(),
            ),
            ("first_name", "Budi".into()),
            ("last_name", "Santoso".into()),
            ("phone", "081234567889".into()),
            ("address_string", "Jl. Veteran No. 12".into()),
            ("lat", "-6.5569".into()),
            ("long", "107.4433".into()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    let created: Value = posted.json().await.unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = format!("/open311/v2/requests/{id}.json");
    for (path, logs) in [
        ("/data/publik.penduduk", 1),
        ("/data/publik.penduduk/data.csv", 1),
        ("/data/publik.penduduk/data.json", 1),
        ("/data/publik.penduduk/data.parquet", 1),
        (
            "/api/3/action/datastore_search?resource_id=publik.penduduk",
            2,
        ),
        ("/open311/v2/requests.json", 1),
        (one.as_str(), 1),
        ("/dashboards/ringkasan", 5),
    ] {
        let before = logged(&pool, "public").await;
        let (status, text) = get_text(&hub, None, path, "*/*").await;
        assert_eq!(status, 200, "{path}: {text}");
        assert_logged(&pool, "public", before, logs, path).await;
        let found = leaked(&text);
        assert!(
            found.is_empty(),
            "{path}: raw personal values {found:?} in {text}"
        );
    }
    // The internal copy does not exist for the public at all.
    let (status, _) = get_text(&hub, None, "/data/dukcapil.penduduk", "*/*").await;
    assert_eq!(status, 404);
}

/// The routes the tests above read planted personal data through.
const READ_PATHS: [&str; 14] = [
    "post /api/v1/sql",
    "get /api/v1/datasets/{id}/records",
    "get /api/v1/datasets/{id}/rejects",
    "get /api/v1/bus/datasets/{id}/changes",
    "get /api/v1/queries/{name}",
    "get /api/v1/semar/kpi",
    "get /api/v1/complaints/kpi",
    "get /dashboards/{name}",
    "get /dashboards/{name}/panels/{file}",
    "get /data/{id}",
    "get /data/{id}/{file}",
    "get /api/3/action/datastore_search",
    "get /open311/v2/requests.json",
    "get /open311/v2/requests/{id}",
];

/// Every other route that answers a GET, with the reason it is not a read path of dataset
/// rows. A route added to the hub is in neither list until someone decides which it is.
const EXEMPT: [(&str, &str); 51] = [
    (
        "get /api/v1/datasets",
        "catalog metadata (ids, titles, owners), no rows",
    ),
    (
        "get /api/v1/datasets/{id}",
        "catalog metadata and statistics, no rows",
    ),
    (
        "get /api/v1/datasets/{id}/versions",
        "the Delta history: versions and commit metadata",
    ),
    ("get /api/v1/schemas", "schema documents, no data"),
    ("get /api/v1/schemas/{name}", "schema documents, no data"),
    (
        "get /api/v1/schemas/{name}/{version}",
        "schema documents, no data",
    ),
    ("get /api/v1/keys", "API clients, never keys; admins"),
    (
        "get /api/v1/users",
        "user accounts, never passwords; admins",
    ),
    (
        "get /api/v1/pipelines",
        "pipeline definitions and run outcomes",
    ),
    ("get /api/v1/pipelines/{name}", "a pipeline definition"),
    (
        "get /api/v1/pipelines/{name}/runs",
        "run outcomes and counts",
    ),
    (
        "get /api/v1/pipelines/{name}/runs/{number}",
        "one run's outcome and counts",
    ),
    ("get /api/v1/bus/members", "the bus registry"),
    ("get /api/v1/bus/grants", "the caller's grants"),
    (
        "get /api/v1/bus/datasets",
        "datasets with the caller's rights, no rows",
    ),
    ("get /api/v1/bus/keys", "the hub's public keys"),
    ("get /api/v1/bus/webhooks", "the caller's subscriptions"),
    (
        "get /api/v1/bus/webhooks/{id}/deliveries",
        "delivery outcomes, no rows (the rows go to the target: webhooks test above)",
    ),
    ("get /api/v1/bus/peers", "the federation registry"),
    ("get /api/v1/bus/requests", "access requests"),
    ("get /api/v1/queries", "saved query texts, no rows"),
    (
        "get /api/v1/queries/{name}/versions",
        "saved query texts, no rows",
    ),
    (
        "get /api/v1/semar/calls",
        "SEMAR's own records, masked by may_see_pii (semar.rs)",
    ),
    (
        "get /api/v1/semar/calls/{id}",
        "SEMAR's own records, masked by may_see_pii (semar.rs)",
    ),
    (
        "get /api/v1/semar/dispatches/{id}",
        "SEMAR's own records (semar.rs)",
    ),
    (
        "get /api/v1/semar/ambulances",
        "the fleet: units and positions",
    ),
    (
        "get /api/v1/semar/facilities/nearest",
        "health facilities, public places",
    ),
    (
        "get /api/v1/semar/drupadi",
        "on-call doctors' work numbers, the roster's purpose",
    ),
    (
        "get /api/v1/semar/stream",
        "SEMAR's live events, masked like its calls (semar.rs)",
    ),
    (
        "get /api/v1/complaints",
        "the complaints' own records, identity to the handling OPD only (complaints.rs)",
    ),
    (
        "get /api/v1/complaints/overdue",
        "counts of overdue cases by OPD",
    ),
    (
        "get /api/v1/complaints/{id}",
        "one case, identity to the handling OPD only (complaints.rs)",
    ),
    (
        "get /api/v1/complaints/{id}/attachments",
        "evidence metadata (complaints.rs)",
    ),
    (
        "get /api/v1/complaints/{id}/attachments/{attachment}",
        "evidence bytes, to the case's readers (complaints.rs)",
    ),
    ("get /api/v1/openapi.json", "this document"),
    ("get /open311/v2/services.json", "the complaint categories"),
    ("get /open311/v2/services/{code}", "one category"),
    ("get /", "the portal's home: counts and links"),
    ("get /data", "the public catalogue: metadata"),
    (
        "get /layanan",
        "Saluyu: the public service standards dataset, which has no personal columns",
    ),
    ("get /layanan/{kode}", "Saluyu: one service standard"),
    ("get /catalog.jsonld", "DCAT metadata of public datasets"),
    (
        "get /api/3/action/package_search",
        "CKAN metadata of public datasets",
    ),
    (
        "get /api/3/action/package_show",
        "CKAN metadata of one public dataset",
    ),
    ("get /api/3/action/organization_list", "the publishing OPD"),
    ("get /dashboards", "the list of dashboards"),
    ("get /assets/dashboards.css", "a style sheet"),
    ("get /login", "the login form"),
    ("get /health/live", "liveness"),
    (
        "get /health/ready",
        "readiness: statuses and counts, details to admins",
    ),
    ("get /metrics", "Prometheus counters; admins"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_in_the_matrix_or_exempt_with_a_reason() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let document = hub.json("/api/v1/openapi.json").await;
    let mut unclassified = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let route = format!("{method} {path}");
            if method != "get" && route != "post /api/v1/sql" {
                // Writes are not read paths; what they answer is the caller's own input.
                continue;
            }
            let covered = READ_PATHS.contains(&route.as_str());
            let exempt = EXEMPT.iter().any(|(exempt, _)| *exempt == route);
            assert!(!(covered && exempt), "{route} is both read and exempt");
            if !covered && !exempt {
                unclassified.insert(route);
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "routes neither in the access matrix nor exempt with a reason: {unclassified:?}"
    );
}
