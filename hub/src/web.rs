//! The HTML shell shared by the public portal and the dashboards: one stylesheet
//! (`/assets/dashboards.css`), Indonesian, fits a phone, no JavaScript.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::dashboards::render::escape;

/// An HTML answer.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Which part of the site a page belongs to.
#[derive(Clone, Copy)]
pub enum Site {
    /// The public portal (`/`).
    Portal,
    /// The dashboards (`/dashboards`).
    Dashboards,
}

/// A whole page around `main`.
pub fn page(site: Site, title: &str, nav: &str, main: &str, refresh_secs: u64) -> String {
    let refresh = if refresh_secs > 0 {
        format!("<meta http-equiv=\"refresh\" content=\"{refresh_secs}\">")
    } else {
        String::new()
    };
    let (brand, href) = match site {
        Site::Portal => ("Portal Data Purwakarta", "/"),
        Site::Dashboards => ("Simpul · Dasbor Purwakarta", "/dashboards"),
    };
    format!(
        "<!doctype html><html lang=\"id\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Simpul Purwakarta</title><link rel=\"stylesheet\" href=\"/assets/dashboards.css\">{refresh}</head>\
         <body><a class=\"skip\" href=\"#isi\">Langsung ke isi</a>\
         <header class=\"top\"><a class=\"brand\" href=\"{href}\">{brand}</a><nav>\
         <a href=\"/data\">Data terbuka</a><a href=\"/layanan\">Layanan</a><a href=\"/dashboards\">Dasbor</a>{nav}</nav></header>\
         <main id=\"isi\">{main}</main>\
         <footer><p>Data Center Kabupaten Purwakarta · Simpul, hub data daerah. \
         <a href=\"/catalog.jsonld\">Katalog DCAT</a> · <a href=\"/api/3/action/package_search\">API CKAN</a></p></footer>\
         </body></html>",
        escape(title)
    )
}

/// A page that says what went wrong.
pub fn error_page(site: Site, status: StatusCode, title: &str, message: &str) -> Response {
    let back = match site {
        Site::Portal => "<a href=\"/data\">Kembali ke data terbuka</a>",
        Site::Dashboards => "<a href=\"/dashboards\">Kembali ke daftar dasbor</a>",
    };
    let main = format!(
        "<h1>{}</h1><p>{}</p><p>{back}</p>",
        escape(title),
        escape(message)
    );
    html(status, page(site, title, "", &main, 0))
}
