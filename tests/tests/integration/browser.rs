//! The portal and the dashboards in a real browser: headless Chromium (Debian's `chromium`)
//! driven over the DevTools Protocol, against a real `simpul serve`. It types a search,
//! follows links, fetches a download, applies a filter, clicks the map, and saves
//! screenshots under `target/screenshots/`.
//!
//! Runs when `SIMPUL_TEST_CHROMIUM` names the browser (`.ci/run` installs it); otherwise it
//! says loudly that it was skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::Hub;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with its own profile, killed when dropped.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn start(program: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                // A common Android phone's screen: the pages must fit it.
                "--window-size=412,915",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        // Chromium writes the port it chose to DevToolsActivePort in the profile.
        let marker = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&marker)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Chromium did not open its DevTools port within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// The first tab.
    async fn page(&self) -> Page {
        let url = format!("http://127.0.0.1:{}/json/list", self.port);
        let started = Instant::now();
        let tabs: Vec<Value> = loop {
            if let Ok(response) = reqwest::get(&url).await
                && let Ok(tabs) = response.json::<Vec<Value>>().await
                && tabs.iter().any(|t| t["type"] == "page")
            {
                break tabs;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no tab");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ws = tabs
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws.as_str()).await.unwrap();
        let mut page = Page { socket, next: 0 };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page
    }
}

/// One tab, over its DevTools WebSocket.
struct Page {
    socket: Socket,
    next: u64,
}

impl Page {
    /// Sends one command and waits for its answer (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 30 s"))
                .expect("the DevTools socket closed")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until the page at a URL containing `part` has loaded.
    async fn loaded(&mut self, part: &str) {
        let started = Instant::now();
        loop {
            let state = self
                .eval("JSON.stringify([location.href, document.readyState])")
                .await;
            let state: Vec<String> =
                serde_json::from_str(state.as_str().unwrap_or("[]")).unwrap_or_default();
            if state.len() == 2 && state[0].contains(part) && state[1] == "complete" {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page did not reach {part}: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.loaded(url).await;
    }

    /// Saves a PNG of the page as `target/screenshots/<name>.png`.
    async fn screenshot(&mut self, name: &str) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

fn chromium() -> Option<String> {
    match std::env::var("SIMPUL_TEST_CHROMIUM") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"\n*** SKIPPED the browser tests: SIMPUL_TEST_CHROMIUM is not set. Install Debian's \
                  chromium and set it to /usr/bin/chromium (see README, Development). ***\n",
            );
            None
        }
    }
}

