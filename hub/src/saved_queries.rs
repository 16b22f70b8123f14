//! Saved queries: loading the TOML folder, checking a definition, and the result cache.
//!
//! A cached result is keyed on the query's text, its bound parameters, what the caller may
//! see (masking), and the Delta version of every table the plan reads. A commit moves a
//! table's version, so the next request misses and reads the new data: nothing has to be
//! invalidated by hand.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use sha2::{Digest, Sha256};
use simpul_catalog::{
    Catalog, CatalogError, DatasetId, LakeTable, QueryDefinition, SessionSettings, SqlAccess,
};

/// Who saves the queries of the folder.
const FOLDER_ACTOR: &str = "system";

/// Checks a definition, planned as `access` reads: its name and parameters, that it is one
/// read-only statement, and that its `$name` placeholders are exactly the declared
/// parameters.
pub async fn check(
    catalog: &Arc<Catalog>,
    settings: &SessionSettings,
    definition: &QueryDefinition,
    access: &SqlAccess,
) -> Result<(), CatalogError> {
    definition.check()?;
    let planned = catalog
        .plan_read_query(&definition.sql, settings, access)
        .await?;
    if let Some(rule) = &definition.aggregate {
        rule.check_plan(&definition.name, planned.frame.logical_plan())?;
    }
    let used: Vec<String> = planned
        .frame
        .logical_plan()
        .get_parameter_types()?
        .into_keys()
        .map(|p| p.trim_start_matches('$').to_string())
        .collect();
    if let Some(positional) = used.iter().find(|p| p.parse::<u32>().is_ok()) {
        return Err(CatalogError::Invalid(format!(
            "{}: use named parameters ($tahun), not ${positional}",
            definition.name
        )));
    }
    if let Some(undeclared) = used.iter().find(|p| !definition.params.contains_key(*p)) {
        return Err(CatalogError::Invalid(format!(
            "{}: ${undeclared} is used but not declared under [params]",
            definition.name
        )));
    }
    if let Some(unused) = definition.params.keys().find(|p| !used.contains(p)) {
        return Err(CatalogError::Invalid(format!(
            "{}: parameter '{unused}' is declared but the SQL never uses ${unused}",
            definition.name
        )));
    }
    Ok(())
}

/// Loads every `*.toml` of `dir` as a saved query. A broken file is reported and skipped;
/// the others load. A missing folder holds no queries.
pub async fn load_dir(
    catalog: &Arc<Catalog>,
    settings: &SessionSettings,
    dir: &Path,
) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let loaded = async {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            let definition: QueryDefinition =
                toml::from_str(&text).map_err(|e| e.message().to_string())?;
            check(
                catalog,
                settings,
                &definition,
                &SqlAccess::full(FOLDER_ACTOR),
            )
            .await
            .map_err(|e| e.to_string())?;
            catalog
                .state
                .save_query(&definition, &file.display().to_string(), FOLDER_ACTOR)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(definition.name)
        }
        .await;
        match loaded {
            Ok(name) => tracing::info!(query = %name, file = %file.display(), "saved query loaded"),
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "saved query file refused");
                problems.push(format!("{}: {e}", file.display()));
            }
        }
    }
    problems
}

/// The tables a plan reads with their versions, `ref.wilayah@3`; `None` when it reads
/// something without versions (the operational tables), which is never cached.
pub async fn table_versions(
    catalog: &Catalog,
    tables: &[String],
) -> Result<Option<Vec<String>>, CatalogError> {
    let mut versions = Vec::with_capacity(tables.len());
    for table in tables {
        if table.starts_with("simpul.") {
            return Ok(None);
        }
        let lake_table = match table.strip_suffix(simpul_catalog::REJECTS_SUFFIX) {
            Some(base) => base.parse::<DatasetId>().map(LakeTable::Rejects),
            None => table.parse::<DatasetId>().map(LakeTable::Data),
        };
        // Time-travel scans read one fixed version and need no entry.
        let Ok(lake_table) = lake_table else { continue };
        let version = catalog
            .lake
            .load(&lake_table)
            .await?
            .and_then(|t| t.version())
            .map_or(-1, |v| v as i64);
        versions.push(format!("{table}@{version}"));
    }
    Ok(Some(versions))
}

