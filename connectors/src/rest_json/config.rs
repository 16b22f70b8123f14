//! How a `rest_json` source is configured (the `source` table of a pipeline).

use serde::Deserialize;

/// A generic HTTP JSON API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestJsonConfig {
    /// The first page's URL.
    pub url: String,
    /// Extra query parameters sent with every request.
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// How requests prove who sends them.
    #[serde(default)]
    pub auth: Auth,
    /// How the next page is found.
    #[serde(default)]
    pub pagination: Pagination,
    /// A JSON pointer to the array of records in a response (`/data`); empty for a response
    /// that is the array itself.
    #[serde(default)]
    pub record_selector: String,
    /// A JSON pointer to a field that is non-zero or `true` when the API reports a failure
    /// inside a 200 response (Open Data Jabar's `/error`).
    #[serde(default)]
    pub error_pointer: Option<String>,
    /// A JSON pointer to a field that must be `true` in every response (CKAN's `/success`);
    /// anything else fails the read with the response's error message.
    #[serde(default)]
    pub success_pointer: Option<String>,
    /// Incremental reads: the record field whose largest value is remembered, and the query
    /// parameter that sends it back on the next run.
    #[serde(default)]
    pub cursor: Option<CursorParam>,
    /// Seconds before a request is abandoned.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Retries after a connection error, a timeout, a 429 or a 5xx, with exponential backoff
    /// and jitter.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// The first backoff, doubled on each retry.
    #[serde(default = "default_backoff")]
    pub backoff_seconds: f64,
    /// At most this many requests per second to this source; unlimited when absent.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Pages fetched at the same time when the API gives a total (offset and page paging).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

pub(crate) fn default_timeout() -> f64 {
    30.0
}

pub(crate) fn default_retries() -> u32 {
    5
}

pub(crate) fn default_backoff() -> f64 {
    0.5
}

pub(crate) fn default_concurrency() -> usize {
    4
}

/// Request authentication. Secrets are given as `env:NAME` in pipeline files and resolved
/// before the config reaches the connector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// A key in a header (`APIkey: …`, `X-API-Key: …`).
    ApiKeyHeader {
        /// The header's name.
        header: String,
        /// The key.
        key: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A key in the query string (`?api_key=…`).
    QueryKey {
        /// The parameter's name.
        param: String,
        /// The key.
        key: String,
    },
}

/// How pages follow one another.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One response holds everything.
    #[default]
    None,
    /// `?page=1&size=100`, counting pages.
    PageSize {
        /// The page number's parameter.
        #[serde(default = "page_param")]
        page_param: String,
        /// The page size's parameter.
        #[serde(default = "size_param")]
        size_param: String,
        /// Records per page.
        size: u64,
        /// The first page's number (usually 1).
        #[serde(default = "first_page")]
        first_page: u64,
        /// A JSON pointer to the number of pages, when the API gives it.
        #[serde(default)]
        total_pages_pointer: Option<String>,
    },
    /// `?skip=0&limit=100` (or `offset`), counting records.
    OffsetLimit {
        /// The offset's parameter.
        #[serde(default = "offset_param")]
        offset_param: String,
        /// The limit's parameter.
        #[serde(default = "limit_param")]
        limit_param: String,
        /// Records per page.
        limit: u64,
        /// A JSON pointer to the total number of records, when the API gives it.
        #[serde(default)]
        total_pointer: Option<String>,
    },
    /// A token from the response goes back as a parameter; no token means the last page.
    Cursor {
        /// The parameter that carries the token.
        param: String,
        /// A JSON pointer to the next token in the response.
        pointer: String,
    },
    /// The `Link: <…>; rel="next"` header (RFC 8288).
    LinkHeader,
    /// The next page's full URL in the body; absent, empty or null means the last page.
    NextUrl {
        /// A JSON pointer to the URL.
        pointer: String,
    },
}

fn page_param() -> String {
    "page".into()
}

fn size_param() -> String {
    "size".into()
}

fn first_page() -> u64 {
    1
}

fn offset_param() -> String {
    "offset".into()
}

fn limit_param() -> String {
    "limit".into()
}

/// An incremental cursor: records are read from the last run's largest value on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CursorParam {
    /// The record field that grows (`updated_at`, `id`).
    pub field: String,
    /// The query parameter that sends the last value (`updated_since`).
    pub param: String,
}
