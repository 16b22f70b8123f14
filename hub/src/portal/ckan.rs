//! The CKAN action API subset harvesters use (`package_search`, `package_show`,
//! `organization_list`, `datastore_search`), in CKAN's `{help, success, result}` envelope
//! with CKAN's parameters, and the DCAT JSON-LD catalog. Public datasets only.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::functions_aggregate::count::count_all;
use serde_json::{Value, json};
use simpul_catalog::{DatasetMeta, LakeTable, SqlAccess};

use super::{DOWNLOADS, PORTAL_CLIENT, base_url, matches, public_dataset, public_datasets};
use crate::api::ApiError;
use crate::read::{PlanError, Planned, Read, RowLimit};
use crate::server::AppState;

/// A CKAN answer.
fn envelope(base: &str, action: &str, result: Value) -> Response {
    Json(json!({
        "help": format!("{base}/api/3/action/help_show?name={action}"),
        "success": true,
        "result": result,
    }))
    .into_response()
}

/// A CKAN error: `{success: false, error: {__type, message}}` with CKAN's status codes.
fn failure(base: &str, action: &str, status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({
            "help": format!("{base}/api/3/action/help_show?name={action}"),
            "success": false,
            "error": {"__type": kind, "message": message},
        })),
    )
        .into_response()
}

/// A CKAN error for a failure on our side.
fn internal(base: &str, action: &str, message: impl Into<String>) -> Response {
    failure(
        base,
        action,
        StatusCode::SERVICE_UNAVAILABLE,
        "Internal Error",
        message.into(),
    )
}

/// A CKAN name: lowercase letters, digits, `-` and `_` (ours: `ns.name` → `ns-name`).
pub(crate) fn ckan_name(meta: &DatasetMeta) -> String {
    meta.id.to_string().replacen('.', "-", 1)
}

/// One dataset as a CKAN package: each download a resource, the owner the organization.
pub(crate) fn package(base: &str, meta: &DatasetMeta) -> Value {
    let name = ckan_name(meta);
    let resources: Vec<Value> = DOWNLOADS
        .iter()
        .map(|(file, format, media)| {
            json!({
                "id": format!("{}:{}", meta.id, file),
                "package_id": meta.id.to_string(),
                "name": format!("{} ({format})", meta.title),
                "format": format,
                "mimetype": media,
                "url": format!("{base}/data/{}/{file}", meta.id),
                "datastore_active": *format == "CSV",
                "last_modified": meta.last_commit_at,
                "state": "active",
            })
        })
        .collect();
    json!({
        "id": meta.id.to_string(),
        "name": name,
        "title": meta.title,
        "notes": meta.description,
        "type": "dataset",
        "state": "active",
        "private": false,
        "owner_org": meta.owner,
        "organization": {"name": meta.owner.to_lowercase(), "title": meta.owner, "id": meta.owner},
        "author": meta.publisher,
        "license_id": meta.license,
        "license_title": meta.license,
        "url": format!("{base}/data/{}", meta.id),
        "metadata_created": meta.created_at,
        "metadata_modified": meta.updated_at,
        "tags": meta.tags.iter().map(|t| json!({"name": t, "display_name": t})).collect::<Vec<_>>(),
        "num_tags": meta.tags.len(),
        "resources": resources,
        "num_resources": DOWNLOADS.len(),
        "extras": [
            {"key": "row_count", "value": meta.row_count.to_string()},
            {"key": "schema", "value": meta.schema_ref.clone().unwrap_or_default()},
            {"key": "freshness_sla", "value": meta.freshness_sla.clone().unwrap_or_default()},
        ],
    })
}

fn number(
    given: &HashMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match given.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(|n| n.min(max))
            .map_err(|_| format!("{key} must be a whole number, got '{v}'")),
    }
}

/// What an `fq` asks for: `(organization, tag, format)`.
type FilterQuery = (Option<String>, Option<String>, Option<String>);

