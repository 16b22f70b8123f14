//! `simpul backup DEST`, `simpul backup verify SRC` and `simpul restore SRC`.

use crate::bootstrap;
use crate::config::Config;

/// `simpul backup`: take a snapshot, or check a backup.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// Where the backup goes: a folder, or s3://bucket/prefix (with the lake's S3 options).
    /// Later runs to the same place copy only what is new.
    dest: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum BackupCommand {
    /// Check every snapshot of a backup without restoring it; exits with 1 and lists what
    /// does not hold.
    Verify {
        /// The backup: a folder or s3://bucket/prefix.
        src: String,
    },
}

/// `simpul restore`: bring a backup back into an empty data directory.
#[derive(Debug, clap::Args)]
pub(super) struct RestoreArgs {
    /// The backup: a folder or s3://bucket/prefix.
    src: String,
    /// Restore the newest snapshot taken at or before this time (RFC 3339, such as
    /// 2026-12-07T09:00:00+07:00); the newest of all without it.
    #[arg(long)]
    at: Option<String>,
}

pub(super) async fn run_backup(config: Config, args: BackupArgs) -> Result<(), String> {
    match (args.command, args.dest) {
        (Some(BackupCommand::Verify { src }), _) => {
            let checked = crate::backup::verify(&config, &src).await?;
            if checked.problems.is_empty() {
                println!(
                    "backup intact: {} snapshots; {} commits read, the {} files they name all present with their sizes",
                    checked.snapshots, checked.commits, checked.files
                );
                return Ok(());
            }
            println!("backup BROKEN: {} problems", checked.problems.len());
            for problem in checked.problems.iter().take(100) {
                println!("  {problem}");
            }
            Err(format!(
                "the backup at {src} has {} problems",
                checked.problems.len()
            ))
        }
        (None, Some(dest)) => {
            let catalog = bootstrap::open_catalog(&config).await?;
            let manifest = crate::backup::backup(&config, &catalog, &dest).await?;
            let rows: u64 = manifest.state.header.tables.iter().map(|t| t.rows).sum();
            println!("snapshot {} of {}", manifest.stamp, manifest.taken_at);
            println!(
                "state:  {rows} rows of {} tables",
                manifest.state.header.tables.len()
            );
            println!("lake:   {} tables", manifest.tables.len());
            println!(
                "copied: {} objects ({} bytes); {} already in the backup",
                manifest.copied_objects, manifest.copied_bytes, manifest.unchanged_objects
            );
            println!("files:  {}", manifest.files.len());
            Ok(())
        }
        (None, None) => Err("name where the backup goes: simpul backup DEST".into()),
    }
}

pub(super) async fn run_restore(config: Config, args: RestoreArgs) -> Result<(), String> {
    let at = args
        .at
        .as_deref()
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| format!("--at '{text}' is not an RFC 3339 time: {e}"))
        })
        .transpose()?;
    let catalog = bootstrap::open_catalog(&config).await?;
    let restored = crate::backup::restore(&config, &catalog, &args.src, at).await?;
    println!(
        "restored snapshot {} of {}: {} datasets, {} lake objects, {} files",
        restored.manifest.stamp,
        restored.manifest.taken_at,
        restored.datasets,
        restored.objects,
        restored.manifest.files.len()
    );
    println!(
        "start the hub on this data directory; it finishes the requests the snapshot caught mid-way"
    );
    Ok(())
}
