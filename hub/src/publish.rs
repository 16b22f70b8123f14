//! Bus publishes and their group commit.
//!
//! Each publish is validated by its own request. Its rows then queue for the dataset's
//! committer, one task per dataset, which lands everything that queued while its previous
//! commit ran (up to `bus.group_commit_max_rows`) as one Delta commit: rejects first, then
//! the rows (appended, or merged by primary key for `upsert` datasets). Only once that
//! version is on disk and the exchanges are in the message log does each publisher get its
//! signed receipt. Under load, many publishes share one commit; alone, a publish waits for
//! nobody.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use simpul_catalog::{
    Catalog, CatalogError, CommitOptions, DatasetId, DatasetMeta, IdempotencyClaim, KeyClaim, Lake,
    LakeTable, MessageEntry, PublishMode, Receipt, SchemaBinding, Signature, Signed, Signer,
    StateStore, WriteMode, timestamp,
};
use simpul_pipelines::{
    CheckedRecords, Landing, REJECTS_PERSONAL, Rows, rejects_batch, rejects_schema,
};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::messagelog::MessageLog;

/// A dataset's small files (the group commits' own) are compacted once its table holds
/// this many. Publishes wait during a compaction, and replaying a version costs in proportion
/// to the files: 64 rather than 256 took the p99 of single-record publishes under 100 ms
/// (BENCHMARKS.md).
const COMPACT_AT_SMALL_FILES: usize = 64;

/// Publishes waiting for one dataset's committer at most; past this, publishers wait.
const QUEUE: usize = 4_096;
/// How long a committer waits at most, once a group's first publish is in, for as many
/// publishes as the larger of the last two groups held. Right after a commit its
/// publishers' next publishes arrive over a few milliseconds (each is authenticated, claimed
/// and validated first); without the wait, the first of them commits alone and the rest
/// wait for that commit, so with 50 clients groups alternated 1, 49, 1, 49. A publish alone
/// waits for nobody (the last groups held one publish), and when publishers go away the
/// expected size follows within two groups. 10 ms: a sweep in BENCHMARKS.md.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// Idempotency keys claimed in one state-store transaction at most.
const CLAIM_BATCH: usize = 512;

/// One validated publish, ready for the group commit.
#[derive(Debug)]
pub struct PublishRequest {
    /// The exchange's id.
    pub message_id: String,
    /// The API client that published.
    pub client_id: String,
    /// SHA-256 of the request body, hex.
    pub payload_sha256: String,
    /// Bytes of the request body.
    pub request_bytes: u64,
    /// The request's idempotency key as stored (`bus:` + the header's value), under which the
    /// committer stores the answer.
    pub idempotency_key: String,
    /// The checked records.
    pub records: CheckedRecords,
    /// Why each refused record was refused, as the answer lists them.
    pub reasons: Vec<serde_json::Value>,
}

/// A publish's answer: `200` with the receipt and the reasons of any refused records, or
/// `422` when no record was valid. Stored whole under the idempotency key.
#[derive(Debug, Clone)]
pub struct Published {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The signed receipt (also in the body).
    pub receipt: Receipt,
}

impl Published {
    pub(crate) fn new(receipt: Receipt, reasons: &[serde_json::Value]) -> Self {
        if receipt.accepted == 0 {
            let mut body = crate::api::ApiError::unprocessable(format!(
                "none of the {} records is valid for {}; every reason is listed, and the records are kept in the rejects",
                receipt.rejected, receipt.dataset
            ))
            .problem();
            body.insert("reasons".into(), serde_json::json!(reasons));
            body.insert("receipt".into(), serde_json::json!(receipt));
            Self {
                status: 422,
                body: serde_json::Value::Object(body),
                receipt,
            }
        } else {
            let body = serde_json::json!({ "receipt": receipt, "reasons": reasons });
            Self {
                status: 200,
                body,
                receipt,
            }
        }
    }
}

struct Job {
    request: PublishRequest,
    reply: oneshot::Sender<Result<Published, String>>,
}

struct PendingClaim {
    claim: KeyClaim,
    reply: oneshot::Sender<Result<IdempotencyClaim, String>>,
}

