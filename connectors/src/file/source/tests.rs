//! The `file` connector on real folders and a real HTTP server on loopback.

use std::path::Path;

use arrow::array::{Array, AsArray};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::*;
use crate::RawBatch;
use crate::rest_json::tests::{read_all, serve};

fn source(dir: &Path, extra: &str) -> FileSource {
    let text = format!("url = {:?}\n{extra}", dir.display().to_string());
    let config: FileSourceConfig = toml::from_str(&text).unwrap();
    config.source().unwrap()
}

fn column(batches: &[RawBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b
                .batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..array.len())
                .map(|i| array.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn an_incremental_read_takes_only_new_and_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("2024-01.csv"),
        "kode,jumlah\n01,10\n02,20\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("2024-02.csv"), "kode,jumlah\n03,30\n").unwrap();
    std::fs::write(dir.path().join("~$2024-02.xlsx"), "excel lock file").unwrap();
    std::fs::write(dir.path().join("README.txt"), "not data").unwrap();
    let files = source(dir.path(), "");

    let (batches, state) = read_all(&files, None).await.unwrap();
    assert_eq!(column(&batches, "kode"), vec!["01", "02", "03"]);
    let state = state.unwrap();
    assert_eq!(state["files"].as_object().unwrap().len(), 2, "{state}");

    let (batches, again) = read_all(&files, Some(state.clone())).await.unwrap();
    assert!(batches.is_empty(), "nothing new");
    assert_eq!(again.as_ref(), Some(&state));

    std::fs::write(dir.path().join("2024-03.csv"), "kode,jumlah\n04,40\n").unwrap();
    std::fs::write(
        dir.path().join("2024-01.csv"),
        "kode,jumlah\n01,11\n02,20\n05,50\n",
    )
    .unwrap();
    let (batches, _) = read_all(&files, Some(state)).await.unwrap();
    assert_eq!(column(&batches, "kode"), vec!["01", "02", "05", "04"]);
    let source = &batches[0].positions[0].source;
    assert!(
        source.ends_with("2024-01.csv"),
        "rows are positioned by their file: {source}"
    );
}

#[tokio::test]
async fn a_glob_picks_files_across_folders_and_options_reach_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("kecamatan/campaka")).unwrap();
    std::fs::write(
        dir.path().join("kecamatan/campaka/data.csv"),
        "kode;nilai\n01;1,5\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("kecamatan/lain.tsv"), "x\n").unwrap();
    std::fs::write(dir.path().join("top.csv"), "kode;nilai\n99;9\n").unwrap();
    // Windows-1252: "Cibatu – Café".
    std::fs::write(
        dir.path().join("kecamatan/nama.csv"),
        b"kode;nama\n02;Cibatu \x96 Caf\xe9\n",
    )
    .unwrap();
    let files = source(
        dir.path(),
        "glob = \"kecamatan/**/*.csv\"\ndelimiter = \";\"\nencoding = \"windows-1252\"",
    );
    let (batches, _) = read_all(&files, None).await.unwrap();
    assert_eq!(column(&batches, "kode"), vec!["01", "02"]);
    assert_eq!(column(&batches[1..], "nama"), vec!["Cibatu – Café"]);
    assert_eq!(
        column(&batches[..1], "nilai"),
        vec!["1,5"],
        "the decimal comma is read downstream"
    );
}

#[tokio::test]
async fn one_file_over_http_is_read_again_only_when_its_etag_changes() {
    let router = Router::new().route(
        "/unduh/upah.csv",
        get(|| async {
            (
                [
                    (header::ETAG, "\"v1\""),
                    (header::LAST_MODIFIED, "Mon, 02 Mar 2026 06:00:00 GMT"),
                    (header::CONTENT_TYPE, "text/csv"),
                ],
                "tahun,upah\n2023,4464675\n",
            )
                .into_response()
        }),
    );
    let base = serve(router).await;
    let config: FileSourceConfig =
        toml::from_str(&format!("url = \"{base}/unduh/upah.csv\"")).unwrap();
    let files = config.source().unwrap();
    let (batches, state) = read_all(&files, None).await.unwrap();
    assert_eq!(column(&batches, "upah"), vec!["4464675"]);
    assert!(batches[0].positions[0].source.ends_with("/unduh/upah.csv"));
    let (batches, _) = read_all(&files, state).await.unwrap();
    assert!(batches.is_empty());
}

#[tokio::test]
async fn a_broken_file_fails_the_read_naming_it_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rusak.xlsx"), "bukan excel").unwrap();
    let error = read_all(&source(dir.path(), ""), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("rusak.xlsx"), "{error}");
    for bad in [
        "format = \"docx\"",
        "delimiter = \";;\"",
        "encoding = \"klingon\"",
        "glob = \"[\"",
    ] {
        let text = format!("url = \"/tmp\"\n{bad}");
        let config: FileSourceConfig = toml::from_str(&text).unwrap();
        assert!(config.source().is_err(), "{bad}");
    }
}
