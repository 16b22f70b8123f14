//! Pipeline definitions: one TOML file per pipeline in the deployment's `pipelines/` folder.
//!
//! ```toml
//! name = "kemiskinan_jabar"
//! schedule = "0 6 * * *"            # cron, 5 fields (or 6 with seconds)
//! timezone = "Asia/Jakarta"         # the default
//!
//! [source]
//! connector = "opendata_jabar"
//! url = "https://data.jabarprov.go.id/api-backend/bigdata/bps/od_…"
//!
//! [target]
//! dataset = "stats.garis_kemiskinan"
//! ```
//!
//! A string value `"env:NAME"` anywhere under `[source]` is replaced by the environment
//! variable `NAME` when the file is loaded, so secrets never sit in the file; a missing
//! variable is an error that names it, never its value.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use simpul_catalog::DatasetId;

/// One pipeline, as its file defines it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDefinition {
    /// The pipeline's name: lowercase letters, digits and `_`.
    pub name: String,
    /// When it runs: a cron expression (5 fields, or 6 with seconds); none for manual runs.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The time zone of the schedule.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// What a human should know about it.
    #[serde(default)]
    pub description: String,
    /// Where the records come from.
    pub source: SourceDefinition,
    /// The source's stream to read; the connector's only stream when absent.
    #[serde(default)]
    pub stream: Option<String>,
    /// Everything each run, or only what is new since the last cursor.
    #[serde(default)]
    pub sync_mode: SyncMode,
    /// The field incremental runs resume from.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// The fields that identify a record, for `merge`.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// SQL over each batch as the table `input` (renames, casts, reshaping).
    #[serde(default)]
    pub transform: Option<String>,
    /// Where the records land.
    pub target: TargetDefinition,
    /// How a run's rows meet the rows already there.
    #[serde(default)]
    pub write_mode: WriteMode,
}

fn default_timezone() -> String {
    "Asia/Jakarta".into()
}

/// A source: the connector's name and its configuration, with secrets resolved.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceDefinition {
    /// `rest_json`, `opendata_jabar`, …
    pub connector: String,
    /// The connector's own settings.
    #[serde(flatten)]
    pub config: toml::Table,
}

/// Where a pipeline's records land.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDefinition {
    /// The dataset (`namespace.name`).
    pub dataset: String,
    /// The canonical schema it is bound to (`penduduk` or `penduduk@1`); types are inferred
    /// when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// The owning member (OPD) code.
    #[serde(default)]
    pub owner: Option<String>,
    /// `public`, `internal` or `restricted`.
    #[serde(default)]
    pub classification: Option<String>,
    /// How stale the dataset may get (`1d`, `6h`) before it is reported.
    #[serde(default)]
    pub freshness: Option<String>,
}

/// Everything, or only what is new.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Read everything on every run.
    #[default]
    FullRefresh,
    /// Read from the last run's cursor on.
    Incremental,
}

impl SyncMode {
    /// The name as pipeline files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullRefresh => "full_refresh",
            Self::Incremental => "incremental",
        }
    }
}

/// How a run's rows meet the rows already in the dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Add them.
    #[default]
    Append,
    /// Replace everything.
    Overwrite,
    /// Upsert by the primary key.
    Merge,
}

impl WriteMode {
    /// The name as pipeline files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Overwrite => "overwrite",
            Self::Merge => "merge",
        }
    }
}

/// Why a pipeline file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct DefinitionError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in plain words.
    pub reason: String,
}

