//! SEMAR's KPIs, as saved queries over the `semar.*` datasets: the same SQL serves
//! `GET /api/v1/queries/semar_kpi_*` and `GET /api/v1/semar/kpi`.
//!
//! Definitions (seconds, per call or per dispatch, where both times exist):
//! - response: the call received → the first crew at the patient (`at_patient`). The target
//!   is `semar.response_target_secs` (10 minutes);
//! - call processing: received → the first unit assigned;
//! - turnout: assigned → en route; travel: en route → on scene; on scene: on scene → left
//!   scene; transport: left scene → at facility; handover: at facility → handed over;
//! - utilisation: the units' busy time (assigned → back in service or cancelled, clipped to
//!   the period) ÷ (units in service × the period).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use simpul_catalog::{QueryDefinition, SqlAccess};

use super::Semar;

const RESPONSE_TOML: &str = include_str!("queries/semar_kpi_respons.toml");
const CALLS_TOML: &str = include_str!("queries/semar_kpi_panggilan.toml");
const UNITS_TOML: &str = include_str!("queries/semar_kpi_unit.toml");

/// The shipped KPI queries.
pub fn definitions() -> Result<Vec<QueryDefinition>, String> {
    crate::modules::query_definitions("SEMAR KPI", &[RESPONSE_TOML, CALLS_TOML, UNITS_TOML])
}

/// Saves the KPI queries that are not saved yet (an edited one is kept).
pub async fn register(semar: &Semar) -> Result<(), String> {
    crate::modules::register_queries(&semar.catalog, "semar", &definitions()?).await
}

/// The period and area of a KPI request.
#[derive(Debug, Clone)]
pub struct Period {
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
    /// A kecamatan code (`32.14.01`), or empty for the whole regency.
    pub kecamatan: String,
}

/// Runs the three KPI queries as `access` and puts their answers together.
pub async fn compute(semar: &Semar, period: &Period, access: &SqlAccess) -> Result<Value, String> {
    let given: HashMap<String, String> = [
        ("from", period.from.clone()),
        ("to", period.to.clone()),
        ("kecamatan", period.kecamatan.clone()),
        ("target", semar.config.response_target_secs.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let answers = crate::modules::run_definitions(
        &semar.reads,
        &access.client_id,
        &definitions()?,
        &given,
        access,
    )
    .await?;
    let [spans, calls, units]: [Vec<Map<String, Value>>; 3] = answers
        .try_into()
        .map_err(|_| "the KPI queries did not all answer".to_string())?;
    Ok(assemble(
        semar.config.response_target_secs,
        period,
        &spans,
        &calls,
        &units,
    ))
}

fn number(row: &Map<String, Value>, key: &str) -> Value {
    match row.get(key).and_then(Value::as_f64) {
        Some(n) => json!((n * 10.0).round() / 10.0),
        None => Value::Null,
    }
}

fn assemble(
    target: u64,
    period: &Period,
    spans: &[Map<String, Value>],
    calls: &[Map<String, Value>],
    units: &[Map<String, Value>],
) -> Value {
    let mut intervals = Map::new();
    let mut response = json!({"responded": 0, "p90_secs": null, "mean_secs": null, "within_target": 0, "within_target_pct": null});
    for row in spans {
        let Some(name) = row.get("span").and_then(Value::as_str) else {
            continue;
        };
        let count = row.get("n").and_then(Value::as_i64).unwrap_or(0);
        if name == "response" {
            let within = row
                .get("within_target")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            response = json!({
                "responded": count,
                "p90_secs": number(row, "p90_secs"),
                "mean_secs": number(row, "mean_secs"),
                "within_target": within,
                "within_target_pct": if count > 0 { json!(((within as f64) * 1000.0 / count as f64).round() / 10.0) } else { Value::Null },
            });
        } else {
            intervals.insert(
                name.to_string(),
                json!({"count": count, "mean_secs": number(row, "mean_secs"), "p90_secs": number(row, "p90_secs")}),
            );
        }
    }
    let mut total = 0i64;
    let mut by_channel: BTreeMap<String, i64> =
        ["app", "phone", "sms"].map(|c| (c.to_string(), 0)).into();
    let mut by_area: BTreeMap<String, i64> =
        ["desa", "kelurahan"].map(|c| (c.to_string(), 0)).into();
    let mut by_kecamatan: BTreeMap<String, (String, i64, i64)> = BTreeMap::new();
    for row in calls {
        let count = row.get("calls").and_then(Value::as_i64).unwrap_or(0);
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        total += count;
        *by_channel.entry(text("kanal")).or_default() += count;
        *by_area.entry(text("jenis_wilayah")).or_default() += count;
        let entry = by_kecamatan
            .entry(text("kecamatan"))
            .or_insert_with(|| (text("nama_kecamatan"), 0, 0));
        entry.1 += count;
        entry.2 += row.get("selesai").and_then(Value::as_i64).unwrap_or(0);
    }
    let units = units.first().cloned().unwrap_or_default();
    let int = |k: &str| units.get(k).and_then(Value::as_i64).unwrap_or(0);
    let in_service = int("in_service");
    let availability = if in_service > 0 {
        json!(((int("available") as f64) * 1000.0 / in_service as f64).round() / 10.0)
    } else {
        Value::Null
    };
    let utilisation = units
        .get("utilisation")
        .and_then(Value::as_f64)
        .map_or(Value::Null, |u| json!((u * 10_000.0).round() / 100.0));
    json!({
        "from": period.from,
        "to": period.to,
        "kecamatan": if period.kecamatan.is_empty() { Value::Null } else { json!(period.kecamatan) },
        "target_secs": target,
        "response": response,
        "intervals": intervals,
        "calls": {
            "total": total,
            "by_channel": by_channel,
            "by_area_type": by_area,
            "by_kecamatan": by_kecamatan.into_iter().map(|(kode, (nama, calls, done))| json!({
                "kode": kode, "nama": nama, "calls": calls, "selesai": done,
            })).collect::<Vec<_>>(),
        },
        "units": {
            "total": int("total"),
            "in_service": in_service,
            "available": int("available"),
            "busy": int("busy"),
            "maintenance": int("maintenance"),
            "availability_pct": availability,
            "busy_secs": number(&units, "busy_secs"),
            "utilisation_pct": utilisation,
        },
    })
}
