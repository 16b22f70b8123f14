//! The complaints module on the module seam: its routes (and Open311's), how it opens, and
//! what the hub asks of it.

use std::sync::Arc;

use futures::future::BoxFuture;
use simpul_catalog::{CatalogError, ExtraMigration};

use super::{Complaints, api, attachments, open311};
use crate::config::Config;
use crate::modules::registry::{Module, Opened, Opening, Registration};

crate::routes::route_table! {
    prefix "/api/v1";
    "/complaints" => {
        get api::list: "PLIPMAS: cases, newest first (opd=, opd=none for triage, status=)",
        post api::create: "PLIPMAS: file a complaint or an information request; deadlines in working days",
    }
    "/complaints/overdue" => { get api::overdue: "PLIPMAS: open cases past an agency deadline, by OPD" }
    "/complaints/sms/inbound" => { post api::sms_inbound [signed]: "La Pewarta: an SMS gateway webhook (HMAC-SHA256), routed by keyword to the OPD" }
    "/complaints/{id}" => { get api::show: "PLIPMAS: one case with its deadline, history and messages" }
    "/complaints/{id}/transitions" => { post api::transition: "PLIPMAS: one workflow step; 409 with the allowed next states" }
    "/complaints/{id}/answer" => { post api::answer: "PLIPMAS / La Pewarta: the OPD's answer, sent to the resident by SMS, the Regent told" }
    "/complaints/{id}/route" => { post api::route: "La Pewarta: route a triage case to a category's OPD" }
    "/complaints/{id}/attachments" => {
        get attachments::list: "PLIPMAS: a case's evidence attachments with their SHA-256",
        post attachments::upload: "PLIPMAS: add evidence (the body is the file; type and size limits, virus scan)",
    }
    "/complaints/{id}/attachments/{attachment}" => { get attachments::download: "PLIPMAS: one attachment, checked against its SHA-256" }
    "/complaints/kpi" => { get api::kpi: "PLIPMAS / La Pewarta KPIs: % within SLA per step, response and close times, backlog, escalations, trend, channels" }
}

/// The complaints module's registration.
pub(crate) const REGISTRATION: Registration = Registration {
    name: "complaints",
    title: "the complaints module",
    api_routes: routes,
    api_operations: OPERATIONS,
    root_routes: open311::routes,
    root_operations: open311::OPERATIONS,
    open,
    wired_datasets,
    migrations: &[
        ExtraMigration {
            version: 13,
            description: "complaints",
            sql: include_str!("migrations/0013_complaints.sql"),
        },
        ExtraMigration {
            version: 15,
            description: "complaints datasets",
            sql: include_str!("migrations/0015_complaints_datasets.sql"),
        },
    ],
};

fn open<'a>(opening: &'a Opening<'a>) -> BoxFuture<'a, Opened> {
    Box::pin(async move {
        let config = opening.config;
        if !config.complaints.enabled {
            return Ok(None);
        }
        let calendar = crate::calendar::Calendar::new(&config.calendar.extra_holidays)
            .map_err(CatalogError::Config)?;
        let complaints =
            Complaints::open(opening.catalog.clone(), config.complaints.clone(), calendar)
                .map_err(CatalogError::Config)?;
        Ok(Some(complaints as Arc<dyn Module>))
    })
}

fn wired_datasets(_: &Config) -> Vec<(String, &'static str)> {
    Vec::new()
}

#[async_trait::async_trait]
impl Module for Complaints {
    fn name(&self) -> &'static str {
        REGISTRATION.name
    }

    async fn prepare(self: Arc<Self>, _demo: bool) -> Result<(), String> {
        Complaints::prepare(&self).await
    }

    fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn export(&self) -> Result<u64, String> {
        Complaints::export(self).await
    }

    fn intent_kinds(&self) -> &'static [&'static str] {
        &[api::CASE_INTENT, api::STEP_INTENT]
    }

    async fn stored_answer(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(u16, String)>, CatalogError> {
        api::stored_answer(self, kind, id).await
    }
}
