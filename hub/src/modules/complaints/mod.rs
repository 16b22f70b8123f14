//! PLIPMAS and La Pewarta: public complaints and information requests with working-day
//! deadlines, SMS complaints routed by keyword to the competent OPD with the Regent copied,
//! and Open311 GeoReport v2 for existing apps. Laid out like SEMAR: records in the state
//! store (migration 0013), every new record checked against its canonical schema
//! (`pengaduan`, `permohonan_informasi`), every action audited.
//!
//! A transition is one guarded update (`WHERE version = <the version read>`) with its event
//! row in the same transaction: of two officials acting on one case at once, exactly one
//! wins and the other gets 409.

pub(crate) mod api;
pub(crate) mod attachments;
mod export;
pub(crate) mod kpi;
mod module;
pub(crate) mod open311;
mod routing;
mod workflow;

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use simpul_catalog::{Catalog, CatalogError, MaskKind, StateStore, timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::api::ApiError;
use crate::calendar::{Calendar, wib_date};
use crate::config::ComplaintsConfig;

pub(crate) use module::REGISTRATION;
pub use routing::Routing;
pub use workflow::Kind;
use workflow::{Base, Duty};

/// The module's shared state.
pub struct Complaints {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: ComplaintsConfig,
    pub(crate) calendar: Calendar,
    pub(crate) routing: Routing,
    pub(crate) gateway: crate::sms::Gateway,
    /// One export round at a time (the background loop, a KPI request, shutdown).
    export_lock: tokio::sync::Mutex<()>,
}

/// One case as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRow {
    pub id: String,
    pub kind: String,
    pub channel: String,
    pub category: Option<String>,
    pub opd: Option<String>,
    pub description: String,
    pub anonymous: bool,
    pub nik: Option<String>,
    pub nama: Option<String>,
    pub telepon: Option<String>,
    pub kode_wilayah: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub address: Option<String>,
    pub status: String,
    pub received_at: String,
    pub deadline: Option<String>,
    pub deadline_step: Option<String>,
    pub deadline_duty: Option<String>,
    pub decision: Option<String>,
    pub exemption_reason: Option<String>,
    pub closed_at: Option<String>,
    pub created_by: String,
    pub version: i64,
    pub updated_at: String,
}

pub(crate) const CASE_COLUMNS: &str = "id, kind, channel, category, opd, description, anonymous, nik, nama, telepon, \
     kode_wilayah, lat, lng, address, status, received_at, deadline, deadline_step, deadline_duty, decision, \
     exemption_reason, closed_at, created_by, version, updated_at";

fn case_from_row(row: &AnyRow) -> Result<CaseRow, sqlx::Error> {
    Ok(CaseRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        category: row.try_get("category")?,
        opd: row.try_get("opd")?,
        description: row.try_get("description")?,
        anonymous: row.try_get::<i64, _>("anonymous")? == 1,
        nik: row.try_get("nik")?,
        nama: row.try_get("nama")?,
        telepon: row.try_get("telepon")?,
        kode_wilayah: row.try_get("kode_wilayah")?,
        lat: row.try_get("lat")?,
        lng: row.try_get("lng")?,
        address: row.try_get("address")?,
        status: row.try_get("status")?,
        received_at: row.try_get("received_at")?,
        deadline: row.try_get("deadline")?,
        deadline_step: row.try_get("deadline_step")?,
        deadline_duty: row.try_get("deadline_duty")?,
        decision: row.try_get("decision")?,
        exemption_reason: row.try_get("exemption_reason")?,
        closed_at: row.try_get("closed_at")?,
        created_by: row.try_get("created_by")?,
        version: row.try_get("version")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl CaseRow {
    /// The case's kind.
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::Complaint)
    }
}

/// A new case, checked.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub kind: Kind,
    pub channel: String,
    pub category: Option<String>,
    pub opd: Option<String>,
    pub description: String,
    pub nik: Option<String>,
    pub nama: Option<String>,
    pub telepon: Option<String>,
    pub kode_wilayah: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub address: Option<String>,
    pub received_at: chrono::DateTime<Utc>,
}