/// The cache key of one request.
pub fn cache_key(
    sql: &str,
    params: &ParamValues,
    access: &SqlAccess,
    rights: Option<&simpul_catalog::Rights>,
    versions: &[String],
) -> String {
    let ParamValues::Map(params) = params else {
        return String::new();
    };
    let params: BTreeMap<&String, String> = params
        .iter()
        .map(|(k, v)| (k, format!("{:?}", v.value())))
        .collect();
    let mut hash = Sha256::new();
    hash.update(sql.as_bytes());
    hash.update(format!(
        "{params:?}|pii={}|ops={}|as={:?}|rights={rights:?}|{versions:?}",
        access.pii, access.operational, access.principal
    ));
    hex::encode(hash.finalize())
}

/// A result kept for later requests.
#[derive(Debug)]
pub struct CachedResult {
    /// Its schema.
    pub schema: SchemaRef,
    /// Its batches.
    pub batches: Vec<RecordBatch>,
    bytes: usize,
}

impl CachedResult {
    /// A result of these batches.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        Self {
            schema,
            batches,
            bytes,
        }
    }
}

/// Cached results from the least to the most recently used, and their total bytes.
type Entries = (VecDeque<(String, Arc<CachedResult>)>, usize);

/// Results by key, the oldest dropped first when the cache is over its size.
#[derive(Debug)]
pub struct ResultCache {
    limit_bytes: usize,
    entries: Mutex<Entries>,
}

impl ResultCache {
    /// A cache of at most `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            entries: Mutex::new((VecDeque::new(), 0)),
        }
    }

    /// The largest single result worth keeping: an eighth of the cache.
    pub fn entry_limit(&self) -> usize {
        self.limit_bytes / 8
    }

    /// The result for `key`, if kept.
    pub fn get(&self, key: &str) -> Option<Arc<CachedResult>> {
        let mut guard = self.entries.lock().ok()?;
        let (entries, _) = &mut *guard;
        let index = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(index)?;
        let result = entry.1.clone();
        entries.push_back(entry);
        Some(result)
    }

    /// Keeps a result, dropping the least recently used ones to make room.
    pub fn put(&self, key: String, result: Arc<CachedResult>) {
        if result.bytes > self.entry_limit() {
            return;
        }
        let Ok(mut guard) = self.entries.lock() else {
            return;
        };
        let (entries, size) = &mut *guard;
        if let Some(index) = entries.iter().position(|(k, _)| *k == key)
            && let Some((_, old)) = entries.remove(index)
        {
            *size -= old.bytes;
        }
        *size += result.bytes;
        entries.push_back((key, result));
        while *size > self.limit_bytes {
            match entries.pop_front() {
                Some((_, old)) => *size -= old.bytes,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn result(rows: usize) -> Arc<CachedResult> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1i64; rows]))],
        )
        .unwrap();
        Arc::new(CachedResult::new(schema, vec![batch]))
    }

    #[test]
    fn drops_the_least_recently_used_result_when_full() {
        let one = result(1000);
        let cache = ResultCache::new(one.bytes * 8 * 2);
        cache.put("a".into(), one.clone());
        cache.put("b".into(), result(1000));
        assert!(cache.get("a").is_some(), "a is now the most recent");
        for i in 0..15 {
            cache.put(format!("x{i}"), result(1000));
        }
        assert!(cache.get("b").is_none(), "b was the least recent");
        cache.put("huge".into(), result(1000 * 8 * 3));
        assert!(
            cache.get("huge").is_none(),
            "a result over an eighth is not kept"
        );
    }
}