/// `fq` clauses we understand: `organization:X`, `tags:X`, `res_format:X` (every dataset
/// has CSV, Parquet and JSON), each optionally quoted; others are an error.
fn parse_fq(fq: &str) -> Result<FilterQuery, String> {
    let (mut organization, mut tag, mut format) = (None, None, None);
    for clause in fq.split_whitespace().filter(|c| *c != "AND" && *c != "+") {
        let clause = clause.trim_start_matches('+');
        let (key, value) = clause
            .split_once(':')
            .ok_or_else(|| format!("fq clause '{clause}' is not field:value"))?;
        let value = value.trim_matches('"').to_string();
        match key {
            "organization" | "owner_org" => organization = Some(value),
            "tags" => tag = Some(value),
            "res_format" => format = Some(value),
            other => {
                return Err(format!(
                    "fq field '{other}' is not supported; use organization, tags or res_format"
                ));
            }
        }
    }
    Ok((organization, tag, format))
}

/// `GET /api/3/action/package_search?q=&fq=&rows=&start=`.
pub(super) async fn package_search(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let base = base_url(&app, &headers);
    let action = "package_search";
    let bad = |m: String| {
        failure(
            &base,
            action,
            StatusCode::BAD_REQUEST,
            "Validation Error",
            m,
        )
    };
    let (rows, start) = match (
        number(&given, "rows", 10, 1000),
        number(&given, "start", 0, usize::MAX),
    ) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let (organization, tag, format) =
        match parse_fq(given.get("fq").map(String::as_str).unwrap_or("")) {
            Ok(parsed) => parsed,
            Err(e) => return bad(e),
        };
    let q = given.get("q").map(String::as_str).unwrap_or("");
    let q = if q.trim() == "*:*" { "" } else { q };
    let all = match public_datasets(&app).await {
        Ok(all) => all,
        Err(e) => {
            return internal(&base, action, e.detail().to_string());
        }
    };
    let known_format = format.as_deref().is_none_or(|f| {
        DOWNLOADS
            .iter()
            .any(|(_, name, _)| name.eq_ignore_ascii_case(f))
    });
    let found: Vec<&DatasetMeta> = all
        .iter()
        .filter(|m| known_format && matches(m, q, organization.as_deref(), tag.as_deref()))
        .collect();
    let mut organizations: BTreeMap<String, usize> = BTreeMap::new();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for meta in &found {
        *organizations.entry(meta.owner.clone()).or_default() += 1;
        for t in &meta.tags {
            *tags.entry(t.clone()).or_default() += 1;
        }
    }
    let results: Vec<Value> = found
        .iter()
        .skip(start)
        .take(rows)
        .map(|m| package(&base, m))
        .collect();
    envelope(
        &base,
        action,
        json!({
            "count": found.len(),
            "sort": "metadata_modified desc",
            "results": results,
            "facets": {"organization": organizations, "tags": tags},
            "search_facets": {
                "organization": {"title": "organization", "items": organizations.iter().map(|(n, c)| json!({"name": n, "display_name": n, "count": c})).collect::<Vec<_>>()},
                "tags": {"title": "tags", "items": tags.iter().map(|(n, c)| json!({"name": n, "display_name": n, "count": c})).collect::<Vec<_>>()},
            },
        }),
    )
}

/// `GET /api/3/action/package_show?id=`.
pub(super) async fn package_show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let base = base_url(&app, &headers);
    let action = "package_show";
    let Some(id) = given.get("id").filter(|i| !i.trim().is_empty()) else {
        return failure(
            &base,
            action,
            StatusCode::CONFLICT,
            "Validation Error",
            "id: Missing value".into(),
        );
    };
    match public_dataset(&app, id.trim()).await {
        Ok(Some(meta)) => envelope(&base, action, package(&base, &meta)),
        Ok(None) => failure(
            &base,
            action,
            StatusCode::NOT_FOUND,
            "Not Found Error",
            format!("Not found: no public dataset '{id}'"),
        ),
        Err(e) => internal(&base, action, e.detail().to_string()),
    }
}

