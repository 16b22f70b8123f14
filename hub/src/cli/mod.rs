//! The `simpul` command line.

mod backup;
mod bus;
mod datasets;
mod ingest;
mod keys;
mod messagelog;
mod pipelines;
mod schemas;
mod semar;
mod serve;
mod sql;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Simpul: the data hub of Kabupaten Purwakarta.
#[derive(Debug, Parser)]
#[command(name = "simpul", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./simpul.toml when it exists.
    #[arg(long, global = true, env = "SIMPUL_CONFIG")]
    config: Option<PathBuf>,
    /// Where the lake and the state store live (overrides data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text or json (overrides log_format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: the HTTP API, after first-start set-up (admin key, reference and demo data).
    Serve(serve::ServeArgs),
    /// Load a CSV, NDJSON, JSON array or Parquet file into a dataset.
    Ingest(ingest::IngestArgs),
    /// Run a read-only SQL query against the local lake and print the result.
    Sql(sql::SqlArgs),
    /// List and inspect datasets.
    Datasets {
        #[command(subcommand)]
        command: datasets::DatasetsCommand,
    },
    /// List, check and register canonical schemas.
    Schemas {
        #[command(subcommand)]
        command: schemas::SchemasCommand,
    },
    /// List, check, explore and run pipelines, and read their run history.
    Pipelines {
        #[command(subcommand)]
        command: pipelines::PipelinesCommand,
    },
    /// Issue, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Make, list and revoke user accounts (people who log in with a password).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Register and list the bus's members and subsystems.
    Bus {
        #[command(subcommand)]
        command: bus::BusCommand,
    },
    /// Check the bus's hash-chained message log.
    Messagelog {
        #[command(subcommand)]
        command: messagelog::MessagelogCommand,
    },
    /// SEMAR, the ambulance module: simulate call traffic through a running hub's API.
    Semar {
        #[command(subcommand)]
        command: semar::SemarCommand,
    },
    /// Take a consistent online backup of the state store and the lake (`backup DEST`), or
    /// check one (`backup verify SRC`).
    Backup(backup::BackupArgs),
    /// Bring a backup back into an empty data directory, optionally as of a time.
    Restore(backup::RestoreArgs),
    /// Print the effective configuration (defaults, file and SIMPUL_* variables combined).
    Config,
}

/// Makes every spreadsheet this process reads be parsed by a child process of this binary,
/// under the configured memory and CPU limits.
fn isolate_spreadsheets(config: &Config) -> Result<(), String> {
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find this program's own path to read spreadsheets: {e}"))?;
    simpul_connectors::file::isolate_spreadsheets(simpul_connectors::file::SpreadsheetSandbox {
        program,
        args: vec![simpul_connectors::file::SPREADSHEET_CHILD_COMMAND.into()],
        memory_bytes: config.ingest.spreadsheet_memory_mib.saturating_mul(1 << 20),
        cpu_seconds: config.ingest.spreadsheet_cpu_secs.max(1),
    });
    Ok(())
}

/// Runs the command line and maps failures to a message on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let config = load_config(&cli)?;
    isolate_spreadsheets(&config)?;
    simpul_connectors::net::restrict_outbound(simpul_connectors::net::OutboundPolicy::allowing(
        config.outbound.allow_hosts.split(','),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let is_server = matches!(cli.command, Command::Serve(_));
    // Commands print their own results; their logs stay quiet unless asked for.
    let level = if is_server {
        config.log_level.clone()
    } else {
        "warn".to_string()
    };
    crate::telemetry::init(config.log_format, &level);
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(config, args).await,
            Command::Ingest(args) => ingest::run(config, args).await,
            Command::Sql(args) => sql::run(config, args).await,
            Command::Datasets { command } => datasets::run(config, command).await,
            Command::Keys { command } => keys::run(config, command).await,
            Command::Users { command } => users::run(config, command).await,
            Command::Bus { command } => bus::run(config, command).await,
            Command::Messagelog { command } => messagelog::run(config, command).await,
            Command::Backup(args) => backup::run_backup(config, args).await,
            Command::Restore(args) => backup::run_restore(config, args).await,
            Command::Pipelines { command } => pipelines::run(config, command).await,
            Command::Schemas { command } => schemas::run(config, command).await,
            Command::Semar { command } => semar::run(config, command).await,
            Command::Config => {
                print!("{}", config.to_display_toml()?);
                Ok(())
            }
        }
    })
}

/// Who a command-line action is recorded as in the audit log.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let default_file = Path::new("simpul.toml");
    let file = match &cli.config {
        Some(path) => Some(path.as_path()),
        None if default_file.exists() => Some(default_file),
        None => None,
    };
    let mut config = Config::load(file, std::env::vars())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(format) = cli.log_format {
        config.log_format = format;
    }
    Ok(config)
}
