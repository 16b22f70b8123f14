//! The public portal, with no login: the open data catalog (`/data`), each dataset's page
//! and downloads, a CKAN-compatible API (`/api/3/action/…`) so that Satu Data Indonesia and
//! other CKAN harvesters take Purwakarta's public data as they are, and a DCAT JSON-LD
//! catalog (`/catalog.jsonld`), and Saluyu, the public services (`/layanan`). Only datasets
//! classified `public` exist here, read with `SqlAccess::public` (personal columns masked).

mod ckan;
mod pages;

pub(crate) use pages::column_docs;
mod saluyu;

use axum::http::HeaderMap;
use simpul_catalog::{Classification, DatasetFilter, DatasetMeta};

use crate::api::ApiError;
use crate::server::AppState;

/// The client id the portal's queries are logged under.
pub const PORTAL_CLIENT: &str = "public";

// The portal's routes, all open.
crate::routes::route_table! {
    prefix "";
    "/" => { get pages::home [open]: "The portal's home page" }
    "/data" => { get pages::search [open]: "Open data: search the public datasets (q, owner, tag)" }
    "/data/{id}" => { get pages::dataset [open]: "Open data: one public dataset, its schema and a preview" }
    "/data/{id}/{file}" => { get pages::download [open]: "Open data: download a public dataset (data.csv, data.json, data.parquet)" }
    "/layanan" => { get saluyu::list [open]: "Saluyu: the public service standards" }
    "/layanan/{kode}" => { get saluyu::show [open]: "Saluyu: one service's standard" }
    "/catalog.jsonld" => { get ckan::dcat [open]: "DCAT-AP catalogue of the public datasets (JSON-LD)" }
    "/api/3/action/package_search" => { get ckan::package_search [open]: "CKAN: search the public datasets" }
    "/api/3/action/package_show" => { get ckan::package_show [open]: "CKAN: one public dataset" }
    "/api/3/action/organization_list" => { get ckan::organization_list [open]: "CKAN: the organisations (OPD) that publish" }
    "/api/3/action/datastore_search" => { get ckan::datastore_search [open]: "CKAN: the rows of a public dataset (filters, limit, offset)" }
}

/// Every public dataset, newest change first.
pub(crate) async fn public_datasets(app: &AppState) -> Result<Vec<DatasetMeta>, ApiError> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let filter = DatasetFilter {
            classification: Some(Classification::Public),
            limit: Some(500),
            offset: Some(offset),
            ..DatasetFilter::default()
        };
        let (page, total) = app.catalog.state.list_datasets(&filter).await?;
        let n = page.len() as i64;
        all.extend(page);
        offset += n;
        if n == 0 || offset >= total {
            break;
        }
    }
    all.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then(a.id.to_string().cmp(&b.id.to_string()))
    });
    Ok(all)
}

/// One public dataset by its id (`ns.name`) or CKAN name (`ns-name`).
pub(crate) async fn public_dataset(
    app: &AppState,
    id: &str,
) -> Result<Option<DatasetMeta>, ApiError> {
    let id = id.replacen('-', ".", 1);
    let Ok(parsed) = id.parse::<simpul_catalog::DatasetId>() else {
        return Ok(None);
    };
    Ok(app
        .catalog
        .state
        .dataset(&parsed)
        .await?
        .filter(|d| d.classification == Classification::Public))
}

/// Whether `meta` matches every word of `q` (in its id, title, description or tags) and the
/// owner and tag asked for.
pub(crate) fn matches(meta: &DatasetMeta, q: &str, owner: Option<&str>, tag: Option<&str>) -> bool {
    let text = format!(
        "{} {} {} {}",
        meta.id,
        meta.title,
        meta.description,
        meta.tags.join(" ")
    )
    .to_lowercase();
    q.split_whitespace()
        .all(|word| text.contains(&word.to_lowercase()))
        && owner.is_none_or(|o| meta.owner.eq_ignore_ascii_case(o))
        && tag.is_none_or(|t| meta.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
}

/// This hub's address as its callers reach it (for absolute links in CKAN and DCAT).
pub(crate) fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    let scheme = if crate::dashboards::session::secure(headers) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.config.http.listen.clone());
    format!("{scheme}://{host}")
}

/// The downloads every dataset offers: `(file, CKAN format, media type)`.
pub(crate) const DOWNLOADS: [(&str, &str, &str); 3] = [
    ("data.csv", "CSV", "text/csv"),
    ("data.parquet", "Parquet", "application/vnd.apache.parquet"),
    ("data.json", "JSON", "application/json"),
];
