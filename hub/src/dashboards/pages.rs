//! The dashboard pages, the login form and the CSV behind each panel.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration as Days, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::Deserialize;
use simpul_catalog::{Role, SqlAccess};

use super::definition::{self, Dashboard, Visual};
use super::map::MapContext;
use super::render::{self, Row, escape};
use super::session::{self, CSRF_COOKIE, LIFETIME, SESSION_COOKIE};
use crate::auth::Caller;
use crate::calendar::wib_date;
use crate::geo::Boundaries;
use crate::server::AppState;
use crate::users::LoginRefused;
use crate::web::{Site, html};

const STYLE: &str = include_str!("style.css");

/// The client id public dashboards' queries are logged under.
const PUBLIC_CLIENT: &str = "public";

fn page(title: &str, nav: &str, main: &str, refresh_secs: u64) -> String {
    crate::web::page(Site::Dashboards, title, nav, main, refresh_secs)
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    crate::web::error_page(Site::Dashboards, status, title, message)
}

fn nav(viewer: Option<&(Caller, Option<String>)>) -> String {
    match viewer {
        Some((caller, Some(csrf))) => format!(
            "<span class=\"who\">{}</span><form method=\"post\" action=\"/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Keluar</button></form>",
            escape(caller.id()),
            escape(csrf)
        ),
        Some((caller, None)) => format!("<span class=\"who\">{}</span>", escape(caller.id())),
        None => "<a href=\"/login\">Masuk</a>".into(),
    }
}

/// The dashboards this hub offers: built-ins whose module runs, and the deployment's own.
fn dashboards(app: &AppState) -> (Vec<Dashboard>, Vec<String>) {
    let (all, errors) = definition::load(&app.config.effective_dashboards_dir());
    let offered = all
        .into_iter()
        .filter(|d| match &d.requires {
            Some(module) => app.module_named(module).is_some(),
            None => true,
        })
        .collect();
    (offered, errors)
}

/// `GET /dashboards`.
pub(super) async fn index(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = session::viewer(&app, &headers).await;
    let (all, errors) = dashboards(&app);
    let mut main = String::from(
        "<h1>Dasbor</h1><p>Gambaran data Kabupaten Purwakarta untuk pimpinan dan OPD. Pilih dasbor:</p><ul class=\"list\">",
    );
    for d in &all {
        if !d.public && viewer.is_none() {
            continue;
        }
        let _ = write!(
            main,
            "<li><a href=\"/dashboards/{}\">{}</a>{}<br><span>{}</span></li>",
            escape(&d.name),
            escape(&d.title),
            if d.public { " <em>(publik)</em>" } else { "" },
            escape(&d.description)
        );
    }
    main.push_str("</ul>");
    if viewer.is_none() {
        main.push_str("<p><a href=\"/login?next=/dashboards\">Masuk</a> untuk melihat dasbor yang tidak publik.</p>");
    }
    // The errors name files on the server: for admins.
    let admin = viewer
        .as_ref()
        .is_some_and(|(caller, _)| caller.0.role == Role::Admin);
    if admin && !errors.is_empty() {
        main.push_str("<h2>Berkas dasbor yang tidak terbaca</h2><ul>");
        for e in &errors {
            let _ = write!(main, "<li><code>{}</code></li>", escape(e));
        }
        main.push_str("</ul>");
    }
    html(
        StatusCode::OK,
        page("Dasbor", &nav(viewer.as_ref()), &main, 0),
    )
}

/// The filters of one view, checked.
struct Selection {
    from: NaiveDate,
    to: NaiveDate,
    kecamatan: String,
    area: String,
}

