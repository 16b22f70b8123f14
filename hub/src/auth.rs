//! API keys and the caller of a request.
//!
//! A key is shown once, when it is issued; only its SHA-256 is stored. Keys are 40 random
//! alphanumeric characters (about 238 bits), so a fast hash is enough: there is nothing to
//! brute-force.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use chrono::Utc;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use simpul_catalog::{
    ApiClient, CatalogError, DatasetMeta, Principal, Right, Role, SqlAccess, StateStore, check_part,
};

use crate::api::ApiError;
use crate::server::AppState;

/// Prefix of every key, so that leaked keys are easy to spot in logs and repositories.
const KEY_PREFIX: &str = "simpul_";

/// The client id of the admin key made on first start.
pub const FIRST_ADMIN_ID: &str = "admin";

/// What is needed to issue a key.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The client id; `<member>-<subsystem>` when absent.
    pub id: Option<String>,
    /// The member (OPD) code, `DINKES`.
    pub member: String,
    /// The member's system, `SEMAR`.
    pub subsystem: String,
    /// What the key may do.
    pub role: Role,
    /// Who holds the key.
    #[serde(default)]
    pub description: String,
}

/// The SHA-256 of a key, as stored.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub(crate) fn new_key() -> String {
    format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    )
}

pub(crate) fn valid_client_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && id.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

/// Issues a key: stores the client with the key's hash and returns the key, which is never
/// shown again.
pub async fn issue_key(
    state: &StateStore,
    request: &NewKey,
    actor: &str,
) -> Result<(ApiClient, String), CatalogError> {
    let (member, subsystem) =
        registered_subsystem(state, &request.member, &request.subsystem).await?;
    let id = match &request.id {
        Some(id) => {
            check_client_id("client id", id)?;
            if state.client(id).await?.is_some() {
                return Err(CatalogError::Invalid(format!(
                    "an API client with id '{id}' already exists"
                )));
            }
            id.clone()
        }
        None => free_client_id(state, request).await?,
    };
    let client = new_client(id, member, subsystem, request.role, &request.description);
    let key = new_key();
    state.insert_client(&client, &key_hash(&key)).await?;
    audit_new_client(state, actor, "key.create", &client).await?;
    Ok((client, key))
}

/// Refuses an id that is not lowercase letters, digits, `-` or `_` (at most 64); `what` names
/// it in the message (`client id`, `user name`).
pub(crate) fn check_client_id(what: &str, id: &str) -> Result<(), CatalogError> {
    if valid_client_id(id) {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "{what} '{id}' is not valid: use lowercase letters, digits, '-' or '_' (at most 64)"
        )))
    }
}

/// A client made now and not revoked.
pub(crate) fn new_client(
    id: String,
    member: String,
    subsystem: String,
    role: Role,
    description: &str,
) -> ApiClient {
    ApiClient {
        id,
        member,
        subsystem,
        role,
        description: description.to_string(),
        created_at: Utc::now(),
        revoked_at: None,
    }
}

/// A member and subsystem, upper-cased, once they are checked to be registered.
pub(crate) async fn registered_subsystem(
    state: &StateStore,
    member: &str,
    subsystem: &str,
) -> Result<(String, String), CatalogError> {
    let (member, subsystem) = (member.to_uppercase(), subsystem.to_uppercase());
    check_part("member", &member)?;
    check_part("subsystem", &subsystem)?;
    state.require_subsystem(&member, &subsystem).await?;
    Ok((member, subsystem))
}

/// Records that `actor` made `client` (`key.create`, `user.create`).
pub(crate) async fn audit_new_client(
    state: &StateStore,
    actor: &str,
    action: &str,
    client: &ApiClient,
) -> Result<(), CatalogError> {
    state
        .audit(
            actor,
            action,
            &client.id,
            serde_json::json!({"member": client.member, "subsystem": client.subsystem, "role": client.role}),
        )
        .await
}

