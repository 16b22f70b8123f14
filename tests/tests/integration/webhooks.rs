//! Webhooks: signed deliveries of new rows to a real HTTP receiver on loopback, retries with
//! backoff, dead-letter, manual redelivery, and targets that fail, hang or redirect without
//! slowing publishers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ring::hmac;
use serde_json::{Value, json};

use crate::harness::Hub;

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers within the hub's timeout.
    Hang,
    /// 302 elsewhere.
    Redirect,
}

#[derive(Clone)]
struct Received {
    delivery: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

struct Receiver {
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Received>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let count = {
        let mut seen = receiver.seen.lock().unwrap();
        seen.push(Received {
            delivery: header("simpul-delivery"),
            timestamp: header("simpul-timestamp"),
            signature: header("simpul-signature"),
            body,
        });
        seen.len()
    };
    let mode = *receiver.mode.lock().unwrap();
    match mode {
        Mode::FailFirst(n) if count <= n => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::FailFirst(_) => StatusCode::OK.into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        Mode::Redirect => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:9/elsewhere")],
        )
            .into_response(),
    }
}

async fn start_receiver(mode: Mode) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver {
        mode: Mutex::new(mode),
        seen: Mutex::new(Vec::new()),
    });
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, receiver)
}

fn signed_by(secret: &str, received: &Received) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = received.timestamp.as_bytes().to_vec();
    message.push(b'.');
    message.extend_from_slice(&received.body);
    let Some(hex_sig) = received.signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    hmac::verify(&key, &message, &sig).is_ok()
}

fn hub() -> Hub {
    let hub = Hub::start_with_env(&[
        ("SIMPUL_BUS_WEBHOOK_BACKOFF_SECS", "1"),
        ("SIMPUL_BUS_WEBHOOK_TIMEOUT_SECS", "2"),
    ]);
    hub.empty_residents("dukcapil.warga");
    hub
}

async fn subscribe(hub: &Hub, key: &str, url: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"dataset": "dukcapil.warga", "url": url});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    hub.post_json(key, "/api/v1/bus/webhooks", &body).await
}

async fn publish(hub: &Hub, key: &str, n: u32) -> reqwest::Response {
    let record = json!({
        "nik": format!("32140115059{:05}", n),
        "nama": format!("Warga {n}"),
        "tanggal_lahir": "1990-05-15",
        "jenis_kelamin": "L",
        "kode_wilayah": "32.14.01.1001",
    });
    hub.http
        .post(format!(
            "{}/api/v1/bus/datasets/dukcapil.warga/records",
            hub.url
        ))
        .bearer_auth(key)
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", format!("w-{n}"))
        .body(record.to_string())
        .send()
        .await
        .unwrap()
}

