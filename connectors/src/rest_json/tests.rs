//! `rest_json` against real HTTP servers on loopback.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

use super::*;

/// Serves `router` on 127.0.0.1 and returns its base URL.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

pub(crate) fn config(url: String, pagination: Pagination) -> RestJsonConfig {
    RestJsonConfig {
        url,
        query: Vec::new(),
        headers: Vec::new(),
        auth: Auth::None,
        pagination,
        record_selector: "/items".into(),
        error_pointer: None,
        success_pointer: None,
        cursor: None,
        timeout_seconds: 5.0,
        max_retries: 3,
        backoff_seconds: 0.01,
        requests_per_second: None,
        concurrency: 4,
    }
}

/// Every batch and the last checkpoint of a read.
pub(crate) async fn read_all(
    source: &dyn Source,
    state: Option<Value>,
) -> Result<(Vec<RawBatch>, Option<Value>), SourceError> {
    let mut batches = Vec::new();
    let mut checkpoint = None;
    let mut events = source.read(source.default_stream(), state);
    while let Some(event) = events.next().await {
        match event? {
            ReadEvent::Batch(batch) => batches.push(batch),
            ReadEvent::Checkpoint(state) => checkpoint = Some(state),
        }
    }
    Ok((batches, checkpoint))
}

/// The `id` column of every batch, as JSON texts.
pub(crate) fn ids(batches: &[RawBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let column = b.batch.column_by_name("id").expect("id column");
            let text = column.as_string::<i32>().clone();
            (0..text.len())
                .map(|i| text.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn numbered(range: std::ops::Range<u64>) -> Vec<Value> {
    range
        .map(|i| json!({ "id": i, "nama": format!("desa {i}") }))
        .collect()
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn pages_by_number_until_a_short_page() {
    let router = Router::new().route(
        "/items",
        get(|Query(q): Query<HashMap<String, u64>>| async move {
            let (page, size) = (q["page"], q["size"]);
            let start = (page - 1) * size;
            Json(json!({ "items": numbered(start..(start + size).min(25)) }))
        }),
    );
    let base = serve(router).await;
    let pagination = Pagination::PageSize {
        page_param: "page".into(),
        size_param: "size".into(),
        size: 10,
        first_page: 1,
        total_pages_pointer: None,
    };
    let source = RestJson::new(config(format!("{base}/items"), pagination)).unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    assert_eq!(ids(&batches), expected(0..25));
}

#[tokio::test]
async fn pages_by_offset_with_a_total_fetch_concurrently_and_stay_in_order() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/items",
            get(
                |State((in_flight, most)): State<(Arc<AtomicUsize>, Arc<AtomicUsize>)>,
                 Query(q): Query<HashMap<String, u64>>| async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let (offset, limit) = (q["offset"], q["limit"]);
                    Json(json!({
                        "total": 95,
                        "items": numbered(offset..(offset + limit).min(95)),
                    }))
                },
            ),
        )
        .with_state((in_flight, most.clone()));
    let base = serve(router).await;
    let pagination = Pagination::OffsetLimit {
        offset_param: "offset".into(),
        limit_param: "limit".into(),
        limit: 10,
        total_pointer: Some("/total".into()),
    };
    let source = RestJson::new(config(format!("{base}/items"), pagination)).unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    assert_eq!(ids(&batches), expected(0..95));
    assert!(
        most.load(Ordering::SeqCst) > 1,
        "pages after the first are fetched at the same time"
    );
    assert!(
        most.load(Ordering::SeqCst) <= 4,
        "but no more than `concurrency`"
    );
}

#[tokio::test]
async fn follows_cursor_tokens_link_headers_and_next_urls() {
    let router = Router::new()
        .route(
            "/cursor",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let from: u64 = q.get("token").map_or(0, |t| t.parse().unwrap());
                let next = (from + 5 < 12).then(|| (from + 5).to_string());
                Json(json!({ "items": numbered(from..(from + 5).min(12)), "next": next }))
            }),
        )
        .route(
            "/link",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let from = q.get("from").copied().unwrap_or(0);
                let mut headers = HeaderMap::new();
                if from + 4 < 10 {
                    let link = format!("</link?from={}>; rel=\"next\"", from + 4);
                    headers.insert("link", link.parse().unwrap());
                }
                (headers, Json(json!({ "items": numbered(from..(from + 4).min(10)) })))
            }),
        )
        .route(
            "/next",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let from = q.get("from").copied().unwrap_or(0);
                let next = (from + 3 < 7).then(|| format!("/next?from={}", from + 3));
                Json(json!({ "items": numbered(from..(from + 3).min(7)), "links": { "next": next } }))
            }),
        );
    let base = serve(router).await;
    let cases = [
        (
            "cursor",
            Pagination::Cursor {
                param: "token".into(),
                pointer: "/next".into(),
            },
            12,
        ),
        ("link", Pagination::LinkHeader, 10),
        (
            "next",
            Pagination::NextUrl {
                pointer: "/links/next".into(),
            },
            7,
        ),
    ];
    for (path, pagination, total) in cases {
        let source = RestJson::new(config(format!("{base}/{path}"), pagination)).unwrap();
        let (batches, _) = read_all(&source, None).await.unwrap();
        assert_eq!(ids(&batches), expected(0..total), "{path}");
    }
}

