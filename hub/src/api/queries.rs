//! Saved queries over HTTP: list, save, delete, and run with typed parameters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use serde_json::{Value, json};
use simpul_catalog::{QueryDefinition, Role, SaveOutcome};

use super::{ApiError, ApiJson};
use crate::auth::Caller;
use crate::read::{PlanError, Read, RowLimit};
use crate::results::{self, ResultFormat};
use crate::saved_queries::{CachedResult, cache_key, check, table_versions};
use crate::server::AppState;

/// Header: whether the result came from the cache (`hit`) or was computed (`miss`).
const CACHE_HEADER: &str = "simpul-cache";
/// Header: the table versions the result was read from.
const VERSIONS_HEADER: &str = "simpul-versions";
/// Header: of a published aggregate, the count below which rows are suppressed.
const SUPPRESSED_HEADER: &str = "simpul-suppressed-below";

const READERS: [Role; 2] = [Role::Analyst, Role::Admin];

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&READERS, "listing saved queries")?;
    let queries = app.catalog.state.saved_queries().await?;
    Ok(Json(json!({ "queries": queries })))
}

pub(super) async fn save(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(mut definition): ApiJson<QueryDefinition>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&READERS, "saving queries")?;
    if definition.aggregate.is_some() {
        caller.require(
            &[Role::Admin],
            "saving a published aggregate (it reads data its callers may not)",
        )?;
    }
    guard_change(&app, &caller, &name, "change").await?;
    if definition.name.is_empty() {
        definition.name = name.clone();
    }
    if definition.name != name {
        return Err(ApiError::bad_request(format!(
            "the body names query '{}' but the path names '{name}'",
            definition.name
        )));
    }
    // Planned as the caller reads, so a failed save names only what the caller may see.
    check(
        &app.catalog,
        &app.session_settings(),
        &definition,
        &caller.sql_access(),
    )
    .await?;
    let outcome = app
        .catalog
        .state
        .save_query(&definition, "api", caller.id())
        .await?;
    if outcome != SaveOutcome::Unchanged {
        app.catalog
            .state
            .audit(
                caller.id(),
                "query.save",
                &name,
                json!({ "sql": definition.sql }),
            )
            .await?;
    }
    let saved = app.catalog.state.saved_query(&name).await?;
    let status = if outcome == SaveOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "query": saved }))))
}

/// Refuses `caller` changing or deleting saved query `name` unless it may: admins may
/// change any query; an analyst only one it saved itself that nothing depends on. A query
/// a dashboard shows, a module ships, or a file defines is what decision makers and the
/// public see, so only admins change it; so is a published aggregate.
async fn guard_change(
    app: &AppState,
    caller: &Caller,
    name: &str,
    doing: &str,
) -> Result<(), ApiError> {
    let Some(existing) = app.catalog.state.saved_query(name).await? else {
        return Ok(());
    };
    if caller.0.role == Role::Admin {
        return Ok(());
    }
    let dashboards = crate::dashboards::queries_in_use(&app.config.effective_dashboards_dir());
    let used_by = dashboards.get(name);
    let refusal = if let Some(boards) = used_by {
        Some(format!("dashboard {} shows it", boards.join(", ")))
    } else if existing.definition.aggregate.is_some() {
        Some("it is a published aggregate".to_string())
    } else if existing.source != "api" {
        Some(format!("it comes from {}", existing.source))
    } else if existing.created_by != caller.id() {
        Some(format!("{} saved it", existing.created_by))
    } else {
        None
    };
    match refusal {
        Some(why) => Err(ApiError::forbidden(format!(
            "{} may not {doing} saved query '{name}': {why}; ask an admin",
            caller.id()
        ))),
        None => Ok(()),
    }
}