/// Claims publishes' idempotency keys: one task that claims every key that queued while its
/// last transaction ran in one transaction, so concurrent publishes do not queue for the
/// state store's write lock one by one.
fn start_claimer(state: StateStore) -> mpsc::Sender<PendingClaim> {
    let (tx, mut rx) = mpsc::channel::<PendingClaim>(QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(CLAIM_BATCH);
        while rx.recv_many(&mut batch, CLAIM_BATCH).await > 0 {
            let (claims, replies): (Vec<KeyClaim>, Vec<_>) =
                batch.drain(..).map(|p| (p.claim, p.reply)).unzip();
            match state.claim_idempotency_keys(&claims).await {
                Ok(answers) => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(e) => {
                    // Nothing was claimed: every publisher in the batch gets the error.
                    let message = format!("cannot claim the idempotency key: {e}");
                    for reply in replies {
                        let _ = reply.send(Err(message.clone()));
                    }
                }
            }
        }
    });
    tx
}

/// The publish side of the bus: one committer per dataset.
pub struct Publisher {
    catalog: Arc<Catalog>,
    signer: Arc<Signer>,
    log: MessageLog,
    max_rows: u64,
    queues: Mutex<HashMap<DatasetId, mpsc::Sender<Job>>>,
    claims: mpsc::Sender<PendingClaim>,
    /// Woken after every commit, for the webhook dispatcher.
    pub committed: Arc<Notify>,
}

impl Publisher {
    /// A publisher whose groups hold at most `max_rows` rows. Starts its key claimer on the
    /// current runtime.
    pub fn new(catalog: Arc<Catalog>, signer: Arc<Signer>, log: MessageLog, max_rows: u64) -> Self {
        Self {
            claims: start_claimer(catalog.state.clone()),
            catalog,
            signer,
            log,
            max_rows: max_rows.max(1),
            queues: Mutex::new(HashMap::new()),
            committed: Arc::new(Notify::new()),
        }
    }

    /// Claims a publish's idempotency key (see
    /// [`simpul_catalog::StateStore::claim_idempotency_keys`]) together with the other
    /// publishes claiming theirs at the same moment.
    pub async fn claim(&self, claim: KeyClaim) -> Result<IdempotencyClaim, String> {
        let (reply, answer) = oneshot::channel();
        if self
            .claims
            .send(PendingClaim { claim, reply })
            .await
            .is_err()
        {
            return Err("the idempotency key claimer stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the idempotency key claimer stopped before answering".into()))
    }

    /// Queues `request` for `dataset`'s next group commit and waits for its answer.
    pub async fn publish(
        &self,
        dataset: &DatasetId,
        request: PublishRequest,
    ) -> Result<Published, String> {
        let (reply, receipt) = oneshot::channel();
        let queue = self.queue(dataset);
        if queue.send(Job { request, reply }).await.is_err() {
            return Err(format!("the committer of {dataset} stopped"));
        }
        receipt.await.unwrap_or_else(|_| {
            Err(format!(
                "the committer of {dataset} stopped before answering"
            ))
        })
    }

    fn queue(&self, dataset: &DatasetId) -> mpsc::Sender<Job> {
        let mut queues = match self.queues.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(queue) = queues.get(dataset).filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let committer = Committer {
            catalog: self.catalog.clone(),
            signer: self.signer.clone(),
            log: self.log.clone(),
            dataset: dataset.clone(),
            max_rows: self.max_rows,
            committed: self.committed.clone(),
        };
        tokio::spawn(committer.run(rx));
        queues.insert(dataset.clone(), tx.clone());
        tx
    }
}

/// The columns an `upsert` dataset is keyed by: its schema's `x-primary-key`.
pub async fn upsert_keys(catalog: &Catalog, meta: &DatasetMeta) -> Result<Vec<String>, String> {
    let Some(schema_ref) = &meta.schema_ref else {
        return Err(format!(
            "{} has no canonical schema, so no primary key to upsert by; bind it to a schema with x-primary-key",
            meta.id
        ));
    };
    let binding = SchemaBinding::parse(schema_ref).map_err(|e| e.to_string())?;
    let compiled = catalog
        .schemas
        .resolve(&catalog.state, &binding)
        .await
        .map_err(|e| e.to_string())?;
    let keys: Vec<String> = compiled
        .primary_key
        .iter()
        .map(|&i| compiled.properties[i].name.clone())
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "schema {binding} of {} has no x-primary-key to upsert by",
            meta.id
        ));
    }
    Ok(keys)
}

