//! The `file` connector: the files of a folder on any object store (a local folder,
//! `file://`, `s3://`, or one `http(s)://` file), chosen by a glob, read in any format this
//! module reads. Incremental by file: the state keeps each file's size and ETag (or
//! modification time), and a run reads only files that are new or changed.
//!
//! Files whose names start with `.` or `~$` (editor and Excel lock files) are never read, nor
//! are files whose format cannot be told from their extension when no `format` is set. A
//! file that cannot be read at all fails the run and is named; nothing of the run lands.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use serde_json::{Value, json};
use simpul_schemas::infer_schema;
use tokio::io::AsyncWriteExt;
use url::Url;

use super::{CsvOptions, ExcelOptions, FileFormat, encoding_for, open_as};
use crate::raw::SourceError;
use crate::source::{ReadEvent, Source, StreamInfo, event_stream, unknown_stream};

/// The one stream a `file` source offers.
pub const STREAM: &str = "files";

/// A `file` source's settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The folder (`/srv/masuk`, `file:///srv/masuk`, `s3://bucket/prefix`) or one file
    /// (`https://host/data.csv`).
    pub url: String,
    /// Which files of the folder, relative to it (`*.csv`, `2024/**/*.xlsx`); all when
    /// absent. `*` stays within a folder, `**` crosses folders.
    #[serde(default)]
    pub glob: Option<String>,
    /// `csv`, `tsv`, `ndjson`, `json`, `parquet`, `xlsx`, `xls`, `ods`; by extension when
    /// absent.
    #[serde(default)]
    pub format: Option<String>,
    /// CSV: the field separator (one character).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// CSV: the quote character.
    #[serde(default)]
    pub quote: Option<String>,
    /// CSV: whether the first row names the columns.
    #[serde(default = "yes")]
    pub header: bool,
    /// CSV: the text encoding (`utf-8`, `windows-1252`, `iso-8859-1`, …).
    #[serde(default)]
    pub encoding: Option<String>,
    /// Spreadsheets: the sheet's name (the first sheet when absent).
    #[serde(default)]
    pub sheet: Option<String>,
    /// Spreadsheets: the header's row number, 1-based (found when absent).
    #[serde(default)]
    pub header_row: Option<usize>,
    /// Object store options (`aws_endpoint`, `aws_access_key_id`, …).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A `file` source.
pub struct FileSource {
    config: FileSourceConfig,
    store: Arc<dyn ObjectStore>,
    /// The folder (or the one file) within the store.
    root: StorePath,
    /// Whether `url` names one file (HTTP) rather than a folder.
    single: bool,
    /// Whether the store is the local file system, so files are read where they are.
    local: bool,
    glob: Option<glob::Pattern>,
    format: Option<FileFormat>,
}

/// One file of the folder, as the state remembers it.
#[derive(Debug, Clone)]
struct Listed {
    /// The path relative to the folder, as the state and the glob see it.
    relative: String,
    meta: ObjectMeta,
}

impl Listed {
    /// What changes when the file changes: its size and its ETag, or its modification time.
    fn version(&self) -> String {
        let tag = self
            .meta
            .e_tag
            .clone()
            .unwrap_or_else(|| self.meta.last_modified.to_rfc3339());
        format!("{}:{tag}", self.meta.size)
    }
}

