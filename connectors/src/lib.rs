//! Sources: where data enters Simpul from outside.
//!
//! Owns the readers that turn files, HTTP APIs and databases into Arrow batches
//! of raw values, each row tagged with its position in the source, plus the records that
//! could not even be parsed. Typing and validation happen downstream, in `simpul-schemas`.
//! API sources follow the Airbyte shape (`source::Source`: spec, check, discover, read).
//!
//! Knows nothing of the catalog, the lake or the hub: a connector never writes anything.

pub mod ckan;
pub mod file;
pub mod net;
pub mod opendata_jabar;
pub mod peer;
pub mod records;
pub mod rest_json;
pub mod splp;
pub mod sql;

mod raw;
mod source;

pub use raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};
pub use source::{ReadEvent, Source, SourceMetadata, StreamInfo};

/// The connectors a pipeline's `source.connector` may name.
pub const CONNECTORS: [&str; 7] = [
    "rest_json",
    "opendata_jabar",
    "ckan",
    "splp",
    "file",
    "sql",
    "peer",
];

/// Builds the source a pipeline names from its settings (a TOML table, secrets resolved).
pub fn build_source(
    connector: &str,
    settings: &toml::Table,
) -> Result<Box<dyn Source>, SourceError> {
    let config_error = |e: toml::de::Error| SourceError::Config {
        connector: connector.to_string(),
        reason: e.message().to_string(),
    };
    let table = settings;
    let settings = toml::Value::Table(settings.clone());
    match connector {
        "rest_json" => {
            let config: rest_json::RestJsonConfig = settings.try_into().map_err(config_error)?;
            Ok(Box::new(rest_json::RestJson::new(config)?))
        }
        "opendata_jabar" => {
            let config: opendata_jabar::OpendataJabarConfig =
                settings.try_into().map_err(config_error)?;
            Ok(Box::new(config.source()?))
        }
        "ckan" => {
            let config: ckan::CkanConfig = settings.try_into().map_err(config_error)?;
            Ok(Box::new(config.source()?))
        }
        "splp" => Ok(Box::new(splp::source(table)?)),
        "sql" => {
            let config: sql::SqlConfig = settings.try_into().map_err(config_error)?;
            Ok(Box::new(config.source()?))
        }
        "file" => {
            let config: file::FileSourceConfig = settings.try_into().map_err(config_error)?;
            Ok(Box::new(config.source()?))
        }
        "peer" => {
            let config: peer::PeerConfig = settings.try_into().map_err(config_error)?;
            Ok(Box::new(peer::Peer::new(config)?))
        }
        other => Err(SourceError::Config {
            connector: other.to_string(),
            reason: format!("no such connector; there are: {}", CONNECTORS.join(", ")),
        }),
    }
}

/// Whether incremental reads of `connector` resume from a record field (a pipeline's
/// `cursor_field`). A `file` source's cursor is its list of files instead.
pub fn cursor_is_a_field(connector: &str) -> bool {
    !matches!(connector, "file" | "peer")
}

/// `settings` with a pipeline's `cursor_field` applied the way `connector` takes it: it fills
/// `rest_json`'s (and `splp`'s) `cursor.field`, and must agree with it when both are given;
/// it is `sql`'s `cursor_column`. Other connectors take no cursor field.
pub fn with_cursor_field(
    connector: &str,
    settings: &toml::Table,
    field: &str,
) -> Result<toml::Table, String> {
    let mut settings = settings.clone();
    match connector {
        "rest_json" | "splp" => {
            let Some(toml::Value::Table(cursor)) = settings.get_mut("cursor") else {
                return Err(format!(
                    "cursor_field = \"{field}\" needs the source's cursor = {{ param = \"…\" }}: \
                     the query parameter that sends the cursor back"
                ));
            };
            match cursor.get("field").and_then(toml::Value::as_str) {
                None => {
                    cursor.insert("field".into(), field.into());
                }
                Some(given) if given == field => {}
                Some(given) => {
                    return Err(format!(
                        "cursor_field \"{field}\" and the source's cursor.field \"{given}\" differ"
                    ));
                }
            }
        }
        "sql" => {
            settings
                .entry("cursor_column")
                .or_insert_with(|| field.into());
        }
        _ => {}
    }
    Ok(settings)
}