impl Selection {
    fn read(dashboard: &Dashboard, query: &HashMap<String, String>) -> Result<Self, String> {
        let today = wib_date(Utc::now());
        let date = |key: &str| -> Result<Option<NaiveDate>, String> {
            match query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| format!("{key} harus tanggal TTTT-BB-HH, bukan '{text}'")),
            }
        };
        let to = date("to")?.unwrap_or(today);
        let from = date("from")?
            .unwrap_or(to - Days::days(i64::from(dashboard.filters.default_days.max(1))));
        if from > to {
            return Err("tanggal 'dari' harus sebelum 'sampai'".into());
        }
        let kecamatan = query.get("kecamatan").map(|k| k.trim()).unwrap_or_default();
        if !kecamatan.is_empty()
            && !Boundaries::kecamatan()
                .all()
                .iter()
                .any(|k| k.kode == kecamatan)
        {
            return Err(format!(
                "'{kecamatan}' bukan kode kecamatan Purwakarta (32.14.01 … 32.14.17)"
            ));
        }
        let area = query.get("area").map(|a| a.trim()).unwrap_or_default();
        if !["", "desa", "kelurahan"].contains(&area) {
            return Err(format!("wilayah harus desa atau kelurahan, bukan '{area}'"));
        }
        Ok(Self {
            from,
            to,
            kecamatan: kecamatan.to_string(),
            area: area.to_string(),
        })
    }

    /// The parameters a panel's query may take.
    fn params(&self) -> HashMap<String, String> {
        let midnight = |date: NaiveDate| format!("{date}T00:00:00+07:00");
        HashMap::from([
            ("from".to_string(), midnight(self.from)),
            ("to".to_string(), midnight(self.to + Days::days(1))),
            ("kecamatan".to_string(), self.kecamatan.clone()),
            ("area".to_string(), self.area.clone()),
            ("today".to_string(), wib_date(Utc::now()).to_string()),
        ])
    }

    /// The query string of this view, without the kecamatan when `drill` (the map's links
    /// add it).
    fn query_string(&self, dashboard: &Dashboard, drill: bool) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if dashboard.filters.period {
            out.append_pair("from", &self.from.to_string());
            out.append_pair("to", &self.to.to_string());
        }
        if dashboard.filters.area && !self.area.is_empty() {
            out.append_pair("area", &self.area);
        }
        if !drill && !self.kecamatan.is_empty() {
            out.append_pair("kecamatan", &self.kecamatan);
        }
        out.finish()
    }
}

fn filter_form(dashboard: &Dashboard, selection: &Selection) -> String {
    let f = &dashboard.filters;
    if !(f.period || f.kecamatan || f.area) {
        return String::new();
    }
    let mut form = String::from("<form method=\"get\" class=\"filters\" aria-label=\"Saring\">");
    if f.period {
        let _ = write!(
            form,
            "<label>Dari <input type=\"date\" name=\"from\" value=\"{}\"></label>\
             <label>Sampai <input type=\"date\" name=\"to\" value=\"{}\"></label>",
            selection.from, selection.to
        );
    }
    if f.kecamatan {
        form.push_str("<label>Kecamatan <select name=\"kecamatan\"><option value=\"\">Semua kecamatan</option>");
        for k in Boundaries::kecamatan().all() {
            let _ = write!(
                form,
                "<option value=\"{}\"{}>{}</option>",
                escape(&k.kode),
                if k.kode == selection.kecamatan {
                    " selected"
                } else {
                    ""
                },
                escape(&k.nama)
            );
        }
        form.push_str("</select></label>");
    }
    if f.area {
        form.push_str("<label>Wilayah <select name=\"area\">");
        for (value, label) in [
            ("", "Desa dan kelurahan"),
            ("desa", "Desa"),
            ("kelurahan", "Kelurahan (kota)"),
        ] {
            let _ = write!(
                form,
                "<option value=\"{value}\"{}>{label}</option>",
                if selection.area == value {
                    " selected"
                } else {
                    ""
                }
            );
        }
        form.push_str("</select></label>");
    }
    form.push_str("<button type=\"submit\">Terapkan</button></form>");
    form
}

/// What one panel's query gave.
enum Outcome {
    Rows(Answer),
    /// Shown instead of the panel's picture.
    Refused(String),
}

