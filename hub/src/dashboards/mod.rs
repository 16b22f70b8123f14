//! Dashboards for decision makers, under `/dashboards`: server-rendered HTML with SVG charts
//! and maps (no JavaScript), Indonesian labels, filters as plain query strings so every view
//! is a link, and a CSV behind every panel.
//!
//! Each panel runs its saved query as the viewer, through the same gate, log and cache as
//! `GET /api/v1/queries/{name}`: a viewer sees only what its key may read, and a panel over
//! data it cannot read says so. A public dashboard is shown without logging in, and then
//! reads public datasets only.

pub mod definition;
pub use definition::queries_in_use;
mod map;
mod pages;
pub mod render;
pub mod session;

/// The dashboards' built-in saved queries (the modules ship their own KPI queries).
const QUERIES: [&str; 11] = [
    include_str!("queries/dasbor_luas_wilayah.toml"),
    include_str!("queries/dasbor_wilayah_kecamatan.toml"),
    include_str!("queries/dasbor_hub_ringkas.toml"),
    include_str!("queries/dasbor_hub_pipeline.toml"),
    include_str!("queries/dasbor_hub_kesegaran.toml"),
    include_str!("queries/dasbor_hub_ditolak.toml"),
    include_str!("queries/dasbor_hub_bus.toml"),
    include_str!("queries/dasbor_hub_permintaan.toml"),
    include_str!("queries/dasbor_wilayah_jumlah.toml"),
    include_str!("queries/dasbor_penduduk_wilayah.toml"),
    include_str!("queries/dasbor_semar_respons_wilayah.toml"),
];

/// Saves the built-in dashboards' queries that are not saved yet (an edited one is kept).
pub async fn register_queries(catalog: &simpul_catalog::Catalog) -> Result<(), String> {
    let definitions = crate::modules::query_definitions("dashboard", &QUERIES)?;
    crate::modules::register_queries(catalog, "dashboards", &definitions).await
}

// The pages: `/dashboards…`, `/login`, `/logout`. A page needs a login session unless its
// dashboard is public; the forms are read before anyone is known, at most
// `crate::api::UNAUTHENTICATED_BODY_LIMIT` bytes.
crate::routes::route_table! {
    prefix "";
    "/dashboards" => { get pages::index [page]: "The dashboards the viewer may see" }
    "/dashboards/{name}" => { get pages::show [page]: "One dashboard: its panels for the filters in the query string" }
    "/dashboards/{name}/panels/{file}" => { get pages::panel_csv [page]: "One panel's rows as CSV ({n}.csv)" }
    "/assets/dashboards.css" => { get pages::style [open]: "The pages' style sheet" }
    "/login" => {
        get pages::login_form [page]: "The login form",
        post pages::login [page]: "Log in with a user name and password, or a key; sets the session cookie",
    }
    "/logout" => { post pages::logout [page]: "End the session" }
}
