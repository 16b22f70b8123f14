//! Extractors whose rejections are problem+json like every other error.

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::server::AppState;

/// A JSON body. Any Content-Type is accepted (so `curl -d '{…}'` works); malformed or
/// oversized bodies get a problem document.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonWithBytes(value, _) = JsonWithBytes::from_request(request, state).await?;
        Ok(ApiJson(value))
    }
}

/// [`ApiJson`] that keeps the body's bytes too, for a request whose `Idempotency-Key` binds
/// the body it came with.
pub struct JsonWithBytes<T>(pub T, pub Bytes);

impl<S, T> FromRequest<S> for JsonWithBytes<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = AppState::from_ref(state).config.http.body_limit_bytes;
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(limit)
                } else {
                    ApiError::bad_request(rejection.body_text())
                }
            })?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not the JSON this endpoint expects: {e}"
            ))
        })?;
        Ok(JsonWithBytes(value, body))
    }
}

/// The request's media type, lowercase, without parameters (`text/csv; charset=utf-8` →
/// `text/csv`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// The body's declared length, refused with 413 when it is past `limit`.
pub fn declared_length(headers: &HeaderMap, limit: u64) -> Result<Option<u64>, super::ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(super::ApiError::too_large(limit));
    }
    Ok(declared)
}

/// The most a route that has not yet checked who sent it reads (Open311 posts before their
/// `api_key`, SMS webhooks before their signature, the login and logout forms).
pub const UNAUTHENTICATED_BODY_LIMIT: u64 = 64 * 1024;

/// Reads a body of at most `limit` bytes. The answer is `too_large` as soon as the declared
/// length or the bytes read pass the limit; nothing past it is read.
pub async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    too_large: impl Fn() -> ApiError,
) -> Result<Bytes, ApiError> {
    let declared = declared_length(headers, limit).map_err(|_| too_large())?;
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the body was interrupted: {e}")))?;
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// Reads the body of a route that has not yet checked who sent it, at most
/// [`UNAUTHENTICATED_BODY_LIMIT`] bytes.
pub async fn read_unauthenticated(body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    read_limited(body, headers, UNAUTHENTICATED_BODY_LIMIT, || {
        ApiError::payload_too_large(format!(
            "this route reads at most {UNAUTHENTICATED_BODY_LIMIT} bytes before it knows the sender"
        ))
    })
    .await
}
