use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, TimeZone, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::{Column, Expr, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;
use tokio::sync::Mutex;
use url::Url;

use crate::dataset_id::DatasetId;
use crate::error::CatalogError;

/// Data files roll over at this size, so one large ingest makes several files.
const TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// A Delta table in the lake: a dataset's data, or the rows it rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LakeTable {
    /// The dataset's rows.
    Data(DatasetId),
    /// The dataset's rejected rows, `<name>__rejects`.
    Rejects(DatasetId),
}

impl LakeTable {
    /// The dataset the table belongs to.
    pub fn dataset(&self) -> &DatasetId {
        match self {
            LakeTable::Data(id) | LakeTable::Rejects(id) => id,
        }
    }

    /// The SQL table name within the dataset's namespace.
    pub fn table_name(&self) -> String {
        match self {
            LakeTable::Data(id) => id.name().to_string(),
            LakeTable::Rejects(id) => id.rejects_name(),
        }
    }

    /// `namespace.table`, as shown to people.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.dataset().namespace(), self.table_name())
    }

    fn path(&self) -> String {
        format!("{}/{}/", self.dataset().namespace(), self.table_name())
    }
}

/// How a write treats the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Add the new rows.
    Append,
    /// Replace all rows with the new ones (older versions stay readable).
    Overwrite,
}

/// What is recorded in a commit besides the data.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Key-value metadata stored in the commit's `commitInfo` under `simpul`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// A wider table schema (new nullable columns) to take effect in the same commit.
    pub evolved_schema: Option<SchemaRef>,
    /// An application transaction (Delta `txn`) recorded in the same commit, so that a
    /// writer can tell whether its run already landed.
    pub transaction: Option<AppTransaction>,
}

/// A Delta application transaction: an application id and a version that only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTransaction {
    /// Who writes (`simpul.pipeline.<name>`).
    pub app_id: String,
    /// The writer's run number.
    pub version: i64,
}

/// A table's size at one version.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    /// The Delta version.
    pub version: i64,
    /// Rows at this version, from the files' statistics.
    pub row_count: i64,
    /// Bytes of data files at this version.
    pub size_bytes: i64,
    /// Data files at this version.
    pub files: usize,
    /// Data files under [`SMALL_FILE_BYTES`], such as the bus's group commits leave.
    pub small_files: usize,
}

/// Files under this size count as small; a table that holds many is due for
/// [`Lake::compact`] (which merges every file under its 128 MiB target).
pub const SMALL_FILE_BYTES: i64 = 16 * 1024 * 1024;

/// An object store rooted at `url` (`file://…` or `s3://bucket/prefix`, with S3 options
/// such as the endpoint and credentials), for copies beside the lake (backups).
pub fn object_store_at(
    url: &Url,
    options: HashMap<String, String>,
) -> Result<Arc<dyn object_store::ObjectStore>, CatalogError> {
    if matches!(url.scheme(), "s3" | "s3a") {
        crate::s3::register();
    }
    deltalake::logstore::store_for(url, options)
        .map_err(|e| CatalogError::Objects(format!("{url} is unusable: {e}")))
}

/// One entry of a table's history.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// The Delta version.
    pub version: i64,
    /// When the commit was made.
    pub timestamp: Option<DateTime<Utc>>,
    /// The Delta operation (`CREATE TABLE`, `WRITE`, …).
    pub operation: Option<String>,
    /// The operation's parameters (mode, …).
    pub parameters: serde_json::Value,
    /// Delta's metrics for the commit (rows and files added, …).
    pub metrics: serde_json::Value,
    /// What Simpul recorded with the commit (source, actor, rows rejected, …).
    pub simpul: serde_json::Value,
}

/// The lake: one Delta table per dataset under one root URL (`file://…` or `s3://…`).
#[derive(Debug)]
pub struct Lake {
    root: Url,
    storage_options: HashMap<String, String>,
    latest: Mutex<HashMap<LakeTable, DeltaTable>>,
    /// The store under the root, for objects that are not table rows (made at first use).
    objects: std::sync::OnceLock<Arc<dyn object_store::ObjectStore>>,
}