/// A panel query's rows and what the page says about them.
struct Answer {
    rows: Vec<Row>,
    /// For a published aggregate, the count below which cells are hidden.
    suppressed_below: Option<u64>,
    /// The tables the query read, where the unit of its numbers may be written.
    tables: Vec<String>,
}

/// The unit of a panel's numbers: its own `unit`; else the one `satuan` its rows share (the
/// long format of statistics, `observasi_statistik`); else the `x-satuan` that a table it
/// reads gives its `y` column in the table's canonical schema.
async fn panel_unit(app: &AppState, panel: &definition::Panel, answer: &Answer) -> Option<String> {
    if let Some(unit) = &panel.unit {
        return Some(unit.clone());
    }
    if let Some(unit) = shared_satuan(&answer.rows) {
        return Some(unit);
    }
    let y = panel.y.as_deref()?;
    for table in &answer.tables {
        let Ok(id) = table.parse::<simpul_catalog::DatasetId>() else {
            continue;
        };
        let Ok(Some(meta)) = app.catalog.state.dataset(&id).await else {
            continue;
        };
        if let Some((_, _, unit)) = crate::portal::column_docs(app, &meta).await.get(y)
            && !unit.is_empty()
        {
            return Some(unit.clone());
        }
    }
    None
}

/// The `satuan` every row carries, when they all carry the same one.
fn shared_satuan(rows: &[Row]) -> Option<String> {
    let mut units = rows
        .iter()
        .map(|r| r.get("satuan").and_then(serde_json::Value::as_str));
    let first = units.next()??;
    units
        .all(|u| u == Some(first))
        .then(|| first.to_string())
        .filter(|u| !u.is_empty())
}

/// How the viewer's panels run.
enum Runner {
    Key(Caller),
    Public,
}

async fn run_panel(
    app: &AppState,
    runner: &Runner,
    query: &str,
    fixed: &std::collections::BTreeMap<String, String>,
    given: &HashMap<String, String>,
) -> Outcome {
    let (client_id, access) = match runner {
        Runner::Key(caller) if matches!(caller.0.role, Role::Analyst | Role::Admin) => {
            (caller.id().to_string(), caller.sql_access())
        }
        Runner::Key(_) => {
            return Outcome::Refused(
                "Kunci Anda (produsen) tidak menjalankan kueri; panel ini untuk kunci analis atau admin.".into(),
            );
        }
        Runner::Public => (PUBLIC_CLIENT.to_string(), SqlAccess::public(PUBLIC_CLIENT)),
    };
    let definition = match app.catalog.state.saved_query(query).await {
        Ok(Some(saved)) => saved.definition,
        Ok(None) => return Outcome::Refused(format!("Kueri tersimpan '{query}' tidak ada.")),
        Err(e) => return Outcome::Refused(format!("Kueri '{query}' tidak terbaca: {e}")),
    };
    let mut params: HashMap<String, String> = given
        .iter()
        .filter(|(k, _)| definition.params.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.extend(fixed.iter().map(|(k, v)| (k.clone(), v.clone())));
    let started =
        match crate::api::queries::start_saved(app, &client_id, access, query, &params).await {
            Ok(started) => started,
            Err(e) if e.detail().contains("not found") || e.status() == StatusCode::FORBIDDEN => {
                return Outcome::Refused(if definition.aggregate.is_some() {
                    "Data panel ini belum ada di hub.".into()
                } else {
                    "Anda tidak punya akses ke data panel ini (atau datanya belum ada).".into()
                });
            }
            Err(e) => return Outcome::Refused(format!("Panel ini gagal: {}", e.detail())),
        };
    let collected =
        tokio::time::timeout_at(started.deadline, started.stream.try_collect::<Vec<_>>()).await;
    let batches = match collected {
        Ok(Ok(batches)) => batches,
        Ok(Err(e)) => return Outcome::Refused(format!("Panel ini gagal: {e}")),
        Err(_) => return Outcome::Refused("Panel ini melewati batas waktu kueri.".into()),
    };
    match crate::modules::json_rows(&batches) {
        Ok(rows) => Outcome::Rows(Answer {
            rows,
            suppressed_below: started.suppressed_below,
            tables: started.tables,
        }),
        Err(e) => Outcome::Refused(format!("Panel ini gagal: {e}")),
    }
}

/// Finds the dashboard and decides how its panels run; `Err` is the page to answer with.
async fn open(
    app: &AppState,
    name: &str,
    headers: &HeaderMap,
    next: &str,
) -> Result<(Dashboard, Runner, Option<(Caller, Option<String>)>), Response> {
    let (all, _) = dashboards(app);
    let Some(dashboard) = all.into_iter().find(|d| d.name == name) else {
        return Err(error_page(
            StatusCode::NOT_FOUND,
            "Dasbor tidak ada",
            &format!("Tidak ada dasbor '{name}' di hub ini."),
        ));
    };
    let viewer = session::viewer(app, headers).await;
    let runs_queries = |caller: &Caller| matches!(caller.0.role, Role::Analyst | Role::Admin);
    let runner = match (&viewer, dashboard.public) {
        // A public dashboard shows a producer key what it shows anyone.
        (Some((caller, _)), true) if !runs_queries(caller) => Runner::Public,
        (Some((caller, _)), _) => Runner::Key(caller.clone()),
        (None, true) => Runner::Public,
        (None, false) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/login?{query}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return Err(response);
        }
    };
    Ok((dashboard, runner, viewer))
}

