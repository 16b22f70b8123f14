//! The `rest_json` source: any HTTP JSON API, page after page.
//!
//! Pages are found by page number, by offset, by a cursor token, by the `Link` header or by
//! a next URL in the body. When the API gives a total, the pages after the first are fetched
//! `concurrency` at a time (in order); otherwise one after another. Records are the array a
//! JSON pointer selects; each becomes a row of JSON texts, so JSON types reach validation.

mod config;
mod http;

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use futures::{FutureExt, future::BoxFuture};
use serde_json::{Map, Value};
use simpul_schemas::{FieldError, RejectedRow, SourcePosition, infer_schema};
use url::Url;

pub use self::config::{Auth, CursorParam, Pagination, RestJsonConfig};
pub(crate) use self::config::{
    default_backoff, default_concurrency, default_retries, default_timeout,
};
use self::http::{Client, Page};
use crate::file::{BATCH_ROWS, json_kind, objects_batch};
use crate::raw::{RawBatch, SourceError};
use crate::source::{ReadEvent, Source, StreamInfo, event_stream, unknown_stream};

/// The one stream a `rest_json` source offers.
pub const STREAM: &str = "records";

/// A `rest_json` source.
pub struct RestJson {
    config: RestJsonConfig,
    client: Arc<Client>,
}

impl RestJson {
    /// A source for `config`; refuses a URL or pointer that cannot work.
    pub fn new(config: RestJsonConfig) -> Result<Self, SourceError> {
        let invalid = |reason: String| SourceError::Api {
            url: config.url.clone(),
            reason,
        };
        Url::parse(&config.url).map_err(|e| invalid(format!("not a valid URL: {e}")))?;
        let pointers = [
            Some(config.record_selector.as_str()),
            config.error_pointer.as_deref(),
            config.success_pointer.as_deref(),
            match &config.pagination {
                Pagination::Cursor { pointer, .. } | Pagination::NextUrl { pointer } => {
                    Some(pointer.as_str())
                }
                _ => None,
            },
        ];
        if let Some(bad) = pointers
            .into_iter()
            .flatten()
            .find(|p| !p.is_empty() && !p.starts_with('/'))
        {
            return Err(invalid(format!(
                "'{bad}' is not a JSON pointer (it must start with /)"
            )));
        }
        if let Pagination::PageSize { size: 0, .. } | Pagination::OffsetLimit { limit: 0, .. } =
            config.pagination
        {
            return Err(invalid("the page size must be at least 1".into()));
        }
        Ok(Self {
            client: Arc::new(Client::new(config.clone())?),
            config,
        })
    }

    /// The first page's URL: the configured URL, its extra parameters, the first page's
    /// paging parameters and, for an incremental read, the cursor.
    fn first_url(&self, cursor: Option<&Value>) -> Result<Url, SourceError> {
        let mut url = Url::parse(&self.config.url).map_err(|e| SourceError::Api {
            url: self.config.url.clone(),
            reason: format!("not a valid URL: {e}"),
        })?;
        let mut pairs: Vec<(String, String)> = self.config.query.clone();
        if let (Some(cursor_param), Some(value)) = (&self.config.cursor, cursor) {
            pairs.push((cursor_param.param.clone(), plain_text(value)));
        }
        match &self.config.pagination {
            Pagination::PageSize {
                page_param,
                size_param,
                size,
                first_page,
                ..
            } => {
                pairs.push((page_param.clone(), first_page.to_string()));
                pairs.push((size_param.clone(), size.to_string()));
            }
            Pagination::OffsetLimit {
                offset_param,
                limit_param,
                limit,
                ..
            } => {
                pairs.push((offset_param.clone(), "0".into()));
                pairs.push((limit_param.clone(), limit.to_string()));
            }
            _ => {}
        }
        set_query(&mut url, &pairs);
        Ok(url)
    }

    /// GETs one JSON document with this source's authentication, rate limit, retries and
    /// success check (CKAN's `package_show` next to its `datastore_search`).
    pub(crate) async fn get_json(&self, url: &str) -> Result<Value, SourceError> {
        Ok(self.client.get(url).await?.body)
    }

