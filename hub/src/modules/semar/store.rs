//! SEMAR's rows in the state store, and the statements that change them. Every change marks
//! its row `exported = 0`, for the exporter.

use chrono::{DateTime, Utc};
use serde::Serialize;
use simpul_catalog::{CatalogError, StateStore, parse_timestamp, timestamp};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::lifecycle::{CallStatus, STEPS, Step};
use crate::geo::Point;

/// One call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    /// Call id (UUIDv7).
    pub id: String,
    /// When the call was received.
    pub received_at: String,
    /// `app`, `phone` or `sms`.
    pub channel: String,
    /// The caller's NIK.
    pub nik: Option<String>,
    /// The caller's name.
    pub caller_name: Option<String>,
    /// The caller's phone, E.164.
    pub caller_phone: Option<String>,
    /// The complaint.
    pub complaint: String,
    /// The desa of the location.
    pub kode_wilayah: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// `gps`, `desa_centroid` or `unknown` (an SMS without a place; the operator sets it).
    pub location_source: String,
    /// The call's state.
    pub status: String,
    /// The API client that created it.
    pub created_by: String,
    /// When an operator confirmed it.
    pub confirmed_at: Option<String>,
    /// Who confirmed it.
    pub confirmed_by: Option<String>,
    /// When it closed.
    pub closed_at: Option<String>,
    /// Why it closed.
    pub close_reason: Option<String>,
}

impl CallRow {
    /// The call's location.
    pub fn point(&self) -> Point {
        Point {
            lat: self.lat,
            lng: self.lng,
        }
    }

    /// The call's state.
    pub fn status(&self) -> CallStatus {
        CallStatus::parse(&self.status).unwrap_or(CallStatus::Dibatalkan)
    }
}

pub(super) const CALL_COLUMNS: &str = "id, received_at, channel, nik, caller_name, caller_phone, complaint, \
     kode_wilayah, lat, lng, location_source, status, created_by, confirmed_at, confirmed_by, closed_at, close_reason";

pub(super) fn call_from_row(row: &AnyRow) -> Result<CallRow, sqlx::Error> {
    Ok(CallRow {
        id: row.try_get("id")?,
        received_at: row.try_get("received_at")?,
        channel: row.try_get("channel")?,
        nik: row.try_get("nik")?,
        caller_name: row.try_get("caller_name")?,
        caller_phone: row.try_get("caller_phone")?,
        complaint: row.try_get("complaint")?,
        kode_wilayah: row.try_get("kode_wilayah")?,
        lat: row.try_get("lat")?,
        lng: row.try_get("lng")?,
        location_source: row.try_get("location_source")?,
        status: row.try_get("status")?,
        created_by: row.try_get("created_by")?,
        confirmed_at: row.try_get("confirmed_at")?,
        confirmed_by: row.try_get("confirmed_by")?,
        closed_at: row.try_get("closed_at")?,
        close_reason: row.try_get("close_reason")?,
    })
}

/// One dispatch with every step's time.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchRow {
    /// Dispatch id.
    pub id: String,
    /// The call served.
    pub call_id: String,
    /// The unit sent.
    pub unit_kode: String,
    /// When the hub assigned the unit.
    pub assigned_at: String,
    /// The travel estimate at assignment, seconds.
    pub estimate_secs: f64,
    /// Straight-line distance at assignment, metres.
    pub distance_m: f64,
    /// `straight_line` or `osrm`.
    pub estimate_source: String,
    /// The latest step.
    pub status: String,
    /// Whether the unit is still on this job.
    pub open: bool,
    /// The destination facility.
    pub facility: Option<String>,
    /// The time of each crew step, by name.
    pub times: Vec<(Step, Option<String>)>,
}

impl DispatchRow {
    /// The latest step.
    pub fn step(&self) -> Step {
        Step::parse(&self.status).unwrap_or(Step::Cancelled)
    }

