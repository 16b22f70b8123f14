//! Canonical schemas: the registry, validation without writing, bound datasets, contract
//! modes, versions and their compatibility, and the messy real cases.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Hub, fixture, simpul_bin};

fn write(hub: &Hub, name: &str, bytes: &[u8]) -> String {
    let path = hub.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_lists_versions_and_serves_raw_schemas() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let list: serde_json::Value = hub.json("/api/v1/schemas").await;
    let names: Vec<&str> = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 18, "{names:?}");
    for expected in [
        "penduduk",
        "fasilitas_kesehatan",
        "observasi_statistik",
        "dokumen_hukum",
        "wilayah",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let versions: serde_json::Value = hub.json("/api/v1/schemas/penduduk").await;
    assert_eq!(versions["versions"][0]["version"], "1.0.0");
    let raw = hub
        .get(&hub.admin_key, "/api/v1/schemas/penduduk/1.0.0")
        .await;
    assert_eq!(raw.headers()["content-type"], "application/schema+json");
    let document: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(
        document["$id"],
        "https://simpul.purwakartakab.go.id/schemas/penduduk/1.0.0"
    );
    assert_eq!(document["properties"]["nik"]["x-pii"], true);
    assert_eq!(
        hub.get(&hub.admin_key, "/api/v1/schemas/tidak_ada")
            .await
            .status(),
        404
    );
    assert_eq!(
        hub.get(&hub.admin_key, "/api/v1/schemas/penduduk/9.9.9")
            .await
            .status(),
        404
    );
    let bound: serde_json::Value = hub.json("/api/v1/datasets/ref.wilayah").await;
    assert_eq!(
        bound["dataset"]["schema_ref"], "wilayah@1",
        "the catalog shows the binding"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_returns_every_error_and_writes_nothing() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let payload = serde_json::json!([
        {"nik": "3214015505900002", "nama": "Siti", "tanggal_lahir": "1990-05-15", "jenis_kelamin": "P", "kode_wilayah": "3214012001"},
        {"nik": "3214011513900001", "nama": "", "tanggal_lahir": "1990-02-30", "jenis_kelamin": "X", "kode_wilayah": "32.14", "umur": 30},
    ]);
    let before = crate::harness::snapshot_files(&hub.dir.path().join("lake"));
    let response = hub
        .http
        .post(format!("{}/api/v1/validate/penduduk", hub.url))
        .bearer_auth(&hub.admin_key)
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (
            report["records"].as_u64(),
            report["valid"].as_u64(),
            report["invalid"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let mut found: Vec<(String, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_string(),
                e["keyword"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("/jenis_kelamin".into(), "enum".into()),
            ("/kode_wilayah".into(), "format".into()),
            ("/nama".into(), "minLength".into()),
            ("/nik".into(), "format".into()),
            ("/tanggal_lahir".into(), "format".into()),
            ("/umur".into(), "additionalProperties".into()),
        ]
    );
    assert_eq!(
        crate::harness::snapshot_files(&hub.dir.path().join("lake")),
        before,
        "nothing was written"
    );

    let one = hub
        .http
        .post(format!("{}/api/v1/validate/observasi_statistik@1", hub.url))
        .bearer_auth(&hub.admin_key)
        .header("content-type", "text/csv")
        .body("indikator,kode_wilayah,periode,nilai,satuan,sumber\ngaris_kemiskinan,3214,2019,\"367273,5\",RUPIAH,BPS\n")
        .send()
        .await
        .unwrap();
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(one["invalid"], 0, "{one}");
    let unknown = hub
        .http
        .post(format!("{}/api/v1/validate/tidak_ada", hub.url))
        .bearer_auth(&hub.admin_key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// The real Open Data Jabar poverty-line export, rewritten in the long format of the
/// `observasi_statistik` schema, with the mess real exports have.
fn messy_observations() -> Vec<u8> {
    let text = std::fs::read_to_string(fixture("garis_kemiskinan_kabupatenkota.csv")).unwrap();
    let mut out = "\u{feff}Indikator,Kode Wilayah,Periode,Nilai,Satuan,Sumber\n".to_string();
    for (i, line) in text.lines().skip(1).filter(|l| !l.is_empty()).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        // Alternate the two ways exports write region codes.
        let kode = if i % 2 == 0 {
            format!("{}.{}", &f[3][..2], &f[3][2..])
        } else {
            f[3].to_string()
        };
        out.push_str(&format!(
            "garis_kemiskinan,{kode},{},{},{},BPS\n",
            f[7], f[5], f[6]
        ));
    }
    out.push_str("garis_kemiskinan,32.14,2021,\"401234,5\",RUPIAH,BPS\n");
    out.push_str("garis_kemiskinan,3214,2022,\"1.063.932\",RUPIAH,BPS\n");
    out.push_str("garis_kemiskinan,32.99,2022,1,RUPIAH,BPS\n");
    out.push_str("garis_kemiskinan,32.14,tahun lalu,1,RUPIAH,BPS\n");
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn messy_real_exports_are_normalised_or_rejected_with_reasons() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let file = write(&hub, "garis_kemiskinan_panjang.csv", &messy_observations());
    let report = hub.cli_ok(&[
        "ingest",
        &file,
        "--dataset",
        "stats.observasi",
        "--schema",
        "observasi_statistik",
    ]);
    assert!(
        report.contains("checked against schema observasi_statistik 1.0.0"),
        "{report}"
    );
    assert!(report.contains("rows read:     85"), "{report}");
    assert!(report.contains("rows written:  83"), "{report}");
    assert!(report.contains("rows rejected: 2"), "{report}");

    let codes = hub
        .rows("select kode_wilayah, count(*) as n from stats.observasi where kode_wilayah like '32.14%' group by kode_wilayah")
        .await;
    assert_eq!(
        codes,
        vec![serde_json::json!({"kode_wilayah": "32.14", "n": 5})],
        "3214 and 32.14 are one code"
    );
    let decimals = hub
        .rows("select periode, nilai from stats.observasi where kode_wilayah = '32.14' and periode in ('2021', '2022') order by periode")
        .await;
    assert_eq!(
        decimals,
        vec![
            serde_json::json!({"periode": "2021", "nilai": 401234.5}),
            serde_json::json!({"periode": "2022", "nilai": 1063932.0})
        ]
    );
    let rejects = hub
        .rows("select line, reason from stats.observasi__rejects order by line")
        .await;
    assert_eq!(rejects.len(), 2);
    assert!(
        rejects[0]["reason"].as_str().unwrap().contains("3299"),
        "{rejects:?}"
    );
    assert!(
        rejects[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("periode:"),
        "{rejects:?}"
    );
    let meta: serde_json::Value = hub.json("/api/v1/datasets/stats.observasi").await;
    assert_eq!(meta["dataset"]["schema_ref"], "observasi_statistik@1");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_locations_oversized_cells_and_pii_are_handled() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let facilities = "kode,nama,jenis,kode_wilayah,lat,lng,telepon,igd_24_jam,tempat_tidur\n\
        P3214010101,Puskesmas Purwakarta,puskesmas,3214011001,\"-6,5398\",\"107,4552\",(0264) 200123,ya,10\n\
        P3214020101,Puskesmas Campaka,puskesmas,32.14.02.2001,0,0,,tidak,\n\
        RS3214,RSUD Bayu Asih,rumah_sakit,32.14.01.1002,-6.55,107.44,0264-200123,true,250\n";
    let file = write(&hub, "faskes.csv", facilities.as_bytes());
    let report = hub.cli_ok(&[
        "ingest",
        &file,
        "--dataset",
        "kesehatan.faskes",
        "--schema",
        "fasilitas_kesehatan",
    ]);
    assert!(report.contains("rows written:  1"), "{report}");
    let rejects = hub
        .rows("select line, reason from kesehatan.faskes__rejects order by line")
        .await;
    assert!(
        rejects[0]["reason"].as_str().unwrap().contains("0,0"),
        "{rejects:?}"
    );
    assert!(
        rejects[1]["reason"].as_str().unwrap().contains("kelas"),
        "a hospital needs its class: {rejects:?}"
    );
    let stored = hub
        .rows("select kode_wilayah, lat, telepon, igd_24_jam from kesehatan.faskes")
        .await;
    assert_eq!(
        stored,
        vec![
            serde_json::json!({"kode_wilayah": "32.14.01.1001", "lat": -6.5398, "telepon": "+62264200123", "igd_24_jam": true})
        ]
    );

    let big = "x".repeat(10 * 1024 * 1024);
    let complaints = format!(
        "id,kanal,kategori,isi,status,anonim,diterima_pada\n\
         A-1,sms,jalan,Jalan rusak di Cibatu,received,true,2026-03-16 08:00:00\n\
         A-2,web,jalan,\"{big}\",received,true,2026-03-16T08:00:00+07:00\n"
    );
    let file = write(&hub, "pengaduan.csv", complaints.as_bytes());
    let report = hub.cli_ok(&[
        "ingest",
        &file,
        "--dataset",
        "pengaduan.kasus",
        "--schema",
        "pengaduan",
    ]);
    assert!(
        report.contains("rows written:  1") && report.contains("rows rejected: 1"),
        "{report}"
    );
    let rejects = hub
        .rows("select reason from pengaduan.kasus__rejects")
        .await;
    assert_eq!(rejects[0]["reason"], "isi: is longer than 10000 characters");
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_modes_freeze_evolve_and_discard_unknown_columns() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let first = write(&hub, "a.csv", b"kode,nilai\nA,1\n");
    let wider = write(&hub, "b.csv", b"kode,nilai,catatan\nB,2,baru\n");
    for (dataset, contract) in [
        ("stats.beku", "freeze"),
        ("stats.tumbuh", "evolve"),
        ("stats.buang", "discard_columns"),
    ] {
        hub.cli_ok(&[
            "ingest",
            &first,
            "--dataset",
            dataset,
            "--contract",
            contract,
        ]);
    }

    let frozen = hub.cli(&["ingest", &wider, "--dataset", "stats.beku"]);
    assert!(!frozen.status.success());
    assert!(String::from_utf8_lossy(&frozen.stderr).contains("unexpected column(s): catatan"));

    let evolved = hub.cli_ok(&["ingest", &wider, "--dataset", "stats.tumbuh"]);
    assert!(
        evolved.contains("columns added to the table: catatan"),
        "{evolved}"
    );
    let rows = hub
        .rows("select kode, nilai, catatan from stats.tumbuh order by kode")
        .await;
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"kode": "A", "nilai": 1, "catatan": null}),
            serde_json::json!({"kode": "B", "nilai": 2, "catatan": "baru"}),
        ]
    );

    let discarded = hub.cli_ok(&["ingest", &wider, "--dataset", "stats.buang"]);
    assert!(
        discarded.contains("columns discarded: catatan"),
        "{discarded}"
    );
    let history: serde_json::Value = hub.json("/api/v1/datasets/stats.buang/versions").await;
    assert_eq!(
        history["versions"][0]["simpul"]["discarded_columns"],
        serde_json::json!(["catatan"])
    );
    let columns = hub
        .rows("select count(*) as n from information_schema.columns where table_name = 'buang'")
        .await;
    assert_eq!(columns[0]["n"], 2);
}

fn penduduk_version(version: &str, change: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/penduduk.schema.json"),
    )
    .unwrap();
    let mut document: serde_json::Value = serde_json::from_str(&text).unwrap();
    document["x-version"] = serde_json::json!(version);
    document["$id"] = serde_json::json!(format!(
        "https://simpul.purwakartakab.go.id/schemas/penduduk/{version}"
    ));
    change(&mut document);
    document
}

