//! Operational monitoring records (X-Road's op-monitoring fields), one per HTTP call.

use chrono::{DateTime, Utc};

use crate::error::CatalogError;
use crate::state::{StateStore, timestamp};

/// One call, as monitored.
#[derive(Debug, Clone)]
pub struct OpmonRecord {
    /// When the request arrived (`requestInTs`).
    pub request_in_ts: DateTime<Utc>,
    /// When the response's last byte left (`responseOutTs`).
    pub response_out_ts: DateTime<Utc>,
    /// The authenticated client, when there was one.
    pub client_id: Option<String>,
    /// Its member.
    pub member: Option<String>,
    /// Its subsystem.
    pub subsystem: Option<String>,
    /// The route template (`/api/v1/datasets/{id}/records`), or `unmatched`.
    pub service: String,
    /// The HTTP method.
    pub method: String,
    /// The request path as sent, without the query string.
    pub path: String,
    /// Request body bytes.
    pub request_size: u64,
    /// Response body bytes sent.
    pub response_size: u64,
    /// Whether the call succeeded (a status below 400 and a body sent whole).
    pub succeeded: bool,
    /// The HTTP status.
    pub status: u16,
}

impl StateStore {
    /// Stores records in one transaction, many rows per statement.
    pub async fn insert_opmon(&self, records: &[OpmonRecord]) -> Result<(), CatalogError> {
        const COLUMNS: usize = 13;
        const ROWS_PER_STATEMENT: usize = 200;
        let mut tx = self.pool().begin().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO opmon (id, request_in_ts, response_out_ts, client_id, member, subsystem, \
                 service, method, path, request_size, response_size, succeeded, status) VALUES {}",
                self.values_placeholders(chunk.len(), COLUMNS)
            );
            let mut query = sqlx::query(&sql);
            for record in chunk {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(timestamp(record.request_in_ts))
                    .bind(timestamp(record.response_out_ts))
                    .bind(record.client_id.clone())
                    .bind(record.member.clone())
                    .bind(record.subsystem.clone())
                    .bind(record.service.clone())
                    .bind(record.method.clone())
                    .bind(record.path.clone())
                    .bind(i64::try_from(record.request_size).unwrap_or(i64::MAX))
                    .bind(i64::try_from(record.response_size).unwrap_or(i64::MAX))
                    .bind(i64::from(record.succeeded))
                    .bind(i64::from(record.status));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Rows removed by [`StateStore::prune_operational`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Query-log rows.
    pub query_log: u64,
    /// Op-monitoring rows.
    pub opmon: u64,
    /// Audit rows.
    pub audit: u64,
}

impl StateStore {
    /// Removes query-log, op-monitoring and audit rows older than their cut-off (`None`
    /// keeps that log whole), a few thousand rows per statement so that writers are never
    /// held up for long. Never touches the message log.
    pub async fn prune_operational(
        &self,
        query_log_before: Option<chrono::DateTime<chrono::Utc>>,
        opmon_before: Option<chrono::DateTime<chrono::Utc>>,
        audit_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Pruned, CatalogError> {
        const CHUNK: i64 = 5_000;
        let mut pruned = Pruned::default();
        for (table, id, at, before, count) in [
            (
                "query_log",
                "id",
                "at",
                query_log_before,
                &mut pruned.query_log,
            ),
            (
                "opmon",
                "id",
                "request_in_ts",
                opmon_before,
                &mut pruned.opmon,
            ),
            ("audit_log", "id", "at", audit_before, &mut pruned.audit),
        ] {
            let Some(before) = before else { continue };
            let cutoff = crate::state::timestamp(before);
            let sql = format!(
                "DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE {at} < $1 LIMIT {CHUNK})"
            );
            loop {
                let removed = sqlx::query(&sql)
                    .bind(&cutoff)
                    .execute(self.pool())
                    .await?
                    .rows_affected();
                *count += removed;
                if removed < CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_larger_than_one_statement_are_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        let state = StateStore::connect(&url).await.unwrap();
        let now = Utc::now();
        let records: Vec<OpmonRecord> = (0..450)
            .map(|i| OpmonRecord {
                request_in_ts: now,
                response_out_ts: now,
                client_id: (i % 2 == 0).then(|| "bappeda-analisis".to_string()),
                member: None,
                subsystem: None,
                service: "/api/v1/sql".into(),
                method: "POST".into(),
                path: "/api/v1/sql".into(),
                request_size: i,
                response_size: 2 * i,
                succeeded: true,
                status: 200,
            })
            .collect();
        state.insert_opmon(&records).await.unwrap();
        let (count, sizes, clients): (i64, i64, i64) =
            sqlx::query_as("SELECT COUNT(*), SUM(response_size), COUNT(client_id) FROM opmon")
                .fetch_one(state.pool())
                .await
                .unwrap();
        assert_eq!(count, 450);
        assert_eq!(sizes, (0..450).map(|i| 2 * i).sum::<i64>());
        assert_eq!(clients, 225);
    }

    #[tokio::test]
    async fn old_audit_rows_go_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let state = StateStore::connect(&url).await.unwrap();
        for (id, days) in [("old", 400), ("new", 1)] {
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, 'a', 'x', 't', '{}')",
            )
            .bind(id)
            .bind(timestamp(Utc::now() - chrono::Duration::days(days)))
            .execute(state.pool())
            .await
            .unwrap();
        }
        let kept = state.prune_operational(None, None, None).await.unwrap();
        assert_eq!(kept, Pruned::default());
        let pruned = state
            .prune_operational(None, None, Some(Utc::now() - chrono::Duration::days(365)))
            .await
            .unwrap();
        assert_eq!(pruned.audit, 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM audit_log")
            .fetch_all(state.pool())
            .await
            .unwrap();
        assert_eq!(left, ["new"]);
    }
}
