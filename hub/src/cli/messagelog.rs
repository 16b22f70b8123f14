//! `simpul messagelog`: check the message log offline.

use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum MessagelogCommand {
    /// Check the whole hash chain and every seal's signature, naming the first broken
    /// record; then check that the log is complete against the lake: every message a
    /// commit names has its record at that version, and every publish record its commit.
    Verify,
}

pub(super) async fn run(config: Config, command: MessagelogCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    match command {
        MessagelogCommand::Verify => {
            let report = catalog
                .state
                .verify_message_log()
                .await
                .map_err(|e| e.to_string())?;
            match &report.broken {
                None => {
                    println!(
                        "message log intact: {} records, {} seals verified, {} records not sealed yet",
                        report.records, report.seals, report.unsealed
                    );
                    let complete = catalog
                        .check_message_log_completeness()
                        .await
                        .map_err(|e| e.to_string())?;
                    if complete.gaps.is_empty() {
                        println!(
                            "message log complete: the {} messages named by {} commits of {} datasets all have their records",
                            complete.messages, complete.commits, complete.datasets
                        );
                        return Ok(());
                    }
                    println!(
                        "message log INCOMPLETE: {} messages do not match the lake",
                        complete.gaps.len()
                    );
                    for gap in complete.gaps.iter().take(100) {
                        println!("  {} in {}: {}", gap.message_id, gap.dataset, gap.reason);
                    }
                    if complete.gaps.len() > 100 {
                        println!("  … and {} more", complete.gaps.len() - 100);
                    }
                    Err(format!(
                        "the message log is incomplete: {} messages do not match the lake",
                        complete.gaps.len()
                    ))
                }
                Some(broken) => {
                    println!(
                        "message log BROKEN at record {}{}: {}",
                        broken.seq,
                        broken
                            .message_id
                            .as_ref()
                            .map(|m| format!(" (message {m})"))
                            .unwrap_or_default(),
                        broken.reason
                    );
                    println!("{} records before it verified", report.records);
                    Err(format!(
                        "the message log is broken at record {}",
                        broken.seq
                    ))
                }
            }
        }
    }
}