/// Desa and kelurahan of the shipped region list under `kecamatan` (all when empty).
fn regions_in(kecamatan: &str) -> usize {
    include_str!("../../../hub/reference/wilayah_3214.csv")
        .lines()
        .skip(1)
        .filter(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            matches!(cells.get(3), Some(&"desa") | Some(&"kelurahan"))
                && (kecamatan.is_empty() || cells.get(4) == Some(&kecamatan))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_resident_finds_a_dataset_and_downloads_it() {
    let Some(program) = chromium() else { return };
    let hub = Hub::start();
    crate::portal::ingest_public(&hub);
    let rows = crate::portal::fixture_rows(None);
    let browser = Browser::start(&program);
    let mut page = browser.page().await;

    page.goto(&format!("{}/", hub.url)).await;
    page.screenshot("portal-home").await;
    // Type the search and press the button, as a person does.
    page.eval(
        "(() => { const q = document.querySelector('#q'); q.focus(); q.value = 'kemiskinan'; \
         document.querySelector('form.search button').click(); })()",
    )
    .await;
    page.loaded("/data?q=kemiskinan").await;
    assert_eq!(
        page.eval("document.querySelector('.count').textContent")
            .await,
        "1"
    );
    page.screenshot("portal-search").await;
    page.eval("document.querySelector('.result h2 a').click()")
        .await;
    page.loaded("/data/stats.garis_kemiskinan").await;
    page.screenshot("portal-dataset").await;
    // The download link, fetched by the page itself: the rows the file had.
    let lines = page
        .eval(
            "(async () => { const a = [...document.querySelectorAll('.downloads a')].find(a => a.textContent === 'CSV'); \
             const text = await (await fetch(a.href)).text(); return text.trim().split('\\n').length; })()",
        )
        .await;
    assert_eq!(lines, json!(rows + 1), "the header and every row");
    let fits = page
        .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(fits, true, "the page fits a phone's width");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_kecamatan_filter_and_a_map_click_narrow_the_numbers() {
    let Some(program) = chromium() else { return };
    let hub = Hub::start();
    let browser = Browser::start(&program);
    let mut page = browser.page().await;
    let stat = "document.querySelector('.stat').textContent";

    page.goto(&format!("{}/dashboards/ringkasan", hub.url))
        .await;
    assert_eq!(page.eval(stat).await, format!("{} wilayah", regions_in("")));
    page.screenshot("dashboard-ringkasan").await;

    // The filter form: choose Kecamatan Purwakarta and apply.
    page.eval(
        "(() => { document.querySelector('select[name=kecamatan]').value = '32.14.01'; \
         document.querySelector('form.filters button').click(); })()",
    )
    .await;
    page.loaded("kecamatan=32.14.01").await;
    assert_eq!(
        page.eval(stat).await,
        format!("{} wilayah", regions_in("32.14.01"))
    );
    page.screenshot("dashboard-filter-purwakarta").await;

    // Back to the regency, then a click on Campaka on the map.
    page.goto(&format!("{}/dashboards/ringkasan", hub.url))
        .await;
    page.eval(
        "document.querySelector('svg.map path[data-kode=\"32.14.02\"]')\
         .dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}))",
    )
    .await;
    page.loaded("kecamatan=32.14.02").await;
    assert_eq!(
        page.eval(stat).await,
        format!("{} wilayah", regions_in("32.14.02"))
    );
    assert_eq!(
        page.eval("document.querySelector('.scope strong').textContent")
            .await,
        "Campaka"
    );
    page.screenshot("dashboard-map-campaka").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_person_logs_in_with_a_user_account_and_sees_a_closed_dashboard() {
    let Some(program) = chromium() else { return };
    let hub = Hub::start();
    hub.register("BAPPEDA", "ANALIS");
    let made = hub
        .post_json(
            &hub.admin_key,
            "/api/v1/users",
            &json!({"id": "dewi", "member": "BAPPEDA", "subsystem": "ANALIS", "role": "analyst",
                    "password": "sandi-dewi-bappeda-2026"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let browser = Browser::start(&program);
    let mut page = browser.page().await;

    // A closed dashboard sends the browser to the login form, and back after it.
    let closed = format!("{}/dashboards/pengaduan", hub.url);
    page.call("Page.navigate", json!({ "url": closed })).await;
    page.loaded("/login?next=").await;
    page.screenshot("login").await;
    page.eval(
        "(() => { document.querySelector('#user').value = 'dewi'; \
         document.querySelector('#password').value = 'sandi-dewi-bappeda-2026'; \
         document.querySelector('#user').form.querySelector('button').click(); })()",
    )
    .await;
    page.loaded("/dashboards/pengaduan").await;
    assert_eq!(
        page.eval("document.querySelector('.who').textContent")
            .await,
        "dewi"
    );
    assert!(
        page.eval("document.querySelectorAll('section.panel').length")
            .await
            .as_u64()
            .unwrap_or(0)
            >= 3,
        "the panels draw"
    );
    assert_eq!(
        page.eval("document.cookie.includes('simpul_session')")
            .await,
        false,
        "the session cookie is HttpOnly: scripts cannot read it"
    );
    page.screenshot("dashboard-pengaduan-dewi").await;

    // Keluar: the form ends the session (the list then offers "Masuk" again), and the
    // dashboard is closed again.
    page.eval("document.querySelector('form[action=\"/logout\"] button').click()")
        .await;
    let started = Instant::now();
    while page
        .eval("document.readyState === 'complete' && document.querySelector('nav a[href=\"/login\"], header a[href=\"/login\"]') !== null")
        .await
        != json!(true)
    {
        assert!(started.elapsed() < Duration::from_secs(30), "logged out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.call("Page.navigate", json!({ "url": closed })).await;
    page.loaded("/login?next=").await;
}