/// One commit's group: `first`, everything queued behind it, and, while the group holds
/// fewer than `expected` items, what arrives until `linger_until` (the publishes of the
/// last groups' publishers that are still on their way). The group stops short of
/// `max_rows` rows (as `rows` counts them, `first` always in); the item that would pass
/// it is handed back to start the next group.
async fn gather<T>(
    rx: &mut mpsc::Receiver<T>,
    first: T,
    rows: impl Fn(&T) -> u64,
    expected: usize,
    max_rows: u64,
    linger_until: tokio::time::Instant,
) -> (Vec<T>, Option<T>) {
    let mut total = rows(&first);
    let mut group = vec![first];
    while total < max_rows {
        let item = match rx.try_recv() {
            Ok(item) => item,
            Err(_) if group.len() < expected => {
                match tokio::time::timeout_at(linger_until, rx.recv()).await {
                    Ok(Some(item)) => item,
                    Ok(None) | Err(_) => break,
                }
            }
            Err(_) => break,
        };
        if total + rows(&item) > max_rows {
            return (group, Some(item));
        }
        total += rows(&item);
        group.push(item);
    }
    (group, None)
}

struct Committer {
    catalog: Arc<Catalog>,
    signer: Arc<Signer>,
    log: MessageLog,
    dataset: DatasetId,
    max_rows: u64,
    committed: Arc<Notify>,
}

