use std::io::{BufRead, IsTerminal};

use super::keys::ClientArgs;
use crate::bootstrap;
use crate::config::Config;
use crate::users::{NewUser, create_user, revoke_user, set_password};
use comfy_table::Table;

#[derive(Debug, clap::Subcommand)]
pub(super) enum UsersCommand {
    /// Make a user account. The password is read from the first line of stdin.
    Add {
        /// The user name (also the client id): lowercase letters, digits, '-' or '_'.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List user accounts (never their passwords).
    List,
    /// Set a user's password, read from the first line of stdin.
    Password {
        /// The user name.
        id: String,
    },
    /// Revoke a user account; its sessions end at their next page.
    Revoke {
        /// The user name.
        id: String,
    },
}

/// The first line of stdin, without its line ending.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (shown as you type; pipe it in to keep it off the screen):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err("no password on stdin: pipe it in, as in `printf '%s\\n' \"$PASSWORD\" | simpul users add …`".into());
    }
    Ok(password)
}

pub(super) async fn run(config: Config, command: UsersCommand) -> Result<(), String> {
    let catalog = bootstrap::open_catalog(&config).await?;
    let actor = super::cli_actor();
    let state = &catalog.state;
    match command {
        UsersCommand::Add { id, client } => {
            let request = NewUser {
                id,
                role: client.role()?,
                member: client.member,
                subsystem: client.subsystem,
                description: client.description,
                password: read_password()?,
            };
            let client = create_user(state, &request, &actor)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "made user '{}' ({} {}, role {}); they log in at /login and to PostgreSQL with this name",
                client.id, client.member, client.subsystem, client.role
            );
            Ok(())
        }
        UsersCommand::List => {
            let users = state.users().await.map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header([
                "user",
                "member",
                "subsystem",
                "role",
                "password set",
                "revoked",
                "description",
            ]);
            for u in users {
                table.add_row([
                    u.client.id,
                    u.client.member,
                    u.client.subsystem,
                    u.client.role.to_string(),
                    u.password_set_at.to_rfc3339(),
                    u.client.revoked_at.map_or("-".into(), |t| t.to_rfc3339()),
                    u.client.description,
                ]);
            }
            println!("{table}");
            Ok(())
        }
        UsersCommand::Password { id } => {
            let password = read_password()?;
            if set_password(state, &id, &password, &actor)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!("set the password of user '{id}'");
                Ok(())
            } else {
                Err(format!("there is no active user account '{id}'"))
            }
        }
        UsersCommand::Revoke { id } => {
            if revoke_user(state, &id, &actor)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!("revoked user '{id}'");
                Ok(())
            } else {
                Err(format!("there is no active user account '{id}'"))
            }
        }
    }
}
