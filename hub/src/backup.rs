//! Backups: a consistent online copy of the state store and the lake, to a folder or an
//! `s3://` URL, restored into an empty data directory, and checked without restoring.
//!
//! A backup is a folder of snapshots beside one mirror of the lake:
//!
//! ```text
//! DEST/lake/<the lake's own paths>          data files, attachments, Delta logs (each once)
//! DEST/snapshots/<stamp>/manifest.json      what the snapshot holds (format simpul-backup-v1)
//! DEST/snapshots/<stamp>/state.ndjson       the state store's rows (simpul-state-v1)
//! DEST/snapshots/<stamp>/files/…            the signing keys and the pipeline, query and
//!                                           dashboard folders
//! ```
//!
//! Consistency: the state store is copied first, in one read transaction; its time is
//! taken just before the transaction's first read. Each table's snapshot version is its
//! newest commit made by that time, or its newest commit that the copy refers to (a
//! message its log records, a version a stored answer names: the transaction may see a
//! moment past its time). Files are copied after, so
//! every file those versions name is there. A commit in the snapshot whose bookkeeping
//! (answer, message-log record) the copy lacks left its idempotency key `in_progress` with
//! its intent in the copy (intents are written before commits), so the restored hub's
//! recovery finishes it at its first start, as after a crash. Later commits are not in the
//! snapshot. Lake files never change once written, so later runs copy only
//! what is new.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use simpul_catalog::{
    Catalog, StateDumpHeader, object_store_at, parse_timestamp, percent_decode, version_info,
};

use crate::config::Config;

/// The manifest's format name.
pub const BACKUP_FORMAT: &str = "simpul-backup-v1";

/// What one snapshot holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BACKUP_FORMAT`].
    pub format: String,
    /// The snapshot's folder name.
    pub stamp: String,
    /// The snapshot's moment: the state store as of then, each table's newest commit made
    /// by then.
    pub taken_at: String,
    /// The state copy: its SHA-256 and size, and its header.
    pub state: StateCopy,
    /// Each table's version in the snapshot, by its path under the lake's root.
    pub tables: BTreeMap<String, i64>,
    /// The files under `files/`, with their SHA-256 and size.
    pub files: BTreeMap<String, FileEntry>,
    /// Objects this run copied into the lake mirror, and their bytes.
    pub copied_objects: u64,
    /// Bytes this run copied into the lake mirror.
    pub copied_bytes: u64,
    /// Objects of the lake the mirror already held.
    pub unchanged_objects: u64,
}

/// The state copy of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateCopy {
    /// SHA-256 of `state.ndjson`, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Its first line.
    pub header: StateDumpHeader,
}

/// A file under a snapshot's `files/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// SHA-256, hex.
    pub sha256: String,
    /// Size.
    pub bytes: u64,
}

fn fail(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// Opens a backup's destination: an `s3://` URL (with the lake's S3 options) or a folder
/// (made if missing).
pub fn open_destination(config: &Config, dest: &str) -> Result<Arc<dyn ObjectStore>, String> {
    let url = if dest.starts_with("s3://") || dest.starts_with("s3a://") {
        url::Url::parse(dest).map_err(|e| format!("'{dest}' is not a URL: {e}"))?
    } else {
        let path = PathBuf::from(dest);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot make the backup folder {dest}: {e}"))?;
        let path = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve {dest}: {e}"))?;
        url::Url::from_directory_path(&path)
            .map_err(|()| format!("{} is not an absolute path", path.display()))?
    };
    let options = config.lake.storage_options.clone().into_iter().collect();
    object_store_at(&url, options).map_err(fail)
}

/// The folders of the data directory a snapshot carries, by their name under `files/`.
fn carried_folders(config: &Config) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("keys", config.data_dir.join("keys")),
        ("pipelines", config.effective_pipelines_dir()),
        ("queries", config.effective_queries_dir()),
        ("dashboards", config.effective_dashboards_dir()),
    ]
}

