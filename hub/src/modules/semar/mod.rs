//! SEMAR (Safety Emergency Medical Ambulance Rescue): calls, the dispatcher, the crews'
//! timestamps, facilities, Drupadi, the SMS fallback, the operator's live view and the KPIs.
//!
//! It is built only on the canonical layer: its records live in the state store, every
//! record it creates passes the canonical schema, every action is audited, and the exporter
//! lands its records in the `semar.*` datasets, where analysts query them.
//!
//! The dispatcher's invariant: one decision at a time (the fleet lock), each written in one
//! transaction guarded in the database too (a unit is taken only while `tersedia`, a call
//! and a unit have at most one open dispatch), before anyone is answered. The in-memory
//! fleet and queue are rebuilt from the state store at start.

pub(crate) mod api;
mod export;
mod facilities;
mod kpi;
mod lifecycle;
mod module;
mod names;
mod seed;
mod sms;
mod store;
mod travel;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use simpul_catalog::{Catalog, CatalogError, parse_timestamp, timestamp};
use tokio::sync::{Mutex, broadcast};

use crate::api::ApiError;
use crate::config::SemarConfig;
use crate::geo::Point;

pub use lifecycle::{CallStatus, Step};
pub(crate) use module::REGISTRATION;
use store::{CallRow, DispatchRow, NewDispatch};
use travel::{Estimate, Travel};

/// The module's state, shared by its handlers and background work.
pub struct Semar {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: SemarConfig,
    /// The read door the module's queries go through.
    pub(crate) reads: crate::read::ReadDoor,
    fleet: Mutex<Fleet>,
    positions: StdMutex<HashMap<String, Position>>,
    pub(crate) live: broadcast::Sender<Arc<LiveEvent>>,
    pub(crate) travel: Travel,
    pub(crate) sms: sms::Outbound,
    pub(crate) facilities: facilities::Index,
    export_lock: Mutex<()>,
}

/// A change the operator console sees on `GET /stream`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveEvent {
    /// `call`, `dispatch`, `unit` or `location`.
    pub kind: &'static str,
    /// The id of the call, dispatch or unit.
    pub id: String,
    /// The new state.
    pub data: Value,
}

#[derive(Debug, Clone)]
struct UnitState {
    status: String,
    dispatch: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    point: Point,
    at: Option<DateTime<Utc>>,
    dirty: bool,
}

#[derive(Debug, Clone)]
struct Queued {
    confirmed_at: String,
    call_id: String,
}

/// The units and the waiting calls, as the dispatcher sees them.
#[derive(Debug, Default)]
struct Fleet {
    units: BTreeMap<String, UnitState>,
    /// By confirmation time, then id.
    queue: Vec<Queued>,
}

impl Fleet {
    fn enqueue(&mut self, entry: Queued) {
        if self.queue.iter().any(|q| q.call_id == entry.call_id) {
            return;
        }
        let at = self.queue.partition_point(|q| {
            (&q.confirmed_at, &q.call_id) < (&entry.confirmed_at, &entry.call_id)
        });
        self.queue.insert(at, entry);
    }

    fn free_units(&self) -> impl Iterator<Item = &String> {
        self.units
            .iter()
            .filter(|(_, u)| u.status == "tersedia" && u.dispatch.is_none())
            .map(|(k, _)| k)
    }
}

/// Where a confirmed call went.
#[derive(Debug)]
pub enum Placement {
    /// A unit is on it.
    Assigned(Box<DispatchRow>),
    /// It waits, at this place in the queue (1 = next).
    Queued(usize),
    /// The call changed meanwhile (another process); nothing was written.
    Changed,
}

/// What a crew event did.
#[derive(Debug)]
pub struct EventOutcome {
    /// The dispatch after the event.
    pub dispatch: DispatchRow,
    /// The call after the event.
    pub call: CallRow,
    /// The same event was recorded before; nothing changed.
    pub replayed: bool,
}

fn db(error: sqlx::Error) -> ApiError {
    ApiError::from(CatalogError::from(error))
}

