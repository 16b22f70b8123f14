use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dataset_id::DatasetId;
use crate::error::CatalogError;
use crate::lake::TableStats;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// Who may read a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// Open data: anyone may read it.
    Public,
    /// Any registered member may read it.
    Internal,
    /// Only callers with an explicit grant may read it.
    Restricted,
}

impl FromStr for Classification {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Self::Public),
            "internal" => Ok(Self::Internal),
            "restricted" => Ok(Self::Restricted),
            other => Err(CatalogError::Invalid(format!(
                "classification must be public, internal or restricted, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Restricted => "restricted",
        })
    }
}

/// What the access policy needs of a dataset.
#[derive(Debug, Clone)]
pub struct DatasetAccessRef {
    /// The dataset.
    pub id: DatasetId,
    /// Its canonical schema binding, if any.
    pub schema_ref: Option<String>,
    /// Who may read it.
    pub classification: Classification,
    /// The owning member's code.
    pub owner: String,
}

/// What an ingest does with columns the dataset does not have (like dlt's schema contracts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Contract {
    /// Refuse them: a file with an unknown column is not ingested; a record with one is
    /// rejected.
    #[default]
    Freeze,
    /// Add them to the table (Delta schema evolution), as nullable columns.
    Evolve,
    /// Drop them, and record in the commit which were dropped.
    DiscardColumns,
}

impl FromStr for Contract {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "freeze" => Ok(Self::Freeze),
            "evolve" => Ok(Self::Evolve),
            "discard_columns" => Ok(Self::DiscardColumns),
            other => Err(CatalogError::Invalid(format!(
                "contract must be freeze, evolve or discard_columns, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Freeze => "freeze",
            Self::Evolve => "evolve",
            Self::DiscardColumns => "discard_columns",
        })
    }
}

/// How bus publishes to a dataset land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Every published row is added.
    #[default]
    Append,
    /// A row whose primary key (`x-primary-key` of the dataset's schema) is in the table
    /// replaces that row; the change feed shows it as an update.
    Upsert,
}

impl FromStr for PublishMode {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "append" => Ok(Self::Append),
            "upsert" => Ok(Self::Upsert),
            other => Err(CatalogError::Invalid(format!(
                "write_mode must be append or upsert, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for PublishMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Append => "append",
            Self::Upsert => "upsert",
        })
    }
}

/// A dataset's entry in the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetMeta {
    /// `namespace.name`.
    pub id: DatasetId,
    /// A short human title.
    pub title: String,
    /// What the data is, where it comes from, how to use it.
    pub description: String,
    /// The owning OPD's member code (`DINKES`).
    pub owner: String,
    /// Who may read it.
    pub classification: Classification,
    /// The canonical schema the dataset is bound to, if any (`penduduk@1`).
    pub schema_ref: Option<String>,
    /// What ingests do with unknown columns.
    pub contract: Contract,
    /// How bus publishes land: appended, or upserted by primary key.
    pub write_mode: PublishMode,
    /// Free tags for search.
    pub tags: Vec<String>,
    /// When the dataset was registered.
    pub created_at: DateTime<Utc>,
    /// When its metadata or data last changed.
    pub updated_at: DateTime<Utc>,
    /// The newest Delta version, once data was committed.
    pub current_version: Option<i64>,
    /// Rows at the current version.
    pub row_count: i64,
    /// Rows kept in the rejects table.
    pub rejected_count: i64,
    /// Bytes of data files at the current version.
    pub size_bytes: i64,
    /// When the newest version was committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// How stale the dataset may get (`1d`), if it promises a freshness.
    pub freshness_sla: Option<String>,
    /// When the data was last known current: its newest commit, or a pipeline run that
    /// found nothing new.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Who publishes the data at its source (a CKAN organization), if the source says.
    pub publisher: Option<String>,
    /// The data's licence at its source, if the source says.
    pub license: Option<String>,
}

/// What a source says about its data, to copy into the catalog.
#[derive(Debug, Clone, Default)]
pub struct SourceDescription {
    /// Title at the source.
    pub title: Option<String>,
    /// Description at the source.
    pub description: Option<String>,
    /// Publishing organization.
    pub publisher: Option<String>,
    /// Licence.
    pub license: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Whether a dataset keeps its freshness promise.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// The promise (`1d`).
    pub sla: String,
    /// When the data was last known current.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Whether it is older than the promise allows (or was never refreshed).
    pub stale: bool,
}

impl DatasetMeta {
    /// The dataset's freshness at `now`, if it declares an SLA.
    pub fn freshness(&self, now: DateTime<Utc>) -> Option<Freshness> {
        let sla = self.freshness_sla.clone()?;
        let limit = crate::runs::parse_freshness(&sla).ok()?;
        let stale = self.refreshed_at.is_none_or(|at| now - at > limit);
        Some(Freshness {
            sla,
            refreshed_at: self.refreshed_at,
            stale,
        })
    }
}