impl PipelineDefinition {
    /// Parses a pipeline file's text; `env` resolves `"env:NAME"` secrets.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DefinitionError> {
        let error = |reason: String| DefinitionError {
            path: path.to_path_buf(),
            reason,
        };
        let mut definition: Self =
            toml::from_str(text).map_err(|e| error(e.message().to_string()))?;
        resolve_secrets(&mut definition.source.config, &env).map_err(error)?;
        definition.check().map_err(error)?;
        Ok(definition)
    }

    /// The schedule as a `cron` schedule. A standard 5-field expression (minute, hour, day,
    /// month, day of week with 0 or 7 = Sunday) gets a seconds field of 0 and its day of
    /// week renumbered for the `cron` crate, which counts 1 = Sunday.
    pub fn cron(&self) -> Option<Result<cron::Schedule, String>> {
        let expression = self.schedule.as_deref()?.trim();
        let invalid = |e: String| format!("schedule '{expression}' is not a cron expression: {e}");
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let full = if fields.len() == 5 {
            match standard_day_of_week(fields[4]) {
                Ok(day_of_week) => format!("0 {} {day_of_week}", fields[..4].join(" ")),
                Err(e) => return Some(Err(invalid(e))),
            }
        } else {
            expression.to_string()
        };
        Some(cron::Schedule::from_str(&full).map_err(|e| invalid(e.to_string())))
    }

    /// The first scheduled run after `after`, in the pipeline's time zone; `None` for a
    /// manual pipeline.
    pub fn next_run(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono_tz::Tz>> {
        let schedule = self.cron()?.ok()?;
        let zone: chrono_tz::Tz = self.timezone.parse().ok()?;
        schedule.after(&after.with_timezone(&zone)).next()
    }

    /// The connector's settings with the pipeline's `cursor_field` applied (see
    /// `simpul_connectors::with_cursor_field`).
    pub fn source_settings(&self) -> Result<toml::Table, String> {
        match self.cursor_field.as_deref() {
            Some(field) => simpul_connectors::with_cursor_field(
                &self.source.connector,
                &self.source.config,
                field,
            ),
            None => Ok(self.source.config.clone()),
        }
    }

    fn check(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(format!(
                "name '{}' must be lowercase letters, digits and _",
                self.name
            ));
        }
        if let Some(Err(reason)) = self.cron() {
            return Err(reason);
        }
        self.timezone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("timezone '{}' is not an IANA time zone", self.timezone))?;
        self.target
            .dataset
            .parse::<DatasetId>()
            .map_err(|e| format!("target dataset: {e}"))?;
        if self.sync_mode == SyncMode::Incremental
            && self.cursor_field.is_none()
            && simpul_connectors::cursor_is_a_field(&self.source.connector)
        {
            return Err("sync_mode = \"incremental\" needs a cursor_field".into());
        }
        self.source_settings()?;
        if self.write_mode == WriteMode::Merge && self.primary_key.is_empty() {
            return Err("write_mode = \"merge\" needs a primary_key".into());
        }
        if let Some(freshness) = &self.target.freshness {
            simpul_catalog::parse_freshness(freshness).map_err(|e| format!("target: {e}"))?;
        }
        if let Some(sql) = &self.transform {
            simpul_catalog::check_read_only(sql).map_err(|e| format!("transform: {e}"))?;
        }
        Ok(())
    }
}

/// A standard cron day-of-week field (0-7, 0 and 7 = Sunday) in the `cron` crate's numbering
/// (1-7, 1 = Sunday). Names (`MON-FRI`) and `*` mean the same in both.
fn standard_day_of_week(field: &str) -> Result<String, String> {
    let renumber = |day: &str| -> Result<u32, String> {
        let n: u32 = day
            .parse()
            .map_err(|_| format!("'{day}' is not a day of the week"))?;
        if n > 7 {
            return Err(format!("day of week {n} is not between 0 and 7"));
        }
        Ok(n % 7 + 1)
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let numeric = range.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if range == "*" || !numeric {
            items.push(item.to_string());
            continue;
        }
        let step = step.map_or_else(String::new, |s| format!("/{s}"));
        match range.split_once('-') {
            None => items.push(format!("{}{step}", renumber(range)?)),
            Some((start, end)) => {
                let (start, end) = (renumber(start)?, renumber(end)?);
                if start <= end {
                    items.push(format!("{start}-{end}{step}"));
                } else if step.is_empty() {
                    // FRI-SUN (5-7) becomes 6-7,1: the range wraps past Saturday.
                    items.push(format!("{start}-7"));
                    items.push(if end == 1 {
                        "1".to_string()
                    } else {
                        format!("1-{end}")
                    });
                } else {
                    return Err(format!(
                        "the day-of-week range {range} with a step wraps past Sunday; write the days out"
                    ));
                }
            }
        }
    }
    Ok(items.join(","))
}