impl Semar {
    /// Loads the fleet, the queue and the facilities, and makes the `semar.*` datasets.
    pub async fn open(
        catalog: Arc<Catalog>,
        config: SemarConfig,
        reads: crate::read::ReadDoor,
    ) -> Result<Arc<Self>, CatalogError> {
        let (live, _) = broadcast::channel(4096);
        let semar = Arc::new(Self {
            travel: Travel::new(&config),
            sms: sms::Outbound::new(&config),
            facilities: facilities::Index::default(),
            catalog,
            config,
            reads,
            fleet: Mutex::new(Fleet::default()),
            positions: StdMutex::new(HashMap::new()),
            live,
            export_lock: Mutex::new(()),
        });
        export::ensure_datasets(&semar).await?;
        semar.reload_fleet().await?;
        if let Err(e) = semar.facilities.refresh(&semar).await {
            tracing::warn!(error = %e, "SEMAR facilities not loaded yet");
        }
        Ok(semar)
    }

    /// Saves the KPI queries and, with `demo`, seeds the demo fleet (once).
    pub async fn prepare(self: &Arc<Self>, demo: bool) -> Result<(), String> {
        kpi::register(self).await?;
        if demo {
            seed::seed_demo(self).await?;
        }
        // What start-up changed lands now, so a started hub's lake is still until used.
        self.export().await?;
        Ok(())
    }

    /// Rebuilds the fleet and the queue from the state store, then assigns what can be.
    async fn reload_fleet(&self) -> Result<(), CatalogError> {
        let state = &self.catalog.state;
        let mut fleet = self.fleet.lock().await;
        let units = store::units(state).await?;
        let open: Vec<(String, String)> =
            sqlx::query_as("SELECT unit_kode, id FROM semar_dispatches WHERE open = 1")
                .fetch_all(state.pool())
                .await?;
        let open: HashMap<String, String> = open.into_iter().collect();
        fleet.units.clear();
        {
            let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            for unit in &units {
                positions.entry(unit.kode.clone()).or_insert(Position {
                    point: Point {
                        lat: unit.lat,
                        lng: unit.lng,
                    },
                    at: unit.position_at.as_deref().and_then(parse_timestamp),
                    dirty: false,
                });
            }
        }
        for unit in units {
            fleet.units.insert(
                unit.kode.clone(),
                UnitState {
                    dispatch: open.get(&unit.kode).cloned(),
                    status: unit.status,
                },
            );
        }
        let waiting = sqlx::query(&format!(
            "SELECT {} FROM semar_calls WHERE status IN ('dikonfirmasi', 'dalam_antrean') \
             ORDER BY confirmed_at, id",
            store::CALL_COLUMNS
        ))
        .fetch_all(state.pool())
        .await?;
        fleet.queue.clear();
        for row in &waiting {
            let call = store::call_from_row(row)?;
            fleet.enqueue(Queued {
                confirmed_at: call.confirmed_at.clone().unwrap_or_default(),
                call_id: call.id.clone(),
            });
        }
        let queued = fleet.queue.len();
        if let Err(e) = self.drain(&mut fleet).await {
            tracing::warn!(error = %e.detail(), "assigning waiting calls after start failed");
        }
        tracing::info!(
            units = fleet.units.len(),
            queued,
            still_waiting = fleet.queue.len(),
            "SEMAR fleet loaded"
        );
        Ok(())
    }

    /// Publishes a change to the live view (nobody listening is fine).
    fn announce(&self, kind: &'static str, id: &str, data: Value) {
        let _ = self.live.send(Arc::new(LiveEvent {
            kind,
            id: id.to_string(),
            data,
        }));
    }

    /// The free units (but `excluded`) ranked by estimated travel time to `point`.
    async fn rank_free(
        &self,
        fleet: &Fleet,
        point: Point,
        excluded: &[String],
    ) -> Vec<(String, Estimate)> {
        let free: Vec<String> = fleet
            .free_units()
            .filter(|k| !excluded.contains(k))
            .cloned()
            .collect();
        let origins: Vec<Point> = {
            let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            free.iter()
                .map(|k| positions.get(k).map(|p| p.point).unwrap_or(point))
                .collect()
        };
        self.travel
            .rank(&origins, point)
            .await
            .into_iter()
            .map(|(i, estimate)| (free[i].clone(), estimate))
            .collect()
    }

