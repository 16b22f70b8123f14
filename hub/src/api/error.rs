//! The one error type of the HTTP API, written as RFC 9457 problem+json.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use simpul_catalog::CatalogError;
use simpul_pipelines::IngestError;

/// An error a caller can act on: a status, a short title and a detail in plain words.
#[derive(Debug)]
pub struct ApiError(Box<Problem>);

#[derive(Debug)]
struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
    members: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            retry_after: None,
            members: serde_json::Map::new(),
        }))
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401: no key, or a key that is unknown or revoked.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: the key is valid but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404: the thing named does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 406: no response format in the Accept header is one we produce.
    pub fn not_acceptable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            detail,
        )
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!(
                "the request body is larger than the limit of {limit} bytes (http.body_limit_bytes)"
            ),
        )
    }

    /// 413 with its own reason (a limit other than the request body's).
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    /// 415: a body in a format we cannot read.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 422: the body parses but cannot be used.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "Unprocessable content",
            detail,
        )
    }

    /// 503: a dependency is down; try again later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 504: the query ran past its time limit.
    pub fn timeout(seconds: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "query-timeout",
            "Query timed out",
            format!(
                "the query did not finish within {seconds} s (query.timeout_secs); narrow it or add filters"
            ),
        )
    }

    /// 500: something broke on our side. The detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the hub failed to handle this request; the error is in its log",
        )
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after = Some(seconds);
        self
    }

    /// Adds an extension member to the problem body (RFC 9457 §3.2), such as the states
    /// that may follow.
    pub fn with_member(mut self, name: &str, value: serde_json::Value) -> Self {
        self.0.members.insert(name.to_string(), value);
        self
    }

    /// What went wrong, in plain words.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }
}

impl ApiError {
    /// The problem+json body, for answers that add their own members to it.
    pub fn problem(&self) -> serde_json::Map<String, serde_json::Value> {
        let problem = &self.0;
        let body = json!({
            "type": format!("https://simpul.purwakartakab.go.id/problems/{}", problem.kind),
            "title": problem.title,
            "status": problem.status.as_u16(),
            "detail": problem.detail,
        });
        match body {
            serde_json::Value::Object(mut map) => {
                for (name, value) in &problem.members {
                    map.entry(name.clone()).or_insert_with(|| value.clone());
                }
                map
            }
            _ => serde_json::Map::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::Value::Object(self.problem());
        let problem = *self.0;
        let mut response = (problem.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = problem.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound(what) => {
                ApiError::not_found(format!("dataset {what} does not exist"))
            }
            CatalogError::InvalidId(e) => ApiError::bad_request(e.to_string()),
            CatalogError::Invalid(m) | CatalogError::SqlSyntax(m) => ApiError::bad_request(m),
            CatalogError::ReadOnly(m) => Self::new(
                StatusCode::BAD_REQUEST,
                "read-only",
                "SQL access is read-only",
                m,
            ),
            CatalogError::NoSuchVersion(m) | CatalogError::UnknownMember(m) => {
                ApiError::not_found(m)
            }
            CatalogError::Conflict(m) => ApiError::conflict(m),
            CatalogError::Forbidden(m) => ApiError::forbidden(m),
            CatalogError::DataFusion(e) => datafusion_error(*e),
            CatalogError::Objects(m) => ApiError::unavailable(m),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::query::Busy> for ApiError {
    fn from(busy: crate::query::Busy) -> Self {
        ApiError::unavailable(busy.message).with_retry_after(busy.retry_after_secs)
    }
}

/// Planning errors are the caller's (a misspelt column); resource and I/O errors are ours.
pub fn datafusion_error(error: datafusion::error::DataFusionError) -> ApiError {
    use datafusion::error::DataFusionError as E;
    if let Some(stopped) = crate::query::QueryStopped::behind(&error) {
        return match stopped.outcome {
            simpul_catalog::QueryOutcome::TimedOut => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "query-timeout",
                "Query timed out",
                stopped.message.clone(),
            ),
            _ => ApiError::bad_request(stopped.message.clone()),
        };
    }
    match error.find_root() {
        E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) => {
            ApiError::bad_request(error.find_root().to_string())
        }
        E::Execution(_) | E::ArrowError(..) => ApiError::bad_request(error.find_root().to_string()),
        E::ResourcesExhausted(m) => {
            ApiError::unavailable(format!("the query needs more memory than allowed: {m}"))
        }
        _ => ApiError::internal(error),
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::ColumnMismatch { .. } | IngestError::NoColumns(_) => {
                ApiError::unprocessable(error.to_string())
            }
            IngestError::Source(e) => ApiError::unprocessable(e.to_string()),
            IngestError::Invalid(m) => ApiError::conflict(m),
            IngestError::Catalog(e) => e.into(),
            IngestError::Arrow(e) => ApiError::internal(e),
        }
    }
}