#[tokio::test(flavor = "multi_thread")]
async fn new_versions_must_be_backward_compatible_unless_the_major_changes() {
    let hub = Hub::start_with_env(&[("SIMPUL_DEMO_DATA", "false")]);
    let dir = hub.dir.path().join("skema");
    std::fs::create_dir_all(&dir).unwrap();
    let save = |document: &serde_json::Value| {
        let path = dir.join("penduduk.schema.json");
        std::fs::write(&path, serde_json::to_vec_pretty(document).unwrap()).unwrap();
        path.to_str().unwrap().to_string()
    };

    let optional = penduduk_version("1.1.0", |d| {
        d["properties"]["pekerjaan"] = serde_json::json!({
            "type": ["string", "null"], "title": "Pekerjaan", "x-title-en": "Occupation",
            "description": "Pekerjaan menurut KTP.", "x-description-en": "Occupation as on the card."
        });
    });
    let path = save(&optional);
    let checked = hub.cli_ok(&["schemas", "check", &path]);
    assert!(
        checked.contains("ok    penduduk 1.1.0: backward compatible with 1.0.0"),
        "{checked}"
    );
    hub.cli_ok(&["schemas", "register", &path]);

    let stricter = penduduk_version("1.2.0", |d| {
        d["required"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("telepon"));
        d["properties"].as_object_mut().unwrap().remove("no_kk");
    });
    let path = save(&stricter);
    let refused = hub.cli(&["schemas", "check", &path]);
    assert!(!refused.status.success());
    let out = String::from_utf8_lossy(&refused.stdout);
    assert!(out.contains("property 'telepon': became required"), "{out}");
    assert!(out.contains("property 'no_kk': was removed"), "{out}");
    assert!(
        out.contains("2.0.0"),
        "the message says how to publish it: {out}"
    );
    assert!(!hub.cli(&["schemas", "register", &path]).status.success());

    let major = penduduk_version("2.0.0", |d| {
        d["required"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("telepon"));
    });
    let path = save(&major);
    hub.cli_ok(&["schemas", "register", &path]);
    let versions: serde_json::Value = hub.json("/api/v1/schemas/penduduk").await;
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["1.0.0", "1.1.0", "2.0.0"]);

    // A dataset bound to penduduk@1 follows 1.1.0 (pekerjaan accepted), not 2.0.0.
    let residents = "nik,nama,tanggal_lahir,jenis_kelamin,kode_wilayah,pekerjaan\n\
        3214015505900002,Siti Aminah,1990-05-15,P,3214012001,Guru\n";
    let file = write(&hub, "penduduk.csv", residents.as_bytes());
    let report = hub.cli_ok(&[
        "ingest",
        &file,
        "--dataset",
        "kependudukan.penduduk",
        "--schema",
        "penduduk@1",
    ]);
    assert!(
        report.contains("checked against schema penduduk 1.1.0")
            && report.contains("rows written:  1"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_file_that_is_not_json_schema_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("skema");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::write(
        schemas.join("rusak.schema.json"),
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://x/rusak/1.0.0",
            "x-version": "1.0.0", "type": "object", "properties": {"a": {"type": 5, "title": "a",
            "x-title-en": "a", "description": "a", "x-description-en": "a"}}}"#,
    )
    .unwrap();
    let check = Command::new(simpul_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["schemas", "check"])
        .arg(&schemas)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("rusak.schema.json") && stderr.contains("not a valid JSON Schema"),
        "{stderr}"
    );

    let mut serve = Command::new(simpul_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--http-listen", "127.0.0.1:0"])
        .env("SIMPUL_SCHEMAS_DIR", &schemas)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("serve started despite a broken schema file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("rusak.schema.json"), "{stderr}");
}
