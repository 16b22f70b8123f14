//! Registering bus members, subsystems and groups, and granting rights on datasets, for the
//! API, the CLI and first start. Every change is audited.

use chrono::Utc;
use serde::Serialize;
use simpul_catalog::{
    AccessRequest, BusIdentity, CatalogError, DatasetMeta, Grant, Grantee, Member, Principal,
    RequestStatus, Right, StateStore, Subsystem, check_part,
};

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

/// What is needed to grant rights on a dataset.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The dataset, `namespace.name`.
    pub dataset: String,
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, or `group:CODE`.
    pub grantee: String,
    /// `read`, `publish`, `subscribe`, `pii`.
    pub rights: Vec<String>,
    /// RFC 3339; the grant stops counting then.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A grant as listed, with the grantee's full identifier.
#[derive(Debug, Serialize)]
pub struct ListedGrant {
    /// The grant's id.
    pub id: String,
    /// The dataset.
    pub dataset: String,
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM` or `group:CODE`.
    pub grantee: String,
    /// The right.
    pub right: Right,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    pub granted_at: chrono::DateTime<Utc>,
    /// When it stops counting.
    pub expires_at: Option<chrono::DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<chrono::DateTime<Utc>>,
    /// Whether it counts now.
    pub active: bool,
}

impl ListedGrant {
    /// `grant` as shown to people and systems.
    pub fn new(grant: &Grant, identity: &BusIdentity) -> Self {
        Self {
            id: grant.id.clone(),
            dataset: grant.dataset.to_string(),
            grantee: grantee_text(&grant.grantee, identity),
            right: grant.right,
            granted_by: grant.granted_by.clone(),
            granted_at: grant.granted_at,
            expires_at: grant.expires_at,
            revoked_at: grant.revoked_at,
            active: grant.active(Utc::now()),
        }
    }
}

fn grantee_text(grantee: &Grantee, identity: &BusIdentity) -> String {
    match grantee {
        Grantee::Subsystem { member, subsystem } => identity.subsystem_id(member, subsystem),
        Grantee::Group(code) => format!("group:{code}"),
    }
}

/// Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM` or `group:CODE`.
pub fn parse_grantee(text: &str, identity: &BusIdentity) -> Result<Grantee, CatalogError> {
    if let Some(code) = text.strip_prefix("group:") {
        check_part("group", code)?;
        return Ok(Grantee::Group(code.to_uppercase()));
    }
    let (member, subsystem) = identity.parse_subsystem(text)?;
    Ok(Grantee::Subsystem { member, subsystem })
}

/// Grants each of `request.rights` on the dataset; the caller has checked that `actor` may
/// manage the dataset's access. One audit record per grant.
pub async fn grant(
    state: &StateStore,
    identity: &BusIdentity,
    dataset: &DatasetMeta,
    request: &GrantRequest,
    actor: &str,
) -> Result<Vec<ListedGrant>, CatalogError> {
    let grantee = parse_grantee(&request.grantee, identity)?;
    if request.rights.is_empty() {
        return Err(CatalogError::Invalid(
            "rights must name at least one of read, publish, subscribe, pii".into(),
        ));
    }
    let rights = parse_rights(&request.rights)?;
    let expires_at = request
        .expires_at
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    CatalogError::Invalid(format!(
                        "expires_at '{t}' is not an RFC 3339 time (2027-01-01T00:00:00Z): {e}"
                    ))
                })
        })
        .transpose()?;
    let mut granted = Vec::new();
    for right in rights {
        let grant = state
            .insert_grant(&dataset.id, &grantee, right, expires_at, actor)
            .await?;
        let listed = ListedGrant::new(&grant, identity);
        state
            .audit(
                actor,
                "bus.grant.add",
                &listed.dataset,
                serde_json::json!({"grant": listed.id, "grantee": listed.grantee, "right": right, "expires_at": expires_at}),
            )
            .await?;
        granted.push(listed);
    }
    Ok(granted)
}

/// Revokes a grant in force, audited; false when there is none with this id.
pub async fn revoke(state: &StateStore, grant: &Grant, actor: &str) -> Result<bool, CatalogError> {
    if !state.revoke_grant(&grant.id).await? {
        return Ok(false);
    }
    state
        .audit(
            actor,
            "bus.grant.revoke",
            &grant.dataset.to_string(),
            serde_json::json!({"grant": grant.id, "right": grant.right}),
        )
        .await?;
    Ok(true)
}

/// Registers a group of subsystems, audited.
pub async fn add_group(
    state: &StateStore,
    code: &str,
    description: &str,
    actor: &str,
) -> Result<String, CatalogError> {
    let code = code.to_uppercase();
    state.insert_group(&code, description, actor).await?;
    state
        .audit(
            actor,
            "bus.group.add",
            &format!("group:{code}"),
            serde_json::json!({"description": description}),
        )
        .await?;
    Ok(code)
}