#[tokio::test]
async fn a_next_page_or_token_that_points_back_stops_the_read_with_an_error() {
    let router = Router::new().route(
        "/loop",
        get(|| async {
            Json(json!({ "items": numbered(0..2), "next": "/loop", "token": "same" }))
        }),
    );
    let base = serve(router).await;
    for pagination in [
        Pagination::NextUrl {
            pointer: "/next".into(),
        },
        Pagination::Cursor {
            param: "token".into(),
            pointer: "/token".into(),
        },
    ] {
        let source = RestJson::new(config(format!("{base}/loop"), pagination)).unwrap();
        let error = read_all(&source, None).await.unwrap_err().to_string();
        assert!(error.contains("already read"), "{error}");
    }
}

#[tokio::test]
async fn retries_429_and_500_then_lands_the_data_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/flaky",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "0")],
                        "slow down",
                    )
                        .into_response(),
                    1 => (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response(),
                    _ => Json(json!({ "items": numbered(0..3) })).into_response(),
                }
            }),
        )
        .with_state(calls.clone());
    let base = serve(router).await;
    let source = RestJson::new(config(format!("{base}/flaky"), Pagination::None)).unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    assert_eq!(ids(&batches), expected(0..3));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two failures, one success");
}

#[tokio::test]
async fn a_permanent_failure_names_the_url_and_status_without_retrying() {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/gone",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                (StatusCode::NOT_FOUND, "dataset not found")
            }),
        )
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
        )
        .with_state(calls.clone());
    let base = serve(router).await;
    let source = RestJson::new(config(format!("{base}/gone"), Pagination::None)).unwrap();
    let error = read_all(&source, None).await.unwrap_err().to_string();
    assert!(error.contains(&format!("{base}/gone")), "{error}");
    assert!(
        error.contains("404") && error.contains("dataset not found"),
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a 404 is not retried");

    let source = RestJson::new(config(format!("{base}/down"), Pagination::None)).unwrap();
    let error = read_all(&source, None).await.unwrap_err().to_string();
    assert!(
        error.contains("503") && error.contains("gave up after 4 attempts"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = config(format!("http://{address}/items"), Pagination::None);
    config.max_retries = 1;
    let source = RestJson::new(config).unwrap();
    let error = source.check().await.unwrap_err().to_string();
    assert!(
        error.contains("cannot reach") && error.contains(&address.to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn sends_each_kind_of_credentials() {
    async fn guarded(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let allowed = header("authorization") == Some("Bearer rahasia")
            || header("apikey") == Some("kunci")
            // "petugas:sandi" in base64.
            || header("authorization") == Some("Basic cGV0dWdhczpzYW5kaQ==")
            || q.get("api_key").map(String::as_str) == Some("kunci");
        if allowed {
            Json(json!({ "items": numbered(0..1) })).into_response()
        } else {
            StatusCode::UNAUTHORIZED.into_response()
        }
    }
    let base = serve(Router::new().route("/guarded", get(guarded))).await;
    let url = format!("{base}/guarded");
    let refused = RestJson::new(config(url.clone(), Pagination::None)).unwrap();
    let error = refused.check().await.unwrap_err().to_string();
    assert!(error.contains("401"), "{error}");
    for auth in [
        Auth::Bearer {
            token: "rahasia".into(),
        },
        Auth::ApiKeyHeader {
            header: "APIkey".into(),
            key: "kunci".into(),
        },
        Auth::Basic {
            username: "petugas".into(),
            password: "sandi".into(),
        },
        Auth::QueryKey {
            param: "api_key".into(),
            key: "kunci".into(),
        },
    ] {
        let mut config = config(url.clone(), Pagination::None);
        config.auth = auth.clone();
        let source = RestJson::new(config).unwrap();
        let (batches, _) = read_all(&source, None).await.unwrap();
        assert_eq!(ids(&batches), expected(0..1), "{auth:?}");
        assert!(
            !batches[0].positions[0].source.contains("kunci"),
            "positions never hold the key"
        );
    }
}

#[tokio::test]
async fn incremental_reads_send_the_saved_cursor_and_checkpoint_the_largest_value() {
    let router = Router::new().route(
        "/changes",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let all = [
                json!({ "id": 1, "updated_at": "2026-11-01T08:00:00+07:00" }),
                json!({ "id": 2, "updated_at": "2026-11-03T08:00:00+07:00" }),
                json!({ "id": 3, "updated_at": "2026-11-02T08:00:00+07:00" }),
            ];
            let since = q.get("updated_since").cloned().unwrap_or_default();
            let items: Vec<&Value> = all
                .iter()
                .filter(|r| r["updated_at"].as_str().unwrap() > since.as_str())
                .collect();
            Json(json!({ "items": items }))
        }),
    );
    let base = serve(router).await;
    let mut config = config(format!("{base}/changes"), Pagination::None);
    config.cursor = Some(CursorParam {
        field: "updated_at".into(),
        param: "updated_since".into(),
    });
    let source = RestJson::new(config).unwrap();
    let (batches, checkpoint) = read_all(&source, None).await.unwrap();
    assert_eq!(ids(&batches), vec!["1", "2", "3"]);
    let checkpoint = checkpoint.expect("an incremental read checkpoints");
    assert_eq!(checkpoint["cursor"], "2026-11-03T08:00:00+07:00");

    let (batches, again) = read_all(&source, Some(checkpoint.clone())).await.unwrap();
    assert!(ids(&batches).is_empty(), "nothing new since the cursor");
    assert_eq!(again, Some(checkpoint), "the cursor stays where it was");
}

#[tokio::test]
async fn records_that_are_not_objects_are_malformed_and_a_wrong_selector_is_an_error() {
    let router = Router::new().route(
        "/mixed",
        get(|| async { Json(json!({ "items": [{ "id": 1 }, 7, { "id": 2 }], "count": 3 })) }),
    );
    let base = serve(router).await;
    let source = RestJson::new(config(format!("{base}/mixed"), Pagination::None)).unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    assert_eq!(ids(&batches), vec!["1", "2"]);
    let malformed = &batches[0].malformed;
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0].position.line, 2);
    assert_eq!(malformed[0].record, json!(7));

    let mut wrong = config(format!("{base}/mixed"), Pagination::None);
    wrong.record_selector = "/count".into();
    let error = RestJson::new(wrong).unwrap().check().await.unwrap_err();
    assert!(error.to_string().contains("not an array"), "{error}");
}

#[tokio::test]
async fn discover_infers_the_stream_schema_from_the_first_page() {
    let router = Router::new().route(
        "/items",
        get(|| async { Json(json!({ "items": [{ "id": 1, "nama": "Cibatu", "luas": 4.5 }] })) }),
    );
    let base = serve(router).await;
    let source = RestJson::new(config(format!("{base}/items"), Pagination::None)).unwrap();
    let streams = source.discover().await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].name, STREAM);
    let names: Vec<&str> = streams[0]
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, vec!["id", "nama", "luas"]);
    assert!(source.spec()["properties"]["pagination"].is_object());
}