    /// Confirms `call` (when `confirm` names the operator) and gives it the nearest free
    /// unit, or queues it. The caller holds the fleet lock.
    async fn place(
        &self,
        fleet: &mut Fleet,
        call: &CallRow,
        confirm: Option<(&str, DateTime<Utc>)>,
    ) -> Result<Placement, ApiError> {
        let started = Instant::now();
        let state = &self.catalog.state;
        let gave_up: Vec<String> = if confirm.is_none() {
            store::dispatches_of_call(state, &call.id)
                .await?
                .into_iter()
                .filter(|d| d.step() == Step::Cancelled)
                .map(|d| d.unit_kode)
                .collect()
        } else {
            Vec::new()
        };
        let ranked = self.rank_free(fleet, call.point(), &gave_up).await;
        let confirmed_at = match confirm {
            Some((_, at)) => timestamp(at),
            None => call.confirmed_at.clone().unwrap_or_default(),
        };
        let candidates = ranked.iter().map(Some).chain(std::iter::once(None));
        for candidate in candidates {
            let mut tx = state.pool().begin().await.map_err(db)?;
            if let Some((actor, at)) = confirm {
                let confirmed = sqlx::query(
                    "UPDATE semar_calls SET status = 'dikonfirmasi', confirmed_at = $2, confirmed_by = $3, \
                     kode_wilayah = $4, lat = $5, lng = $6, location_source = $7, updated_at = $2, exported = 0 \
                     WHERE id = $1 AND status = 'menunggu_konfirmasi'",
                )
                .bind(&call.id)
                .bind(timestamp(at))
                .bind(actor)
                .bind(&call.kode_wilayah)
                .bind(call.lat)
                .bind(call.lng)
                .bind(&call.location_source)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                if confirmed.rows_affected() != 1 {
                    tx.rollback().await.map_err(db)?;
                    return Ok(Placement::Changed);
                }
            }
            let Some((unit, estimate)) = candidate else {
                sqlx::query(
                    "UPDATE semar_calls SET status = 'dalam_antrean', updated_at = $2, exported = 0 \
                     WHERE id = $1 AND status IN ('dikonfirmasi', 'dalam_antrean')",
                )
                .bind(&call.id)
                .bind(timestamp(Utc::now()))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)?;
                fleet.enqueue(Queued {
                    confirmed_at: confirmed_at.clone(),
                    call_id: call.id.clone(),
                });
                let position = fleet
                    .queue
                    .iter()
                    .position(|q| q.call_id == call.id)
                    .map_or(fleet.queue.len(), |p| p + 1);
                metrics::histogram!("simpul_semar_decision_seconds")
                    .record(started.elapsed().as_secs_f64());
                return Ok(Placement::Queued(position));
            };
            let id = uuid::Uuid::now_v7().to_string();
            let new = NewDispatch {
                id: &id,
                call_id: &call.id,
                unit,
                at: Utc::now(),
                estimate_secs: estimate.seconds,
                distance_m: estimate.distance_m,
                estimate_source: estimate.source.name(),
            };
            match store::assign(&mut tx, &new).await? {
                store::Assigned::Done => {
                    tx.commit().await.map_err(db)?;
                    if let Some(u) = fleet.units.get_mut(unit) {
                        u.status = "bertugas".into();
                        u.dispatch = Some(id.clone());
                    }
                    fleet.queue.retain(|q| q.call_id != call.id);
                    metrics::histogram!("simpul_semar_decision_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("simpul_semar_assignments_total").increment(1);
                    let dispatch = store::dispatch(state, &id).await?.ok_or_else(|| {
                        ApiError::internal(format!("dispatch {id} vanished after its commit"))
                    })?;
                    return Ok(Placement::Assigned(Box::new(dispatch)));
                }
                store::Assigned::UnitTaken => {
                    tx.rollback().await.map_err(db)?;
                    // Another process took it: believe the store.
                    self.refresh_unit(fleet, unit).await?;
                }
                store::Assigned::CallChanged => {
                    tx.rollback().await.map_err(db)?;
                    fleet.queue.retain(|q| q.call_id != call.id);
                    return Ok(Placement::Changed);
                }
            }
        }
        Err(ApiError::internal(
            "no placement was possible for a confirmed call",
        ))
    }