    /// The time of `step`.
    pub fn time_of(&self, step: Step) -> Option<&str> {
        if step == Step::Assigned {
            return Some(&self.assigned_at);
        }
        self.times
            .iter()
            .find(|(s, _)| *s == step)
            .and_then(|(_, t)| t.as_deref())
    }

    /// The newest time recorded on the dispatch.
    pub fn latest_time(&self) -> Option<DateTime<Utc>> {
        std::iter::once(Some(self.assigned_at.as_str()))
            .chain(self.times.iter().map(|(_, t)| t.as_deref()))
            .flatten()
            .filter_map(parse_timestamp)
            .max()
    }

    /// The API form: times as an object keyed by step.
    pub fn to_json(&self) -> serde_json::Value {
        let mut times = serde_json::Map::new();
        times.insert("assigned".into(), self.assigned_at.clone().into());
        for (step, at) in &self.times {
            times.insert(step.name().into(), at.clone().into());
        }
        serde_json::json!({
            "id": self.id,
            "call_id": self.call_id,
            "unit": self.unit_kode,
            "status": self.status,
            "open": self.open,
            "facility": self.facility,
            "estimate": {
                "seconds": self.estimate_secs.round(),
                "distance_m": self.distance_m.round(),
                "source": self.estimate_source,
            },
            "times": times,
            "allowed_next": self.step().next().iter().map(|s| s.name()).collect::<Vec<_>>(),
        })
    }
}

/// The crew steps, which each have a column on `semar_dispatches`.
pub(super) fn crew_steps() -> impl Iterator<Item = Step> {
    STEPS.into_iter().filter(|s| *s != Step::Assigned)
}

pub(super) fn dispatch_columns() -> String {
    let mut columns = String::from(
        "id, call_id, unit_kode, assigned_at, estimate_secs, distance_m, estimate_source, status, open, facility",
    );
    for step in crew_steps() {
        columns.push_str(", ");
        columns.push_str(step.name());
    }
    columns
}

pub(super) fn dispatch_from_row(row: &AnyRow) -> Result<DispatchRow, sqlx::Error> {
    let mut times = Vec::new();
    for step in crew_steps() {
        times.push((step, row.try_get::<Option<String>, _>(step.name())?));
    }
    Ok(DispatchRow {
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        unit_kode: row.try_get("unit_kode")?,
        assigned_at: row.try_get("assigned_at")?,
        estimate_secs: row.try_get("estimate_secs")?,
        distance_m: row.try_get("distance_m")?,
        estimate_source: row.try_get("estimate_source")?,
        status: row.try_get("status")?,
        open: row.try_get::<i64, _>("open")? == 1,
        facility: row.try_get("facility")?,
        times,
    })
}

/// One unit as stored.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRow {
    /// Unit code.
    pub kode: String,
    /// Licence plate.
    pub nomor_polisi: String,
    /// `transport`, `gawat_darurat`, `icu`, `jenazah`.
    pub jenis: String,
    /// Base facility code.
    pub pangkalan_faskes: String,
    /// Whether the crew has the app.
    pub di_aplikasi: bool,
    /// `tersedia`, `bertugas`, `perawatan`, `tidak_aktif`.
    pub status: String,
    /// Latitude of the last position.
    pub lat: f64,
    /// Longitude of the last position.
    pub lng: f64,
    /// When the last ping was taken.
    pub position_at: Option<String>,
}

pub(super) const UNIT_COLUMNS: &str =
    "kode, nomor_polisi, jenis, pangkalan_faskes, di_aplikasi, status, lat, lng, position_at";

pub(super) fn unit_from_row(row: &AnyRow) -> Result<UnitRow, sqlx::Error> {
    Ok(UnitRow {
        kode: row.try_get("kode")?,
        nomor_polisi: row.try_get("nomor_polisi")?,
        jenis: row.try_get("jenis")?,
        pangkalan_faskes: row.try_get("pangkalan_faskes")?,
        di_aplikasi: row.try_get::<i64, _>("di_aplikasi")? == 1,
        status: row.try_get("status")?,
        lat: row.try_get("lat")?,
        lng: row.try_get("lng")?,
        position_at: row.try_get("position_at")?,
    })
}

