//! The CKAN source against a mock Action API on loopback that answers in CKAN's own shapes:
//! `{help, success, result}`, `datastore_search` with `records`, `fields`, `_links` and
//! `total`, and `package_show`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::*;
use crate::rest_json::tests::{ids, read_all, serve};

const RESOURCE: &str = "7f9a2c1e-5b1d-4a8e-9c3f-2d6b8e4a1f00";
const TOTAL: usize = 250;

#[derive(Clone, Default)]
struct Portal {
    searches: Arc<AtomicUsize>,
}

fn record(i: usize) -> Value {
    json!({
        "_id": i,
        "kode_kecamatan": format!("32.14.{:02}", i % 17 + 1),
        "tahun": 2020 + (i % 5),
        "jumlah_penduduk": 50_000 + i,
    })
}

async fn datastore_search(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    portal.searches.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("token-rahasia") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "help": "https://data.example.go.id/api/3/action/help_show?name=datastore_search",
                "success": false,
                "error": {"message": "Access denied", "__type": "Authorization Error"},
            })),
        )
            .into_response();
    }
    if q.get("resource_id").map(String::as_str) != Some(RESOURCE) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "help": "https://data.example.go.id/api/3/action/help_show?name=datastore_search",
                "success": false,
                "error": {"message": "Not found: Resource \"x\" was not found.", "__type": "Not Found Error"},
            })),
        )
            .into_response();
    }
    let offset: usize = q.get("offset").map_or(0, |o| o.parse().unwrap());
    let limit: usize = q.get("limit").map_or(100, |l| l.parse().unwrap());
    let records: Vec<Value> = (offset..(offset + limit).min(TOTAL))
        .map(|i| record(i + 1))
        .collect();
    Json(json!({
        "help": "https://data.example.go.id/api/3/action/help_show?name=datastore_search",
        "success": true,
        "result": {
            "include_total": true,
            "limit": limit,
            "offset": offset,
            "records_format": "objects",
            "resource_id": RESOURCE,
            "total_estimation_threshold": null,
            "records": records,
            "fields": [
                {"id": "_id", "type": "int"},
                {"id": "kode_kecamatan", "type": "text"},
                {"id": "tahun", "type": "int"},
                {"id": "jumlah_penduduk", "type": "numeric"},
            ],
            "_links": {
                "start": format!("/api/3/action/datastore_search?limit={limit}&resource_id={RESOURCE}"),
                "next": format!("/api/3/action/datastore_search?offset={}&limit={limit}&resource_id={RESOURCE}", offset + limit),
            },
            "total": TOTAL,
        },
    }))
    .into_response()
}

async fn package_show(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    assert_eq!(q["id"], "jumlah-penduduk-purwakarta");
    Json(json!({
        "help": "https://data.example.go.id/api/3/action/help_show?name=package_show",
        "success": true,
        "result": {
            "id": "0c5b6a4e-8d1f-4c2e-a9b7-3e5f1d2c4b6a",
            "name": "jumlah-penduduk-purwakarta",
            "title": "Jumlah Penduduk per Kecamatan",
            "notes": "Jumlah penduduk Kabupaten Purwakarta per kecamatan dan tahun.",
            "license_id": "cc-by",
            "license_title": "Creative Commons Attribution",
            "organization": {"name": "disdukcapil-purwakarta", "title": "Disdukcapil Kabupaten Purwakarta"},
            "tags": [{"name": "kependudukan"}, {"name": "purwakarta"}],
            "resources": [{"id": RESOURCE, "datastore_active": true}],
        },
    }))
}

async fn portal() -> (String, Portal) {
    let portal = Portal::default();
    let router = Router::new()
        .route("/api/3/action/datastore_search", get(datastore_search))
        .route("/api/3/action/package_show", get(package_show))
        .with_state(portal.clone());
    (serve(router).await, portal)
}

fn config(url: String, resource: &str) -> CkanConfig {
    CkanConfig {
        url,
        resource_id: resource.into(),
        package_id: Some("jumlah-penduduk-purwakarta".into()),
        api_key: Some("token-rahasia".into()),
        limit: 100,
        concurrency: 2,
        requests_per_second: None,
        query: Vec::new(),
    }
}

#[tokio::test]
async fn reads_every_record_of_a_resource_once_paging_by_offset_and_total() {
    let (url, portal) = portal().await;
    let source = config(url, RESOURCE).source().unwrap();
    let (batches, _) = read_all(&source, None).await.unwrap();
    // CKAN's row id `_id` is normalised to `id` by the reader.
    assert_eq!(
        ids(&batches),
        (1..=TOTAL).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        portal.searches.load(Ordering::SeqCst),
        3,
        "250 records in pages of 100"
    );
}

#[tokio::test]
async fn package_show_gives_the_catalog_its_title_organization_and_licence() {
    let (url, _) = portal().await;
    let source = config(url, RESOURCE).source().unwrap();
    let metadata = source.metadata().await.unwrap().unwrap();
    assert_eq!(
        metadata.title.as_deref(),
        Some("Jumlah Penduduk per Kecamatan")
    );
    assert_eq!(
        metadata.publisher.as_deref(),
        Some("Disdukcapil Kabupaten Purwakarta")
    );
    assert_eq!(
        metadata.license.as_deref(),
        Some("Creative Commons Attribution")
    );
    assert_eq!(metadata.tags, vec!["kependudukan", "purwakarta"]);
}

#[tokio::test]
async fn a_missing_resource_and_a_refused_token_fail_with_the_portals_message() {
    let (url, _) = portal().await;
    let missing = read_all(&config(url.clone(), "x").source().unwrap(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("404") && missing.contains("datastore_search"),
        "{missing}"
    );
    let mut unauthorized = config(url, RESOURCE);
    unauthorized.api_key = None;
    let refused = unauthorized
        .source()
        .unwrap()
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("403") && refused.contains("Access denied"),
        "{refused}"
    );
}

#[test]
fn an_empty_resource_id_is_refused() {
    let mut empty = config("https://data.go.id".into(), " ");
    empty.package_id = None;
    assert!(empty.source().is_err());
}