/// `GET /api/3/action/organization_list?all_fields=`.
pub(super) async fn organization_list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let base = base_url(&app, &headers);
    let action = "organization_list";
    let all = match public_datasets(&app).await {
        Ok(all) => all,
        Err(e) => {
            return internal(&base, action, e.detail().to_string());
        }
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for meta in &all {
        *counts.entry(meta.owner.clone()).or_default() += 1;
    }
    let all_fields = given
        .get("all_fields")
        .is_some_and(|v| v == "true" || v == "True" || v == "1");
    let result: Vec<Value> = counts
        .into_iter()
        .map(|(owner, count)| {
            if all_fields {
                json!({"id": owner, "name": owner.to_lowercase(), "title": owner, "display_name": owner, "package_count": count, "state": "active", "type": "organization"})
            } else {
                json!(owner.to_lowercase())
            }
        })
        .collect();
    envelope(&base, action, Value::Array(result))
}

/// `GET /api/3/action/datastore_search?resource_id=&filters=&limit=&offset=`: the rows of a
/// public dataset, equality `filters` as a JSON object, `total` the matching rows.
pub(super) async fn datastore_search(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    let base = base_url(&app, &headers);
    let action = "datastore_search";
    let bad = |m: String| failure(&base, action, StatusCode::CONFLICT, "Validation Error", m);
    let Some(resource) = given
        .get("resource_id")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    else {
        return bad("resource_id: Missing value".into());
    };
    let (limit, offset) = match (
        number(&given, "limit", 100, 32_000),
        number(&given, "offset", 0, usize::MAX),
    ) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let filters: serde_json::Map<String, Value> = match given.get("filters") {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return bad("filters must be a JSON object, {\"column\": \"value\"}".into()),
        },
    };
    let dataset = resource.split(':').next().unwrap_or(resource);
    let meta = match public_dataset(&app, dataset).await {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            return failure(
                &base,
                action,
                StatusCode::NOT_FOUND,
                "Not Found Error",
                format!("Resource \"{resource}\" was not found."),
            );
        }
        Err(e) => {
            return internal(&base, action, e.detail().to_string());
        }
    };
    let table = LakeTable::Data(meta.id.clone());
    let read = |what: &str, rows: RowLimit| Read {
        client_id: PORTAL_CLIENT.to_string(),
        protocol: "ckan",
        text: format!(
            "datastore_search {what}: resource_id={resource} filters={}",
            Value::Object(filters.clone())
        ),
        rows,
    };
    let total = app
        .reads
        .rows(read("total", RowLimit::AtMost(1)), async {
            let (frame, tables) = filtered(&app, &table, &filters).await?;
            Ok(Planned::of(
                frame.aggregate(vec![], vec![count_all().alias("total")])?,
                tables,
            ))
        })
        .await;
    let total = match total {
        Ok(rows) => rows
            .first()
            .and_then(|r| r.get("total"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        Err(e) if e.status().is_client_error() => return bad(e.detail().to_string()),
        Err(e) => return internal(&base, action, e.detail().to_string()),
    };
    let mut schema = None;
    let records = app
        .reads
        .rows(read("page", RowLimit::AtMost(limit as u64)), async {
            let (frame, tables) = filtered(&app, &table, &filters).await?;
            schema = Some(frame.schema().as_arrow().clone());
            Ok(Planned::of(frame.limit(offset, Some(limit))?, tables))
        })
        .await;
    let records = match records {
        Ok(records) => records,
        Err(e) if e.status().is_client_error() => return bad(e.detail().to_string()),
        Err(e) => return internal(&base, action, e.detail().to_string()),
    };
    let Some(schema) = schema else {
        return internal(&base, action, "the page was not planned");
    };
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"id": f.name(), "type": ckan_type(f.data_type())}))
        .collect();
    envelope(
        &base,
        action,
        json!({
            "resource_id": resource,
            "fields": fields,
            "records": records,
            "total": total,
            "limit": limit,
            "offset": offset,
            "filters": filters,
            "_links": {
                "start": format!("/api/3/action/datastore_search?resource_id={resource}&limit={limit}"),
                "next": format!("/api/3/action/datastore_search?resource_id={resource}&limit={limit}&offset={}", offset + limit),
            },
        }),
    )
}

