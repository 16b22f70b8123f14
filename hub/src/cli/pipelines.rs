use std::sync::Arc;
use std::time::Duration;

use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use simpul_catalog::{PipelineRun, RunStatus};
use simpul_pipelines::{
    PipelineDefinition, RunProgress, RunResult, Runner, Trigger, TriggerKind, load_dir,
};

use crate::bootstrap;
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
    /// Run a pipeline now, with a progress bar; exits with 1 if the run fails.
    Run {
        /// The pipeline's name.
        name: String,
    },
    /// Show a pipeline's run history, newest first.
    Runs {
        /// The pipeline's name.
        name: String,
        /// Most runs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
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
        PipelinesCommand::Run { name } => {
            let definition = find(&definitions, &name)?;
            run_now(&config, definition).await
        }
        PipelinesCommand::Runs { name, limit } => {
            find(&definitions, &name)?;
            let catalog = bootstrap::open_catalog(&config).await?;
            let runs = catalog
                .state
                .runs(&name, limit)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", history(&runs));
            Ok(())
        }
    }
}

async fn run_now(config: &Config, definition: &PipelineDefinition) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(config).await?;
    // A federation pull is a bus exchange wherever it runs: log it like the hub does.
    let signer = simpul_catalog::Signer::open(&config.data_dir.join("keys"), &catalog.state)
        .await
        .map_err(|e| e.to_string())?;
    let log = crate::messagelog::MessageLog::start(catalog.state.clone(), Arc::new(signer))
        .await
        .map_err(|e| e.to_string())?;
    let runner =
        Runner::new(catalog, &config.default_owner).with_observer(crate::federation::observer(log));
    let trigger = Trigger {
        kind: TriggerKind::Manual,
        actor: super::cli_actor(),
    };
    let started = runner
        .start(definition, &trigger)
        .await
        .map_err(|e| e.to_string())?;
    let progress = Arc::new(RunProgress::default());
    let bar = progress_bar(progress.clone());
    let result = started.execute(progress).await;
    bar.finish_and_clear();
    let result = result.map_err(|e| e.to_string())?;
    print_run(&result);
    match result.run.status {
        RunStatus::Succeeded => Ok(()),
        _ => Err(format!(
            "run {} of {} failed: {}",
            result.run.run_number,
            result.run.pipeline,
            result
                .run
                .error
                .as_deref()
                .unwrap_or("no reason was recorded")
        )),
    }
}

/// A spinner on stderr with the records and bytes read; hidden when stderr is not a terminal.
fn progress_bar(progress: Arc<RunProgress>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            ticker.set_message(format!(
                "{} records, {} read",
                progress.rows(),
                indicatif::HumanBytes(progress.bytes())
            ));
            ticker.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}

fn print_run(result: &RunResult) {
    let run = &result.run;
    println!(
        "run {} of {} into {}: {}",
        run.run_number,
        run.pipeline,
        run.dataset,
        run.status.as_str()
    );
    if let Some(version) = run.delta_version {
        println!("  version:        {version}");
    } else if run.status == RunStatus::Succeeded {
        println!("  version:        unchanged (nothing new)");
    }
    println!("  rows read:      {}", run.rows_read);
    println!("  rows committed: {}", run.rows_committed);
    println!("  rows rejected:  {}", run.rows_rejected);
    for reject in &result.sample_rejects {
        println!("    line {}: {}", reject.position.line, reject.reason());
    }
    if let Some(error) = &run.error {
        println!("  error:          {error}");
    }
}

fn history(runs: &[PipelineRun]) -> String {
    let mut table = Table::new();
    table.set_header([
        "run",
        "trigger",
        "status",
        "started (UTC)",
        "seconds",
        "read",
        "committed",
        "rejected",
        "version",
        "error",
    ]);
    for run in runs {
        let seconds = run
            .ended_at
            .map(|end| format!("{:.1}", (end - run.started_at).as_seconds_f64()))
            .unwrap_or_default();
        table.add_row([
            run.run_number.to_string(),
            run.trigger.clone(),
            run.status.as_str().to_string(),
            run.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            seconds,
            run.rows_read.to_string(),
            run.rows_committed.to_string(),
            run.rows_rejected.to_string(),
            run.delta_version
                .map_or_else(String::new, |v| v.to_string()),
            run.error.clone().unwrap_or_default(),
        ]);
    }
    format!("{table}\n")
}

/// The pipelines of `pipelines_dir`; every bad file is named.
fn load(config: &Config) -> Result<Vec<PipelineDefinition>, String> {
    load_dir(&config.effective_pipelines_dir(), |name| {
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
    let settings = definition
        .source_settings()
        .map_err(|e| format!("pipeline {}: {e}", definition.name))?;
    simpul_connectors::build_source(&definition.source.connector, &settings)
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