impl Lake {
    /// A lake rooted at `root` (`file:///…/lake`, `s3://bucket/prefix`), with object-store
    /// options such as S3 endpoint and credentials.
    pub fn new(root: &str, storage_options: HashMap<String, String>) -> Result<Self, CatalogError> {
        let mut root = Url::parse(root)
            .map_err(|e| CatalogError::Config(format!("lake_url '{root}' is not a URL: {e}")))?;
        match root.scheme() {
            "file" | "memory" => {}
            "s3" | "s3a" => crate::s3::register(),
            other => {
                return Err(CatalogError::Config(format!(
                    "lake_url scheme '{other}' is not supported; use file:// or s3://"
                )));
            }
        }
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self {
            root,
            storage_options,
            latest: Mutex::new(HashMap::new()),
            objects: std::sync::OnceLock::new(),
        })
    }

    /// The lake's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    fn table_url(&self, table: &LakeTable) -> Result<Url, CatalogError> {
        self.root.join(&table.path()).map_err(|e| {
            CatalogError::Config(format!(
                "cannot place table {}: {e}",
                table.qualified_name()
            ))
        })
    }

    fn builder(&self, table: &LakeTable) -> Result<DeltaTableBuilder, CatalogError> {
        let url = self.table_url(table)?;
        DeltaTableBuilder::from_url(url)
            .map(|b| b.with_storage_options(self.storage_options.clone()))
            .map_err(|source| lake_error(table, source))
    }

    /// The latest version of a table, or `None` when it was never created. Each call picks up
    /// commits made since the previous one, including commits from other processes.
    pub async fn load(&self, table: &LakeTable) -> Result<Option<DeltaTable>, CatalogError> {
        let cached = self.latest.lock().await.get(table).cloned();
        let mut delta = match cached {
            Some(delta) => delta,
            None => {
                let fresh = self
                    .builder(table)?
                    .build()
                    .map_err(|e| lake_error(table, e))?;
                if !fresh
                    .verify_deltatable_existence()
                    .await
                    .map_err(|e| lake_error(table, e))?
                {
                    return Ok(None);
                }
                fresh
            }
        };
        let refreshed = if delta.version().is_some() {
            delta.update_incremental(None).await
        } else {
            delta.load().await
        };
        match refreshed {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => return Ok(None),
            Err(e) => return Err(lake_error(table, e)),
        }
        self.remember(table, &delta).await;
        Ok(Some(delta))
    }

    /// Keeps `delta` as the version this process saw last, unless a newer one is kept
    /// already (two tasks that load or commit at once finish in either order).
    async fn remember(&self, table: &LakeTable, delta: &DeltaTable) {
        let mut latest = self.latest.lock().await;
        let newer = latest
            .get(table)
            .is_none_or(|kept| kept.version() <= delta.version());
        if newer {
            latest.insert(table.clone(), delta.clone());
        }
    }

    /// The Arrow schema of the table as last loaded by this process, without looking for
    /// newer commits (loading it when it was never loaded). For checks that the committer
    /// repeats against the current version anyway.
    pub async fn cached_schema(
        &self,
        table: &LakeTable,
    ) -> Result<Option<SchemaRef>, CatalogError> {
        let cached = self.latest.lock().await.get(table).cloned();
        let delta = match cached {
            Some(delta) => delta,
            None => match self.load(table).await? {
                Some(delta) => delta,
                None => return Ok(None),
            },
        };
        Self::arrow_schema(&delta).map(Some)
    }

    /// The latest version of a table that must exist.
    pub async fn load_existing(&self, table: &LakeTable) -> Result<DeltaTable, CatalogError> {
        self.load(table)
            .await?
            .ok_or_else(|| CatalogError::NotFound(table.qualified_name()))
    }

    /// A table as it was at `version`.
    pub async fn load_version(
        &self,
        table: &LakeTable,
        version: i64,
    ) -> Result<DeltaTable, CatalogError> {
        let latest = self.load_existing(table).await?;
        let newest = latest.version().map_or(-1, |v| v as i64);
        if version < 0 || version > newest {
            return Err(CatalogError::NoSuchVersion(format!(
                "{} has versions 0 to {newest}; version {version} does not exist",
                table.qualified_name()
            )));
        }
        let mut delta = self
            .builder(table)?
            .build()
            .map_err(|e| lake_error(table, e))?;
        delta
            .load_version(version as u64)
            .await
            .map_err(|e| lake_error(table, e))?;
        Ok(delta)
    }

    /// A table as it was at a moment in time: the newest version committed at or before it.
    pub async fn load_as_of(
        &self,
        table: &LakeTable,
        at: DateTime<Utc>,
    ) -> Result<DeltaTable, CatalogError> {
        let history = self.history(table, None).await?;
        let version = history
            .iter()
            .filter(|v| v.timestamp.is_some_and(|t| t <= at))
            .map(|v| v.version)
            .max()
            .ok_or_else(|| {
                CatalogError::NoSuchVersion(format!(
                    "{} did not exist yet at {}",
                    table.qualified_name(),
                    at.to_rfc3339()
                ))
            })?;
        self.load_version(table, version).await
    }

    /// Creates an empty table with this schema. Creating a table that exists is a no-op.
    pub async fn create(
        &self,
        table: &LakeTable,
        schema: &SchemaRef,
    ) -> Result<DeltaTable, CatalogError> {
        if let Some(existing) = self.load(table).await? {
            return Ok(existing);
        }
        let kernel_schema: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| lake_error(table, e.into()))?;
        let delta = self
            .builder(table)?
            .build()
            .map_err(|e| lake_error(table, e))?;
        let created = match delta
            .create()
            .with_table_name(table.qualified_name())
            .with_columns(kernel_schema.fields().cloned())
            // Merges then write change files, so the change feed shows upserts as updates.
            .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
            // Loading a version replays the commits since the last checkpoint; the bus makes
            // many small commits, so checkpoint often.
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_save_mode(SaveMode::Ignore)
            .await
        {
            Ok(created) => created,
            // Another writer created it first: use theirs.
            Err(e) => match self.load(table).await? {
                Some(existing) => return Ok(existing),
                None => return Err(lake_error(table, e)),
            },
        };
        self.remember(table, &created).await;
        Ok(created)
    }

    /// Starts writing files for `table`. Nothing is visible until [`Lake::commit`]: the
    /// writer streams Parquet files to storage as batches arrive, so memory stays bounded
    /// whatever the input's size, and files of a write that never commits are never read.
    /// The `personal` columns get no statistics (see [`file_properties`]).
    pub fn writer(
        &self,
        table: &LakeTable,
        schema: SchemaRef,
        personal: &[&str],
    ) -> Result<TableWriter, CatalogError> {
        let url = self.table_url(table)?;
        let writer = RecordBatchWriter::try_new(
            url.as_str(),
            schema.clone(),
            None,
            Some(self.storage_options.clone()),
        )
        .map_err(|e| lake_error(table, e))?
        .with_target_file_size(TARGET_FILE_BYTES)
        .with_writer_properties(file_properties(&schema, personal));
        Ok(TableWriter {
            table: table.clone(),
            schema,
            writer,
            rows: 0,
        })
    }

    /// Commits staged files as one new table version (creating the table first if it does
    /// not exist). `Overwrite` removes every file of the current version in the same commit.
    pub async fn commit(
        &self,
        staged: StagedFiles,
        mode: WriteMode,
        options: CommitOptions,
    ) -> Result<DeltaTable, CatalogError> {
        let table = &staged.table;
        let started = std::time::Instant::now();
        // A blind append may start from the version this process saw last: if another writer
        // committed since, the commit is retried after deltalake's conflict check, which
        // never fails appends. Overwrites (which remove the current files) and run commits
        // (whose transaction must be checked) start from the newest version.
        let blind = mode == WriteMode::Append
            && options.transaction.is_none()
            && options.evolved_schema.is_none();
        let cached = if blind {
            self.latest.lock().await.get(table).cloned()
        } else {
            None
        };
        let from_cache = cached.is_some();
        let mut current = match cached {
            Some(cached) => cached,
            None => match self.load(table).await? {
                Some(existing) => existing,
                None => self.create(table, &staged.schema).await?,
            },
        };
        let loaded = started.elapsed();
        let state = current.snapshot().map_err(|e| lake_error(table, e))?;
        refuse_landed_transaction(table, &current, options.transaction.as_ref()).await?;
        let mut actions: Vec<Action> = Vec::new();
        if let Some(schema) = &options.evolved_schema {
            let kernel_schema: StructType = schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| lake_error(table, e.into()))?;
            let metadata = state
                .metadata()
                .clone()
                .with_schema(&kernel_schema)
                .map_err(|e| lake_error(table, e.into()))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(staged.adds.into_iter().map(Action::Add));
        if mode == WriteMode::Overwrite {
            actions.extend(
                state
                    .log_data()
                    .iter()
                    .map(|f| Action::Remove(f.remove_action(true))),
            );
        }
        let properties = commit_properties(options.metadata, options.transaction);
        let operation = DeltaOperation::Write {
            mode: match mode {
                WriteMode::Append => SaveMode::Append,
                WriteMode::Overwrite => SaveMode::Overwrite,
            },
            partition_by: None,
            predicate: None,
        };
        let attempt = CommitBuilder::from(properties.clone())
            .with_actions(actions.clone())
            .build(
                Some(state.snapshot()),
                current.log_store(),
                operation.clone(),
            )
            .await;
        let finalized = match attempt {
            Ok(finalized) => finalized,
            // The cached version was too far behind for deltalake's retries: start again from
            // the newest version (the files are staged; nothing was committed).
            Err(e) if from_cache => {
                tracing::debug!(table = %table.qualified_name(), error = %e, "commit from the cached version failed; reloading");
                current = self.load_existing(table).await?;
                let state = current.snapshot().map_err(|e| lake_error(table, e))?;
                CommitBuilder::from(properties)
                    .with_actions(actions)
                    .build(Some(state.snapshot()), current.log_store(), operation)
                    .await
                    .map_err(|e| lake_error(table, e))?
            }
            Err(e) => return Err(lake_error(table, e)),
        };
        // The table as of this commit: the newest version, loaded onto the snapshot this
        // process keeps. Keeping deltalake's post-commit snapshot instead (built for an exact
        // version) made every commit slower than the one before as a table grew (measured in
        // BENCHMARKS.md). Should another writer have committed meanwhile, the answer is still
        // this commit's own version, from that snapshot.
        let version = finalized.version;
        let mut committed = self.refreshed(table).await?;
        if committed.version() != Some(version) {
            committed.state = Some(finalized.snapshot);
        }
        cleanup_at_checkpoints(&committed, table).await;
        tracing::debug!(
            table = %table.qualified_name(),
            version,
            load_ms = loaded.as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - loaded).as_secs_f64() * 1e3,
            "lake commit"
        );
        Ok(committed)
    }

    /// Writes a few in-memory batches as one commit; for reference data and small writes.
    /// The `personal` columns get no statistics.
    pub async fn write_batches(
        &self,
        table: &LakeTable,
        schema: SchemaRef,
        personal: &[&str],
        batches: Vec<RecordBatch>,
        mode: WriteMode,
        options: CommitOptions,
    ) -> Result<DeltaTable, CatalogError> {
        let mut writer = self.writer(table, schema, personal)?;
        for batch in batches {
            writer.write(batch).await?;
        }
        let staged = writer.finish().await?;
        self.commit(staged, mode, options).await
    }

    /// Upserts `batches` into `table` by the `keys` columns as one commit (Delta merge): a
    /// row whose key is in the table replaces that row, any other row is added. The batches
    /// must not repeat a key. A table that does not exist yet is created with the rows.
    pub async fn merge(
        &self,
        table: &LakeTable,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        keys: &[String],
        personal: &[&str],
        options: CommitOptions,
    ) -> Result<DeltaTable, CatalogError> {
        let Some(current) = self.load(table).await? else {
            return self
                .write_batches(table, schema, personal, batches, WriteMode::Append, options)
                .await;
        };
        refuse_landed_transaction(table, &current, options.transaction.as_ref()).await?;
        if keys.is_empty() {
            return Err(CatalogError::Invalid(format!(
                "merging into {} needs a primary key",
                table.qualified_name()
            )));
        }
        let source = MemTable::try_new(schema.clone(), vec![batches])
            .map_err(|e| CatalogError::DataFusion(Box::new(e)))?;
        let source = SessionContext::new()
            .read_table(Arc::new(source))
            .map_err(|e| CatalogError::DataFusion(Box::new(e)))?;
        let side = |alias: &str, name: &str| Expr::Column(Column::new(Some(alias), name));
        let predicate = keys
            .iter()
            .map(|k| side("target", k).eq(side("source", k)))
            .reduce(Expr::and)
            .unwrap_or_else(|| datafusion::prelude::lit(false));
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let files = file_properties(&schema, personal);
        let properties = commit_properties(options.metadata, options.transaction);
        // The merged table is read back through the cache below, like every other commit.
        current
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_writer_properties(files)
            .with_commit_properties(properties)
            .when_matched_update(|update| {
                columns.iter().fold(update, |u, c| {
                    u.update(Column::new_unqualified(c), side("source", c))
                })
            })
            .and_then(|merge| {
                merge.when_not_matched_insert(|insert| {
                    columns.iter().fold(insert, |i, c| {
                        i.set(Column::new_unqualified(c), side("source", c))
                    })
                })
            })
            .map_err(|e| lake_error(table, e))?
            .await
            .map_err(|e| lake_error(table, e))?;
        self.refreshed(table).await
    }

    /// Rewrites the table's small files into large ones (Delta `OPTIMIZE`, a commit that
    /// changes no data: the change feed and time travel see the same rows). The bus's group
    /// commits add one small file each, and loading a version costs in proportion to the
    /// number of files. The files are written like every other write (Snappy, no statistics
    /// for the `personal` columns). Returns the new version, or `None` when there was
    /// nothing to do.
    pub async fn compact(
        &self,
        table: &LakeTable,
        personal: &[&str],
    ) -> Result<Option<i64>, CatalogError> {
        let current = self.load_existing(table).await?;
        let before = current.version();
        let schema = Self::arrow_schema(&current)?;
        let (compacted, metrics) = current
            .optimize()
            .with_target_size(
                std::num::NonZeroU64::new(TARGET_FILE_BYTES).unwrap_or(std::num::NonZeroU64::MIN),
            )
            .with_writer_properties(file_properties(&schema, personal))
            .with_commit_properties(
                CommitProperties::default().with_cleanup_expired_logs(Some(false)),
            )
            .await
            .map_err(|e| lake_error(table, e))?;
        let version = compacted.version();
        self.remember(table, &compacted).await;
        if version == before {
            return Ok(None);
        }
        let version = version.map(|v| v as i64);
        if let Some(v) = version {
            self.sync_version(table, v).await?;
        }
        tracing::debug!(
            table = %table.qualified_name(),
            files_removed = metrics.num_files_removed,
            files_added = metrics.num_files_added,
            "compacted"
        );
        Ok(version)
    }

    /// On a local lake, forces `version` of `table` to disk: its data and change files, its
    /// log entry, and the directories that name them. A commit that returned is then durable
    /// against a power cut, not only a process crash. Object stores are durable on return,
    /// so there this does nothing.
    pub async fn sync_version(&self, table: &LakeTable, version: i64) -> Result<(), CatalogError> {
        if self.root.scheme() != "file" {
            return Ok(());
        }
        let dir = self.table_url(table)?.to_file_path().map_err(|()| {
            CatalogError::Config(format!("lake root {} is not a local path", self.root))
        })?;
        let io = |e: std::io::Error| {
            CatalogError::State(format!("syncing {}: {e}", table.qualified_name()))
        };
        tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
            let log = dir.join("_delta_log").join(format!("{version:020}.json"));
            let text = std::fs::read_to_string(&log)?;
            let mut dirs = std::collections::BTreeSet::new();
            for line in text.lines() {
                let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let path = ["add", "cdc"]
                    .iter()
                    .find_map(|kind| action.get(kind)?.get("path")?.as_str());
                if let Some(path) = path {
                    let decoded = percent_decode(path);
                    let file = dir.join(decoded);
                    std::fs::File::open(&file)?.sync_all()?;
                    if let Some(parent) = file.parent() {
                        dirs.insert(parent.to_path_buf());
                    }
                }
            }
            std::fs::File::open(&log)?.sync_all()?;
            dirs.insert(dir.join("_delta_log"));
            dirs.insert(dir.clone());
            for d in dirs {
                std::fs::File::open(d)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| CatalogError::State(format!("syncing {}: {e}", table.qualified_name())))?
        .map_err(io)
    }

    async fn refreshed(&self, table: &LakeTable) -> Result<DeltaTable, CatalogError> {
        self.load_existing(table).await
    }

    /// The last version an application committed to `table` (its Delta `txn`), if any.
    pub async fn transaction_version(
        &self,
        table: &LakeTable,
        app_id: &str,
    ) -> Result<Option<i64>, CatalogError> {
        let Some(current) = self.load(table).await? else {
            return Ok(None);
        };
        let state = current.snapshot().map_err(|e| lake_error(table, e))?;
        state
            .transaction_version(current.log_store().as_ref(), app_id)
            .await
            .map_err(|e| lake_error(table, e))
    }

    /// The table's commits, newest first, at most `limit` of them.
    pub async fn history(
        &self,
        table: &LakeTable,
        limit: Option<usize>,
    ) -> Result<Vec<VersionInfo>, CatalogError> {
        let delta = self.load_existing(table).await?;
        let store = delta.log_store().object_store(None);
        let log_dir = Path::from("_delta_log");
        let mut versions: Vec<(i64, Path)> = store
            .list(Some(&log_dir))
            .try_filter_map(|meta| async move {
                let version = meta
                    .location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .filter(|stem| stem.len() == 20)
                    .and_then(|stem| stem.parse::<i64>().ok());
                Ok(version.map(|v| (v, meta.location)))
            })
            .try_collect()
            .await
            .map_err(|e| lake_error(table, e.into()))?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        versions.truncate(limit.unwrap_or(usize::MAX));
        let mut history = Vec::with_capacity(versions.len());
        for (version, location) in versions {
            let bytes = store
                .get(&location)
                .await
                .map_err(|e| lake_error(table, e.into()))?
                .bytes()
                .await
                .map_err(|e| lake_error(table, e.into()))?;
            history.push(version_info(version, &bytes));
        }
        Ok(history)
    }

    /// The newest commit of `table` that `wanted` picks, looking back from the latest
    /// version and no further than commits made before `not_before` (less a minute for clock
    /// steps). For finding a request's own commit after a crash: its commit, if it landed,
    /// came after the request began. `None` when the table does not exist or no commit fits.
    pub async fn find_commit(
        &self,
        table: &LakeTable,
        not_before: DateTime<Utc>,
        wanted: impl Fn(&VersionInfo) -> bool,
    ) -> Result<Option<VersionInfo>, CatalogError> {
        let Some(delta) = self.load(table).await? else {
            return Ok(None);
        };
        let Some(latest) = delta.version() else {
            return Ok(None);
        };
        let store = delta.log_store().object_store(None);
        let oldest = not_before - chrono::Duration::minutes(1);
        for version in (0..=latest).rev() {
            let location = Path::from(format!("_delta_log/{version:020}.json"));
            let bytes = match store.get(&location).await {
                Ok(found) => found
                    .bytes()
                    .await
                    .map_err(|e| lake_error(table, e.into()))?,
                // Cleaned up behind a checkpoint: nothing older can be read either.
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(lake_error(table, e.into())),
            };
            let info = version_info(version as i64, &bytes);
            if wanted(&info) {
                return Ok(Some(info));
            }
            if info.timestamp.is_some_and(|at| at < oldest) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Rows, bytes and files of a loaded table version.
    pub fn stats(delta: &DeltaTable) -> Result<TableStats, CatalogError> {
        let state = delta.snapshot().map_err(|e| CatalogError::Lake {
            table: delta.table_url().to_string(),
            source: Box::new(e),
        })?;
        let (mut rows, mut bytes, mut files, mut small_files) = (0i64, 0i64, 0usize, 0usize);
        for file in state.log_data().iter() {
            rows += file.num_records().unwrap_or(0) as i64;
            bytes += file.size();
            files += 1;
            small_files += usize::from(file.size() < SMALL_FILE_BYTES);
        }
        Ok(TableStats {
            version: state.version() as i64,
            row_count: rows,
            size_bytes: bytes,
            files,
            small_files,
        })
    }

    /// The Arrow schema of a loaded table version.
    pub fn arrow_schema(delta: &DeltaTable) -> Result<SchemaRef, CatalogError> {
        let state = delta.snapshot().map_err(|e| CatalogError::Lake {
            table: delta.table_url().to_string(),
            source: Box::new(e),
        })?;
        Ok(state.snapshot().arrow_schema())
    }

    /// Lets a DataFusion runtime read this lake's files. Local files need nothing; object
    /// stores are registered under their bucket URL.
    pub fn register_object_store(
        &self,
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    ) -> Result<(), CatalogError> {
        if matches!(self.root.scheme(), "file" | "memory") {
            return Ok(());
        }
        let store = deltalake::logstore::store_for(&self.root, self.storage_options.clone())
            .map_err(|e| CatalogError::Config(format!("lake at {} is unusable: {e}", self.root)))?;
        let mut bucket = self.root.clone();
        bucket.set_path("/");
        runtime.register_object_store(&bucket, store);
        Ok(())
    }

    /// The object store rooted at the lake's root: every table's files and the objects
    /// beside them (for backups).
    pub fn store(&self) -> Result<Arc<dyn object_store::ObjectStore>, CatalogError> {
        self.object_store()
    }

    fn object_store(&self) -> Result<Arc<dyn object_store::ObjectStore>, CatalogError> {
        if let Some(store) = self.objects.get() {
            return Ok(store.clone());
        }
        let store = deltalake::logstore::store_for(&self.root, self.storage_options.clone())
            .map_err(|e| {
                CatalogError::Objects(format!("the lake at {} is unusable: {e}", self.root))
            })?;
        Ok(self.objects.get_or_init(|| store).clone())
    }

    /// Where object `key` lives: `_objects/<key>` under the root (the store is rooted there),
    /// a prefix no dataset can take (namespaces start with a letter).
    fn object_path(key: &str) -> Path {
        Path::from(format!("_objects/{}", key.trim_matches('/')))
    }

    /// Stores `bytes` as object `key` beside the tables (evidence attachments and other
    /// files that are not table rows), replacing what was there. The write is atomic: a
    /// reader sees the old object or the new one.
    pub async fn put_object(&self, key: &str, bytes: bytes::Bytes) -> Result<(), CatalogError> {
        self.object_store()?
            .put(&Self::object_path(key), bytes.into())
            .await
            .map_err(|e| CatalogError::Objects(format!("cannot store {key}: {e}")))?;
        Ok(())
    }

    /// Reads object `key`; `None` when there is none.
    pub async fn get_object(&self, key: &str) -> Result<Option<bytes::Bytes>, CatalogError> {
        let got = match self.object_store()?.get(&Self::object_path(key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(CatalogError::Objects(format!("cannot read {key}: {e}"))),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(|e| CatalogError::Objects(format!("cannot read {key}: {e}")))
    }

    /// Checks that the lake's storage answers, for readiness probes.
    pub async fn check(&self) -> Result<(), CatalogError> {
        let store = deltalake::logstore::store_for(&self.root, self.storage_options.clone())
            .map_err(|e| CatalogError::Config(format!("lake at {} is unusable: {e}", self.root)))?;
        let probe = Path::from(self.root.path().trim_matches('/'));
        let mut listing = store.list(Some(&probe));
        listing.try_next().await.map_err(|e| {
            CatalogError::Config(format!("lake at {} does not answer: {e}", self.root))
        })?;
        Ok(())
    }
}

/// One commit's entry as the history shows it, from its `_delta_log/<version>.json` bytes.
pub fn version_info(version: i64, commit: &[u8]) -> VersionInfo {
    let commit_info = commit
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|action| action.get("commitInfo").cloned())
        .unwrap_or(serde_json::Value::Null);
    let timestamp = commit_info
        .get("timestamp")
        .and_then(|t| t.as_i64())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    VersionInfo {
        version,
        timestamp,
        operation: commit_info
            .get("operation")
            .and_then(|o| o.as_str())
            .map(String::from),
        parameters: commit_info
            .get("operationParameters")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        metrics: commit_info
            .get("operationMetrics")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        simpul: commit_info
            .get("simpul")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    }
}

pub(crate) fn lake_error(table: &LakeTable, source: DeltaTableError) -> CatalogError {
    CatalogError::Lake {
        table: table.qualified_name(),
        source: Box::new(source),
    }
}

/// Refuses a commit whose application transaction the table already has: that run landed.
async fn refuse_landed_transaction(
    table: &LakeTable,
    current: &DeltaTable,
    transaction: Option<&AppTransaction>,
) -> Result<(), CatalogError> {
    let Some(txn) = transaction else {
        return Ok(());
    };
    let state = current.snapshot().map_err(|e| lake_error(table, e))?;
    let committed = state
        .transaction_version(current.log_store().as_ref(), &txn.app_id)
        .await
        .map_err(|e| lake_error(table, e))?;
    match committed.filter(|v| *v >= txn.version) {
        Some(version) => Err(CatalogError::AlreadyCommitted {
            table: table.qualified_name(),
            app_id: txn.app_id.clone(),
            version,
        }),
        None => Ok(()),
    }
}

/// Simpul's metadata under `simpul` in `commitInfo`, and the application transaction.
fn commit_properties(
    metadata: serde_json::Map<String, serde_json::Value>,
    transaction: Option<AppTransaction>,
) -> CommitProperties {
    let properties = CommitProperties::default()
        .with_metadata([("simpul".to_string(), serde_json::Value::Object(metadata))])
        .with_cleanup_expired_logs(Some(false));
    match transaction {
        Some(txn) => {
            properties.with_application_transaction(Transaction::new(txn.app_id, txn.version))
        }
        None => properties,
    }
}

/// Tables are made with a checkpoint every this many commits (`delta.checkpointInterval`,
/// written by deltalake after the commit).
const CHECKPOINT_INTERVAL: u64 = 10;

/// Removes log entries past their retention, but only every hundredth checkpoint: deltalake's own
/// post-commit cleanup lists the whole log after every commit, which the bus's many small
/// group commits cannot afford. Cleanup is housekeeping: a failure changes nothing readers see.
async fn cleanup_at_checkpoints(delta: &DeltaTable, table: &LakeTable) {
    let Some(version) = delta.version() else {
        return;
    };
    if version == 0 || version % (CHECKPOINT_INTERVAL * 100) != 0 {
        return;
    }
    if let Err(e) = deltalake::checkpoints::cleanup_metadata(delta, None).await {
        tracing::warn!(table = %table.qualified_name(), version, error = %e, "cannot clean up expired log entries");
    }
}

/// How a table's Parquet files are written: Snappy, like delta-rs's default, and no
/// min/max statistics for `personal` columns, in the file footers or in the Delta log's
/// `stats`. Those would put a file's smallest and largest NIK, name or address in plain
/// text where masking cannot reach, and they skip nothing anyway (the values are spread
/// over every file). Skipping them also spares the writer two comparisons per value.
fn file_properties(
    schema: &Schema,
    personal: &[&str],
) -> deltalake::parquet::file::properties::WriterProperties {
    use deltalake::parquet::basic::Compression;
    use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use deltalake::parquet::schema::types::ColumnPath;
    schema
        .fields()
        .iter()
        .filter(|f| personal.contains(&f.name().as_str()))
        .fold(
            WriterProperties::builder().set_compression(Compression::SNAPPY),
            |builder, field| {
                builder.set_column_statistics_enabled(
                    ColumnPath::from(field.name().as_str()),
                    EnabledStatistics::None,
                )
            },
        )
        .build()
}

/// Decodes the `%XX` escapes of a path in the Delta log.
pub fn percent_decode(path: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", path.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| path.to_string(), |(_, v)| v.into_owned())
}

/// Files being written for one table, not yet committed.
pub struct TableWriter {
    table: LakeTable,
    schema: SchemaRef,
    writer: RecordBatchWriter,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    /// Streams one batch into the table's pending files.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), CatalogError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(|e| lake_error(&self.table, e))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the files, ready for [`Lake::commit`].
    pub async fn finish(mut self) -> Result<StagedFiles, CatalogError> {
        let adds = self
            .writer
            .flush()
            .await
            .map_err(|e| lake_error(&self.table, e))?;
        Ok(StagedFiles {
            table: self.table,
            schema: self.schema,
            adds,
            rows: self.rows,
        })
    }
}

/// Finished data files waiting for their commit.
#[derive(Debug)]
pub struct StagedFiles {
    table: LakeTable,
    schema: SchemaRef,
    adds: Vec<Add>,
    rows: u64,
}

impl StagedFiles {
    /// Rows in the files.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    async fn stage(lake: &Lake, table: &LakeTable, values: Vec<i64>) -> StagedFiles {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap();
        let mut writer = lake.writer(table, schema, &[]).unwrap();
        writer.write(batch).await.unwrap();
        writer.finish().await.unwrap()
    }

    /// Commits one row of `n` as a blind append.
    async fn append(lake: &Lake, table: &LakeTable, n: i64) -> DeltaTable {
        let staged = stage(lake, table, vec![n]).await;
        lake.commit(staged, WriteMode::Append, CommitOptions::default())
            .await
            .unwrap()
    }

    fn run(version: i64) -> CommitOptions {
        CommitOptions {
            transaction: Some(AppTransaction {
                app_id: "simpul.pipeline.uji".into(),
                version,
            }),
            ..Default::default()
        }
    }

    /// The `add` actions of one Delta log entry, as written.
    fn logged_adds(log: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter_map(|action| action.get("add").cloned())
            .collect()
    }

    /// Whether each column of a Parquet file's first row group has statistics in the footer.
    fn footer_statistics(file: &std::path::Path) -> Vec<bool> {
        use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
        let file = std::fs::File::open(file).unwrap();
        let metadata = SerializedFileReader::new(file).unwrap().metadata().clone();
        let row_group = metadata.row_group(0);
        (0..row_group.num_columns())
            .map(|i| row_group.column(i).statistics().is_some())
            .collect()
    }

    #[tokio::test]
    async fn personal_columns_are_written_without_statistics() {
        use arrow::array::{ArrayRef, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), HashMap::new()).unwrap();
        let table = LakeTable::Data("kependudukan.uji".parse().unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("nik", DataType::Utf8, false),
            Field::new("kode_wilayah", DataType::Utf8, false),
        ]));
        let column = |values: [&str; 2]| Arc::new(StringArray::from(values.to_vec())) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column(["3214045604510001", "3214174301060002"]),
                column(["32.14.04.2006", "32.14.17.2001"]),
            ],
        )
        .unwrap();
        let mut writer = lake.writer(&table, schema, &["nik"]).unwrap();
        writer.write(batch).await.unwrap();
        let staged = writer.finish().await.unwrap();

        // The Delta log's statistics name the region column only.
        let add = &staged.adds[0];
        let stats: serde_json::Value = serde_json::from_str(add.stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["minValues"]["kode_wilayah"], "32.14.04.2006");
        assert_eq!(stats["maxValues"]["kode_wilayah"], "32.14.17.2001");
        assert!(stats["minValues"].get("nik").is_none(), "{stats}");
        assert!(stats["maxValues"].get("nik").is_none(), "{stats}");

        // So does the Parquet footer.
        let root = lake.table_url(&table).unwrap().to_file_path().unwrap();
        assert_eq!(footer_statistics(&root.join(&add.path)), [false, true]);
    }

    #[tokio::test]
    async fn a_compaction_writes_personal_columns_without_statistics() {
        use arrow::array::{ArrayRef, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), HashMap::new()).unwrap();
        let table = LakeTable::Data("kependudukan.padat".parse().unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("nik", DataType::Utf8, false),
            Field::new("kode_wilayah", DataType::Utf8, false),
        ]));
        let people = [
            ("3214045604510001", "32.14.04.2006"),
            ("3214174301060002", "32.14.17.2001"),
            ("3214010101900003", "32.14.01.1001"),
        ];
        // Three small files, as three group commits leave them.
        for (nik, kode_wilayah) in people {
            let column = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
            let batch =
                RecordBatch::try_new(schema.clone(), vec![column(nik), column(kode_wilayah)])
                    .unwrap();
            lake.write_batches(
                &table,
                schema.clone(),
                &["nik"],
                vec![batch],
                WriteMode::Append,
                CommitOptions::default(),
            )
            .await
            .unwrap();
        }
        let version = lake
            .compact(&table, &["nik"])
            .await
            .unwrap()
            .expect("a compaction commit");

        // The compaction's one new file: the Delta log's statistics name the region only.
        let root = lake.table_url(&table).unwrap().to_file_path().unwrap();
        let adds = logged_adds(&root.join("_delta_log").join(format!("{version:020}.json")));
        assert_eq!(adds.len(), 1, "{adds:?}");
        let stats: serde_json::Value =
            serde_json::from_str(adds[0]["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["kode_wilayah"], "32.14.01.1001");
        assert_eq!(stats["maxValues"]["kode_wilayah"], "32.14.17.2001");
        assert!(stats["minValues"].get("nik").is_none(), "{stats}");
        assert!(stats["maxValues"].get("nik").is_none(), "{stats}");

        // Nor does its Parquet footer hold any for the NIK.
        let path = percent_decode(adds[0]["path"].as_str().unwrap());
        assert_eq!(footer_statistics(&root.join(path)), [false, true]);
    }

    #[tokio::test]
    async fn an_upsert_writes_personal_columns_without_statistics() {
        use arrow::array::{ArrayRef, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), HashMap::new()).unwrap();
        let table = LakeTable::Data("kependudukan.upsert".parse().unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("nik", DataType::Utf8, false),
            Field::new("nama", DataType::Utf8, false),
        ]));
        let batch = |nama: &str| {
            let column = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
            RecordBatch::try_new(
                schema.clone(),
                vec![column("3214045604510001"), column(nama)],
            )
            .unwrap()
        };
        let keys = ["nik".to_string()];
        // The first upsert creates the table; the second is a Delta merge that rewrites it.
        for nama in ["Neng Suryani", "Neng Suryani Dewi"] {
            lake.merge(
                &table,
                schema.clone(),
                vec![batch(nama)],
                &keys,
                &["nik"],
                CommitOptions::default(),
            )
            .await
            .unwrap();
        }
        let root = lake.table_url(&table).unwrap().to_file_path().unwrap();
        let mut logs: Vec<_> = std::fs::read_dir(root.join("_delta_log"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        logs.sort();
        let adds: Vec<serde_json::Value> = logs.iter().flat_map(|path| logged_adds(path)).collect();
        // The first write's file, and the merge's rewrite of it.
        assert!(adds.len() >= 2, "{adds:?}");
        for add in adds {
            let stats: serde_json::Value =
                serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            assert!(stats["minValues"].get("nama").is_some(), "{stats}");
            assert!(stats["minValues"].get("nik").is_none(), "{stats}");
            assert!(stats["maxValues"].get("nik").is_none(), "{stats}");
        }
    }

    #[tokio::test]
    async fn compaction_keeps_the_rows_and_the_change_feed() {
        use datafusion::prelude::SessionContext;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let lake = Lake::new(&url, HashMap::new()).unwrap();
        let table = LakeTable::Data("stats.kecil".parse().unwrap());
        for n in 0..6 {
            let staged = stage(&lake, &table, vec![n, n + 100]).await;
            let committed = lake
                .commit(staged, WriteMode::Append, CommitOptions::default())
                .await
                .unwrap();
            lake.sync_version(&table, committed.version().unwrap() as i64)
                .await
                .unwrap();
        }
        let before = Lake::stats(&lake.load_existing(&table).await.unwrap()).unwrap();
        assert_eq!(
            (before.files, before.small_files, before.row_count),
            (6, 6, 12)
        );
        let version = lake
            .compact(&table, &[])
            .await
            .unwrap()
            .expect("a compaction commit");
        let after = Lake::stats(&lake.load_existing(&table).await.unwrap()).unwrap();
        assert_eq!(
            (
                after.files,
                after.small_files,
                after.row_count,
                after.version
            ),
            (1, 1, 12, version)
        );
        // The compaction changes no data: the change feed still holds each row once.
        let delta = lake.load_existing(&table).await.unwrap();
        let provider = deltalake::delta_datafusion::DeltaCdfTableProvider::try_new(
            delta.scan_cdf().with_starting_version(0),
        )
        .unwrap();
        let ctx = SessionContext::new();
        let rows = ctx
            .read_table(Arc::new(provider))
            .unwrap()
            .count()
            .await
            .unwrap();
        assert_eq!(rows, 12);
        // Nothing left to compact.
        assert_eq!(lake.compact(&table, &[]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_blind_append_after_another_writers_commits_answers_with_its_version_and_their_files()
    {
        // (The branch for a writer that commits between this commit and its reload is not
        // reached here: nothing can be made to run in that gap.)
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        // Two lakes on one root: two hub processes, each with its own cached version.
        let (ours, theirs) = (
            Lake::new(&url, HashMap::new()).unwrap(),
            Lake::new(&url, HashMap::new()).unwrap(),
        );
        let table = LakeTable::Data("stats.bersama".parse().unwrap());
        // Version 0 created the table.
        assert_eq!(append(&ours, &table, 1).await.version(), Some(1));
        append(&theirs, &table, 2).await;
        append(&theirs, &table, 3).await;
        // Ours starts from its cached version 1; deltalake's conflict check lets the blind
        // append pass over the other writer's versions 2 and 3.
        let committed = append(&ours, &table, 4).await;
        assert_eq!(committed.version(), Some(4));
        let stats = Lake::stats(&committed).unwrap();
        assert_eq!(
            (stats.files, stats.row_count),
            (4, 4),
            "every writer's file"
        );
        // Once more, after another commit of theirs (version 5).
        append(&theirs, &table, 5).await;
        assert_eq!(append(&ours, &table, 6).await.version(), Some(6));
        // What the lake keeps as its latest is the newest it saw.
        let latest = ours.load_existing(&table).await.unwrap();
        assert_eq!(latest.version(), Some(6));
        assert_eq!(Lake::stats(&latest).unwrap().row_count, 6);
    }

    #[tokio::test]
    async fn an_application_transaction_lands_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let lake = Lake::new(&url, HashMap::new()).unwrap();
        let table = LakeTable::Data("stats.uji".parse().unwrap());
        assert_eq!(
            lake.transaction_version(&table, "simpul.pipeline.uji")
                .await
                .unwrap(),
            None,
            "no table, no transaction"
        );

        let staged = stage(&lake, &table, vec![1, 2]).await;
        let first = lake
            .commit(staged, WriteMode::Append, run(1))
            .await
            .unwrap();
        assert_eq!(
            lake.transaction_version(&table, "simpul.pipeline.uji")
                .await
                .unwrap(),
            Some(1)
        );

        let again = stage(&lake, &table, vec![1, 2]).await;
        let refused = lake.commit(again, WriteMode::Append, run(1)).await;
        assert!(
            matches!(
                refused,
                Err(CatalogError::AlreadyCommitted { version: 1, .. })
            ),
            "{refused:?}"
        );
        let unchanged = lake.load_existing(&table).await.unwrap();
        assert_eq!(
            unchanged.version(),
            first.version(),
            "nothing was committed"
        );

        let next = stage(&lake, &table, vec![3]).await;
        lake.commit(next, WriteMode::Append, run(2)).await.unwrap();
        assert_eq!(
            lake.transaction_version(&table, "simpul.pipeline.uji")
                .await
                .unwrap(),
            Some(2)
        );
        let stats = Lake::stats(&lake.load_existing(&table).await.unwrap()).unwrap();
        assert_eq!(stats.row_count, 3, "runs 1 and 2, each once");
    }
}