impl FileSourceConfig {
    /// The source; refuses settings that cannot work.
    pub fn source(&self) -> Result<FileSource, SourceError> {
        let invalid = |reason: String| SourceError::Config {
            connector: "file".into(),
            reason,
        };
        let url = folder_url(&self.url).map_err(invalid)?;
        let single = matches!(url.scheme(), "http" | "https");
        let mut options = self.storage_options.clone();
        if url.scheme() == "http" {
            // object_store refuses plain HTTP unless told; the URL says it.
            options
                .entry("allow_http".into())
                .or_insert_with(|| "true".into());
        }
        let (store, root) = object_store::parse_url_opts(&url, options)
            .map_err(|e| invalid(format!("cannot use {}: {e}", self.url)))?;
        // Bad CSV settings are refused now, not when the first CSV file arrives.
        self.with_options(FileFormat::Csv(CsvOptions::default()))
            .map_err(invalid)?;
        let glob = self
            .glob
            .as_deref()
            .map(glob::Pattern::new)
            .transpose()
            .map_err(|e| {
                invalid(format!(
                    "glob '{}': {e}",
                    self.glob.as_deref().unwrap_or("")
                ))
            })?;
        let format = self
            .format
            .as_deref()
            .map(|name| self.file_format(name).map_err(invalid))
            .transpose()?;
        Ok(FileSource {
            config: self.clone(),
            store: Arc::from(store),
            root,
            single,
            local: url.scheme() == "file",
            glob,
            format,
        })
    }

    /// The named format with this source's CSV and spreadsheet settings.
    fn file_format(&self, name: &str) -> Result<FileFormat, String> {
        let format = FileFormat::from_name(name).ok_or_else(|| {
            format!("format '{name}' is not one of csv, tsv, ndjson, json, parquet, xlsx, xls, ods")
        })?;
        self.with_options(format)
    }

    fn with_options(&self, format: FileFormat) -> Result<FileFormat, String> {
        let one_byte = |what: &str, value: &Option<String>, default: u8| match value.as_deref() {
            None => Ok(default),
            Some(text) if text.len() == 1 => Ok(text.as_bytes()[0]),
            Some("\\t") => Ok(b'\t'),
            Some(text) => Err(format!("{what} must be one ASCII character, not '{text}'")),
        };
        Ok(match format {
            FileFormat::Csv(defaults) => FileFormat::Csv(CsvOptions {
                delimiter: one_byte("delimiter", &self.delimiter, defaults.delimiter)?,
                quote: one_byte("quote", &self.quote, defaults.quote)?,
                has_header: self.header,
                encoding: match self.encoding.as_deref() {
                    None => None,
                    Some(label) => Some(
                        encoding_for(label)
                            .ok_or_else(|| format!("encoding '{label}' is not known"))?,
                    ),
                },
            }),
            FileFormat::Spreadsheet(_) => FileFormat::Spreadsheet(ExcelOptions {
                sheet: self.sheet.clone(),
                header_row: self.header_row,
            }),
            other => other,
        })
    }
}

