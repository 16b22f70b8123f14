use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, timestamp};

/// Keys per statement when many are claimed or completed at once.
const ROWS_PER_STATEMENT: usize = 200;

/// One request's claim on an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// The API client sending the request.
    pub client_id: String,
    /// The key as stored.
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub request_sha256: String,
}

/// What the store held for a key that was already claimed.
struct StoredKey {
    request_sha256: String,
    completed: bool,
    status: u16,
    body: String,
}

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
    /// `(c1, c2, c3, 'in_progress', c4), …` for `rows` claims.
    fn claim_placeholders(&self, rows: usize) -> String {
        (0..rows)
            .map(|r| {
                let n = 4 * r;
                format!(
                    "({}, {}, {}, 'in_progress', {})",
                    self.param(n + 1),
                    self.param(n + 2),
                    self.param(n + 3),
                    self.param(n + 4)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Claims an idempotency key for a request whose body hashes to `request_sha256`.
    pub async fn claim_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        request_sha256: &str,
    ) -> Result<IdempotencyClaim, CatalogError> {
        let claim = KeyClaim {
            client_id: client_id.to_string(),
            key: key.to_string(),
            request_sha256: request_sha256.to_string(),
        };
        let mut claims = self.claim_idempotency_keys(&[claim]).await?;
        Ok(claims.pop().unwrap_or(IdempotencyClaim::InProgress))
    }

    /// Claims many keys in one transaction, a few statements in all; the answers are in the
    /// order of `claims`. Within one call the first claim of a `(client, key)` pair is the
    /// one that may proceed; a later one with the same body is told the key is in progress,
    /// one with another body that it is a mismatch, just as if they had come after it.
    pub async fn claim_idempotency_keys(
        &self,
        claims: &[KeyClaim],
    ) -> Result<Vec<IdempotencyClaim>, CatalogError> {
        // The first claim of each pair, in order.
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(claims.len());
        for (i, claim) in claims.iter().enumerate() {
            first
                .entry((claim.client_id.as_str(), claim.key.as_str()))
                .or_insert(i);
        }
        let mut firsts: Vec<usize> = first.values().copied().collect();
        firsts.sort_unstable();
        let now = timestamp(Utc::now());
        let mut tx = self.pool().begin().await?;
        // Both sets are keyed by the index of the pair's first claim.
        let mut inserted: HashSet<usize> = HashSet::with_capacity(firsts.len());
        for chunk in firsts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO idempotency_keys (client_id, idempotency_key, request_sha256, state, created_at) \
                 VALUES {} ON CONFLICT (client_id, idempotency_key) DO NOTHING \
                 RETURNING client_id, idempotency_key",
                self.claim_placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for &i in chunk {
                let claim = &claims[i];
                query = query
                    .bind(&claim.client_id)
                    .bind(&claim.key)
                    .bind(&claim.request_sha256)
                    .bind(&now);
            }
            for row in query.fetch_all(&mut *tx).await? {
                let (client_id, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                if let Some(&i) = first.get(&(client_id.as_str(), key.as_str())) {
                    inserted.insert(i);
                }
            }
        }
        // What the store holds for every pair: the claims just inserted, or the rows that
        // were there before.
        let mut stored: HashMap<usize, StoredKey> = HashMap::with_capacity(firsts.len());
        let existing: Vec<usize> = firsts
            .iter()
            .copied()
            .filter(|i| !inserted.contains(i))
            .collect();
        for chunk in existing.chunks(ROWS_PER_STATEMENT) {
            let wanted: Vec<String> = (0..chunk.len())
                .map(|n| {
                    format!(
                        "(client_id = {} AND idempotency_key = {})",
                        self.param(2 * n + 1),
                        self.param(2 * n + 2)
                    )
                })
                .collect();
            let sql = format!(
                "SELECT client_id, idempotency_key, request_sha256, state, response_status, response_body \
                 FROM idempotency_keys WHERE {}",
                wanted.join(" OR ")
            );
            let mut query = sqlx::query(&sql);
            for &i in chunk {
                query = query.bind(&claims[i].client_id).bind(&claims[i].key);
            }
            for row in query.fetch_all(&mut *tx).await? {
                let status: Option<i64> = row.try_get("response_status")?;
                let client_id: String = row.try_get("client_id")?;
                let key: String = row.try_get("idempotency_key")?;
                let Some(&first_claim) = first.get(&(client_id.as_str(), key.as_str())) else {
                    continue;
                };
                stored.insert(
                    first_claim,
                    StoredKey {
                        request_sha256: row.try_get("request_sha256")?,
                        completed: row.try_get::<String, _>("state")? == "completed",
                        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                        body: row
                            .try_get::<Option<String>, _>("response_body")?
                            .unwrap_or_default(),
                    },
                );
            }
        }
        tx.commit().await?;
        Ok(claims
            .iter()
            .enumerate()
            .map(|(i, claim)| {
                let first = first[&(claim.client_id.as_str(), claim.key.as_str())];
                if inserted.contains(&first) {
                    if first == i {
                        return IdempotencyClaim::Proceed;
                    }
                    // Claimed a moment ago in this same call.
                    return if claims[first].request_sha256 == claim.request_sha256 {
                        IdempotencyClaim::InProgress
                    } else {
                        IdempotencyClaim::Mismatch
                    };
                }
                match stored.get(&first) {
                    Some(row) if row.request_sha256 != claim.request_sha256 => {
                        IdempotencyClaim::Mismatch
                    }
                    Some(row) if row.completed => IdempotencyClaim::Replay {
                        status: row.status,
                        body: row.body.clone(),
                    },
                    // Still running; or released by another writer between the insert and
                    // the read, and free again in a moment.
                    _ => IdempotencyClaim::InProgress,
                }
            })
            .collect())
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

    /// Stores the responses of many applied requests in one transaction, many keys per
    /// statement: `(client, key, status, body)`.
    pub async fn complete_idempotency_keys(
        &self,
        completed: &[(String, String, u16, String)],
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool().begin().await?;
        for chunk in completed.chunks(ROWS_PER_STATEMENT) {
            // Both SQLite and PostgreSQL name the columns of a VALUES list column1, column2, …
            let sql = format!(
                "UPDATE idempotency_keys SET state = 'completed', response_status = v.column3, \
                 response_body = v.column4 FROM (VALUES {}) AS v \
                 WHERE idempotency_keys.client_id = v.column1 AND idempotency_keys.idempotency_key = v.column2",
                self.values_placeholders(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (client_id, key, status, body) in chunk {
                query = query
                    .bind(client_id)
                    .bind(key)
                    .bind(i64::from(*status))
                    .bind(body);
            }
            query.execute(&mut *tx).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> StateStore {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        StateStore::connect(&url).await.unwrap()
    }

    fn claim(client: &str, key: &str, sha: &str) -> KeyClaim {
        KeyClaim {
            client_id: client.into(),
            key: key.into(),
            request_sha256: sha.into(),
        }
    }

    #[tokio::test]
    async fn a_batch_of_claims_answers_each_as_if_they_came_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = store(&dir).await;
        // Before: one key completed, one still running.
        assert_eq!(
            state
                .claim_idempotency_key("a", "done", "h1")
                .await
                .unwrap(),
            IdempotencyClaim::Proceed
        );
        state
            .complete_idempotency_key("a", "done", 200, "{\"ok\":1}")
            .await
            .unwrap();
        assert_eq!(
            state
                .claim_idempotency_key("a", "running", "h2")
                .await
                .unwrap(),
            IdempotencyClaim::Proceed
        );
        let answers = state
            .claim_idempotency_keys(&[
                claim("a", "new", "h3"),
                claim("a", "done", "h1"),
                claim("a", "done", "other"),
                claim("a", "running", "h2"),
                claim("a", "new", "h3"),
                claim("a", "new", "different"),
                // The same key of another client is another key.
                claim("b", "new", "h9"),
            ])
            .await
            .unwrap();
        assert_eq!(
            answers,
            vec![
                IdempotencyClaim::Proceed,
                IdempotencyClaim::Replay {
                    status: 200,
                    body: "{\"ok\":1}".into()
                },
                IdempotencyClaim::Mismatch,
                IdempotencyClaim::InProgress,
                IdempotencyClaim::InProgress,
                IdempotencyClaim::Mismatch,
                IdempotencyClaim::Proceed,
            ]
        );
        // The key claimed in the batch is held for its first body.
        assert_eq!(
            state.claim_idempotency_key("a", "new", "h3").await.unwrap(),
            IdempotencyClaim::InProgress
        );
    }

    #[tokio::test]
    async fn many_keys_are_claimed_and_completed_across_statements() {
        let dir = tempfile::tempdir().unwrap();
        let state = store(&dir).await;
        let n = ROWS_PER_STATEMENT * 2 + 7;
        let claims: Vec<KeyClaim> = (0..n)
            .map(|i| claim("a", &format!("k{i}"), &format!("h{i}")))
            .collect();
        let answers = state.claim_idempotency_keys(&claims).await.unwrap();
        assert!(answers.iter().all(|a| *a == IdempotencyClaim::Proceed));
        let completed: Vec<(String, String, u16, String)> = (0..n)
            .map(|i| {
                (
                    "a".into(),
                    format!("k{i}"),
                    200 + (i % 2) as u16,
                    format!("r{i}"),
                )
            })
            .collect();
        state.complete_idempotency_keys(&completed).await.unwrap();
        let again = state.claim_idempotency_keys(&claims).await.unwrap();
        for (i, answer) in again.into_iter().enumerate() {
            assert_eq!(
                answer,
                IdempotencyClaim::Replay {
                    status: 200 + (i % 2) as u16,
                    body: format!("r{i}")
                }
            );
        }
        // Releasing leaves a completed key alone, and frees one still in progress.
        state.release_idempotency_key("a", "k0").await.unwrap();
        assert!(matches!(
            state.claim_idempotency_key("a", "k0", "h0").await.unwrap(),
            IdempotencyClaim::Replay { .. }
        ));
        let retry = [claim("a", "failed", "h")];
        assert_eq!(
            state.claim_idempotency_keys(&retry).await.unwrap(),
            vec![IdempotencyClaim::Proceed]
        );
        state.release_idempotency_key("a", "failed").await.unwrap();
        assert_eq!(
            state.claim_idempotency_keys(&retry).await.unwrap(),
            vec![IdempotencyClaim::Proceed]
        );
    }
}
