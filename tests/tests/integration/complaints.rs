//! PLIPMAS, La Pewarta and Open311 end to end: deadlines against a hand computation over the
//! real 2026 holidays, every workflow path, two officials at once, SMS routing and answers
//! through an HTTP gateway, and GeoReport v2 from a client's side.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, Utc, Weekday};
use ring::hmac;
use serde_json::{Value, json};

use crate::harness::Hub;

const HOLIDAYS: &str = include_str!("../../../hub/reference/holidays_id_2025_2026.csv");

/// The nth working day after `start`, computed here from the holiday list on its own.
fn working_day_after(start: NaiveDate, n: u32) -> NaiveDate {
    let holidays: Vec<NaiveDate> = HOLIDAYS
        .lines()
        .skip(1)
        .map(|l| NaiveDate::parse_from_str(&l[..10], "%Y-%m-%d").unwrap())
        .collect();
    let mut day = start;
    let mut left = n;
    while left > 0 {
        day = day.succ_opt().unwrap();
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(&day) {
            left -= 1;
        }
    }
    day
}

fn today_wib() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(7)).date_naive()
}

async fn send(hub: &Hub, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = hub.post_json(key, path, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(hub: &Hub, key: &str, path: &str) -> (u16, Value) {
    let response = hub.get(key, path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn step(hub: &Hub, key: &str, id: &str, to: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"to": to});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    send(
        hub,
        key,
        &format!("/api/v1/complaints/{id}/transitions"),
        &body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_information_request_filed_before_idul_fitri_is_due_on_the_hand_computed_day() {
    let hub = Hub::start();
    let key = hub.admin_key.clone();
    let (status, case) = send(
        &hub,
        &key,
        "/api/v1/complaints",
        &json!({"kind": "information", "channel": "surat", "nama": "Euis Kurniasih", "telepon": "081234567100",
                "description": "Salinan APBD 2026 beserta lampirannya", "received_at": "2026-03-17T09:00:00+07:00"}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    // By hand: 18–24 March are Nyepi, Idul Fitri, cuti bersama and a weekend; 3 April is Good
    // Friday. The tenth working day after 17 March is 8 April.
    assert_eq!(case["deadline"]["date"], "2026-04-08", "{case}");
    assert_eq!(
        working_day_after(NaiveDate::from_ymd_opt(2026, 3, 17).unwrap(), 10).to_string(),
        "2026-04-08"
    );
    assert_eq!(case["deadline"]["duty"], "agency");
    assert_eq!(
        case["deadline"]["overdue"],
        today_wib() > NaiveDate::from_ymd_opt(2026, 4, 8).unwrap()
    );
    let (_, overdue) = get(&hub, &key, "/api/v1/complaints/overdue").await;
    let listed = overdue["opds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["cases"].as_array().unwrap().clone())
        .any(|c| c["id"] == id.as_str());
    assert!(listed, "{overdue}");

    let (status, refused) = step(&hub, &key, &id, "extended", json!({})).await;
    assert_eq!(
        status, 422,
        "an extension needs its written reason: {refused}"
    );
    let (status, extended) = step(
        &hub,
        &key,
        &id,
        "extended",
        json!({"note": "dokumen di arsip BPKAD"}),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(
        extended["deadline"]["date"], "2026-04-17",
        "seven more working days: {extended}"
    );
    let (status, twice) = step(&hub, &key, &id, "extended", json!({"note": "lagi"})).await;
    assert_eq!(status, 409, "{twice}");
    assert_eq!(twice["allowed_next"], json!(["decided"]));
    let (status, bare) = step(&hub, &key, &id, "decided", json!({"decision": "rejected"})).await;
    assert_eq!(status, 422, "a rejection names its exemption: {bare}");
    let (status, decided) = step(
        &hub,
        &key,
        &id,
        "decided",
        json!({"decision": "partially_granted", "exemption_reason": "Pasal 17 huruf a"}),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(
        decided["deadline"]["date"],
        working_day_after(today_wib(), 30).to_string()
    );
    assert_eq!(
        decided["deadline"]["duty"], "requester",
        "the objection window is the requester's"
    );
    let (_, objected) = step(&hub, &key, &id, "objected", json!({})).await;
    assert_eq!(
        objected["deadline"]["date"],
        working_day_after(today_wib(), 30).to_string()
    );
    let (_, answered) = step(&hub, &key, &id, "objection_answered", json!({})).await;
    assert_eq!(
        answered["deadline"]["date"],
        working_day_after(today_wib(), 14).to_string()
    );
    let (_, commission) = step(&hub, &key, &id, "commission", json!({})).await;
    assert_eq!(
        (commission["status"].as_str(), &commission["deadline"]),
        (Some("commission"), &Value::Null)
    );
    let (_, shown) = get(&hub, &key, &format!("/api/v1/complaints/{id}")).await;
    let path: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "registered",
            "extended",
            "decided",
            "objected",
            "objection_answered",
            "commission"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complaint_walks_every_path_with_its_category_deadlines_and_rights() {
    let hub = Hub::start();
    let admin = hub.admin_key.clone();
    let pupr = hub.key("PUPR", "SIPEDAL", "producer");
    let dlh = hub.key("DLH", "SIKELOR", "producer");
    let regent = hub.key("BUPATI", "PIMPINAN", "producer");
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let (status, case) = send(
        &hub,
        &admin,
        "/api/v1/complaints",
        &json!({"kind": "complaint", "channel": "web", "description": "Jalan rusak berlubang di Jl. Kapten Halim",
                "nama": "Dadang Suherman", "telepon": "081234567101", "kode_wilayah": "32.14.01.1001"}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    assert_eq!(
        (case["category"].as_str(), case["opd"].as_str()),
        (Some("jalan"), Some("PUPR")),
        "classified by keyword"
    );
    assert_eq!(
        case["deadline"]["date"],
        working_day_after(today_wib(), 3).to_string(),
        "verification: 3 working days"
    );
    let (status, illegal) = step(&hub, &pupr, &id, "answered", json!({})).await;
    assert_eq!(status, 409, "{illegal}");
    assert_eq!(
        illegal["allowed_next"],
        json!(["responded", "withdrawn", "duplicate", "not_competent"])
    );
    let (status, _) = step(&hub, &dlh, &id, "responded", json!({})).await;
    assert_eq!(status, 403, "another OPD may not act on it");
    let (status, masked) = get(&hub, &analyst, &format!("/api/v1/complaints/{id}")).await;
    assert_eq!(status, 200);
    assert_ne!(
        masked["nama"], "Dadang Suherman",
        "identity is masked for an analyst: {masked}"
    );
    let (_, seen) = get(&hub, &pupr, &format!("/api/v1/complaints/{id}")).await;
    assert_eq!(seen["nama"], "Dadang Suherman", "the handling OPD sees it");

    let (status, responded) = step(
        &hub,
        &pupr,
        &id,
        "responded",
        json!({"note": "diverifikasi"}),
    )
    .await;
    assert_eq!(status, 200, "{responded}");
    let follow_up = working_day_after(today_wib(), 10).to_string();
    assert_eq!(
        responded["deadline"]["date"], follow_up,
        "jalan's follow-up is 10 working days (routing.toml)"
    );
    let (_, tested) = step(
        &hub,
        &pupr,
        &id,
        "evidence_tested",
        json!({"note": "survei lapangan"}),
    )
    .await;
    assert_eq!(
        tested["deadline"]["date"], follow_up,
        "the follow-up deadline holds"
    );
    let (_, clarified) = step(&hub, &pupr, &id, "clarification", json!({})).await;
    assert_eq!(clarified["status"], "clarification");
    let (status, answered) = send(
        &hub,
        &pupr,
        &format!("/api/v1/complaints/{id}/answer"),
        &json!({"text": "Perbaikan dijadwalkan pekan depan."}),
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(
        answered["deadline"]["date"],
        working_day_after(today_wib(), 10).to_string()
    );
    assert_eq!(answered["deadline"]["duty"], "requester");
    let (status, _) = step(&hub, &pupr, &id, "mediation", json!({})).await;
    assert_eq!(status, 422, "mediation needs the objection as a note");
    let (_, mediation) = step(
        &hub,
        &pupr,
        &id,
        "mediation",
        json!({"note": "pelapor keberatan"}),
    )
    .await;
    assert_eq!(
        mediation["deadline"]["date"],
        working_day_after(today_wib(), 10).to_string()
    );
    let (_, escalated) = step(
        &hub,
        &pupr,
        &id,
        "escalated_to_regent",
        json!({"note": "mediasi gagal"}),
    )
    .await;
    assert_eq!(escalated["status"], "escalated_to_regent");
    let (status, closed) = step(
        &hub,
        &regent,
        &id,
        "closed_by_regent",
        json!({"note": "Bupati memutuskan"}),
    )
    .await;
    assert_eq!(
        (status, closed["status"].as_str()),
        (200, Some("closed_by_regent")),
        "{closed}"
    );
    assert!(closed["closed_at"].is_string());
    let (status, after) = step(&hub, &regent, &id, "closed_satisfied", json!({})).await;
    assert_eq!(status, 409, "{after}");

    // Early closes need their reason; an unclassified complaint waits in triage.
    let (_, other) = send(&hub, &admin, "/api/v1/complaints", &json!({"kind": "complaint", "channel": "langsung", "description": "Pelayanan kurang ramah"})).await;
    assert_eq!(other["opd"], Value::Null, "{other}");
    assert_eq!(other["anonymous"], true);
    let other_id = other["id"].as_str().unwrap();
    let (_, triage) = get(&hub, &admin, "/api/v1/complaints?opd=none").await;
    assert!(
        triage["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == other_id)
    );
    assert_eq!(
        step(&hub, &admin, other_id, "duplicate", json!({})).await.0,
        422
    );
    let (status, duplicate) = step(
        &hub,
        &admin,
        other_id,
        "duplicate",
        json!({"note": "sama dengan aduan sebelumnya"}),
    )
    .await;
    assert_eq!(
        (status, duplicate["status"].as_str()),
        (200, Some("duplicate"))
    );
    let (status, bad) = send(
        &hub,
        &admin,
        "/api/v1/complaints",
        &json!({"kind": "complaint", "channel": "merpati", "description": "x"}),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_officials_acting_on_one_case_at_once_one_wins_and_the_other_gets_409() {
    let hub = Hub::start();
    let first = hub.key("PUPR", "SIPEDAL", "producer");
    let second = hub.key("PUPR", "LAPANGAN", "producer");
    for round in 0..8 {
        let (_, case) = send(
            &hub,
            &hub.admin_key,
            "/api/v1/complaints",
            &json!({"kind": "complaint", "channel": "web", "description": format!("jalan rusak {round}")}),
        )
        .await;
        let id = case["id"].as_str().unwrap().to_string();
        // Both read version 1 and act on it at once.
        let seen = case["version"].as_i64().unwrap();
        let (a, b) = tokio::join!(
            step(
                &hub,
                &first,
                &id,
                "responded",
                json!({"note": "pertama", "expected_version": seen})
            ),
            step(
                &hub,
                &second,
                &id,
                "withdrawn",
                json!({"note": "kedua", "expected_version": seen})
            ),
        );
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [200, 409], "round {round}: {a:?} {b:?}");
        let (_, shown) = get(&hub, &hub.admin_key, &format!("/api/v1/complaints/{id}")).await;
        assert_eq!(
            shown["events"].as_array().unwrap().len(),
            2,
            "one transition recorded: {shown}"
        );
        assert_eq!(shown["version"], 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn la_pewarta_routes_sms_by_keyword_copies_the_regent_and_relays_the_answer() {
    let sent: Arc<Mutex<Vec<Value>>> = Arc::default();
    let gateway = {
        let sent = sent.clone();
        axum::Router::new().route(
            "/sms",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let sent = sent.clone();
                async move {
                    sent.lock().unwrap().push(body);
                    axum::Json(json!({"ok": true}))
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await.unwrap() });
    let secret = "rahasia-pewarta";
    let hub = Hub::start_with_env(&[
        ("SIMPUL_COMPLAINTS_SMS_SECRET", secret),
        ("SIMPUL_COMPLAINTS_SMS_GATEWAY_URL", &url),
    ]);
    let post_sms = |text: &str, key: &str| {
        let body =
            json!({"from": "0812-3456-7200", "text": text, "received_at": Utc::now().to_rfc3339()})
                .to_string();
        let ts = Utc::now().timestamp();
        let mac = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
        let signature = format!(
            "sha256={}",
            hex::encode(hmac::sign(&mac, format!("{ts}.{body}").as_bytes()).as_ref())
        );
        let http = hub.http.clone();
        let target = format!("{}/api/v1/complaints/sms/inbound", hub.url);
        async move {
            let response = http
                .post(target)
                .header("Simpul-Timestamp", ts.to_string())
                .header("Simpul-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let wait_for = |to: &'static str, contains: &'static str| {
        let sent = sent.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if sent.lock().unwrap().iter().any(|m| {
                    m["to"] == to && m["text"].as_str().unwrap_or_default().contains(contains)
                }) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "no SMS to {to} with '{contains}': {:?}",
                    sent.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        post_sms("jalan butut di Kampung Cibogo", "bukan-rahasia")
            .await
            .0,
        401
    );
    let (status, routed) = post_sms("jalan butut di Kampung Cibogo, tos lami", secret).await;
    assert_eq!(status, 201, "{routed}");
    assert_eq!(
        (routed["opd"].as_str(), routed["status"].as_str()),
        (Some("PUPR"), Some("responded")),
        "{routed}"
    );
    wait_for("+6281100000001", "jalan butut").await; // the PUPR official
    wait_for("+6281100000000", "Tembusan").await; // the Regent
    wait_for("+6281234567200", "diteruskan ke PUPR").await; // the resident's reply
    let id = routed["case_id"].as_str().unwrap().to_string();
    let pupr = hub.key("PUPR", "SIPEDAL", "producer");
    let (status, answered) = send(
        &hub,
        &pupr,
        &format!("/api/v1/complaints/{id}/answer"),
        &json!({"text": "Sudah ditambal hari ini."}),
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    wait_for("+6281234567200", "Sudah ditambal hari ini.").await;
    wait_for("+6281100000000", "dijawab oleh PUPR").await;
    let (_, shown) = get(&hub, &hub.admin_key, &format!("/api/v1/complaints/{id}")).await;
    let recipients: Vec<&str> = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    for who in ["hub", "official", "regent", "resident"] {
        assert!(
            recipients.contains(&who),
            "{who} missing from {recipients:?}"
        );
    }

    // Unmatched: triage, then routed by the Regent's office.
    let (status, unmatched) =
        post_sms("Terima kasih, tapi tolong perhatikan kampung kami", secret).await;
    assert_eq!(
        (status, &unmatched["opd"]),
        (201, &Value::Null),
        "{unmatched}"
    );
    let triage_id = unmatched["case_id"].as_str().unwrap();
    let regent = hub.key("BUPATI", "PIMPINAN", "producer");
    let (status, refused) = send(
        &hub,
        &pupr,
        &format!("/api/v1/complaints/{triage_id}/route"),
        &json!({"category": "sampah"}),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (status, routed) = send(
        &hub,
        &regent,
        &format!("/api/v1/complaints/{triage_id}/route"),
        &json!({"category": "sampah"}),
    )
    .await;
    assert_eq!(
        (status, routed["opd"].as_str(), routed["status"].as_str()),
        (200, Some("DLH"), Some("responded")),
        "{routed}"
    );
    wait_for("+6281100000002", "Terima kasih").await; // the DLH official
}

#[tokio::test(flavor = "multi_thread")]
async fn open311_georeport_v2_from_a_clients_side() {
    let hub = Hub::start();
    let http = reqwest::Client::new();
    let public = |path: &str| {
        let request = http.get(format!("{}{path}", hub.url));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, services) = public("/open311/v2/services.json").await;
    assert_eq!(status, 200, "services are public");
    let jalan = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_code"] == "jalan")
        .expect("the jalan service");
    for field in [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ] {
        assert!(jalan.get(field).is_some(), "{field} missing: {jalan}");
    }
    assert_eq!(
        (jalan["metadata"].as_bool(), jalan["type"].as_str()),
        (Some(false), Some("realtime"))
    );
    let (status, definition) = public("/open311/v2/services/jalan.json").await;
    assert_eq!(
        (status, &definition["service_code"]),
        (200, &json!("jalan"))
    );
    assert_eq!(public("/open311/v2/services/kuburan.json").await.0, 404);

    let form = |extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("service_code", "jalan"),
            ("lat", "-6.5569"),
            ("long", "107.4433"),
            ("address_string", "Jl. Ipik Gandamanah"),
            ("description", "Jalan berlubang dalam"),
            ("first_name", "Asep"),
            ("phone", "081234567300"),
        ];
        fields.extend_from_slice(extra);
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    };
    let post = |body: String| {
        let request = http
            .post(format!("{}/open311/v2/requests.json", hub.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(post(form(&[])).await.0, 401, "posting needs api_key");
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    assert_eq!(
        post(form(&[("api_key", &analyst)])).await.0,
        403,
        "an analyst key is read-only"
    );
    let key = hub.admin_key.clone();
    let (status, bad) = post(form(&[("api_key", &key), ("service_code", "kuburan")])).await;
    assert_eq!(status, 400, "{bad}");
    let (status, created) = post(form(&[("api_key", &key)])).await;
    assert_eq!(status, 201, "{created}");
    let id = created[0]["service_request_id"]
        .as_str()
        .expect("service_request_id")
        .to_string();
    assert!(
        created[0]["service_notice"]
            .as_str()
            .unwrap()
            .contains("PUPR")
    );

    let (status, listed) = public("/open311/v2/requests.json").await;
    assert_eq!(status, 200);
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service_request_id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(
        (
            mine["status"].as_str(),
            mine["agency_responsible"].as_str(),
            mine["service_code"].as_str()
        ),
        (Some("open"), Some("PUPR"), Some("jalan"))
    );
    assert!(
        mine["requested_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+07:00"),
        "{mine}"
    );
    let expected = NaiveDate::parse_from_str(
        &mine["expected_datetime"].as_str().unwrap()[..10],
        "%Y-%m-%d",
    )
    .unwrap();
    assert_eq!(
        expected,
        working_day_after(today_wib(), 3),
        "expected_datetime is the SLA deadline"
    );
    // The public sees the desa the report is in, by its name and centroid: not the point,
    // not the street address, not the text.
    let (lat, long) = (
        mine["lat"].as_f64().unwrap(),
        mine["long"].as_f64().unwrap(),
    );
    assert!(
        (lat, long) != (-6.5569, 107.4433)
            && (lat - -6.5569).abs() < 0.05
            && (long - 107.4433).abs() < 0.05,
        "a desa centroid near the report: {mine}"
    );
    assert!(
        mine["address"]
            .as_str()
            .is_some_and(|a| a.contains("Kecamatan"))
            && mine["address_id"]
                .as_str()
                .is_some_and(|a| a.starts_with("32.14.")),
        "{mine}"
    );
    assert!(mine.get("description").is_none(), "{mine}");
    assert_eq!(mine["simpul_status"], "received");
    let text = mine.to_string();
    assert!(
        !text.contains("Asep")
            && !text.contains("567300")
            && !text.contains("Ipik Gandamanah")
            && !text.contains("berlubang"),
        "no identity, street address or text in the public listing: {text}"
    );
    let (_, one) = public(&format!("/open311/v2/requests/{id}.json")).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (_, by_id) = public(&format!(
        "/open311/v2/requests.json?service_request_id={id}"
    ))
    .await;
    assert_eq!(by_id.as_array().unwrap().len(), 1);
    let (_, other_code) = public("/open311/v2/requests.json?service_code=sampah").await;
    assert!(
        other_code
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["service_code"] == "sampah")
    );
    let (_, closed) = public("/open311/v2/requests.json?status=closed").await;
    assert!(
        closed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["service_request_id"] != id.as_str())
    );
    let (status, wide) = public("/open311/v2/requests.json?start_date=2026-01-01T00:00:00%2B07:00&end_date=2026-06-01T00:00:00%2B07:00").await;
    assert_eq!(status, 400, "a window over 90 days: {wide}");
    assert_eq!(public("/open311/v2/requests/tidak-ada.json").await.0, 404);
    // Closed in PLIPMAS, closed in Open311.
    let (status, _) = step(
        &hub,
        &key,
        &id,
        "withdrawn",
        json!({"note": "pelapor membatalkan"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, after) = public(&format!("/open311/v2/requests/{id}.json")).await;
    assert_eq!(
        (
            after[0]["status"].as_str(),
            after[0]["simpul_status"].as_str()
        ),
        (Some("closed"), Some("withdrawn"))
    );
    assert!(after[0].get("expected_datetime").is_none());
}

/// Working days in `(from, to]`, computed here from the holiday list on its own.
fn working_days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    let mut n = 0;
    let mut day = from;
    while day < to {
        day = day.succ_opt().unwrap();
        if working_day_after(day.pred_opt().unwrap(), 1) == day {
            n += 1;
        }
    }
    n
}

/// 09:00 WIB on `date`, as RFC 3339.
fn wib_morning(date: NaiveDate) -> String {
    format!("{date}T09:00:00+07:00")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_datasets_and_kpis_agree_with_the_cases_filed_by_hand() {
    let hub = Hub::start();
    let admin = hub.admin_key.clone();
    let today = today_wib();
    let file = |body: Value| {
        let hub = &hub;
        let admin = admin.clone();
        async move {
            let (status, case) = send(hub, &admin, "/api/v1/complaints", &body).await;
            assert_eq!(status, 201, "{case}");
            case["id"].as_str().unwrap().to_string()
        }
    };
    // A: a web complaint placed by a point in Kecamatan Purwakarta, responded and answered at
    // once (both steps within their deadlines).
    let a = file(json!({"kind": "complaint", "channel": "web", "description": "Jalan rusak berlubang dekat alun-alun",
                        "nama": "Asep Sunandar", "telepon": "081234567201", "lat": -6.5569, "lng": 107.4433}))
    .await;
    // B: a letter received 30 days ago, only verified now: the verification step is late.
    let b_received = today - chrono::Duration::days(30);
    let b = file(json!({"kind": "complaint", "channel": "surat", "description": "Sampah menumpuk di pasar Rebo",
                        "nama": "Iis Rohaeti", "received_at": wib_morning(b_received)}))
    .await;
    // C: a walk-in received 20 days ago that nobody has touched: in DLH's backlog, overdue.
    let c = file(json!({"kind": "complaint", "channel": "langsung", "description": "TPS liar di bantaran sungai",
                        "received_at": wib_morning(today - chrono::Duration::days(20))}))
    .await;
    // D: answered, objected to, mediated and sent to the Regent.
    let d = file(json!({"kind": "complaint", "channel": "web", "description": "Lampu jalan mati di Jl. Veteran",
                        "nama": "Ujang Hermawan"}))
    .await;
    // E: an information request decided at once.
    let e = file(json!({"kind": "information", "channel": "web", "description": "Daftar penerima bansos desa Ciseureuh",
                        "nama": "Neng Yulia"}))
    .await;
    for (id, steps) in [
        (
            &a,
            vec![json!({"to": "responded"}), json!({"to": "answered"})],
        ),
        (&b, vec![json!({"to": "responded"})]),
        (
            &d,
            vec![
                json!({"to": "responded"}),
                // Through the answer endpoint: the resident and the Regent are sent it.
                json!({"to": "answered", "text": "Lampu sudah diganti oleh Dishub"}),
                json!({"to": "mediation", "note": "pelapor keberatan: lampu masih mati"}),
                json!({"to": "escalated_to_regent", "note": "mediasi tidak berhasil"}),
            ],
        ),
        (
            &e,
            vec![
                json!({"to": "decided", "decision": "partially_granted", "exemption_reason": "data pribadi penerima (Pasal 17 huruf h)"}),
            ],
        ),
    ] {
        for body in steps {
            let to = body["to"].as_str().unwrap().to_string();
            let (status, answer) = match body.get("text") {
                Some(text) => {
                    send(
                        &hub,
                        &admin,
                        &format!("/api/v1/complaints/{id}/answer"),
                        &json!({"text": text}),
                    )
                    .await
                }
                None => step(&hub, &admin, id, &to, body).await,
            };
            assert_eq!(status, 200, "{id} → {to}: {answer}");
        }
    }

    let from = (today - chrono::Duration::days(40)).to_string();
    let (status, kpi) = get(&hub, &admin, &format!("/api/v1/complaints/kpi?from={from}")).await;
    assert_eq!(status, 200, "{kpi}");

    // % within SLA: verification settled for A, D (same day) and B (27+ days late); the
    // follow-up for A and D; the PPID's decision for E; mediation for D.
    let sla = |kind: &str, step: &str| {
        kpi["within_sla"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["step"] == step)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind}/{step} row in {kpi}"))
    };
    let verification = sla("complaint", "verification");
    assert_eq!(
        (
            &verification["due"],
            &verification["within_sla"],
            &verification["missed"]
        ),
        (&json!(3), &json!(2), &json!(1)),
        "{verification}"
    );
    assert_eq!(verification["within_sla_pct"], 66.7);
    assert_eq!(sla("complaint", "follow_up")["within_sla_pct"], 100.0);
    assert_eq!(sla("complaint", "mediation")["due"], 1);
    assert_eq!(sla("information", "decision")["within_sla"], 1);

    // Times: B's first response took the working days between its receipt and today, counted
    // by hand; A's and D's took none. The median of (0, 0, B) is 0; its p90 is 0.8 × B.
    let b_days = working_days_between(b_received, today);
    let events = hub
        .rows(&format!(
            "select hari_kerja, tepat_waktu, langkah, tenggat_langkah from complaints.events \
             where kasus_id = '{b}' and ke_status = 'responded'"
        ))
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["hari_kerja"], b_days);
    assert_eq!(events[0]["tepat_waktu"], false);
    assert_eq!(
        events[0]["tenggat_langkah"],
        working_day_after(b_received, 3).to_string()
    );
    let first = kpi["times"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "complaint" && r["span"] == "first_response")
        .cloned()
        .expect("a first-response row");
    assert_eq!(first["cases"], 3, "{first}");
    assert_eq!(first["median_working_days"], 0.0, "{first}");
    let p90 = first["p90_working_days"].as_f64().unwrap();
    assert!(
        (p90 - 0.8 * b_days as f64).abs() < 0.11,
        "p90 {p90} vs 0.8 × {b_days}"
    );
    let b_hours = first["p90_hours"].as_f64().unwrap() / 0.8;
    let received_utc = chrono::DateTime::parse_from_rfc3339(&wib_morning(b_received)).unwrap();
    let expected_hours =
        (Utc::now() - received_utc.with_timezone(&Utc)).num_seconds() as f64 / 3600.0;
    assert!(
        (b_hours - expected_hours).abs() < 0.5,
        "B's first response took {expected_hours:.1} h since its receipt: {first}"
    );

    // The backlog: C sits with DLH past its verification deadline; B waits for DLH's
    // follow-up, not yet overdue (5 working days from today).
    let backlog = kpi["backlog"].as_array().unwrap();
    let dlh = backlog
        .iter()
        .find(|r| r["opd"] == "DLH" && r["kind"] == "complaint")
        .unwrap_or_else(|| panic!("no DLH row in {kpi}"));
    assert_eq!(
        (&dlh["open"], &dlh["overdue"]),
        (&json!(2), &json!(1)),
        "{dlh}"
    );
    assert!(
        backlog.iter().all(|r| r["opd"] != "PUPR"),
        "A was answered: its turn is the complainant's, not PUPR's: {kpi}"
    );

    assert_eq!(kpi["escalations"]["mediation"], 1, "{kpi}");
    assert_eq!(kpi["escalations"]["escalated_to_regent"], 1, "{kpi}");
    assert_eq!(kpi["escalations"]["closed_by_regent"], 0, "{kpi}");

    let trend = kpi["trend"].as_array().unwrap();
    let roads = trend
        .iter()
        .find(|r| r["category"] == "jalan")
        .unwrap_or_else(|| panic!("no roads row in {kpi}"));
    assert_eq!(
        roads["kecamatan"], "32.14.01",
        "A's point lies in Kecamatan Purwakarta"
    );
    assert_eq!(roads["nama_kecamatan"], "Purwakarta");
    let total: i64 = trend
        .iter()
        .map(|r| r["complaints"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 4, "four complaints: {kpi}");

    let channel = |kind: &str, name: &str| {
        kpi["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["channel"] == name)
            .map_or(0, |r| r["cases"].as_i64().unwrap())
    };
    assert_eq!(
        [
            channel("complaint", "web"),
            channel("complaint", "surat"),
            channel("complaint", "langsung"),
            channel("information", "web")
        ],
        [2, 1, 1, 1]
    );

    // The same SQL is a saved query anyone with SQL rights can call.
    let (status, saved) = get(
        &hub,
        &admin,
        &format!("/api/v1/queries/complaints_kpi_eskalasi?from={from}T00:00:00%2B07:00&to=2100-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert!(saved.to_string().contains("escalated_to_regent"), "{saved}");

    // The datasets: identity masked for an analyst, the information request's decision kept,
    // SMS metadata without the text.
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let masked: Value = hub
        .sql(
            &analyst,
            &format!("select nama, telepon, kategori, kode_wilayah from complaints.cases where id = '{a}'"),
            "application/json",
        )
        .await
        .json()
        .await
        .unwrap();
    let row = &masked["rows"][0];
    assert_eq!(row["kategori"], "jalan", "{masked}");
    assert_eq!(
        row["kode_wilayah"].as_str().map(|k| &k[..8]),
        Some("32.14.01")
    );
    let name = row["nama"].as_str().unwrap_or_default();
    assert!(!name.is_empty() && name != "Asep Sunandar", "{masked}");
    let requests = hub
        .rows(&format!(
            "select keputusan, alasan_pengecualian, status, opd_tujuan from complaints.information_requests where id = '{e}'"
        ))
        .await;
    assert_eq!(
        requests[0]["keputusan"], "partially_granted",
        "{requests:?}"
    );
    assert_eq!(requests[0]["status"], "decided");
    // The SMS notices go out in the background: the next export (the KPI call flushes one)
    // lands them.
    let started = Instant::now();
    let messages = loop {
        assert_eq!(get(&hub, &admin, "/api/v1/complaints/kpi").await.0, 200);
        let messages = hub
            .rows(&format!(
                "select arah, penerima, panjang from complaints.messages where kasus_id = '{d}' order by penerima"
            ))
            .await;
        if !messages.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break messages;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        messages
            .iter()
            .any(|m| m["penerima"] == "regent" && m["arah"] == "out"),
        "the Regent was told of D's answer: {messages:?}"
    );
    let columns = hub.rows("select * from complaints.messages limit 1").await;
    assert!(
        columns[0].get("text").is_none() && columns[0].get("isi").is_none(),
        "SMS text stays out of the dataset: {columns:?}"
    );
    let c_row = hub
        .rows(&format!(
            "select status, pihak_tenggat, tenggat, anonim from complaints.cases where id = '{c}'"
        ))
        .await;
    assert_eq!(c_row[0]["anonim"], true, "C gave no name: {c_row:?}");
    assert_eq!(c_row[0]["pihak_tenggat"], "agency");
}

/// A stand-in virus scanner with clamdscan's contract: the file on standard input, exit 0
/// clean, 1 infected (with a report), 2 a failure.
const SCANNER: &str = "#!/bin/sh\n\
    body=$(cat)\n\
    case \"$body\" in\n\
      *EICAR-STANDARD-ANTIVIRUS-TEST-FILE*) echo 'stdin: Eicar-Test-Signature FOUND'; exit 1 ;;\n\
      *SCANNER-BROKEN*) echo 'cannot connect to clamd' >&2; exit 2 ;;\n\
    esac\n\
    exit 0\n";

fn png(payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_is_type_and_size_checked_scanned_kept_once_and_read_back_intact() {
    use sha2::Digest;
    let tools = tempfile::tempdir().unwrap();
    let scanner = tools.path().join("scan.sh");
    std::fs::write(&scanner, SCANNER).unwrap();
    std::fs::set_permissions(
        &scanner,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let hub = Hub::start_with_env(&[
        ("SIMPUL_COMPLAINTS_ATTACHMENT_MAX_BYTES", "65536"),
        (
            "SIMPUL_COMPLAINTS_ATTACHMENT_SCAN_COMMAND",
            scanner.to_str().unwrap(),
        ),
    ]);
    let portal = hub.key("DISKOMINFO", "PORTAL", "producer");
    let dlh = hub.key("DLH", "SIKELOR", "producer");
    let pupr = hub.key("PUPR", "SIPEDAL", "producer");
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let (status, case) = send(
        &hub,
        &portal,
        "/api/v1/complaints",
        &json!({"kind": "complaint", "channel": "web", "description": "Sampah dibuang ke sungai Cikao",
                "nama": "Rina Marlina", "telepon": "081234567301"}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/complaints/{id}/attachments");
    let http = reqwest::Client::new();
    let upload = |key: &str, content_type: &str, body: Vec<u8>, name: &str| {
        http.post(format!("{}{path}?filename={name}", hub.url))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let photo = png(b"foto sungai penuh sampah");
    let response = upload(&portal, "image/png", photo.clone(), "..%2Fsungai.png")
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let kept: Value = response.json().await.unwrap();
    assert_eq!(kept["sha256"], hex::encode(sha2::Sha256::digest(&photo)));
    assert_eq!(kept["scan"], "clean");
    assert_eq!(kept["size_bytes"], photo.len());
    assert_eq!(kept["file_name"], "sungai.png", "the path is dropped");
    let again = upload(&dlh, "image/png", photo.clone(), "lagi.png")
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        200,
        "the same bytes again are the same attachment"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], kept["id"]);

    // Refused before anything is kept: too large (with and without a Content-Length), a type
    // not on the list, content that is not what its type says, the scanner's verdict, and a
    // scanner failure.
    let response = upload(&portal, "image/png", png(&vec![0u8; 200_000]), "besar.png")
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        413,
        "refused by its Content-Length alone"
    );
    let big = png(&vec![0u8; 70_000]);
    let response = upload(&portal, "image/png", big.clone(), "besar.png")
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let detail: Value = response.json().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("65536"),
        "{detail}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let streamed = http
        .post(format!("{}{path}", hub.url))
        .bearer_auth(&portal)
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        streamed.status(),
        413,
        "a chunked upload is cut at the limit too"
    );
    let response = upload(&portal, "text/html", b"<html>".to_vec(), "x.html")
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let detail: Value = response.json().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("image/png"),
        "{detail}"
    );
    let response = upload(
        &portal,
        "image/jpeg",
        b"%PDF-1.4 surat".to_vec(),
        "surat.jpg",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 415, "a PDF declared as a JPEG");
    let eicar =
        b"%PDF-1.4 X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_vec();
    let response = upload(&portal, "application/pdf", eicar, "surat.pdf")
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let detail: Value = response.json().await.unwrap();
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("Eicar-Test-Signature FOUND"),
        "{detail}"
    );
    let response = upload(
        &portal,
        "application/pdf",
        b"%PDF-1.4 SCANNER-BROKEN".to_vec(),
        "b.pdf",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 503, "a scanner failure keeps nothing");
    let (status, listed) = get(&hub, &dlh, &path).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["attachments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // Who may read: the handling OPD and the key that filed the case; not another OPD, not
    // an analyst.
    assert_eq!(get(&hub, &pupr, &path).await.0, 403);
    assert_eq!(get(&hub, &analyst, &path).await.0, 403);
    let href = format!("{}{}", hub.url, kept["href"].as_str().unwrap());
    let download = http.get(&href).bearer_auth(&portal).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "image/png");
    assert_eq!(
        download.headers()["x-checksum-sha256"].to_str().unwrap(),
        kept["sha256"].as_str().unwrap()
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), photo.as_slice());
    let (_, shown) = get(&hub, &dlh, &format!("/api/v1/complaints/{id}")).await;
    assert_eq!(shown["attachments"][0]["id"], kept["id"], "{shown}");

    // A file damaged in the object store is refused, not served.
    let object = hub
        .dir
        .path()
        .join("lake/_objects/complaints")
        .join(&id)
        .join(kept["sha256"].as_str().unwrap());
    std::fs::write(&object, png(b"diganti")).unwrap();
    let damaged = http.get(&href).bearer_auth(&dlh).send().await.unwrap();
    assert_eq!(damaged.status(), 500);
    let log = std::fs::read_to_string(hub.dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("does not match its recorded SHA-256"),
        "the operators learn why from the log"
    );

    // A closed case takes no more evidence.
    for (to, note) in [
        ("responded", None),
        ("answered", None),
        ("closed_satisfied", None::<&str>),
    ] {
        let (status, answer) = step(&hub, &dlh, &id, to, json!({"note": note})).await;
        assert_eq!(status, 200, "{to}: {answer}");
    }
    let response = upload(&dlh, "image/png", png(b"lagi"), "lagi.png")
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answered_complaint_with_no_reply_closes_itself_once_its_window_is_over() {
    let mut hub = Hub::start();
    let admin = hub.admin_key.clone();
    let mut ids = Vec::new();
    for text in [
        "Jalan rusak di Jl. Ibrahim Singadilaga",
        "Jalan berlubang di Sukatani",
        "Jembatan retak di Plered",
    ] {
        let (status, case) = send(
            &hub,
            &admin,
            "/api/v1/complaints",
            &json!({"kind": "complaint", "channel": "web", "description": text, "nama": "Pelapor Uji"}),
        )
        .await;
        assert_eq!(status, 201, "{case}");
        let id = case["id"].as_str().unwrap().to_string();
        for to in ["responded", "answered"] {
            let (status, answer) = step(&hub, &admin, &id, to, json!({})).await;
            assert_eq!(status, 200, "{answer}");
            if to == "answered" {
                assert_eq!(
                    answer["deadline"]["date"],
                    working_day_after(today_wib(), 10).to_string(),
                    "the objection window: 10 working days"
                );
                assert_eq!(answer["deadline"]["duty"], "requester");
            }
        }
        ids.push(id);
    }
    let (status, _) = step(
        &hub,
        &admin,
        &ids[2],
        "mediation",
        json!({"note": "pelapor keberatan"}),
    )
    .await;
    assert_eq!(status, 200);

    // Ten working days pass for the first case (its window ended yesterday); the second's
    // window ends today. The hub is stopped while the clock "moves".
    hub.terminate(Duration::from_secs(20));
    let yesterday = (today_wib() - chrono::Duration::days(1)).to_string();
    let url = format!(
        "sqlite://{}?mode=rw",
        hub.dir.path().join("state.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for (id, deadline) in [(&ids[0], yesterday), (&ids[1], today_wib().to_string())] {
        sqlx::query("UPDATE complaint_cases SET deadline = ?1 WHERE id = ?2")
            .bind(deadline)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    hub.restart();

    let started = Instant::now();
    let closed = loop {
        let (_, case) = get(&hub, &admin, &format!("/api/v1/complaints/{}", ids[0])).await;
        if case["status"] == "closed_satisfied" {
            break case;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sweep did not close the case: {case}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let last = closed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "system", "{last}");
    assert!(
        last["note"].as_str().unwrap().contains("ditutup otomatis"),
        "{last}"
    );
    assert!(closed["closed_at"].is_string());
    let (_, second) = get(&hub, &admin, &format!("/api/v1/complaints/{}", ids[1])).await;
    assert_eq!(
        second["status"], "answered",
        "its window ends today: still open"
    );
    let (_, third) = get(&hub, &admin, &format!("/api/v1/complaints/{}", ids[2])).await;
    assert_eq!(third["status"], "mediation", "an objection stops the clock");
}
