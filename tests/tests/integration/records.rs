//! The records API: ROAPI-style filters, sort, projection and paging, without SQL.

use crate::harness::Hub;

async fn records(hub: &Hub, query: &str) -> (u16, serde_json::Value) {
    let response = hub
        .get(
            &hub.admin_key,
            &format!("/api/v1/datasets/ref.wilayah/records?{query}"),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_sort_project_and_page_rows() {
    let hub = Hub::start();
    let (status, body) = records(
        &hub,
        "columns=kode,nama&filter[level]eq=kecamatan&sort=-kode&limit=3",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["rows"],
        serde_json::json!([
            {"kode": "32.14.17", "nama": "Kiarapedes"},
            {"kode": "32.14.16", "nama": "Pondoksalam"},
            {"kode": "32.14.15", "nama": "Sukasari"},
        ])
    );
    assert_eq!(body["truncated"], true, "more rows exist past the limit");

    let (_, page) = records(
        &hub,
        "columns=kode&filter[level]=kecamatan&sort=kode&limit=2&offset=15",
    )
    .await;
    assert_eq!(
        page["rows"],
        serde_json::json!([{"kode": "32.14.16"}, {"kode": "32.14.17"}])
    );
    assert_eq!(page["truncated"], false);

    let (_, kelurahan) = records(
        &hub,
        "columns=nama&filter[kode]like=32.14.__.1%&filter[level]=kelurahan&sort=nama",
    )
    .await;
    assert_eq!(kelurahan["row_count"], 9, "Purwakarta has nine kelurahan");
    let (_, south) = records(
        &hub,
        "columns=nama&filter[level]=kecamatan&filter[lat]lt=-6.7",
    )
    .await;
    let (_, north) = records(
        &hub,
        "columns=nama&filter[level]=kecamatan&filter[lat]gte=-6.7",
    )
    .await;
    assert_eq!(
        south["row_count"].as_u64().unwrap() + north["row_count"].as_u64().unwrap(),
        17
    );

    let csv = hub
        .http
        .get(format!(
            "{}/api/v1/datasets/ref.wilayah/records?columns=kode&filter[level]=kabupaten",
            hub.url
        ))
        .bearer_auth(&hub.admin_key)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv, "kode\n32.14\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_get_clear_errors() {
    let hub = Hub::start();
    let (status, body) = records(&hub, "filter[kecamatan]=x").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("column 'kecamatan' does not exist"),
        "{body}"
    );
    let (status, body) = records(&hub, "filter[lat]gt=north").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("'north' is not a valid"),
        "{body}"
    );
    let (status, _) = records(&hub, "filter[lat]between=1").await;
    assert_eq!(status, 400);
    let unknown = hub
        .get(&hub.admin_key, "/api/v1/datasets/stats.tidak_ada/records")
        .await;
    assert_eq!(unknown.status(), 404);
    let malformed = hub
        .get(&hub.admin_key, "/api/v1/datasets/Bad-Id/records")
        .await;
    assert_eq!(malformed.status(), 400);
}
