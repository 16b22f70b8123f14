//! Saved queries: named, parameterized read-only SQL (`penduduk_per_kecamatan(tahun)`),
//! from TOML files or the API. Parameters are typed and bound as values, never spliced into
//! the text.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::aggregate::AggregateRule;
use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// The type of a saved query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A whole number (`BIGINT`).
    Int,
    /// A number (`DOUBLE`).
    Float,
    /// Text.
    Text,
    /// `true` or `false`.
    Bool,
    /// A calendar date, `2024-12-31`.
    Date,
    /// An RFC 3339 moment, stored as UTC.
    Timestamp,
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParam {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// The value when the caller gives none; without one the parameter is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<toml_or_json::Scalar>,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// Defaults are written as TOML or JSON scalars.
pub mod toml_or_json {
    use serde::{Deserialize, Serialize};

    /// A scalar default.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Scalar {
        /// `true`.
        Bool(bool),
        /// `2024`.
        Int(i64),
        /// `0.5`.
        Float(f64),
        /// `"32.14"`.
        Text(String),
    }

    impl Scalar {
        /// The value as a request would carry it.
        pub fn as_text(&self) -> String {
            match self {
                Self::Bool(b) => b.to_string(),
                Self::Int(n) => n.to_string(),
                Self::Float(f) => f.to_string(),
                Self::Text(t) => t.clone(),
            }
        }
    }
}

/// What defines a saved query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryDefinition {
    /// `snake_case`, unique. Over the API the path gives it.
    #[serde(default)]
    pub name: String,
    /// What the query answers.
    #[serde(default)]
    pub description: String,
    /// One read-only statement; parameters appear as `$name`.
    pub sql: String,
    /// The parameters, by name.
    #[serde(default)]
    pub params: BTreeMap<String, QueryParam>,
    /// Set for a published aggregate ([`AggregateRule`]): it reads every dataset masked and
    /// suppresses small counts, so callers who cannot read the rows may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateRule>,
}

