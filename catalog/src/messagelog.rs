//! The message log: one record per bus exchange (publish, change-feed read, webhook
//! delivery, federation pull), metadata only, hash-chained and sealed in signed batches.
//!
//! Record `n` stores `hash = SHA-256(prev_hash "\n" canonical(record))`, where `prev_hash` is
//! record `n-1`'s hash (64 zeros for the first). Each written batch ends with a seal: the
//! hub's Ed25519 signature over the last record's hash. [`verify`] walks the whole chain and
//! names the first record that does not fit.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::CatalogError;
use crate::signing::{PublicKey, Signature, verify_with};
use crate::state::{StateStore, timestamp};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One exchange, before it is chained.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MessageEntry {
    /// The exchange's id (a publish's receipt carries it).
    pub message_id: String,
    /// When the exchange ended.
    pub at: DateTime<Utc>,
    /// `publish`, `changes`, `webhook` or `federation`.
    pub service: String,
    /// The API client, when a client called.
    pub client_id: Option<String>,
    /// The other side when the hub called out: a webhook URL or a peer hub.
    pub peer: Option<String>,
    /// The dataset.
    pub dataset: Option<String>,
    /// The Delta version written, or the last one read.
    pub version: Option<i64>,
    /// Bytes received.
    pub request_bytes: u64,
    /// Bytes sent.
    pub response_bytes: u64,
    /// The HTTP status answered or received (0 when no answer came).
    pub status: u16,
    /// SHA-256 of the payload, hex.
    pub payload_sha256: Option<String>,
    /// A JSON object with what else matters (rows, versions read, errors).
    pub detail: serde_json::Value,
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggedMessage {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The exchange's id.
    pub message_id: String,
    /// When, as stored (fixed-width RFC 3339).
    pub at: String,
    /// The service.
    pub service: String,
    /// The API client.
    pub client_id: Option<String>,
    /// The other side.
    pub peer: Option<String>,
    /// The dataset.
    pub dataset: Option<String>,
    /// The version.
    pub version: Option<i64>,
    /// Bytes received.
    pub request_bytes: i64,
    /// Bytes sent.
    pub response_bytes: i64,
    /// The status.
    pub status: i64,
    /// The payload's hash.
    pub payload_sha256: Option<String>,
    /// The detail object, as stored text.
    pub detail: String,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl LoggedMessage {
    /// Chains `entry` after a record with `prev_hash` at position `seq - 1`.
    pub fn chain(seq: i64, entry: &MessageEntry, prev_hash: &str) -> Self {
        let mut record = Self {
            seq,
            message_id: entry.message_id.clone(),
            at: timestamp(entry.at),
            service: entry.service.clone(),
            client_id: entry.client_id.clone(),
            peer: entry.peer.clone(),
            dataset: entry.dataset.clone(),
            version: entry.version,
            request_bytes: i64::try_from(entry.request_bytes).unwrap_or(i64::MAX),
            response_bytes: i64::try_from(entry.response_bytes).unwrap_or(i64::MAX),
            status: i64::from(entry.status),
            payload_sha256: entry.payload_sha256.clone(),
            detail: entry.detail.to_string(),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        record
    }

    /// The hash this record's fields and `prev_hash` give.
    pub fn computed_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.message_id,
            self.at,
            self.service,
            self.client_id,
            self.peer,
            self.dataset,
            self.version,
            self.request_bytes,
            self.response_bytes,
            self.status,
            self.payload_sha256,
            self.detail,
        ]);
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.to_string().as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// The hub's signature over the chain at the end of one batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seal {
    /// The batch's first record.
    pub first_seq: i64,
    /// The batch's last record.
    pub last_seq: i64,
    /// The last record's hash.
    pub hash: String,
    /// The signature over [`seal_bytes`].
    pub signature: Signature,
    /// When it was sealed.
    pub sealed_at: String,
}

/// The bytes a seal signs.
pub fn seal_bytes(first_seq: i64, last_seq: i64, hash: &str) -> Vec<u8> {
    format!("simpul-messagelog-seal-v1\n{first_seq}\n{last_seq}\n{hash}").into_bytes()
}

/// What a verification found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Seals checked.
    pub seals: u64,
    /// Records after the last seal (written, not yet sealed: the hub was stopped mid-batch).
    pub unsealed: u64,
    /// The first record or seal that does not fit; `None` when the whole log holds.
    pub broken: Option<Broken>,
}

/// A published message that the log and the lake do not agree on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    /// The message id.
    pub message_id: String,
    /// The dataset.
    pub dataset: String,
    /// What is missing or does not match.
    pub reason: String,
}

