//! User accounts: made by an admin (API and command line), logging in with a password to the
//! web pages and to PostgreSQL, locked after five wrong passwords, and ended by revoking.

use std::io::Write;
use std::process::Stdio;

use serde_json::json;
use tokio_postgres::NoTls;

use crate::dashboards::{client, encode, hidden, set_cookie};
use crate::harness::Hub;

const PASSWORD: &str = "kata-sandi-bappeda-2026";

/// Posts the login form (with a fresh CSRF pair) and returns the response.
async fn log_in(hub: &Hub, fields: &[(&str, &str)]) -> reqwest::Response {
    log_in_with(hub, client(), fields).await
}

/// Logs in from another loopback address, which the hub counts apart (`127.0.0.<n>`).
async fn log_in_from(hub: &Hub, n: u8, fields: &[(&str, &str)]) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap();
    log_in_with(hub, http, fields).await
}

async fn log_in_with(
    hub: &Hub,
    http: reqwest::Client,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form = http
        .get(format!("{}/login?next=/dashboards/pengaduan", hub.url))
        .send()
        .await
        .unwrap();
    let csrf_pair = set_cookie(&form, "simpul_csrf")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = form.text().await.unwrap();
    assert!(
        page.contains("name=\"user\"") && page.contains("name=\"key\""),
        "the form takes an account or a key"
    );
    let mut body: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
    body.push(("csrf", hidden(&page, "csrf")));
    body.push(("next", "/dashboards/pengaduan".into()));
    http.post(format!("{}/login", hub.url))
        .header("cookie", csrf_pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&body))
        .send()
        .await
        .unwrap()
}

