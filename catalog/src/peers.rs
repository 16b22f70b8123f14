//! Federation peers: the other hubs this hub may pull from. The default is none; an admin
//! registers each one with its base URL and the Ed25519 public keys its seals verify under.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::bus::check_part;
use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// A registered peer hub.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Peer {
    /// The peer member, `INSTANCE/CLASS/MEMBER` (of any instance: the province, the centre).
    pub member_id: String,
    /// Its hub's base URL, `https://simpul.jabarprov.go.id`.
    pub base_url: String,
    /// Its Ed25519 public keys, hex; a seal must verify under one of them.
    pub public_keys: Vec<String>,
    /// Who registered it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When its URL or keys last changed.
    pub updated_at: DateTime<Utc>,
}

/// Checks a peer registration: a three-part member id, an http(s) base URL and at least one
/// 32-byte hex key. Returns the id in upper case and the URL without a trailing slash.
pub fn check_peer(
    member_id: &str,
    base_url: &str,
    public_keys: &[String],
) -> Result<(String, String), CatalogError> {
    let parts: Vec<&str> = member_id.split('/').collect();
    if parts.len() != 3 {
        return Err(CatalogError::Invalid(format!(
            "a peer is a member, INSTANCE/CLASS/MEMBER (for example ID-JABAR/GOV/PROVINSI), not '{}'",
            member_id.chars().take(120).collect::<String>()
        )));
    }
    for (part, name) in parts.iter().zip(["instance", "member class", "member"]) {
        check_part(name, part)?;
    }
    let url = url::Url::parse(base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            CatalogError::Invalid(format!("base_url '{base_url}' is not an http(s) URL"))
        })?;
    if public_keys.is_empty() {
        return Err(CatalogError::Invalid(
            "a peer needs at least one public key (its hub's GET /api/v1/bus/keys lists them)"
                .into(),
        ));
    }
    for key in public_keys {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CatalogError::Invalid(format!(
                "public key '{}' is not 64 hex digits (an Ed25519 public key)",
                key.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok((
        member_id.to_uppercase(),
        url.as_str().trim_end_matches('/').to_string(),
    ))
}

fn peer_from_row(row: &AnyRow) -> Result<Peer, CatalogError> {
    let keys: String = row.try_get("public_keys")?;
    let created: String = row.try_get("created_at")?;
    let updated: String = row.try_get("updated_at")?;
    Ok(Peer {
        member_id: row.try_get("member_id")?,
        base_url: row.try_get("base_url")?,
        public_keys: serde_json::from_str(&keys).unwrap_or_default(),
        created_by: row.try_get("created_by")?,
        created_at: parse_timestamp(&created).unwrap_or_default(),
        updated_at: parse_timestamp(&updated).unwrap_or_default(),
    })
}

impl StateStore {
    /// Registers a peer, or replaces its URL and keys (after the peer rotated its key).
    pub async fn put_peer(
        &self,
        member_id: &str,
        base_url: &str,
        public_keys: &[String],
        actor: &str,
    ) -> Result<Peer, CatalogError> {
        let (member_id, base_url) = check_peer(member_id, base_url, public_keys)?;
        let now = timestamp(Utc::now());
        let keys: Vec<String> = public_keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        let keys = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO bus_peers (member_id, base_url, public_keys, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (member_id) DO UPDATE SET \
             base_url = $2, public_keys = $3, updated_at = $5",
        )
        .bind(&member_id)
        .bind(&base_url)
        .bind(keys)
        .bind(actor)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.peer(&member_id)
            .await?
            .ok_or_else(|| CatalogError::State(format!("peer {member_id} vanished")))
    }

    /// One peer, if registered.
    pub async fn peer(&self, member_id: &str) -> Result<Option<Peer>, CatalogError> {
        let row = sqlx::query(
            "SELECT member_id, base_url, public_keys, created_by, created_at, updated_at FROM bus_peers WHERE member_id = $1",
        )
        .bind(member_id.to_uppercase())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| peer_from_row(&r)).transpose()
    }

    /// Every registered peer.
    pub async fn peers(&self) -> Result<Vec<Peer>, CatalogError> {
        let rows = sqlx::query(
            "SELECT member_id, base_url, public_keys, created_by, created_at, updated_at FROM bus_peers ORDER BY member_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(peer_from_row).collect()
    }
}
