//! SEMAR end to end: calls to the treatment room with every KPI checked by hand, 200 calls
//! against 40 units across a crash, bad input, nearest facility and unit against
//! hand-computed distances, OSRM, the live stream, the datasets and the simulator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use ring::hmac;
use serde_json::{Value, json};

use crate::harness::Hub;

const WILAYAH: &str = include_str!("../../../hub/reference/wilayah_3214.csv");

/// Haversine on the mean Earth radius, written here independently of the hub's.
fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6_371_008.8_f64;
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let dp = p2 - p1;
    let dl = (b.1 - a.1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// `(kode, nama, level, lat, lng)` of every row of the shipped region table.
fn wilayah() -> Vec<(String, String, String, f64, f64)> {
    WILAYAH
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].into(),
                f[2].into(),
                f[3].into(),
                f[5].parse().unwrap(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
}

fn centroid(kode: &str) -> (f64, f64) {
    let row = wilayah()
        .into_iter()
        .find(|w| w.0 == kode)
        .expect("a known code");
    (row.3, row.4)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("a time: {value}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// A small client for one hub: base URL and key.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    fn of(hub: &Hub, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: hub.url.clone(),
            key: key.to_string(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("the hub answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    async fn call(&self, body: &Value) -> Value {
        let key = format!("t-{}", rand::random::<u64>());
        let (status, call) = self
            .send(
                reqwest::Method::POST,
                "/semar/calls",
                Some(body),
                Some(&key),
            )
            .await;
        assert_eq!(status, 201, "{call}");
        call
    }

    async fn confirm(&self, id: &str) -> Value {
        let (status, confirmed) = self
            .post(&format!("/semar/calls/{id}/confirm"), &json!({}))
            .await;
        assert_eq!(status, 200, "{confirmed}");
        confirmed
    }

    async fn event(
        &self,
        dispatch: &str,
        event: &str,
        at: Option<DateTime<Utc>>,
        facility: Option<&str>,
    ) -> (u16, Value) {
        let mut body = json!({"event": event});
        if let Some(at) = at {
            body["at"] = json!(rfc3339(at));
        }
        if let Some(facility) = facility {
            body["facility"] = json!(facility);
        }
        self.post(&format!("/semar/dispatches/{dispatch}/events"), &body)
            .await
    }

    async fn set_unit_status(&self, kode: &str, status: &str) {
        let (_, fleet) = self.get("/semar/ambulances").await;
        let unit = fleet["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["kode"] == kode)
            .unwrap()
            .clone();
        let body = json!({
            "nomor_polisi": unit["nomor_polisi"], "jenis": unit["jenis"], "pangkalan_faskes": unit["pangkalan_faskes"],
            "di_aplikasi": unit["di_aplikasi"], "status": status,
        });
        let (code, answer) = self
            .send(
                reqwest::Method::PUT,
                &format!("/semar/ambulances/{kode}"),
                Some(&body),
                None,
            )
            .await;
        assert_eq!(code, 200, "{answer}");
    }

    async fn ping(&self, kode: &str, at: (f64, f64)) {
        let (status, answer) = self
            .post(
                &format!("/semar/ambulances/{kode}/location"),
                &json!({"lat": at.0, "lng": at.1}),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// The crew steps after `assigned`, with the facility where one is taken.
const STEPS: [&str; 8] = [
    "notified",
    "en_route",
    "on_scene",
    "at_patient",
    "left_scene",
    "at_facility",
    "handed_over",
    "back_in_service",
];

fn approx(actual: &Value, expected: f64, tolerance: f64, what: &str) {
    let got = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {actual}"));
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: {got} is not {expected} ± {tolerance}"
    );
}

/// percentile_cont: linear interpolation between closest ranks.
fn p90(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = 0.9 * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_reach_the_treatment_room_and_every_kpi_matches_a_hand_computation() {
    let hub = Hub::start_with_env(&[("SIMPUL_SEMAR_EXPORT_INTERVAL_SECS", "1")]);
    let api = Api::of(&hub, &hub.admin_key);
    let now = Utc::now();
    let whole_seconds = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);

    // A: a phone call from a kelurahan of Kecamatan Purwakarta, received 5 minutes ago.
    let received_a = time(&json!(whole_seconds(now - chrono::Duration::minutes(5))));
    let call_a = api
        .call(
            &json!({"channel": "phone", "caller_phone": "0812 3456 7001", "complaint": "nyeri dada",
                      "kode_wilayah": "32.14.01.1001", "received_at": rfc3339(received_a)}),
        )
        .await;
    assert_eq!(call_a["status"], "menunggu_konfirmasi");
    assert_eq!(call_a["caller_phone"], "+6281234567001");
    assert_eq!(call_a["location_source"], "desa_centroid");
    // B: an SMS an operator entered, from a desa of Campaka, received 20 minutes ago.
    let received_b = time(&json!(whole_seconds(now - chrono::Duration::minutes(20))));
    let call_b = api
        .call(&json!({"channel": "sms", "caller_phone": "+6281234567002", "complaint": "kecelakaan motor",
                      "kode_wilayah": "32.14.02.2001", "received_at": rfc3339(received_b)}))
        .await;
    // C: an app call by a registered resident, cancelled before confirmation.
    let (status, registered) = api
        .post("/semar/residents", &json!({"nik": "3214024506880003", "nama": "Euis Kurniasih", "telepon": "081234567003",
                                           "alamat": "Kp. Campaka RT 01/02", "kode_wilayah": "32.14.02.2002"}))
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(
        registered["verified"], false,
        "no population dataset on this hub: unverified"
    );
    let call_c = api
        .call(&json!({"channel": "app", "nik": "3214024506880003", "complaint": "demam tinggi", "kode_wilayah": "32.14.02.2002"}))
        .await;
    assert_eq!(call_c["caller_name"], "Euis Kurniasih");
    let (status, cancelled) = api
        .post(
            &format!("/semar/calls/{}/cancel", call_c["id"].as_str().unwrap()),
            &json!({"reason": "pasien sudah dibawa keluarga"}),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("dibatalkan")),
        "{cancelled}"
    );

    // Each confirmed call gets a unit; the crews record every step at chosen offsets.
    let offsets_a = [10, 20, 50, 60, 70, 80, 90, 100];
    let offsets_b = [5, 15, 45, 55, 75, 95, 110, 115];
    let mut times: Vec<JobTimes> = Vec::new();
    for (call, offsets) in [(&call_a, offsets_a), (&call_b, offsets_b)] {
        let confirmed = api.confirm(call["id"].as_str().unwrap()).await;
        assert_eq!(confirmed["status"], "ditugaskan", "{confirmed}");
        let dispatch = &confirmed["dispatch"];
        let assigned = time(&dispatch["times"]["assigned"]);
        let id = dispatch["id"].as_str().unwrap();
        let mut steps = BTreeMap::new();
        for (step, offset) in STEPS.iter().zip(offsets) {
            let at = assigned + chrono::Duration::seconds(offset);
            let facility = (*step == "left_scene").then_some("RS-BAYUASIH");
            let (status, answer) = api.event(id, step, Some(at), facility).await;
            assert_eq!(status, 201, "{step}: {answer}");
            steps.insert(*step, at);
        }
        times.push((assigned, steps));
    }
    let (shown_status, shown) = api
        .get(&format!("/semar/calls/{}", call_a["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown_status, 200);
    assert_eq!(shown["status"], "selesai");
    assert_eq!(shown["close_reason"], "handed_over");
    assert_eq!(shown["dispatches"][0]["facility"], "RS-BAYUASIH");

    // The hand computation.
    let secs =
        |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_microseconds().unwrap() as f64 / 1e6;
    let received = [received_a, received_b];
    let response: Vec<f64> = (0..2)
        .map(|i| secs(received[i], times[i].1["at_patient"]))
        .collect();
    let processing: Vec<f64> = (0..2).map(|i| secs(received[i], times[i].0)).collect();
    let span = |from: &str, to: &str| -> Vec<f64> {
        times
            .iter()
            .map(|(assigned, steps)| {
                let start = if from == "assigned" {
                    *assigned
                } else {
                    steps[from]
                };
                secs(start, steps[to])
            })
            .collect()
    };
    let busy: f64 = times
        .iter()
        .map(|(assigned, steps)| secs(*assigned, steps["back_in_service"]))
        .sum();

    let from = rfc3339(now - chrono::Duration::hours(1));
    let to = rfc3339(now + chrono::Duration::hours(1));
    let window = format!("from={}&to={}", urlencode(&from), urlencode(&to));
    let (status, kpi) = api.get(&format!("/semar/kpi?{window}")).await;
    assert_eq!(status, 200, "{kpi}");
    assert_eq!(kpi["target_secs"], 600);
    assert_eq!(kpi["response"]["responded"], 2, "{kpi}");
    approx(
        &kpi["response"]["p90_secs"],
        p90(&response),
        0.051,
        "p90 response",
    );
    approx(
        &kpi["response"]["mean_secs"],
        mean(&response),
        0.051,
        "mean response",
    );
    // A reached the patient in about 6 minutes, B in about 21.
    assert_eq!(kpi["response"]["within_target"], 1);
    approx(
        &kpi["response"]["within_target_pct"],
        50.0,
        0.0,
        "% within 10 minutes",
    );
    let intervals = [
        ("call_processing", processing),
        ("turnout", span("assigned", "en_route")),
        ("travel", span("en_route", "on_scene")),
        ("on_scene", span("on_scene", "left_scene")),
        ("transport", span("left_scene", "at_facility")),
        ("handover", span("at_facility", "handed_over")),
    ];
    for (name, values) in &intervals {
        let got = &kpi["intervals"][name];
        assert_eq!(got["count"], 2, "{name}: {got}");
        approx(
            &got["mean_secs"],
            mean(values),
            0.051,
            &format!("{name} mean"),
        );
        approx(&got["p90_secs"], p90(values), 0.051, &format!("{name} p90"));
    }
    let calls = &kpi["calls"];
    assert_eq!(calls["total"], 3);
    assert_eq!(calls["by_channel"], json!({"app": 1, "phone": 1, "sms": 1}));
    assert_eq!(calls["by_area_type"], json!({"desa": 2, "kelurahan": 1}));
    assert_eq!(
        calls["by_kecamatan"],
        json!([
            {"kode": "32.14.01", "nama": "Purwakarta", "calls": 1, "selesai": 1},
            {"kode": "32.14.02", "nama": "Campaka", "calls": 2, "selesai": 1},
        ])
    );
    let units = &kpi["units"];
    assert_eq!(
        (
            units["total"].as_i64(),
            units["in_service"].as_i64(),
            units["available"].as_i64()
        ),
        (Some(40), Some(40), Some(40))
    );
    approx(&units["availability_pct"], 100.0, 0.0, "availability");
    approx(&units["busy_secs"], busy, 0.051, "busy unit-seconds");
    approx(
        &units["utilisation_pct"],
        (busy / (40.0 * 7200.0) * 10_000.0).round() / 100.0,
        0.0,
        "utilisation",
    );

    // One kecamatan: only B.
    let (_, campaka) = api
        .get(&format!("/semar/kpi?{window}&kecamatan=32.14.02"))
        .await;
    assert_eq!(campaka["response"]["responded"], 1, "{campaka}");
    approx(
        &campaka["response"]["p90_secs"],
        response[1],
        0.051,
        "Campaka p90",
    );
    assert_eq!(campaka["calls"]["total"], 2);

    // The same SQL is a saved query.
    let (status, saved) = api
        .get(&format!("/queries/semar_kpi_respons?{window}"))
        .await;
    assert_eq!(status, 200, "{saved}");
    let rows = saved["rows"].as_array().expect("rows");
    let response_row = rows
        .iter()
        .find(|r| r["span"] == "response")
        .expect("a response row");
    assert_eq!(response_row["n"], 2);

    // The datasets: every step of both jobs is in semar.events, the calls' personal data is
    // masked for an analyst and the residents are restricted.
    let events = hub
        .rows(
            "select kejadian, count(*) as n from semar.events group by kejadian order by kejadian",
        )
        .await;
    assert_eq!(events.len(), 8, "{events:?}");
    assert!(events.iter().all(|e| e["n"] == 2), "{events:?}");
    let analyst = hub.key("BAPPEDA", "ANALIS", "analyst");
    let masked = hub
        .sql(
            &analyst,
            "select telepon_pemanggil, kanal from semar.calls where kanal = 'phone'",
            "application/json",
        )
        .await;
    let masked: Value = masked.json().await.unwrap();
    let phone = masked["rows"][0]["telepon_pemanggil"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!phone.is_empty() && phone != "+6281234567001", "{masked}");
    let hidden = hub
        .sql(
            &analyst,
            "select count(*) from semar.residents",
            "application/json",
        )
        .await;
    assert!(
        hidden.status().is_client_error(),
        "residents are restricted"
    );
    let (status, _) = api
        .post(
            "/semar/sms/inbound",
            &json!({"from": "0812", "text": "x", "received_at": rfc3339(now)}),
        )
        .await;
    assert_eq!(
        status, 404,
        "the SMS fallback is off without a shared secret"
    );
}

/// When a job was assigned, and when each crew step happened.
type JobTimes<'a> = (DateTime<Utc>, BTreeMap<&'a str, DateTime<Utc>>);
/// A unit's jobs, each from assignment to back in service.
type UnitJobs = HashMap<String, Vec<(DateTime<Utc>, DateTime<Utc>)>>;

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Drives one dispatch from wherever it is to back in service; stops at the first error
/// (the hub may be restarting).
async fn finish(api: Api, dispatch: String) -> Result<(), String> {
    loop {
        let (status, current) = api.get(&format!("/semar/dispatches/{dispatch}")).await;
        if status != 200 {
            return Err(format!("{status}"));
        }
        let Some(next) = current["allowed_next"]
            .as_array()
            .and_then(|n| n.iter().find(|s| *s != "cancelled"))
            .cloned()
        else {
            return Ok(());
        };
        let next = next.as_str().unwrap_or_default().to_string();
        let facility = (next == "left_scene").then_some("RS-BAYUASIH");
        let (status, answer) = api.event(&dispatch, &next, None, facility).await;
        if status != 201 && status != 200 {
            return Err(format!("{next}: {status} {answer}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_calls_on_forty_units_are_each_assigned_once_in_order_across_a_crash() {
    let mut hub = Hub::start();
    let mut api = Api::of(&hub, &hub.admin_key);
    let places: Vec<String> = wilayah()
        .into_iter()
        .filter(|w| w.2 == "desa" || w.2 == "kelurahan")
        .map(|w| w.0)
        .collect();
    let mut ids = Vec::new();
    for chunk in (0..200).collect::<Vec<_>>().chunks(50) {
        let created = futures::future::join_all(chunk.iter().map(|n| {
            let api = api.clone();
            let body = json!({"channel": "phone", "caller_phone": format!("+62812000{:05}", n), "complaint": "uji beban",
                              "kode_wilayah": places[n % places.len()]});
            async move { api.call(&body).await }
        }))
        .await;
        ids.extend(
            created
                .into_iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
    }
    // All 200 confirmed at once.
    let confirmed = futures::future::join_all(ids.iter().map(|id| {
        let api = api.clone();
        let id = id.clone();
        async move { api.confirm(&id).await }
    }))
    .await;
    let assigned: Vec<&Value> = confirmed
        .iter()
        .filter(|c| !c["dispatch"].is_null())
        .collect();
    let units: BTreeSet<&str> = assigned
        .iter()
        .map(|c| c["dispatch"]["unit"].as_str().unwrap())
        .collect();
    assert_eq!(assigned.len(), 40, "40 units, 40 assignments");
    assert_eq!(units.len(), 40, "no unit twice: {units:?}");
    let positions: BTreeSet<i64> = confirmed
        .iter()
        .filter_map(|c| c["queue_position"].as_i64())
        .collect();
    assert_eq!(
        positions,
        (1..=160).collect::<BTreeSet<_>>(),
        "160 waiting calls, each in its own place"
    );

    // The crews finish jobs as they get them; halfway, the hub is killed and restarted.
    let mut restarted = false;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the calls did not all finish"
        );
        let (status, selesai) = api.get("/semar/calls?status=selesai&limit=1000").await;
        assert_eq!(status, 200, "{selesai}");
        let done = selesai["calls"].as_array().unwrap().len();
        let (_, fleet) = api.get("/semar/ambulances").await;
        let open: Vec<String> = fleet["units"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["dispatch"].as_str().map(str::to_string))
            .collect();
        if done == 200 && open.is_empty() {
            break;
        }
        let jobs: Vec<_> = open
            .into_iter()
            .map(|d| tokio::spawn(finish(api.clone(), d)))
            .collect();
        if !restarted && done >= 100 {
            // Kill while those jobs are mid-way.
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(hub.restart().is_none());
            restarted = true;
            api = Api::of(&hub, &hub.admin_key);
        }
        for job in jobs {
            let _ = job.await;
        }
    }
    assert!(restarted);

    // Every call was served by exactly one dispatch, no unit held two jobs at once, and
    // waiting calls were served in the order they were confirmed.
    let mut by_unit: UnitJobs = HashMap::new();
    let mut served: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for id in &ids {
        let (_, call) = api.get(&format!("/semar/calls/{id}")).await;
        assert_eq!(call["status"], "selesai", "{call}");
        let dispatches = call["dispatches"].as_array().unwrap();
        assert_eq!(
            dispatches.len(),
            1,
            "{id} was assigned {} times",
            dispatches.len()
        );
        let d = &dispatches[0];
        let assigned_at = time(&d["times"]["assigned"]);
        by_unit
            .entry(d["unit"].as_str().unwrap().to_string())
            .or_default()
            .push((assigned_at, time(&d["times"]["back_in_service"])));
        served.push((time(&call["confirmed_at"]), assigned_at));
    }
    for (unit, mut jobs) in by_unit {
        jobs.sort();
        for pair in jobs.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "{unit} took a job before its previous one ended: {pair:?}"
            );
        }
    }
    served.sort();
    let waited: Vec<DateTime<Utc>> = served
        .iter()
        .skip(40)
        .map(|(_, assigned)| *assigned)
        .collect();
    assert!(
        waited.windows(2).all(|w| w[0] <= w[1]),
        "queued calls were assigned out of confirmation order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_niks_places_steps_and_sms_signatures_are_refused_with_the_reason() {
    let secret = "rahasia-sms";
    // An SMS gateway that keeps what it is asked to send.
    let sent: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let gateway = {
        let sent = sent.clone();
        axum::Router::new().route(
            "/kirim",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                    let sent = sent.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        sent.lock().unwrap().push((auth, body));
                        axum::Json(json!({"status": "queued"}))
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!("http://{}/kirim", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await.unwrap() });
    let hub = Hub::start_with_env(&[
        ("SIMPUL_SEMAR_SMS_SECRET", secret),
        ("SIMPUL_SEMAR_SMS_GATEWAY_URL", &gateway_url),
        ("SIMPUL_SEMAR_SMS_GATEWAY_TOKEN", "token-gateway"),
    ]);
    let api = Api::of(&hub, &hub.admin_key);
    let resident = |nik: &str| json!({"nik": nik, "nama": "Dadang", "telepon": "081234567010", "alamat": "Jl. Kopi", "kode_wilayah": "32.14.01.1001"});
    for (nik, reason) in [
        ("321401120385001", "16 digits"),
        ("9999011203850001", "not a known province and regency"),
        ("3214013203850001", "birth day 32 is impossible"),
        ("3214011213850001", "birth month 13 is impossible"),
        ("3214013102850001", "not a real date"),
    ] {
        let (status, answer) = api.post("/semar/residents", &resident(nik)).await;
        assert_eq!(status, 422, "{nik}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(reason),
            "{nik}: {answer}"
        );
    }
    let (status, _) = api
        .post("/semar/residents", &resident("3214.0112.0385.0001"))
        .await;
    assert_eq!(status, 201, "separators are ignored");
    let (status, twice) = api
        .post("/semar/residents", &resident("3214011203850001"))
        .await;
    assert_eq!(status, 409, "{twice}");

    // Places outside the regency.
    let phone = |extra: Value| {
        let mut body =
            json!({"channel": "phone", "caller_phone": "081234567011", "complaint": "pingsan"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (place, reason) in [
        (
            json!({"lat": -6.9025, "lng": 107.6188}),
            "outside Kabupaten Purwakarta",
        ),
        (
            json!({"kode_wilayah": "32.04.01.2001"}),
            "not a desa or kelurahan of Kabupaten Purwakarta",
        ),
        (json!({"lat": -6.55}), "lat and lng together"),
        (json!({}), "needs its place"),
    ] {
        let (status, answer) = api
            .send(
                reqwest::Method::POST,
                "/semar/calls",
                Some(&phone(place.clone())),
                Some(&format!("k-{place}")),
            )
            .await;
        assert_eq!(status, 422, "{place}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(reason),
            "{place}: {answer}"
        );
    }
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/semar/calls",
            Some(&phone(json!({"kode_wilayah": "32.14.01.1001"}))),
            None,
        )
        .await;
    assert_eq!(status, 400, "a call needs an Idempotency-Key");
    let body = phone(json!({"kode_wilayah": "32.14.01.1001"}));
    let (first_status, first) = api
        .send(
            reqwest::Method::POST,
            "/semar/calls",
            Some(&body),
            Some("sekali"),
        )
        .await;
    let (again_status, again) = api
        .send(
            reqwest::Method::POST,
            "/semar/calls",
            Some(&body),
            Some("sekali"),
        )
        .await;
    assert_eq!((first_status, again_status), (201, 201));
    assert_eq!(first["id"], again["id"], "a retried call is the same call");
    // The retry is marked the way the README documents for every idempotent endpoint.
    let third = api
        .http
        .post(format!("{}/api/v1/semar/calls", api.url))
        .bearer_auth(&api.key)
        .header("Idempotency-Key", "sekali")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 201);
    assert_eq!(third.headers()["idempotency-replayed"], "true");
    assert_eq!(third.headers()["content-type"], "application/json");
    let analyst = Api::of(&hub, &hub.key("BAPPEDA", "ANALIS", "analyst"));
    let (status, _) = analyst
        .send(
            reqwest::Method::POST,
            "/semar/calls",
            Some(&body),
            Some("analis"),
        )
        .await;
    assert_eq!(status, 403, "an analyst key may not create calls");

    // Illegal and replayed steps.
    let confirmed = api.confirm(first["id"].as_str().unwrap()).await;
    let dispatch = confirmed["dispatch"]["id"].as_str().unwrap().to_string();
    let (status, illegal) = api.event(&dispatch, "at_facility", None, None).await;
    assert_eq!(status, 409, "{illegal}");
    assert_eq!(illegal["current"], "assigned");
    assert_eq!(
        illegal["allowed_next"],
        json!(["notified", "en_route", "cancelled"])
    );
    let (status, unknown) = api.event(&dispatch, "terbang", None, None).await;
    assert_eq!(status, 422, "{unknown}");
    let (status, _) = api.event(&dispatch, "en_route", None, None).await;
    assert_eq!(status, 201);
    let (status, replay) = api.event(&dispatch, "en_route", None, None).await;
    assert_eq!(
        (status, &replay["replayed"]),
        (200, &json!(true)),
        "{replay}"
    );
    let (status, early) = api
        .event(
            &dispatch,
            "on_scene",
            Some(Utc::now() - chrono::Duration::hours(1)),
            None,
        )
        .await;
    assert_eq!(status, 422, "a step before the previous one: {early}");
    let (status, future) = api
        .event(
            &dispatch,
            "on_scene",
            Some(Utc::now() + chrono::Duration::hours(1)),
            None,
        )
        .await;
    assert_eq!(status, 422, "a step in the future: {future}");
    let (status, facility) = api
        .event(&dispatch, "on_scene", None, Some("RS-BAYUASIH"))
        .await;
    assert_eq!(status, 422, "on_scene takes no facility: {facility}");
    // The KPI endpoint lands every pending change in the datasets first.
    let (_, _) = api.get("/semar/kpi").await;
    let en_route = hub
        .rows(&format!("select count(*) as n from semar.events where dispatch_id = '{dispatch}' and kejadian = 'en_route'"))
        .await;
    assert_eq!(en_route[0]["n"], 1, "a replayed step is recorded once");
    // The patient on board cannot be cancelled away.
    for step in ["on_scene", "at_patient"] {
        assert_eq!(api.event(&dispatch, step, None, None).await.0, 201);
    }
    assert_eq!(
        api.event(&dispatch, "left_scene", None, Some("RS-BAYUASIH"))
            .await
            .0,
        201
    );
    let (status, refused) = api
        .post(
            &format!("/semar/calls/{}/cancel", first["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");

    // The SMS webhook: signed, fresh, once.
    let sign = |ts: i64, body: &str, key: &str| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
        format!(
            "sha256={}",
            hex::encode(hmac::sign(&key, format!("{ts}.{body}").as_bytes()).as_ref())
        )
    };
    let sms = json!({"from": "0812-3456-7012", "text": "tolong, bapak jatuh di Campakasari", "received_at": rfc3339(Utc::now())}).to_string();
    let post_sms = |ts: i64, signature: String| {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/semar/sms/inbound", hub.url);
        let body = sms.clone();
        async move {
            let response = http
                .post(url)
                .header("Simpul-Timestamp", ts.to_string())
                .header("Simpul-Signature", signature)
                .header("content-type", "application/json")
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
    let ts = Utc::now().timestamp();
    let (status, bad) = post_sms(ts, sign(ts, &sms, "bukan-rahasia")).await;
    assert_eq!(status, 401, "{bad}");
    let stale = ts - 600;
    assert_eq!(
        post_sms(stale, sign(stale, &sms, secret)).await.0,
        401,
        "a stale timestamp"
    );
    let (status, created) = post_sms(ts, sign(ts, &sms, secret)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["location_source"], "desa_centroid",
        "the desa named in the text"
    );
    let (status, replayed) = post_sms(ts, sign(ts, &sms, secret)).await;
    assert_eq!(
        (status, &replayed["call_id"]),
        (200, &created["call_id"]),
        "a gateway retry makes no second call"
    );
    let (_, call) = api
        .get(&format!(
            "/semar/calls/{}",
            created["call_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (
            call["channel"].as_str(),
            call["kode_wilayah"].as_str(),
            call["status"].as_str()
        ),
        (
            Some("phone"),
            Some("32.14.02.2002"),
            Some("menunggu_konfirmasi")
        )
    );
    // The reply went out through the HTTP gateway adapter, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no SMS reached the gateway");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies: Vec<(String, Value)> = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == "+6281234567012")
        .cloned()
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].0, "Bearer token-gateway");
    assert!(
        replies[0].1["text"]
            .as_str()
            .unwrap()
            .contains("pesan darurat Anda diterima"),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nearest_facility_and_unit_follow_hand_computed_distances() {
    let hub = Hub::start();
    let api = Api::of(&hub, &hub.admin_key);
    let kecamatan: Vec<(String, String, String, f64, f64)> = wilayah()
        .into_iter()
        .filter(|w| w.2 == "kecamatan")
        .collect();
    // From the centre of Desa Cibatu's kecamatan neighbour: a point in Wanayasa.
    let from = centroid("32.14.08");
    let (status, nearest) = api
        .get(&format!(
            "/semar/facilities/nearest?lat={}&lng={}&jenis=puskesmas&limit=4",
            from.0, from.1
        ))
        .await;
    assert_eq!(status, 200, "{nearest}");
    let mut expected: Vec<(f64, String)> = kecamatan
        .iter()
        .map(|k| {
            (
                distance_m(from, (k.3, k.4)),
                format!("PKM-{}", k.0.replace('.', "")),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
    let got = nearest["facilities"].as_array().unwrap();
    assert_eq!(got.len(), 4);
    for (facility, (distance, kode)) in got.iter().zip(&expected) {
        assert_eq!(facility["kode"], kode.as_str(), "{nearest}");
        approx(&facility["distance_m"], *distance, 1.0, kode);
        approx(
            &facility["estimate_secs"],
            distance * 1.4 / (40.0 / 3.6),
            1.0,
            kode,
        );
    }
    let (status, _) = api
        .get("/semar/facilities/nearest?lat=-6.5&lng=107.4&jenis=kuburan")
        .await;
    assert_eq!(status, 400);

    // Three units free, at three kecamatan centres; the rest in maintenance.
    for n in 4..=40 {
        api.set_unit_status(&format!("SEMAR-{n:02}"), "perawatan")
            .await;
    }
    let bases = ["32.14.01", "32.14.05", "32.14.12"];
    for (i, base) in bases.iter().enumerate() {
        api.ping(&format!("SEMAR-{:02}", i + 1), centroid(base))
            .await;
    }
    let scene = centroid("32.14.04.2001");
    let mut order: Vec<(f64, String)> = bases
        .iter()
        .enumerate()
        .map(|(i, base)| {
            (
                distance_m(centroid(base), scene),
                format!("SEMAR-{:02}", i + 1),
            )
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (distance, unit) in &order {
        let call = api
            .call(&json!({"channel": "phone", "caller_phone": "081234567020", "complaint": "sesak", "kode_wilayah": "32.14.04.2001"}))
            .await;
        let confirmed = api.confirm(call["id"].as_str().unwrap()).await;
        let dispatch = &confirmed["dispatch"];
        assert_eq!(dispatch["unit"], unit.as_str(), "{confirmed}");
        approx(&dispatch["estimate"]["distance_m"], *distance, 1.0, unit);
        approx(
            &dispatch["estimate"]["seconds"],
            distance * 1.4 / (40.0 / 3.6),
            1.0,
            unit,
        );
        assert_eq!(dispatch["estimate"]["source"], "straight_line");
    }
    let call = api
        .call(&json!({"channel": "phone", "caller_phone": "081234567021", "complaint": "sesak", "kode_wilayah": "32.14.04.2001"}))
        .await;
    let queued = api.confirm(call["id"].as_str().unwrap()).await;
    assert_eq!(
        (queued["status"].as_str(), queued["queue_position"].as_i64()),
        (Some("dalam_antrean"), Some(1)),
        "{queued}"
    );
    assert!(queued["dispatch"].is_null());
    let (_, fleet) = api.get("/semar/ambulances").await;
    assert_eq!(fleet["queue"][0]["call_id"], call["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_osrm_the_fastest_by_road_wins_and_a_failing_osrm_falls_back() {
    // A mock OSRM replaying the table service's shape: durations[i][0] from source i to the
    // destination, the farther unit (by straight line) the faster by road.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = {
        let seen = seen.clone();
        let failing = failing.clone();
        axum::Router::new().route(
            "/table/v1/driving/{coordinates}",
            axum::routing::get(move |axum::extract::Path(coordinates): axum::extract::Path<String>, axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let seen = seen.clone();
                let failing = failing.clone();
                async move {
                    let query = query.unwrap_or_default();
                    seen.lock().unwrap().push(format!("{coordinates}?{query}"));
                    if failing.load(std::sync::atomic::Ordering::SeqCst) {
                        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"code": "InvalidQuery", "message": "down"})));
                    }
                    let points: Vec<Vec<f64>> = coordinates.split(';').map(|p| p.split(',').map(|x| x.parse().unwrap()).collect()).collect();
                    let indexes = |name: &str| -> Vec<usize> {
                        let list = query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap_or_default();
                        list.split(';').map(|i| i.parse().unwrap()).collect()
                    };
                    let (sources, destinations) = (indexes("sources"), indexes("destinations"));
                    // The point farthest east is fastest to reach or leave (a new toll road,
                    // say); the anchor is the one source or destination given alone.
                    let anchor = if sources.len() == 1 { sources[0] } else { destinations[0] };
                    let time = |s: usize, d: usize| {
                        let other = if s == anchor { d } else { s };
                        (108.0 - points[other][0]) * 1000.0
                    };
                    let durations: Vec<Vec<f64>> = sources.iter().map(|s| destinations.iter().map(|d| time(*s, *d)).collect()).collect();
                    let waypoint = |i: &usize| json!({"hint": "", "distance": 3.2, "name": "Jalan Raya", "location": [points[*i][0], points[*i][1]]});
                    (axum::http::StatusCode::OK, axum::Json(json!({
                        "code": "Ok",
                        "durations": durations,
                        "sources": sources.iter().map(waypoint).collect::<Vec<_>>(),
                        "destinations": destinations.iter().map(waypoint).collect::<Vec<_>>(),
                    })))
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let osrm = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hub = Hub::start_with_env(&[("SIMPUL_SEMAR_OSRM_URL", &osrm)]);
    let api = Api::of(&hub, &hub.admin_key);
    for n in 3..=40 {
        api.set_unit_status(&format!("SEMAR-{n:02}"), "perawatan")
            .await;
    }
    let scene = centroid("32.14.01.1001");
    let near = (scene.0, scene.1 - 0.02);
    let far_east = (scene.0, scene.1 + 0.05);
    api.ping("SEMAR-01", near).await;
    api.ping("SEMAR-02", far_east).await;
    let call = api
        .call(&json!({"channel": "phone", "caller_phone": "081234567030", "complaint": "sesak", "kode_wilayah": "32.14.01.1001"}))
        .await;
    let confirmed = api.confirm(call["id"].as_str().unwrap()).await;
    let dispatch = &confirmed["dispatch"];
    assert_eq!(
        dispatch["unit"], "SEMAR-02",
        "OSRM says the farther unit is faster: {confirmed}"
    );
    assert_eq!(dispatch["estimate"]["source"], "osrm");
    approx(
        &dispatch["estimate"]["seconds"],
        ((108.0 - far_east.1) * 1000.0).round(),
        1.0,
        "the road duration",
    );
    approx(
        &dispatch["estimate"]["distance_m"],
        distance_m(far_east, scene),
        1.0,
        "straight-line distance",
    );
    let request = seen.lock().unwrap().last().cloned().unwrap();
    // Sources first (nearest by straight line first), lng,lat order, the scene last.
    let expected = format!(
        "{:.6},{:.6};{:.6},{:.6};{:.6},{:.6}?sources=0;1&destinations=2&annotations=duration",
        near.1, near.0, far_east.1, far_east.0, scene.1, scene.0
    );
    assert_eq!(request, expected);

    // The nearest hospitals, from the patient to each: asked the other way round.
    let (status, hospitals) = api
        .get(&format!(
            "/semar/facilities/nearest?lat={}&lng={}&jenis=rumah_sakit&limit=2",
            scene.0, scene.1
        ))
        .await;
    assert_eq!(status, 200, "{hospitals}");
    let listed = hospitals["facilities"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|f| f["estimate_source"] == "osrm"),
        "{hospitals}"
    );
    assert!(
        listed[0]["lng"].as_f64() > listed[1]["lng"].as_f64(),
        "the one farther east is faster by the mock: {hospitals}"
    );
    approx(
        &listed[0]["estimate_secs"],
        ((108.0 - listed[0]["lng"].as_f64().unwrap()) * 1000.0).round(),
        1.0,
        "road time",
    );
    let request = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        request.ends_with("?sources=2&destinations=0;1&annotations=duration"),
        "{request}"
    );

    // OSRM down: the straight line decides.
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let call = api
        .call(&json!({"channel": "phone", "caller_phone": "081234567031", "complaint": "sesak", "kode_wilayah": "32.14.01.1001"}))
        .await;
    let confirmed = api.confirm(call["id"].as_str().unwrap()).await;
    assert_eq!(confirmed["dispatch"]["unit"], "SEMAR-01", "{confirmed}");
    assert_eq!(confirmed["dispatch"]["estimate"]["source"], "straight_line");
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_checks_the_population_data_when_it_is_there() {
    let hub = Hub::start_with_env(&[("SIMPUL_SEMAR_POPULATION_DATASET", "dukcapil.penduduk")]);
    hub.ingest_residents();
    let api = Api::of(&hub, &hub.admin_key);
    let register = |nik: &str, nama: &str| json!({"nik": nik, "nama": nama, "telepon": "081234567040", "alamat": "Jl. Veteran No. 12", "kode_wilayah": "32.14.01.1001"});
    let (status, budi) = api
        .post(
            "/semar/residents",
            &register("3214011505900001", "BUDI SANTOSO"),
        )
        .await;
    assert_eq!(status, 201, "{budi}");
    assert_eq!(budi["verified"], true);
    assert_eq!(budi["verified_against"], "dukcapil.penduduk");
    let (status, other) = api
        .post(
            "/semar/residents",
            &register("3214015506920002", "Siti Nurhaliza"),
        )
        .await;
    assert_eq!(status, 422, "{other}");
    assert!(
        other["detail"].as_str().unwrap().contains("does not match"),
        "{other}"
    );
    let (status, missing) = api
        .post("/semar/residents", &register("3214011203850001", "Dadang"))
        .await;
    assert_eq!(status, 422, "{missing}");
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("not in the population data"),
        "{missing}"
    );
    assert_eq!(
        api.post(
            "/semar/residents",
            &register("3214011505900001", "Budi Santoso")
        )
        .await
        .0,
        409
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_console_streams_a_snapshot_then_changes_and_records_reach_sql_fast() {
    let hub = Hub::start_with_env(&[("SIMPUL_SEMAR_EXPORT_INTERVAL_SECS", "1")]);
    let api = Api::of(&hub, &hub.admin_key);
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/semar/stream", hub.url))
        .bearer_auth(&hub.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut next_event = async || -> (String, Value) {
        loop {
            if let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let event = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or_default()
                    .to_string();
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("null");
                if event.is_empty() {
                    continue;
                }
                return (event, serde_json::from_str(data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("an event")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let (kind, snapshot) = next_event().await;
    assert_eq!(kind, "snapshot");
    assert_eq!(snapshot["units"].as_array().unwrap().len(), 40);
    let call = api
        .call(&json!({"channel": "phone", "caller_phone": "081234567050", "complaint": "kejang", "kode_wilayah": "32.14.03.2005"}))
        .await;
    let (kind, change) = next_event().await;
    assert_eq!(
        (kind.as_str(), &change["id"]),
        ("call", &call["id"]),
        "{change}"
    );
    assert_eq!(change["data"]["status"], "menunggu_konfirmasi");
    let confirmed = api.confirm(call["id"].as_str().unwrap()).await;
    let mut kinds = BTreeSet::new();
    for _ in 0..3 {
        kinds.insert(next_event().await.0);
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["call".into(), "dispatch".into(), "unit".into()]),
        "{confirmed}"
    );

    // Within a minute (here: the 1-second export) the call is in semar.calls for SQL.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = hub
            .rows(&format!(
                "select status from semar.calls where id = '{}'",
                call["id"].as_str().unwrap()
            ))
            .await;
        if rows.first().is_some_and(|r| r["status"] == "ditugaskan") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call did not reach semar.calls: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_drives_calls_through_the_api_to_the_end() {
    let hub = Hub::start();
    let output = hub
        .cli_command(&[
            "semar",
            "simulate",
            "--calls",
            "6",
            "--rate",
            "20",
            "--time-scale",
            "20000",
            "--url",
            &hub.url,
        ])
        .env("SIMPUL_KEY", &hub.admin_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("calls: 6 handed over and back in service of 6"),
        "{stdout}"
    );
    let done = hub
        .rows("select count(*) as n from simpul.audit where action = 'semar.dispatch.event'")
        .await;
    assert_eq!(done[0]["n"], 48, "8 steps for each of 6 calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crew_that_gives_up_sends_the_call_back_to_the_head_of_the_queue_for_another_unit() {
    let hub = Hub::start();
    let api = Api::of(&hub, &hub.admin_key);
    for n in 3..=40 {
        api.set_unit_status(&format!("SEMAR-{n:02}"), "perawatan")
            .await;
    }
    let scene = centroid("32.14.01.1001");
    api.ping("SEMAR-01", (scene.0 + 0.01, scene.1)).await;
    api.ping("SEMAR-02", (scene.0 + 0.05, scene.1)).await;
    let mut calls = Vec::new();
    for n in 0..3 {
        let call = api
            .call(&json!({"channel": "phone", "caller_phone": format!("08123456706{n}"), "complaint": "sesak",
                          "kode_wilayah": "32.14.01.1001"}))
            .await;
        calls.push((
            call["id"].as_str().unwrap().to_string(),
            api.confirm(call["id"].as_str().unwrap()).await,
        ));
    }
    let (x, y, z) = (&calls[0], &calls[1], &calls[2]);
    assert_eq!(x.1["dispatch"]["unit"], "SEMAR-01");
    assert_eq!(y.1["dispatch"]["unit"], "SEMAR-02");
    assert_eq!(z.1["queue_position"], 1);
    // SEMAR-01's crew gives up on the way: X goes back to the head of the queue, and
    // SEMAR-01, free again, takes Z rather than the call it just gave up.
    let first = x.1["dispatch"]["id"].as_str().unwrap();
    assert_eq!(api.event(first, "en_route", None, None).await.0, 201);
    let (status, gave_up) = api.event(first, "cancelled", None, None).await;
    assert_eq!(
        (status, gave_up["call_status"].as_str()),
        (201, Some("dalam_antrean")),
        "{gave_up}"
    );
    let (_, z_now) = api.get(&format!("/semar/calls/{}", z.0)).await;
    assert_eq!(z_now["status"], "ditugaskan", "{z_now}");
    assert_eq!(z_now["dispatches"][0]["unit"], "SEMAR-01");
    let (_, fleet) = api.get("/semar/ambulances").await;
    assert_eq!(
        fleet["queue"],
        json!([{"call_id": x.0, "confirmed_at": x.1["confirmed_at"]}])
    );
    // SEMAR-02 finishes Y and takes X.
    finish(
        api.clone(),
        y.1["dispatch"]["id"].as_str().unwrap().to_string(),
    )
    .await
    .unwrap();
    let (_, x_now) = api.get(&format!("/semar/calls/{}", x.0)).await;
    assert_eq!(x_now["status"], "ditugaskan", "{x_now}");
    let units: Vec<(&str, &str)> = x_now["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["unit"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        units,
        vec![("SEMAR-01", "cancelled"), ("SEMAR-02", "assigned")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_postgresql_state_store_assignments_stay_single_and_the_queue_survives_a_restart() {
    let Ok(admin_url) = std::env::var("SIMPUL_TEST_POSTGRES_URL") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n*** SKIPPED semar on PostgreSQL: SIMPUL_TEST_POSTGRES_URL is not set. \
              Start PostgreSQL and set it (see README, Development) to run this test. ***\n",
        );
        return;
    };
    let state_url = crate::postgres_state::fresh_database(&admin_url);
    let mut hub = Hub::start_with_env(&[("SIMPUL_STATE_URL", state_url.as_str())]);
    let api = Api::of(&hub, &hub.admin_key);
    let mut ids = Vec::new();
    for n in 0..45 {
        let call = api
            .call(&json!({"channel": "phone", "caller_phone": format!("+62812111{n:05}"), "complaint": "uji",
                          "kode_wilayah": "32.14.03.2005"}))
            .await;
        ids.push(call["id"].as_str().unwrap().to_string());
    }
    let confirmed = futures::future::join_all(ids.iter().map(|id| {
        let api = api.clone();
        let id = id.clone();
        async move { api.confirm(&id).await }
    }))
    .await;
    let units: BTreeSet<&str> = confirmed
        .iter()
        .filter_map(|c| c["dispatch"]["unit"].as_str())
        .collect();
    assert_eq!(units.len(), 40, "40 units, each once");
    let waiting: Vec<&str> = confirmed
        .iter()
        .filter(|c| c["dispatch"].is_null())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting.len(), 5);
    assert!(hub.restart().is_none());
    let api = Api::of(&hub, &hub.admin_key);
    let (_, fleet) = api.get("/semar/ambulances").await;
    let queue: Vec<&str> = fleet["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        queue.len(),
        5,
        "the queue was rebuilt from PostgreSQL: {fleet}"
    );
    let first = confirmed.iter().find(|c| !c["dispatch"].is_null()).unwrap();
    finish(
        api.clone(),
        first["dispatch"]["id"].as_str().unwrap().to_string(),
    )
    .await
    .unwrap();
    let (_, head) = api.get(&format!("/semar/calls/{}", queue[0])).await;
    assert_eq!(
        head["status"], "ditugaskan",
        "the queue's head took the freed unit: {head}"
    );
    assert_eq!(head["dispatches"][0]["unit"], first["dispatch"]["unit"]);
    let (status, kpi) = api.get("/semar/kpi").await;
    assert_eq!(status, 200, "{kpi}");
    assert_eq!(kpi["calls"]["total"], 45);
    assert_eq!(kpi["response"]["responded"], 1);
}
