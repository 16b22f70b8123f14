//! The SMS centre fallback: signed inbound webhooks from a gateway, and replies through an
//! outbound adapter (the log by default, an HTTP gateway by configuration). Every message in
//! and out is kept in `semar_sms`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;
use simpul_catalog::{StateStore, timestamp};

use crate::config::SemarConfig;

/// How far a webhook's `Simpul-Timestamp` may be from the hub's clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Checks `Simpul-Signature: sha256=<hex>` over `"<timestamp>.<body>"` with the shared
/// secret, and that the timestamp (Unix seconds) is within five minutes of `now`.
pub fn verify(
    secret: &str,
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let sent_at = timestamp_header
        .ok_or("the Simpul-Timestamp header (Unix seconds) is missing")?
        .trim();
    let seconds: i64 = sent_at
        .parse()
        .map_err(|_| format!("Simpul-Timestamp must be Unix seconds; got '{sent_at}'"))?;
    if (now.timestamp() - seconds).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(format!(
            "Simpul-Timestamp {seconds} is more than {SIGNATURE_TOLERANCE_SECS} s from the hub's clock ({}): a replayed or delayed webhook",
            now.timestamp()
        ));
    }
    let signature = signature_header
        .ok_or("the Simpul-Signature header (sha256=<hex HMAC>) is missing")?
        .trim();
    let hex_digest = signature
        .strip_prefix("sha256=")
        .ok_or("Simpul-Signature must be sha256=<hex HMAC-SHA256>")?;
    let digest = hex::decode(hex_digest).map_err(|_| "Simpul-Signature is not hex")?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = Vec::with_capacity(sent_at.len() + 1 + body.len());
    signed.extend_from_slice(sent_at.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &digest).map_err(|_| {
        "Simpul-Signature does not match the body and timestamp for the shared secret".to_string()
    })
}

/// Where replies go.
#[derive(Debug, Clone)]
pub struct Outbound {
    gateway: Option<(String, String, reqwest::Client)>,
}

impl Outbound {
    /// From the `[semar]` settings.
    pub fn new(config: &SemarConfig) -> Self {
        let gateway = (!config.sms_gateway_url.trim().is_empty()).then(|| {
            (
                config.sms_gateway_url.trim().to_string(),
                config.sms_gateway_token.clone(),
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default(),
            )
        });
        Self { gateway }
    }

    /// Sends `text` to `phone` in the background and keeps the message with its outcome.
    pub fn send(&self, state: &StateStore, phone: &str, text: &str, call_id: Option<&str>) {
        let (state, phone, text) = (state.clone(), phone.to_string(), text.to_string());
        let call_id = call_id.map(str::to_string);
        let gateway = self.gateway.clone();
        tokio::spawn(async move {
            let (status, error) = match &gateway {
                None => {
                    tracing::info!(to = %phone, %text, "SEMAR SMS (log adapter; set semar.sms_gateway_url to send)");
                    ("logged", None)
                }
                Some((url, token, client)) => {
                    let mut request = client
                        .post(url)
                        .json(&serde_json::json!({"to": phone, "text": text}));
                    if !token.is_empty() {
                        request = request.bearer_auth(token);
                    }
                    match request.send().await {
                        Ok(r) if r.status().is_success() => ("sent", None),
                        Ok(r) => (
                            "failed",
                            Some(format!("the gateway answered {}", r.status())),
                        ),
                        Err(e) => ("failed", Some(format!("cannot reach the gateway: {e}"))),
                    }
                }
            };
            if let Some(e) = &error {
                metrics::counter!("simpul_semar_sms_failures_total").increment(1);
                tracing::warn!(to = %phone, error = %e, "SEMAR SMS not sent");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut signed = ts.as_bytes().to_vec();
        signed.push(b'.');
        signed.extend_from_slice(body);
        format!("sha256={}", hex::encode(hmac::sign(&key, &signed).as_ref()))
    }

    #[test]
    fn signatures_bind_the_body_the_time_and_the_secret() {
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        let body = br#"{"from":"+6281234567890","text":"tolong"}"#;
        let good = sign("rahasia", &ts, body);
        assert!(verify("rahasia", Some(&ts), Some(&good), body, now).is_ok());
        assert!(verify("lain", Some(&ts), Some(&good), body, now).is_err());
        assert!(verify("rahasia", Some(&ts), Some(&good), b"{}", now).is_err());
        let old = (now.timestamp() - 301).to_string();
        let stale = sign("rahasia", &old, body);
        assert!(
            verify("rahasia", Some(&old), Some(&stale), body, now)
                .unwrap_err()
                .contains("replayed")
        );
        assert!(verify("rahasia", None, Some(&good), body, now).is_err());
        assert!(verify("rahasia", Some(&ts), Some("md5=00"), body, now).is_err());
    }
}
