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
    /// Stores records in one transaction.
    pub async fn insert_opmon(&self, records: &[OpmonRecord]) -> Result<(), CatalogError> {
        let mut tx = self.pool().begin().await?;
        for record in records {
            sqlx::query(
                "INSERT INTO opmon (id, request_in_ts, response_out_ts, client_id, member, subsystem, \
                 service, method, path, request_size, response_size, succeeded, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(timestamp(record.request_in_ts))
            .bind(timestamp(record.response_out_ts))
            .bind(record.client_id.as_deref())
            .bind(record.member.as_deref())
            .bind(record.subsystem.as_deref())
            .bind(&record.service)
            .bind(&record.method)
            .bind(&record.path)
            .bind(i64::try_from(record.request_size).unwrap_or(i64::MAX))
            .bind(i64::try_from(record.response_size).unwrap_or(i64::MAX))
            .bind(i64::from(record.succeeded))
            .bind(i64::from(record.status))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