    async fn first_page(&self) -> Result<(Page, Vec<Value>), SourceError> {
        let mut page = self.client.get(self.first_url(None)?.as_str()).await?;
        let records = select_records(&mut page, &self.config.record_selector)?;
        Ok((page, records))
    }
}

impl Source for RestJson {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json")).unwrap_or(Value::Null)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        async move { self.first_page().await.map(|_| ()) }.boxed()
    }

    fn discover(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>> {
        async move {
            let (page, records) = self.first_page().await?;
            let mut found = Records::default();
            found.add_page(&page.url, records, None);
            let raw = found.into_raw(&page.url)?;
            Ok(vec![StreamInfo {
                name: STREAM.into(),
                schema: infer_schema(&raw.batch),
                incremental: self.config.cursor.is_some(),
            }])
        }
        .boxed()
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Value>,
    ) -> BoxStream<'_, Result<ReadEvent, SourceError>> {
        if stream != STREAM {
            return unknown_stream("rest_json", stream, STREAM);
        }
        let cursor = state.and_then(|s| s.get("cursor").cloned());
        event_stream(move |tx| async move {
            let mut reader = Reader {
                source: self,
                tx,
                cursor,
                pending: Records::default(),
            };
            reader.run().await
        })
    }
}

/// One read in progress: pages in, batches of up to [`BATCH_ROWS`] rows out.
struct Reader<'a> {
    source: &'a RestJson,
    tx: tokio::sync::mpsc::Sender<Result<ReadEvent, SourceError>>,
    /// The largest cursor value seen (starting from the saved one).
    cursor: Option<Value>,
    pending: Records,
}

