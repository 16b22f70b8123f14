//! The module's KPIs, as saved queries over the `complaints.*` datasets: the same SQL serves
//! `GET /api/v1/queries/complaints_kpi_*` and `GET /api/v1/complaints/kpi`.
//!
//! Definitions:
//! - within SLA: an event that settled a step whose deadline was the agency's (`pihak =
//!   agency`) is within SLA when it happened on or before the deadline date (WIB). The
//!   hub computes it with the working-day calendar when the step is taken;
//! - first response: the case's first step out of `received` / `registered`; close: the
//!   step into a closed state (for information requests, the PPID's decision); both in
//!   hours and in working days from the day of receipt, over the cases received in the
//!   period that reached them;
//! - backlog: open cases whose deadline is the agency's, by OPD (`TRIASE`: not routed yet),
//!   as of today;
//! - escalations: cases that reached mediation, the Regent, an objection or the Information
//!   Commission in the period;
//! - the "zero complaint" trend: complaints per month (WIB), category and kecamatan;
//! - the channel mix: cases per channel.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Map, Value, json};
use simpul_catalog::{QueryDefinition, SqlAccess};

use super::Complaints;
use crate::calendar::wib_date;

const TEXTS: [&str; 6] = [
    include_str!("queries/complaints_kpi_sla.toml"),
    include_str!("queries/complaints_kpi_waktu.toml"),
    include_str!("queries/complaints_kpi_backlog.toml"),
    include_str!("queries/complaints_kpi_eskalasi.toml"),
    include_str!("queries/complaints_kpi_tren.toml"),
    include_str!("queries/complaints_kpi_kanal.toml"),
];

/// The shipped KPI queries.
pub fn definitions() -> Result<Vec<QueryDefinition>, String> {
    crate::modules::query_definitions("complaints KPI", &TEXTS)
}

/// Saves the KPI queries that are not saved yet (an edited one is kept).
pub async fn register(complaints: &Complaints) -> Result<(), String> {
    crate::modules::register_queries(&complaints.catalog, "complaints", &definitions()?).await
}

fn round1(value: Option<&Value>) -> Value {
    match value.and_then(Value::as_f64) {
        Some(n) => json!((n * 10.0).round() / 10.0),
        None => Value::Null,
    }
}

/// Runs the KPI queries over `[from, to)` (RFC 3339) as `access` and puts their answers
/// together.
pub async fn compute(
    reads: &crate::read::ReadDoor,
    from: &str,
    to: &str,
    access: &SqlAccess,
) -> Result<Value, String> {
    let today = wib_date(Utc::now());
    let given: HashMap<String, String> = [
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("today", today.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let answers =
        crate::modules::run_definitions(reads, &access.client_id, &definitions()?, &given, access)
            .await?;
    let [sla, times, backlog, escalations, trend, channels]: [Vec<Map<String, Value>>; 6] = answers
        .try_into()
        .map_err(|_| "the KPI queries did not all answer".to_string())?;
    let times: Vec<Value> = times
        .into_iter()
        .map(|row| {
            json!({
                "kind": row.get("jenis_kasus"),
                "span": row.get("span"),
                "cases": row.get("n"),
                "median_hours": round1(row.get("median_hours")),
                "p90_hours": round1(row.get("p90_hours")),
                "median_working_days": round1(row.get("median_working_days")),
                "p90_working_days": round1(row.get("p90_working_days")),
            })
        })
        .collect();
    let mut reached: Map<String, Value> = [
        "mediation",
        "escalated_to_regent",
        "closed_by_regent",
        "objected",
        "commission",
    ]
    .into_iter()
    .map(|s| (s.to_string(), json!(0)))
    .collect();
    for row in &escalations {
        if let (Some(status), Some(cases)) = (
            row.get("status").and_then(Value::as_str),
            row.get("cases").and_then(Value::as_i64),
        ) {
            let slot = reached.entry(status.to_string()).or_insert(json!(0));
            *slot = json!(slot.as_i64().unwrap_or(0) + cases);
        }
    }
    let total: i64 = channels
        .iter()
        .filter_map(|r| r.get("cases").and_then(Value::as_i64))
        .sum();
    let channels: Vec<Value> = channels
        .into_iter()
        .map(|row| {
            let cases = row.get("cases").and_then(Value::as_i64).unwrap_or(0);
            json!({
                "kind": row.get("jenis_kasus"),
                "channel": row.get("kanal"),
                "cases": cases,
                "share_pct": if total > 0 { json!(((cases as f64) * 1000.0 / total as f64).round() / 10.0) } else { Value::Null },
            })
        })
        .collect();
    Ok(json!({
        "from": from,
        "to": to,
        "today": today.to_string(),
        "within_sla": sla.into_iter().map(|row| json!({
            "kind": row.get("jenis_kasus"),
            "step": row.get("langkah"),
            "due": row.get("due"),
            "within_sla": row.get("within_sla"),
            "missed": row.get("missed"),
            "within_sla_pct": round1(row.get("within_sla_pct")),
        })).collect::<Vec<_>>(),
        "times": times,
        "backlog": backlog.into_iter().map(|row| json!({
            "opd": row.get("opd"),
            "kind": row.get("jenis_kasus"),
            "open": row.get("open"),
            "overdue": row.get("overdue"),
            "oldest_received": row.get("oldest_received"),
        })).collect::<Vec<_>>(),
        "escalations": reached,
        "trend": trend.into_iter().map(|row| json!({
            "month": row.get("bulan"),
            "category": row.get("kategori"),
            "kecamatan": row.get("kecamatan"),
            "nama_kecamatan": row.get("nama_kecamatan"),
            "complaints": row.get("complaints"),
        })).collect::<Vec<_>>(),
        "channels": channels,
    }))
}
