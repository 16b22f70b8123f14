use std::path::Path;

use comfy_table::Table;
use simpul_pipelines::{PipelineDefinition, load_dir};

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum PipelinesCommand {
    /// List the pipelines of `pipelines_dir` with their schedules and next runs.
    List,
    /// Test a pipeline's source: its connection and credentials.
    Check {
        /// The pipeline's name.
        name: String,
    },
    /// Show the streams a pipeline's source offers, with the columns found in a sample.
    Discover {
        /// The pipeline's name.
        name: String,
    },
}

pub(super) async fn run(config: Config, command: PipelinesCommand) -> Result<(), String> {
    let definitions = load(&config)?;
    match command {
        PipelinesCommand::List => {
            print!("{}", list(&definitions));
            Ok(())
        }
        PipelinesCommand::Check { name } => {
            let definition = find(&definitions, &name)?;
            let source = build(definition)?;
            source.check().await.map_err(|e| e.to_string())?;
            println!(
                "ok: {} ({}) answers",
                definition.name, definition.source.connector
            );
            Ok(())
        }
        PipelinesCommand::Discover { name } => {
            let definition = find(&definitions, &name)?;
            let source = build(definition)?;
            let streams = source.discover().await.map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header(["stream", "column", "type (inferred)", "incremental"]);
            for stream in &streams {
                for field in stream.schema.fields() {
                    table.add_row([
                        stream.name.clone(),
                        field.name().clone(),
                        field.data_type().to_string(),
                        stream.incremental.to_string(),
                    ]);
                }
            }
            println!("{table}");
            Ok(())
        }
    }
}

/// The pipelines of `pipelines_dir`; every bad file is named.
fn load(config: &Config) -> Result<Vec<PipelineDefinition>, String> {
    load_dir(Path::new(&config.pipelines_dir), |name| {
        std::env::var(name).ok()
    })
    .map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn find<'a>(
    definitions: &'a [PipelineDefinition],
    name: &str,
) -> Result<&'a PipelineDefinition, String> {
    definitions.iter().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        format!(
            "no pipeline '{name}'; the pipelines are: {}",
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        )
    })
}

fn build(definition: &PipelineDefinition) -> Result<Box<dyn simpul_connectors::Source>, String> {
    simpul_connectors::build_source(&definition.source.connector, &definition.source.config)
        .map_err(|e| format!("pipeline {}: {e}", definition.name))
}

fn list(definitions: &[PipelineDefinition]) -> String {
    let mut table = Table::new();
    table.set_header([
        "name",
        "connector",
        "target",
        "schedule",
        "next run",
        "sync",
        "write",
    ]);
    for d in definitions {
        table.add_row([
            d.name.clone(),
            d.source.connector.clone(),
            d.target.dataset.clone(),
            d.schedule.clone().unwrap_or_else(|| "manual".into()),
            d.next_run(chrono::Utc::now())
                .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M %Z").to_string()),
            d.sync_mode.as_str().to_string(),
            d.write_mode.as_str().to_string(),
        ]);
    }
    format!("{table}\n")
}