#[test]
fn refuses_configs_that_cannot_work() {
    let bad_url = config("not a url".into(), Pagination::None);
    assert!(RestJson::new(bad_url).is_err());
    let mut bad_pointer = config("http://127.0.0.1/x".into(), Pagination::None);
    bad_pointer.record_selector = "data".into();
    let error = RestJson::new(bad_pointer).err().unwrap().to_string();
    assert!(error.contains("JSON pointer"), "{error}");
}

#[tokio::test]
async fn a_next_page_on_another_host_is_refused_and_gets_no_credentials() {
    let stolen = Arc::new(AtomicUsize::new(0));
    let elsewhere = serve(
        Router::new()
            .route(
                "/steal",
                get(|State(stolen): State<Arc<AtomicUsize>>| async move {
                    stolen.fetch_add(1, Ordering::SeqCst);
                    Json(json!({ "items": [] }))
                }),
            )
            .with_state(stolen.clone()),
    )
    .await;
    let next = format!("{elsewhere}/steal");
    let base = serve(Router::new().route(
        "/items",
        get(move || {
            let next = next.clone();
            async move { Json(json!({ "items": numbered(0..2), "next": next })) }
        }),
    ))
    .await;
    let mut config = config(
        format!("{base}/items"),
        Pagination::NextUrl {
            pointer: "/next".into(),
        },
    );
    config.auth = Auth::Bearer {
        token: "rahasia-opd".into(),
    };
    let source = RestJson::new(config).unwrap();
    let error = read_all(&source, None).await.unwrap_err().to_string();
    assert!(error.contains("another host"), "{error}");
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the other host was never called"
    );
}
