//! The portal's pages: the home page, the open data search with facets, each dataset's page
//! (metadata, schema with its Indonesian descriptions, freshness, a preview) and downloads.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::Value;
use simpul_catalog::{DatasetMeta, SqlAccess};

use super::{DOWNLOADS, PORTAL_CLIENT, matches, public_dataset, public_datasets};
use crate::dashboards::render::{self, escape, number};
use crate::results::{self, ResultFormat};
use crate::server::AppState;
use crate::web::{Site, error_page, html, page};

const PAGE_SIZE: usize = 20;
const PREVIEW_ROWS: usize = 20;

fn portal_page(title: &str, main: &str) -> Response {
    html(StatusCode::OK, page(Site::Portal, title, "", main, 0))
}

fn unavailable(message: &str) -> Response {
    error_page(
        Site::Portal,
        StatusCode::SERVICE_UNAVAILABLE,
        "Portal sedang bermasalah",
        message,
    )
}

/// A public dataset, or the page that says there is none.
async fn public_or_404(app: &AppState, id: &str) -> Result<DatasetMeta, Response> {
    match public_dataset(app, id).await {
        Ok(Some(meta)) => Ok(meta),
        Ok(None) => Err(error_page(
            Site::Portal,
            StatusCode::NOT_FOUND,
            "Dataset tidak ada",
            &format!("Tidak ada dataset publik '{id}'."),
        )),
        Err(e) => Err(unavailable(e.detail())),
    }
}

/// `GET /`.
pub(super) async fn home(State(app): State<AppState>) -> Response {
    let count = match public_datasets(&app).await {
        Ok(all) => all.len(),
        Err(e) => return unavailable(e.detail()),
    };
    let main = format!(
        "<h1>Portal Data Kabupaten Purwakarta</h1>\
         <p class=\"lead\">Data terbuka dari OPD Kabupaten Purwakarta, dari kota sampai 192 desa dan kelurahan, \
         bebas diunduh dan dipakai.</p>\
         <form class=\"search\" method=\"get\" action=\"/data\" role=\"search\">\
         <label for=\"q\" class=\"sr\">Cari data</label><input id=\"q\" name=\"q\" type=\"search\" placeholder=\"Cari data, misalnya kemiskinan\">\
         <button type=\"submit\">Cari</button></form>\
         <div class=\"cards\">\
         <section class=\"card\"><h2><a href=\"/data\">Data terbuka</a></h2><p>{} dataset publik, dengan CSV, Parquet dan JSON. \
         Juga untuk pemanen CKAN (Satu Data Indonesia): <code>/api/3/action/package_search</code>.</p></section>\
         <section class=\"card\"><h2><a href=\"/dashboards/ringkasan\">Ringkasan Kabupaten</a></h2><p>17 kecamatan dan 192 desa/kelurahan di peta.</p></section>\
         <section class=\"card\"><h2><a href=\"/layanan\">Saluyu: layanan publik</a></h2><p>Persyaratan, lama, biaya dan dasar hukum tiap layanan.</p></section>\
         <section class=\"card\"><h2><a href=\"/layanan\">Saluyu: layanan publik</a></h2><p>Persyaratan, lama, biaya dan dasar hukum tiap layanan.</p></section>\
         <section class=\"card\"><h2>SEMAR: ambulans gawat darurat</h2><p>Panggil ambulans lewat aplikasi SEMAR, telepon atau SMS. \
         Petugas mengirim unit terdekat yang bebas.</p></section>\
         <section class=\"card\"><h2>Pengaduan: PLIPMAS dan La Pewarta</h2><p>Sampaikan pengaduan atau permohonan informasi lewat web, surat, \
         atau SMS La Pewarta. Aplikasi Open311 memakai <code>/open311/v2</code>.</p></section>\
         </div>",
        number(count as f64, 0)
    );
    portal_page("Beranda", &main)
}

fn link(params: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    format!("/data?{}", out.finish())
}

