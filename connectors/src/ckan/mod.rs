//! The `ckan` source: a resource of a CKAN portal (Satu Data Indonesia, many provincial and
//! city portals) read through the CKAN Action API.
//!
//! Records come from `datastore_search`, paged by `offset` and `limit` with the response's
//! `result.total`, so pages after the first are fetched `concurrency` at a time. Every
//! response must say `success: true`. When a `package_id` is given, `package_show` supplies
//! the title, description, organization, licence and tags that the catalog copies.

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::opendata_jabar::default_limit;
use crate::raw::SourceError;
use crate::rest_json::{
    Pagination, RestJson, RestJsonConfig, default_backoff, default_concurrency, default_retries,
    default_timeout,
};
use crate::source::{ReadEvent, Source, SourceMetadata, StreamInfo};

/// A CKAN datastore resource.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CkanConfig {
    /// The portal's base URL (`https://data.go.id`); the Action API is under `/api/3/action/`.
    pub url: String,
    /// The datastore resource to read.
    pub resource_id: String,
    /// The dataset (package) the resource belongs to, for its metadata.
    #[serde(default)]
    pub package_id: Option<String>,
    /// A CKAN API token, sent as the `Authorization` header (private datasets only).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Records per page (`limit`; CKAN caps it at 32,000 by default).
    #[serde(default = "default_limit")]
    pub limit: u64,
    /// Pages fetched at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// At most this many requests per second.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Extra `datastore_search` parameters (`q`, `filters`, `sort`), as [name, value] pairs.
    #[serde(default)]
    pub query: Vec<(String, String)>,
}

/// A `ckan` source.
pub struct Ckan {
    config: CkanConfig,
    records: RestJson,
}

impl CkanConfig {
    /// The Action API URL of `action` on this portal.
    fn action_url(&self, action: &str) -> Result<Url, SourceError> {
        let base = format!("{}/", self.url.trim_end_matches('/'));
        Url::parse(&base)
            .and_then(|b| b.join(&format!("api/3/action/{action}")))
            .map_err(|e| SourceError::Config {
                connector: "ckan".into(),
                reason: format!("url '{}' is not a valid URL: {e}", self.url),
            })
    }

    /// The `rest_json` configuration of `datastore_search` for this resource.
    pub fn rest_json(&self) -> Result<RestJsonConfig, SourceError> {
        let mut query = vec![("resource_id".to_string(), self.resource_id.clone())];
        query.extend(self.query.iter().cloned());
        let headers = self
            .api_key
            .iter()
            .map(|key| ("Authorization".to_string(), key.clone()))
            .collect();
        Ok(RestJsonConfig {
            url: self.action_url("datastore_search")?.to_string(),
            query,
            headers,
            auth: Default::default(),
            pagination: Pagination::OffsetLimit {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                limit: self.limit,
                total_pointer: Some("/result/total".into()),
            },
            record_selector: "/result/records".into(),
            error_pointer: None,
            success_pointer: Some("/success".into()),
            cursor: None,
            timeout_seconds: default_timeout(),
            max_retries: default_retries(),
            backoff_seconds: default_backoff(),
            requests_per_second: self.requests_per_second,
            concurrency: self.concurrency,
        })
    }

    /// The source.
    pub fn source(&self) -> Result<Ckan, SourceError> {
        if self.resource_id.trim().is_empty() {
            return Err(SourceError::Config {
                connector: "ckan".into(),
                reason: "resource_id is empty".into(),
            });
        }
        Ok(Ckan {
            records: RestJson::new(self.rest_json()?)?,
            config: self.clone(),
        })
    }
}

impl Source for Ckan {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json")).unwrap_or(Value::Null)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        self.records.check()
    }

    fn discover(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>> {
        self.records.discover()
    }

    fn metadata(&self) -> BoxFuture<'_, Result<Option<SourceMetadata>, SourceError>> {
        async move {
            let Some(package) = &self.config.package_id else {
                return Ok(None);
            };
            let mut url = self.config.action_url("package_show")?;
            url.query_pairs_mut().append_pair("id", package);
            let body = self.records.get_json(url.as_str()).await?;
            Ok(Some(package_metadata(&body["result"])))
        }
        .boxed()
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Value>,
    ) -> BoxStream<'_, Result<ReadEvent, SourceError>> {
        self.records.read(stream, state)
    }
}

/// The catalog's view of a `package_show` result.
fn package_metadata(package: &Value) -> SourceMetadata {
    let text = |pointer: &str| {
        package
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    SourceMetadata {
        title: text("/title"),
        description: text("/notes"),
        publisher: text("/organization/title").or_else(|| text("/organization/name")),
        license: text("/license_title").or_else(|| text("/license_id")),
        tags: package["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
