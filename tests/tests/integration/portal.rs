//! The public portal from the outside, with no key: search with facets, a dataset's page and
//! its downloads (row counts checked against the file ingested), the CKAN action API as a
//! harvester calls it, and the DCAT catalog. Datasets that are not public never show.

use serde_json::Value;

use crate::harness::{Hub, fixture};

const POVERTY: &str = "garis_kemiskinan_kabupatenkota.csv";

/// Rows of the poverty-line file (of one year when given), counted here.
pub(crate) fn fixture_rows(year: Option<&str>) -> usize {
    let text = std::fs::read_to_string(fixture(POVERTY)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .filter(|l| year.is_none_or(|y| l.ends_with(&format!(",{y}"))))
        .count()
}

/// Ingests the poverty-line file as the public `stats.garis_kemiskinan`, owned by BAPPEDA.
pub(crate) fn ingest_public(hub: &Hub) {
    let file = fixture(POVERTY);
    let report = hub.cli_ok(&[
        "ingest",
        file.to_str().unwrap(),
        "--dataset",
        "stats.garis_kemiskinan",
        "--owner",
        "BAPPEDA",
        "--classification",
        "public",
    ]);
    assert!(report.contains("rows written"), "{report}");
}

async fn get(hub: &Hub, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", hub.url)).await.unwrap()
}

async fn ckan(hub: &Hub, path: &str) -> (u16, Value) {
    let response = get(hub, path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_data_portal_finds_shows_and_serves_public_datasets_only() {
    let hub = Hub::start();
    ingest_public(&hub);
    hub.ingest_residents();
    let rows = fixture_rows(None);

    let home = get(&hub, "/").await;
    assert_eq!(home.status(), 200);
    assert!(
        home.text()
            .await
            .unwrap()
            .contains("Portal Data Kabupaten Purwakarta")
    );

    let page = get(&hub, "/data?q=kemiskinan").await.text().await.unwrap();
    assert!(
        page.contains("<strong class=\"count\">1</strong> dataset"),
        "one match"
    );
    assert!(page.contains("href=\"/data/stats.garis_kemiskinan\""));
    assert!(page.contains("owner=BAPPEDA"), "an OPD facet");
    let all = get(&hub, "/data").await.text().await.unwrap();
    assert!(
        all.contains("/data/ref.wilayah") && !all.contains("dukcapil.penduduk"),
        "public only"
    );
    let by_owner = get(&hub, "/data?owner=BAPPEDA").await.text().await.unwrap();
    assert!(by_owner.contains("<strong class=\"count\">1</strong>"));

    // A dataset's page: metadata, its schema's Indonesian titles, a preview, downloads.
    let page = get(&hub, "/data/ref.wilayah").await.text().await.unwrap();
    assert!(
        page.contains("wilayah@1") && page.contains("Unduh"),
        "metadata"
    );
    assert!(
        page.contains("<td>Kode wilayah</td>"),
        "the schema's titles: {page:.2000}"
    );
    assert!(page.contains("Kabupaten Purwakarta"), "the preview");

    let csv = get(&hub, "/data/stats.garis_kemiskinan/data.csv").await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("stats.garis_kemiskinan.csv")
    );
    let text = csv.text().await.unwrap();
    assert_eq!(
        text.lines().count() - 1,
        rows,
        "every row of the file, and the header"
    );
    let parquet = get(&hub, "/data/stats.garis_kemiskinan/data.parquet")
        .await
        .bytes()
        .await
        .unwrap();
    let read = crate::harness::read_parquet(parquet);
    assert_eq!(
        read.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        rows
    );
    let json: Value = get(&hub, "/data/stats.garis_kemiskinan/data.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["row_count"], rows);

    for path in [
        "/data/dukcapil.penduduk",
        "/data/dukcapil.penduduk/data.csv",
        "/data/stats.garis_kemiskinan/data.xlsx",
        "/data/bukan-dataset",
    ] {
        assert_eq!(get(&hub, path).await.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ckan_harvester_and_a_dcat_reader_see_the_public_catalog() {
    let hub = Hub::start();
    ingest_public(&hub);
    hub.ingest_residents();

    let (status, search) = ckan(&hub, "/api/3/action/package_search?q=kemiskinan&rows=5").await;
    assert_eq!(status, 200);
    assert_eq!(search["success"], true);
    assert!(search["help"].as_str().unwrap().contains("help_show"));
    let result = &search["result"];
    assert_eq!(result["count"], 1, "{result}");
    let package = &result["results"][0];
    assert_eq!(package["name"], "stats-garis_kemiskinan");
    assert_eq!(package["organization"]["name"], "bappeda");
    let resources = package["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 3);
    let csv_url = resources.iter().find(|r| r["format"] == "CSV").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        csv_url.starts_with("http://127.0.0.1:") && csv_url.ends_with("/data.csv"),
        "{csv_url}"
    );
    let harvested = reqwest::get(&csv_url).await.unwrap().text().await.unwrap();
    assert_eq!(
        harvested.lines().count() - 1,
        fixture_rows(None),
        "the resource URL serves the rows"
    );

    let (_, everything) = ckan(&hub, "/api/3/action/package_search?q=*:*&rows=1&start=0").await;
    let total = everything["result"]["count"].as_u64().unwrap();
    assert!(total >= 2, "ref.wilayah and the poverty line at least");
    assert_eq!(
        everything["result"]["results"].as_array().unwrap().len(),
        1,
        "rows caps the page"
    );
    let names: Vec<String> = {
        let (_, all) = ckan(&hub, "/api/3/action/package_search?rows=1000").await;
        all["result"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        !names.iter().any(|n| n.contains("penduduk")),
        "restricted data is not harvested: {names:?}"
    );
    let (_, filtered) = ckan(&hub, "/api/3/action/package_search?fq=organization:bappeda").await;
    assert_eq!(filtered["result"]["count"], 1);
    let (status, bad) = ckan(&hub, "/api/3/action/package_search?fq=groups:x").await;
    assert_eq!((status, &bad["success"]), (400, &Value::Bool(false)));

    let (status, shown) = ckan(&hub, "/api/3/action/package_show?id=stats-garis_kemiskinan").await;
    assert_eq!(status, 200);
    assert_eq!(shown["result"]["id"], "stats.garis_kemiskinan");
    let (status, missing) = ckan(&hub, "/api/3/action/package_show?id=dukcapil-penduduk").await;
    assert_eq!((status, &missing["success"]), (404, &Value::Bool(false)));
    assert_eq!(missing["error"]["__type"], "Not Found Error");

    let (_, orgs) = ckan(&hub, "/api/3/action/organization_list").await;
    assert!(
        orgs["result"]
            .as_array()
            .unwrap()
            .contains(&Value::from("bappeda"))
    );
    let (_, orgs) = ckan(&hub, "/api/3/action/organization_list?all_fields=true").await;
    let bappeda = orgs["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "bappeda")
        .cloned()
        .unwrap();
    assert_eq!(bappeda["package_count"], 1);

    let (status, store) = ckan(
        &hub,
        "/api/3/action/datastore_search?resource_id=stats.garis_kemiskinan&filters=%7B%22tahun%22%3A2020%7D&limit=2",
    )
    .await;
    assert_eq!(status, 200, "{store}");
    let result = &store["result"];
    assert_eq!(result["total"], fixture_rows(Some("2020")), "{result}");
    assert_eq!(result["records"].as_array().unwrap().len(), 2);
    assert!(
        result["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tahun"] == 2020)
    );
    assert!(
        result["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "tahun" && f["type"] == "int")
    );
    let (status, _) = ckan(&hub, "/api/3/action/datastore_search?resource_id=stats.garis_kemiskinan&filters=%7B%22nope%22%3A1%7D").await;
    assert_eq!(status, 409);
    let (status, _) = ckan(
        &hub,
        "/api/3/action/datastore_search?resource_id=dukcapil.penduduk",
    )
    .await;
    assert_eq!(status, 404);

    let dcat = get(&hub, "/catalog.jsonld").await;
    assert_eq!(dcat.headers()["content-type"], "application/ld+json");
    let dcat: Value = dcat.json().await.unwrap();
    assert_eq!(dcat["@type"], "dcat:Catalog");
    let ids: Vec<&str> = dcat["dcat:dataset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dct:identifier"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"stats.garis_kemiskinan") && !ids.contains(&"dukcapil.penduduk"),
        "{ids:?}"
    );
    let poverty = dcat["dcat:dataset"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dct:identifier"] == "stats.garis_kemiskinan")
        .unwrap();
    assert_eq!(poverty["dcat:distribution"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn saluyu_lists_the_public_services_with_their_requirements_and_costs() {
    let hub = Hub::start();
    let none = get(&hub, "/layanan").await.text().await.unwrap();
    assert!(
        none.contains("belum ada atau belum publik"),
        "before the dataset exists"
    );
    let file = fixture("layanan_publik_sample.ndjson");
    let report = hub.cli_ok(&[
        "ingest",
        file.to_str().unwrap(),
        "--dataset",
        "pelayanan.layanan_publik",
        "--schema",
        "layanan_publik",
        "--owner",
        "DPMPTSP",
        "--classification",
        "public",
    ]);
    assert!(report.contains("rows written:  2"), "{report}");

    let page = get(&hub, "/layanan").await.text().await.unwrap();
    assert!(page.contains("<strong class=\"count\">2</strong> layanan"));
    let found = get(&hub, "/layanan?q=akta").await.text().await.unwrap();
    assert!(
        found.contains("<strong class=\"count\">1</strong>") && found.contains("/layanan/DUK-001")
    );
    let birth = get(&hub, "/layanan/DUK-001").await.text().await.unwrap();
    for expected in [
        "Surat keterangan lahir",
        "Gratis",
        "1 hari kerja",
        "UU 24/2013",
        "href=\"https://purwakartakab.go.id/plipmas\"",
    ] {
        assert!(birth.contains(expected), "{expected}");
    }
    let building = get(&hub, "/layanan/DPM-010").await.text().await.unwrap();
    assert!(
        building.contains("Rp1.500.000"),
        "the cost in rupiah, Indonesian style"
    );
    assert_eq!(get(&hub, "/layanan/TIDAK-ADA").await.status(), 404);
}
