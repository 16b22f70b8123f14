//! Dashboards over HTTP: a public dashboard for anyone, the numbers against the shipped
//! region list counted here, the map's drill-down links, the CSV behind a panel, and the
//! login session (CSRF, cookie flags, logout) guarding the others.

use reqwest::redirect::Policy;
use serde_json::json;

use crate::harness::Hub;

const WILAYAH: &str = include_str!("../../../hub/reference/wilayah_3214.csv");

/// Desa and kelurahan rows of the shipped region list, as `(parent kecamatan, level)`.
fn regions() -> Vec<(String, String)> {
    WILAYAH
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let level = cells.get(3)?.to_string();
            (level == "desa" || level == "kelurahan").then(|| (cells[4].to_string(), level))
        })
        .collect()
}

/// A kecamatan's area in km² from the shipped GeoJSON, on the sphere (the spherical-excess
/// sum of Chamberlain & Duquette), written here apart from the hub's own.
fn kecamatan_area_km2(kode: &str) -> f64 {
    let geojson: serde_json::Value = serde_json::from_str(include_str!(
        "../../../hub/reference/kecamatan_3214.geojson"
    ))
    .unwrap();
    let feature = geojson["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["kode"] == kode)
        .unwrap();
    let geometry = &feature["geometry"];
    let polygons: Vec<&serde_json::Value> = if geometry["type"] == "Polygon" {
        vec![&geometry["coordinates"]]
    } else {
        geometry["coordinates"].as_array().unwrap().iter().collect()
    };
    let radius: f64 = 6_371_008.8;
    let mut total = 0.0;
    for polygon in polygons {
        for ring in polygon.as_array().unwrap() {
            let points: Vec<(f64, f64)> = ring
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            let mut sum = 0.0;
            for i in 0..points.len() {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                sum += (b.0 - a.0).to_radians()
                    * (2.0 + a.1.to_radians().sin() + b.1.to_radians().sin());
            }
            total += (sum * radius * radius / 2.0).abs();
        }
    }
    total / 1e6
}

/// A page's HTML, fetched with a `Bearer` key.
async fn page_as(http: &reqwest::Client, url: impl reqwest::IntoUrl, key: &str) -> String {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn stat(page: &str) -> String {
    let start = page.find("<p class=\"stat\">").expect("a stat panel") + 16;
    page[start..].split('<').next().unwrap().to_string()
}

/// The `name=value` of a `Set-Cookie` header named `name`, with its attributes.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// A form body, as a browser sends it.
pub(crate) fn encode(fields: &[(&str, String)]) -> String {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    body.finish()
}

pub(crate) fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect("the hidden field") + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_dashboard_counts_what_the_region_list_holds_and_drills_down_on_the_map() {
    let hub = Hub::start();
    let http = client();
    let regions = regions();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", hub.url);
        async move { http.get(url).send().await.unwrap() }
    };

    let response = get("/dashboards/ringkasan".into()).await;
    assert_eq!(response.status(), 200, "public: no login");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert_eq!(stat(&page), format!("{} wilayah", regions.len()));
    assert!(page.contains("<html lang=\"id\">") && page.contains("name=\"viewport\""));
    // The map: every kecamatan drawn, named on hover, a link to its own view.
    for kode in ["32.14.01", "32.14.09", "32.14.17"] {
        assert!(
            page.contains(&format!("href=\"/dashboards/ringkasan?kecamatan={kode}\"")),
            "{kode} links to its desa"
        );
    }
    assert!(
        page.matches("data-kode=\"32.14.").count() >= 17,
        "the map draws the 17 kecamatan"
    );
    assert!(
        page.contains("<title>Purwakarta: 10 wilayah</title>"),
        "hover shows the value"
    );
    // The area panel: Kecamatan Purwakarta's area, computed here from the shipped boundary.
    // One decimal, a comma before it, none when it is zero: as the page writes numbers.
    let area = format!(
        "{:.1}",
        (kecamatan_area_km2("32.14.01") * 100.0).round() / 100.0
    )
    .trim_end_matches(".0")
    .replace('.', ",");
    assert!(
        page.contains(&format!("<title>Purwakarta: {area} km²</title>")),
        "the area of Kecamatan Purwakarta, {area} km²"
    );
    // No population register has landed: its panel says so instead of failing.
    assert!(
        page.contains("Data panel ini belum ada di hub."),
        "a panel over missing data says so"
    );

    // A kecamatan and the area type narrow the numbers to what the list holds.
    let in_purwakarta = regions.iter().filter(|(k, _)| k == "32.14.01").count();
    let page = get("/dashboards/ringkasan?kecamatan=32.14.01".into())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(stat(&page), format!("{in_purwakarta} wilayah"));
    assert!(page.contains("Kecamatan <strong>Purwakarta</strong>"));
    let kelurahan = regions.iter().filter(|(_, l)| l == "kelurahan").count();
    let page = get("/dashboards/ringkasan?area=kelurahan".into())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(stat(&page), format!("{kelurahan} wilayah"));

    // The CSV behind the bar chart: one row per kecamatan and level.
    let csv = get("/dashboards/ringkasan/panels/2.csv?kecamatan=32.14.01".into()).await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("kode,kecamatan,jenis,jumlah"));
    let total: usize = lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, in_purwakarta);

    // Bad filters and unknown things get clear pages.
    let bad = get("/dashboards/ringkasan?kecamatan=32.99.01".into()).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("bukan kode kecamatan"));
    assert_eq!(
        get("/dashboards/ringkasan?from=kemarin".into())
            .await
            .status(),
        400
    );
    assert_eq!(get("/dashboards/tidak_ada".into()).await.status(), 404);
    assert_eq!(
        get("/dashboards/ringkasan/panels/9.csv".into())
            .await
            .status(),
        404
    );
    let style = get("/assets/dashboards.css".into()).await;
    assert!(
        style.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

/// `count` residents of desa `kode` with distinct NIKs issued in kecamatan `kecamatan6`
/// (`321401`), as the population register's CSV rows.
fn residents(kode: &str, kecamatan6: &str, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| {
            format!(
                "{kecamatan6}1505900{n:03},3214010101100001,Warga {n},Purwakarta,1990-05-15,L,\
                 Jl. Contoh {n},001,002,{kode},,true\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_summary_counts_residents_from_the_restricted_register_and_hides_small_cells() {
    let hub = Hub::start();
    let http = client();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{}{path}", hub.url);
        async move { http.get(url).send().await.unwrap() }
    };
    // 10 residents in Nagri Kidul and 2 in Nagri Kaler (Kecamatan Purwakarta), 3 in
    // Kecamatan Campaka: 12 and 3 by kecamatan.
    let file = hub.dir.path().join("penduduk.csv");
    let mut csv = String::from(
        "nik,no_kk,nama,tempat_lahir,tanggal_lahir,jenis_kelamin,alamat,rt,rw,kode_wilayah,telepon,status_hidup\n",
    );
    csv.push_str(&residents("32.14.01.1001", "321401", 1, 10));
    csv.push_str(&residents("32.14.01.1002", "321401", 11, 2));
    csv.push_str(&residents("32.14.02.2001", "321402", 13, 3));
    std::fs::write(&file, csv).unwrap();
    let report = hub.cli_ok(&[
        "ingest",
        file.to_str().unwrap(),
        "--dataset",
        "kependudukan.penduduk",
        "--schema",
        "penduduk",
    ]);
    assert!(report.contains("rows written:  15"), "{report}");
    hub.patch_dataset(
        "kependudukan.penduduk",
        &json!({"classification": "restricted"}),
    )
    .await;
    // The register itself stays closed to the public.
    assert_eq!(get("/data/kependudukan.penduduk").await.status(), 404);

    let page = get("/dashboards/ringkasan").await.text().await.unwrap();
    assert!(
        page.contains("<title>Purwakarta: 12 jiwa</title>"),
        "twelve residents are enough to show"
    );
    assert!(
        !page.contains(": 3 jiwa</title>"),
        "three residents are too few to show"
    );
    assert!(page.contains("Angka yang mewakili kurang dari 10 catatan disembunyikan"));
    let csv = get("/dashboards/ringkasan/panels/5.csv")
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "kode,wilayah,penduduk");
    assert!(lines.contains(&"32.14.01,Purwakarta,12"), "{csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("32.14.02,") && l.ends_with(',')),
        "the small cell keeps its region and loses its count: {csv}"
    );
    // By desa: Nagri Kidul's 10 show, Nagri Kaler's 2 do not.
    let csv = get("/dashboards/ringkasan/panels/5.csv?kecamatan=32.14.01")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines().any(|l| l == "32.14.01.1001,Nagri Kidul,10"),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l == "32.14.01.1002,Nagri Kaler,"),
        "{csv}"
    );

    // Over the API the rule is said in a header, and only admins define such queries.
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let run = hub
        .get(&analyst, "/api/v1/queries/dasbor_penduduk_wilayah")
        .await;
    assert_eq!(run.status(), 200);
    assert_eq!(run.headers()["simpul-suppressed-below"], "10");
    let leaky = json!({
        "sql": "select nik, 100 as n from kependudukan.penduduk",
        "aggregate": {"count": "n", "keys": ["nik"]}
    });
    let bocor = "/api/v1/queries/penduduk_bocor";
    assert_eq!(hub.put_json(&analyst, bocor, &leaky).await.status(), 403);
    // Nor may an analyst replace or delete the one the public page shows.
    let plain = json!({"sql": "select 1 as kode, 1 as wilayah, 1 as penduduk"});
    let replace = hub
        .put_json(&analyst, "/api/v1/queries/dasbor_penduduk_wilayah", &plain)
        .await;
    assert_eq!(replace.status(), 403);
    let delete = hub
        .http
        .delete(format!(
            "{}/api/v1/queries/dasbor_penduduk_wilayah",
            hub.url
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
    let refused = hub.put_json(&hub.admin_key, bocor, &leaky).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("must end in GROUP BY"),
        "rows are not aggregates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panel_without_a_unit_takes_the_x_satuan_of_its_column_from_the_schema() {
    let hub = Hub::start();
    // The demo's health facilities (schema fasilitas_kesehatan: tempat_tidur is in
    // "tempat tidur"), charted by a deployment's own dashboard that names no unit.
    let saved = hub
        .put_json(
            &hub.admin_key,
            "/api/v1/queries/tempat_tidur_faskes",
            &json!({"sql": "select nama, tempat_tidur from kesehatan.fasilitas_kesehatan where tempat_tidur is not null order by nama limit 3"}),
        )
        .await;
    assert!(
        saved.status().is_success(),
        "{}",
        saved.text().await.unwrap()
    );
    let rows = hub
        .rows("select nama, tempat_tidur from kesehatan.fasilitas_kesehatan where tempat_tidur is not null order by nama limit 1")
        .await;
    let (nama, beds) = (
        rows[0]["nama"].as_str().unwrap().to_string(),
        rows[0]["tempat_tidur"].as_i64().unwrap(),
    );
    let own = hub.dir.path().join("dashboards");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("tempat_tidur.toml"),
        "title = \"Tempat tidur\"\n[[panel]]\ntitle = \"Tempat tidur per faskes\"\nquery = \"tempat_tidur_faskes\"\nvisual = \"bar\"\nx = \"nama\"\ny = \"tempat_tidur\"\n",
    )
    .unwrap();
    let page = page_as(
        &client(),
        format!("{}/dashboards/tempat_tidur", hub.url),
        &hub.admin_key,
    )
    .await;
    let tip = format!(
        "<title>{}: {beds} tempat tidur</title>",
        render_escape(&nama)
    );
    assert!(page.contains(&tip), "{tip} in {page}");
}