/// `GET /data?q=&owner=&tag=&page=`.
pub(super) async fn search(
    State(app): State<AppState>,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let q = given.get("q").map(|s| s.trim()).unwrap_or_default();
    let owner = given
        .get("owner")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let tag = given.get("tag").map(|s| s.trim()).filter(|s| !s.is_empty());
    let page_no = match given.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return error_page(
                Site::Portal,
                StatusCode::BAD_REQUEST,
                "Halaman tidak valid",
                "page harus bilangan bulat mulai dari 1.",
            );
        }
    };
    let all = match public_datasets(&app).await {
        Ok(all) => all,
        Err(e) => return unavailable(e.detail()),
    };
    let found: Vec<&DatasetMeta> = all.iter().filter(|m| matches(m, q, owner, tag)).collect();
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    for meta in &found {
        *owners.entry(&meta.owner).or_default() += 1;
        for t in &meta.tags {
            *tags.entry(t).or_default() += 1;
        }
    }
    let (owner_s, tag_s) = (owner.unwrap_or_default(), tag.unwrap_or_default());
    let mut main = format!(
        "<h1>Data terbuka</h1><form class=\"search\" method=\"get\" action=\"/data\" role=\"search\">\
         <label for=\"q\">Cari</label><input id=\"q\" name=\"q\" type=\"search\" value=\"{}\">\
         <input type=\"hidden\" name=\"owner\" value=\"{}\"><input type=\"hidden\" name=\"tag\" value=\"{}\">\
         <button type=\"submit\">Cari</button></form>\
         <p role=\"status\"><strong class=\"count\">{}</strong> dataset{}</p>",
        escape(q),
        escape(owner_s),
        escape(tag_s),
        found.len(),
        if owner.is_some() || tag.is_some() {
            format!(
                " · <a href=\"{}\">hapus saringan</a>",
                escape(&link(&[("q", q)]))
            )
        } else {
            String::new()
        }
    );
    main.push_str("<div class=\"facets\"><nav aria-label=\"OPD\"><h2>OPD</h2><ul>");
    for (o, n) in &owners {
        let _ = write!(
            main,
            "<li><a href=\"{}\">{}</a> ({n})</li>",
            escape(&link(&[("q", q), ("owner", o), ("tag", tag_s)])),
            escape(o)
        );
    }
    main.push_str("</ul></nav><nav aria-label=\"Tag\"><h2>Tag</h2><ul>");
    for (t, n) in &tags {
        let _ = write!(
            main,
            "<li><a href=\"{}\">{}</a> ({n})</li>",
            escape(&link(&[("q", q), ("owner", owner_s), ("tag", t)])),
            escape(t)
        );
    }
    main.push_str("</ul></nav><nav aria-label=\"Format\"><h2>Format</h2><ul>");
    for (_, format, _) in DOWNLOADS {
        let _ = write!(main, "<li>{format} ({})</li>", found.len());
    }
    main.push_str("</ul></nav></div><div class=\"results\">");
    for meta in found.iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE) {
        let _ = write!(
            main,
            "<article class=\"result\"><h2><a href=\"/data/{}\">{}</a></h2><p>{}</p>\
             <p class=\"meta\">{} · {} baris · diperbarui {}</p></article>",
            escape(&meta.id.to_string()),
            escape(&meta.title),
            escape(&meta.description.chars().take(280).collect::<String>()),
            escape(&meta.owner),
            number(meta.row_count as f64, 0),
            meta.updated_at.format("%d-%m-%Y")
        );
    }
    main.push_str("</div>");
    let pages = found.len().div_ceil(PAGE_SIZE).max(1);
    if pages > 1 {
        main.push_str("<nav aria-label=\"Halaman\" class=\"pages\">");
        for p in 1..=pages {
            let n = p.to_string();
            if p == page_no {
                let _ = write!(main, "<strong>{p}</strong> ");
            } else {
                let _ = write!(
                    main,
                    "<a href=\"{}\">{p}</a> ",
                    escape(&link(&[
                        ("q", q),
                        ("owner", owner_s),
                        ("tag", tag_s),
                        ("page", &n)
                    ]))
                );
            }
        }
        main.push_str("</nav>");
    }
    portal_page("Data terbuka", &main)
}