impl Reader<'_> {
    async fn run(&mut self) -> Result<(), SourceError> {
        let config = &self.source.config;
        // The cursor is still the saved one: nothing has been read yet.
        let first_url = self.source.first_url(self.cursor.as_ref())?;
        let first = self.source.client.get(first_url.as_str()).await?;
        let mut first = first;
        let first_count = self.take(&mut first)?;
        match &config.pagination {
            Pagination::None => {}
            Pagination::PageSize {
                page_param,
                size,
                first_page,
                total_pages_pointer,
                ..
            } => {
                let rest =
                    count_at(&first, total_pages_pointer).map(|pages| pages.saturating_sub(1));
                let urls = (first_page + 1..).map(|page| with_param(&first_url, page_param, page));
                self.fetch_rest(urls, rest, first_count, *size).await?;
            }
            Pagination::OffsetLimit {
                offset_param,
                limit,
                total_pointer,
                ..
            } => {
                let rest = count_at(&first, total_pointer)
                    .map(|records| records.div_ceil(*limit).saturating_sub(1));
                let urls = (1..).map(|n: u64| with_param(&first_url, offset_param, n * limit));
                self.fetch_rest(urls, rest, first_count, *limit).await?;
            }
            Pagination::Cursor { param, pointer } => {
                let mut visited = HashSet::from([first.url.clone()]);
                let mut page = first;
                while let Some(token) = page.body.pointer(pointer).filter(|t| has_value(t)) {
                    let mut url = first_url.clone();
                    set_query(&mut url, &[(param.clone(), plain_text(token))]);
                    page = self.follow(url, &mut visited).await?;
                }
            }
            Pagination::LinkHeader | Pagination::NextUrl { .. } => {
                let mut visited = HashSet::from([first.url.clone()]);
                let mut page = first;
                while let Some(next) = self.next_url(&page)? {
                    page = self.follow(next, &mut visited).await?;
                }
            }
        }
        self.flush().await?;
        if config.cursor.is_some() {
            let state = serde_json::json!({ "cursor": self.cursor });
            self.send(ReadEvent::Checkpoint(state)).await?;
        }
        Ok(())
    }

    /// The pages after the first: `rest` of them when the API gave a total, fetched
    /// concurrently; otherwise one by one until a page is not full.
    async fn fetch_rest(
        &mut self,
        urls: impl Iterator<Item = Url>,
        rest: Option<u64>,
        first_count: usize,
        full: u64,
    ) -> Result<(), SourceError> {
        match rest {
            Some(rest) => self.fetch_all(urls.take(rest as usize).collect()).await,
            None => self.fetch_until_short(urls, first_count, full).await,
        }
    }

    /// Fetches a known list of pages, `concurrency` at a time, taking them in order.
    async fn fetch_all(&mut self, urls: Vec<Url>) -> Result<(), SourceError> {
        let client = self.source.client.clone();
        let mut pages = stream::iter(urls)
            .map(|url| {
                let client = client.clone();
                async move { client.get(url.as_str()).await }
            })
            .buffered(self.source.config.concurrency.max(1));
        while let Some(page) = pages.next().await {
            self.take(&mut page?)?;
            self.flush_full().await?;
        }
        Ok(())
    }

    /// Fetches pages one by one until a page has fewer records than a full page.
    async fn fetch_until_short(
        &mut self,
        urls: impl Iterator<Item = Url>,
        first_count: usize,
        full: u64,
    ) -> Result<(), SourceError> {
        let mut count = first_count;
        for url in urls {
            if (count as u64) < full {
                break;
            }
            let mut page = self.source.client.get(url.as_str()).await?;
            count = self.take(&mut page)?;
            self.flush_full().await?;
        }
        Ok(())
    }

    /// Fetches a page that a previous page pointed to, refusing to go round in circles.
    async fn follow(
        &mut self,
        url: Url,
        visited: &mut HashSet<String>,
    ) -> Result<Page, SourceError> {
        if !visited.insert(url.to_string()) {
            return Err(SourceError::Api {
                url: url.to_string(),
                reason: "the API pointed back to a page already read; stopping".into(),
            });
        }
        let mut page = self.source.client.get(url.as_str()).await?;
        self.take(&mut page)?;
        self.flush_full().await?;
        Ok(page)
    }

    /// The next page after `page`, from the `Link` header or the body.
    fn next_url(&self, page: &Page) -> Result<Option<Url>, SourceError> {
        let next = match &self.source.config.pagination {
            Pagination::LinkHeader => page.link_next.clone(),
            Pagination::NextUrl { pointer } => page
                .body
                .pointer(pointer)
                .filter(|v| has_value(v))
                .map(plain_text),
            _ => None,
        };
        let Some(next) = next else { return Ok(None) };
        let base = Url::parse(&page.url).map_err(|e| SourceError::Api {
            url: page.url.clone(),
            reason: e.to_string(),
        })?;
        let next = base.join(&next).map_err(|e| SourceError::Api {
            url: page.url.clone(),
            reason: format!("the next page '{next}' is not a URL: {e}"),
        })?;
        // A source's credentials go with every page; they must never leave its host.
        if next.origin() != base.origin() {
            return Err(SourceError::Api {
                url: page.url.clone(),
                reason: format!(
                    "the next page {} is on another host than {}; a source's pages are read \
                     from its own host only, so that its credentials go nowhere else",
                    next.origin().ascii_serialization(),
                    base.origin().ascii_serialization()
                ),
            });
        }
        Ok(Some(next))
    }

    /// Queues a page's records; returns how many it had.
    fn take(&mut self, page: &mut Page) -> Result<usize, SourceError> {
        let records = select_records(page, &self.source.config.record_selector)?;
        let count = records.len();
        let cursor =
            (self.source.config.cursor.as_ref()).map(|c| (c.field.as_str(), &mut self.cursor));
        self.pending.add_page(&page.url, records, cursor);
        Ok(count)
    }

    async fn flush_full(&mut self) -> Result<(), SourceError> {
        if self.pending.objects.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SourceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.pending).into_raw(&self.source.config.url)?;
        self.send(ReadEvent::Batch(raw)).await
    }

    async fn send(&self, event: ReadEvent) -> Result<(), SourceError> {
        self.tx.send(Ok(event)).await.map_err(|_| SourceError::Api {
            url: self.source.config.url.clone(),
            reason: "the reader stopped listening".into(),
        })
    }
}

