//! `/api/v1/bus/webhooks`: subscriptions that push a dataset's new rows to a URL, and their
//! deliveries with status and manual redelivery.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_catalog::{Classification, DeliveryStatus, Principal, Right, Role, Webhook, may_read};

use super::datasets::dataset_id;
use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::server::AppState;

/// A new subscription.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhook {
    /// The dataset to follow.
    dataset: String,
    /// `http(s)://…` to POST deliveries to.
    url: String,
    /// The HMAC key; made (and shown once) when absent. At least 16 characters.
    secret: Option<String>,
    /// Deliver the versions after this one; the current version when absent (only new
    /// changes), 0 for everything.
    since_version: Option<i64>,
    /// Attempts before dead-letter; `bus.webhook_max_attempts` when absent.
    max_attempts: Option<u32>,
}

/// Whether `caller` may subscribe to a dataset: what it may read, and for restricted data
/// also a `subscribe` grant (or ownership).
async fn may_subscribe(
    app: &AppState,
    caller: &Caller,
    dataset: &simpul_catalog::DatasetMeta,
) -> Result<bool, ApiError> {
    if caller.0.role == Role::Admin {
        return Ok(true);
    }
    let principal = Principal {
        member: caller.0.member.clone(),
        subsystem: caller.0.subsystem.clone(),
    };
    let rights = app.catalog.state.rights_of(&principal).await?;
    let readable = may_read(
        &principal,
        &rights,
        &dataset.id,
        dataset.classification,
        &dataset.owner,
    );
    Ok(readable
        && (dataset.classification != Classification::Restricted
            || dataset.owner == principal.member
            || rights.has(&dataset.id, Right::Subscribe)))
}

pub(super) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = dataset_id(&request.dataset)?;
    let dataset = app.catalog.dataset(&id).await?;
    if !may_subscribe(&app, &caller, &dataset).await? {
        return Err(ApiError::forbidden(format!(
            "{} may not subscribe to {id}: it is restricted; ask its owner for a subscribe grant",
            caller.id()
        )));
    }
    let url = url::Url::parse(&request.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ApiError::bad_request(format!("url '{}' is not an http(s) URL", request.url))
        })?;
    simpul_connectors::net::check_outbound_target(&url)
        .await
        .map_err(ApiError::unprocessable)?;
    let secret = match request.secret {
        Some(secret) if secret.len() >= 16 => secret,
        Some(_) => {
            return Err(ApiError::bad_request(
                "secret must be at least 16 characters",
            ));
        }
        None => Alphanumeric.sample_string(&mut rand::rng(), 40),
    };
    let current = dataset.current_version.unwrap_or(0);
    let cursor = match request.since_version {
        Some(v) if (0..=current).contains(&v) => v,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "since_version must be between 0 and {current} (the current version), not {v}"
            )));
        }
        None => current,
    };
    let max_attempts = request
        .max_attempts
        .unwrap_or(app.config.bus.webhook_max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::bad_request(
            "max_attempts must be between 1 and 100",
        ));
    }
    let webhook = Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        dataset: id.clone(),
        url: url.to_string(),
        secret: secret.clone(),
        client_id: caller.id().to_string(),
        member: caller.0.member.clone(),
        subsystem: caller.0.subsystem.clone(),
        max_attempts,
        cursor_version: cursor,
        created_at: Utc::now(),
    };
    app.catalog.state.insert_webhook(&webhook).await?;
    app.catalog
        .state
        .audit(
            caller.id(),
            "webhook.create",
            &webhook.id,
            json!({"dataset": id.to_string(), "url": webhook.url, "since_version": cursor}),
        )
        .await?;
    app.publisher.committed.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "webhook": webhook, "secret": secret })),
    ))
}

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let owner = (caller.0.role != Role::Admin).then(|| caller.id());
    let webhooks = app.catalog.state.webhooks(owner).await?;
    Ok(Json(json!({ "webhooks": webhooks })))
}

/// The subscription, if the caller made it or is an admin.
async fn own_webhook(app: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    app.catalog
        .state
        .webhook(id)
        .await?
        .filter(|w| caller.0.role == Role::Admin || w.client_id == caller.id())
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} does not exist")))
}

pub(super) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    own_webhook(&app, &caller, &id).await?;
    app.catalog.state.delete_webhook(&id).await?;
    app.catalog
        .state
        .audit(caller.id(), "webhook.delete", &id, json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    own_webhook(&app, &caller, &id).await?;
    let mut status = None;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "status" => status = Some(DeliveryStatus::parse(&value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter '{other}'; use status"
                )));
            }
        }
    }
    let deliveries = app.catalog.state.deliveries(&id, status).await?;
    Ok(Json(json!({ "deliveries": deliveries })))
}

pub(super) async fn redeliver(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let delivery = app
        .catalog
        .state
        .delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("delivery {id} does not exist")))?;
    own_webhook(&app, &caller, &delivery.webhook_id).await?;
    app.catalog.state.redeliver(&id).await?;
    app.catalog
        .state
        .audit(
            caller.id(),
            "webhook.redeliver",
            &id,
            json!({"webhook": delivery.webhook_id}),
        )
        .await?;
    app.publisher.committed.notify_waiters();
    let delivery = app.catalog.state.delivery(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery": delivery }))))
}