    async fn refresh_unit(&self, fleet: &mut Fleet, kode: &str) -> Result<(), ApiError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT status FROM semar_units WHERE kode = $1")
                .bind(kode)
                .fetch_optional(self.catalog.state.pool())
                .await
                .map_err(db)?;
        let open: Option<(String,)> =
            sqlx::query_as("SELECT id FROM semar_dispatches WHERE unit_kode = $1 AND open = 1")
                .bind(kode)
                .fetch_optional(self.catalog.state.pool())
                .await
                .map_err(db)?;
        match row {
            Some((status,)) => {
                fleet.units.insert(
                    kode.to_string(),
                    UnitState {
                        status,
                        dispatch: open.map(|(id,)| id),
                    },
                );
            }
            None => {
                fleet.units.remove(kode);
            }
        }
        Ok(())
    }

    /// Gives waiting calls, oldest confirmation first, the free units. A call skips units
    /// that already gave it up (a crew's `cancelled`), so a later call may take them.
    async fn drain(&self, fleet: &mut Fleet) -> Result<(), ApiError> {
        let waiting: Vec<String> = fleet.queue.iter().map(|q| q.call_id.clone()).collect();
        for call_id in waiting {
            if fleet.free_units().next().is_none() {
                break;
            }
            let call = match store::call(&self.catalog.state, &call_id).await? {
                Some(call)
                    if matches!(
                        call.status(),
                        CallStatus::Dikonfirmasi | CallStatus::DalamAntrean
                    ) =>
                {
                    call
                }
                _ => {
                    fleet.queue.retain(|q| q.call_id != call_id);
                    continue;
                }
            };
            match self.place(fleet, &call, None).await? {
                Placement::Assigned(dispatch) => self.announce_assignment(&call, &dispatch).await,
                Placement::Queued(_) | Placement::Changed => {}
            }
        }
        Ok(())
    }

    async fn announce_assignment(&self, call: &CallRow, dispatch: &DispatchRow) {
        self.announce("dispatch", &dispatch.id, dispatch.to_json());
        self.announce(
            "call",
            &call.id,
            json!({"status": CallStatus::Ditugaskan.name(), "dispatch": dispatch.id, "unit": dispatch.unit_kode}),
        );
        self.announce(
            "unit",
            &dispatch.unit_kode,
            json!({"status": "bertugas", "dispatch": dispatch.id}),
        );
        if call.channel != "app"
            && let Some(phone) = &call.caller_phone
        {
            let plate = sqlx::query_scalar::<_, String>(
                "SELECT nomor_polisi FROM semar_units WHERE kode = $1",
            )
            .bind(&dispatch.unit_kode)
            .fetch_optional(self.catalog.state.pool())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| dispatch.unit_kode.clone());
            let minutes = (dispatch.estimate_secs / 60.0).ceil().max(1.0);
            self.sms.send(
                &self.catalog.state,
                phone,
                &format!(
                    "SEMAR: ambulans {plate} menuju lokasi Anda, perkiraan tiba {minutes:.0} menit. \
                     Tetap di dekat pasien dan aktifkan telepon Anda."
                ),
                Some(&call.id),
            );
        }
    }

    /// `POST /calls/{id}/confirm`: confirms a waiting call and assigns it (or queues it).
    /// A call that is already confirmed answers with its state (`replayed`).
    pub async fn confirm(
        &self,
        call_id: &str,
        actor: &str,
        relocate: Option<(Point, String, &'static str)>,
    ) -> Result<(CallRow, Placement, bool), ApiError> {
        let mut fleet = self.fleet.lock().await;
        let state = &self.catalog.state;
        let mut call = store::call(state, call_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no SEMAR call {call_id}")))?;
        match call.status() {
            CallStatus::MenungguKonfirmasi => {}
            CallStatus::Dikonfirmasi | CallStatus::DalamAntrean | CallStatus::Ditugaskan => {
                let placement = self.current_placement(&fleet, &call).await?;
                return Ok((call, placement, true));
            }
            status @ (CallStatus::Selesai | CallStatus::Dibatalkan) => {
                return Err(ApiError::conflict(format!(
                    "call {call_id} is {}: it can no longer be confirmed",
                    status.name()
                )));
            }
        }
        if let Some((point, kode, source)) = relocate {
            call.lat = point.lat;
            call.lng = point.lng;
            call.kode_wilayah = kode;
            call.location_source = source.into();
        }
        if call.location_source == "unknown" {
            return Err(ApiError::unprocessable(format!(
                "call {call_id} has no place yet (an SMS without a desa): confirm it with lat/lng or kode_wilayah"
            )));
        }
        let now = Utc::now();
        let placement = self.place(&mut fleet, &call, Some((actor, now))).await?;
        drop(fleet);
        let call = store::call(state, call_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("call {call_id} vanished")))?;
        match &placement {
            Placement::Assigned(dispatch) => self.announce_assignment(&call, dispatch).await,
            Placement::Queued(position) => self.announce(
                "call",
                &call.id,
                json!({"status": CallStatus::DalamAntrean.name(), "queue_position": position}),
            ),
            Placement::Changed => {}
        }
        state
            .audit(
                actor,
                "semar.call.confirm",
                call_id,
                match &placement {
                    Placement::Assigned(d) => json!({"dispatch": d.id, "unit": d.unit_kode}),
                    Placement::Queued(p) => json!({"queued": p}),
                    Placement::Changed => json!({"changed": true}),
                },
            )
            .await?;
        Ok((call, placement, false))
    }

    async fn current_placement(
        &self,
        fleet: &Fleet,
        call: &CallRow,
    ) -> Result<Placement, ApiError> {
        if let Some(position) = fleet.queue.iter().position(|q| q.call_id == call.id) {
            return Ok(Placement::Queued(position + 1));
        }
        let open = store::dispatches_of_call(&self.catalog.state, &call.id)
            .await?
            .into_iter()
            .rev()
            .find(|d| d.step() != Step::Cancelled);
        Ok(match open {
            Some(dispatch) => Placement::Assigned(Box::new(dispatch)),
            None => Placement::Queued(fleet.queue.len() + 1),
        })
    }

    /// `POST /calls/{id}/cancel`: the operator ends a call; its unit, if any, is freed.
    pub async fn cancel_call(
        &self,
        call_id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(CallRow, bool), ApiError> {
        let mut fleet = self.fleet.lock().await;
        let state = &self.catalog.state;
        let call = store::call(state, call_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no SEMAR call {call_id}")))?;
        match call.status() {
            CallStatus::Dibatalkan => return Ok((call, true)),
            CallStatus::Selesai => {
                return Err(ApiError::conflict(format!(
                    "call {call_id} is selesai: the patient was handed over"
                )));
            }
            _ => {}
        }
        let open = store::dispatches_of_call(state, call_id)
            .await?
            .into_iter()
            .find(|d| d.open && d.step() != Step::Cancelled);
        if let Some(dispatch) = &open
            && !dispatch.step().next().contains(&Step::Cancelled)
        {
            return Err(ApiError::conflict(format!(
                "the patient of call {call_id} is already on board ({}): the job ends at handover",
                dispatch.status
            )));
        }
        let now = Utc::now();
        let mut tx = state.pool().begin().await.map_err(db)?;
        store::set_call_status(&mut tx, call_id, CallStatus::Dibatalkan, now, Some(reason)).await?;
        if let Some(dispatch) = &open {
            store::close_dispatch_cancelled(&mut tx, dispatch, now, actor, None).await?;
        }
        tx.commit().await.map_err(db)?;
        fleet.queue.retain(|q| q.call_id != call_id);
        if let Some(dispatch) = &open {
            if let Some(unit) = fleet.units.get_mut(&dispatch.unit_kode) {
                unit.status = "tersedia".into();
                unit.dispatch = None;
            }
            self.announce("unit", &dispatch.unit_kode, json!({"status": "tersedia"}));
        }
        self.announce(
            "call",
            call_id,
            json!({"status": "dibatalkan", "reason": reason}),
        );
        self.drain(&mut fleet).await?;
        drop(fleet);
        state
            .audit(
                actor,
                "semar.call.cancel",
                call_id,
                json!({"reason": reason}),
            )
            .await?;
        let call = store::call(state, call_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("call {call_id} vanished")))?;
        Ok((call, false))
    }

    /// `POST /dispatches/{id}/events`: records one crew step.
    pub async fn record_event(
        &self,
        dispatch_id: &str,
        step: Step,
        event: api::EventInput,
        actor: &str,
    ) -> Result<EventOutcome, ApiError> {
        let mut fleet = self.fleet.lock().await;
        let state = &self.catalog.state;
        let dispatch = store::dispatch(state, dispatch_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no SEMAR dispatch {dispatch_id}")))?;
        let call_of = |d: &DispatchRow| d.call_id.clone();
        if dispatch.time_of(step).is_some() {
            let call = store::call(state, &call_of(&dispatch))
                .await?
                .ok_or_else(|| ApiError::internal("a dispatch without its call"))?;
            return Ok(EventOutcome {
                dispatch,
                call,
                replayed: true,
            });
        }
        let current = dispatch.step();
        if !current.next().contains(&step) {
            let allowed: Vec<&str> = current.next().iter().map(|s| s.name()).collect();
            return Err(ApiError::conflict(format!(
                "dispatch {dispatch_id} is at {}; {} cannot follow it. Allowed next: {}",
                current.name(),
                step.name(),
                if allowed.is_empty() {
                    "none, the dispatch is over".to_string()
                } else {
                    allowed.join(", ")
                }
            ))
            .with_member("current", json!(current.name()))
            .with_member("allowed_next", json!(allowed)));
        }
        let now = Utc::now();
        let at = event.at.unwrap_or(now);
        if at > now + chrono::Duration::minutes(2) {
            return Err(ApiError::unprocessable(format!(
                "the event time {} is in the future (the hub's clock says {}); send the device's time in RFC 3339",
                timestamp(at),
                timestamp(now)
            )));
        }
        if let Some(latest) = dispatch.latest_time()
            && at < latest
        {
            return Err(ApiError::unprocessable(format!(
                "the event time {} is before the dispatch's previous step at {}: steps are recorded in order",
                timestamp(at),
                timestamp(latest)
            )));
        }
        let facility = match &event.facility {
            Some(kode) if !step.takes_facility() => {
                return Err(ApiError::unprocessable(format!(
                    "{} does not take a facility (only left_scene, at_facility and handed_over do); got '{kode}'",
                    step.name()
                )));
            }
            Some(kode) => {
                if self.facilities.get(kode).is_none() {
                    return Err(ApiError::unprocessable(format!(
                        "no facility '{kode}' in {}; GET /api/v1/semar/facilities/nearest lists them",
                        self.config.facilities_dataset
                    )));
                }
                Some(kode.clone())
            }
            None => dispatch.facility.clone(),
        };
        if step == Step::HandedOver && facility.is_none() {
            return Err(ApiError::unprocessable(
                "handed_over needs the facility where the patient is: send \"facility\"",
            ));
        }
        let point = event.point();
        let effect = lifecycle::call_effect(current, step);
        let mut tx = state.pool().begin().await.map_err(db)?;
        let recorded = store::record_step(
            &mut tx,
            &dispatch,
            step,
            at,
            facility.as_deref(),
            point,
            actor,
        )
        .await?;
        if !recorded {
            tx.rollback().await.map_err(db)?;
            return Err(ApiError::conflict(format!(
                "dispatch {dispatch_id} changed while {} was recorded; read it and retry",
                step.name()
            ))
            .with_retry_after(1));
        }
        if step.frees_unit() {
            let position = point.or_else(|| {
                self.positions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&dispatch.unit_kode)
                    .map(|p| p.point)
            });
            store::free_unit(&mut tx, &dispatch.unit_kode, position, now).await?;
        }
        let call_id = dispatch.call_id.clone();
        match effect {
            lifecycle::CallEffect::None => {}
            lifecycle::CallEffect::Close(status) => {
                let reason = match status {
                    CallStatus::Selesai => "handed_over",
                    _ => "cancelled_at_patient",
                };
                store::set_call_status(&mut tx, &call_id, status, at, Some(reason)).await?;
            }
            lifecycle::CallEffect::Requeue => {
                store::set_call_status(&mut tx, &call_id, CallStatus::DalamAntrean, at, None)
                    .await?;
            }
        }
        tx.commit().await.map_err(db)?;
        if step.frees_unit()
            && let Some(unit) = fleet.units.get_mut(&dispatch.unit_kode)
        {
            unit.dispatch = None;
            if unit.status == "bertugas" {
                unit.status = "tersedia".into();
            }
        }
        let call = store::call(state, &call_id)
            .await?
            .ok_or_else(|| ApiError::internal("a dispatch without its call"))?;
        if effect == lifecycle::CallEffect::Requeue {
            fleet.enqueue(Queued {
                confirmed_at: call.confirmed_at.clone().unwrap_or_default(),
                call_id: call.id.clone(),
            });
        }
        let dispatch = store::dispatch(state, dispatch_id)
            .await?
            .ok_or_else(|| ApiError::internal("the dispatch vanished"))?;
        self.announce("dispatch", dispatch_id, dispatch.to_json());
        if effect != lifecycle::CallEffect::None {
            self.announce("call", &call.id, json!({"status": call.status}));
        }
        if step.frees_unit() {
            self.announce("unit", &dispatch.unit_kode, json!({"status": "tersedia"}));
            self.drain(&mut fleet).await?;
        } else if effect == lifecycle::CallEffect::Requeue {
            self.drain(&mut fleet).await?;
        }
        drop(fleet);
        state
            .audit(
                actor,
                "semar.dispatch.event",
                dispatch_id,
                json!({"event": step.name(), "at": timestamp(at), "facility": facility}),
            )
            .await?;
        Ok(EventOutcome {
            dispatch,
            call,
            replayed: false,
        })
    }

    /// Takes one GPS ping; positions reach the state store in the next second's batch.
    /// `Ok(false)`: an older ping than the one held, ignored.
    pub fn ping(
        &self,
        kode: &str,
        point: Point,
        at: Option<DateTime<Utc>>,
        motion: Value,
    ) -> Result<bool, ApiError> {
        let accepted = {
            let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            let held = positions.get_mut(kode).ok_or_else(|| {
                ApiError::not_found(format!(
                    "no SEMAR unit {kode}; PUT /api/v1/semar/ambulances/{kode} registers one"
                ))
            })?;
            if let (Some(new), Some(old)) = (at, held.at)
                && new < old
            {
                false
            } else {
                *held = Position {
                    point,
                    at: Some(at.unwrap_or_else(Utc::now)),
                    dirty: true,
                };
                true
            }
        };
        metrics::counter!("simpul_semar_pings_total").increment(1);
        if accepted && self.live.receiver_count() > 0 {
            let mut data = json!({"lat": point.lat, "lng": point.lng});
            if let (Value::Object(data), Value::Object(motion)) = (&mut data, motion) {
                data.extend(motion);
            }
            self.announce("location", kode, data);
        }
        Ok(accepted)
    }

    /// Writes the positions that changed since the last flush, in one transaction.
    async fn flush_positions(&self) -> Result<usize, CatalogError> {
        let dirty: Vec<(String, Position)> = {
            let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            positions
                .iter_mut()
                .filter(|(_, p)| p.dirty)
                .map(|(k, p)| {
                    p.dirty = false;
                    (k.clone(), *p)
                })
                .collect()
        };
        if dirty.is_empty() {
            return Ok(0);
        }
        let now = timestamp(Utc::now());
        let mut tx = self.catalog.state.pool().begin().await?;
        for (kode, position) in &dirty {
            sqlx::query(
                "UPDATE semar_units SET lat = $2, lng = $3, position_at = $4, updated_at = $5, exported = 0 WHERE kode = $1",
            )
            .bind(kode)
            .bind(position.point.lat)
            .bind(position.point.lng)
            .bind(position.at.map(timestamp))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dirty.len())
    }

    /// Adds or replaces a unit (`PUT /ambulances/{kode}`); it joins the fleet at once.
    pub async fn put_unit(&self, unit: &store::UnitRow, actor: &str) -> Result<bool, ApiError> {
        let mut fleet = self.fleet.lock().await;
        let state = &self.catalog.state;
        let now = timestamp(Utc::now());
        let existing = fleet.units.get(&unit.kode).cloned();
        if let Some(current) = &existing
            && current.dispatch.is_some()
            && unit.status != "bertugas"
        {
            return Err(ApiError::conflict(format!(
                "unit {} is on dispatch {}: its status changes when the crew records back_in_service or cancelled",
                unit.kode,
                current.dispatch.as_deref().unwrap_or_default()
            )));
        }
        if existing.as_ref().is_none_or(|c| c.dispatch.is_none()) && unit.status == "bertugas" {
            return Err(ApiError::unprocessable(
                "status bertugas is set by the dispatcher; use tersedia, perawatan or tidak_aktif",
            ));
        }
        sqlx::query(
            "INSERT INTO semar_units (kode, nomor_polisi, jenis, pangkalan_faskes, di_aplikasi, status, lat, lng, updated_at, exported) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) \
             ON CONFLICT (kode) DO UPDATE SET nomor_polisi = $2, jenis = $3, pangkalan_faskes = $4, \
             di_aplikasi = $5, status = $6, updated_at = $9, exported = 0",
        )
        .bind(&unit.kode)
        .bind(&unit.nomor_polisi)
        .bind(&unit.jenis)
        .bind(&unit.pangkalan_faskes)
        .bind(i64::from(unit.di_aplikasi))
        .bind(&unit.status)
        .bind(unit.lat)
        .bind(unit.lng)
        .bind(&now)
        .execute(state.pool())
        .await
        .map_err(db)?;
        fleet.units.insert(
            unit.kode.clone(),
            UnitState {
                status: unit.status.clone(),
                dispatch: existing.and_then(|e| e.dispatch),
            },
        );
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(unit.kode.clone())
            .or_insert(Position {
                point: Point {
                    lat: unit.lat,
                    lng: unit.lng,
                },
                at: None,
                dirty: false,
            });
        self.announce("unit", &unit.kode, json!({"status": unit.status}));
        self.drain(&mut fleet).await?;
        drop(fleet);
        state
            .audit(
                actor,
                "semar.unit.put",
                &unit.kode,
                json!({"status": unit.status, "jenis": unit.jenis}),
            )
            .await?;
        Ok(true)
    }

    /// The fleet as stored, with live positions and the queue.
    pub async fn fleet_view(&self) -> Result<Value, ApiError> {
        let units = store::units(&self.catalog.state).await?;
        let fleet = self.fleet.lock().await;
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let units: Vec<Value> = units
            .into_iter()
            .map(|u| {
                let position = positions.get(&u.kode);
                let live = fleet.units.get(&u.kode);
                json!({
                    "kode": u.kode,
                    "nomor_polisi": u.nomor_polisi,
                    "jenis": u.jenis,
                    "pangkalan_faskes": u.pangkalan_faskes,
                    "di_aplikasi": u.di_aplikasi,
                    "status": live.map_or(u.status.clone(), |l| l.status.clone()),
                    "dispatch": live.and_then(|l| l.dispatch.clone()),
                    "lat": position.map_or(u.lat, |p| p.point.lat),
                    "lng": position.map_or(u.lng, |p| p.point.lng),
                    "position_at": position.and_then(|p| p.at).map(timestamp),
                })
            })
            .collect();
        let queue: Vec<Value> = fleet
            .queue
            .iter()
            .map(|q| json!({"call_id": q.call_id, "confirmed_at": q.confirmed_at}))
            .collect();
        Ok(json!({"units": units, "queue": queue}))
    }

    /// Background work: positions every second, the export every `export_interval_secs`,
    /// the facilities every minute.
    pub async fn run(self: Arc<Self>) {
        let export_every = Duration::from_secs(self.config.export_interval_secs);
        let mut last_export = Instant::now();
        let mut last_facilities = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.flush_positions().await {
                tracing::warn!(error = %e, "writing SEMAR unit positions failed; retried next second");
                self.mark_all_positions_dirty();
            }
            if last_export.elapsed() >= export_every {
                last_export = Instant::now();
                if let Err(e) = self.export().await {
                    tracing::warn!(error = %e, "exporting SEMAR records failed; retried next round");
                }
            }
            if last_facilities.elapsed() >= Duration::from_secs(60) {
                last_facilities = Instant::now();
                if let Err(e) = self.facilities.refresh(&self).await {
                    tracing::warn!(error = %e, "refreshing SEMAR facilities failed");
                }
            }
        }
    }

    fn mark_all_positions_dirty(&self) {
        for position in self
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            if position.at.is_some() {
                position.dirty = true;
            }
        }
    }

    /// Lands every changed record in the `semar.*` datasets now (positions first).
    pub async fn export(&self) -> Result<u64, String> {
        let _one_at_a_time = self.export_lock.lock().await;
        self.flush_positions().await.map_err(|e| e.to_string())?;
        export::run(self).await
    }
}