/// Reads one call.
pub(super) async fn call(state: &StateStore, id: &str) -> Result<Option<CallRow>, CatalogError> {
    let row = sqlx::query(&format!(
        "SELECT {CALL_COLUMNS} FROM semar_calls WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(state.pool())
    .await?;
    Ok(row.as_ref().map(call_from_row).transpose()?)
}

/// Reads one dispatch.
pub(super) async fn dispatch(
    state: &StateStore,
    id: &str,
) -> Result<Option<DispatchRow>, CatalogError> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM semar_dispatches WHERE id = $1",
        dispatch_columns()
    ))
    .bind(id)
    .fetch_optional(state.pool())
    .await?;
    Ok(row.as_ref().map(dispatch_from_row).transpose()?)
}

/// The dispatches of one call, oldest first.
pub(super) async fn dispatches_of_call(
    state: &StateStore,
    call_id: &str,
) -> Result<Vec<DispatchRow>, CatalogError> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM semar_dispatches WHERE call_id = $1 ORDER BY assigned_at, id",
        dispatch_columns()
    ))
    .bind(call_id)
    .fetch_all(state.pool())
    .await?;
    Ok(rows
        .iter()
        .map(dispatch_from_row)
        .collect::<Result<_, _>>()?)
}

/// Every unit.
pub(super) async fn units(state: &StateStore) -> Result<Vec<UnitRow>, CatalogError> {
    let rows = sqlx::query(&format!(
        "SELECT {UNIT_COLUMNS} FROM semar_units ORDER BY kode"
    ))
    .fetch_all(state.pool())
    .await?;
    Ok(rows.iter().map(unit_from_row).collect::<Result<_, _>>()?)
}

/// What one assignment writes.
pub(super) struct NewDispatch<'a> {
    pub id: &'a str,
    pub call_id: &'a str,
    pub unit: &'a str,
    pub at: DateTime<Utc>,
    pub estimate_secs: f64,
    pub distance_m: f64,
    pub estimate_source: &'a str,
}

/// What an assignment found.
pub(super) enum Assigned {
    /// Written; commit.
    Done,
    /// The unit is no longer free (another process took it); roll back.
    UnitTaken,
    /// The call is no longer waiting; roll back.
    CallChanged,
}

/// Inserts the dispatch, takes the unit if it is still free, and moves the call to
/// `ditugaskan` if it is still waiting.
pub(super) async fn assign(
    tx: &mut Transaction<'_, Any>,
    new: &NewDispatch<'_>,
) -> Result<Assigned, CatalogError> {
    let at = timestamp(new.at);
    let unit = sqlx::query(
        "UPDATE semar_units SET status = 'bertugas', updated_at = $2, exported = 0 \
         WHERE kode = $1 AND status = 'tersedia'",
    )
    .bind(new.unit)
    .bind(&at)
    .execute(&mut **tx)
    .await?;
    if unit.rows_affected() != 1 {
        return Ok(Assigned::UnitTaken);
    }
    let call = sqlx::query(
        "UPDATE semar_calls SET status = 'ditugaskan', updated_at = $2, exported = 0 \
         WHERE id = $1 AND status IN ('dikonfirmasi', 'dalam_antrean')",
    )
    .bind(new.call_id)
    .bind(&at)
    .execute(&mut **tx)
    .await?;
    if call.rows_affected() != 1 {
        return Ok(Assigned::CallChanged);
    }
    let inserted = sqlx::query(
        "INSERT INTO semar_dispatches (id, call_id, unit_kode, assigned_at, estimate_secs, distance_m, \
         estimate_source, status, open, updated_at, exported) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'assigned', 1, $4, 0)",
    )
    .bind(new.id)
    .bind(new.call_id)
    .bind(new.unit)
    .bind(&at)
    .bind(new.estimate_secs)
    .bind(new.distance_m)
    .bind(new.estimate_source)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(Assigned::Done),
        // The partial unique indexes: an open dispatch of this call or unit exists.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Assigned::UnitTaken),
        Err(e) => Err(e.into()),
    }
}