/// The property docs of a dataset's canonical schema: column → (title, description, unit).
pub(crate) async fn column_docs(
    app: &AppState,
    meta: &DatasetMeta,
) -> HashMap<String, (String, String, String)> {
    let Some((name, major)) = meta.schema_ref.as_deref().and_then(|r| r.split_once('@')) else {
        return HashMap::new();
    };
    let Ok(major) = major.parse::<u64>() else {
        return HashMap::new();
    };
    let binding = simpul_catalog::SchemaBinding {
        name: name.to_string(),
        major,
    };
    let Ok(compiled) = app
        .catalog
        .schemas
        .resolve(&app.catalog.state, &binding)
        .await
    else {
        return HashMap::new();
    };
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    compiled
        .document
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        (
                            text(v, "title"),
                            text(v, "description"),
                            text(v, "x-satuan"),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /data/{id}`.
pub(super) async fn dataset(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let meta = match public_or_404(&app, &id).await {
        Ok(meta) => meta,
        Err(page) => return page,
    };
    let access = SqlAccess::public(PORTAL_CLIENT);
    let sql = format!("select * from {} limit {PREVIEW_ROWS}", meta.id);
    let preview =
        match crate::api::sql::start_sql(&app, PORTAL_CLIENT, &access, &sql, "portal").await {
            Ok((stream, _)) => match stream.try_collect::<Vec<_>>().await {
                Ok(batches) => crate::modules::json_rows(&batches).unwrap_or_default(),
                Err(_) => Vec::new(),
            },
            Err(e) => return unavailable(e.detail()),
        };
    let docs = column_docs(&app, &meta).await;
    let freshness = match meta.freshness(Utc::now()) {
        Some(f) if f.stale => format!(
            "<span class=\"stale\">terlambat</span> (janji: diperbarui tiap {})",
            escape(&f.sla)
        ),
        Some(f) => format!("tepat waktu (janji: diperbarui tiap {})", escape(&f.sla)),
        None => "tidak ada janji kesegaran".into(),
    };
    let refreshed = meta
        .refreshed_at
        .or(meta.last_commit_at)
        .map_or("–".to_string(), |t| {
            t.format("%d-%m-%Y %H:%M UTC").to_string()
        });
    let mut main = format!(
        "<h1>{}</h1><p class=\"lead\">{}</p><dl class=\"meta\">\
         <dt>Kode</dt><dd><code>{}</code></dd><dt>OPD</dt><dd>{}</dd>\
         <dt>Baris</dt><dd>{}</dd><dt>Terakhir diperbarui</dt><dd>{}</dd><dt>Kesegaran</dt><dd>{}</dd>\
         <dt>Skema</dt><dd>{}</dd><dt>Lisensi</dt><dd>{}</dd><dt>Tag</dt><dd>{}</dd></dl>",
        escape(&meta.title),
        escape(&meta.description),
        escape(&meta.id.to_string()),
        escape(&meta.owner),
        number(meta.row_count as f64, 0),
        escape(&refreshed),
        freshness,
        escape(meta.schema_ref.as_deref().unwrap_or("–")),
        escape(meta.license.as_deref().unwrap_or("–")),
        escape(&meta.tags.join(", "))
    );
    main.push_str("<h2>Unduh</h2><p class=\"downloads\">");
    for (file, format, _) in DOWNLOADS {
        let _ = write!(
            main,
            "<a href=\"/data/{}/{file}\" download>{format}</a>",
            escape(&meta.id.to_string())
        );
    }
    main.push_str("</p>");
    let columns = render::columns(&preview);
    if !docs.is_empty() || !columns.is_empty() {
        main.push_str("<h2>Kolom</h2><div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Kolom</th><th scope=\"col\">Judul</th><th scope=\"col\">Keterangan</th><th scope=\"col\">Satuan</th></tr></thead><tbody>");
        let names: Vec<String> = if columns.is_empty() {
            let mut keys: Vec<String> = docs.keys().cloned().collect();
            keys.sort();
            keys
        } else {
            columns
        };
        for name in names {
            let (title, description, unit) = docs.get(&name).cloned().unwrap_or_default();
            let _ = write!(
                main,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&name),
                escape(&title),
                escape(&description),
                escape(&unit)
            );
        }
        main.push_str("</tbody></table></div>");
    }
    let _ = write!(
        main,
        "<h2>Pratinjau</h2><p class=\"note\">{} baris pertama.</p>{}",
        PREVIEW_ROWS,
        render::table(&preview)
    );
    portal_page(&meta.title, &main)
}

/// `GET /data/{id}/data.csv` (or `.parquet`, `.json`): the whole public dataset.
pub(super) async fn download(
    State(app): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let format = match file.as_str() {
        "data.csv" => ResultFormat::Csv,
        "data.parquet" => ResultFormat::Parquet,
        "data.json" => ResultFormat::Json,
        _ => {
            return error_page(
                Site::Portal,
                StatusCode::NOT_FOUND,
                "Berkas tidak ada",
                "Unduhan tersedia sebagai data.csv, data.parquet dan data.json.",
            );
        }
    };
    let meta = match public_or_404(&app, &id).await {
        Ok(meta) => meta,
        Err(page) => return page,
    };
    let access = SqlAccess::public(PORTAL_CLIENT);
    let sql = format!("select * from {}", meta.id);
    let limits = &app.config.query;
    let answered = async {
        let (stream, deadline) =
            crate::api::sql::start_sql(&app, PORTAL_CLIENT, &access, &sql, "portal").await?;
        let started = results::start(stream, deadline, limits.timeout_secs).await?;
        results::respond(started, format, limits.row_limit, deadline, "portal")
    }
    .await;
    match answered {
        Ok(mut response) => {
            let name = format!(
                "attachment; filename=\"{}.{}\"",
                meta.id,
                file.rsplit('.').next().unwrap_or("csv")
            );
            if let Ok(value) = HeaderValue::from_str(&name) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(e) => unavailable(e.detail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_links_keep_only_the_filters_given() {
        assert_eq!(
            link(&[("q", "air bersih"), ("owner", ""), ("tag", "pdam")]),
            "/data?q=air+bersih&tag=pdam"
        );
    }
}
