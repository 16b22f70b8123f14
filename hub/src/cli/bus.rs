use comfy_table::Table;

use crate::bootstrap;
use crate::bus::{Registration, list, register_member, register_subsystem};
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum BusCommand {
    /// List, and register, members (agencies).
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// Register subsystems (a member's systems, which API keys belong to).
    Subsystems {
        #[command(subcommand)]
        command: SubsystemsCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum MembersCommand {
    /// Every member with its subsystems.
    List,
    /// Register a member.
    Add {
        /// INSTANCE/CLASS/MEMBER, e.g. ID-JABAR/GOV/DINKES.
        id: String,
        /// The member's name, e.g. "Dinas Kesehatan".
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum SubsystemsCommand {
    /// Register a subsystem of a registered member.
    Add {
        /// INSTANCE/CLASS/MEMBER/SUBSYSTEM, e.g. ID-JABAR/GOV/DINKES/SEMAR.
        id: String,
        /// What the system is, e.g. "SEMAR, layanan ambulans".
        #[arg(long)]
        name: String,
    },
}

pub(super) async fn run(config: Config, command: BusCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    let identity = config.bus_identity()?;
    let actor = super::cli_actor();
    match command {
        BusCommand::Members {
            command: MembersCommand::List,
        } => {
            let members = list(&catalog.state, &identity)
                .await
                .map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header(["id", "name", "registered"]);
            for listed in members {
                table.add_row([
                    listed.id,
                    listed.member.name,
                    listed.member.created_at.to_rfc3339(),
                ]);
                for own in listed.subsystems {
                    table.add_row([
                        format!("  {}", own.id),
                        own.subsystem.name,
                        own.subsystem.created_at.to_rfc3339(),
                    ]);
                }
            }
            println!("{table}");
            Ok(())
        }
        BusCommand::Members {
            command: MembersCommand::Add { id, name },
        } => {
            let member = register_member(
                &catalog.state,
                &identity,
                &Registration { id, name },
                &actor,
            )
            .await
            .map_err(|e| e.to_string())?;
            eprintln!("registered member {}", member.id);
            Ok(())
        }
        BusCommand::Subsystems {
            command: SubsystemsCommand::Add { id, name },
        } => {
            let subsystem = register_subsystem(
                &catalog.state,
                &identity,
                &Registration { id, name },
                &actor,
            )
            .await
            .map_err(|e| e.to_string())?;
            eprintln!("registered subsystem {}", subsystem.id);
            Ok(())
        }
    }
}