/// Whether a file (by its path relative to the folder) is one the source reads.
fn wanted(glob: Option<&glob::Pattern>, fixed_format: bool, relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    if name.starts_with('.') || name.starts_with("~$") {
        return false;
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let matches = glob.is_none_or(|g| g.matches_with(relative, options));
    matches && (fixed_format || FileFormat::from_path(std::path::Path::new(relative)).is_some())
}

/// The wanted files under a local folder, sorted by relative path. A missing folder is an
/// error; a file whose name is not UTF-8 is skipped.
fn local_files(
    root: &std::path::Path,
    glob: Option<&glob::Pattern>,
    fixed_format: bool,
) -> std::io::Result<Vec<Listed>> {
    let mut found: Vec<(String, std::fs::DirEntry)> = Vec::new();
    let mut folders = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, folder)) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push((relative, entry.path()));
            } else if kind.is_file() && wanted(glob, fixed_format, &relative) {
                found.push((relative, entry));
            }
        }
    }
    let half = found.len().div_ceil(2).max(1);
    let listed: Vec<std::io::Result<Vec<Listed>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = found
            .chunks(half)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|(r, e)| local_listed(r, e)).collect())
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a listing thread failed")))
            })
            .collect()
    });
    let mut files = Vec::with_capacity(found.len());
    for part in listed {
        files.extend(part?);
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

fn local_listed(relative: &str, entry: &std::fs::DirEntry) -> std::io::Result<Listed> {
    let metadata = entry.metadata()?;
    let path = entry.path();
    let text = path.to_string_lossy();
    let location = StorePath::parse(text.trim_start_matches('/'))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let last_modified = metadata
        .modified()
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_default();
    Ok(Listed {
        relative: relative.to_string(),
        meta: ObjectMeta {
            location,
            last_modified,
            size: metadata.len(),
            e_tag: None,
            version: None,
        },
    })
}

/// The URL of a folder setting: a URL as given, or a local path made absolute.
fn folder_url(text: &str) -> Result<Url, String> {
    if text.contains("://") {
        return Url::parse(text).map_err(|e| format!("url '{text}' is not a valid URL: {e}"));
    }
    let path = std::path::absolute(text).map_err(|e| format!("cannot resolve '{text}': {e}"))?;
    Url::from_directory_path(&path).map_err(|()| format!("cannot turn '{text}' into a file URL"))
}

impl FileSource {
    /// The files to consider, sorted by path.
    async fn list(&self) -> Result<Vec<Listed>, SourceError> {
        let store_error = |e: object_store::Error| SourceError::Connect {
            url: self.config.url.clone(),
            reason: e.to_string(),
        };
        if self.single {
            let meta = self.store.head(&self.root).await.map_err(store_error)?;
            let relative = meta.location.filename().unwrap_or_default().to_string();
            return Ok(vec![Listed { relative, meta }]);
        }
        if self.local {
            return self.list_local().await;
        }
        let prefix = (!self.root.as_ref().is_empty()).then_some(&self.root);
        let root_parts = self.root.parts().count();
        let mut files: Vec<Listed> = self
            .store
            .list(prefix)
            .map_err(store_error)
            .try_filter_map(|meta| async move {
                let relative = meta
                    .location
                    .parts()
                    .skip(root_parts)
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                Ok(Some(Listed { relative, meta }))
            })
            .try_collect()
            .await?;
        files.retain(|f| wanted(self.glob.as_ref(), self.format.is_some(), &f.relative));
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(files)
    }

    /// A local folder, listed with `read_dir` and one `statx` per wanted file relative to its
    /// directory (no path walk per file), on both cores: an incremental run over a large folder
    /// spends its time here.
    async fn list_local(&self) -> Result<Vec<Listed>, SourceError> {
        let root = PathBuf::from(format!("/{}", self.root));
        let glob = self.glob.clone();
        let fixed_format = self.format.is_some();
        let url = self.config.url.clone();
        tokio::task::spawn_blocking(move || local_files(&root, glob.as_ref(), fixed_format))
            .await
            .map_err(|e| SourceError::Config {
                connector: "file".into(),
                reason: format!("listing {url} stopped: {e}"),
            })?
            .map_err(|source| SourceError::Io { path: url, source })
    }

    /// The file's format: the configured one, or by extension.
    fn format_of(&self, relative: &str) -> Option<FileFormat> {
        match &self.format {
            Some(format) => Some(format.clone()),
            None => FileFormat::from_path(std::path::Path::new(relative))
                .and_then(|f| self.config.with_options(f).ok()),
        }
    }

    /// How rows of the file are positioned: its URL (or local path).
    fn display_name(&self, file: &Listed) -> String {
        if self.local {
            format!("/{}", file.meta.location)
        } else if self.single {
            self.config.url.clone()
        } else {
            let base = self.config.url.trim_end_matches('/');
            format!("{base}/{}", file.relative)
        }
    }

    /// A local path to read the file from: where it is, or a downloaded copy.
    async fn local_copy(
        &self,
        file: &Listed,
    ) -> Result<(PathBuf, Option<tempfile::TempPath>), SourceError> {
        if self.local {
            return Ok((PathBuf::from(format!("/{}", file.meta.location)), None));
        }
        let name = self.display_name(file);
        let io_error = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let suffix = file
            .relative
            .rsplit_once('.')
            .map_or_else(String::new, |(_, ext)| format!(".{ext}"));
        let temp = tempfile::Builder::new()
            .prefix("simpul-file-")
            .suffix(&suffix)
            .tempfile()
            .map_err(io_error)?
            .into_temp_path();
        let mut out = tokio::fs::File::create(&temp).await.map_err(io_error)?;
        let mut body = self
            .store
            .get(&file.meta.location)
            .await
            .map_err(|e| SourceError::Connect {
                url: name.clone(),
                reason: e.to_string(),
            })?
            .into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| SourceError::Connect {
                url: name.clone(),
                reason: e.to_string(),
            })?;
            out.write_all(&chunk).await.map_err(io_error)?;
        }
        out.flush().await.map_err(io_error)?;
        Ok((temp.to_path_buf(), Some(temp)))
    }

    /// Sends every batch of one file, read on a blocking thread.
    async fn send_file(
        &self,
        file: &Listed,
        tx: &tokio::sync::mpsc::Sender<Result<ReadEvent, SourceError>>,
    ) -> Result<(), SourceError> {
        let Some(format) = self.format_of(&file.relative) else {
            return Ok(());
        };
        let (path, temp) = self.local_copy(file).await?;
        let name = self.display_name(file);
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let _keep = temp;
            let reader = open_as(&path, &name, &format)?;
            for batch in reader {
                if tx.blocking_send(batch.map(ReadEvent::Batch)).is_err() {
                    break;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| SourceError::Config {
            connector: "file".into(),
            reason: format!("reading a file stopped: {e}"),
        })?
    }

    /// Reads every new or changed file, then the checkpoint of every file now listed.
    async fn read_changed(
        &self,
        state: Option<Value>,
        tx: &tokio::sync::mpsc::Sender<Result<ReadEvent, SourceError>>,
    ) -> Result<(), SourceError> {
        let seen: HashMap<String, String> = state
            .as_ref()
            .and_then(|s| s.get("files"))
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default();
        let files = self.list().await?;
        for file in files
            .iter()
            .filter(|f| seen.get(&f.relative) != Some(&f.version()))
        {
            self.send_file(file, tx).await?;
        }
        let now: BTreeMap<String, String> = files
            .iter()
            .map(|f| (f.relative.clone(), f.version()))
            .collect();
        let _ = tx
            .send(Ok(ReadEvent::Checkpoint(json!({ "files": now }))))
            .await;
        Ok(())
    }
}