/// A requested transition.
#[derive(Debug, Clone, Default)]
pub struct Transition {
    pub to: String,
    pub note: Option<String>,
    pub decision: Option<String>,
    pub exemption_reason: Option<String>,
    pub expected_version: Option<i64>,
    /// The id of the step's event, chosen by the caller (an idempotent request keeps it
    /// under its key); a new one when `None`.
    pub event_id: Option<String>,
}

pub(crate) fn db(error: sqlx::Error) -> ApiError {
    ApiError::from(CatalogError::from(error))
}

impl Complaints {
    /// Reads the routing rules and the calendar.
    pub fn open(
        catalog: Arc<Catalog>,
        config: ComplaintsConfig,
        calendar: Calendar,
    ) -> Result<Arc<Self>, String> {
        let routing = if config.routing_file.is_empty() {
            Routing::parse(routing::SHIPPED, "the shipped routing rules")?
        } else {
            let text = std::fs::read_to_string(&config.routing_file).map_err(|e| {
                format!(
                    "complaints.routing_file {}: cannot read: {e}",
                    config.routing_file
                )
            })?;
            Routing::parse(&text, &config.routing_file)?
        };
        let gateway = crate::sms::Gateway::new(&config.sms_gateway_url, &config.sms_gateway_token);
        Ok(Arc::new(Self {
            catalog,
            config,
            calendar,
            routing,
            gateway,
            export_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The deadline a case gets on entering `status`: `(date, step, duty)`.
    fn deadline(
        &self,
        case_kind: Kind,
        category: Option<&str>,
        status: &str,
        received: NaiveDate,
        previous: Option<NaiveDate>,
    ) -> Option<(NaiveDate, &'static str, Duty)> {
        let days = self.routing.days(category);
        let (step, n, duty, base) = workflow::deadline_for(case_kind, status, &days)?;
        let today = wib_date(Utc::now());
        let date = match base {
            Base::Received => self.calendar.add_working_days(received, n),
            Base::Transition => self.calendar.add_working_days(today, n),
            Base::PreviousDeadline => self.calendar.add_working_days(previous.unwrap_or(today), n),
            Base::Keep => previous?,
        };
        Some((date, step, duty))
    }

    /// The API form of a case, with its deadline and whether it is overdue; identity only
    /// for those who may see it, never for an anonymous complaint's public.
    pub fn case_json(&self, case: &CaseRow, identity: bool) -> Value {
        let today = wib_date(Utc::now());
        let kind = case.kind();
        let deadline = case
            .deadline
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let deadline = match (deadline, workflow::is_closed(kind, &case.status)) {
            (Some(date), false) => {
                let left = self.calendar.working_days_between(today, date);
                json!({
                    "step": case.deadline_step,
                    "date": date.to_string(),
                    "duty": case.deadline_duty,
                    "working_days_left": left,
                    "overdue": case.deadline_duty.as_deref() == Some("agency") && date < today,
                })
            }
            _ => Value::Null,
        };
        let shown = |value: &Option<String>, kind: MaskKind| match value {
            Some(v) if identity => json!(v),
            Some(v) => json!(kind.mask(v)),
            None => Value::Null,
        };
        json!({
            "id": case.id,
            "kind": case.kind,
            "channel": case.channel,
            "category": case.category,
            "opd": case.opd,
            "description": case.description,
            "anonymous": case.anonymous,
            "nik": shown(&case.nik, MaskKind::Identifier),
            "nama": shown(&case.nama, MaskKind::Name),
            "telepon": shown(&case.telepon, MaskKind::Phone),
            "kode_wilayah": case.kode_wilayah,
            "lat": case.lat,
            "lng": case.lng,
            "address": case.address,
            "status": case.status,
            "allowed_next": workflow::allowed(kind, &case.status),
            "received_at": case.received_at,
            "deadline": deadline,
            "decision": case.decision,
            "exemption_reason": case.exemption_reason,
            "closed_at": case.closed_at,
            "version": case.version,
            "updated_at": case.updated_at,
        })
    }

    /// The cases `sql` (a `SELECT {CASE_COLUMNS} FROM complaint_cases …` with `$1…` for
    /// `binds`) finds.
    pub(crate) async fn cases(
        &self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<CaseRow>, ApiError> {
        let mut statement = sqlx::query(sql);
        for bind in binds {
            statement = statement.bind(bind);
        }
        let rows = statement
            .fetch_all(self.catalog.state.pool())
            .await
            .map_err(db)?;
        rows.iter()
            .map(case_from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// Reads one case.
    pub async fn case(&self, id: &str) -> Result<Option<CaseRow>, ApiError> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM complaint_cases WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.catalog.state.pool())
        .await
        .map_err(db)?;
        row.as_ref().map(case_from_row).transpose().map_err(db)
    }

    /// Stores a new case with its first event, deadline and audit record, in one
    /// transaction; with `sms`, the inbound message too, once (`Ok(None)`: that message was
    /// already kept). `id` is the case's id when the caller chose it (an idempotent request).
    pub async fn create(
        &self,
        new: &NewCase,
        actor: &str,
        sms: Option<(&str, &str)>,
        id: Option<String>,
    ) -> Result<Option<CaseRow>, ApiError> {
        let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let status = new.kind.initial();
        let received = wib_date(new.received_at);
        let deadline = self.deadline(new.kind, new.category.as_deref(), status, received, None);
        let now = timestamp(Utc::now());
        let state = &self.catalog.state;
        let mut tx = state.pool().begin().await.map_err(db)?;
        if let Some((text, dedup)) = sms {
            let kept = sqlx::query(
                "INSERT INTO complaint_messages (id, case_id, direction, recipient, phone, text, at, dedup_key, status, exported) \
                 VALUES ($1, $2, 'in', 'hub', $3, $4, $5, $6, 'received', 0) ON CONFLICT (dedup_key) DO NOTHING",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&id)
            .bind(new.telepon.as_deref().unwrap_or_default())
            .bind(text)
            .bind(&now)
            .bind(dedup)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if kept.rows_affected() == 0 {
                tx.rollback().await.map_err(db)?;
                return Ok(None);
            }
        }
        sqlx::query(&format!(
            "INSERT INTO complaint_cases ({CASE_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, NULL, NULL, NULL, $20, 1, $21)"
        ))
        .bind(&id)
        .bind(new.kind.name())
        .bind(&new.channel)
        .bind(&new.category)
        .bind(&new.opd)
        .bind(&new.description)
        .bind(i64::from(new.nama.is_none()))
        .bind(&new.nik)
        .bind(&new.nama)
        .bind(&new.telepon)
        .bind(&new.kode_wilayah)
        .bind(new.lat)
        .bind(new.lng)
        .bind(&new.address)
        .bind(status)
        .bind(timestamp(new.received_at))
        .bind(deadline.map(|d| d.0.to_string()))
        .bind(deadline.map(|d| d.1))
        .bind(deadline.map(|d| duty_name(d.2)))
        .bind(actor)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let working_days = self
            .calendar
            .working_days_between(received, wib_date(Utc::now()));
        insert_event(
            &mut tx,
            Event {
                id: None,
                case_id: &id,
                from: None,
                to: status,
                actor,
                note: None,
                deadline: deadline.map(|d| d.0),
                settled: None,
                working_days,
            },
        )
        .await?;
        StateStore::audit_in(
            &mut tx,
            actor,
            "complaints.case.create",
            &id,
            json!({"kind": new.kind.name(), "channel": new.channel, "opd": new.opd}),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        metrics::counter!("simpul_complaints_cases_total", "channel" => new.channel.clone())
            .increment(1);
        self.case(&id).await
    }

    /// Applies one transition, guarded on the case's version.
    pub async fn transition(
        &self,
        id: &str,
        request: &Transition,
        actor: &str,
    ) -> Result<CaseRow, ApiError> {
        let case = self
            .case(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
        let kind = case.kind();
        let allowed = workflow::allowed(kind, &case.status);
        let refuse = |detail: String| {
            ApiError::conflict(detail)
                .with_member("current", json!(case.status))
                .with_member("allowed_next", json!(allowed))
        };
        if let Some(expected) = request.expected_version
            && expected != case.version
        {
            return Err(refuse(format!(
                "case {id} is at version {}, not {expected}: someone acted on it meanwhile; read it again",
                case.version
            )));
        }
        if !allowed.contains(&request.to.as_str()) {
            return Err(refuse(format!(
                "case {id} is {}; it cannot go to {}. Allowed next: {}",
                case.status,
                request.to,
                if allowed.is_empty() {
                    "none, the case is closed".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        let note = request
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let needs_note = workflow::EARLY_CLOSES.contains(&request.to.as_str())
            || matches!(
                request.to.as_str(),
                "extended" | "mediation" | "escalated_to_regent"
            );
        if needs_note && note.is_none() {
            return Err(ApiError::unprocessable(format!(
                "going to {} needs a note with the reason",
                request.to
            )));
        }
        let (decision, exemption) = if request.to == "decided" {
            let decision = request.decision.as_deref().unwrap_or_default();
            if !["granted", "partially_granted", "rejected"].contains(&decision) {
                return Err(ApiError::unprocessable(
                    "a decision is granted, partially_granted or rejected",
                ));
            }
            let exemption = request
                .exemption_reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty());
            if decision != "granted" && exemption.is_none() {
                return Err(ApiError::unprocessable(
                    "a rejected or partly granted request needs the exemption_reason (Law 14/2008, art. 17)",
                ));
            }
            (Some(decision.to_string()), exemption.map(str::to_string))
        } else {
            (case.decision.clone(), case.exemption_reason.clone())
        };
        let received = crate::calendar::wib_date(
            simpul_catalog::parse_timestamp(&case.received_at).unwrap_or_else(Utc::now),
        );
        let previous = case
            .deadline
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let deadline = self.deadline(
            kind,
            case.category.as_deref(),
            &request.to,
            received,
            previous,
        );
        let closed = workflow::is_closed(kind, &request.to);
        let now = timestamp(Utc::now());
        let mut tx = self.catalog.state.pool().begin().await.map_err(db)?;
        let updated = sqlx::query(
            "UPDATE complaint_cases SET status = $3, deadline = $4, deadline_step = $5, deadline_duty = $6, \
             decision = $7, exemption_reason = $8, closed_at = $9, version = version + 1, updated_at = $10, \
             exported = 0 WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(case.version)
        .bind(&request.to)
        .bind(deadline.map(|d| d.0.to_string()))
        .bind(deadline.map(|d| d.1))
        .bind(deadline.map(|d| duty_name(d.2)))
        .bind(&decision)
        .bind(&exemption)
        .bind(closed.then(|| now.clone()))
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if updated.rows_affected() != 1 {
            tx.rollback().await.map_err(db)?;
            return Err(refuse(format!(
                "case {id} changed while {} was applied (another official acted first); read it again",
                request.to
            )));
        }
        let today = wib_date(Utc::now());
        insert_event(
            &mut tx,
            Event {
                id: request.event_id.as_deref(),
                case_id: id,
                from: Some(&case.status),
                to: &request.to,
                actor,
                note,
                deadline: deadline.map(|d| d.0),
                settled: Settled::of(&case, today),
                working_days: self.calendar.working_days_between(received, today),
            },
        )
        .await?;
        StateStore::audit_in(
            &mut tx,
            actor,
            "complaints.case.transition",
            id,
            json!({"from": case.status, "to": request.to, "note": note}),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        self.case(id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("case {id} vanished")))
    }

    /// Sends `text` to `phone` in the background and keeps the message with the case.
    pub fn notify(&self, case_id: &str, recipient: &str, phone: &str, text: &str) {
        let Ok(phone) = simpul_schemas::formats::normalize_telepon(phone) else {
            tracing::warn!(%recipient, "a complaint notice was not sent: the number is not a phone number");
            return;
        };
        let (state, gateway) = (self.catalog.state.clone(), self.gateway.clone());
        let (case_id, recipient, text) =
            (case_id.to_string(), recipient.to_string(), text.to_string());
        tokio::spawn(async move {
            let (status, error) = gateway.deliver(&phone, &text).await;
            let kept = sqlx::query(
                "INSERT INTO complaint_messages (id, case_id, direction, recipient, phone, text, at, status, error) \
                 VALUES ($1, $2, 'out', $3, $4, $5, $6, $7, $8)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&case_id)
            .bind(&recipient)
            .bind(&phone)
            .bind(&text)
            .bind(timestamp(Utc::now()))
            .bind(status)
            .bind(error)
            .execute(state.pool())
            .await;
            if let Err(e) = kept {
                tracing::warn!(error = %e, "keeping a complaint message failed");
            }
        });
    }

    /// Closes answered complaints whose complainant did not object in time.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let today = wib_date(Utc::now()).to_string();
        let due: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, version FROM complaint_cases WHERE status = 'answered' AND deadline < $1",
        )
        .bind(&today)
        .fetch_all(self.catalog.state.pool())
        .await
        .map_err(db)?;
        let mut closed = 0;
        for (id, version) in due {
            let request = Transition {
                to: "closed_satisfied".into(),
                note: Some(
                    "ditutup otomatis: tidak ada tanggapan pelapor dalam batas waktu".into(),
                ),
                expected_version: Some(version),
                ..Transition::default()
            };
            match self.transition(&id, &request, "system").await {
                Ok(_) => closed += 1,
                // An official or the complainant acted first: theirs stands.
                Err(e) if e.status() == axum::http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }

    /// Makes the `complaints.*` datasets, saves the KPI queries, and lands what changed.
    pub async fn prepare(&self) -> Result<(), String> {
        export::exporter(self)
            .ensure_datasets()
            .await
            .map_err(|e| e.to_string())?;
        kpi::register(self).await?;
        self.export().await?;
        Ok(())
    }

    /// Lands every changed case, event and message in the `complaints.*` datasets now.
    pub async fn export(&self) -> Result<u64, String> {
        let _one_at_a_time = self.export_lock.lock().await;
        export::exporter(self).run().await
    }

    /// Background work: the auto-close sweep every minute, the export every
    /// `export_interval_secs`.
    pub async fn run(self: Arc<Self>) {
        let export_every = std::time::Duration::from_secs(self.config.export_interval_secs.max(1));
        let sweep_every = std::time::Duration::from_secs(60);
        let mut last_sweep: Option<std::time::Instant> = None;
        let mut tick = tokio::time::interval(export_every.min(sweep_every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if last_sweep.is_none_or(|at| at.elapsed() >= sweep_every) {
                last_sweep = Some(std::time::Instant::now());
                match self.sweep().await {
                    Ok(0) => {}
                    Ok(closed) => tracing::info!(
                        closed,
                        "answered complaints closed after the objection window"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e.detail(), "the complaints auto-close sweep failed")
                    }
                }
            }
            if let Err(e) = self.export().await {
                tracing::warn!(error = %e, "exporting complaint records failed; retried next round");
            }
        }
    }
}

fn duty_name(duty: Duty) -> &'static str {
    match duty {
        Duty::Agency => "agency",
        Duty::Requester => "requester",
    }
}

/// One event row: the transition, the deadline it starts, and the deadline it settles.
struct Event<'a> {
    /// The event's id; a new one when `None`.
    id: Option<&'a str>,
    case_id: &'a str,
    from: Option<&'a str>,
    to: &'a str,
    actor: &'a str,
    note: Option<&'a str>,
    deadline: Option<NaiveDate>,
    settled: Option<Settled>,
    working_days: i64,
}

/// The deadline that was running when an event happened, and whether the agency met it.
struct Settled {
    step: String,
    deadline: NaiveDate,
    duty: String,
    /// `None` when it was the complainant's or requester's turn.
    within: Option<bool>,
}

impl Settled {
    /// What `case`'s running deadline says of an event on `today`.
    fn of(case: &CaseRow, today: NaiveDate) -> Option<Self> {
        let deadline = NaiveDate::parse_from_str(case.deadline.as_deref()?, "%Y-%m-%d").ok()?;
        let duty = case.deadline_duty.clone()?;
        let within = (duty == "agency").then_some(today <= deadline);
        Some(Self {
            step: case.deadline_step.clone()?,
            deadline,
            duty,
            within,
        })
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: Event<'_>,
) -> Result<(), ApiError> {
    let settled = event.settled.as_ref();
    sqlx::query(
        "INSERT INTO complaint_events (id, case_id, from_status, to_status, actor, note, at, deadline, \
         step, step_deadline, step_duty, within_sla, working_days, exported) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)",
    )
    .bind(
        event
            .id
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string),
    )
    .bind(event.case_id)
    .bind(event.from)
    .bind(event.to)
    .bind(event.actor)
    .bind(event.note)
    .bind(timestamp(Utc::now()))
    .bind(event.deadline.map(|d| d.to_string()))
    .bind(settled.map(|s| s.step.clone()))
    .bind(settled.map(|s| s.deadline.to_string()))
    .bind(settled.map(|s| s.duty.clone()))
    .bind(settled.and_then(|s| s.within).map(i64::from))
    .bind(event.working_days.max(0))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