impl Committer {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut waiting: Option<Job> = None;
        // The sizes of the last two groups: how many publishers are at work.
        let mut recent = [1usize; 2];
        loop {
            let first = match waiting.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let expected = recent[0].max(recent[1]);
            let gathering = tokio::time::Instant::now();
            let (group, next) = gather(
                &mut rx,
                first,
                |job| job.request.records.records_read,
                expected,
                self.max_rows,
                gathering + LINGER,
            )
            .await;
            waiting = next;
            recent = [recent[1], group.len()];
            if let Some(files) = self.commit_group(group, gathering.elapsed()).await
                && files >= COMPACT_AT_SMALL_FILES
            {
                // Publishes queue meanwhile and join the next group.
                if let Err(e) = self.catalog.compact(&self.dataset).await {
                    tracing::warn!(dataset = %self.dataset, error = %e, "cannot compact the dataset's files");
                }
            }
        }
    }

    /// Commits one group, gathered in `gathered`, and answers its publishers; returns the data
    /// table's count of small files after the commit.
    async fn commit_group(&self, group: Vec<Job>, gathered: std::time::Duration) -> Option<usize> {
        let started = std::time::Instant::now();
        let (jobs, replies): (Vec<PublishRequest>, Vec<_>) =
            group.into_iter().map(|j| (j.request, j.reply)).unzip();
        let mut rejects_landed = false;
        let outcome = match self.record_intents(&jobs).await {
            Ok(()) => {
                simpul_pipelines::fault::point("bus.before_commit");
                self.land(&jobs, &mut rejects_landed).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((version, files)) => {
                simpul_pipelines::fault::point("bus.after_commit");
                let landed = started.elapsed();
                let committed_at = timestamp(Utc::now());
                let mut entries = Vec::with_capacity(jobs.len());
                let mut answers = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    let receipt = self.receipt(job, version, &committed_at);
                    entries.push(publish_entry(
                        &job.client_id,
                        job.request_bytes,
                        &job.idempotency_key,
                        &receipt,
                    ));
                    answers.push(Published::new(receipt, &job.reasons));
                }
                self.log.record_all(entries).await;
                // The answers are stored under their keys in one transaction: a retry from
                // now on gets the same answer. Should this fail, the keys stay claimed by this
                // process (a retry gets 409) until it stops; recovery then answers them from
                // the commit. Nothing is applied twice.
                let completed: Vec<(String, String, u16, String)> = jobs
                    .iter()
                    .zip(&answers)
                    .map(|(job, answer)| {
                        (
                            job.client_id.clone(),
                            job.idempotency_key.clone(),
                            answer.status,
                            answer.body.to_string(),
                        )
                    })
                    .collect();
                if let Err(e) = self
                    .catalog
                    .state
                    .complete_idempotency_keys(&completed)
                    .await
                {
                    tracing::error!(dataset = %self.dataset, error = %e, "cannot store publish answers under their idempotency keys");
                }
                tracing::debug!(
                    dataset = %self.dataset,
                    publishes = jobs.len(),
                    gathered_ms = gathered.as_millis() as u64,
                    land_ms = landed.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "group commit"
                );
                metrics::histogram!("simpul_bus_group_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("simpul_bus_group_size").record(jobs.len() as f64);
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
                self.committed.notify_waiters();
                files
            }
            Err(e) => {
                tracing::error!(dataset = %self.dataset, error = %e, publishes = jobs.len(), "group commit failed");
                if rejects_landed {
                    // The refused records are kept; the log accounts for the attempt.
                    let entries = jobs
                        .iter()
                        .filter(|job| !job.records.rejected.is_empty())
                        .map(|job| {
                            abandoned_entry(
                                &job.client_id,
                                &self.dataset,
                                &PublishIntent::of(job),
                                &job.idempotency_key,
                                &format!("the data commit failed after the rejects commit: {e}"),
                            )
                        })
                        .collect();
                    self.log.record_all(entries).await;
                }
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
                None
            }
        }
    }

    /// Stores each publish's intent under its key before the lake commit, in one
    /// transaction; fails (and the group commits nothing) when a key is no longer held.
    async fn record_intents(&self, jobs: &[PublishRequest]) -> Result<(), CatalogError> {
        let intents: Vec<(String, String, serde_json::Value)> = jobs
            .iter()
            .map(|job| {
                let mut intent = PublishIntent::of(job);
                intent.dataset = self.dataset.to_string();
                let intent = serde_json::to_value(intent).unwrap_or_default();
                (job.client_id.clone(), job.idempotency_key.clone(), intent)
            })
            .collect();
        self.catalog
            .state
            .record_idempotency_intents(&intents)
            .await
    }

    /// Commits the group's rejects, then its rows; returns the data version (`None` when no
    /// row was valid) and the data table's count of small files.
    async fn land(
        &self,
        jobs: &[PublishRequest],
        rejects_landed: &mut bool,
    ) -> Result<(Option<i64>, Option<usize>), CatalogError> {
        let lake = &self.catalog.lake;
        let messages: Vec<&str> = jobs.iter().map(|j| j.message_id.as_str()).collect();
        let mut metadata = serde_json::Map::new();
        metadata.insert("source".into(), "bus publish".into());
        metadata.insert("messages".into(), serde_json::json!(messages));
        let now = Utc::now();
        let meta = self.catalog.dataset(&self.dataset).await?;
        // Publishes were checked against the schema as last loaded; they land only on a
        // table that still has it. Checked before anything is committed.
        let data_table = LakeTable::Data(self.dataset.clone());
        let schema = lake.cached_schema(&data_table).await?;
        if let Some(stale) = jobs
            .iter()
            .find(|j| j.records.accepted() > 0 && Some(&j.records.table_schema) != schema.as_ref())
        {
            return Err(CatalogError::Conflict(format!(
                "the columns of {} changed while publish {} waited; publish again",
                self.dataset, stale.message_id
            )));
        }

        // The rejects commit names the messages whose records it holds, no others.
        let refused: Vec<&PublishRequest> = jobs
            .iter()
            .filter(|j| !j.records.rejected.is_empty())
            .collect();
        let rejects = if refused.is_empty() {
            None
        } else {
            let table = LakeTable::Rejects(self.dataset.clone());
            let mut writer = lake.writer(&table, rejects_schema(), &REJECTS_PERSONAL)?;
            for job in &refused {
                writer
                    .write(rejects_batch(&job.message_id, &job.records.rejected, now)?)
                    .await?;
            }
            Some(writer)
        };
        let mut rejects_metadata = metadata.clone();
        let refused: Vec<&str> = refused.iter().map(|j| j.message_id.as_str()).collect();
        rejects_metadata.insert("messages".into(), serde_json::json!(refused));

        let accepted: u64 = jobs.iter().map(|j| j.records.accepted()).sum();
        let schema = jobs[0].records.table_schema.clone();
        let personal: Vec<String> = jobs[0].records.personal.clone();
        let batches = jobs.iter().flat_map(|j| j.records.valid.iter().cloned());
        let (data, upsert_keys) = match (accepted, meta.write_mode) {
            (0, _) => (None, Vec::new()),
            (_, PublishMode::Append) => {
                let personal: Vec<&str> = personal.iter().map(String::as_str).collect();
                let mut writer = lake.writer(&data_table, schema.clone(), &personal)?;
                for batch in batches {
                    writer.write(batch).await?;
                }
                (Some(Rows::Files(Box::new(writer))), Vec::new())
            }
            (_, PublishMode::Upsert) => {
                let keys = upsert_keys(&self.catalog, &meta)
                    .await
                    .map_err(CatalogError::Invalid)?;
                (Some(Rows::Upsert(batches.collect())), keys)
            }
        };
        let landing = Landing {
            dataset: self.dataset.clone(),
            rejects,
            rejects_commit: CommitOptions {
                metadata: rejects_metadata,
                ..Default::default()
            },
            data,
            data_commit: CommitOptions {
                metadata,
                ..Default::default()
            },
            mode: WriteMode::Append,
            upsert_keys,
            table_schema: schema,
            personal,
        };
        let landed = simpul_pipelines::land(lake, landing, || *rejects_landed = true).await?;
        let rejected = match &landed.rejects {
            Some(committed) => Lake::stats(committed)?.row_count,
            None => meta.rejected_count,
        };
        let Some(committed) = landed.data else {
            let current = lake.load_existing(&data_table).await?;
            self.catalog
                .record_stats(&self.dataset, &current, rejected)
                .await?;
            return Ok((None, None));
        };
        let version = committed.version().map(|v| v as i64);
        let stats = self
            .catalog
            .record_stats(&self.dataset, &committed, rejected)
            .await?;
        Ok((version, Some(stats.small_files)))
    }

    fn receipt(&self, job: &PublishRequest, version: Option<i64>, committed_at: &str) -> Receipt {
        sign_receipt(
            &self.signer,
            &self.dataset,
            &PublishIntent::of(job),
            version,
            committed_at,
        )
    }
}

