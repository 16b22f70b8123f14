//! Fetching one page: authentication, timeouts, a per-source rate limit, and retries with
//! exponential backoff and jitter on connection errors, timeouts, 429 (honouring
//! `Retry-After`) and 5xx. Anything else fails at once, naming the URL and the status.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use tokio::time::Instant;

use super::config::{Auth, RestJsonConfig};
use crate::raw::SourceError;

/// The longest `Retry-After` obeyed; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// One fetched page.
#[derive(Debug)]
pub(super) struct Page {
    /// The page's URL, without credentials.
    pub url: String,
    /// The parsed body.
    pub body: serde_json::Value,
    /// The `Link` header's `rel="next"` target, if any.
    pub link_next: Option<String>,
}

/// An HTTP client for one source.
pub(super) struct Client {
    http: reqwest::Client,
    config: RestJsonConfig,
    next_slot: Mutex<Option<Instant>>,
}

impl Client {
    pub(super) fn new(config: RestJsonConfig) -> Result<Self, SourceError> {
        let http = crate::net::guarded_client()
            .timeout(Duration::from_secs_f64(config.timeout_seconds.max(0.001)))
            .user_agent(concat!("simpul/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Connect {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            config,
            next_slot: Mutex::new(None),
        })
    }

    /// GETs a page, retrying what is worth retrying.
    pub(super) async fn get(&self, url: &str) -> Result<Page, SourceError> {
        let parsed = url::Url::parse(url).map_err(|e| SourceError::Api {
            url: url.to_string(),
            reason: format!("not a URL: {e}"),
        })?;
        crate::net::check_outbound_url(&parsed).map_err(|reason| SourceError::Connect {
            url: url.to_string(),
            reason,
        })?;
        let mut attempt = 0;
        loop {
            self.wait_for_slot().await;
            let (error, wait) = match self.request(url).send().await {
                Ok(response) if response.status().is_success() => {
                    return self.page(url, response).await;
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    let error = SourceError::Http {
                        url: url.to_string(),
                        status: status.as_u16(),
                        reason: body_excerpt(response).await,
                    };
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) => {
                    let error = SourceError::Connect {
                        url: url.to_string(),
                        reason: plain_reason(&e),
                    };
                    if !(e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            attempt += 1;
            if attempt > self.config.max_retries {
                return Err(error.after_attempts(attempt));
            }
            tracing::warn!(%url, attempt, %error, "retrying");
            tokio::time::sleep(wait.unwrap_or_else(|| self.backoff(attempt))).await;
        }
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        // A query key is added here, so that the URLs in messages and positions never hold it.
        let target = match (&self.config.auth, url::Url::parse(url)) {
            (Auth::QueryKey { param, key }, Ok(mut parsed)) => {
                parsed.query_pairs_mut().append_pair(param, key);
                parsed.to_string()
            }
            _ => url.to_string(),
        };
        let mut request = self.http.get(target).header("Accept", "application/json");
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        match &self.config.auth {
            Auth::None | Auth::QueryKey { .. } => request,
            Auth::Bearer { token } => request.bearer_auth(token),
            Auth::ApiKeyHeader { header, key } => request.header(header, key),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        }
    }

    async fn page(&self, url: &str, response: reqwest::Response) -> Result<Page, SourceError> {
        let link_next = next_link(response.headers());
        let bytes = response.bytes().await.map_err(|e| SourceError::Connect {
            url: url.to_string(),
            reason: plain_reason(&e),
        })?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| SourceError::Api {
                url: url.to_string(),
                reason: format!("the response is not JSON: {e}"),
            })?;
        if let Some(pointer) = &self.config.error_pointer
            && let Some(flag) = body.pointer(pointer)
            && reports_failure(flag)
        {
            return Err(SourceError::Api {
                url: url.to_string(),
                reason: format!(
                    "the API reports an error ({pointer} = {flag}): {}",
                    body.get("message")
                        .map_or_else(String::new, |m| m.to_string())
                ),
            });
        }
        if let Some(pointer) = &self.config.success_pointer
            && body.pointer(pointer) != Some(&serde_json::Value::Bool(true))
        {
            let message = ["/error/message", "/error", "/message"]
                .iter()
                .find_map(|p| body.pointer(p))
                .map_or_else(String::new, |m| m.to_string());
            return Err(SourceError::Api {
                url: url.to_string(),
                reason: format!("the API does not report success ({pointer}): {message}"),
            });
        }
        Ok(Page {
            url: url.to_string(),
            body,
            link_next,
        })
    }

    /// Waits until this source may send another request.
    async fn wait_for_slot(&self) {
        let Some(rate) = self.config.requests_per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// `backoff · 2^(attempt-1)`, times a random factor in [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.backoff_seconds.max(0.0) * 2f64.powi(attempt as i32 - 1);
        let jitter = rand::rng().random_range(0.5..1.5);
        Duration::from_secs_f64((base * jitter).min(MAX_RETRY_AFTER.as_secs_f64()))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

/// Whether an error flag in a body means failure: `true`, a non-zero number, a non-empty text.
fn reports_failure(flag: &serde_json::Value) -> bool {
    match flag {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => !s.is_empty() && s != "0",
        _ => false,
    }
}

/// The first 200 characters of an error body, for the message.
async fn body_excerpt(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return "no body".into();
    }
    let excerpt: String = text.chars().take(200).collect();
    if excerpt.len() < text.len() {
        format!("{excerpt}…")
    } else {
        excerpt
    }
}

/// A reqwest error in words, without the URL (which the caller names, without credentials).
fn plain_reason(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = None;
    while let Some(inner) = source {
        detail = Some(inner.to_string());
        source = inner.source();
    }
    match detail {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_among_several() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "link",
            r#"<https://api.example/items?page=1>; rel="prev", <https://api.example/items?page=3>; rel="next""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.example/items?page=3")
        );
        headers.insert(
            "link",
            r#"<https://api.example/items?page=1>; rel="prev""#.parse().unwrap(),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn error_flags_follow_open_data_jabar() {
        assert!(!reports_failure(&serde_json::json!(0)));
        assert!(reports_failure(&serde_json::json!(1)));
        assert!(reports_failure(&serde_json::json!(true)));
        assert!(!reports_failure(&serde_json::json!("")));
    }
}