async fn free_client_id(state: &StateStore, request: &NewKey) -> Result<String, CatalogError> {
    let base: String = format!("{}-{}", request.member, request.subsystem)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut candidate = base.clone();
    let mut n = 2;
    while state.client(&candidate).await?.is_some() {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    Ok(candidate)
}

/// Revokes a key; its holder gets 401 from the next request on.
pub async fn revoke_key(state: &StateStore, id: &str, actor: &str) -> Result<bool, CatalogError> {
    revoke_client(state, id, actor, "key.revoke").await
}

/// Revokes a client and records `action` if it was active.
pub(crate) async fn revoke_client(
    state: &StateStore,
    id: &str,
    actor: &str,
    action: &str,
) -> Result<bool, CatalogError> {
    let revoked = state.revoke_client(id).await?;
    if revoked {
        state
            .audit(actor, action, id, serde_json::json!({}))
            .await?;
    }
    Ok(revoked)
}

/// What `client` sees through SQL.
pub fn sql_access(client: &ApiClient) -> SqlAccess {
    match client.role {
        Role::Admin => SqlAccess::full(&client.id),
        Role::Analyst | Role::Producer => SqlAccess::member(
            &client.id,
            Principal {
                member: client.member.clone(),
                subsystem: client.subsystem.clone(),
            },
        ),
    }
}

/// Whether `caller`'s member owns `dataset` or its subsystem holds `right` on it.
async fn owns_or_holds(
    app: &AppState,
    caller: &Caller,
    dataset: &DatasetMeta,
    right: Right,
) -> Result<bool, ApiError> {
    Ok(dataset.owner == caller.0.member
        || app
            .catalog
            .state
            .rights_of(&caller.principal())
            .await?
            .has(&dataset.id, right))
}

/// Whether `caller` may publish to `dataset`: admins always; analysts never (their keys are
/// read-only); producers for their own member's datasets or with a `publish` grant.
pub async fn may_publish(
    app: &AppState,
    caller: &Caller,
    dataset: &DatasetMeta,
) -> Result<bool, ApiError> {
    match caller.0.role {
        Role::Admin => Ok(true),
        Role::Analyst => Ok(false),
        Role::Producer => owns_or_holds(app, caller, dataset, Right::Publish).await,
    }
}

/// Whether `caller` sees `dataset`'s personal data unmasked: admins, the owner's
/// subsystems, and holders of a `pii` grant.
pub async fn may_see_pii(
    app: &AppState,
    caller: &Caller,
    dataset: &DatasetMeta,
) -> Result<bool, ApiError> {
    match caller.0.role {
        Role::Admin => Ok(true),
        Role::Analyst | Role::Producer => owns_or_holds(app, caller, dataset, Right::Pii).await,
    }
}

/// The authenticated client behind a request.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiClient);

impl Caller {
    /// The client id, as recorded in audit entries.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The caller's subsystem.
    pub fn principal(&self) -> Principal {
        Principal {
            member: self.0.member.clone(),
            subsystem: self.0.subsystem.clone(),
        }
    }

    /// Refuses callers whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let allowed: Vec<String> = roles.iter().map(Role::to_string).collect();
            Err(ApiError::forbidden(format!(
                "{action} needs a key with role {}; this key ({}) has role {}",
                allowed.join(" or "),
                self.0.id,
                self.0.role
            )))
        }
    }

    /// What this caller sees through SQL: admins everything; others what the access policy
    /// gives their subsystem (classification defaults and grants, `simpul_catalog::may_read`).
    pub fn sql_access(&self) -> SqlAccess {
        sql_access(&self.0)
    }

    /// Whether this caller may read a dataset's rows: analysts and admins read all,
    /// producers read what their member owns.
    pub fn can_read(&self, dataset: &DatasetMeta) -> bool {
        match self.0.role {
            Role::Admin | Role::Analyst => true,
            Role::Producer => dataset.owner == self.0.member,
        }
    }

    /// Whether this caller may write a dataset: admins write all, producers what their
    /// member owns (or a new dataset, which their member then owns).
    pub fn can_write(&self, dataset: Option<&DatasetMeta>) -> bool {
        match (self.0.role, dataset) {
            (Role::Admin, _) => true,
            (Role::Producer, None) => true,
            (Role::Producer, Some(d)) => d.owner == self.0.member,
            (Role::Analyst, _) => false,
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("send your API key as 'Authorization: Bearer <key>'")
        })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <key>'")
            })?;
        let client = app
            .catalog
            .state
            .active_client_by_key_hash(&key_hash(key))
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::unauthorized("this API key is unknown or has been revoked"))?;
        if let Some(slot) = parts.extensions.get::<crate::opmon::CallerSlot>() {
            slot.set(&client);
        }
        Ok(Caller(client))
    }
}

/// A caller when a key is sent, none when no `Authorization` header is: for the open routes
/// that tell a key's holder more (`/health/ready` gives admins the details).
impl<S> axum::extract::OptionalFromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <Caller as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// The address a request came from: the peer, or, when the peer is one of the configured
/// reverse proxies (`http.trusted_proxies`), the last address in `X-Forwarded-For` that is
/// not one of them.
pub fn source_address(
    peer: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &str,
) -> Option<std::net::IpAddr> {
    let trusted: Vec<std::net::IpAddr> = trusted_proxies
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let (a, b) = (new_key(), new_key());
        assert!(a.starts_with("simpul_") && a.len() == 47);
        assert_ne!(a, b);
        assert_eq!(key_hash(&a).len(), 64);
        assert_ne!(key_hash(&a), key_hash(&b));
    }

    #[test]
    fn member_codes_and_client_ids_are_restricted() {
        use simpul_catalog::valid_part;
        assert!(valid_part("DINKES") && valid_part("PURWAKARTA-DINKES") && valid_part("id.jabar"));
        assert!(!valid_part("") && !valid_part("-X") && !valid_part("a b") && !valid_part("x/y"));
        assert!(
            valid_client_id("dinkes-semar")
                && !valid_client_id("Dinkes")
                && !valid_client_id("a b")
        );
    }

    #[test]
    fn the_source_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        let peer = |a: &str| Some(a.parse().unwrap());
        // A client that is not a proxy cannot choose its address.
        assert_eq!(
            source_address(peer("8.8.8.8"), &headers, ""),
            peer("8.8.8.8")
        );
        assert_eq!(
            source_address(peer("10.0.0.1"), &headers, "10.0.0.1, 10.0.0.9"),
            peer("1.2.3.4")
        );
        assert_eq!(
            source_address(peer("10.0.0.1"), &headers, "10.0.0.1"),
            peer("10.0.0.9"),
            "the last hop not trusted"
        );
        assert_eq!(source_address(None, &headers, "10.0.0.1"), None);
    }
}
