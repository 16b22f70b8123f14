//! SEMAR on the module seam: its routes, how it opens, and what the hub asks of it.

use std::sync::Arc;

use futures::future::BoxFuture;
use simpul_catalog::{CatalogError, ExtraMigration};

use super::{Semar, api};
use crate::config::Config;
use crate::modules::registry::{Module, Opened, Opening, Registration, no_routes};

crate::routes::route_table! {
    prefix "/api/v1";
    "/semar/residents" => { post api::register: "SEMAR: register a resident by NIK (checked against the population dataset when present)" }
    "/semar/calls" => {
        get api::list_calls: "SEMAR: open calls, newest first (status= for others); operators",
        post api::create_call: "SEMAR: a new call (app, phone or sms) pending confirmation; needs an Idempotency-Key",
    }
    "/semar/calls/{id}" => { get api::show_call: "SEMAR: one call with its dispatches" }
    "/semar/calls/{id}/confirm" => { post api::confirm_call: "SEMAR: confirm a call; the nearest free unit is assigned, or the call is queued" }
    "/semar/calls/{id}/cancel" => { post api::cancel_call: "SEMAR: cancel a call; its unit is freed" }
    "/semar/dispatches/{id}" => { get api::show_dispatch: "SEMAR: one dispatch with every step's time and the allowed next steps" }
    "/semar/dispatches/{id}/events" => { post api::dispatch_event: "SEMAR: record a crew step (notified … handed_over, back_in_service, cancelled); 409 with the allowed next steps" }
    "/semar/ambulances" => { get api::list_units: "SEMAR: the fleet with live positions, and the queue" }
    "/semar/ambulances/{kode}" => { put api::put_unit: "SEMAR: register or update a unit" }
    "/semar/ambulances/{kode}/location" => { post api::location: "SEMAR: one GPS ping from a unit" }
    "/semar/facilities/nearest" => { get api::nearest_facilities: "SEMAR: nearest facilities (lat, lng, jenis, limit) with distance and estimated time" }
    "/semar/drupadi" => { get api::drupadi: "SEMAR Drupadi: on-call doctors and midwives of a desa, then its kecamatan" }
    "/semar/drupadi/{id}" => { put api::put_oncall: "SEMAR Drupadi: add or change a doctor or midwife on the roster" }
    "/semar/sms/inbound" => { post api::sms_inbound [signed]: "SEMAR SMS fallback: a gateway webhook signed with the shared secret (HMAC-SHA256)" }
    "/semar/stream" => { get api::stream: "SEMAR operator console: Server-Sent Events of calls, dispatches and units" }
    "/semar/kpi" => { get api::kpi: "SEMAR KPIs: 90th-percentile response, % within 10 minutes, intervals, units, calls by area and channel" }
}

/// SEMAR's registration.
pub(crate) const REGISTRATION: Registration = Registration {
    name: "semar",
    title: "SEMAR",
    api_routes: routes,
    api_operations: OPERATIONS,
    root_routes: no_routes,
    root_operations: &[],
    open,
    wired_datasets,
    migrations: &[
        ExtraMigration {
            version: 12,
            description: "semar",
            sql: include_str!("migrations/0012_semar.sql"),
        },
        ExtraMigration {
            version: 14,
            description: "semar indexes",
            sql: include_str!("migrations/0014_semar_indexes.sql"),
        },
    ],
};

fn open<'a>(opening: &'a Opening<'a>) -> BoxFuture<'a, Opened> {
    Box::pin(async move {
        if !opening.config.semar.enabled {
            return Ok(None);
        }
        let semar = Semar::open(
            opening.catalog.clone(),
            opening.config.semar.clone(),
            opening.reads.clone(),
        )
        .await?;
        Ok(Some(semar as Arc<dyn Module>))
    })
}

fn wired_datasets(config: &Config) -> Vec<(String, &'static str)> {
    vec![
        (
            config.semar.population_dataset.clone(),
            "SEMAR checks NIKs against it",
        ),
        (
            config.semar.facilities_dataset.clone(),
            "SEMAR dispatches to its facilities",
        ),
    ]
}

#[async_trait::async_trait]
impl Module for Semar {
    fn name(&self) -> &'static str {
        REGISTRATION.name
    }

    async fn prepare(self: Arc<Self>, demo: bool) -> Result<(), String> {
        Semar::prepare(&self, demo).await
    }

    fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn export(&self) -> Result<u64, String> {
        Semar::export(self).await
    }

    fn intent_kinds(&self) -> &'static [&'static str] {
        &[api::CALL_INTENT]
    }

    async fn stored_answer(
        &self,
        _kind: &str,
        id: &str,
    ) -> Result<Option<(u16, String)>, CatalogError> {
        Ok(api::created_call_answer(&self.catalog.state, id)
            .await?
            .map(|body| (201, body)))
    }
}