/// HTML-escapes as the pages do (facility names may hold `&`).
fn render_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[tokio::test(flavor = "multi_thread")]
async fn other_dashboards_need_a_session_made_from_a_key_with_csrf_checked_forms() {
    let hub = Hub::start();
    let http = client();
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let producer = hub.key("PUPR", "SIPEDAL", "producer");
    let url = |path: &str| format!("{}{path}", hub.url);

    // Not public: to the login form, coming back here after.
    let response = http.get(url("/dashboards/pengaduan")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/login?next=%2Fdashboards%2Fpengaduan"
    );
    let listing = http
        .get(url("/dashboards"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains("/dashboards/ringkasan") && !listing.contains("/dashboards/pengaduan")
    );

    let form = http
        .get(url("/login?next=/dashboards/pengaduan"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = set_cookie(&form, "simpul_csrf").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let csrf_pair = csrf_cookie.split(';').next().unwrap().to_string();
    let page = form.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    assert_eq!(csrf_pair, format!("simpul_csrf={csrf}"));
    let login = |cookie: String, fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        let target = url("/login");
        async move {
            http.post(target)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(&fields))
                .send()
                .await
                .unwrap()
        }
    };
    let forged = login(
        "simpul_csrf=someone-else".into(),
        vec![
            ("key", analyst.clone()),
            ("csrf", csrf.clone()),
            ("next", "/dashboards/pengaduan".into()),
        ],
    )
    .await;
    assert_eq!(forged.status(), 403, "a form from elsewhere is refused");
    let wrong = login(
        csrf_pair.clone(),
        vec![
            ("key", "simpul_bukan_kunci".into()),
            ("csrf", csrf.clone()),
            ("next", "/".into()),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let away = login(
        csrf_pair.clone(),
        vec![
            ("key", analyst.clone()),
            ("csrf", csrf.clone()),
            ("next", "//evil.example/x".into()),
        ],
    )
    .await;
    assert_eq!(away.status(), 303);
    assert_eq!(
        away.headers()["location"],
        "/dashboards",
        "never off this hub"
    );
    let ok = login(
        csrf_pair.clone(),
        vec![
            ("key", analyst.clone()),
            ("csrf", csrf.clone()),
            ("next", "/dashboards/pengaduan".into()),
        ],
    )
    .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/dashboards/pengaduan");
    let session = set_cookie(&ok, "simpul_session").expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains(&analyst), "the cookie is not the key");
    let session = session.split(';').next().unwrap().to_string();

    // A complaint filed now shows in the backlog panel and its CSV.
    let filed = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/complaints",
            &json!({"kind": "complaint", "channel": "web", "description": "Jalan rusak di Bungursari", "nama": "Uji"}),
        )
        .await;
    assert_eq!(filed.status(), 201);
    let page = http
        .get(url("/dashboards/pengaduan"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Tunggakan per OPD") && page.contains("<svg"),
        "the panels draw"
    );
    assert!(
        page.contains("<title>PUPR: 1 kasus</title>"),
        "the roads complaint waits at PUPR"
    );
    let csv = http
        .get(url("/dashboards/pengaduan/panels/2.csv"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("PUPR,complaint,1,0,")),
        "{csv}"
    );

    // A producer key may look, but its panels say they are for analysts.
    let page = page_as(&http, url("/dashboards/pengaduan"), &producer).await;
    assert!(page.contains("untuk kunci analis atau admin"));
    let public = page_as(&http, url("/dashboards/ringkasan"), &producer).await;
    assert!(
        public.contains("<p class=\"stat\">") && !public.contains("untuk kunci analis"),
        "a public dashboard shows a producer what it shows anyone"
    );

    // A deployment's own dashboard that does not parse is named to admins only.
    let own = hub.dir.path().join("dashboards");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("rusak.toml"), "title = \"Rusak\"\n").unwrap();
    let listing = |key: String| {
        let http = http.clone();
        let target = url("/dashboards");
        async move { page_as(&http, target, &key).await }
    };
    assert!(
        listing(hub.admin_key.clone())
            .await
            .contains("rusak.toml: a dashboard needs at least one [[panel]]")
    );
    assert!(!listing(analyst.clone()).await.contains("rusak.toml"));

    // Logging out needs the session's own token; then the cookie opens nothing.
    let logout = |csrf: String| {
        let http = http.clone();
        let (target, session) = (url("/logout"), session.clone());
        async move {
            http.post(target)
                .header("cookie", session)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(&[("csrf", csrf)]))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(logout("forged".into()).await.status(), 403);
    let listing = http
        .get(url("/dashboards"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = hidden(&listing, "csrf");
    assert_eq!(logout(token).await.status(), 303);
    let after = http
        .get(url("/dashboards/pengaduan"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303, "the session is over");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_health_dashboard_shows_admins_the_catalog_and_tells_analysts_it_is_not_theirs() {
    let hub = Hub::start();
    let http = client();
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let listed: serde_json::Value = hub.json("/api/v1/datasets?limit=500").await;
    let total = listed["total"].as_i64().unwrap();
    let page = page_as(
        &http,
        format!("{}/dashboards/kesehatan_hub", hub.url),
        &hub.admin_key,
    )
    .await;
    assert_eq!(
        stat(&page),
        format!("{total} dataset"),
        "as many as the catalog lists"
    );
    assert!(
        !page.contains("tidak punya akses"),
        "an admin reads simpul.*"
    );
    let page = page_as(
        &http,
        format!("{}/dashboards/kesehatan_hub", hub.url),
        &analyst,
    )
    .await;
    assert_eq!(
        page.matches("tidak punya akses").count(),
        7,
        "every panel reads simpul.*, which is for admins"
    );
}