pub(super) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&READERS, "deleting saved queries")?;
    guard_change(&app, &caller, &name, "delete").await?;
    if !app
        .catalog
        .state
        .delete_saved_query(&name, caller.id())
        .await?
    {
        return Err(ApiError::not_found(format!(
            "there is no saved query '{name}'"
        )));
    }
    app.catalog
        .state
        .audit(caller.id(), "query.delete", &name, json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /queries/{name}/versions`: every version the query has had, newest first.
pub(super) async fn versions(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&READERS, "reading a saved query's versions")?;
    let versions = app.catalog.state.saved_query_versions(&name).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "there is no saved query '{name}', nor was there"
        )));
    }
    Ok(Json(json!({ "name": name, "versions": versions })))
}

pub(super) async fn run(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(mut given): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&READERS, "running saved queries")?;
    let format = given.remove("format");
    let format = ResultFormat::negotiate(format.as_deref(), headers.get(header::ACCEPT))?;
    let limits = &app.config.query;
    let started = start_saved(&app, caller.id(), caller.sql_access(), &name, &given).await?;
    let first = results::start(started.stream, started.deadline, limits.timeout_secs).await?;
    let mut response =
        results::respond(first, format, limits.row_limit, started.deadline, "queries")?;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static(CACHE_HEADER),
        HeaderValue::from_static(if started.hit { "hit" } else { "miss" }),
    );
    if let Some(value) = started
        .suppressed_below
        .and_then(|n| HeaderValue::from_str(&n.to_string()).ok())
    {
        headers.insert(HeaderName::from_static(SUPPRESSED_HEADER), value);
    }
    if let Some(value) = started
        .versions
        .and_then(|v| HeaderValue::from_str(&v.join(", ")).ok())
    {
        headers.insert(HeaderName::from_static(VERSIONS_HEADER), value);
    }
    Ok(response)
}

/// A saved query running for a caller.
pub(crate) struct StartedSaved {
    /// Its rows, within the gate's limits and recorded in the query log.
    pub stream: datafusion::execution::SendableRecordBatchStream,
    /// Whether they come from the result cache.
    pub hit: bool,
    /// The table versions read, when every table is a lake table.
    pub versions: Option<Vec<String>>,
    /// When the query must be done.
    pub deadline: tokio::time::Instant,
    /// For a published aggregate, the count below which rows are suppressed.
    pub suppressed_below: Option<u64>,
    /// The tables the plan reads, `namespace.name` (`@v3` for time travel).
    pub tables: Vec<String>,
}

/// `stream` with the small cells of each batch suppressed by `rule`.
fn suppressed(
    stream: datafusion::execution::SendableRecordBatchStream,
    rule: simpul_catalog::AggregateRule,
) -> datafusion::execution::SendableRecordBatchStream {
    let schema = rule.output_schema(&stream.schema());
    let out = schema.clone();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        stream.map(move |batch| {
            batch.and_then(|b| {
                rule.suppress(&b, &out)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
            })
        }),
    ))
}

/// Starts saved query `name` with `given` parameters for `client_id` with `access`: through
/// the query gate, the query log and the result cache, as `GET /queries/{name}` does.
/// Dashboards use it too.
pub(crate) async fn start_saved(
    app: &AppState,
    client_id: &str,
    access: simpul_catalog::SqlAccess,
    name: &str,
    given: &HashMap<String, String>,
) -> Result<StartedSaved, ApiError> {
    let saved = app
        .catalog
        .state
        .saved_query(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no saved query '{name}'")))?;
    let definition = saved.definition;
    let params = definition.bind(given)?;
    // A published aggregate reads as its own rule says, whoever asks.
    let access = match &definition.aggregate {
        Some(_) => simpul_catalog::SqlAccess::aggregate(client_id),
        None => access,
    };
    // The rule is part of what the result is, beside the text.
    let text = match &definition.aggregate {
        Some(rule) => format!("{}\n-- aggregate {rule:?}", definition.sql),
        None => definition.sql.clone(),
    };
    let read = Read {
        client_id: client_id.to_string(),
        protocol: "saved",
        text: format!("{name}: {}", definition.sql),
        rows: RowLimit::Configured,
    };
    // What planning found besides the plan: the tables' versions and the cache's key.
    let mut found: (Option<Vec<String>>, Option<String>, bool) = (None, None, false);
    let plan = async {
        let mut planned = app.reads.plan_sql(&definition.sql, None, &access).await?;
        if let Some(rule) = &definition.aggregate {
            rule.check_plan(&definition.name, planned.frame.logical_plan())?;
        }
        let versions = table_versions(&app.catalog, &planned.tables).await?;
        planned.frame = planned.frame.with_param_values(params.clone())?;
        // The caller's grants decide which tables exist for it and which are masked, so a
        // result is shared only between requests holding the same rights.
        let rights = match &access.principal {
            Some(principal) => Some(app.catalog.state.rights_of(principal).await?),
            None => None,
        };
        let key = versions
            .as_ref()
            .map(|v| cache_key(&text, &params, &access, rights.as_ref(), v));
        match key.as_deref().and_then(|k| app.query_cache.get(k)) {
            Some(result) => {
                planned.ready = Some(Box::pin(RecordBatchStreamAdapter::new(
                    result.schema.clone(),
                    futures::stream::iter(result.batches.clone().into_iter().map(Ok)),
                )));
                found.2 = true;
            }
            None => {
                if let Some(rule) = definition.aggregate.clone() {
                    planned.then = Some(Box::new(move |stream| suppressed(stream, rule)));
                }
            }
        }
        found.0 = versions;
        found.1 = key;
        Ok::<_, PlanError>(planned)
    };
    let reading = app.reads.read(read, plan).await?;
    let (versions, key, hit) = found;
    let mut stream = reading.stream;
    if !hit && let Some(key) = key {
        stream = remember(app, key, stream, reading.row_limit).await;
    }
    Ok(StartedSaved {
        stream,
        hit,
        versions,
        deadline: reading.deadline,
        suppressed_below: definition.aggregate.map(|rule| rule.min_count),
        tables: reading.tables,
    })
}

/// Reads a fresh result into the cache when it is small enough and whole, and hands the
/// batches on either way.
async fn remember(
    app: &AppState,
    key: String,
    mut stream: datafusion::execution::SendableRecordBatchStream,
    row_limit: u64,
) -> datafusion::execution::SendableRecordBatchStream {
    let schema = stream.schema();
    let limit = app.query_cache.entry_limit();
    let (mut batches, mut bytes, mut rows) = (Vec::new(), 0usize, 0u64);
    let mut ended = false;
    while bytes <= limit {
        match stream.next().await {
            Some(Ok(batch)) => {
                bytes += batch.get_array_memory_size();
                rows += batch.num_rows() as u64;
                batches.push(Ok(batch));
            }
            Some(Err(e)) => {
                batches.push(Err(e));
                break;
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let whole = ended && rows <= row_limit && batches.iter().all(Result::is_ok);
    if whole {
        let kept: Vec<_> = batches
            .iter()
            .filter_map(|b| b.as_ref().ok().cloned())
            .collect();
        app.query_cache
            .put(key, Arc::new(CachedResult::new(schema.clone(), kept)));
    }
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches).chain(stream),
    ))
}