/// What the completeness check found: every message a lake commit names has its log
/// record at that version, and every publish record points at a commit that names it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CompletenessReport {
    /// Datasets whose commits were read.
    pub datasets: u64,
    /// Commits that name published messages.
    pub commits: u64,
    /// Published messages named by the lake's commits.
    pub messages: u64,
    /// Every disagreement found.
    pub gaps: Vec<Gap>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, Serialize)]
pub struct Broken {
    /// The record's position (for a seal, its last record).
    pub seq: i64,
    /// The record's message id, if the record exists.
    pub message_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Walks the chain in order: each record's `prev_hash` must be the previous record's hash,
/// its hash must match its fields, positions must have no gaps, and every seal must cover the
/// records since the previous seal and carry a valid signature by a published key.
pub struct Verifier<'a> {
    keys: &'a [PublicKey],
    seals: std::iter::Peekable<std::vec::IntoIter<Seal>>,
    prev_hash: String,
    next_seq: i64,
    next_seal_first: i64,
    report: VerifyReport,
}

impl<'a> Verifier<'a> {
    /// A verifier over `seals` (in order of `last_seq`) with the hub's published `keys`.
    pub fn new(keys: &'a [PublicKey], seals: Vec<Seal>) -> Self {
        Self {
            keys,
            seals: seals.into_iter().peekable(),
            prev_hash: GENESIS_HASH.to_string(),
            next_seq: 1,
            next_seal_first: 1,
            report: VerifyReport::default(),
        }
    }