/// A page's records: the array the selector points to, taken out of the page (the rest of
/// the body, such as a next-page pointer, stays).
fn select_records(page: &mut Page, selector: &str) -> Result<Vec<Value>, SourceError> {
    match page.body.pointer_mut(selector) {
        Some(Value::Array(records)) => Ok(std::mem::take(records)),
        Some(Value::Null) => Ok(Vec::new()),
        Some(other) => Err(SourceError::Api {
            url: page.url.clone(),
            reason: format!(
                "the record selector '{selector}' points to {}, not an array of records",
                json_kind(other)
            ),
        }),
        None => Err(SourceError::Api {
            url: page.url.clone(),
            reason: format!("the response has nothing at the record selector '{selector}'"),
        }),
    }
}

/// Records gathered from pages, not yet a batch.
#[derive(Default)]
struct Records {
    objects: Vec<Map<String, Value>>,
    positions: Vec<SourcePosition>,
    malformed: Vec<RejectedRow>,
}

impl Records {
    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.malformed.is_empty()
    }

    /// Adds a page's records, each positioned by the page's URL and its place in the page;
    /// `cursor` raises the largest value seen of a field.
    fn add_page(
        &mut self,
        url: &str,
        records: Vec<Value>,
        mut cursor: Option<(&str, &mut Option<Value>)>,
    ) {
        let source: Arc<str> = url.into();
        for (index, record) in records.into_iter().enumerate() {
            let position = SourcePosition {
                source: source.clone(),
                line: index as u64 + 1,
            };
            match record {
                Value::Object(object) => {
                    if let Some((field, largest)) = cursor.as_mut()
                        && let Some(value) = object.get(*field)
                    {
                        raise_cursor(largest, value);
                    }
                    self.objects.push(object);
                    self.positions.push(position);
                }
                other => self.malformed.push(not_an_object(position, other)),
            }
        }
    }

    fn into_raw(self, path: &str) -> Result<RawBatch, SourceError> {
        let batch = objects_batch(&self.objects).map_err(|e| SourceError::Arrow {
            path: path.to_string(),
            source: e,
        })?;
        Ok(RawBatch {
            batch,
            positions: self.positions,
            malformed: self.malformed,
        })
    }
}

fn not_an_object(position: SourcePosition, record: Value) -> RejectedRow {
    RejectedRow {
        errors: vec![FieldError::record(
            "type",
            format!("expected a JSON object, found {}", json_kind(&record)),
        )],
        position,
        record,
    }
}

/// Keeps the larger of the cursor so far and a record's value: numbers by value, anything
/// else by its text (ISO dates and times sort as text).
fn raise_cursor(cursor: &mut Option<Value>, value: &Value) {
    if !has_value(value) {
        return;
    }
    let larger = match (cursor.as_ref(), value) {
        (None, _) => true,
        (Some(Value::Number(a)), Value::Number(b)) => b.as_f64() > a.as_f64(),
        (Some(current), _) => plain_text(value) > plain_text(current),
    };
    if larger {
        *cursor = Some(value.clone());
    }
}

/// Replaces (or adds) query parameters, keeping the others in order.
fn set_query(url: &mut Url, pairs: &[(String, String)]) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !pairs.iter().any(|(name, _)| name == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = url.query_pairs_mut();
    query.clear();
    query.extend_pairs(kept.iter().chain(pairs));
    drop(query);
    if url.query() == Some("") {
        url.set_query(None);
    }
}

/// A count the first page gives at `pointer` (a total of records or pages).
fn count_at(page: &Page, pointer: &Option<String>) -> Option<u64> {
    pointer
        .as_deref()
        .and_then(|p| page.body.pointer(p))
        .and_then(as_count)
}

/// `url` with one query parameter set to `value`.
fn with_param(url: &Url, param: &str, value: u64) -> Url {
    let mut url = url.clone();
    set_query(&mut url, &[(param.to_string(), value.to_string())]);
    url
}

/// A JSON value as a query parameter: text without quotes, anything else as JSON.
fn plain_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn has_value(value: &Value) -> bool {
    !matches!(value, Value::Null) && value.as_str() != Some("")
}

fn as_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
pub(crate) mod tests;
