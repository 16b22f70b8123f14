use comfy_table::Table;

use crate::bootstrap;
use crate::bus::{
    GrantRequest, ListedGrant, ListedRequest, Registration, decide, grant, list, register_member,
    register_subsystem, request_access, revoke,
};
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
    /// Register groups of subsystems, which grants can go to.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Grant rights on a dataset to a subsystem or a group.
    Grant {
        /// The dataset, namespace.name.
        dataset: String,
        /// INSTANCE/CLASS/MEMBER/SUBSYSTEM, or group:CODE.
        grantee: String,
        /// read, publish, subscribe or pii; repeat for several.
        #[arg(long = "right", required = true, value_parser = ["read", "publish", "subscribe", "pii"])]
        rights: Vec<String>,
        /// When the grant stops counting (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a grant by id.
    Revoke {
        /// The grant id, as shown by `simpul bus grants`.
        id: String,
    },
    /// List grants, of one dataset or all.
    Grants {
        /// Only this dataset's.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// The hubs this hub federates with (pulls from with `peer` pipelines).
    Peers {
        #[command(subcommand)]
        command: PeersCommand,
    },
    /// The hub's signing keys: list them, or rotate to a new one.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Ask, for a subsystem, for rights on a dataset; its owner approves or rejects.
    Request {
        /// The dataset, namespace.name.
        dataset: String,
        /// The subsystem asking: INSTANCE/CLASS/MEMBER/SUBSYSTEM.
        #[arg(long)]
        subsystem: String,
        /// read, publish, subscribe or pii; repeat for several.
        #[arg(long = "right", required = true, value_parser = ["read", "publish", "subscribe", "pii"])]
        rights: Vec<String>,
        /// Why the subsystem needs the data.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List access requests.
    Requests {
        /// pending, approved or rejected.
        #[arg(long, value_parser = ["pending", "approved", "rejected"])]
        status: Option<String>,
    },
    /// Approve a pending request: its grants are created.
    Approve {
        /// The request id, as shown by `simpul bus requests`.
        id: String,
        /// When the grants stop counting (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        /// A note for the requester.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a pending request.
    Reject {
        /// The request id.
        id: String,
        /// Why, for the requester.
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum PeersCommand {
    /// Every registered peer.
    List,
    /// Register a peer hub, or replace its URL and keys.
    Add {
        /// The peer member, INSTANCE/CLASS/MEMBER (e.g. ID-JABAR/GOV/PROVINSI).
        member_id: String,
        /// Its hub's base URL.
        #[arg(long)]
        url: String,
        /// Its Ed25519 public key (hex, from its GET /api/v1/bus/keys); repeat for several.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum KeysCommand {
    /// Every published key, current first.
    List,
    /// Make a new signing key (the old one stays published). A running hub keeps signing with
    /// its key until restarted; `POST /api/v1/bus/keys/rotate` switches it at once.
    Rotate,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum GroupsCommand {
    /// Register a group.
    Add {
        /// The group code, e.g. ANALIS.
        code: String,
        /// What the group is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Add a registered subsystem to a group.
    AddMember {
        /// The group code.
        code: String,
        /// INSTANCE/CLASS/MEMBER/SUBSYSTEM.
        subsystem: String,
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
        BusCommand::Groups {
            command: GroupsCommand::Add { code, description },
        } => {
            let code = crate::bus::add_group(&catalog.state, &code, &description, &actor)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("registered group:{code}");
            Ok(())
        }
        BusCommand::Groups {
            command: GroupsCommand::AddMember { code, subsystem },
        } => {
            crate::bus::add_to_group(&catalog.state, &identity, &code, &subsystem, &actor)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("added {subsystem} to group:{}", code.to_uppercase());
            Ok(())
        }
        BusCommand::Grant {
            dataset,
            grantee,
            rights,
            expires_at,
        } => {
            let id: simpul_catalog::DatasetId = dataset
                .parse()
                .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
            let meta = catalog
                .state
                .dataset(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("dataset {id} does not exist"))?;
            let request = GrantRequest {
                dataset,
                grantee,
                rights,
                expires_at,
            };
            for granted in grant(&catalog.state, &identity, &meta, &request, &actor)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!(
                    "granted {} on {} to {}",
                    granted.right, granted.dataset, granted.grantee
                );
                println!("{}", granted.id);
            }
            Ok(())
        }
        BusCommand::Request {
            dataset,
            subsystem,
            rights,
            reason,
        } => {
            let meta = dataset_meta(&catalog, &dataset).await?;
            let (member, code) = identity
                .parse_subsystem(&subsystem)
                .map_err(|e| e.to_string())?;
            let principal = simpul_catalog::Principal {
                member,
                subsystem: code,
            };
            let listed = request_access(
                &catalog.state,
                &identity,
                &meta,
                &principal,
                &rights,
                &reason,
                &actor,
            )
            .await
            .map_err(|e| e.to_string())?;
            eprintln!(
                "requested {} on {} for {}",
                rights.join(", "),
                meta.id,
                listed.subsystem
            );
            println!("{}", listed.request.id);
            Ok(())
        }
        BusCommand::Requests { status } => {
            let status = status
                .map(|s| s.parse::<simpul_catalog::RequestStatus>())
                .transpose()
                .map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header([
                "id",
                "dataset",
                "subsystem",
                "rights",
                "status",
                "requested",
                "reason",
            ]);
            for request in catalog
                .state
                .access_requests(status)
                .await
                .map_err(|e| e.to_string())?
            {
                let shown = ListedRequest::new(request, &identity);
                let rights: Vec<String> =
                    shown.request.rights.iter().map(|r| r.to_string()).collect();
                table.add_row([
                    shown.request.id.clone(),
                    shown.request.dataset.to_string(),
                    shown.subsystem.clone(),
                    rights.join(","),
                    shown.request.status.to_string(),
                    shown.request.requested_at.to_rfc3339(),
                    shown.request.reason.clone(),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        BusCommand::Approve {
            id,
            expires_at,
            note,
        } => decide_cli(&catalog, &identity, &id, true, (expires_at, &note), &actor).await,
        BusCommand::Reject { id, note } => {
            decide_cli(&catalog, &identity, &id, false, (None, &note), &actor).await
        }
        BusCommand::Revoke { id } => {
            let found = catalog
                .state
                .grant(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("there is no grant with id '{id}'"))?;
            if revoke(&catalog.state, &found, &actor)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!("revoked grant {id}");
                Ok(())
            } else {
                Err(format!("grant '{id}' is revoked already"))
            }
        }
        BusCommand::Peers { command } => {
            let state = &catalog.state;
            if let PeersCommand::Add {
                member_id,
                url,
                public_keys,
            } = command
            {
                let peer = crate::bus::register_peer(state, &member_id, &url, &public_keys, &actor)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("peer {} registered at {}", peer.member_id, peer.base_url);
                return Ok(());
            }
            let mut table = Table::new();
            table.set_header(["peer", "base url", "public keys", "registered by"]);
            for peer in state.peers().await.map_err(|e| e.to_string())? {
                table.add_row([
                    peer.member_id,
                    peer.base_url,
                    peer.public_keys.join("\n"),
                    peer.created_by,
                ]);
            }
            println!("{table}");
            Ok(())
        }
        BusCommand::Keys { command } => {
            let state = &catalog.state;
            if matches!(command, KeysCommand::Rotate) {
                let signer = simpul_catalog::Signer::open(&config.data_dir.join("keys"), state)
                    .await
                    .map_err(|e| e.to_string())?;
                let previous = signer.key_id();
                let key = crate::bus::rotate_signing_key(&signer, state, &actor)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "signing key {} made; {previous} retired (it still verifies what it signed)",
                    key.key_id
                );
                return Ok(());
            }
            let mut table = Table::new();
            table.set_header(["key", "algorithm", "public key", "made", "retired"]);
            for key in state.hub_keys().await.map_err(|e| e.to_string())? {
                table.add_row([
                    key.key_id,
                    key.algorithm,
                    key.public_key,
                    key.created_at.to_rfc3339(),
                    key.retired_at.map_or("-".into(), |t| t.to_rfc3339()),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        BusCommand::Grants { dataset } => {
            let dataset = dataset
                .map(|d| d.parse::<simpul_catalog::DatasetId>())
                .transpose()
                .map_err(|e| e.to_string())?;
            let mut table = Table::new();
            table.set_header([
                "id", "dataset", "grantee", "right", "granted", "expires", "active",
            ]);
            for found in catalog
                .state
                .grants(dataset.as_ref())
                .await
                .map_err(|e| e.to_string())?
            {
                let shown = ListedGrant::new(&found, &identity);
                table.add_row([
                    shown.id,
                    shown.dataset,
                    shown.grantee,
                    shown.right.to_string(),
                    shown.granted_at.to_rfc3339(),
                    shown.expires_at.map_or("-".into(), |t| t.to_rfc3339()),
                    if shown.active { "yes" } else { "no" }.to_string(),
                ]);
            }
            println!("{table}");
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

async fn dataset_meta(
    catalog: &simpul_catalog::Catalog,
    dataset: &str,
) -> Result<simpul_catalog::DatasetMeta, String> {
    let id: simpul_catalog::DatasetId = dataset
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    catalog
        .state
        .dataset(&id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("dataset {id} does not exist"))
}

async fn decide_cli(
    catalog: &simpul_catalog::Catalog,
    identity: &simpul_catalog::BusIdentity,
    id: &str,
    approve: bool,
    terms: (Option<String>, &str),
    actor: &str,
) -> Result<(), String> {
    let request = catalog
        .state
        .access_request(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no access request with id '{id}'"))?;
    let meta = dataset_meta(catalog, &request.dataset.to_string()).await?;
    let (decided, grants) = decide(
        &catalog.state,
        identity,
        &meta,
        &request,
        approve,
        terms,
        actor,
    )
    .await
    .map_err(|e| e.to_string())?;
    eprintln!(
        "request {id} {}; {} grant(s) created",
        decided.request.status,
        grants.len()
    );
    Ok(())
}
