use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use serde::Serialize;
use simpul_schemas::{
    CompiledSchema, SHIPPED_SCHEMAS, SchemaFile, check_compatible, parse_schema_document,
    parse_version,
};
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// One registered version of a schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaVersion {
    /// The schema's name.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// The document's `$id`.
    pub id: String,
    /// The document's title.
    pub title: String,
    /// When it was registered.
    pub registered_at: chrono::DateTime<Utc>,
    /// Who registered it.
    pub registered_by: String,
}

/// What registering a schema file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A new version was stored.
    Registered,
    /// The same document was already registered under this version.
    AlreadyRegistered,
}

/// A dataset's binding to a schema: `name@major`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaBinding {
    /// The schema name.
    pub name: String,
    /// The major version the dataset follows.
    pub major: u64,
}

impl SchemaBinding {
    /// Parses `penduduk@1`.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let (name, major) = text.split_once('@').ok_or_else(|| {
            CatalogError::Invalid(format!("schema binding '{text}' is not name@major"))
        })?;
        let major = major.parse().map_err(|_| {
            CatalogError::Invalid(format!("schema binding '{text}' is not name@major"))
        })?;
        Ok(Self {
            name: name.to_string(),
            major,
        })
    }
}

impl std::fmt::Display for SchemaBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.major)
    }
}

/// Compiled schemas by (name, version), so each is compiled once per process.
#[derive(Debug, Default)]
pub struct CompiledCache(RwLock<HashMap<(String, String), Arc<CompiledSchema>>>);

impl StateStore {
    /// Registers a schema version. A version in the same major as the newest registered one
    /// must be backward compatible with it and newer; a new major may change anything.
    pub async fn register_schema(
        &self,
        file: &SchemaFile,
        actor: &str,
    ) -> Result<Registration, CatalogError> {
        let (major, minor, patch) =
            parse_version(&file.version).map_err(|e| CatalogError::Invalid(e.0))?;
        if let Some(existing) = self.schema_document(&file.name, &file.version).await? {
            return if existing == file.document {
                Ok(Registration::AlreadyRegistered)
            } else {
                Err(CatalogError::Invalid(format!(
                    "{} {} is already registered with a different document; give the change a new version",
                    file.name, file.version
                )))
            };
        }
        if let Some(latest) = self.latest_schema_version(&file.name).await? {
            let (lmajor, lminor, lpatch) =
                parse_version(&latest.version).map_err(|e| CatalogError::Invalid(e.0))?;
            if (major, minor, patch) <= (lmajor, lminor, lpatch) {
                return Err(CatalogError::Invalid(format!(
                    "{} {} is not newer than the registered {}",
                    file.name, file.version, latest.version
                )));
            }
            if major == lmajor {
                let old = self
                    .schema_document(&file.name, &latest.version)
                    .await?
                    .unwrap_or(serde_json::Value::Null);
                let breaks = check_compatible(&old, &file.document);
                if !breaks.is_empty() {
                    let listed: Vec<String> = breaks.iter().map(ToString::to_string).collect();
                    return Err(CatalogError::Invalid(format!(
                        "{} {} is not backward compatible with {}: {}. Keep the change compatible, or \
                         publish it as {}.0.0",
                        file.name,
                        file.version,
                        latest.version,
                        listed.join("; "),
                        major + 1
                    )));
                }
            }
        }
        sqlx::query(
            "INSERT INTO schema_versions (name, version, major, minor, patch, document, registered_at, registered_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&file.name)
        .bind(&file.version)
        .bind(major as i64)
        .bind(minor as i64)
        .bind(patch as i64)
        .bind(file.document.to_string())
        .bind(timestamp(Utc::now()))
        .bind(actor)
        .execute(self.pool())
        .await?;
        self.audit(
            actor,
            "schema.register",
            &format!("{}@{}", file.name, file.version),
            serde_json::json!({}),
        )
        .await?;
        Ok(Registration::Registered)
    }

    /// Registers the schemas that ship with the binary; those already present are skipped.
    pub async fn register_shipped_schemas(&self) -> Result<(), CatalogError> {
        for (name, text) in SHIPPED_SCHEMAS {
            let file = parse_schema_document(name, &format!("{name}.schema.json (shipped)"), text)
                .map_err(|e| CatalogError::Invalid(e.0))?;
            self.register_schema(&file, "simpul").await?;
        }
        Ok(())
    }

    /// The raw document of one version.
    pub async fn schema_document(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<serde_json::Value>, CatalogError> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT document FROM schema_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                CatalogError::State(format!("stored schema {name} {version} is corrupt: {e}"))
            })
        })
        .transpose()
    }

    /// Every version of a schema, oldest first; or of all schemas when `name` is `None`.
    pub async fn schema_versions(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<SchemaVersion>, CatalogError> {
        let rows = sqlx::query(
            "SELECT name, version, document, registered_at, registered_by FROM schema_versions \
             WHERE $1 = '' OR name = $1 ORDER BY name, major, minor, patch",
        )
        .bind(name.unwrap_or_default())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let document: String = row.try_get("document")?;
                let document: serde_json::Value =
                    serde_json::from_str(&document).unwrap_or_default();
                let text = |key: &str| {
                    document
                        .get(key)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let registered_at: String = row.try_get("registered_at")?;
                Ok(SchemaVersion {
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    id: text("$id"),
                    title: text("title"),
                    registered_at: parse_timestamp(&registered_at).unwrap_or_default(),
                    registered_by: row.try_get("registered_by")?,
                })
            })
            .collect()
    }

    /// The newest version of a schema.
    pub async fn latest_schema_version(
        &self,
        name: &str,
    ) -> Result<Option<SchemaVersion>, CatalogError> {
        Ok(self.schema_versions(Some(name)).await?.pop())
    }

    /// The number of the newest registered version of `name` in `major`, without its
    /// document: what resolving a binding on every publish needs.
    pub async fn latest_version_in_major(
        &self,
        name: &str,
        major: u64,
    ) -> Result<Option<String>, CatalogError> {
        let version: Option<String> = sqlx::query_scalar(
            "SELECT version FROM schema_versions WHERE name = $1 AND major = $2 \
             ORDER BY minor DESC, patch DESC LIMIT 1",
        )
        .bind(name)
        .bind(i64::try_from(major).unwrap_or(i64::MAX))
        .fetch_optional(self.pool())
        .await?;
        Ok(version)
    }
}

impl CompiledCache {
    /// The compiled newest version of `binding`'s schema in its major.
    pub async fn resolve(
        &self,
        state: &StateStore,
        binding: &SchemaBinding,
    ) -> Result<Arc<CompiledSchema>, CatalogError> {
        let latest = state
            .latest_version_in_major(&binding.name, binding.major)
            .await?
            .ok_or_else(|| CatalogError::Invalid(format!("schema {binding} is not registered")))?;
        self.compiled(state, &binding.name, &latest).await
    }

    /// One compiled version.
    pub async fn compiled(
        &self,
        state: &StateStore,
        name: &str,
        version: &str,
    ) -> Result<Arc<CompiledSchema>, CatalogError> {
        let key = (name.to_string(), version.to_string());
        if let Some(hit) = self
            .0
            .read()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
        {
            return Ok(hit);
        }
        let document = state.schema_document(name, version).await?.ok_or_else(|| {
            CatalogError::Invalid(format!("schema {name} {version} is not registered"))
        })?;
        let compiled = Arc::new(
            CompiledSchema::compile(name, document).map_err(|e| CatalogError::Invalid(e.0))?,
        );
        if let Ok(mut cache) = self.0.write() {
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }
}
