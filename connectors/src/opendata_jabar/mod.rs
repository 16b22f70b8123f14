//! The `opendata_jabar` source: a preset of `rest_json` for the Open Data Jabar API.
//!
//! Responses are `{message, error, data: [...], metadata, meta: {skip, limit, total_record,
//! total_page}}`, paged with `skip` and `limit`; `error` other than 0 is a failure.

use serde::Deserialize;

use crate::raw::SourceError;
use crate::rest_json::{
    Pagination, RestJson, RestJsonConfig, default_backoff, default_concurrency, default_retries,
    default_timeout,
};

/// An Open Data Jabar dataset.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpendataJabarConfig {
    /// The dataset's API URL
    /// (`https://data.jabarprov.go.id/api-backend/bigdata/<opd>/<dataset>`).
    pub url: String,
    /// Records per page (the API's `limit`).
    #[serde(default = "default_limit")]
    pub limit: u64,
    /// Pages fetched at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// At most this many requests per second.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Extra query parameters (filters such as `where`).
    #[serde(default)]
    pub query: Vec<(String, String)>,
}

/// Records per page when a preset's `limit` is not given.
pub(crate) fn default_limit() -> u64 {
    1000
}

impl OpendataJabarConfig {
    /// The `rest_json` configuration this preset stands for.
    pub fn rest_json(&self) -> RestJsonConfig {
        RestJsonConfig {
            url: self.url.clone(),
            query: self.query.clone(),
            headers: Vec::new(),
            auth: Default::default(),
            pagination: Pagination::OffsetLimit {
                offset_param: "skip".into(),
                limit_param: "limit".into(),
                limit: self.limit,
                total_pointer: Some("/meta/total_record".into()),
            },
            record_selector: "/data".into(),
            error_pointer: Some("/error".into()),
            success_pointer: None,
            cursor: None,
            timeout_seconds: default_timeout(),
            max_retries: default_retries(),
            backoff_seconds: default_backoff(),
            requests_per_second: self.requests_per_second,
            concurrency: self.concurrency,
        }
    }

    /// The source.
    pub fn source(&self) -> Result<RestJson, SourceError> {
        RestJson::new(self.rest_json())
    }
}

#[cfg(test)]
mod tests;
