use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use simpul_catalog::{Classification, Contract, DatasetId, WriteMode};
use simpul_connectors::file::{CsvOptions, FileFormat};
use simpul_pipelines::{DatasetDefaults, IngestOptions, IngestReport, SchemaChoice};

use crate::bootstrap;
use crate::config::Config;

/// Options of `simpul ingest`.
#[derive(Debug, clap::Args)]
pub(super) struct IngestArgs {
    /// The file to load (.csv, .tsv, .ndjson/.jsonl, .json, .parquet).
    file: PathBuf,
    /// The target dataset, namespace.name (for example stats.garis_kemiskinan).
    #[arg(long)]
    dataset: String,
    /// The file's format when its extension does not say: csv, tsv, ndjson, json, parquet, xlsx, xls, ods.
    #[arg(long)]
    format: Option<String>,
    /// append (default) adds rows; overwrite replaces them (older versions stay readable).
    #[arg(long, default_value = "append", value_parser = ["append", "overwrite"])]
    mode: String,
    /// CSV field separator (one character).
    #[arg(long)]
    delimiter: Option<char>,
    /// The CSV file has no header row; columns are named column_1, column_2, …
    #[arg(long)]
    no_header: bool,
    /// Owner member code, if this creates the dataset (default: default_owner).
    #[arg(long)]
    owner: Option<String>,
    /// Title, if this creates the dataset.
    #[arg(long)]
    title: Option<String>,
    /// Description, if this creates the dataset.
    #[arg(long)]
    description: Option<String>,
    /// public, internal (default) or restricted, if this creates the dataset.
    #[arg(long, default_value = "internal", value_parser = ["public", "internal", "restricted"])]
    classification: String,
    /// Tags, if this creates the dataset (repeat the option for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Bind a new dataset to a canonical schema and validate against it: a name
    /// (penduduk, the newest major) or name@major (penduduk@1). See `simpul schemas list`.
    #[arg(long)]
    schema: Option<String>,
    /// What later ingests do with unknown columns, if this creates the dataset:
    /// freeze (refuse them), evolve (add them to the table) or discard_columns (drop them).
    #[arg(long, default_value = "freeze", value_parser = ["freeze", "evolve", "discard_columns"])]
    contract: String,
}

pub(super) async fn run(config: Config, args: IngestArgs) -> Result<(), String> {
    let dataset: DatasetId = args
        .dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    let format = file_format(&args)?;
    let catalog = bootstrap::open_catalog(&config).await?;
    let schema = match &args.schema {
        Some(name) => SchemaChoice::Canonical(crate::schemas::binding(&catalog, name).await?),
        None => SchemaChoice::Infer,
    };
    let reader = simpul_connectors::file::open(&args.file, &format).map_err(|e| e.to_string())?;
    let progress = progress_bar(reader.progress());
    let options = IngestOptions {
        dataset,
        mode: if args.mode == "overwrite" {
            WriteMode::Overwrite
        } else {
            WriteMode::Append
        },
        defaults: DatasetDefaults {
            title: args.title.unwrap_or_default(),
            description: args.description.unwrap_or_default(),
            owner: args.owner.unwrap_or_else(|| config.default_owner.clone()),
            classification: args
                .classification
                .parse::<Classification>()
                .map_err(|e| e.to_string())?,
            tags: args.tags,
            contract: args
                .contract
                .parse::<Contract>()
                .map_err(|e| e.to_string())?,
        },
        schema,
        actor: super::cli_actor(),
        source: args.file.display().to_string(),
        upsert_keys: Vec::new(),
        run: None,
    };
    let result = simpul_pipelines::ingest(&catalog, reader, options).await;
    progress.finish_and_clear();
    let report = result.map_err(|e| e.to_string())?;
    print_report(&args.file.display().to_string(), &report);
    Ok(())
}

fn file_format(args: &IngestArgs) -> Result<FileFormat, String> {
    let format = match &args.format {
        Some(name) => FileFormat::from_name(name).ok_or_else(|| {
            format!("format '{name}' is not one of csv, tsv, ndjson, json, parquet, xlsx, xls, ods")
        })?,
        None => FileFormat::from_path(&args.file).ok_or_else(|| {
            format!(
                "cannot tell the format of {} from its extension; pass --format",
                args.file.display()
            )
        })?,
    };
    match format {
        FileFormat::Csv(defaults) => {
            let delimiter = match args.delimiter {
                Some(c) if c.is_ascii() => c as u8,
                Some(c) => {
                    return Err(format!(
                        "the delimiter must be one ASCII character, not '{c}'"
                    ));
                }
                None => defaults.delimiter,
            };
            Ok(FileFormat::Csv(CsvOptions {
                delimiter,
                has_header: !args.no_header,
                ..defaults
            }))
        }
        other => Ok(other),
    }
}

/// A bar on stderr fed from the reader's byte counter; hidden when stderr is not a terminal.
fn progress_bar(progress: simpul_connectors::ReadProgress) -> ProgressBar {
    let bar = ProgressBar::new(progress.total());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            ticker.set_position(progress.read());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}

fn print_report(file: &str, report: &IngestReport) {
    let created = if report.created { "created, " } else { "" };
    println!(
        "ingested {file} into {} ({created}version {})",
        report.dataset, report.version
    );
    if let Some(schema) = &report.schema {
        println!("  checked against schema {schema}");
    }
    if !report.added_columns.is_empty() {
        println!(
            "  columns added to the table: {}",
            report.added_columns.join(", ")
        );
    }
    if !report.discarded_columns.is_empty() {
        println!(
            "  columns discarded: {}",
            report.discarded_columns.join(", ")
        );
    }
    println!("  rows read:     {}", report.rows_read);
    println!("  rows written:  {}", report.rows_written);
    if report.rows_rejected == 0 {
        println!("  rows rejected: 0");
        return;
    }
    println!(
        "  rows rejected: {} (kept in {}.{} with their reasons)",
        report.rows_rejected,
        report.dataset.namespace(),
        report.dataset.rejects_name()
    );
    for reject in &report.sample_rejects {
        println!("    line {}: {}", reject.position.line, reject.reason());
    }
}
