//! Requests that write only the state store (a SEMAR call, a complaint and its steps), made
//! safe to retry with an `Idempotency-Key`.
//!
//! The request claims the key as this process, picks the id of the row it is about to write
//! and stores it as the key's intent, writes the row in one transaction, and stores its
//! answer under the key. A retry with the same key and body gets that answer again
//! (`Idempotency-Replayed: true`); another body under the key is refused. A process that
//! dies in between leaves the key `in_progress` with its intent, and recovery
//! ([`crate::recovery`]) settles it: the row is there, so the key gets the answer built
//! from it ([`stored_answer`]); or it is not, so the key is released for a fresh attempt.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simpul_catalog::{CatalogError, IdempotencyClaim};

use crate::api::ApiError;
use crate::server::AppState;

/// The longest key accepted.
const MAX_KEY_CHARS: usize = 200;

/// The request's `Idempotency-Key`, if it sent one that is usable.
pub(crate) fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the Idempotency-Key header is 1 to {MAX_KEY_CHARS} visible ASCII characters (a UUID is fine)"
            ))
        })?;
    Ok(Some(key.to_string()))
}

/// What [`begin`] found under the key.
pub(crate) enum Begun {
    /// The request runs now: write the row with this id, then [`Claimed::finish`].
    Fresh(Claimed),
    /// Answered before: send this again.
    Answered(Response),
}

/// A key claimed by this request, with the id its row gets.
pub(crate) struct Claimed {
    client: String,
    stored_key: String,
    /// The id of the row the request writes.
    pub id: String,
}

/// Claims `key` (in `scope`, so that one module's keys never meet another's) for `body`,
/// and stores the intent: `kind` and the new row's id, with `context` (for example the
/// case a step belongs to).
pub(crate) async fn begin(
    app: &AppState,
    client: &str,
    scope: &str,
    key: &str,
    body: &[u8],
    kind: &str,
    context: Value,
) -> Result<Begun, ApiError> {
    let stored_key = format!("{scope}:{key}");
    let sha256 = hex::encode(Sha256::digest(body));
    let state = &app.catalog.state;
    match state
        .claim_idempotency_key(client, &stored_key, &sha256)
        .await?
    {
        IdempotencyClaim::Proceed => {}
        IdempotencyClaim::Replay { status, body } => {
            return Ok(Begun::Answered(crate::api::replay(status, body)));
        }
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::conflict(format!(
                "Idempotency-Key '{key}' was already used for a different request"
            )));
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::conflict(format!(
                "the request with Idempotency-Key '{key}' is still running; retry in a moment"
            ))
            .with_retry_after(1));
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut intent = json!({ "kind": kind, "id": id });
    if let (Some(intent), Value::Object(context)) = (intent.as_object_mut(), context) {
        intent.extend(context);
    }
    let claimed = Claimed {
        client: client.to_string(),
        stored_key,
        id,
    };
    if let Err(e) = state
        .record_idempotency_intents(&[(claimed.client.clone(), claimed.stored_key.clone(), intent)])
        .await
    {
        claimed.release(app).await;
        return Err(e.into());
    }
    Ok(Begun::Fresh(claimed))
}

impl Claimed {
    /// Stores the request's answer under the key and sends it; an error releases the key,
    /// so that a retry runs afresh.
    pub(crate) async fn finish(
        self,
        app: &AppState,
        outcome: Result<(StatusCode, Value), ApiError>,
    ) -> Result<Response, ApiError> {
        match outcome {
            Ok((status, body)) => {
                simpul_pipelines::fault::point("state_write.before_answer");
                let body = body.to_string();
                app.catalog
                    .state
                    .complete_idempotency_key(
                        &self.client,
                        &self.stored_key,
                        status.as_u16(),
                        &body,
                    )
                    .await?;
                Ok(crate::api::answer(status.as_u16(), body))
            }
            Err(e) => {
                self.release(app).await;
                Err(e)
            }
        }
    }

    async fn release(&self, app: &AppState) {
        if let Err(e) = app
            .catalog
            .state
            .release_idempotency_key(&self.client, &self.stored_key)
            .await
        {
            // Recovery releases it once this process is gone; until then a retry hears 409.
            tracing::warn!(client = %self.client, key = %self.stored_key, error = %e, "cannot release an idempotency key");
        }
    }
}

/// The open module whose requests store intents of `kind`.
pub(crate) fn module_for<'a>(
    app: &'a AppState,
    kind: &str,
) -> Option<&'a std::sync::Arc<dyn crate::modules::registry::Module>> {
    app.modules
        .iter()
        .find(|module| module.intent_kinds().contains(&kind))
}

/// The answer a request would have sent, built by `module` from the row its intent names:
/// `Ok(None)` when the row was never written.
pub(crate) async fn stored_answer(
    module: &dyn crate::modules::registry::Module,
    kind: &str,
    intent: &Value,
) -> Result<Option<(u16, String)>, CatalogError> {
    let id = intent
        .get("id")
        // Keys claimed before the intents had one shape named the call `call_id`.
        .or_else(|| intent.get("call_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| CatalogError::Invalid("the intent names no row".into()))?;
    module.stored_answer(kind, id).await
}
