//! SMS for the modules: checking a gateway's signed inbound webhook, and sending through
//! the outbound adapter (the log by default, an HTTP gateway by configuration). Each module
//! keeps its own messages with their outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;

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

/// A gateway's inbound message, checked: signed with the shared secret, from a valid phone
/// number, not empty.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The sender, E.164.
    pub phone: String,
    /// The message, trimmed.
    pub text: String,
    /// When the gateway received it (not after now).
    pub received_at: DateTime<Utc>,
    /// SHA-256 of sender, time and text: the same message twice is one message.
    pub dedup_key: String,
}

#[derive(serde::Deserialize)]
struct InboundBody {
    from: String,
    text: String,
    received_at: String,
}

impl Inbound {
    /// Checks the `Simpul-Timestamp`/`Simpul-Signature` headers against `secret` and reads
    /// `{"from", "text", "received_at"}`. A bad signature is 401; a bad body 400 or 422.
    pub fn parse(
        secret: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Self, crate::api::ApiError> {
        use crate::api::ApiError;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        verify(
            secret,
            header("simpul-timestamp"),
            header("simpul-signature"),
            body,
            Utc::now(),
        )
        .map_err(|e| {
            metrics::counter!("simpul_sms_refused_total").increment(1);
            ApiError::unauthorized(e)
        })?;
        let sms: InboundBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be {{\"from\", \"text\", \"received_at\"}}: {e}"
            ))
        })?;
        let phone = simpul_schemas::formats::normalize_telepon(&sms.from)
            .map_err(|e| ApiError::unprocessable(format!("from: {e}")))?;
        let received_at = DateTime::parse_from_rfc3339(&sms.received_at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::unprocessable(format!(
                    "received_at must be RFC 3339 with an offset; got '{}'",
                    sms.received_at
                ))
            })?
            .min(Utc::now());
        let text = sms.text.trim().to_string();
        if text.is_empty() {
            return Err(ApiError::unprocessable("the SMS is empty"));
        }
        let dedup_key = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(
                format!(
                    "{phone}\n{}\n{text}",
                    simpul_catalog::timestamp(received_at)
                )
                .as_bytes(),
            ))
        };
        Ok(Self {
            phone,
            text,
            received_at,
            dedup_key,
        })
    }
}

/// The outbound adapter: log, or `POST {"to", "text"}` to an HTTP gateway with a bearer
/// token.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: Option<(String, String, reqwest::Client)>,
}

impl Gateway {
    /// The log adapter when `url` is empty.
    pub fn new(url: &str, token: &str) -> Self {
        let http = (!url.trim().is_empty()).then(|| {
            (
                url.trim().to_string(),
                token.to_string(),
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default(),
            )
        });
        Self { http }
    }

    /// Sends one message; returns `logged`, `sent` or `failed` with the reason.
    pub async fn deliver(&self, to: &str, text: &str) -> (&'static str, Option<String>) {
        let outcome = match &self.http {
            None => {
                tracing::info!(%to, %text, "SMS (log adapter; configure a gateway URL to send)");
                ("logged", None)
            }
            Some((url, token, client)) => {
                let mut request = client
                    .post(url)
                    .json(&serde_json::json!({"to": to, "text": text}));
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
        if let Some(e) = &outcome.1 {
            metrics::counter!("simpul_sms_failures_total").increment(1);
            tracing::warn!(%to, error = %e, "SMS not sent");
        }
        outcome
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