/// Replaces every `"env:NAME"` string with the variable's value.
fn resolve_secrets(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    for (_, value) in table.iter_mut() {
        resolve_value(value, env)?;
    }
    Ok(())
}

fn resolve_value(
    value: &mut toml::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(text) => {
            if let Some(name) = text.strip_prefix("env:") {
                *text = env(name).ok_or_else(|| {
                    format!("the environment variable {name} (named in the source) is not set")
                })?;
            }
        }
        toml::Value::Table(table) => resolve_secrets(table, env)?,
        toml::Value::Array(items) => {
            for item in items {
                resolve_value(item, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `*.toml` file of a folder, by file name; each unreadable or invalid file is an
/// error that names it. Two files may not define the same name.
pub fn load_dir(
    dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<PipelineDefinition>, Vec<DefinitionError>> {
    let (definitions, errors) = scan_dir(dir, env);
    if errors.is_empty() {
        Ok(definitions)
    } else {
        Err(errors)
    }
}

/// The good files of a folder and the errors of the bad ones, for the scheduler, which keeps
/// running the good pipelines when one file breaks.
pub fn scan_dir(
    dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> (Vec<PipelineDefinition>, Vec<DefinitionError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(e) => {
            let error = DefinitionError {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            };
            return (Vec::new(), vec![error]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut definitions: Vec<PipelineDefinition> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| DefinitionError {
                path: path.clone(),
                reason: e.to_string(),
            })
            .and_then(|text| PipelineDefinition::parse(&path, &text, &env));
        match parsed {
            Ok(definition) if definitions.iter().any(|d| d.name == definition.name) => {
                errors.push(DefinitionError {
                    path,
                    reason: format!(
                        "another file already defines pipeline '{}'",
                        definition.name
                    ),
                })
            }
            Ok(definition) => definitions.push(definition),
            Err(error) => errors.push(error),
        }
    }
    (definitions, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENDATA: &str = r#"
        name = "upah_minimum_jabar"
        schedule = "0 6 * * 1"
        [source]
        connector = "opendata_jabar"
        url = "https://data.jabarprov.go.id/api-backend/bigdata/disnakertrans/od_upah"
        [target]
        dataset = "stats.upah_minimum"
    "#;

    fn parse(text: &str) -> Result<PipelineDefinition, DefinitionError> {
        PipelineDefinition::parse(Path::new("p.toml"), text, |name| {
            (name == "SIMPUL_TEST_KEY").then(|| "rahasia".to_string())
        })
    }

    #[test]
    fn reads_a_pipeline_with_defaults() {
        let definition = parse(OPENDATA).unwrap();
        assert_eq!(definition.timezone, "Asia/Jakarta");
        assert_eq!(definition.sync_mode, SyncMode::FullRefresh);
        assert_eq!(definition.write_mode, WriteMode::Append);
        assert_eq!(definition.source.connector, "opendata_jabar");
        assert!(definition.source.config.contains_key("url"));
        // Saturday 28 November 2026, 03:00 UTC; the schedule is Mondays at 06:00 WIB.
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T03:00:00Z").unwrap();
        let next = definition.next_run(now.to_utc()).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-30T06:00:00+07:00");
    }

    #[test]
    fn standard_days_of_the_week_count_from_sunday_0() {
        for (standard, crate_form) in [
            ("1", "2"),
            ("0", "1"),
            ("7", "1"),
            ("1-5", "2-6"),
            ("0,6", "1,7"),
            ("5-7", "6-7,1"),
            ("*", "*"),
            ("*/2", "*/2"),
            ("MON-FRI", "MON-FRI"),
        ] {
            assert_eq!(
                standard_day_of_week(standard).unwrap(),
                crate_form,
                "{standard}"
            );
        }
        assert!(standard_day_of_week("8").is_err());
    }

    #[test]
    fn secrets_come_from_the_environment_and_a_missing_one_is_named() {
        let text = r#"
            name = "splp_dukcapil"
            [source]
            connector = "rest_json"
            url = "https://gateway.example/api"
            auth = { type = "api_key_header", header = "APIkey", key = "env:SIMPUL_TEST_KEY" }
            [target]
            dataset = "kependudukan.penduduk"
        "#;
        let definition = parse(text).unwrap();
        assert_eq!(
            definition.source.config["auth"]["key"].as_str(),
            Some("rahasia")
        );
        let missing = parse(&text.replace("SIMPUL_TEST_KEY", "SIMPUL_NOT_SET")).unwrap_err();
        assert!(missing.to_string().contains("SIMPUL_NOT_SET"), "{missing}");
        assert!(missing.to_string().starts_with("p.toml:"), "{missing}");
    }

    #[test]
    fn refuses_definitions_that_cannot_run() {
        for (change, expected) in [
            (
                ("schedule = \"0 6 * * 1\"", "schedule = \"every day\""),
                "cron",
            ),
            (
                ("name = \"upah_minimum_jabar\"", "name = \"Upah Minimum\""),
                "lowercase",
            ),
            (("stats.upah_minimum", "upah"), "target dataset"),
            (
                ("schedule = \"0 6 * * 1\"", "timezone = \"Jawa/Barat\""),
                "time zone",
            ),
            (
                ("schedule = \"0 6 * * 1\"", "sync_mode = \"incremental\""),
                "cursor_field",
            ),
            (
                ("schedule = \"0 6 * * 1\"", "write_mode = \"merge\""),
                "primary_key",
            ),
            (("name = ", "nama = "), "name"),
            (
                (
                    "dataset = \"stats.upah_minimum\"",
                    "dataset = \"stats.upah_minimum\"\nfreshness = \"sehari\"",
                ),
                "freshness",
            ),
            (
                (
                    "schedule = \"0 6 * * 1\"",
                    "transform = \"delete from input\"",
                ),
                "transform",
            ),
        ] {
            let text = OPENDATA.replace(change.0, change.1);
            let error = parse(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{change:?}: {error}");
        }
    }

    #[test]
    fn the_cursor_field_fills_the_connectors_cursor_and_must_agree_with_it() {
        let rest = |cursor: &str| {
            format!(
                "name = \"p\"\nsync_mode = \"incremental\"\ncursor_field = \"updated_at\"\n\
                 [source]\nconnector = \"rest_json\"\nurl = \"http://127.0.0.1:1/x\"\n{cursor}\n\
                 [target]\ndataset = \"stats.p\"\n"
            )
        };
        let filled = parse(&rest("cursor = { param = \"since\" }")).unwrap();
        let settings = filled.source_settings().unwrap();
        assert_eq!(settings["cursor"]["field"].as_str(), Some("updated_at"));
        assert!(parse(&rest("cursor = { param = \"since\", field = \"id\" }")).is_err());
        let error = parse(&rest("")).unwrap_err().to_string();
        assert!(error.contains("param"), "{error}");
        let files = "name = \"f\"\nsync_mode = \"incremental\"\n[source]\nconnector = \"file\"\n\
                     url = \"/srv/masuk\"\n[target]\ndataset = \"stats.f\"\n";
        assert!(parse(files).is_ok(), "a file source needs no cursor field");
    }

    #[test]
    fn every_example_pipeline_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipelines");
        let examples = load_dir(&dir, |_| Some("set-by-the-deployment".into())).unwrap();
        let names: Vec<&str> = examples.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "disdukcapil_rekap",
                "kemiskinan_jabar",
                "satudata_penduduk",
                "simpus_kunjungan",
                "upah_minimum_jabar"
            ]
        );
    }

    #[test]
    fn a_folder_loads_every_file_and_names_each_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), OPENDATA).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a pipeline").unwrap();
        let env = |_: &str| None;
        assert_eq!(load_dir(dir.path(), env).unwrap().len(), 1);
        std::fs::write(dir.path().join("b.toml"), OPENDATA).unwrap();
        std::fs::write(dir.path().join("c.toml"), "name = ").unwrap();
        let errors = load_dir(dir.path(), env).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].to_string().contains("b.toml") && errors[0].to_string().contains("already")
        );
        assert!(errors[1].to_string().contains("c.toml"));
        assert!(
            load_dir(&dir.path().join("missing"), env)
                .unwrap()
                .is_empty()
        );
    }
}
