//! Webhook subscriptions and their deliveries.
//!
//! A subscription follows one dataset from its cursor version on. Each time the dataset has
//! newer versions, one delivery is made for the range, and the cursor moves in the same
//! transaction, so every committed version is in exactly one delivery. A delivery is retried
//! until it is delivered or its attempts run out (dead-letter); a person can redeliver it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dataset_id::DatasetId;
use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// A subscription.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The dataset it follows.
    pub dataset: DatasetId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header; shown once, when it is made.
    #[serde(skip)]
    pub secret: String,
    /// The API client that subscribed; deliveries carry what it may read.
    pub client_id: String,
    /// Its member.
    pub member: String,
    /// Its subsystem.
    pub subsystem: String,
    /// Attempts of one delivery before it goes to dead-letter.
    pub max_attempts: u32,
    /// The last version handed to a delivery.
    pub cursor_version: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The target answered 2xx.
    Delivered,
    /// Every attempt failed; it waits for a manual redelivery.
    Dead,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        match text {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            other => Err(CatalogError::Invalid(format!(
                "a delivery status is pending, delivered or dead, not '{other}'"
            ))),
        }
    }
}

/// One delivery: the rows of a range of versions, for one subscription.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Its id, sent as `Simpul-Delivery`; receivers drop a delivery id they have seen.
    pub id: String,
    /// The subscription.
    pub webhook_id: String,
    /// The dataset.
    pub dataset: String,
    /// The first version it carries.
    pub from_version: i64,
    /// The last version it carries.
    pub to_version: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (or the current one's lease ends).
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last attempt, if the target answered.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the target accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// The target answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// It failed; try again at `retry_at`, or never (dead-letter) when `None`.
    Failed {
        /// The status, when the target answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The next attempt.
        retry_at: Option<DateTime<Utc>>,
    },
}

const WEBHOOK_COLUMNS: &str = "id, dataset, url, secret, client_id, member, subsystem, max_attempts, \
     cursor_version, created_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, dataset, from_version, to_version, status, attempts, \
     next_attempt_at, last_status, last_error, created_at, delivered_at";

fn time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>, CatalogError> {
    let text: String = row.try_get(column)?;
    Ok(parse_timestamp(&text).unwrap_or_default())
}

fn webhook_from_row(row: &AnyRow) -> Result<Webhook, CatalogError> {
    let dataset: String = row.try_get("dataset")?;
    let max_attempts: i64 = row.try_get("max_attempts")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        dataset: dataset.parse()?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        client_id: row.try_get("client_id")?,
        member: row.try_get("member")?,
        subsystem: row.try_get("subsystem")?,
        max_attempts: u32::try_from(max_attempts).unwrap_or(1),
        cursor_version: row.try_get("cursor_version")?,
        created_at: time(row, "created_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, CatalogError> {
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempts")?;
    let delivered_at: Option<String> = row.try_get("delivered_at")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        dataset: row.try_get("dataset")?,
        from_version: row.try_get("from_version")?,
        to_version: row.try_get("to_version")?,
        status: DeliveryStatus::parse(&status)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: time(row, "next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: time(row, "created_at")?,
        delivered_at: delivered_at.as_deref().and_then(parse_timestamp),
    })
}

impl StateStore {
    /// Stores a new subscription.
    pub async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), CatalogError> {
        sqlx::query(&format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&webhook.id)
        .bind(webhook.dataset.to_string())
        .bind(&webhook.url)
        .bind(&webhook.secret)
        .bind(&webhook.client_id)
        .bind(&webhook.member)
        .bind(&webhook.subsystem)
        .bind(i64::from(webhook.max_attempts))
        .bind(webhook.cursor_version)
        .bind(timestamp(webhook.created_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One subscription that was not deleted.
    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| webhook_from_row(&r)).transpose()
    }

    /// Subscriptions that were not deleted, of one client or all.
    pub async fn webhooks(&self, client_id: Option<&str>) -> Result<Vec<Webhook>, CatalogError> {
        let rows = match client_id {
            Some(client) => {
                sqlx::query(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_at IS NULL AND client_id = $1 ORDER BY created_at, id"
                ))
                .bind(client)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_at IS NULL ORDER BY created_at, id"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(webhook_from_row).collect()
    }

    /// Deletes a subscription; its pending deliveries stop. Returns whether it existed.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, CatalogError> {
        let done =
            sqlx::query("UPDATE webhooks SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(timestamp(Utc::now()))
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands versions `cursor + 1 ..= to_version` to a new delivery and moves the cursor, in
    /// one transaction; returns the delivery, or `None` if another dispatcher moved it first.
    pub async fn open_delivery(
        &self,
        webhook: &Webhook,
        to_version: i64,
    ) -> Result<Option<Delivery>, CatalogError> {
        let now = Utc::now();
        let mut tx = self.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE webhooks SET cursor_version = $3 WHERE id = $1 AND cursor_version = $2 AND deleted_at IS NULL",
        )
        .bind(&webhook.id)
        .bind(webhook.cursor_version)
        .bind(to_version)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(None);
        }
        let delivery = Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            webhook_id: webhook.id.clone(),
            dataset: webhook.dataset.to_string(),
            from_version: webhook.cursor_version + 1,
            to_version,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, NULL)"
        ))
        .bind(&delivery.id)
        .bind(&delivery.webhook_id)
        .bind(&delivery.dataset)
        .bind(delivery.from_version)
        .bind(delivery.to_version)
        .bind(delivery.status.as_str())
        .bind(0_i64)
        .bind(timestamp(now))
        .bind(timestamp(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(delivery))
    }

    /// Pending deliveries whose attempt is due, oldest first.
    pub async fn due_deliveries(&self, limit: i64) -> Result<Vec<Delivery>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT {limit}"
        ))
        .bind(timestamp(Utc::now()))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Takes a due delivery for one attempt: its next attempt moves to `lease_until`, so no
    /// other dispatcher takes it meanwhile. Returns whether this call took it.
    pub async fn claim_delivery(
        &self,
        delivery: &Delivery,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 \
             WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2",
        )
        .bind(&delivery.id)
        .bind(timestamp(delivery.next_attempt_at))
        .bind(timestamp(lease_until))
        .execute(self.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Records how an attempt ended.
    pub async fn record_attempt(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
    ) -> Result<(), CatalogError> {
        let now = timestamp(Utc::now());
        let query = match outcome {
            AttemptOutcome::Delivered { status } => sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
                 last_status = $2, last_error = NULL, delivered_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(i64::from(*status))
            .bind(now),
            AttemptOutcome::Failed {
                status,
                error,
                retry_at,
            } => sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_status = $3, \
                 last_error = $4, next_attempt_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(if retry_at.is_some() { "pending" } else { "dead" })
            .bind(status.map(i64::from))
            .bind(error.clone())
            .bind(retry_at.map_or(now, timestamp)),
        };
        query.execute(self.pool()).await?;
        Ok(())
    }

    /// One delivery.
    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| delivery_from_row(&r)).transpose()
    }

    /// A subscription's deliveries, newest first, of one status or all.
    pub async fn deliveries(
        &self,
        webhook_id: &str,
        status: Option<DeliveryStatus>,
    ) -> Result<Vec<Delivery>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
             AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id DESC LIMIT 1000"
        ))
        .bind(webhook_id)
        .bind(status.map_or("", DeliveryStatus::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Queues a delivery again, whatever its state, with its attempts reset. Returns whether
    /// it exists.
    pub async fn redeliver(&self, id: &str) -> Result<bool, CatalogError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