/// The status and text of a dashboard page that needs a login, opened with `session`.
async fn pengaduan_page(hub: &Hub, session: &str) -> (u16, String) {
    let response = client()
        .get(format!("{}/dashboards/pengaduan", hub.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn pengaduan_with(hub: &Hub, session: &str) -> u16 {
    pengaduan_page(hub, session).await.0
}

/// The server's message of a PostgreSQL error.
fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |e| e.message().to_string())
}

fn pg_url(hub: &Hub, user: &str, password: &str) -> String {
    let address = hub.pg_url.trim_start_matches("postgresql://");
    format!("postgresql://{user}:{password}@{address}/simpul")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_account_logs_in_with_its_password_to_the_pages_and_to_postgresql() {
    let hub = Hub::start();
    hub.register("BAPPEDA", "ANALIS");
    let analyst_key = hub.key("BAPPEDA", "ANALIS", "analyst");
    let new_user = |id: &str, password: &str| {
        json!({"id": id, "member": "BAPPEDA", "subsystem": "ANALIS", "role": "analyst",
               "description": "Analis Bappeda", "password": password})
    };

    // Only admins make accounts, and the password policy speaks for itself.
    let by_analyst = hub
        .post_json(&analyst_key, "/api/v1/users", &new_user("siti", PASSWORD))
        .await;
    assert_eq!(by_analyst.status(), 403);
    let short = hub
        .post_json(&hub.admin_key, "/api/v1/users", &new_user("siti", "pendek"))
        .await;
    assert_eq!(short.status(), 400);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("at least 12 characters")
    );
    let made = hub
        .post_json(&hub.admin_key, "/api/v1/users", &new_user("siti", PASSWORD))
        .await;
    assert_eq!(made.status(), 201);
    let again = hub
        .post_json(&hub.admin_key, "/api/v1/users", &new_user("siti", PASSWORD))
        .await;
    assert_eq!(again.status(), 400, "the name is taken");
    let listed = hub.json("/api/v1/users").await;
    let siti = &listed["users"][0];
    assert_eq!(siti["id"], "siti");
    assert_eq!(siti["role"], "analyst");
    assert!(siti["password_set_at"].is_string());
    assert!(
        !listed.to_string().contains("argon2"),
        "no hash leaves the hub"
    );

    // The command line reads the password from stdin.
    let mut add = hub
        .cli_command(&[
            "users",
            "add",
            "budi",
            "--member",
            "BAPPEDA",
            "--subsystem",
            "ANALIS",
            "--role",
            "analyst",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "sandi-budi-yang-panjang").unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(hub.cli_ok(&["users", "list"]).contains("budi"));

    // Pages: a wrong password is refused, the right one makes a session.
    let wrong = log_in(
        &hub,
        &[("user", "siti"), ("password", "bukan-sandinya-siti")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("kata sandi salah"));
    let unknown = log_in(&hub, &[("user", "tidak-ada"), ("password", PASSWORD)]).await;
    assert_eq!(unknown.status(), 401, "the same answer for unknown names");
    let ok = log_in(&hub, &[("user", "Siti "), ("password", PASSWORD)]).await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/dashboards/pengaduan");
    let session = set_cookie(&ok, "simpul_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, page) = pengaduan_page(&hub, &session).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<span class=\"who\">siti</span>"),
        "the page names who is logged in"
    );

    // PostgreSQL: the same name and password, read-only like any analyst.
    let (pg, connection) = tokio_postgres::connect(&pg_url(&hub, "siti", PASSWORD), NoTls)
        .await
        .expect("siti connects with her password");
    tokio::spawn(connection);
    let row = pg.query_one("select 40 + 2 as n", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    let write = message(&pg.simple_query("create table t (x int)").await.unwrap_err());
    assert!(write.contains("read-only"), "{write}");
    let refused = tokio_postgres::connect(&pg_url(&hub, "siti", "bukan-sandinya-siti"), NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    let refused = message(&refused);
    assert!(refused.contains("password of user account"), "{refused}");

    // A new password replaces the old one; revoking ends the session at its next page.
    let reset = hub
        .put_json(
            &hub.admin_key,
            "/api/v1/users/budi/password",
            &json!({"password": "sandi-baru-budi-2026"}),
        )
        .await;
    assert_eq!(reset.status(), 204);
    let old = log_in(
        &hub,
        &[("user", "budi"), ("password", "sandi-budi-yang-panjang")],
    )
    .await;
    assert_eq!(old.status(), 401);
    let new = log_in(
        &hub,
        &[("user", "budi"), ("password", "sandi-baru-budi-2026")],
    )
    .await;
    assert_eq!(new.status(), 303);
    let budi = set_cookie(&new, "simpul_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(pengaduan_with(&hub, &budi).await, 200);
    let revoke = hub
        .http
        .delete(format!("{}/api/v1/users/budi", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(
        pengaduan_with(&hub, &budi).await,
        303,
        "the session is over"
    );
    let after = log_in(
        &hub,
        &[("user", "budi"), ("password", "sandi-baru-budi-2026")],
    )
    .await;
    assert_eq!(after.status(), 401);

    // Five wrong passwords lock the name, on every door and from every address, even for
    // the right password: the one on PostgreSQL above and four more here, each from an
    // address of its own (an address has its own limit of five).
    for n in 10..14 {
        let wrong = log_in_from(
            &hub,
            n,
            &[("user", "siti"), ("password", "tebakan-yang-salah")],
        )
        .await;
        assert_eq!(wrong.status(), 401);
    }
    let locked = log_in_from(&hub, 14, &[("user", "siti"), ("password", PASSWORD)]).await;
    assert_eq!(locked.status(), 429);
    assert!(locked.text().await.unwrap().contains("Coba lagi dalam"));
    let locked_pg = tokio_postgres::connect(&pg_url(&hub, "siti", PASSWORD), NoTls)
        .await
        .err()
        .expect("locked on PostgreSQL too");
    let locked_pg = message(&locked_pg);
    assert!(
        locked_pg.contains("too many wrong passwords"),
        "{locked_pg}"
    );
    assert_eq!(
        pengaduan_with(&hub, &session).await,
        200,
        "a session made before the lock goes on"
    );
}