impl Source for FileSource {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json")).unwrap_or(Value::Null)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        async move { self.list().await.map(|_| ()) }.boxed()
    }

    fn discover(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>> {
        async move {
            let files = self.list().await?;
            let Some(first) = files.first() else {
                return Err(SourceError::Config {
                    connector: "file".into(),
                    reason: format!("no file in {} matches", self.config.url),
                });
            };
            let format = self
                .format_of(&first.relative)
                .ok_or_else(|| SourceError::Config {
                    connector: "file".into(),
                    reason: format!("cannot tell the format of {}", first.relative),
                })?;
            let (path, temp) = self.local_copy(first).await?;
            let name = self.display_name(first);
            let sample = tokio::task::spawn_blocking(move || {
                let _keep = temp;
                let mut reader = open_as(&path, &name, &format)?;
                reader.next().transpose()
            })
            .await
            .map_err(|e| SourceError::Config {
                connector: "file".into(),
                reason: format!("reading a file stopped: {e}"),
            })??;
            let Some(batch) = sample else {
                return Err(SourceError::Format {
                    path: self.display_name(first),
                    format: "file",
                    reason: "has no rows".into(),
                });
            };
            Ok(vec![StreamInfo {
                name: STREAM.into(),
                schema: infer_schema(&batch.batch),
                incremental: true,
            }])
        }
        .boxed()
    }

    fn default_stream(&self) -> &'static str {
        STREAM
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Value>,
    ) -> BoxStream<'_, Result<ReadEvent, SourceError>> {
        if stream != STREAM {
            return unknown_stream("file", stream, STREAM);
        }
        event_stream(move |tx| async move { self.read_changed(state, &tx).await })
    }
}

#[cfg(test)]
mod tests;