/// Lands what the dashboard's module changed since its last export round, so the page is
/// current; a failure leaves the page one round behind, and is logged.
async fn fresh(app: &AppState, dashboard: &Dashboard) {
    let module = dashboard
        .requires
        .as_deref()
        .and_then(|name| app.module_named(name));
    let landed = match module {
        Some(module) => module.export().await,
        None => Ok(0),
    };
    if let Err(e) = landed {
        tracing::warn!(dashboard = %dashboard.name, error = %e, "bringing a dashboard's datasets up to date failed");
    }
}

/// `GET /dashboards/{name}?from=&to=&kecamatan=&area=`.
pub(super) async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (dashboard, runner, viewer) =
        match open(&app, &name, &headers, &format!("/dashboards/{name}")).await {
            Ok(opened) => opened,
            Err(response) => return response,
        };
    let selection = match Selection::read(&dashboard, &query) {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Saringan tidak valid", &e),
    };
    fresh(&app, &dashboard).await;
    let given = selection.params();
    let own = selection.query_string(&dashboard, false);
    let drill = selection.query_string(&dashboard, true);
    let map = MapContext {
        drill_href: format!(
            "/dashboards/{}?{}{}kecamatan=",
            dashboard.name,
            drill,
            if drill.is_empty() { "" } else { "&" }
        ),
    };
    let mut main = format!(
        "<h1>{}</h1><p class=\"lead\">{}</p>{}",
        escape(&dashboard.title),
        escape(&dashboard.description),
        filter_form(&dashboard, &selection)
    );
    if !selection.kecamatan.is_empty() {
        let nama = Boundaries::kecamatan()
            .all()
            .iter()
            .find(|k| k.kode == selection.kecamatan)
            .map_or(selection.kecamatan.as_str(), |k| k.nama.as_str());
        let _ = write!(
            main,
            "<p class=\"scope\">Kecamatan <strong>{}</strong> · <a href=\"/dashboards/{}?{}\">seluruh kabupaten</a></p>",
            escape(nama),
            escape(&dashboard.name),
            escape(&drill)
        );
    }
    main.push_str("<div class=\"panels\">");
    for (i, panel) in dashboard.panels.iter().enumerate() {
        let n = i + 1;
        let outcome = run_panel(&app, &runner, &panel.query, &panel.params, &given).await;
        let _ = write!(
            main,
            "<section class=\"panel\" id=\"panel-{n}\" aria-labelledby=\"panel-{n}-title\"><h2 id=\"panel-{n}-title\">{}</h2>",
            escape(&panel.title)
        );
        if !panel.description.is_empty() {
            let _ = write!(main, "<p class=\"note\">{}</p>", escape(&panel.description));
        }
        match outcome {
            Outcome::Rows(answer) => {
                let unit = panel_unit(&app, panel, &answer).await;
                let rows = &answer.rows;
                main.push_str(&render::visual(panel, unit.as_deref(), rows, &map));
                if let Some(n) = answer.suppressed_below {
                    let _ = write!(
                        main,
                        "<p class=\"note\">Angka yang mewakili kurang dari {n} catatan disembunyikan (kosong) \
                         untuk melindungi data pribadi. Counts below {n} are suppressed.</p>"
                    );
                }
                if panel.visual != Visual::Table && !rows.is_empty() {
                    let _ = write!(
                        main,
                        "<details><summary>Tabel data</summary>{}</details>",
                        render::table(rows)
                    );
                }
                let _ = write!(
                    main,
                    "<p class=\"csv\"><a href=\"/dashboards/{}/panels/{n}.csv?{}\" download>Unduh CSV</a></p>",
                    escape(&dashboard.name),
                    escape(&own)
                );
            }
            Outcome::Refused(message) => {
                let _ = write!(
                    main,
                    "<p class=\"refused\" role=\"status\">{}</p>",
                    escape(&message)
                );
            }
        }
        main.push_str("</section>");
    }
    main.push_str("</div>");
    html(
        StatusCode::OK,
        page(
            &dashboard.title,
            &nav(viewer.as_ref()),
            &main,
            dashboard.refresh_secs,
        ),
    )
}