/// A stored saved query.
#[derive(Debug, Clone, Serialize)]
pub struct SavedQuery {
    /// The definition.
    #[serde(flatten)]
    pub definition: QueryDefinition,
    /// `api` or the file it was loaded from.
    pub source: String,
    /// Who saved it last.
    pub updated_by: String,
    /// Who saved it first: an analyst may change or delete only the queries it saved.
    pub created_by: String,
    /// When it was first saved.
    pub created_at: DateTime<Utc>,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl QueryDefinition {
    /// Checks the name and the parameter names and defaults.
    pub fn check(&self) -> Result<(), CatalogError> {
        if !valid_name(&self.name) {
            return Err(CatalogError::Invalid(format!(
                "query name '{}' is not valid: use lowercase snake_case (a letter, then letters, \
                 digits or _; at most 63)",
                self.name
            )));
        }
        for (name, param) in &self.params {
            if !valid_name(name) || name == "format" {
                return Err(CatalogError::Invalid(format!(
                    "parameter name '{name}' is not valid: use lowercase snake_case, not 'format'"
                )));
            }
            if let Some(default) = &param.default {
                param.value(name, &default.as_text())?;
            }
        }
        if let Some(rule) = &self.aggregate {
            rule.check(&self.name)?;
        }
        Ok(())
    }

    /// Binds request values (text, as in a query string) to typed parameters. Unknown names,
    /// missing required values and values of the wrong type are refused, each by name.
    pub fn bind(&self, given: &HashMap<String, String>) -> Result<ParamValues, CatalogError> {
        if let Some(unknown) = given.keys().find(|k| !self.params.contains_key(*k)) {
            let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
            return Err(CatalogError::Invalid(format!(
                "{} has no parameter '{unknown}'; its parameters are: {}",
                self.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        let mut values = HashMap::new();
        for (name, param) in &self.params {
            let text = match (given.get(name), &param.default) {
                (Some(text), _) => text.clone(),
                (None, Some(default)) => default.as_text(),
                (None, None) => {
                    return Err(CatalogError::Invalid(format!(
                        "{} needs parameter '{name}' ({:?})",
                        self.name, param.kind
                    )));
                }
            };
            values.insert(name.clone(), param.value(name, &text)?.into());
        }
        Ok(ParamValues::Map(values))
    }
}

impl QueryParam {
    /// The typed value of `text`.
    pub fn value(&self, name: &str, text: &str) -> Result<ScalarValue, CatalogError> {
        let wrong = |expected: &str| {
            CatalogError::Invalid(format!(
                "parameter '{name}' must be {expected}, not '{text}'"
            ))
        };
        let text = text.trim();
        Ok(match self.kind {
            ParamType::Int => {
                ScalarValue::Int64(Some(text.parse().map_err(|_| wrong("a whole number"))?))
            }
            ParamType::Float => {
                ScalarValue::Float64(Some(text.parse().map_err(|_| wrong("a number"))?))
            }
            ParamType::Text => ScalarValue::Utf8(Some(text.to_string())),
            ParamType::Bool => ScalarValue::Boolean(Some(match text {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(wrong("true or false")),
            })),
            ParamType::Date => {
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| wrong("a date like 2024-12-31"))?;
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                ScalarValue::Date32(Some(
                    i32::try_from((date - epoch).num_days()).map_err(|_| wrong("a date"))?,
                ))
            }
            ParamType::Timestamp => {
                let at = DateTime::parse_from_rfc3339(text)
                    .map_err(|_| wrong("an RFC 3339 time like 2026-01-01T00:00:00Z"))?;
                ScalarValue::TimestampMicrosecond(
                    Some(at.with_timezone(&Utc).timestamp_micros()),
                    Some("UTC".into()),
                )
            }
        })
    }
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The query is new.
    Created,
    /// The query existed and its definition or source changed.
    Changed,
    /// The query existed with the same definition and source; nothing was written.
    Unchanged,
}

/// One version of a saved query: a save that changed it, or its delete.
#[derive(Debug, Clone, Serialize)]
pub struct QueryVersion {
    /// 1 for the first save, counting up.
    pub version: i64,
    /// `save` or `delete`.
    pub action: String,
    /// The definition saved (for a delete, the one deleted).
    pub definition: QueryDefinition,
    /// Where it came from: `api`, a file, or a module that ships it.
    pub source: String,
    /// Who did it.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

const SAVED_COLUMNS: &str = "name, description, sql_text, params, source, updated_by, created_by, \
     created_at, updated_at, aggregate";

impl StateStore {
    /// Saves a query by name (created or replaced), and records the version when anything
    /// changed.
    pub async fn save_query(
        &self,
        definition: &QueryDefinition,
        source: &str,
        actor: &str,
    ) -> Result<SaveOutcome, CatalogError> {
        let now = timestamp(Utc::now());
        let params = serde_json::to_string(&definition.params)
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let aggregate = definition
            .aggregate
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let existing = sqlx::query(&format!(
            "SELECT {SAVED_COLUMNS} FROM saved_queries WHERE name = $1"
        ))
        .bind(&definition.name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| saved_query(&row))
        .transpose()?;
        let outcome = match &existing {
            None => SaveOutcome::Created,
            Some(old) if old.definition == *definition && old.source == source => {
                return Ok(SaveOutcome::Unchanged);
            }
            Some(_) => SaveOutcome::Changed,
        };
        sqlx::query(
            "INSERT INTO saved_queries (name, description, sql_text, params, source, updated_by, \
             created_by, created_at, updated_at, aggregate) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET description = $2, sql_text = $3, params = $4, \
             source = $5, updated_by = $6, updated_at = $7, aggregate = $8",
        )
        .bind(&definition.name)
        .bind(&definition.description)
        .bind(&definition.sql)
        .bind(params)
        .bind(source)
        .bind(actor)
        .bind(&now)
        .bind(aggregate)
        .execute(&mut *tx)
        .await?;
        record_version(&mut tx, definition, "save", source, actor, &now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// A saved query by name.
    pub async fn saved_query(&self, name: &str) -> Result<Option<SavedQuery>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {SAVED_COLUMNS} FROM saved_queries WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| saved_query(&row)).transpose()
    }

    /// Every saved query, by name.
    pub async fn saved_queries(&self) -> Result<Vec<SavedQuery>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {SAVED_COLUMNS} FROM saved_queries ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(saved_query).collect()
    }

    /// Deletes a saved query, recording the delete as its last version; false when there was
    /// none.
    pub async fn delete_saved_query(&self, name: &str, actor: &str) -> Result<bool, CatalogError> {
        let mut tx = self.pool().begin().await?;
        let existing = sqlx::query(&format!(
            "SELECT {SAVED_COLUMNS} FROM saved_queries WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| saved_query(&row))
        .transpose()?;
        let Some(existing) = existing else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM saved_queries WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let now = timestamp(Utc::now());
        record_version(
            &mut tx,
            &existing.definition,
            "delete",
            &existing.source,
            actor,
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every version of the saved query `name`, newest first.
    pub async fn saved_query_versions(
        &self,
        name: &str,
    ) -> Result<Vec<QueryVersion>, CatalogError> {
        let rows = sqlx::query(
            "SELECT version, action, definition, source, actor, at FROM saved_query_versions \
             WHERE name = $1 ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let definition: String = row.try_get("definition")?;
                let at: String = row.try_get("at")?;
                Ok(QueryVersion {
                    version: row.try_get("version")?,
                    action: row.try_get("action")?,
                    definition: serde_json::from_str(&definition).map_err(|e| {
                        CatalogError::State(format!("saved query version of {name}: {e}"))
                    })?,
                    source: row.try_get("source")?,
                    actor: row.try_get("actor")?,
                    at: parse_timestamp(&at).ok_or_else(|| {
                        CatalogError::State(format!("saved query version time '{at}'"))
                    })?,
                })
            })
            .collect()
    }
}

/// Appends the next version of `definition`'s query.
async fn record_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    definition: &QueryDefinition,
    action: &str,
    source: &str,
    actor: &str,
    at: &str,
) -> Result<(), CatalogError> {
    let text =
        serde_json::to_string(definition).map_err(|e| CatalogError::Invalid(e.to_string()))?;
    sqlx::query(
        "INSERT INTO saved_query_versions (name, version, action, definition, source, actor, at) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 \
         FROM saved_query_versions WHERE name = $1",
    )
    .bind(&definition.name)
    .bind(action)
    .bind(text)
    .bind(source)
    .bind(actor)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn saved_query(row: &sqlx::any::AnyRow) -> Result<SavedQuery, CatalogError> {
    let params: String = row.try_get("params")?;
    let aggregate: Option<String> = row.try_get("aggregate")?;
    let at = |column: &str| -> Result<DateTime<Utc>, CatalogError> {
        let text: String = row.try_get(column)?;
        parse_timestamp(&text)
            .ok_or_else(|| CatalogError::State(format!("saved query {column} '{text}'")))
    };
    Ok(SavedQuery {
        definition: QueryDefinition {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            sql: row.try_get("sql_text")?,
            params: serde_json::from_str(&params)
                .map_err(|e| CatalogError::State(format!("saved query params: {e}")))?,
            aggregate: aggregate
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| CatalogError::State(format!("saved query aggregate: {e}")))?,
        },
        source: row.try_get("source")?,
        updated_by: row.try_get("updated_by")?,
        created_by: row.try_get("created_by")?,
        created_at: at("created_at")?,
        updated_at: at("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> QueryDefinition {
        toml::from_str(
            r#"
            name = "penduduk_per_kecamatan"
            sql = "select * from t where tahun = $tahun and kode like $kode"
            [params.tahun]
            type = "int"
            [params.kode]
            type = "text"
            default = "32.14%"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn binds_typed_values_and_defaults() {
        let query = definition();
        query.check().unwrap();
        let given = HashMap::from([("tahun".to_string(), "2024".to_string())]);
        let ParamValues::Map(values) = query.bind(&given).unwrap() else {
            panic!("named parameters");
        };
        assert_eq!(values["tahun"].value(), &ScalarValue::Int64(Some(2024)));
        assert_eq!(
            values["kode"].value(),
            &ScalarValue::Utf8(Some("32.14%".into()))
        );
    }

    #[test]
    fn refuses_missing_unknown_and_mistyped_values_by_name() {
        let query = definition();
        let message = |given: &[(&str, &str)]| {
            let given = given
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            query.bind(&given).unwrap_err().to_string()
        };
        assert!(message(&[]).contains("needs parameter 'tahun'"));
        assert!(message(&[("tahun", "2024"), ("x", "1")]).contains("no parameter 'x'"));
        assert!(message(&[("tahun", "dua ribu")]).contains("must be a whole number"));
    }
}
