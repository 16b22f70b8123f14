//! The public modules built on the hub's canonical layer (state store, catalog, validation,
//! audit), each under `/api/v1/<module>`.

pub mod complaints;
pub(crate) mod export;
pub mod registry;
pub mod semar;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use datafusion::common::ParamValues;
use serde_json::{Map, Value, json};
use simpul_catalog::{Catalog, QueryDefinition, SqlAccess};
use simpul_connectors::records::RecordsReader;

use crate::api::ApiError;
use crate::read::{Read, ReadDoor, RowLimit};

/// Validates one record against the newest version of a canonical schema's major 1; every
/// error is in the answer.
pub(crate) async fn check_record(
    catalog: &Catalog,
    schema: &str,
    record: &Value,
) -> Result<(), ApiError> {
    let binding = simpul_catalog::SchemaBinding {
        name: schema.into(),
        major: 1,
    };
    let compiled = catalog.schemas.resolve(&catalog.state, &binding).await?;
    let Value::Object(object) = record else {
        return Err(ApiError::unprocessable("a record is a JSON object"));
    };
    let reader = RecordsReader::new("record", Vec::new(), vec![object.clone()]);
    let mut errors = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let validation = compiled
            .validate(&batch.batch, &batch.positions)
            .map_err(ApiError::internal)?;
        for reject in batch.malformed.iter().chain(&validation.rejected) {
            for error in &reject.errors {
                errors.push(json!({"pointer": error.pointer, "keyword": error.keyword, "message": error.message}));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let first = errors[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Err(ApiError::unprocessable(format!(
            "the record does not match the {schema} schema: {first}"
        ))
        .with_member("errors", Value::Array(errors)))
    }
}

/// Runs one read-only query over the lake as `access` through the read door (recorded
/// for `client_id` as `protocol`), with `$name` parameters, and returns the rows as JSON
/// objects.
pub(crate) async fn run_query(
    reads: &ReadDoor,
    client_id: &str,
    protocol: &'static str,
    sql: &str,
    params: ParamValues,
    access: &SqlAccess,
) -> Result<Vec<Map<String, Value>>, String> {
    let read = Read {
        client_id: client_id.to_string(),
        protocol,
        text: sql.to_string(),
        rows: RowLimit::Configured,
    };
    reads
        .rows(read, reads.plan_sql(sql, Some(params), access))
        .await
        .map_err(|e| e.detail().to_string())
}

/// Query results as JSON objects, one per row.
pub(crate) fn json_rows(
    batches: &[arrow::array::RecordBatch],
) -> Result<Vec<Map<String, Value>>, String> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&arrow::array::RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// A module's shipped saved queries, parsed from their TOML texts.
pub(crate) fn query_definitions(
    module: &str,
    texts: &[&str],
) -> Result<Vec<QueryDefinition>, String> {
    texts
        .iter()
        .map(|text| {
            toml::from_str::<QueryDefinition>(text)
                .map_err(|e| format!("a shipped {module} query: {}", e.message()))
        })
        .collect()
}

/// Saves a module's shipped queries that are not saved yet (one edited since is kept).
pub(crate) async fn register_queries(
    catalog: &Catalog,
    module: &str,
    definitions: &[QueryDefinition],
) -> Result<(), String> {
    for definition in definitions {
        let existing = catalog
            .state
            .saved_query(&definition.name)
            .await
            .map_err(|e| e.to_string())?;
        if existing.is_none() {
            catalog
                .state
                .save_query(
                    definition,
                    &format!("{module}, shipped with simpul"),
                    module,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Runs shipped queries as `access` for `client_id` (as KPIs), each given the parameters it
/// declares out of `given`.
pub(crate) async fn run_definitions(
    reads: &ReadDoor,
    client_id: &str,
    definitions: &[QueryDefinition],
    given: &std::collections::HashMap<String, String>,
    access: &SqlAccess,
) -> Result<Vec<Vec<Map<String, Value>>>, String> {
    let mut answers = Vec::with_capacity(definitions.len());
    for definition in definitions {
        let wanted: std::collections::HashMap<String, String> = given
            .iter()
            .filter(|(k, _)| definition.params.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let params = definition.bind(&wanted).map_err(|e| e.to_string())?;
        answers.push(run_query(reads, client_id, "kpi", &definition.sql, params, access).await?);
    }
    Ok(answers)
}

/// A `from`/`to` value: RFC 3339, or a date meaning its midnight in WIB.
fn period_bound(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let wib = chrono::FixedOffset::east_opt(7 * 3600)
            .ok_or_else(|| ApiError::internal("WIB offset"))?;
        return wib
            .from_local_datetime(&date.and_time(NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::bad_request(format!("{field}: {text} is not a date")));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{field} must be a date (2026-12-01, midnight WIB) or RFC 3339; got '{text}'"
            ))
        })
}

/// `?from=&to=` of a KPI request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PeriodQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

impl PeriodQuery {
    /// The `[from, to)` asked for.
    pub fn period(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        period(self.from.as_deref(), self.to.as_deref())
    }
}

/// The `[from, to)` of a KPI request: `to` defaults to now, `from` to 30 days before `to`.
fn period(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to
        .map(|t| period_bound("to", t))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let from = from
        .map(|t| period_bound("from", t))
        .transpose()?
        .unwrap_or(to - chrono::Duration::days(30));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    Ok((from, to))
}