/// `GET /dashboards/{name}/panels/{n}.csv`: the rows behind panel `n`, as the page's
/// filters chose them.
pub(super) async fn panel_csv(
    State(app): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (dashboard, runner, _) =
        match open(&app, &name, &headers, &format!("/dashboards/{name}")).await {
            Ok(opened) => opened,
            Err(response) => return response,
        };
    let index = file
        .strip_suffix(".csv")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=dashboard.panels.len()).contains(n));
    let Some(index) = index else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Panel tidak ada",
            &format!(
                "Dasbor {name} punya panel 1 sampai {}.",
                dashboard.panels.len()
            ),
        );
    };
    let selection = match Selection::read(&dashboard, &query) {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Saringan tidak valid", &e),
    };
    fresh(&app, &dashboard).await;
    let panel = &dashboard.panels[index - 1];
    match run_panel(
        &app,
        &runner,
        &panel.query,
        &panel.params,
        &selection.params(),
    )
    .await
    {
        Outcome::Rows(answer) => {
            let mut response = render::csv(&answer.rows).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(value) = HeaderValue::from_str(&format!(
                "attachment; filename=\"{}-panel-{index}.csv\"",
                dashboard.name
            )) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Outcome::Refused(message) => {
            error_page(StatusCode::FORBIDDEN, "Panel tidak tersedia", &message)
        }
    }
}

/// `GET /assets/dashboards.css`.
pub(super) async fn style() -> Response {
    let mut response = STYLE.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
}

