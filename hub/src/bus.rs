//! Registering bus members and subsystems, for the API, the CLI and first start. Every
//! registration is audited.

use chrono::Utc;
use serde::Serialize;
use simpul_catalog::{BusIdentity, CatalogError, Member, StateStore, Subsystem};

/// What is needed to register a member or a subsystem.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// `INSTANCE/CLASS/MEMBER` for a member, `INSTANCE/CLASS/MEMBER/SUBSYSTEM` for a
    /// subsystem.
    pub id: String,
    /// The member's or system's name.
    pub name: String,
}

/// A member as listed: its full identifier and its subsystems.
#[derive(Debug, Serialize)]
pub struct ListedMember {
    /// `INSTANCE/CLASS/MEMBER`.
    pub id: String,
    /// The member.
    #[serde(flatten)]
    pub member: Member,
    /// Its subsystems.
    pub subsystems: Vec<ListedSubsystem>,
}

/// A subsystem as listed, with its full identifier.
#[derive(Debug, Serialize)]
pub struct ListedSubsystem {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    pub id: String,
    /// The subsystem.
    #[serde(flatten)]
    pub subsystem: Subsystem,
}

fn check_name(name: &str) -> Result<String, CatalogError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(CatalogError::Invalid(
            "name must be 1 to 200 characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// Registers the member `request.id` names.
pub async fn register_member(
    state: &StateStore,
    identity: &BusIdentity,
    request: &Registration,
    actor: &str,
) -> Result<ListedMember, CatalogError> {
    let code = identity.parse_member(&request.id)?;
    let member = Member {
        code: code.clone(),
        name: check_name(&request.name)?,
        created_at: Utc::now(),
        created_by: actor.to_string(),
    };
    state.insert_member(&member).await?;
    let id = identity.member_id(&code);
    state
        .audit(
            actor,
            "bus.member.add",
            &id,
            serde_json::json!({"name": member.name}),
        )
        .await?;
    Ok(ListedMember {
        id,
        member,
        subsystems: Vec::new(),
    })
}

/// Registers the subsystem `request.id` names, under its registered member.
pub async fn register_subsystem(
    state: &StateStore,
    identity: &BusIdentity,
    request: &Registration,
    actor: &str,
) -> Result<ListedSubsystem, CatalogError> {
    let (member, code) = identity.parse_subsystem(&request.id)?;
    let subsystem = Subsystem {
        member,
        code,
        name: check_name(&request.name)?,
        created_at: Utc::now(),
        created_by: actor.to_string(),
    };
    state.insert_subsystem(&subsystem).await?;
    let id = identity.subsystem_id(&subsystem.member, &subsystem.code);
    state
        .audit(
            actor,
            "bus.subsystem.add",
            &id,
            serde_json::json!({"name": subsystem.name}),
        )
        .await?;
    Ok(ListedSubsystem { id, subsystem })
}

/// Registers `member`/`subsystem` unless it is registered: for first start.
pub async fn ensure_registered(
    state: &StateStore,
    identity: &BusIdentity,
    (member, member_name): (&str, &str),
    (subsystem, subsystem_name): (&str, &str),
    actor: &str,
) -> Result<(), CatalogError> {
    if state.member(member).await?.is_none() {
        let request = Registration {
            id: identity.member_id(member),
            name: member_name.to_string(),
        };
        register_member(state, identity, &request, actor).await?;
    }
    if state.subsystem(member, subsystem).await?.is_none() {
        let request = Registration {
            id: identity.subsystem_id(member, subsystem),
            name: subsystem_name.to_string(),
        };
        register_subsystem(state, identity, &request, actor).await?;
    }
    Ok(())
}

/// Every member with its subsystems, as X-Road's `listClients` gives them.
pub async fn list(
    state: &StateStore,
    identity: &BusIdentity,
) -> Result<Vec<ListedMember>, CatalogError> {
    let mut subsystems = state.subsystems().await?.into_iter().peekable();
    let mut listed = Vec::new();
    for member in state.members().await? {
        let mut own = Vec::new();
        while let Some(subsystem) = subsystems.next_if(|s| s.member == member.code) {
            own.push(ListedSubsystem {
                id: identity.subsystem_id(&subsystem.member, &subsystem.code),
                subsystem,
            });
        }
        listed.push(ListedMember {
            id: identity.member_id(&member.code),
            member,
            subsystems: own,
        });
    }
    Ok(listed)
}
