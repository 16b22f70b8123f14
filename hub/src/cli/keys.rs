use comfy_table::Table;
use simpul_catalog::Role;

use crate::auth::{NewKey, issue_key, revoke_key};
use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum KeysCommand {
    /// Issue a key. The key alone is printed on stdout; it is not shown again.
    Create {
        /// Member (OPD) code, e.g. DINKES.
        #[arg(long)]
        member: String,
        /// The member's system, e.g. SEMAR.
        #[arg(long)]
        subsystem: String,
        /// producer, analyst or admin.
        #[arg(long, value_parser = ["producer", "analyst", "admin"])]
        role: String,
        /// Client id (default: member-subsystem, lowercase).
        #[arg(long)]
        id: Option<String>,
        /// Who holds the key.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List clients (never their keys).
    List,
    /// Revoke a client's key by client id.
    Revoke {
        /// The client id, as shown by `simpul keys list`.
        id: String,
    },
}

pub(super) async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    let actor = super::cli_actor();
    match command {
        KeysCommand::Create {
            member,
            subsystem,
            role,
            id,
            description,
        } => {
            let request = NewKey {
                id,
                member,
                subsystem,
                role: role.parse::<Role>().map_err(|e| e.to_string())?,
                description,
            };
            let (client, key) = issue_key(&catalog.state, &request, &actor)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "issued key for client '{}' ({} {}, role {})",
                client.id, client.member, client.subsystem, client.role
            );
            println!("{key}");
            Ok(())
        }
        KeysCommand::List => {
            let clients = catalog.state.clients().await.map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header([
                "id",
                "member",
                "subsystem",
                "role",
                "created",
                "revoked",
                "description",
            ]);
            for c in clients {
                table.add_row([
                    c.id,
                    c.member,
                    c.subsystem,
                    c.role.to_string(),
                    c.created_at.to_rfc3339(),
                    c.revoked_at.map_or("-".into(), |t| t.to_rfc3339()),
                    c.description,
                ]);
            }
            println!("{table}");
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            if revoke_key(&catalog.state, &id, &actor)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!("revoked the key of client '{id}'");
                Ok(())
            } else {
                Err(format!("there is no active API client with id '{id}'"))
            }
        }
    }
}