/// `?next=` of the login form: a path on this hub, never another site.
/// Where to go after logging in: `next` when it is a path on this hub, else the dashboards.
///
/// `next` is resolved the way a browser resolves a `Location` (WHATWG URL parsing: tabs and
/// newlines dropped, `\\` read as `/`, percent-decoding of the host), against a stand-in
/// origin; anything that lands on another origin, or on a path a browser would read as
/// another host (`//…`), goes to the dashboards. What is returned is the parsed path and
/// query, re-serialized, never the text as sent.
fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/dashboards";
    let Some(next) = next.filter(|n| n.starts_with('/')) else {
        return HOME.into();
    };
    let Ok(base) = url::Url::parse("http://simpul.invalid/") else {
        return HOME.into();
    };
    let Ok(target) = base.join(next) else {
        return HOME.into();
    };
    if target.origin() != base.origin() || target.path().starts_with("//") {
        return HOME.into();
    }
    match target.query() {
        Some(query) => format!("{}?{query}", target.path()),
        None => target.path().to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

fn login_page(next: &str, csrf: &str, message: Option<&str>) -> String {
    let note = message.map_or(String::new(), |m| {
        format!("<p class=\"refused\" role=\"alert\">{}</p>", escape(m))
    });
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">",
        escape(csrf),
        escape(next)
    );
    let main = format!(
        "<h1>Masuk</h1>{note}\
         <section aria-labelledby=\"with-account\"><h2 id=\"with-account\">Dengan akun</h2>\
         <form method=\"post\" action=\"/login\" class=\"login\">{hidden}\
         <label for=\"user\">Nama pengguna</label><input id=\"user\" name=\"user\" autocomplete=\"username\" autocapitalize=\"none\" required>\
         <label for=\"password\">Kata sandi</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Masuk</button></form></section>\
         <section aria-labelledby=\"with-key\"><h2 id=\"with-key\">Dengan kunci API</h2>\
         <p>Kunci dari admin hub hanya dipakai sekali untuk membuat sesi; yang disimpan di peramban hanya kuki sesi.</p>\
         <form method=\"post\" action=\"/login\" class=\"login\">{hidden}\
         <label for=\"key\">Kunci API</label><input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required>\
         <button type=\"submit\">Masuk dengan kunci</button></form></section>"
    );
    page("Masuk", "", &main, 0)
}

