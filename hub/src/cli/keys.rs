use comfy_table::Table;
use simpul_catalog::Role;

use crate::auth::{NewKey, issue_key, revoke_key};
use crate::bootstrap;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(super) enum KeysCommand {
    /// Issue a key. The key alone is printed on stdout; it is not shown again.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// Client id (default: member-subsystem, lowercase).
        #[arg(long)]
        id: Option<String>,
    },
    /// List clients (never their keys).
    List,
    /// Revoke a client's key by client id.
    Revoke {
        /// The client id, as shown by `simpul keys list`.
        id: String,
    },
}

/// Who a new key or user account is: its member, subsystem and role.
#[derive(Debug, clap::Args)]
pub(super) struct ClientArgs {
    /// Member (OPD) code, e.g. DINKES.
    #[arg(long)]
    pub member: String,
    /// The member's system, e.g. SEMAR.
    #[arg(long)]
    pub subsystem: String,
    /// producer, analyst or admin.
    #[arg(long, value_parser = ["producer", "analyst", "admin"])]
    pub role: String,
    /// Who holds it.
    #[arg(long, default_value = "")]
    pub description: String,
}

impl ClientArgs {
    pub fn role(&self) -> Result<Role, String> {
        self.role.parse::<Role>().map_err(|e| e.to_string())
    }
}

pub(super) async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    let actor = super::cli_actor();
    match command {
        KeysCommand::Create { client, id } => {
            let request = NewKey {
                id,
                role: client.role()?,
                member: client.member,
                subsystem: client.subsystem,
                description: client.description,
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