fn walk(dir: &FsPath, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// A Delta log file's version and whether it is a commit (`…json`) or a checkpoint.
fn log_version(name: &str) -> Option<(i64, bool)> {
    let (stem, rest) = name.split_once('.')?;
    if stem.len() != 20 {
        return None;
    }
    let version = stem.parse().ok()?;
    match rest {
        "json" => Some((version, true)),
        r if r.starts_with("checkpoint") && r.ends_with(".parquet") => Some((version, false)),
        _ => None,
    }
}

/// Splits a lake path into its table's path (before `_delta_log`) and the log file name.
fn split_log(path: &str) -> Option<(&str, &str)> {
    let (table, name) = path.split_once("/_delta_log/")?;
    (!name.contains('/')).then_some((table, name))
}

async fn list(
    store: &Arc<dyn ObjectStore>,
    prefix: Option<&Path>,
) -> Result<Vec<object_store::ObjectMeta>, String> {
    store
        .list(prefix)
        .try_collect()
        .await
        .map_err(|e| format!("listing the store failed: {e}"))
}

async fn read(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<bytes::Bytes, String> {
    store
        .get(path)
        .await
        .map_err(|e| format!("reading {path}: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("reading {path}: {e}"))
}

async fn write(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    bytes: bytes::Bytes,
) -> Result<(), String> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map_err(|e| format!("writing {path}: {e}"))?;
    Ok(())
}

/// Each table's snapshot version: its newest commit made at or before `at` (the copy's
/// time, taken just before its transaction's first read), or, if later, its newest commit
/// that names a message the copy's message log records or that a stored answer names. The copy's transaction may see
/// writes a moment past `at`; a logged message's commit landed before its record was
/// written, and so before every commit older than it, whose intents the copy then holds.
async fn snapshot_versions(
    lake: &Arc<dyn ObjectStore>,
    logs: &BTreeMap<String, Vec<i64>>,
    at: DateTime<Utc>,
    refs: &Referenced,
) -> Result<BTreeMap<String, i64>, String> {
    let mut versions = BTreeMap::new();
    for (table, commits) in logs {
        // A version a stored answer names is in the snapshot, if the lake has it.
        let mut named: Option<i64> = refs
            .versions
            .get(table)
            .copied()
            .filter(|v| commits.binary_search(v).is_ok());
        for &version in commits.iter().rev() {
            let path = Path::from(format!("{table}/_delta_log/{version:020}.json"));
            let bytes = read(lake, &path).await?;
            let commit = version_info(version, &bytes);
            if commit.timestamp.is_none_or(|made| made <= at) {
                versions.insert(table.clone(), named.unwrap_or(version).max(version));
                break;
            }
            let names_logged = commit.simpul["messages"].as_array().is_some_and(|m| {
                m.iter()
                    .any(|id| id.as_str().is_some_and(|id| refs.messages.contains(id)))
            });
            if names_logged {
                named = Some(named.map_or(version, |n| n.max(version)));
            }
        }
        if let (None, Some(version)) = (versions.get(table), named) {
            versions.insert(table.clone(), version);
        }
    }
    Ok(versions)
}

/// What a state copy refers to in the lake: the message ids its message log records, and
/// per data table (`namespace/name`) the newest version the catalog or a stored answer
/// names.
#[derive(Debug, Default)]
struct Referenced {
    messages: std::collections::HashSet<String>,
    versions: HashMap<String, i64>,
}

fn referenced(state: &[u8]) -> Referenced {
    let mut found = Referenced::default();
    let mut table = String::new();
    let mut columns: Vec<String> = Vec::new();
    let at = |columns: &[String], name: &str| columns.iter().position(|c| c == name);
    for line in state.split(|b| *b == b'\n').skip(1) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(name) = value.get("table").and_then(|t| t.as_str()) {
            table = name.to_string();
            columns = value["columns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            continue;
        }
        match table.as_str() {
            "message_log" => {
                if let Some(id) = at(&columns, "message_id").and_then(|i| value[i].as_str()) {
                    found.messages.insert(id.to_string());
                }
            }
            // The catalog's version of each dataset.
            "datasets" => {
                let id = at(&columns, "id").and_then(|i| value[i].as_str());
                let version = at(&columns, "current_version").and_then(|i| value[i].as_i64());
                if let (Some(id), Some(version)) = (id, version)
                    && let Some((namespace, name)) = id.split_once('.')
                {
                    let newest = found
                        .versions
                        .entry(format!("{namespace}/{name}"))
                        .or_insert(version);
                    *newest = (*newest).max(version);
                }
            }
            "idempotency_keys" => {
                let Some(body) = at(&columns, "response_body").and_then(|i| value[i].as_str())
                else {
                    continue;
                };
                let Ok(answer) = serde_json::from_str::<serde_json::Value>(body) else {
                    continue;
                };
                // A publish's receipt, or an upload's report.
                let named = if answer["receipt"].is_object() {
                    &answer["receipt"]
                } else {
                    &answer
                };
                if let (Some(dataset), Some(version)) =
                    (named["dataset"].as_str(), named["version"].as_i64())
                    && let Some((namespace, name)) = dataset.split_once('.')
                {
                    let newest = found
                        .versions
                        .entry(format!("{namespace}/{name}"))
                        .or_insert(version);
                    *newest = (*newest).max(version);
                }
            }
            _ => {}
        }
    }
    found
}

/// Takes one snapshot into `dest` while the hub may be serving; returns its manifest.
pub async fn backup(config: &Config, catalog: &Catalog, dest: &str) -> Result<Manifest, String> {
    let target = open_destination(config, dest)?;
    let lake = catalog.lake.store().map_err(fail)?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let snapshot = format!("snapshots/{stamp}");

    // 1. The state store, as of one moment.
    let mut state = Vec::new();
    let header = catalog.state.dump(&mut state).await.map_err(fail)?;
    let taken_at = parse_timestamp(&header.taken_at).ok_or("the state copy has no time")?;
    let refs = referenced(&state);
    let state_copy = StateCopy {
        sha256: hex::encode(Sha256::digest(&state)),
        bytes: state.len() as u64,
        header,
    };
    write(
        &target,
        &Path::from(format!("{snapshot}/state.ndjson")),
        state.into(),
    )
    .await?;

    // 2. Each table's version at that moment.
    let objects = list(&lake, None).await?;
    let mut logs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for object in &objects {
        if let Some((table, name)) = split_log(object.location.as_ref())
            && let Some((version, true)) = log_version(name)
        {
            logs.entry(table.to_string()).or_default().push(version);
        }
    }
    for commits in logs.values_mut() {
        commits.sort_unstable();
    }
    let tables = snapshot_versions(&lake, &logs, taken_at, &refs).await?;

    // 3. The lake's files the mirror lacks: data and objects, then the logs up to each
    //    table's version (a reader finds the newest checkpoint by listing).
    let held: HashMap<String, u64> = list(&target, Some(&Path::from("lake")))
        .await?
        .into_iter()
        .map(|o| (o.location.to_string(), o.size))
        .collect();
    let (mut copied_objects, mut copied_bytes, mut unchanged_objects) = (0u64, 0u64, 0u64);
    let mut ordered: Vec<&object_store::ObjectMeta> = objects.iter().collect();
    // Data before logs, so that no copied log names a file the mirror lacks.
    ordered.sort_by_key(|o| split_log(o.location.as_ref()).is_some());
    for object in ordered {
        let path = object.location.as_ref();
        if let Some((table, name)) = split_log(path) {
            let Some(version) = log_version(name).map(|(v, _)| v) else {
                continue;
            };
            if tables.get(table).is_none_or(|&snapshot| version > snapshot) {
                continue;
            }
        }
        let mirrored = format!("lake/{path}");
        if held.get(&mirrored) == Some(&object.size) {
            unchanged_objects += 1;
            continue;
        }
        let bytes = read(&lake, &object.location).await?;
        copied_bytes += bytes.len() as u64;
        copied_objects += 1;
        write(&target, &Path::from(mirrored), bytes).await?;
    }

    // 4. The folders beside the lake.
    let mut files = BTreeMap::new();
    for (name, dir) in carried_folders(config) {
        let mut found = Vec::new();
        walk(&dir, &mut found);
        for file in found {
            let Ok(relative) = file.strip_prefix(&dir) else {
                continue;
            };
            let bytes =
                std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            let key = format!("{name}/{}", relative.to_string_lossy());
            files.insert(
                key.clone(),
                FileEntry {
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    bytes: bytes.len() as u64,
                },
            );
            write(
                &target,
                &Path::from(format!("{snapshot}/files/{key}")),
                bytes.into(),
            )
            .await?;
        }
    }

    let manifest = Manifest {
        format: BACKUP_FORMAT.into(),
        stamp: stamp.clone(),
        taken_at: simpul_catalog::timestamp(taken_at),
        state: state_copy,
        tables,
        files,
        copied_objects,
        copied_bytes,
        unchanged_objects,
    };
    // Written last: a snapshot without its manifest is an interrupted run, and is ignored.
    let text = serde_json::to_vec_pretty(&manifest).map_err(fail)?;
    write(
        &target,
        &Path::from(format!("{snapshot}/manifest.json")),
        text.into(),
    )
    .await?;
    Ok(manifest)
}

/// Every complete snapshot of a backup, oldest first.
pub async fn snapshots(source: &Arc<dyn ObjectStore>) -> Result<Vec<Manifest>, String> {
    let mut manifests = Vec::new();
    for object in list(source, Some(&Path::from("snapshots"))).await? {
        if !object.location.as_ref().ends_with("/manifest.json") {
            continue;
        }
        let bytes = read(source, &object.location).await?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a backup manifest: {e}", object.location))?;
        if manifest.format != BACKUP_FORMAT {
            return Err(format!(
                "{} is of format '{}', not {BACKUP_FORMAT}",
                object.location, manifest.format
            ));
        }
        manifests.push(manifest);
    }
    manifests.sort_by(|a, b| a.taken_at.cmp(&b.taken_at));
    Ok(manifests)
}

/// What a restore brought back.
#[derive(Debug)]
pub struct Restored {
    /// The snapshot restored.
    pub manifest: Manifest,
    /// Lake objects copied.
    pub objects: u64,
    /// Datasets in the restored catalog.
    pub datasets: u64,
}

/// Restores the newest snapshot taken at or before `at` (the newest of all without it)
/// into the configured data directory, lake and state store, which must be empty.
pub async fn restore(
    config: &Config,
    catalog: &Catalog,
    src: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Restored, String> {
    let source = open_destination(config, src)?;
    let all = snapshots(&source).await?;
    if all.is_empty() {
        return Err(format!("{src} holds no complete snapshot"));
    }
    let manifest = match at {
        None => all.last().cloned(),
        Some(at) => all
            .iter()
            .rev()
            .find(|m| parse_timestamp(&m.taken_at).is_some_and(|t| t <= at))
            .cloned(),
    }
    .ok_or_else(|| {
        format!(
            "no snapshot of {src} was taken by then; the oldest is {}",
            all[0].taken_at
        )
    })?;

    // The target must be empty: a restore never mixes with live data.
    let lake = catalog.lake.store().map_err(fail)?;
    if !list(&lake, None).await?.is_empty() {
        return Err(format!(
            "the lake at {} is not empty; restore into an empty data directory",
            catalog.lake.root()
        ));
    }
    let held: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM datasets) + (SELECT COUNT(*) FROM api_clients)",
    )
    .fetch_one(catalog.state.pool())
    .await
    .map_err(fail)?;
    if held > 0 || config.data_dir.join("keys").exists() {
        return Err(
            "the state store or the data directory already holds a hub; restore into an empty data directory"
                .into(),
        );
    }

    // The lake: the snapshot's tables up to their versions, and the objects beside them.
    let mut objects = 0;
    for object in list(&source, Some(&Path::from("lake"))).await? {
        let full = object.location.as_ref();
        let Some(path) = full.strip_prefix("lake/") else {
            continue;
        };
        let wanted = match split_log(path) {
            Some((table, name)) => match (manifest.tables.get(table), log_version(name)) {
                (Some(&snapshot), Some((version, _))) => version <= snapshot,
                _ => false,
            },
            None => {
                path.starts_with("_objects/")
                    || manifest
                        .tables
                        .keys()
                        .any(|table| path.starts_with(&format!("{table}/")))
            }
        };
        if !wanted {
            continue;
        }
        let bytes = read(&source, &object.location).await?;
        write(&lake, &Path::from(path), bytes).await?;
        objects += 1;
    }

    // The state store.
    let state_path = Path::from(format!("snapshots/{}/state.ndjson", manifest.stamp));
    let state = read(&source, &state_path).await?;
    if hex::encode(Sha256::digest(&state)) != manifest.state.sha256 {
        return Err(format!(
            "{state_path} does not match its manifest's SHA-256"
        ));
    }
    catalog
        .state
        .load_dump(&mut state.as_ref())
        .await
        .map_err(fail)?;
    // The requests the snapshot caught mid-way belong to no running process: the restored
    // hub's recovery settles them at its start.
    catalog
        .state
        .expire_idempotency_leases()
        .await
        .map_err(fail)?;

    // The folders.
    let folders: HashMap<&str, PathBuf> = carried_folders(config).into_iter().collect();
    for (key, entry) in &manifest.files {
        let Some((folder, relative)) = key.split_once('/') else {
            continue;
        };
        let Some(dir) = folders.get(folder) else {
            continue;
        };
        let bytes = read(
            &source,
            &Path::from(format!("snapshots/{}/files/{key}", manifest.stamp)),
        )
        .await?;
        if hex::encode(Sha256::digest(&bytes)) != entry.sha256 {
            return Err(format!(
                "file {key} of the snapshot does not match its manifest"
            ));
        }
        let file = dir.join(relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("making {}: {e}", parent.display()))?;
        }
        std::fs::write(&file, &bytes).map_err(|e| format!("writing {}: {e}", file.display()))?;
        #[cfg(unix)]
        if folder == "keys" {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }

    // The catalog's versions and counts, from the restored lake.
    let datasets = catalog.state.dataset_ids().await.map_err(fail)?;
    for id in &datasets {
        if let Err(e) = catalog.refresh_stats(id).await {
            tracing::warn!(dataset = %id, error = %e, "cannot refresh a restored dataset's statistics");
        }
    }
    Ok(Restored {
        manifest,
        objects,
        datasets: datasets.len() as u64,
    })
}

/// What checking a backup found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Delta commits read.
    pub commits: u64,
    /// Data files their adds name, all found with their sizes.
    pub files: u64,
    /// Everything that does not hold.
    pub problems: Vec<String>,
}

/// Checks every snapshot of a backup without restoring it: the state copy is whole (its
/// SHA-256, and its row lines as its header counts them), every table's commits up to its
/// snapshot version are there (from its first, or after its newest checkpoint when Delta
/// has cleaned the older ones up), every file they add is there with its size, and the
/// carried files match their SHA-256.
pub async fn verify(config: &Config, src: &str) -> Result<Checked, String> {
    let source = open_destination(config, src)?;
    let mut checked = Checked::default();
    let held: HashMap<String, u64> = list(&source, None)
        .await?
        .into_iter()
        .map(|o| (o.location.to_string(), o.size))
        .collect();
    let mut read_logs: HashMap<(String, i64), Vec<(String, u64)>> = HashMap::new();
    for manifest in snapshots(&source).await? {
        checked.snapshots += 1;
        let stamp = &manifest.stamp;
        let state_path = Path::from(format!("snapshots/{stamp}/state.ndjson"));
        match read(&source, &state_path).await {
            Ok(state) => {
                if hex::encode(Sha256::digest(&state)) != manifest.state.sha256 {
                    checked.problems.push(format!(
                        "{state_path}: its SHA-256 does not match the manifest"
                    ));
                }
                let lines = state
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count() as u64;
                let expected: u64 = 1 + manifest
                    .state
                    .header
                    .tables
                    .iter()
                    .map(|t| 1 + t.rows)
                    .sum::<u64>();
                if lines != expected {
                    checked.problems.push(format!(
                        "{state_path}: {lines} lines where its header counts {expected}"
                    ));
                }
            }
            Err(e) => checked.problems.push(e),
        }
        for (key, entry) in &manifest.files {
            let path = format!("snapshots/{stamp}/files/{key}");
            match read(&source, &Path::from(path.clone())).await {
                Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == entry.sha256 => {}
                Ok(_) => checked
                    .problems
                    .push(format!("{path}: its SHA-256 does not match the manifest")),
                Err(e) => checked.problems.push(e),
            }
        }
        for (table, &snapshot) in &manifest.tables {
            // Delta removes commits older than its log retention once a checkpoint covers
            // them: the check starts after the newest checkpoint when the first commit is
            // gone (files named only by that checkpoint are not checked).
            let log_dir = format!("lake/{table}/_delta_log/");
            let first = if held.contains_key(&format!("{log_dir}{:020}.json", 0)) {
                0
            } else {
                held.keys()
                    .filter_map(|path| path.strip_prefix(&log_dir))
                    .filter_map(log_version)
                    .filter(|&(version, commit)| !commit && version <= snapshot)
                    .map(|(version, _)| version + 1)
                    .max()
                    .unwrap_or(0)
            };
            for version in first..=snapshot {
                let key = (table.clone(), version);
                if !read_logs.contains_key(&key) {
                    let log = format!("lake/{table}/_delta_log/{version:020}.json");
                    if !held.contains_key(&log) {
                        checked.problems.push(format!(
                            "snapshot {stamp}: {log} is missing (table {table} at version {snapshot})"
                        ));
                        read_logs.insert(key, Vec::new());
                        continue;
                    }
                    let bytes = read(&source, &Path::from(log)).await?;
                    checked.commits += 1;
                    let adds: Vec<(String, u64)> = bytes
                        .split(|b| *b == b'\n')
                        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
                        .filter_map(|action| {
                            let add = action.get("add")?;
                            Some((
                                add["path"].as_str()?.to_string(),
                                add["size"].as_u64().unwrap_or(0),
                            ))
                        })
                        .collect();
                    read_logs.insert(key.clone(), adds);
                }
                for (file, size) in &read_logs[&key] {
                    let decoded = percent_decode(file);
                    let path = format!("lake/{table}/{decoded}");
                    match held.get(&path) {
                        Some(held_size) if held_size == size => checked.files += 1,
                        Some(held_size) => checked.problems.push(format!(
                            "{path}: {held_size} bytes where version {version} of {table} says {size}"
                        )),
                        None => checked.problems.push(format!(
                            "{path}: named by version {version} of {table}, missing"
                        )),
                    }
                }
            }
        }
    }
    if checked.snapshots == 0 {
        checked
            .problems
            .push(format!("{src} holds no complete snapshot"));
    }
    checked.problems.sort();
    checked.problems.dedup();
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_are_told_from_data_files() {
        assert_eq!(log_version("00000000000000000012.json"), Some((12, true)));
        assert_eq!(
            log_version("00000000000000000010.checkpoint.parquet"),
            Some((10, false))
        );
        assert_eq!(log_version("_last_checkpoint"), None);
        assert_eq!(log_version("00000000000000000012.crc"), None);
        assert_eq!(
            split_log("dukcapil/warga/_delta_log/00000000000000000001.json"),
            Some(("dukcapil/warga", "00000000000000000001.json"))
        );
        assert_eq!(split_log("dukcapil/warga/part-0001.parquet"), None);
    }

    #[test]
    fn a_state_copy_refers_to_its_logged_messages_and_the_versions_it_names() {
        let copy = [
            r#"{"format":"simpul-state-v1"}"#,
            r#"{"table":"datasets","columns":["id","current_version"]}"#,
            r#"["dukcapil.warga",7]"#,
            r#"{"table":"idempotency_keys","columns":["client_id","response_body"]}"#,
            r#"["a","{\"receipt\":{\"dataset\":\"dukcapil.warga\",\"version\":9}}"]"#,
            r#"["a","{\"dataset\":\"stats.gk\",\"version\":3}"]"#,
            r#"["a",null]"#,
            r#"{"table":"message_log","columns":["seq","message_id"]}"#,
            r#"[1,"m1"]"#,
        ]
        .join("\n");
        let found = referenced(copy.as_bytes());
        assert!(found.messages.contains("m1"));
        assert_eq!(found.messages.len(), 1);
        assert_eq!(found.versions["dukcapil/warga"], 9);
        assert_eq!(found.versions["stats/gk"], 3);
    }
}