/// `GET /login?next=`: the form, with a fresh CSRF token in a cookie and in the form.
pub(super) async fn login_form(
    State(app): State<AppState>,
    Query(query): Query<NextQuery>,
) -> Response {
    let csrf = session::token();
    let mut response = html(
        StatusCode::OK,
        login_page(&safe_next(query.next.as_deref()), &csrf, None),
    );
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(
        CSRF_COOKIE,
        &csrf,
        std::time::Duration::from_secs(3600),
        app.config.http.secure_cookies,
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A form posted before anyone is known: at most
/// [`crate::api::UNAUTHENTICATED_BODY_LIMIT`] bytes, `application/x-www-form-urlencoded`.
async fn read_form<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    headers: &HeaderMap,
) -> Result<T, Response> {
    let bytes = crate::api::read_unauthenticated(body, headers)
        .await
        .map_err(|e| error_page(e.status(), "Formulir ditolak", e.detail()))?;
    serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        error_page(
            StatusCode::BAD_REQUEST,
            "Formulir tidak lengkap",
            &format!("Formulir ini tidak bisa dibaca: {e}"),
        )
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: a user name and password, or a key, becomes a session cookie.
pub(super) async fn login(
    State(app): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let form: LoginForm = match read_form(body, &headers).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    let source = crate::auth::source_address(
        peer.map(|p| p.0.ip()),
        &headers,
        &app.config.http.trusted_proxies,
    );
    let next = safe_next(form.next.as_deref());
    let refuse = |status: StatusCode, message: &str| {
        html(status, login_page(&next, &form.csrf, Some(message)))
    };
    let expected = session::cookie(&headers, CSRF_COOKIE);
    if expected.as_deref() != Some(form.csrf.as_str()) || form.csrf.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            "Formulir ini kedaluwarsa atau tidak berasal dari hub ini. Muat ulang halaman dan coba lagi.",
        );
    }
    let state = &app.catalog.state;
    let client = if !form.user.trim().is_empty() {
        match app
            .logins
            .login(state, &form.user, &form.password, source, "dashboards")
            .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(LoginRefused::Wrong)) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "Nama pengguna atau kata sandi salah, atau akun sudah dicabut.",
                );
            }
            Ok(Err(LoginRefused::Busy)) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Terlalu banyak percobaan masuk saat ini. Coba lagi sebentar lagi.",
                );
            }
            Ok(Err(LoginRefused::Locked(left))) => {
                let minutes = left.as_secs().div_ceil(60).max(1);
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "Terlalu banyak kata sandi salah untuk nama pengguna ini atau dari alamat ini. Coba lagi dalam {minutes} menit."
                    ),
                );
            }
            Err(e) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Tidak bisa masuk",
                    &e.to_string(),
                );
            }
        }
    } else {
        let hash = crate::auth::key_hash(form.key.trim());
        match state.active_client_by_key_hash(&hash).await {
            Ok(Some(client)) => {
                if let Err(e) = state
                    .audit(
                        &client.id,
                        "session.login",
                        &client.id,
                        serde_json::json!({"via": "dashboards"}),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "auditing a login failed");
                }
                client
            }
            Ok(None) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "Kunci API tidak dikenal atau sudah dicabut.",
                );
            }
            Err(e) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Tidak bisa masuk",
                    &e.to_string(),
                );
            }
        }
    };
    let (cookie, _) = app.sessions.open(client.id);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let secure = app.config.http.secure_cookies;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&next) {
        headers.insert(header::LOCATION, location);
    }
    for value in [
        session::set_cookie(SESSION_COOKIE, &cookie, LIFETIME, secure),
        session::set_cookie(CSRF_COOKIE, "", std::time::Duration::ZERO, secure),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: ends the session (the form's token must be the session's).
pub(super) async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let form: LogoutForm = match read_form(body, &headers).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let Some(cookie) = session::cookie(&headers, SESSION_COOKIE) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Tidak ada sesi",
            "Anda belum masuk.",
        );
    };
    match session::viewer(&app, &headers).await {
        Some((_, Some(csrf))) if csrf == form.csrf => {}
        _ => {
            return error_page(
                StatusCode::FORBIDDEN,
                "Tidak bisa keluar",
                "Formulir ini tidak berasal dari sesi Anda. Muat ulang halaman dan coba lagi.",
            );
        }
    }
    app.sessions.close(&cookie);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers_out = response.headers_mut();
    headers_out.insert(header::LOCATION, HeaderValue::from_static("/dashboards"));
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(
        SESSION_COOKIE,
        "",
        std::time::Duration::ZERO,
        app.config.http.secure_cookies,
    )) {
        headers_out.append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn after_login_a_browser_stays_on_this_hub_whatever_next_says() {
        for hostile in [
            "/%09/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\/evil.example",
            "https://evil.example/",
            "http:evil.example",
            "//evil.example/%2F..",
            "/%2F/evil.example",
            "/.//evil.example",
            "javascript:alert(1)",
            " /dashboards",
            "",
        ] {
            let next = safe_next(Some(hostile));
            let resolved = url::Url::parse("http://hub.example/")
                .unwrap()
                .join(&next)
                .unwrap();
            assert_eq!(
                resolved.host_str(),
                Some("hub.example"),
                "{hostile:?} gave {next:?}"
            );
            assert!(!next.starts_with("//"), "{hostile:?} gave {next:?}");
        }
        assert_eq!(
            safe_next(Some("/dashboards/semar?from=2026-01-01")),
            "/dashboards/semar?from=2026-01-01"
        );
        assert_eq!(safe_next(None), "/dashboards");
    }

    fn rows(units: &[serde_json::Value]) -> Vec<Row> {
        units
            .iter()
            .map(|u| {
                let mut row = Row::new();
                row.insert("nilai".into(), json!(1));
                row.insert("satuan".into(), u.clone());
                row
            })
            .collect()
    }

    #[test]
    fn a_unit_comes_from_the_satuan_all_rows_share() {
        assert_eq!(
            shared_satuan(&rows(&[json!("RUPIAH"), json!("RUPIAH")])).as_deref(),
            Some("RUPIAH")
        );
        assert_eq!(
            shared_satuan(&rows(&[json!("RUPIAH"), json!("PERSEN")])),
            None
        );
        assert_eq!(shared_satuan(&rows(&[json!("RUPIAH"), json!(null)])), None);
        assert_eq!(shared_satuan(&rows(&[json!("")])), None);
        assert_eq!(shared_satuan(&[]), None);
    }
}
