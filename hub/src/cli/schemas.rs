use std::path::PathBuf;

use comfy_table::Table;
use simpul_catalog::Registration;
use simpul_schemas::{
    SHIPPED_SCHEMAS, SchemaFile, check_compatible, load_schema_file, parse_schema_document,
    parse_version,
};

use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum SchemasCommand {
    /// List registered schemas and their versions.
    List,
    /// Print a registered schema document (the newest version unless one is given).
    Show {
        /// The schema name, e.g. penduduk.
        name: String,
        /// A version, e.g. 1.0.0.
        version: Option<String>,
    },
    /// Check schema files: valid JSON Schema 2020-12, documented properties, and backward
    /// compatible with the registered version of the same major. Without files, checks the
    /// shipped schemas. Exits with 1 when any check fails.
    Check {
        /// Files or directories of *.schema.json.
        paths: Vec<PathBuf>,
    },
    /// Register schema files as new versions (after the same checks as `check`).
    Register {
        /// Files or directories of *.schema.json.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

pub(super) async fn run(config: Config, command: SchemasCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    match command {
        SchemasCommand::List => {
            let mut table = Table::new();
            table.set_header(["name", "version", "title", "registered", "by"]);
            for v in catalog
                .state
                .schema_versions(None)
                .await
                .map_err(|e| e.to_string())?
            {
                table.add_row([
                    v.name,
                    v.version,
                    v.title,
                    v.registered_at.to_rfc3339(),
                    v.registered_by,
                ]);
            }
            println!("{table}");
            Ok(())
        }
        SchemasCommand::Show { name, version } => {
            let version = match version {
                Some(v) => v,
                None => catalog
                    .state
                    .latest_schema_version(&name)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|v| v.version)
                    .ok_or_else(|| format!("schema '{name}' is not registered"))?,
            };
            let document = catalog
                .state
                .schema_document(&name, &version)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("schema {name} {version} is not registered"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        SchemasCommand::Check { paths } => {
            let files = if paths.is_empty() {
                shipped_files()?
            } else {
                load_files(&paths)?
            };
            let mut failures = 0;
            for file in &files {
                match compatibility(&catalog, file).await? {
                    Ok(note) => println!("ok    {} {}: {note}", file.name, file.version),
                    Err(problem) => {
                        failures += 1;
                        println!("FAIL  {} {}: {problem}", file.name, file.version);
                    }
                }
            }
            if failures > 0 {
                return Err(format!("{failures} schema file(s) failed the checks"));
            }
            Ok(())
        }
        SchemasCommand::Register { paths } => {
            let actor = super::cli_actor();
            for file in load_files(&paths)? {
                match catalog
                    .state
                    .register_schema(&file, &actor)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Registration::Registered => {
                        println!("registered {} {}", file.name, file.version)
                    }
                    Registration::AlreadyRegistered => {
                        println!("already registered {} {}", file.name, file.version)
                    }
                }
            }
            Ok(())
        }
    }
}

/// Loads files, failing on the first that is not a valid schema (the error names it).
fn load_files(paths: &[PathBuf]) -> Result<Vec<SchemaFile>, String> {
    crate::schemas::schema_files(paths)?
        .iter()
        .map(|path| load_schema_file(path).map_err(|e| e.0))
        .collect()
}

fn shipped_files() -> Result<Vec<SchemaFile>, String> {
    SHIPPED_SCHEMAS
        .iter()
        .map(|(name, text)| {
            parse_schema_document(name, &format!("{name}.schema.json"), text).map_err(|e| e.0)
        })
        .collect()
}

/// How a file relates to what is registered: `Ok(note)` when it may be registered (or is).
async fn compatibility(
    catalog: &std::sync::Arc<simpul_catalog::Catalog>,
    file: &SchemaFile,
) -> Result<Result<String, String>, String> {
    let state = &catalog.state;
    if let Some(existing) = state
        .schema_document(&file.name, &file.version)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(if existing == file.document {
            Ok("already registered".into())
        } else {
            Err("this version is registered with a different document; give the change a new version".into())
        });
    }
    let Some(latest) = state
        .latest_schema_version(&file.name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Ok("new schema".into()));
    };
    let (new_major, old_major) = (
        parse_version(&file.version).map_err(|e| e.0)?,
        parse_version(&latest.version).map_err(|e| e.0)?,
    );
    if new_major <= old_major {
        return Ok(Err(format!(
            "not newer than the registered {}",
            latest.version
        )));
    }
    if new_major.0 > old_major.0 {
        return Ok(Ok(format!(
            "new major version after {}; compatibility not required",
            latest.version
        )));
    }
    let old = state
        .schema_document(&file.name, &latest.version)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let breaks = check_compatible(&old, &file.document);
    Ok(if breaks.is_empty() {
        Ok(format!("backward compatible with {}", latest.version))
    } else {
        let listed: Vec<String> = breaks.iter().map(ToString::to_string).collect();
        Err(format!(
            "not backward compatible with {}: {}. Keep the change compatible, or make it {}.0.0",
            latest.version,
            listed.join("; "),
            new_major.0 + 1
        ))
    })
}
