//! `simpul semar simulate`: realistic SEMAR traffic through a running hub's real API, for
//! demos and benchmarks. Each call is created (app, phone or SMS channel, at a random place
//! inside a random desa), confirmed, and its crew sends every step with GPS pings en route,
//! on a clock `--time-scale` times faster than real life.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::Config;
use crate::geo::{Boundaries, Point};

#[derive(Debug, clap::Subcommand)]
pub(super) enum SemarCommand {
    /// Drive calls through the API: create, confirm, and every crew step to back in service.
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct SimulateArgs {
    /// How many calls.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// The hub's base URL; http://<http.listen> when absent.
    #[arg(long)]
    url: Option<String>,
    /// An API key that may do SEMAR's operator, crew and app work (an admin key does); or
    /// SIMPUL_KEY.
    #[arg(long, env = "SIMPUL_KEY", hide_env_values = true)]
    key: String,
    /// New calls per real second.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Simulated seconds per real second (60: a 30-minute job takes 30 s).
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
}

pub(super) async fn run(config: Config, command: SemarCommand) -> Result<(), String> {
    match command {
        SemarCommand::Simulate(args) => simulate(config, args).await,
    }
}

/// Latencies by endpoint, milliseconds.
#[derive(Default)]
struct Latencies(std::collections::BTreeMap<&'static str, Vec<f64>>);

struct Sim {
    http: reqwest::Client,
    base: String,
    key: String,
    scale: f64,
    latencies: Mutex<Latencies>,
    errors: Mutex<Vec<String>>,
}

impl Sim {
    async fn call(
        &self,
        name: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idempotency: Option<String>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        let started = Instant::now();
        let response = request.send().await.map_err(|e| format!("{name}: {e}"))?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        self.latencies
            .lock()
            .await
            .0
            .entry(name)
            .or_default()
            .push(started.elapsed().as_secs_f64() * 1000.0);
        if status >= 400 {
            let message = format!("{name} {path}: {status} {}", value["detail"]);
            self.errors.lock().await.push(message.clone());
            return Err(message);
        }
        Ok((status, value))
    }

    async fn sleep_sim(&self, simulated_secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(
            (simulated_secs / self.scale).max(0.0),
        ))
        .await;
    }
}

/// A random point inside a random desa.
fn random_place(rng: &mut impl Rng) -> (Point, String) {
    let boundaries = Boundaries::purwakarta();
    let all = boundaries.all();
    loop {
        let desa = &all[rng.random_range(0..all.len())];
        let point = Point {
            lat: desa.centroid.lat + rng.random_range(-0.006..0.006),
            lng: desa.centroid.lng + rng.random_range(-0.006..0.006),
        };
        if boundaries.locate(point).is_some() {
            return (point, desa.kode.clone());
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn simulate(config: Config, args: SimulateArgs) -> Result<(), String> {
    if args.calls == 0 || args.rate <= 0.0 || args.time_scale <= 0.0 {
        return Err("--calls, --rate and --time-scale must be above 0".into());
    }
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}", config.http.listen))
        .trim_end_matches('/')
        .to_string();
    let sim = Arc::new(Sim {
        http: reqwest::Client::new(),
        base,
        key: args.key,
        scale: args.time_scale,
        latencies: Mutex::new(Latencies::default()),
        errors: Mutex::new(Vec::new()),
    });
    let residents = register_residents(&sim, (args.calls / 10).max(3)).await?;
    let started = Instant::now();
    let mut jobs = Vec::new();
    for n in 0..args.calls {
        let sim = sim.clone();
        let nik = residents[n % residents.len()].clone();
        jobs.push(tokio::spawn(async move { one_call(&sim, n, &nik).await }));
        tokio::time::sleep(Duration::from_secs_f64(1.0 / args.rate)).await;
    }
    let (mut done, mut queued) = (0, 0);
    for job in jobs {
        if let Ok(Ok(was_queued)) = job.await {
            done += 1;
            queued += usize::from(was_queued);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "calls: {} handed over and back in service of {} ({} waited in the queue) in {elapsed:.1} s",
        done, args.calls, queued
    );
    let latencies = sim.latencies.lock().await;
    println!(
        "{:<12} {:>7} {:>9} {:>9}",
        "request", "count", "p50 ms", "p99 ms"
    );
    for (name, values) in &latencies.0 {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{name:<12} {:>7} {:>9.1} {:>9.1}",
            sorted.len(),
            percentile(&sorted, 0.50),
            percentile(&sorted, 0.99)
        );
    }
    drop(latencies);
    let errors = sim.errors.lock().await.clone();
    if !errors.is_empty() {
        println!("errors: {}", errors.len());
        for error in errors.iter().take(10) {
            println!("  {error}");
        }
    }
    let (_, kpi) = sim
        .call(
            "kpi",
            reqwest::Method::GET,
            "/semar/kpi?from=2000-01-01",
            None,
            None,
        )
        .await?;
    println!(
        "kpi: p90 response {} s, {}% within {} s, {} calls",
        kpi["response"]["p90_secs"],
        kpi["response"]["within_target_pct"],
        kpi["target_secs"],
        kpi["calls"]["total"]
    );
    if done < args.calls {
        return Err(format!(
            "{} of {} calls did not finish",
            args.calls - done,
            args.calls
        ));
    }
    Ok(())
}

/// Registers simulated residents (valid-format NIKs, labelled as simulated); already
/// registered ones are reused.
async fn register_residents(sim: &Sim, count: usize) -> Result<Vec<String>, String> {
    let mut niks = Vec::new();
    let boundaries = Boundaries::purwakarta();
    for i in 0..count {
        let desa = &boundaries.all()[i * 7 % boundaries.all().len()];
        let nik = format!(
            "3214{}{:02}0{}9{}{:04}",
            &desa.kode[6..8],
            1 + i % 28,
            1 + i % 9,
            i % 10,
            9000 + i % 1000
        );
        let body = json!({
            "nik": nik, "nama": format!("Warga Simulasi {}", i + 1), "telepon": format!("+62857{:08}", i + 1),
            "alamat": format!("Alamat simulasi {}", i + 1), "kode_wilayah": desa.kode,
        });
        match sim
            .call(
                "register",
                reqwest::Method::POST,
                "/semar/residents",
                Some(body),
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.contains("409") => {
                sim.errors.lock().await.pop();
            }
            Err(e) => return Err(e),
        }
        niks.push(nik);
    }
    Ok(niks)
}

/// One call from creation to back in service; `Ok(true)` when it waited for a unit.
async fn one_call(sim: &Sim, n: usize, nik: &str) -> Result<bool, String> {
    let (point, _, channel) = {
        let mut rng = rand::rng();
        let (point, kode) = random_place(&mut rng);
        let channel = ["app", "app", "app", "phone", "sms"][rng.random_range(0..5)];
        (point, kode, channel)
    };
    let mut body = json!({"channel": channel, "complaint": "simulasi: sesak napas", "lat": point.lat, "lng": point.lng});
    if channel == "app" {
        body["nik"] = json!(nik);
    } else {
        body["caller_phone"] = json!(format!("+62858{:08}", n + 1));
    }
    let (_, call) = sim
        .call(
            "create",
            reqwest::Method::POST,
            "/semar/calls",
            Some(body),
            Some(uuid::Uuid::now_v7().to_string()),
        )
        .await?;
    let id = call["id"].as_str().unwrap_or_default().to_string();
    sim.sleep_sim(60.0).await;
    let (_, confirmed) = sim
        .call(
            "confirm",
            reqwest::Method::POST,
            &format!("/semar/calls/{id}/confirm"),
            None,
            None,
        )
        .await?;
    let queued = confirmed["dispatch"].is_null();
    let mut dispatch = confirmed["dispatch"].clone();
    while dispatch.is_null() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, current) = sim
            .call(
                "poll",
                reqwest::Method::GET,
                &format!("/semar/calls/{id}"),
                None,
                None,
            )
            .await?;
        dispatch = current["dispatches"]
            .as_array()
            .and_then(|d| d.iter().rev().find(|d| d["open"] == true).cloned())
            .unwrap_or(Value::Null);
    }
    let dispatch_id = dispatch["id"].as_str().unwrap_or_default().to_string();
    let unit = dispatch["unit"].as_str().unwrap_or_default().to_string();
    let travel = dispatch["estimate"]["seconds"].as_f64().unwrap_or(300.0);
    let (_, hospitals) = sim
        .call(
            "facilities",
            reqwest::Method::GET,
            &format!(
                "/semar/facilities/nearest?lat={}&lng={}&jenis=rumah_sakit&limit=1",
                point.lat, point.lng
            ),
            None,
            None,
        )
        .await?;
    let facility = hospitals["facilities"][0]["kode"]
        .as_str()
        .map(str::to_string);
    let step = |event: &'static str, facility: Option<String>| {
        let dispatch_id = dispatch_id.clone();
        async move {
            let mut body = json!({"event": event});
            if let Some(f) = facility {
                body["facility"] = json!(f);
            }
            sim.call(
                "event",
                reqwest::Method::POST,
                &format!("/semar/dispatches/{dispatch_id}/events"),
                Some(body),
                None,
            )
            .await
        }
    };
    sim.sleep_sim(20.0).await;
    step("notified", None).await?;
    sim.sleep_sim(60.0).await;
    step("en_route", None).await?;
    // Pings every 10 simulated seconds on the way.
    let pings = (travel / 10.0).ceil().max(1.0) as usize;
    for i in 0..pings {
        let body = json!({"lat": point.lat + 0.0001 * (pings - i) as f64, "lng": point.lng});
        sim.call(
            "ping",
            reqwest::Method::POST,
            &format!("/semar/ambulances/{unit}/location"),
            Some(body),
            None,
        )
        .await?;
        sim.sleep_sim(10.0).await;
    }
    step("on_scene", None).await?;
    sim.sleep_sim(60.0).await;
    step("at_patient", None).await?;
    sim.sleep_sim(600.0).await;
    step("left_scene", facility.clone()).await?;
    sim.sleep_sim(900.0).await;
    step("at_facility", None).await?;
    sim.sleep_sim(600.0).await;
    step("handed_over", None).await?;
    sim.sleep_sim(300.0).await;
    step("back_in_service", None).await?;
    Ok(queued)
}
