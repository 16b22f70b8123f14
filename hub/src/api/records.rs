//! `GET /api/v1/datasets/{id}/records` (and `/rejects`): rows through query parameters, in
//! the style of ROAPI, built as DataFusion expressions (values are never spliced into SQL).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use datafusion::common::ScalarValue;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, Expr, SessionContext, ident, lit};
use simpul_catalog::LakeTable;

use super::ApiError;
use super::datasets::dataset_id;
use crate::auth::Caller;
use crate::read::{PlanError, Planned, Read, RowLimit};
use crate::results::{self, ResultFormat};
use crate::server::AppState;

/// Header: the Delta version the rows were read from.
const VERSION_HEADER: &str = "simpul-version";

/// A comparison in `filter[column]op=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Like,
}

impl FilterOp {
    fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "" | "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "like" => Self::Like,
            _ => return None,
        })
    }
}

/// The parsed query string.
#[derive(Debug, Default)]
struct RecordsQuery {
    columns: Option<Vec<String>>,
    filters: Vec<(String, FilterOp, String)>,
    sort: Vec<(String, bool)>,
    limit: Option<u64>,
    offset: u64,
    version: Option<i64>,
    format: Option<String>,
}

impl RecordsQuery {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut query = Self::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "columns" => {
                    query.columns = Some(
                        value
                            .split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect(),
                    );
                }
                "sort" => {
                    for term in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        match term.strip_prefix('-') {
                            Some(column) => query.sort.push((column.to_string(), false)),
                            None => query
                                .sort
                                .push((term.trim_start_matches('+').to_string(), true)),
                        }
                    }
                }
                "limit" => query.limit = Some(parse_number(&key, &value)?),
                "offset" => query.offset = parse_number(&key, &value)?,
                "version" => query.version = Some(parse_number(&key, &value)?),
                "format" => query.format = Some(value.into_owned()),
                other => query.filters.push(parse_filter(other, &value)?),
            }
        }
        Ok(query)
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{key} must be a non-negative whole number, not '{value}'"
        ))
    })
}

fn parse_filter(key: &str, value: &str) -> Result<(String, FilterOp, String), ApiError> {
    let unknown = || {
        ApiError::bad_request(format!(
            "unknown parameter '{key}'; use columns, filter[col]op=value (op: eq, ne, lt, lte, gt, gte, like), \
             sort, limit, offset, version or format"
        ))
    };
    let rest = key.strip_prefix("filter[").ok_or_else(unknown)?;
    let (column, op) = rest.split_once(']').ok_or_else(unknown)?;
    let op = FilterOp::parse(op).ok_or_else(|| {
        ApiError::bad_request(format!(
            "filter operator '{op}' is not one of eq, ne, lt, lte, gt, gte, like"
        ))
    })?;
    Ok((column.to_string(), op, value.to_string()))
}

pub(super) async fn data(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = dataset_id(&id)?;
    serve_table(state, caller, LakeTable::Data(id), query, headers).await
}

pub(super) async fn rejects(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = dataset_id(&id)?;
    serve_table(state, caller, LakeTable::Rejects(id), query, headers).await
}

async fn serve_table(
    State(app): State<AppState>,
    caller: Caller,
    table: LakeTable,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = app.catalog.dataset(table.dataset()).await?;
    if !caller.can_read(&meta) {
        return Err(ApiError::forbidden(format!(
            "{} is owned by {}; producer keys read only their own member's datasets",
            meta.id, meta.owner
        )));
    }
    let query = RecordsQuery::parse(raw.as_deref())?;
    let format = ResultFormat::negotiate(query.format.as_deref(), headers.get(header::ACCEPT))?;
    let (protocol, path) = match &table {
        LakeTable::Data(_) => ("records", "records"),
        LakeTable::Rejects(_) => ("rejects", "rejects"),
    };
    let read = Read {
        client_id: caller.id().to_string(),
        protocol,
        text: format!(
            "GET /api/v1/datasets/{}/{path}?{}",
            table.dataset(),
            raw.as_deref().unwrap_or_default()
        ),
        rows: query.limit.map_or(RowLimit::Configured, RowLimit::AtMost),
    };
    let access = caller.sql_access();
    let version = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let resolved = version.clone();
    let reading = app
        .reads
        .read(read, async {
            let (frame, at) = table_frame(&app, &table, query.version, &access).await?;
            resolved.store(at, std::sync::atomic::Ordering::Relaxed);
            Ok(Planned::of(
                shape(frame, &query)?,
                vec![format!("{}@v{at}", table.qualified_name())],
            ))
        })
        .await?;
    let limits = &app.config.query;
    let started = results::start(reading.stream, reading.deadline, limits.timeout_secs).await?;
    let mut response = results::respond(
        started,
        format,
        reading.row_limit,
        reading.deadline,
        "records",
    )?;
    response.headers_mut().insert(
        HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from(version.load(std::sync::atomic::Ordering::Relaxed)),
    );
    Ok(response)
}