/// Records one crew step: its event row and the dispatch's new state, guarded on the step it
/// follows. `Ok(false)`: the dispatch moved meanwhile; roll back.
pub(super) async fn record_step(
    tx: &mut Transaction<'_, Any>,
    dispatch: &DispatchRow,
    step: Step,
    at: DateTime<Utc>,
    facility: Option<&str>,
    point: Option<Point>,
    actor: &str,
) -> Result<bool, CatalogError> {
    let now = timestamp(Utc::now());
    let inserted = sqlx::query(
        "INSERT INTO semar_events (id, dispatch_id, call_id, unit_kode, event, at, received_at, facility, lat, lng, actor, exported) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&dispatch.id)
    .bind(&dispatch.call_id)
    .bind(&dispatch.unit_kode)
    .bind(step.name())
    .bind(timestamp(at))
    .bind(&now)
    .bind(facility)
    .bind(point.map(|p| p.lat))
    .bind(point.map(|p| p.lng))
    .bind(actor)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    // The column name comes from the closed list of steps, never from the request.
    let updated = sqlx::query(&format!(
        "UPDATE semar_dispatches SET status = $2, {column} = $3, facility = $4, open = $5, updated_at = $6, exported = 0 \
         WHERE id = $1 AND status = $7",
        column = step.name()
    ))
    .bind(&dispatch.id)
    .bind(step.name())
    .bind(timestamp(at))
    .bind(facility)
    .bind(i64::from(!step.frees_unit()))
    .bind(&now)
    .bind(&dispatch.status)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Ends a dispatch the operator cancelled with its call.
pub(super) async fn close_dispatch_cancelled(
    tx: &mut Transaction<'_, Any>,
    dispatch: &DispatchRow,
    at: DateTime<Utc>,
    actor: &str,
    point: Option<Point>,
) -> Result<(), CatalogError> {
    if !record_step(
        tx,
        dispatch,
        Step::Cancelled,
        at,
        dispatch.facility.as_deref(),
        point,
        actor,
    )
    .await?
    {
        return Err(CatalogError::Conflict(format!(
            "dispatch {} changed while it was cancelled; retry",
            dispatch.id
        )));
    }
    free_unit(tx, &dispatch.unit_kode, point, at).await
}

/// Makes a unit free again, where it is now.
pub(super) async fn free_unit(
    tx: &mut Transaction<'_, Any>,
    kode: &str,
    point: Option<Point>,
    at: DateTime<Utc>,
) -> Result<(), CatalogError> {
    sqlx::query(
        "UPDATE semar_units SET status = CASE WHEN status = 'bertugas' THEN 'tersedia' ELSE status END, \
         lat = COALESCE($2, lat), lng = COALESCE($3, lng), updated_at = $4, exported = 0 WHERE kode = $1",
    )
    .bind(kode)
    .bind(point.map(|p| p.lat))
    .bind(point.map(|p| p.lng))
    .bind(timestamp(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets a call's status (and, for final states, when and why it closed).
pub(super) async fn set_call_status(
    tx: &mut Transaction<'_, Any>,
    call_id: &str,
    status: CallStatus,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<(), CatalogError> {
    let closed = status.is_final().then(|| timestamp(at));
    sqlx::query(
        "UPDATE semar_calls SET status = $2, closed_at = COALESCE($3, closed_at), \
         close_reason = COALESCE($4, close_reason), updated_at = $5, exported = 0 WHERE id = $1",
    )
    .bind(call_id)
    .bind(status.name())
    .bind(closed)
    .bind(reason)
    .bind(timestamp(Utc::now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