/// What a publish is about to commit, stored under its idempotency key before the group's
/// lake commit. Should the process die, recovery finds the commit that names the message
/// and gives the key the answer the publisher would have had (see `crate::recovery`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PublishIntent {
    /// Always `publish`.
    pub kind: String,
    /// The dataset.
    pub dataset: String,
    /// The exchange's id, named in the commit's `messages` metadata.
    pub message_id: String,
    /// Valid records.
    pub accepted: u64,
    /// Refused records.
    pub rejected: u64,
    /// SHA-256 of the request body, hex.
    pub payload_sha256: String,
    /// Bytes of the request body.
    pub request_bytes: u64,
    /// Why each refused record was refused, as the answer lists them.
    pub reasons: Vec<serde_json::Value>,
}

impl PublishIntent {
    /// The intent's kind.
    pub const KIND: &str = "publish";

    fn of(job: &PublishRequest) -> Self {
        Self {
            kind: Self::KIND.into(),
            dataset: String::new(),
            message_id: job.message_id.clone(),
            accepted: job.records.accepted(),
            rejected: job.records.rejected.len() as u64,
            payload_sha256: job.payload_sha256.clone(),
            request_bytes: job.request_bytes,
            reasons: job.reasons.clone(),
        }
    }
}

/// A publish's signed receipt: its rows are in `version` of `dataset` (none when no record
/// was valid), committed at `committed_at`.
pub fn sign_receipt(
    signer: &Signer,
    dataset: &DatasetId,
    intent: &PublishIntent,
    version: Option<i64>,
    committed_at: &str,
) -> Receipt {
    let mut receipt = Receipt {
        message_id: intent.message_id.clone(),
        dataset: dataset.to_string(),
        version: if intent.accepted > 0 { version } else { None },
        accepted: intent.accepted,
        rejected: intent.rejected,
        rejects: format!(
            "/api/v1/datasets/{dataset}/rejects?filter[run_id]={}",
            intent.message_id
        ),
        payload_sha256: intent.payload_sha256.clone(),
        committed_at: committed_at.to_string(),
        signature: Signature {
            key_id: String::new(),
            signature: String::new(),
        },
    };
    receipt.sign(signer);
    receipt
}