/// A table (at `version`, or its newest) as a DataFrame seen with `access`'s masks, and the
/// version read.
pub(crate) async fn table_frame(
    app: &AppState,
    table: &LakeTable,
    version: Option<i64>,
    access: &simpul_catalog::SqlAccess,
) -> Result<(DataFrame, i64), ApiError> {
    let (provider, version) = app.catalog.provider_at(table, version).await?;
    let provider = app.catalog.provider_for(table, provider, access).await?;
    let config = app.session_settings().session_config();
    let runtime = std::sync::Arc::new(RuntimeEnv::default());
    app.catalog.lake.register_object_store(&runtime)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let frame = ctx.read_table(provider).map_err(super::datafusion_error)?;
    Ok((frame, version))
}

/// Applies filters, sort, projection and paging (the read door applies the row limit).
fn shape(mut frame: DataFrame, query: &RecordsQuery) -> Result<DataFrame, PlanError> {
    let schema = frame.schema().as_arrow().clone();
    let column_type = |name: &str| {
        schema
            .field_with_name(name)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                ApiError::bad_request(format!(
                    "column '{name}' does not exist; columns are: {}",
                    known.join(", ")
                ))
            })
    };
    for (column, op, value) in &query.filters {
        let data_type = column_type(column)?;
        frame = frame.filter(filter_expr(column, *op, value, &data_type)?)?;
    }
    if !query.sort.is_empty() {
        let mut order = Vec::with_capacity(query.sort.len());
        for (column, ascending) in &query.sort {
            column_type(column)?;
            order.push(ident(column).sort(*ascending, !*ascending));
        }
        frame = frame.sort(order)?;
    }
    if let Some(columns) = &query.columns {
        for column in columns {
            column_type(column)?;
        }
        frame = frame.select(columns.iter().map(ident).collect::<Vec<_>>())?;
    }
    Ok(frame.limit(query.offset as usize, None)?)
}

/// `column op value`, the value parsed as the column's type (never spliced into SQL).
pub(crate) fn filter_expr(
    column: &str,
    op: FilterOp,
    value: &str,
    data_type: &arrow::datatypes::DataType,
) -> Result<Expr, ApiError> {
    let target = ident(column);
    let literal = || {
        ScalarValue::try_from_string(value.to_string(), data_type)
            .map(lit)
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "'{value}' is not a valid {data_type} for column '{column}'"
                ))
            })
    };
    Ok(match op {
        FilterOp::Like => target.like(lit(value.to_string())),
        FilterOp::Eq => target.eq(literal()?),
        FilterOp::Ne => target.not_eq(literal()?),
        FilterOp::Lt => target.lt(literal()?),
        FilterOp::Lte => target.lt_eq(literal()?),
        FilterOp::Gt => target.gt(literal()?),
        FilterOp::Gte => target.gt_eq(literal()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roapi_style_parameters() {
        let query = RecordsQuery::parse(Some(
            "columns=nama,kode&filter[level]=kecamatan&filter[lat]lt=-6.5&sort=-kode,nama&limit=5&offset=2&version=1",
        ))
        .unwrap_or_default();
        assert_eq!(
            query.columns,
            Some(vec!["nama".to_string(), "kode".to_string()])
        );
        assert_eq!(
            query.filters[0],
            ("level".to_string(), FilterOp::Eq, "kecamatan".to_string())
        );
        assert_eq!(
            query.filters[1],
            ("lat".to_string(), FilterOp::Lt, "-6.5".to_string())
        );
        assert_eq!(
            query.sort,
            vec![("kode".to_string(), false), ("nama".to_string(), true)]
        );
        assert_eq!(
            (query.limit, query.offset, query.version),
            (Some(5), 2, Some(1))
        );
    }

    #[test]
    fn refuses_unknown_parameters_and_operators() {
        assert!(RecordsQuery::parse(Some("filter[x]between=1")).is_err());
        assert!(RecordsQuery::parse(Some("colums=x")).is_err());
        assert!(RecordsQuery::parse(Some("limit=-1")).is_err());
    }
}
