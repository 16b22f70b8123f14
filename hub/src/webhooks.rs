//! The webhook dispatcher: one background task that opens a delivery whenever a followed
//! dataset has new versions, and attempts due deliveries on their own tasks.
//!
//! A delivery is `POST`ed as JSON with `Simpul-Delivery` (its id, for the receiver's dedup),
//! `Simpul-Timestamp` and `Simpul-Signature: sha256=<hex HMAC-SHA256(secret,
//! "<timestamp>.<body>")>`. Only a 2xx answer counts; redirects are not followed. Failures are
//! retried with exponential backoff until the subscription's attempts run out, then the
//! delivery is dead-lettered. Publishers never wait for any of this: they only wake the
//! dispatcher.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ring::hmac;
use serde_json::json;
use simpul_catalog::{AttemptOutcome, Delivery, MessageEntry, Webhook};
use tokio::sync::Semaphore;

use crate::server::AppState;

/// Attempts in flight at once, over every subscription.
const CONCURRENCY: usize = 32;
/// Deliveries taken per round.
const ROUND: i64 = 64;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The signature header's value for `body` sent at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("sha256={}", hex::encode(context.sign().as_ref()))
}

/// The wait before attempt `attempt + 1`, after `attempt` failures: `base · 2^(attempt-1)`.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Runs the dispatcher until the process ends.
pub async fn run(app: AppState) {
    let client = match simpul_connectors::net::guarded_client()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(app.config.bus.webhook_timeout_secs))
        .user_agent(concat!("simpul/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks are off: no HTTP client");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let committed = app.publisher.committed.clone();
    loop {
        if let Err(e) = round(&app, &client, &slots).await {
            tracing::warn!(error = %e, "webhook round failed");
        }
        tokio::select! {
            () = committed.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn round(
    app: &AppState,
    client: &reqwest::Client,
    slots: &Arc<Semaphore>,
) -> Result<(), simpul_catalog::CatalogError> {
    let state = &app.catalog.state;
    for webhook in state.webhooks(None).await? {
        let current = state
            .dataset(&webhook.dataset)
            .await?
            .and_then(|d| d.current_version);
        if let Some(current) = current.filter(|v| *v > webhook.cursor_version) {
            state.open_delivery(&webhook, current).await?;
        }
    }
    let lease = Duration::from_secs(app.config.bus.webhook_timeout_secs + 30);
    for delivery in state.due_deliveries(ROUND).await? {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        let lease_until = Utc::now() + lease;
        if !state.claim_delivery(&delivery, lease_until).await? {
            continue;
        }
        let app = app.clone();
        let client = client.clone();
        tokio::spawn(async move {
            attempt(&app, &client, delivery).await;
            drop(permit);
        });
    }
    Ok(())
}

async fn attempt(app: &AppState, client: &reqwest::Client, delivery: Delivery) {
    let state = &app.catalog.state;
    let webhook = match state.webhook(&delivery.webhook_id).await {
        Ok(Some(webhook)) => webhook,
        Ok(None) => {
            let outcome = AttemptOutcome::Failed {
                status: None,
                error: "the subscription was deleted".into(),
                retry_at: None,
            };
            let _ = state.record_attempt(&delivery.id, &outcome).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, delivery = %delivery.id, "cannot load a webhook");
            return;
        }
    };
    let started = Utc::now();
    let (outcome, sent) = send(app, client, &webhook, &delivery).await;
    let outcome = match outcome {
        Ok(status) => AttemptOutcome::Delivered { status },
        Err((status, error)) => {
            let attempts = delivery.attempts + 1;
            let retry_at = (attempts < webhook.max_attempts).then(|| {
                let base = Duration::from_secs(app.config.bus.webhook_backoff_secs);
                Utc::now() + backoff(base, attempts)
            });
            AttemptOutcome::Failed {
                status,
                error,
                retry_at,
            }
        }
    };
    if let Err(e) = state.record_attempt(&delivery.id, &outcome).await {
        tracing::warn!(error = %e, delivery = %delivery.id, "cannot record a webhook attempt");
    }
    let (status, result) = match &outcome {
        AttemptOutcome::Delivered { status } => (*status, "delivered".to_string()),
        AttemptOutcome::Failed {
            status,
            error,
            retry_at,
        } => (
            status.unwrap_or(0),
            match retry_at {
                Some(at) => format!("failed ({error}); retry at {}", at.to_rfc3339()),
                None => format!("failed ({error}); dead-lettered"),
            },
        ),
    };
    crate::metrics::webhook_attempt(matches!(outcome, AttemptOutcome::Delivered { .. }));
    app.messagelog
        .record(MessageEntry {
            message_id: delivery.id.clone(),
            at: Utc::now(),
            service: "webhook".into(),
            client_id: Some(webhook.client_id.clone()),
            peer: Some(webhook.url.clone()),
            dataset: Some(delivery.dataset.clone()),
            version: Some(delivery.to_version),
            request_bytes: sent.bytes,
            response_bytes: 0,
            status,
            payload_sha256: sent.sha256,
            detail: json!({
                "attempt": delivery.attempts + 1,
                "from_version": delivery.from_version,
                "rows": sent.rows,
                "result": result,
                "started_at": started.to_rfc3339(),
            }),
        })
        .await;
}

/// An error with its causes, `outer: inner: innermost`, so that a refused address says why.
fn reasons(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What an attempt sent.
#[derive(Default)]
struct Sent {
    bytes: u64,
    rows: u64,
    sha256: Option<String>,
}

type Failure = (Option<u16>, String);

async fn send(
    app: &AppState,
    client: &reqwest::Client,
    webhook: &Webhook,
    delivery: &Delivery,
) -> (Result<u16, Failure>, Sent) {
    let mut sent = Sent::default();
    // Names are checked as they resolve; an address written in the URL is checked here.
    if let Err(reason) = url::Url::parse(&webhook.url)
        .map_err(|e| e.to_string())
        .and_then(|url| simpul_connectors::net::check_outbound_url(&url))
    {
        return (Err((None, reason)), sent);
    }
    let body = match body(app, webhook, delivery, &mut sent).await {
        Ok(body) => body,
        Err(error) => return (Err((None, error)), sent),
    };
    sent.bytes = body.len() as u64;
    sent.sha256 = Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)));
    let timestamp = Utc::now().timestamp();
    let response = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("simpul-delivery", &delivery.id)
        .header("simpul-timestamp", timestamp.to_string())
        .header(
            "simpul-signature",
            signature(&webhook.secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    let outcome = match response {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) if response.status().is_redirection() => Err((
            Some(response.status().as_u16()),
            "the target redirected; redirects are not followed".to_string(),
        )),
        Ok(response) => Err((
            Some(response.status().as_u16()),
            format!("the target answered {}", response.status()),
        )),
        Err(e) if e.is_timeout() => Err((
            None,
            format!(
                "the target did not answer within {} s",
                app.config.bus.webhook_timeout_secs
            ),
        )),
        Err(e) => Err((
            None,
            format!("the target could not be reached: {}", reasons(&e)),
        )),
    };
    (outcome, sent)
}

/// The delivery's JSON body: its rows as the subscriber may read them now.
async fn body(
    app: &AppState,
    webhook: &Webhook,
    delivery: &Delivery,
    sent: &mut Sent,
) -> Result<Vec<u8>, String> {
    let client = app
        .catalog
        .state
        .client(&webhook.client_id)
        .await
        .map_err(|e| e.to_string())?
        .filter(|c| c.revoked_at.is_none())
        .ok_or_else(|| format!("the subscriber's key {} was revoked", webhook.client_id))?;
    let access = crate::auth::sql_access(&client);
    let feed = crate::changes::read(
        app,
        &access,
        "webhook",
        &webhook.dataset,
        delivery.from_version - 1,
        Some(delivery.to_version - delivery.from_version + 1),
    )
    .await
    .map_err(|e| e.detail().to_string())?;
    let mut stream = feed.rows;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch.map_err(|e| e.to_string())?;
        sent.rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    let rows = writer.into_inner();
    let rows: serde_json::Value = if rows.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&rows).map_err(|e| e.to_string())?
    };
    serde_json::to_vec(&json!({
        "delivery_id": delivery.id,
        "webhook_id": webhook.id,
        "dataset": delivery.dataset,
        "from_version": delivery.from_version,
        "to_version": delivery.to_version,
        "rows": rows,
    }))
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_an_hour() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 5), Duration::from_secs(32));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently with Python's hmac: hmac.new(b"rahasia",
        // b"1700000000.{}", hashlib.sha256).hexdigest().
        let sig = signature("rahasia", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=be2443a5e1a92cad67cb72eee5089a722f140561b03fe2427bfc46ee387d1213"
        );
        assert_ne!(sig, signature("lain", 1_700_000_000, b"{}"));
        assert_ne!(sig, signature("rahasia", 1_700_000_001, b"{}"));
    }
}
