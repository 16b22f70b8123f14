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
        let inserted = insert_client_row(self.pool(), client, key_hash).await?;
        if !inserted {
            return Err(taken(&client.id));
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

/// A user account: a client that logs in with a user name (its id) and a password.
#[derive(Debug, Clone, Serialize)]
pub struct UserAccount {
    /// The client the user acts as.
    #[serde(flatten)]
    pub client: ApiClient,
    /// When the password was last set.
    pub password_set_at: DateTime<Utc>,
}

impl StateStore {
    /// Stores a new user: its client (with the hash of a key nobody holds) and its password
    /// hash, in one transaction. Fails if the id is taken.
    pub async fn insert_user(
        &self,
        client: &ApiClient,
        key_hash: &str,
        password_hash: &str,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool().begin().await?;
        if !insert_client_row(&mut *tx, client, key_hash).await? {
            return Err(taken(&client.id));
        }
        sqlx::query(
            "INSERT INTO user_accounts (client_id, password_hash, password_set_at) VALUES ($1, $2, $3)",
        )
        .bind(&client.id)
        .bind(password_hash)
        .bind(timestamp(client.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The active (not revoked) user with this id and its password hash.
    pub async fn active_user(&self, id: &str) -> Result<Option<(ApiClient, String)>, CatalogError> {
        let sql = format!(
            "SELECT {}, u.password_hash FROM api_clients c JOIN user_accounts u ON u.client_id = c.id \
             WHERE c.id = $1 AND c.revoked_at IS NULL",
            qualified_client_columns()
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((client_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// Every user account, revoked or not, oldest first.
    pub async fn users(&self) -> Result<Vec<UserAccount>, CatalogError> {
        let sql = format!(
            "SELECT {}, u.password_set_at FROM api_clients c JOIN user_accounts u ON u.client_id = c.id \
             ORDER BY c.created_at, c.id",
            qualified_client_columns()
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let set_at: String = r.try_get("password_set_at")?;
                Ok(UserAccount {
                    client: client_from_row(r)?,
                    password_set_at: parse_timestamp(&set_at).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Replaces an active user's password hash; false if there is no such active user.
    pub async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
    ) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "UPDATE user_accounts SET password_hash = $2, password_set_at = $3 WHERE client_id = $1 \
             AND client_id IN (SELECT id FROM api_clients WHERE revoked_at IS NULL)",
        )
        .bind(id)
        .bind(password_hash)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

/// Inserts a client row; false if the id is taken.
async fn insert_client_row<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    client: &ApiClient,
    key_hash: &str,
) -> Result<bool, CatalogError> {
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
    .execute(executor)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

fn taken(id: &str) -> CatalogError {
    CatalogError::Invalid(format!("an API client with id '{id}' already exists"))
}

/// [`CLIENT_COLUMNS`] of the `api_clients` table aliased `c`.
fn qualified_client_columns() -> String {
    CLIENT_COLUMNS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
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