/// Polls a webhook's deliveries until `done` holds of them (at most 30 s).
async fn wait_for(hub: &Hub, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut deliveries = Vec::new();
    for _ in 0..300 {
        let listed = hub
            .json(&format!("/api/v1/bus/webhooks/{webhook}/deliveries"))
            .await;
        deliveries = listed["deliveries"].as_array().cloned().unwrap_or_default();
        if done(&deliveries) {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries of {webhook} never got there: {deliveries:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_rows_are_delivered_signed_and_retried_until_the_target_takes_them() {
    let hub = hub();
    let (url, receiver) = start_receiver(Mode::FailFirst(2)).await;
    let created = subscribe(&hub, &hub.admin_key, &url, json!({})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let webhook = created["webhook"]["id"].as_str().unwrap().to_string();
    assert!(
        created["webhook"].get("secret").is_none(),
        "the secret is shown once, not listed"
    );

    assert_eq!(publish(&hub, &hub.admin_key, 1).await.status(), 200);
    let deliveries = wait_for(&hub, &webhook, |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(deliveries[0]["attempts"], 3);
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two failures, then the delivery");
    // Every attempt is the same delivery: a receiver dedups by its id.
    assert!(
        seen.iter()
            .all(|r| r.delivery == deliveries[0]["id"].as_str().unwrap())
    );
    assert!(seen.iter().all(|r| signed_by(&secret, r)));
    assert!(!signed_by("another secret of 16+", &seen[2]));
    let body: Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(body["dataset"], "dukcapil.warga");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(body["rows"][0]["nama"], "Warga 1");
    assert_eq!(body["rows"][0]["_change_type"], "insert");

    // The next commit is its own delivery.
    assert_eq!(publish(&hub, &hub.admin_key, 2).await.status(), 200);
    let deliveries = wait_for(&hub, &webhook, |d| {
        d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    assert_eq!(
        deliveries[0]["from_version"],
        deliveries[1]["to_version"].as_i64().unwrap() + 1
    );
    let logged = hub
        .rows("select count(*) as n from simpul.message_log where service = 'webhook'")
        .await;
    assert_eq!(logged[0]["n"], 4, "every attempt is in the message log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_target_is_dead_lettered_without_slowing_publishers_and_can_be_redelivered() {
    let hub = hub();
    let (url, receiver) = start_receiver(Mode::Hang).await;
    let created = subscribe(&hub, &hub.admin_key, &url, json!({"max_attempts": 2})).await;
    let created: Value = created.json().await.unwrap();
    let webhook = created["webhook"]["id"].as_str().unwrap().to_string();
    assert_eq!(publish(&hub, &hub.admin_key, 1).await.status(), 200);
    // While the target holds the first attempt open, publishing goes on.
    for _ in 0..100 {
        if !receiver.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiver.seen.lock().unwrap().len(),
        1,
        "an attempt is in flight"
    );
    assert_eq!(publish(&hub, &hub.admin_key, 2).await.status(), 200);
    let rows = hub.rows("select count(*) as n from dukcapil.warga").await;
    assert_eq!(rows[0]["n"], 2);

    let deliveries = wait_for(&hub, &webhook, |d| d.iter().any(|x| x["status"] == "dead")).await;
    let dead = deliveries.iter().find(|x| x["status"] == "dead").unwrap();
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{dead}"
    );
    let listed = hub
        .json(&format!(
            "/api/v1/bus/webhooks/{webhook}/deliveries?status=dead"
        ))
        .await;
    assert!(!listed["deliveries"].as_array().unwrap().is_empty());

    // The target recovers; a person redelivers the dead delivery.
    *receiver.mode.lock().unwrap() = Mode::FailFirst(0);
    let id = dead["id"].as_str().unwrap().to_string();
    let redelivered = hub
        .http
        .post(format!("{}/api/v1/bus/deliveries/{id}/redeliver", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(redelivered.status(), 202);
    wait_for(&hub, &webhook, |d| {
        d.iter()
            .any(|x| x["id"] == id.as_str() && x["status"] == "delivered")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_failures_and_subscriptions_follow_the_access_policy() {
    let hub = hub();
    let (url, receiver) = start_receiver(Mode::Redirect).await;
    let created = subscribe(&hub, &hub.admin_key, &url, json!({"max_attempts": 1})).await;
    let created: Value = created.json().await.unwrap();
    let webhook = created["webhook"]["id"].as_str().unwrap().to_string();
    assert_eq!(publish(&hub, &hub.admin_key, 1).await.status(), 200);
    let deliveries = wait_for(&hub, &webhook, |d| d.iter().any(|x| x["status"] == "dead")).await;
    assert_eq!(deliveries[0]["last_status"], 302);
    assert!(
        deliveries[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    assert_eq!(
        receiver.seen.lock().unwrap().len(),
        1,
        "the redirect was not followed"
    );

    // Bad requests.
    for (body, why) in [
        (
            json!({"dataset": "dukcapil.warga", "url": "ftp://x"}),
            "scheme",
        ),
        (
            json!({"dataset": "dukcapil.warga", "url": url, "secret": "short"}),
            "secret",
        ),
        (
            json!({"dataset": "dukcapil.warga", "url": url, "since_version": 999}),
            "version",
        ),
    ] {
        let response = hub
            .post_json(&hub.admin_key, "/api/v1/bus/webhooks", &body)
            .await;
        assert_eq!(response.status(), 400, "{why}");
    }
    // A restricted dataset needs a subscribe grant; another member's webhooks are not theirs.
    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    hub.patch_dataset("dukcapil.warga", &json!({"classification": "restricted"}))
        .await;
    assert_eq!(
        subscribe(&hub, &analyst, &url, json!({})).await.status(),
        403
    );
    hub.cli_ok(&[
        "bus",
        "grant",
        "dukcapil.warga",
        "ID-JABAR/GOV/BAPPEDA/ANALISIS",
        "--right",
        "read",
        "--right",
        "subscribe",
    ]);
    assert_eq!(
        subscribe(&hub, &analyst, &url, json!({})).await.status(),
        201
    );
    let theirs = hub
        .get(
            &analyst,
            &format!("/api/v1/bus/webhooks/{webhook}/deliveries"),
        )
        .await;
    assert_eq!(theirs.status(), 404);
    let listed: Value = hub
        .get(&analyst, "/api/v1/bus/webhooks")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
}