/// The public dataset's `table` with `filters` (equality, by column) applied, and the table
/// read, for the read door.
async fn filtered(
    app: &AppState,
    table: &LakeTable,
    filters: &serde_json::Map<String, Value>,
) -> Result<(datafusion::prelude::DataFrame, Vec<String>), PlanError> {
    let access = SqlAccess::public(PORTAL_CLIENT);
    let (mut frame, version) = crate::api::records::table_frame(app, table, None, &access).await?;
    let schema = frame.schema().as_arrow().clone();
    for (column, value) in filters {
        let field = schema.field_with_name(column).map_err(|_| {
            ApiError::bad_request(format!("filters: column '{column}' does not exist"))
        })?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let expr = crate::api::records::filter_expr(
            column,
            crate::api::records::FilterOp::Eq,
            &text,
            field.data_type(),
        )
        .map_err(|e| ApiError::bad_request(format!("filters: {}", e.detail())))?;
        frame = frame.filter(expr)?;
    }
    Ok((
        frame,
        vec![format!("{}@v{version}", table.qualified_name())],
    ))
}

/// A datastore field type, as CKAN names them.
fn ckan_type(data_type: &arrow::datatypes::DataType) -> &'static str {
    use arrow::datatypes::DataType as T;
    match data_type {
        T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64 => {
            "int"
        }
        T::Float16 | T::Float32 | T::Float64 | T::Decimal128(..) | T::Decimal256(..) => "numeric",
        T::Boolean => "bool",
        T::Date32 | T::Date64 => "date",
        T::Timestamp(..) => "timestamp",
        _ => "text",
    }
}

/// `GET /catalog.jsonld`: every public dataset as DCAT (JSON-LD).
pub(super) async fn dcat(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&app, &headers);
    let all = match public_datasets(&app).await {
        Ok(all) => all,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.detail().to_string()).into_response(),
    };
    let datasets: Vec<Value> = all
        .iter()
        .map(|meta| {
            json!({
                "@id": format!("{base}/data/{}", meta.id),
                "@type": "dcat:Dataset",
                "dct:identifier": meta.id.to_string(),
                "dct:title": meta.title,
                "dct:description": meta.description,
                "dct:publisher": {"@type": "foaf:Organization", "foaf:name": meta.owner},
                "dct:issued": meta.created_at,
                "dct:modified": meta.updated_at,
                "dct:license": meta.license,
                "dct:language": "id",
                "dcat:keyword": meta.tags,
                "dcat:landingPage": format!("{base}/data/{}", meta.id),
                "dcat:distribution": DOWNLOADS.iter().map(|(file, format, media)| json!({
                    "@type": "dcat:Distribution",
                    "dct:title": format!("{} ({format})", meta.title),
                    "dct:format": format,
                    "dcat:mediaType": media,
                    "dcat:downloadURL": format!("{base}/data/{}/{file}", meta.id),
                    "dcat:accessURL": format!("{base}/data/{}", meta.id),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
        },
        "@id": format!("{base}/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": "Portal Data Kabupaten Purwakarta",
        "dct:description": "Data terbuka Pemerintah Kabupaten Purwakarta dari Simpul, hub data daerah.",
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": "Pemerintah Kabupaten Purwakarta"},
        "dct:language": "id",
        "foaf:homepage": format!("{base}/"),
        "dcat:dataset": datasets,
    });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_queries_take_organization_tags_and_formats() {
        assert_eq!(
            parse_fq("organization:bappeda +tags:\"kemiskinan\" res_format:CSV").unwrap(),
            (
                Some("bappeda".into()),
                Some("kemiskinan".into()),
                Some("CSV".into())
            )
        );
        assert!(parse_fq("groups:x").unwrap_err().contains("not supported"));
    }
}
