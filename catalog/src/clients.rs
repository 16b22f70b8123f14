use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// What an API client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An OPD system that writes the datasets its member owns.
    Producer,
    /// A person or tool that reads every dataset.
    Analyst,
    /// Does everything, including managing keys.
    Admin,
}

impl FromStr for Role {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "producer" => Ok(Self::Producer),
            "analyst" => Ok(Self::Analyst),
            "admin" => Ok(Self::Admin),
            other => Err(CatalogError::Invalid(format!(
                "role must be producer, analyst or admin, not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Producer => "producer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        })
    }
}

/// A system or person that calls the hub with an API key. Only the key's hash is stored.
#[derive(Debug, Clone, Serialize)]
pub struct ApiClient {
    /// The client id: the user name on SQL connections, and the name in audit records.
    pub id: String,
    /// The member (OPD or government) it belongs to, uppercase (`DINKES`).
    pub member: String,
    /// The member's system it acts for, uppercase (`SEMAR`).
    pub subsystem: String,
    /// What it may do.
    pub role: Role,
    /// A note on who holds the key.
    pub description: String,
    /// When the key was issued.
    pub created_at: DateTime<Utc>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const CLIENT_COLUMNS: &str = "id, member, subsystem, role, description, created_at, revoked_at";

impl StateStore {
    /// Stores a new client with the hash of its key. Fails if the id is taken.
    pub async fn insert_client(
        &self,
        client: &ApiClient,
        key_hash: &str,
    ) -> Result<(), CatalogError> {
        let inserted = sqlx::query(
            "INSERT INTO api_clients (id, member, subsystem, role, key_hash, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&client.id)
        .bind(&client.member)
        .bind(&client.subsystem)
        .bind(client.role.to_string())
        .bind(key_hash)
        .bind(&client.description)
        .bind(timestamp(client.created_at))
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::Invalid(format!(
                "an API client with id '{}' already exists",
                client.id
            )));
        }
        Ok(())
    }

    /// The active (not revoked) client holding the key with this hash.
    pub async fn active_client_by_key_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiClient>, CatalogError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM api_clients WHERE key_hash = $1 AND revoked_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| client_from_row(&r)).transpose()
    }

    /// One client by id, revoked or not.
    pub async fn client(&self, id: &str) -> Result<Option<ApiClient>, CatalogError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| client_from_row(&r)).transpose()
    }

    /// Every client, oldest first.
    pub async fn clients(&self) -> Result<Vec<ApiClient>, CatalogError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Revokes a client's key; returns false if there is no such active client.
    pub async fn revoke_client(&self, id: &str) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "UPDATE api_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn client_from_row(row: &AnyRow) -> Result<ApiClient, CatalogError> {
    let role: String = row.try_get("role")?;
    let created_at: String = row.try_get("created_at")?;
    let revoked_at: Option<String> = row.try_get("revoked_at")?;
    Ok(ApiClient {
        id: row.try_get("id")?,
        member: row.try_get("member")?,
        subsystem: row.try_get("subsystem")?,
        role: role.parse()?,
        description: row.try_get("description")?,
        created_at: parse_timestamp(&created_at).unwrap_or_default(),
        revoked_at: revoked_at.as_deref().and_then(parse_timestamp),
    })
}
