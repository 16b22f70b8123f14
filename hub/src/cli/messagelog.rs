//! `simpul messagelog`: check the message log offline.

use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum MessagelogCommand {
    /// Check the whole hash chain and every seal's signature; names the first broken record.
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
                    Ok(())
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