/// What is needed to register a dataset.
#[derive(Debug, Clone)]
pub struct NewDataset {
    /// `namespace.name`.
    pub id: DatasetId,
    /// A short human title; the id when empty.
    pub title: String,
    /// A description.
    pub description: String,
    /// The owning OPD's member code.
    pub owner: String,
    /// Who may read it.
    pub classification: Classification,
    /// The canonical schema binding, if any.
    pub schema_ref: Option<String>,
    /// What ingests do with unknown columns.
    pub contract: Contract,
    /// Tags.
    pub tags: Vec<String>,
}

/// Filters for listing datasets. Empty filters match everything.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DatasetFilter {
    /// Words to find in the id, title, description or tags (case-insensitive).
    pub q: Option<String>,
    /// Owner member code.
    pub owner: Option<String>,
    /// One tag the dataset must carry.
    pub tag: Option<String>,
    /// Classification.
    pub classification: Option<Classification>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Metadata changes; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New owner member code.
    pub owner: Option<String>,
    /// New classification.
    pub classification: Option<Classification>,
    /// New tags (replacing the old ones).
    pub tags: Option<Vec<String>>,
    /// New contract mode.
    pub contract: Option<Contract>,
    /// How bus publishes land.
    pub write_mode: Option<PublishMode>,
}

const DATASET_COLUMNS: &str = "id, title, description, owner, classification, schema_ref, contract, write_mode, tags, \
     created_at, updated_at, current_version, row_count, rejected_count, size_bytes, last_commit_at, \
     freshness_sla, refreshed_at, publisher, license";