    /// Checks the next record; `false` once the chain is broken.
    pub fn check(&mut self, record: &LoggedMessage) -> bool {
        if self.report.broken.is_some() {
            return false;
        }
        let broken = |reason: String| Broken {
            seq: record.seq,
            message_id: Some(record.message_id.clone()),
            reason,
        };
        let problem = if record.seq != self.next_seq {
            Some(format!(
                "expected record {} here, found record {}: records are missing or out of place",
                self.next_seq, record.seq
            ))
        } else if record.prev_hash != self.prev_hash {
            Some("its prev_hash is not the previous record's hash: a record before it was changed, removed or inserted".to_string())
        } else if record.computed_hash() != record.hash {
            Some("its fields do not give its hash: the record was changed".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            self.report.broken = Some(broken(reason));
            return false;
        }
        self.report.records += 1;
        self.prev_hash = record.hash.clone();
        self.next_seq += 1;
        if let Some(seal) = self.seals.next_if(|s| s.last_seq == record.seq) {
            if let Some(reason) = self.seal_problem(&seal, record) {
                self.report.broken = Some(broken(reason));
                return false;
            }
            self.report.seals += 1;
            self.next_seal_first = record.seq + 1;
        }
        true
    }

    fn seal_problem(&self, seal: &Seal, record: &LoggedMessage) -> Option<String> {
        if seal.first_seq != self.next_seal_first {
            return Some(format!(
                "the seal ending here starts at record {}, but the previous seal ended at record {}",
                seal.first_seq,
                self.next_seal_first - 1
            ));
        }
        if seal.hash != record.hash {
            return Some("the seal ending here signs another hash: the record was replaced".into());
        }
        if !verify_with(
            self.keys,
            &seal_bytes(seal.first_seq, seal.last_seq, &seal.hash),
            &seal.signature,
        ) {
            return Some(format!(
                "the seal ending here does not verify under hub key {}",
                seal.signature.key_id
            ));
        }
        None
    }

    /// The report, once every record was checked.
    pub fn finish(mut self) -> VerifyReport {
        if self.report.broken.is_none()
            && let Some(seal) = self.seals.next()
        {
            self.report.broken = Some(Broken {
                seq: seal.last_seq,
                message_id: None,
                reason: format!(
                    "a seal covers records {} to {}, which the log does not hold: records were removed from its end",
                    seal.first_seq, seal.last_seq
                ),
            });
        }
        self.report.unsealed = u64::try_from(self.next_seq - self.next_seal_first).unwrap_or(0);
        self.report
    }
}

const LOG_COLUMNS: &str = "seq, message_id, at, service, client_id, peer, dataset, version, \
     request_bytes, response_bytes, status, payload_sha256, detail, prev_hash, hash";

fn logged_from_row(row: &AnyRow) -> Result<LoggedMessage, CatalogError> {
    Ok(LoggedMessage {
        seq: row.try_get("seq")?,
        message_id: row.try_get("message_id")?,
        at: row.try_get("at")?,
        service: row.try_get("service")?,
        client_id: row.try_get("client_id")?,
        peer: row.try_get("peer")?,
        dataset: row.try_get("dataset")?,
        version: row.try_get("version")?,
        request_bytes: row.try_get("request_bytes")?,
        response_bytes: row.try_get("response_bytes")?,
        status: row.try_get("status")?,
        payload_sha256: row.try_get("payload_sha256")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl StateStore {
    /// The last record's position and hash, where the next batch chains on.
    pub async fn message_log_tail(&self) -> Result<(i64, String), CatalogError> {
        let row = sqlx::query("SELECT seq, hash FROM message_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok((row.try_get("seq")?, row.try_get("hash")?)),
            None => Ok((0, GENESIS_HASH.to_string())),
        }
    }

    /// Stores a chained batch and its seal in one transaction.
    pub async fn append_message_log(
        &self,
        records: &[LoggedMessage],
        seal: &Seal,
    ) -> Result<(), CatalogError> {
        const COLUMNS: usize = 15;
        const ROWS_PER_STATEMENT: usize = 60;
        let mut tx = self.pool().begin().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO message_log ({LOG_COLUMNS}) VALUES {}",
                self.values_placeholders(chunk.len(), COLUMNS)
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.seq)
                    .bind(r.message_id.clone())
                    .bind(r.at.clone())
                    .bind(r.service.clone())
                    .bind(r.client_id.clone())
                    .bind(r.peer.clone())
                    .bind(r.dataset.clone())
                    .bind(r.version)
                    .bind(r.request_bytes)
                    .bind(r.response_bytes)
                    .bind(r.status)
                    .bind(r.payload_sha256.clone())
                    .bind(r.detail.clone())
                    .bind(r.prev_hash.clone())
                    .bind(r.hash.clone());
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO message_log_seals (last_seq, first_seq, hash, key_id, signature, sealed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seal.last_seq)
        .bind(seal.first_seq)
        .bind(&seal.hash)
        .bind(&seal.signature.key_id)
        .bind(&seal.signature.signature)
        .bind(&seal.sealed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` records from position `after + 1` on, in order.
    pub async fn message_log_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedMessage>, CatalogError> {
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM message_log WHERE seq > $1 ORDER BY seq LIMIT {limit}"
        );
        let rows = sqlx::query(&sql).bind(after).fetch_all(self.pool()).await?;
        rows.iter().map(logged_from_row).collect()
    }

    /// Every seal, in chain order.
    pub async fn message_log_seals(&self) -> Result<Vec<Seal>, CatalogError> {
        let rows = sqlx::query(
            "SELECT last_seq, first_seq, hash, key_id, signature, sealed_at FROM message_log_seals ORDER BY last_seq",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Seal {
                    first_seq: row.try_get("first_seq")?,
                    last_seq: row.try_get("last_seq")?,
                    hash: row.try_get("hash")?,
                    signature: Signature {
                        key_id: row.try_get("key_id")?,
                        signature: row.try_get("signature")?,
                    },
                    sealed_at: row.try_get("sealed_at")?,
                })
            })
            .collect()
    }

    /// Checks the whole log against the published keys, reading it in pages.
    pub async fn verify_message_log(&self) -> Result<VerifyReport, CatalogError> {
        const PAGE: i64 = 10_000;
        let keys = self.hub_keys().await?;
        let seals = self.message_log_seals().await?;
        let mut verifier = Verifier::new(&keys, seals);
        let mut after = 0;
        loop {
            let page = self.message_log_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                if !verifier.check(record) {
                    return Ok(verifier.finish());
                }
            }
        }
        Ok(verifier.finish())
    }
}

impl StateStore {
    /// Whether the log holds the publish record of `message_id` (not a replay's).
    pub async fn message_log_has_publish(&self, message_id: &str) -> Result<bool, CatalogError> {
        let row = sqlx::query(
            "SELECT 1 FROM message_log WHERE message_id = $1 AND service = 'publish' LIMIT 1",
        )
        .bind(message_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

/// A message's publish record as the completeness check needs it.
struct PublishRecord {
    dataset: String,
    version: Option<i64>,
}

impl crate::Catalog {
    /// Checks that the message log is complete against the lake: every message id that a
    /// dataset's commits name (their `messages` metadata, written by the bus's group commit)
    /// has its publish record, at the commit's version for a data commit, and every
    /// publish record (replays aside) is named by its dataset's commit at its version, or
    /// by a rejects commit when none of its records was valid.
    pub async fn check_message_log_completeness(&self) -> Result<CompletenessReport, CatalogError> {
        use std::collections::{BTreeSet, HashMap};

        use crate::LakeTable;

        let rows = sqlx::query(
            "SELECT message_id, dataset, version, detail FROM message_log WHERE service = 'publish'",
        )
        .fetch_all(self.state.pool())
        .await?;
        let mut records: HashMap<String, PublishRecord> = HashMap::with_capacity(rows.len());
        for row in rows {
            let detail: String = row.try_get("detail")?;
            let replay = serde_json::from_str::<serde_json::Value>(&detail)
                .ok()
                .is_some_and(|d| d.get("replay_of").is_some());
            if replay {
                continue;
            }
            records.insert(
                row.try_get("message_id")?,
                PublishRecord {
                    dataset: row
                        .try_get::<Option<String>, _>("dataset")?
                        .unwrap_or_default(),
                    version: row.try_get("version")?,
                },
            );
        }
        let ids = self.state.dataset_ids().await?;
        let mut report = CompletenessReport::default();
        let mut named: BTreeSet<String> = BTreeSet::new();
        for dataset in ids {
            let id = dataset.to_string();
            report.datasets += 1;
            for table in [
                LakeTable::Data(dataset.clone()),
                LakeTable::Rejects(dataset),
            ] {
                if self.lake.load(&table).await?.is_none() {
                    continue;
                }
                let data = matches!(table, LakeTable::Data(_));
                for commit in self.lake.history(&table, None).await? {
                    let Some(messages) = commit.simpul.get("messages").and_then(|m| m.as_array())
                    else {
                        continue;
                    };
                    report.commits += 1;
                    for message in messages.iter().filter_map(|m| m.as_str()) {
                        if named.insert(message.to_string()) {
                            report.messages += 1;
                        }
                        let gap = |reason: String| Gap {
                            message_id: message.to_string(),
                            dataset: id.clone(),
                            reason,
                        };
                        match records.get(message) {
                            None => report.gaps.push(gap(format!(
                                "{} version {} holds it, but the message log has no record of it",
                                table.qualified_name(),
                                commit.version
                            ))),
                            Some(record) if record.dataset != id => report.gaps.push(gap(format!(
                                "its log record names dataset {}, not {id}",
                                record.dataset
                            ))),
                            Some(record) if data && record.version != Some(commit.version) => {
                                report.gaps.push(gap(format!(
                                    "its rows are in version {}, but its log record says {:?}",
                                    commit.version, record.version
                                )))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        for (message, record) in &records {
            if !named.contains(message) {
                report.gaps.push(Gap {
                    message_id: message.clone(),
                    dataset: record.dataset.clone(),
                    reason: format!(
                        "logged as published{}, but no commit of {} names it",
                        record
                            .version
                            .map(|v| format!(" at version {v}"))
                            .unwrap_or_default(),
                        record.dataset
                    ),
                });
            }
        }
        report
            .gaps
            .sort_by(|a, b| (&a.dataset, &a.message_id).cmp(&(&b.dataset, &b.message_id)));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> MessageEntry {
        MessageEntry {
            message_id: format!("m{n}"),
            at: Utc::now(),
            service: "publish".into(),
            client_id: Some("c".into()),
            peer: None,
            dataset: Some("a.b".into()),
            version: Some(n as i64),
            request_bytes: n,
            response_bytes: 10,
            status: 200,
            payload_sha256: None,
            detail: serde_json::json!({"rows": n}),
        }
    }

    fn chain(n: u64) -> Vec<LoggedMessage> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|i| {
                let record = LoggedMessage::chain(i as i64, &entry(i), &prev);
                prev = record.hash.clone();
                record
            })
            .collect()
    }

    fn verify(records: &[LoggedMessage]) -> VerifyReport {
        let mut verifier = Verifier::new(&[], Vec::new());
        for record in records {
            if !verifier.check(record) {
                break;
            }
        }
        verifier.finish()
    }

    #[test]
    fn an_intact_chain_verifies_and_counts_unsealed_records() {
        let report = verify(&chain(5));
        assert!(report.broken.is_none());
        assert_eq!((report.records, report.unsealed), (5, 5));
    }

    #[test]
    fn a_changed_removed_or_reordered_record_is_named() {
        let mut changed = chain(5);
        changed[2].response_bytes = 11;
        assert_eq!(verify(&changed).broken.unwrap().seq, 3);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed).broken.unwrap().seq, 3);

        // Rehashing a changed record does not help: the next record's prev_hash breaks.
        let mut rehashed = chain(5);
        rehashed[1].status = 500;
        rehashed[1].hash = rehashed[1].computed_hash();
        let broken = verify(&rehashed).broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert_eq!(broken.message_id.as_deref(), Some("m3"));
    }
}
