use chrono::Utc;
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, timestamp};

/// What a request carrying an `Idempotency-Key` should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First time this key is seen: go ahead, then complete or release the key.
    Proceed,
    /// The same request was already applied: answer with the stored response.
    Replay {
        /// The stored HTTP status.
        status: u16,
        /// The stored response body.
        body: String,
    },
    /// The key was used for a different request body.
    Mismatch,
    /// A request with this key is still running, or was interrupted mid-way.
    InProgress,
}

impl StateStore {
    /// Claims an idempotency key for a request whose body hashes to `request_sha256`.
    pub async fn claim_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        request_sha256: &str,
    ) -> Result<IdempotencyClaim, CatalogError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (client_id, idempotency_key, request_sha256, state, created_at) \
             VALUES ($1, $2, $3, 'in_progress', $4) ON CONFLICT (client_id, idempotency_key) DO NOTHING",
        )
        .bind(client_id)
        .bind(key)
        .bind(request_sha256)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyClaim::Proceed);
        }
        let row = sqlx::query(
            "SELECT request_sha256, state, response_status, response_body FROM idempotency_keys \
             WHERE client_id = $1 AND idempotency_key = $2",
        )
        .bind(client_id)
        .bind(key)
        .fetch_one(self.pool())
        .await?;
        let stored_hash: String = row.try_get("request_sha256")?;
        let state: String = row.try_get("state")?;
        if stored_hash != request_sha256 {
            return Ok(IdempotencyClaim::Mismatch);
        }
        if state != "completed" {
            return Ok(IdempotencyClaim::InProgress);
        }
        let status: Option<i64> = row.try_get("response_status")?;
        let body: Option<String> = row.try_get("response_body")?;
        Ok(IdempotencyClaim::Replay {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            body: body.unwrap_or_default(),
        })
    }

    /// Stores the response of a request that was applied.
    pub async fn complete_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_body = $4 \
             WHERE client_id = $1 AND idempotency_key = $2",
        )
        .bind(client_id)
        .bind(key)
        .bind(i64::from(status))
        .bind(body)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores the responses of many applied requests in one transaction: `(client, key,
    /// status, body)`.
    pub async fn complete_idempotency_keys(
        &self,
        completed: &[(String, String, u16, String)],
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool().begin().await?;
        for (client_id, key, status, body) in completed {
            sqlx::query(
                "UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_body = $4 \
                 WHERE client_id = $1 AND idempotency_key = $2",
            )
            .bind(client_id)
            .bind(key)
            .bind(i64::from(*status))
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Frees a key whose request failed without changing anything, so it can be retried.
    pub async fn release_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE client_id = $1 AND idempotency_key = $2 AND state = 'in_progress'")
            .bind(client_id)
            .bind(key)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