impl StateStore {
    /// Registers a dataset, or returns the existing entry if the id is taken.
    pub async fn register_dataset(&self, new: &NewDataset) -> Result<DatasetMeta, CatalogError> {
        let now = timestamp(Utc::now());
        let title = if new.title.trim().is_empty() {
            new.id.to_string()
        } else {
            new.title.clone()
        };
        sqlx::query(
            "INSERT INTO datasets (id, namespace, name, title, description, owner, classification, \
             schema_ref, tags, created_at, updated_at, contract) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) ON CONFLICT (id) DO NOTHING",
        )
        .bind(new.id.to_string())
        .bind(new.id.namespace())
        .bind(new.id.name())
        .bind(title)
        .bind(&new.description)
        .bind(new.owner.to_uppercase())
        .bind(new.classification.to_string())
        .bind(new.schema_ref.clone())
        .bind(serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .bind(new.contract.to_string())
        .execute(self.pool())
        .await?;
        self.dataset(&new.id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(new.id.to_string()))
    }

    /// One dataset's entry.
    pub async fn dataset(&self, id: &DatasetId) -> Result<Option<DatasetMeta>, CatalogError> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| dataset_from_row(&r)).transpose()
    }

    /// Every dataset with what the access policy needs: schema binding, classification and
    /// owner.
    pub async fn dataset_access_refs(&self) -> Result<Vec<DatasetAccessRef>, CatalogError> {
        let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, schema_ref, classification, owner FROM datasets ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, schema_ref, classification, owner)| {
                Some(DatasetAccessRef {
                    id: id.parse().ok()?,
                    schema_ref,
                    classification: classification.parse().ok()?,
                    owner,
                })
            })
            .collect())
    }

    /// A page of datasets matching the filter, and how many match in all.
    pub async fn list_datasets(
        &self,
        filter: &DatasetFilter,
    ) -> Result<(Vec<DatasetMeta>, i64), CatalogError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let bind = |value: String, binds: &mut Vec<String>| {
            binds.push(value);
            format!("${}", binds.len())
        };
        if let Some(q) = filter.q.as_deref().filter(|q| !q.trim().is_empty()) {
            for word in q.split_whitespace() {
                let p = bind(
                    format!("%{}%", escape_like(&word.to_lowercase())),
                    &mut binds,
                );
                conditions.push(format!(
                    "LOWER(id || ' ' || title || ' ' || description || ' ' || tags) LIKE {p} ESCAPE '\\'"
                ));
            }
        }
        if let Some(owner) = filter.owner.as_deref() {
            let p = bind(owner.to_uppercase(), &mut binds);
            conditions.push(format!("owner = {p}"));
        }
        if let Some(tag) = filter.tag.as_deref() {
            let quoted = serde_json::to_string(tag).unwrap_or_default();
            let p = bind(format!("%{}%", escape_like(&quoted)), &mut binds);
            conditions.push(format!("tags LIKE {p} ESCAPE '\\'"));
        }
        if let Some(classification) = filter.classification {
            let p = bind(classification.to_string(), &mut binds);
            conditions.push(format!("classification = {p}"));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let offset = filter.offset.unwrap_or(0).max(0);

        let count_sql = format!("SELECT COUNT(*) FROM datasets {where_clause}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for value in &binds {
            count = count.bind(value.clone());
        }
        let total = count.fetch_one(self.pool()).await?;

        let page_sql = format!(
            "SELECT {DATASET_COLUMNS} FROM datasets {where_clause} ORDER BY id LIMIT {limit} OFFSET {offset}"
        );
        let mut page = sqlx::query(&page_sql);
        for value in &binds {
            page = page.bind(value.clone());
        }
        let rows = page.fetch_all(self.pool()).await?;
        let datasets = rows
            .iter()
            .map(dataset_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((datasets, total))
    }

    /// Records the statistics of the dataset's newest version and the size of its rejects
    /// table. An older version's statistics never replace a newer one's.
    pub async fn record_commit(
        &self,
        id: &DatasetId,
        stats: &TableStats,
        rejected_count: i64,
    ) -> Result<(), CatalogError> {
        let now = timestamp(Utc::now());
        sqlx::query(
            "UPDATE datasets SET current_version = $2, row_count = $3, size_bytes = $4, \
             rejected_count = $5, last_commit_at = $6, updated_at = $6, refreshed_at = $6 \
             WHERE id = $1 AND (current_version IS NULL OR current_version <= $2)",
        )
        .bind(id.to_string())
        .bind(stats.version)
        .bind(stats.row_count)
        .bind(stats.size_bytes)
        .bind(rejected_count)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets (or clears) the dataset's freshness SLA; `sla` must parse.
    pub async fn set_freshness_sla(
        &self,
        id: &DatasetId,
        sla: Option<&str>,
    ) -> Result<(), CatalogError> {
        if let Some(sla) = sla {
            crate::runs::parse_freshness(sla).map_err(CatalogError::Invalid)?;
        }
        sqlx::query("UPDATE datasets SET freshness_sla = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(sla)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Copies what a source says about its data: the publisher and licence always, the title
    /// and description only where the catalog has none of its own (a title that is just the
    /// id, an empty description), and tags the dataset lacks.
    pub async fn apply_source_description(
        &self,
        id: &DatasetId,
        source: &SourceDescription,
    ) -> Result<(), CatalogError> {
        let current = self
            .dataset(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(id.to_string()))?;
        let title = match &source.title {
            Some(title) if current.title == id.to_string() => title.clone(),
            _ => current.title.clone(),
        };
        let description = match &source.description {
            Some(text) if current.description.trim().is_empty() => text.clone(),
            _ => current.description.clone(),
        };
        let mut tags = current.tags.clone();
        for tag in &source.tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        sqlx::query(
            "UPDATE datasets SET title = $2, description = $3, tags = $4, publisher = $5, \
             license = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(title)
        .bind(description)
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(source.publisher.clone().or(current.publisher))
        .bind(source.license.clone().or(current.license))
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every dataset that declares a freshness SLA.
    /// Every dataset's id, in order (recovery, backups and the log's completeness check
    /// walk them all).
    pub async fn dataset_ids(&self) -> Result<Vec<DatasetId>, CatalogError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM datasets ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(ids.into_iter().filter_map(|id| id.parse().ok()).collect())
    }

    pub async fn datasets_with_freshness(&self) -> Result<Vec<DatasetMeta>, CatalogError> {
        let sql = format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE freshness_sla IS NOT NULL ORDER BY id"
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(dataset_from_row).collect()
    }

    /// Records that the dataset was found current at `at` (a run found nothing new).
    pub async fn mark_refreshed(
        &self,
        id: &DatasetId,
        at: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE datasets SET refreshed_at = $2 WHERE id = $1 AND (refreshed_at IS NULL OR refreshed_at < $2)",
        )
        .bind(id.to_string())
        .bind(timestamp(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Applies a metadata change.
    pub async fn update_dataset(
        &self,
        id: &DatasetId,
        patch: &DatasetPatch,
    ) -> Result<DatasetMeta, CatalogError> {
        let current = self
            .dataset(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(id.to_string()))?;
        let tags = patch.tags.clone().unwrap_or(current.tags);
        sqlx::query(
            "UPDATE datasets SET title = $2, description = $3, owner = $4, classification = $5, \
             tags = $6, updated_at = $7, contract = $8, write_mode = $9 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(patch.title.clone().unwrap_or(current.title))
        .bind(patch.description.clone().unwrap_or(current.description))
        .bind(patch.owner.clone().unwrap_or(current.owner).to_uppercase())
        .bind(
            patch
                .classification
                .unwrap_or(current.classification)
                .to_string(),
        )
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(timestamp(Utc::now()))
        .bind(patch.contract.unwrap_or(current.contract).to_string())
        .bind(patch.write_mode.unwrap_or(current.write_mode).to_string())
        .execute(self.pool())
        .await?;
        self.dataset(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(id.to_string()))
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn dataset_from_row(row: &AnyRow) -> Result<DatasetMeta, CatalogError> {
    let id: String = row.try_get("id")?;
    let classification: String = row.try_get("classification")?;
    let contract: String = row.try_get("contract")?;
    let write_mode: String = row.try_get("write_mode")?;
    let tags: String = row.try_get("tags")?;
    let created_at: String = row.try_get("created_at")?;
    let updated_at: String = row.try_get("updated_at")?;
    let last_commit_at: Option<String> = row.try_get("last_commit_at")?;
    let refreshed_at: Option<String> = row.try_get("refreshed_at")?;
    Ok(DatasetMeta {
        id: id.parse()?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        classification: classification.parse()?,
        schema_ref: row.try_get("schema_ref")?,
        contract: contract.parse()?,
        write_mode: write_mode.parse()?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        created_at: parse_timestamp(&created_at).unwrap_or_default(),
        updated_at: parse_timestamp(&updated_at).unwrap_or_default(),
        current_version: row.try_get("current_version")?,
        row_count: row.try_get("row_count")?,
        rejected_count: row.try_get("rejected_count")?,
        size_bytes: row.try_get("size_bytes")?,
        last_commit_at: last_commit_at.as_deref().and_then(parse_timestamp),
        freshness_sla: row.try_get("freshness_sla")?,
        refreshed_at: refreshed_at.as_deref().and_then(parse_timestamp),
        publisher: row.try_get("publisher")?,
        license: row.try_get("license")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        (dir, StateStore::connect(&url).await.unwrap())
    }

    fn new_dataset(id: &str, owner: &str, tags: &[&str]) -> NewDataset {
        NewDataset {
            id: id.parse().unwrap(),
            title: format!("Data {id}"),
            description: "50% sampel_desa".into(),
            owner: owner.into(),
            classification: Classification::Internal,
            schema_ref: None,
            contract: Contract::Freeze,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn lists_datasets_by_text_owner_and_tag_with_paging() {
        let (_dir, store) = store().await;
        store
            .register_dataset(&new_dataset("stats.kemiskinan", "bappeda", &["sosial"]))
            .await
            .unwrap();
        store
            .register_dataset(&new_dataset("stats.upah", "disnaker", &["ekonomi"]))
            .await
            .unwrap();
        store
            .register_dataset(&new_dataset("ref.wilayah", "bappeda", &["referensi"]))
            .await
            .unwrap();

        let by_owner = DatasetFilter {
            owner: Some("BAPPEDA".into()),
            ..Default::default()
        };
        let (found, total) = store.list_datasets(&by_owner).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(found[0].id.to_string(), "ref.wilayah");

        let by_text = DatasetFilter {
            q: Some("KEMISKINAN".into()),
            ..Default::default()
        };
        assert_eq!(store.list_datasets(&by_text).await.unwrap().1, 1);

        let by_tag = DatasetFilter {
            tag: Some("ekonomi".into()),
            ..Default::default()
        };
        let (found, _) = store.list_datasets(&by_tag).await.unwrap();
        assert_eq!(found[0].id.to_string(), "stats.upah");

        let like_chars_are_literal = DatasetFilter {
            q: Some("_desa".into()),
            ..Default::default()
        };
        assert_eq!(
            store
                .list_datasets(&like_chars_are_literal)
                .await
                .unwrap()
                .1,
            3
        );
        let percent = DatasetFilter {
            q: Some("5%".into()),
            ..Default::default()
        };
        assert_eq!(store.list_datasets(&percent).await.unwrap().1, 0);

        let page = DatasetFilter {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        };
        let (found, total) = store.list_datasets(&page).await.unwrap();
        assert_eq!((found.len(), total), (1, 3));
        assert_eq!(found[0].id.to_string(), "stats.kemiskinan");
    }

    #[tokio::test]
    async fn registering_twice_keeps_the_first_entry() {
        let (_dir, store) = store().await;
        store
            .register_dataset(&new_dataset("stats.a", "dinkes", &[]))
            .await
            .unwrap();
        let again = store
            .register_dataset(&new_dataset("stats.a", "other", &[]))
            .await
            .unwrap();
        assert_eq!(again.owner, "DINKES");
    }
}
