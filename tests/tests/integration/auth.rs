//! The auth matrix: every kind of credential against every class of route.

use reqwest::Method;

use crate::harness::{Hub, fixture};

/// One route class and a request that exercises it.
struct Route {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
}

const CSV_ROW: &str = "id,nilai\n1,10\n";

fn routes() -> Vec<Route> {
    vec![
        Route {
            name: "catalog",
            method: Method::GET,
            path: "/api/v1/datasets",
            body: None,
        },
        Route {
            name: "sql",
            method: Method::POST,
            path: "/api/v1/sql",
            body: Some(r#"{"sql":"select 1"}"#),
        },
        Route {
            name: "records",
            method: Method::GET,
            path: "/api/v1/datasets/stats.bappeda_data/records",
            body: None,
        },
        Route {
            name: "write-own",
            method: Method::POST,
            path: "/api/v1/datasets/stats.bappeda_data/ingest?format=csv",
            body: Some(CSV_ROW),
        },
        Route {
            name: "write-new",
            method: Method::POST,
            path: "/api/v1/datasets/stats.baru_{who}/ingest?format=csv",
            body: Some(CSV_ROW),
        },
        Route {
            name: "admin",
            method: Method::GET,
            path: "/api/v1/keys",
            body: None,
        },
        Route {
            name: "metrics",
            method: Method::GET,
            path: "/metrics",
            body: None,
        },
    ]
}

async fn status(hub: &Hub, who: usize, key: Option<&str>, route: &Route) -> u16 {
    let path = route.path.replace("{who}", &who.to_string());
    let mut request = hub
        .http
        .request(route.method.clone(), format!("{}{path}", hub.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = route.body {
        request = request.body(body);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_credential_against_every_route_class() {
    let hub = Hub::start();
    let data = fixture("garis_kemiskinan_kabupatenkota.csv");
    let tiny = hub.dir.path().join("tiny.csv");
    std::fs::write(&tiny, CSV_ROW).unwrap();
    hub.cli_ok(&[
        "ingest",
        tiny.to_str().unwrap(),
        "--dataset",
        "stats.bappeda_data",
        "--owner",
        "BAPPEDA",
    ]);
    assert!(data.exists());

    let analyst = hub.key("BAPPEDA", "ANALISIS", "analyst");
    let bappeda = hub.key("BAPPEDA", "SIPD", "producer");
    let dinkes = hub.key("DINKES", "SEMAR", "producer");
    let second_admin = hub.key("DISKOMINFO", "OPS", "admin");
    let revoked = hub.key("DINKES", "LAMA", "analyst");
    hub.cli_ok(&["keys", "revoke", "dinkes-lama"]);

    // Rows: no key, wrong key, revoked key, analyst, producer of the owner, other producer, admin.
    // Columns follow routes(): catalog, sql, records, write-own, write-new, admin, metrics.
    let expectations: Vec<(&str, Option<&str>, [u16; 7])> = vec![
        ("no key", None, [401, 401, 401, 401, 401, 401, 401]),
        (
            "wrong key",
            Some("simpul_thisisnotakey"),
            [401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "revoked key",
            Some(revoked.as_str()),
            [401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "analyst",
            Some(analyst.as_str()),
            [200, 200, 200, 403, 403, 403, 200],
        ),
        (
            "owner's producer",
            Some(bappeda.as_str()),
            [200, 403, 200, 200, 201, 403, 200],
        ),
        (
            "other producer",
            Some(dinkes.as_str()),
            [200, 403, 403, 403, 201, 403, 200],
        ),
        (
            "admin",
            Some(second_admin.as_str()),
            [200, 200, 200, 200, 201, 200, 200],
        ),
    ];
    let routes = routes();
    for (n, (who, key, expected)) in expectations.into_iter().enumerate() {
        for (route, want) in routes.iter().zip(expected) {
            let got = status(&hub, n, key, route).await;
            assert_eq!(
                got, want,
                "{who} on {} ({} {})",
                route.name, route.method, route.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_open_and_checks_state_and_lake() {
    let hub = Hub::start();
    let live = hub
        .http
        .get(format!("{}/health/live", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready: serde_json::Value = hub
        .http
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["checks"]["state_store"]["status"], "ok");
    assert_eq!(ready["checks"]["lake"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_issued_and_revoked_over_http_take_effect_at_once() {
    let hub = Hub::start();
    for (path, id) in [
        ("/api/v1/bus/members", "ID-JABAR/GOV/DPMPTSP"),
        ("/api/v1/bus/subsystems", "ID-JABAR/GOV/DPMPTSP/SIMPADU"),
    ] {
        let registered = hub
            .post_json(
                &hub.admin_key,
                path,
                &serde_json::json!({"id": id, "name": id}),
            )
            .await;
        assert_eq!(registered.status(), 201, "{id}");
    }
    let created: serde_json::Value = hub
        .http
        .post(format!("{}/api/v1/keys", hub.url))
        .bearer_auth(&hub.admin_key)
        .json(&serde_json::json!({"member": "DPMPTSP", "subsystem": "SIMPADU", "role": "analyst"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["client"]["id"], "dpmptsp-simpadu");
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(hub.get(&key, "/api/v1/datasets").await.status(), 200);
    let revoke = hub
        .http
        .delete(format!("{}/api/v1/keys/dpmptsp-simpadu", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let after = hub.get(&key, "/api/v1/datasets").await;
    assert_eq!(after.status(), 401);
    assert_eq!(after.headers()["content-type"], "application/problem+json");
    let listed = hub.cli_ok(&["keys", "list"]);
    assert!(
        listed.contains("dpmptsp-simpadu") && !listed.contains(&key),
        "keys are never listed"
    );
    let metrics = hub.metrics().await;
    assert!(metrics.contains("simpul_http_requests_total"), "{metrics}");
}