/// Adds a registered subsystem to a group, audited.
pub async fn add_to_group(
    state: &StateStore,
    identity: &BusIdentity,
    group: &str,
    subsystem_id: &str,
    actor: &str,
) -> Result<(), CatalogError> {
    let group = group.to_uppercase();
    let (member, subsystem) = identity.parse_subsystem(subsystem_id)?;
    state
        .add_to_group(&group, &Principal { member, subsystem })
        .await?;
    state
        .audit(
            actor,
            "bus.group.member.add",
            &format!("group:{group}"),
            serde_json::json!({"subsystem": subsystem_id.to_uppercase()}),
        )
        .await?;
    Ok(())
}

/// An access request as shown, with the requesting subsystem's full identifier.
#[derive(Debug, Serialize)]
pub struct ListedRequest {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM` of the requester.
    pub subsystem: String,
    /// The request.
    #[serde(flatten)]
    pub request: AccessRequest,
}

impl ListedRequest {
    /// `request` as shown.
    pub fn new(request: AccessRequest, identity: &BusIdentity) -> Self {
        Self {
            subsystem: identity
                .subsystem_id(&request.principal.member, &request.principal.subsystem),
            request,
        }
    }
}

/// Parses right names.
fn parse_rights(rights: &[String]) -> Result<Vec<Right>, CatalogError> {
    rights.iter().map(|r| r.parse()).collect()
}

/// Records `principal`'s request for `rights` on `dataset`, audited.
pub async fn request_access(
    state: &StateStore,
    identity: &BusIdentity,
    dataset: &DatasetMeta,
    principal: &Principal,
    rights: &[String],
    reason: &str,
    actor: &str,
) -> Result<ListedRequest, CatalogError> {
    let rights = parse_rights(rights)?;
    let request = state
        .insert_access_request(&dataset.id, principal, &rights, reason, actor)
        .await?;
    state
        .audit(
            actor,
            "bus.request.add",
            &dataset.id.to_string(),
            serde_json::json!({"request": request.id, "rights": rights}),
        )
        .await?;
    Ok(ListedRequest::new(request, identity))
}

/// Approves a pending request, creating its grants (until `expires_at`, if given), or rejects
/// it with `note`. The caller has checked that `actor` may manage the dataset's access.
pub async fn decide(
    state: &StateStore,
    identity: &BusIdentity,
    dataset: &DatasetMeta,
    request: &AccessRequest,
    approve: bool,
    (expires_at, note): (Option<String>, &str),
    actor: &str,
) -> Result<(ListedRequest, Vec<ListedGrant>), CatalogError> {
    let status = if approve {
        RequestStatus::Approved
    } else {
        RequestStatus::Rejected
    };
    if !state
        .decide_access_request(&request.id, status, actor, note)
        .await?
    {
        let now = state
            .access_request(&request.id)
            .await?
            .map_or(request.status, |r| r.status);
        return Err(CatalogError::Conflict(format!(
            "request {} is {now} already",
            request.id
        )));
    }
    let mut grants = Vec::new();
    if approve {
        let wanted = GrantRequest {
            dataset: dataset.id.to_string(),
            grantee: identity.subsystem_id(&request.principal.member, &request.principal.subsystem),
            rights: request.rights.iter().map(Right::to_string).collect(),
            expires_at,
        };
        match grant(state, identity, dataset, &wanted, actor).await {
            Ok(granted) => grants = granted,
            Err(e) => {
                state.reopen_access_request(&request.id).await?;
                return Err(e);
            }
        }
    }
    state
        .audit(
            actor,
            if approve {
                "bus.request.approve"
            } else {
                "bus.request.reject"
            },
            &dataset.id.to_string(),
            serde_json::json!({"request": request.id, "note": note}),
        )
        .await?;
    let decided = state
        .access_request(&request.id)
        .await?
        .ok_or_else(|| CatalogError::State(format!("request {} vanished", request.id)))?;
    Ok((ListedRequest::new(decided, identity), grants))
}

/// Registers a federation peer (or replaces its URL and keys) and audits it; one
/// implementation for HTTP and the CLI.
pub async fn register_peer(
    state: &StateStore,
    member_id: &str,
    base_url: &str,
    public_keys: &[String],
    actor: &str,
) -> Result<simpul_catalog::Peer, CatalogError> {
    let peer = state
        .put_peer(member_id, base_url, public_keys, actor)
        .await?;
    state
        .audit(
            actor,
            "peer.register",
            &peer.member_id,
            serde_json::json!({"base_url": peer.base_url, "public_keys": peer.public_keys}),
        )
        .await?;
    Ok(peer)
}

/// Rotates the hub's signing key and audits it; one implementation for HTTP and the CLI.
pub async fn rotate_signing_key(
    signer: &simpul_catalog::Signer,
    state: &StateStore,
    actor: &str,
) -> Result<simpul_catalog::PublicKey, CatalogError> {
    let previous = signer.key_id();
    let key = signer.rotate(state).await?;
    state
        .audit(
            actor,
            "hub_key.rotate",
            &key.key_id,
            serde_json::json!({"previous": previous}),
        )
        .await?;
    Ok(key)
}