/// The message-log record of a publish whose rejects commit landed and whose data commit
/// did not (status 0: no answer with a receipt came). The client's retry applies it afresh
/// under a new message id; this record accounts for the first attempt's refused records.
pub fn abandoned_entry(
    client_id: &str,
    dataset: &DatasetId,
    intent: &PublishIntent,
    idempotency_key: &str,
    reason: &str,
) -> MessageEntry {
    MessageEntry {
        message_id: intent.message_id.clone(),
        at: Utc::now(),
        service: "publish".into(),
        client_id: Some(client_id.to_string()),
        peer: None,
        dataset: Some(dataset.to_string()),
        version: None,
        request_bytes: intent.request_bytes,
        response_bytes: 0,
        status: 0,
        payload_sha256: Some(intent.payload_sha256.clone()),
        detail: serde_json::json!({
            "abandoned": true,
            "rejected": intent.rejected,
            "idempotency_key": idempotency_key.strip_prefix("bus:").unwrap_or(idempotency_key),
            "reason": reason,
        }),
    }
}

/// A publish's record in the message log.
pub fn publish_entry(
    client_id: &str,
    request_bytes: u64,
    idempotency_key: &str,
    receipt: &Receipt,
) -> MessageEntry {
    MessageEntry {
        message_id: receipt.message_id.clone(),
        at: Utc::now(),
        service: "publish".into(),
        client_id: Some(client_id.to_string()),
        peer: None,
        dataset: Some(receipt.dataset.clone()),
        version: receipt.version,
        request_bytes,
        response_bytes: 0,
        status: if receipt.accepted == 0 { 422 } else { 200 },
        payload_sha256: Some(receipt.payload_sha256.clone()),
        detail: serde_json::json!({
            "accepted": receipt.accepted,
            "rejected": receipt.rejected,
            "idempotency_key": idempotency_key.strip_prefix("bus:").unwrap_or(idempotency_key),
            "signature_key": receipt.signature.key_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn rows(n: &u64) -> u64 {
        *n
    }

    #[tokio::test]
    async fn a_group_takes_what_queued_and_no_more_when_one_was_expected() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        let started = Instant::now();
        // A long linger that must not be waited for: one publish was expected.
        let (group, next) =
            gather(&mut rx, 1, rows, 1, 100, started + Duration::from_secs(60)).await;
        assert_eq!(group, vec![1, 2, 3]);
        assert_eq!(next, None);
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_group_waits_for_the_expected_publishes_still_on_their_way() {
        let (tx, mut rx) = mpsc::channel(16);
        let sender = tokio::spawn(async move {
            for n in [2, 3] {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.send(n).await.unwrap();
            }
            // Held open: the group must end because it is full, not because the queue closed.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let started = Instant::now();
        let (group, next) =
            gather(&mut rx, 1, rows, 3, 100, started + Duration::from_secs(60)).await;
        assert_eq!(group, vec![1, 2, 3]);
        assert_eq!(next, None);
        assert!(started.elapsed() < Duration::from_secs(30));
        sender.abort();
    }

    #[tokio::test]
    async fn a_group_short_of_the_expected_size_commits_at_the_deadline() {
        let (tx, mut rx) = mpsc::channel::<u64>(16);
        let started = Instant::now();
        let (group, next) = gather(
            &mut rx,
            1,
            rows,
            50,
            100,
            started + Duration::from_millis(20),
        )
        .await;
        assert_eq!(group, vec![1]);
        assert_eq!(next, None);
        assert!(started.elapsed() >= Duration::from_millis(20));
        drop(tx);
    }

    #[tokio::test]
    async fn a_group_stops_short_of_the_row_limit_and_hands_back_the_publish_past_it() {
        let (tx, mut rx) = mpsc::channel(16);
        for n in [30, 50, 10] {
            tx.send(n).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let (group, next) = gather(&mut rx, 40, rows, 50, 100, deadline).await;
        assert_eq!(group, vec![40, 30]);
        assert_eq!(next, Some(50));
        // A first publish over the limit still commits, alone.
        let (group, next) = gather(&mut rx, 500, rows, 50, 100, deadline).await;
        assert_eq!(group, vec![500]);
        assert_eq!(next, None);
        assert_eq!(rx.try_recv().unwrap(), 10);
    }

    #[tokio::test]
    async fn a_closed_queue_ends_the_group() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(2).await.unwrap();
        drop(tx);
        let started = Instant::now();
        let (group, next) =
            gather(&mut rx, 1, rows, 50, 100, started + Duration::from_secs(60)).await;
        assert_eq!(group, vec![1, 2]);
        assert_eq!(next, None);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
