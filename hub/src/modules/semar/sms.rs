//! SEMAR's SMS: replies and assignment notices through the shared gateway adapter, each kept
//! in `semar_sms` with its outcome.

use chrono::Utc;
use simpul_catalog::{StateStore, timestamp};

use crate::config::SemarConfig;

/// Where replies go.
#[derive(Debug, Clone)]
pub struct Outbound {
    gateway: crate::sms::Gateway,
}

impl Outbound {
    /// From the `[semar]` settings.
    pub fn new(config: &SemarConfig) -> Self {
        Self {
            gateway: crate::sms::Gateway::new(&config.sms_gateway_url, &config.sms_gateway_token),
        }
    }

    /// Sends `text` to `phone` in the background and keeps the message with its outcome.
    pub fn send(&self, state: &StateStore, phone: &str, text: &str, call_id: Option<&str>) {
        let (state, phone, text) = (state.clone(), phone.to_string(), text.to_string());
        let call_id = call_id.map(str::to_string);
        let gateway = self.gateway.clone();
        tokio::spawn(async move {
            let (status, error) = gateway.deliver(&phone, &text).await;
            let stored = sqlx::query(
                "INSERT INTO semar_sms (id, direction, phone, text, at, call_id, status, error) \
                 VALUES ($1, 'out', $2, $3, $4, $5, $6, $7)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&phone)
            .bind(&text)
            .bind(timestamp(Utc::now()))
            .bind(call_id)
            .bind(status)
            .bind(error)
            .execute(state.pool())
            .await;
            if let Err(e) = stored {
                tracing::warn!(error = %e, "keeping an outbound SEMAR SMS failed");
            }
        });
    }
}
