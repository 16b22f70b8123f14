//! Saluyu: the regency's public services, from the public `layanan_publik` dataset
//! (`portal.services_dataset`): a searchable list, and each service's requirements,
//! duration, cost, legal basis and where to complain.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::TryStreamExt;
use serde_json::Value;
use simpul_catalog::SqlAccess;

use super::{PORTAL_CLIENT, public_dataset};
use crate::dashboards::render::{Row, cell_text, escape, number};
use crate::server::AppState;
use crate::web::{Site, error_page, html, page};

/// Every service, read as the public (the dataset must be public).
async fn services(app: &AppState) -> Result<Option<Vec<Row>>, String> {
    let id = &app.config.portal.services_dataset;
    let Some(meta) = public_dataset(app, id)
        .await
        .map_err(|e| e.detail().to_string())?
    else {
        return Ok(None);
    };
    let sql = format!("select * from {} order by opd, nama", meta.id);
    let access = SqlAccess::public(PORTAL_CLIENT);
    let (stream, _) = crate::api::sql::start_sql(app, PORTAL_CLIENT, &access, &sql, "portal")
        .await
        .map_err(|e| e.detail().to_string())?;
    let batches: Vec<_> = stream.try_collect().await.map_err(|e| e.to_string())?;
    crate::modules::json_rows(&batches).map(Some)
}

fn text(row: &Row, key: &str) -> String {
    match row.get(key) {
        None | Some(Value::Null) => String::new(),
        other => cell_text(other),
    }
}

fn cost(row: &Row) -> String {
    match row.get("biaya").and_then(Value::as_f64) {
        Some(0.0) => "Gratis".into(),
        Some(rupiah) => format!("Rp{}", number(rupiah, 0)),
        None => "–".into(),
    }
}

fn none_yet(app: &AppState) -> Response {
    let main = format!(
        "<h1>Saluyu: layanan publik</h1><p>Daftar layanan belum diterbitkan: dataset <code>{}</code> belum ada atau belum publik.</p>",
        escape(&app.config.portal.services_dataset)
    );
    html(
        StatusCode::OK,
        page(Site::Portal, "Layanan publik", "", &main, 0),
    )
}

/// The services, or the page to answer with when there are none to show.
async fn services_or_page(app: &AppState) -> Result<Vec<Row>, Response> {
    match services(app).await {
        Ok(Some(rows)) => Ok(rows),
        Ok(None) => Err(none_yet(app)),
        Err(e) => Err(error_page(
            Site::Portal,
            StatusCode::SERVICE_UNAVAILABLE,
            "Layanan tidak terbaca",
            &e,
        )),
    }
}

/// `GET /layanan?q=`.
pub(super) async fn list(
    State(app): State<AppState>,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let rows = match services_or_page(&app).await {
        Ok(rows) => rows,
        Err(page) => return page,
    };
    let q = given
        .get("q")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let found: Vec<&Row> = rows
        .iter()
        .filter(|row| {
            let hay = format!(
                "{} {} {} {}",
                text(row, "nama"),
                text(row, "opd"),
                text(row, "deskripsi"),
                text(row, "produk_layanan")
            )
            .to_lowercase();
            q.split_whitespace().all(|w| hay.contains(w))
        })
        .collect();
    let mut main = format!(
        "<h1>Saluyu: layanan publik</h1><p class=\"lead\">Persyaratan, lama, biaya dan dasar hukum layanan Pemerintah Kabupaten Purwakarta.</p>\
         <form class=\"search\" method=\"get\" action=\"/layanan\" role=\"search\"><label for=\"q\">Cari layanan</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\"><button type=\"submit\">Cari</button></form>\
         <p role=\"status\"><strong class=\"count\">{}</strong> layanan</p><div class=\"results\">",
        escape(given.get("q").map(String::as_str).unwrap_or_default()),
        found.len()
    );
    for row in found {
        let _ = write!(
            main,
            "<article class=\"result\"><h2><a href=\"/layanan/{}\">{}</a></h2><p class=\"meta\">{} · {} hari kerja · {}</p></article>",
            escape(&text(row, "kode")),
            escape(&text(row, "nama")),
            escape(&text(row, "opd")),
            escape(&text(row, "waktu_penyelesaian_hari_kerja")),
            escape(&cost(row))
        );
    }
    main.push_str("</div>");
    html(
        StatusCode::OK,
        page(Site::Portal, "Layanan publik", "", &main, 0),
    )
}

/// `GET /layanan/{kode}`.
pub(super) async fn show(State(app): State<AppState>, Path(kode): Path<String>) -> Response {
    let rows = match services_or_page(&app).await {
        Ok(rows) => rows,
        Err(page) => return page,
    };
    let Some(row) = rows.iter().find(|r| text(r, "kode") == kode) else {
        return error_page(
            Site::Portal,
            StatusCode::NOT_FOUND,
            "Layanan tidak ada",
            &format!("Tidak ada layanan dengan kode '{kode}'."),
        );
    };
    let requirements: Vec<String> = match row.get("persyaratan") {
        Some(Value::Array(items)) => items.iter().map(|i| cell_text(Some(i))).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut main = format!(
        "<h1>{}</h1><p class=\"lead\">{}</p><dl class=\"meta\"><dt>Penyelenggara</dt><dd>{}</dd>\
         <dt>Lama penyelesaian</dt><dd>{} hari kerja</dd><dt>Biaya</dt><dd>{}</dd><dt>Produk</dt><dd>{}</dd>\
         <dt>Dasar hukum</dt><dd>{}</dd></dl><h2>Persyaratan</h2>",
        escape(&text(row, "nama")),
        escape(&text(row, "deskripsi")),
        escape(&text(row, "opd")),
        escape(&text(row, "waktu_penyelesaian_hari_kerja")),
        escape(&cost(row)),
        escape(&text(row, "produk_layanan")),
        escape(&text(row, "dasar_hukum"))
    );
    if requirements.is_empty() {
        main.push_str("<p>Tidak ada persyaratan tertulis.</p>");
    } else {
        main.push_str("<ol>");
        for r in requirements {
            let _ = write!(main, "<li>{}</li>", escape(&r));
        }
        main.push_str("</ol>");
    }
    let channel = text(row, "kanal_pengaduan");
    let _ = write!(
        main,
        "<h2>Ada masalah dengan layanan ini?</h2><p>{}Sampaikan pengaduan lewat PLIPMAS (web, surat, atau SMS La Pewarta); \
         aplikasi warga dapat memakai Open311 di <code>/open311/v2</code>. Gawat darurat medis: panggil ambulans SEMAR.</p>\
         <p><a href=\"/layanan\">Semua layanan</a></p>",
        if channel.starts_with("https://") || channel.starts_with("http://") {
            format!(
                "Kanal pengaduan layanan ini: <a href=\"{0}\" rel=\"nofollow noopener\">{0}</a>. ",
                escape(&channel)
            )
        } else {
            String::new()
        }
    );
    html(
        StatusCode::OK,
        page(Site::Portal, &text(row, "nama"), "", &main, 0),
    )
}
