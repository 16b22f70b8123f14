use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sqlx::Row;

use crate::error::CatalogError;
use crate::instance::{instance_id, instance_is_gone};
use crate::state::{StateStore, parse_timestamp, timestamp};

/// Keys per statement when many are claimed or completed at once.
const ROWS_PER_STATEMENT: usize = 200;

/// How long a claim holds without its holder renewing it. The holder renews its keys'
/// leases every [`KEY_LEASE`] / 6; a key whose lease ran out (or whose holder is known to be
/// gone) is settled by recovery.
pub const KEY_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// A key claimed by a process that is gone (or stopped renewing it), still `in_progress`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanedKey {
    /// The API client that sent the request.
    pub client_id: String,
    /// The key as stored.
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub request_sha256: String,
    /// When the key was claimed.
    pub created_at: String,
    /// The process that held it (`host:pid:id`); `None` for a key from before holders.
    pub owner: Option<String>,
    /// What the request was about to commit, written before its lake commit; `None` when
    /// it never got that far.
    pub intent: Option<serde_json::Value>,
}

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
    /// `(c1, c2, c3, 'in_progress', c4, c5, c6), …` for `rows` claims.
    fn claim_placeholders(&self, rows: usize) -> String {
        (0..rows)
            .map(|r| {
                let n = 6 * r;
                format!(
                    "({}, {}, {}, 'in_progress', {}, {}, {})",
                    self.param(n + 1),
                    self.param(n + 2),
                    self.param(n + 3),
                    self.param(n + 4),
                    self.param(n + 5),
                    self.param(n + 6)
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
        let now = Utc::now();
        let lease_until = timestamp(now + KEY_LEASE);
        let now = timestamp(now);
        let mut tx = self.pool().begin().await?;
        // Both sets are keyed by the index of the pair's first claim.
        let mut inserted: HashSet<usize> = HashSet::with_capacity(firsts.len());
        for chunk in firsts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO idempotency_keys (client_id, idempotency_key, request_sha256, state, created_at, owner, lease_until) \
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
                    .bind(&now)
                    .bind(instance_id())
                    .bind(&lease_until);
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

    /// Writes what each claimed request is about to commit, `(client, key, intent)`, before
    /// its lake commit: recovery finds the commit by it should this process die. Fails,
    /// and the requests must not commit, unless every key is still claimed by this process.
    pub async fn record_idempotency_intents(
        &self,
        intents: &[(String, String, serde_json::Value)],
    ) -> Result<(), CatalogError> {
        let distinct: HashSet<(&str, &str)> = intents
            .iter()
            .map(|(client, key, _)| (client.as_str(), key.as_str()))
            .collect();
        let mut updated = 0u64;
        let mut tx = self.pool().begin().await?;
        for chunk in intents.chunks(ROWS_PER_STATEMENT) {
            let owner = self.param(3 * chunk.len() + 1);
            let sql = format!(
                "UPDATE idempotency_keys SET intent = v.column3 FROM (VALUES {}) AS v \
                 WHERE idempotency_keys.client_id = v.column1 AND idempotency_keys.idempotency_key = v.column2 \
                 AND idempotency_keys.state = 'in_progress' AND idempotency_keys.owner = {owner}",
                self.values_placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (client_id, key, intent) in chunk {
                query = query.bind(client_id).bind(key).bind(intent.to_string());
            }
            updated += query
                .bind(instance_id())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        if updated != distinct.len() as u64 {
            return Err(CatalogError::Conflict(format!(
                "{} of {} idempotency keys are no longer held by this process (its lease ran out); nothing was committed",
                distinct.len() as u64 - updated.min(distinct.len() as u64),
                distinct.len()
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Renews the leases of every key this process holds; returns how many it holds.
    pub async fn renew_idempotency_leases(&self) -> Result<u64, CatalogError> {
        let result = sqlx::query(
            "UPDATE idempotency_keys SET lease_until = $1 WHERE owner = $2 AND state = 'in_progress'",
        )
        .bind(timestamp(Utc::now() + KEY_LEASE))
        .bind(instance_id())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Ends the lease of every key still `in_progress`, whoever holds it: for a restored
    /// state store, whose keys belong to no running process. The next recovery settles
    /// them.
    pub async fn expire_idempotency_leases(&self) -> Result<u64, CatalogError> {
        let result = sqlx::query(
            "UPDATE idempotency_keys SET owner = NULL, lease_until = $1 WHERE state = 'in_progress'",
        )
        .bind(timestamp(chrono::DateTime::<Utc>::UNIX_EPOCH))
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// The keys still `in_progress` whose holder is gone: a process of this host that no
    /// longer runs (or an earlier process with this one's pid), or any holder whose lease
    /// ran out. A key from before holders were recorded counts once it is older than a
    /// lease.
    pub async fn orphaned_idempotency_keys(&self) -> Result<Vec<OrphanedKey>, CatalogError> {
        let rows = sqlx::query(
            "SELECT client_id, idempotency_key, request_sha256, created_at, owner, lease_until, intent \
             FROM idempotency_keys WHERE state = 'in_progress'",
        )
        .fetch_all(self.pool())
        .await?;
        let now = Utc::now();
        let mut orphaned = Vec::new();
        for row in rows {
            let owner: Option<String> = row.try_get("owner")?;
            let created_at: String = row.try_get("created_at")?;
            let lease_until = row
                .try_get::<Option<String>, _>("lease_until")?
                .and_then(|t| parse_timestamp(&t))
                .or_else(|| {
                    parse_timestamp(&created_at)
                        .map(|at| at + chrono::Duration::from_std(KEY_LEASE).unwrap_or_default())
                });
            let expired = lease_until.is_none_or(|until| until < now);
            let gone = owner.as_deref().is_some_and(instance_is_gone);
            let mine = owner.as_deref() == Some(instance_id());
            if mine || !(expired || gone) {
                continue;
            }
            let intent = row
                .try_get::<Option<String>, _>("intent")?
                .and_then(|text| serde_json::from_str(&text).ok());
            orphaned.push(OrphanedKey {
                client_id: row.try_get("client_id")?,
                key: row.try_get("idempotency_key")?,
                request_sha256: row.try_get("request_sha256")?,
                created_at,
                owner,
                intent,
            });
        }
        Ok(orphaned)
    }

    /// Takes an orphaned key over for this process, unless another process took it first;
    /// returns whether this one holds it now. Only the holder settles a key, so two
    /// recoveries never settle one twice.
    pub async fn take_over_idempotency_key(&self, key: &OrphanedKey) -> Result<bool, CatalogError> {
        let result = sqlx::query(
            "UPDATE idempotency_keys SET owner = $1, lease_until = $2 \
             WHERE client_id = $3 AND idempotency_key = $4 AND state = 'in_progress' \
             AND COALESCE(owner, '') = $5",
        )
        .bind(instance_id())
        .bind(timestamp(Utc::now() + KEY_LEASE))
        .bind(&key.client_id)
        .bind(&key.key)
        .bind(key.owner.clone().unwrap_or_default())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Hands a key this process took over back, unsettled, with its lease ended, so that
    /// the next recovery (of any process) tries it again.
    pub async fn give_up_idempotency_key(&self, key: &OrphanedKey) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE idempotency_keys SET owner = NULL, lease_until = $1 \
             WHERE client_id = $2 AND idempotency_key = $3 AND state = 'in_progress' AND owner = $4",
        )
        .bind(timestamp(chrono::DateTime::<Utc>::UNIX_EPOCH))
        .bind(&key.client_id)
        .bind(&key.key)
        .bind(instance_id())
        .execute(self.pool())
        .await?;
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

    #[tokio::test]
    async fn a_key_whose_holder_is_gone_is_orphaned_once_and_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = store(&dir).await;
        for key in ["mine", "gone", "expired", "live"] {
            assert_eq!(
                state.claim_idempotency_key("a", key, "h").await.unwrap(),
                IdempotencyClaim::Proceed
            );
        }
        let intent = serde_json::json!({"kind": "publish", "message_id": "m1"});
        state
            .record_idempotency_intents(&[("a".into(), "gone".into(), intent.clone())])
            .await
            .unwrap();
        let host = crate::instance::host_name();
        let set_owner = |key: &'static str, owner: String, lease: chrono::DateTime<Utc>| {
            let state = state.clone();
            async move {
                sqlx::query(
                    "UPDATE idempotency_keys SET owner = $1, lease_until = $2 WHERE idempotency_key = $3",
                )
                .bind(owner)
                .bind(timestamp(lease))
                .bind(key)
                .execute(state.pool())
                .await
                .unwrap();
            }
        };
        let later = Utc::now() + chrono::Duration::minutes(5);
        let earlier = Utc::now() - chrono::Duration::minutes(5);
        // A process of this host that no longer runs, with its lease still running.
        set_owner("gone", format!("{host}:4294967294:x"), later).await;
        // A process elsewhere that stopped renewing.
        set_owner("expired", "elsewhere:1:x".into(), earlier).await;
        // A process elsewhere that renews.
        set_owner("live", "elsewhere:2:x".into(), later).await;

        let mut orphaned = state.orphaned_idempotency_keys().await.unwrap();
        orphaned.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<&str> = orphaned.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["expired", "gone"]);
        assert_eq!(orphaned[1].intent, Some(intent));
        assert_eq!(orphaned[0].intent, None);

        // Only one recovery takes a key over; the other finds it held.
        assert!(state.take_over_idempotency_key(&orphaned[1]).await.unwrap());
        assert!(!state.take_over_idempotency_key(&orphaned[1]).await.unwrap());
        // Now this process holds it, so it is no longer orphaned.
        let left = state.orphaned_idempotency_keys().await.unwrap();
        assert_eq!(left.len(), 1);
        // Handed back unsettled, it is orphaned again, for the next recovery.
        state.give_up_idempotency_key(&orphaned[1]).await.unwrap();
        assert_eq!(state.orphaned_idempotency_keys().await.unwrap().len(), 2);
        let again = state.orphaned_idempotency_keys().await.unwrap();
        let gone = again.iter().find(|k| k.key == "gone").unwrap();
        assert!(state.take_over_idempotency_key(gone).await.unwrap());

        // An intent for a key another process holds is refused: that request must not
        // commit.
        let refused = state
            .record_idempotency_intents(&[("a".into(), "live".into(), serde_json::json!({}))])
            .await;
        assert!(
            matches!(refused, Err(CatalogError::Conflict(_))),
            "{refused:?}"
        );
        // Renewing touches only this process's keys ("mine" and the one taken over).
        assert_eq!(state.renew_idempotency_leases().await.unwrap(), 2);
    }
}
