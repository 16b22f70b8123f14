//! Recovery: finishing, after a crash, the requests that span the lake and the state store.
//!
//! A request that writes the lake under an idempotency key (a bus publish, an HTTP upload)
//! claims the key as this process, stores its intent under the key (what it is about to
//! commit, and how to find that commit), commits to the lake, and only then stores its
//! answer under the key. A process that dies in between leaves the key `in_progress` with
//! its intent. Recovery, at start and every [`EVERY`] after, takes such keys over from
//! processes that are gone (or stopped renewing their leases) and settles each one:
//!
//! - its commit is in the lake: the key gets the answer the client would have had (for a
//!   publish, the same signed receipt with the version that holds its rows), the message
//!   log gets the publish's record if it lacks it, and the catalog's version and counts are
//!   brought up to the lake's;
//! - its commit is not in the lake: the key is released, so the client's retry applies the
//!   request afresh.
//!
//! Requests that write only the state store (a SEMAR call, a complaint and its steps; see
//! [`crate::idempotent`]) work the same way: the intent names the row's id, and a stored
//! row answers the retry. A key with no intent never reached its commit and is released.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use simpul_catalog::{
    CatalogError, Classification, Contract, DatasetId, LakeTable, NewDataset, OrphanedKey,
    VersionInfo, parse_timestamp, timestamp,
};

use crate::publish::{PublishIntent, Published, abandoned_entry, publish_entry, sign_receipt};
use crate::server::AppState;

/// How often leases are renewed and orphaned keys looked for.
pub const EVERY: Duration = Duration::from_secs(10);

/// What an HTTP upload under an idempotency key is about to commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestIntent {
    /// Always `ingest`.
    pub kind: String,
    /// The dataset.
    pub dataset: String,
    /// The commit's `source` metadata, which names the client and the key.
    pub source: String,
    /// Whether the upload creates the dataset.
    pub creating: bool,
    /// The catalog entry of a dataset the upload creates.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Its owner.
    pub owner: String,
    /// Its classification.
    pub classification: Classification,
    /// Its contract.
    pub contract: Contract,
}

impl IngestIntent {
    /// The intent's kind.
    pub const KIND: &str = "ingest";
}

/// What one pass settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Keys whose request had landed: they now hold its answer.
    pub answered: u64,
    /// Keys whose request had not landed: released for the retry.
    pub released: u64,
    /// Keys left alone: another process took them first, or their path has no recovery.
    pub skipped: u64,
}

/// Renews this process's leases and settles orphaned keys, every [`EVERY`], for as long as
/// the hub runs.
pub async fn run(app: AppState) {
    loop {
        tokio::time::sleep(EVERY).await;
        if let Err(e) = app.catalog.state.renew_idempotency_leases().await {
            tracing::warn!(error = %e, "cannot renew the idempotency keys' leases");
        }
        if let Err(e) = settle_orphaned_keys(&app).await {
            tracing::warn!(error = %e, "settling the idempotency keys of stopped processes failed; trying again");
        }
    }
}

/// Settles every key whose holder is gone (see the module's documentation).
pub async fn settle_orphaned_keys(app: &AppState) -> Result<Settled, CatalogError> {
    let state = &app.catalog.state;
    let mut settled = Settled::default();
    let mut touched: BTreeSet<DatasetId> = BTreeSet::new();
    for key in state.orphaned_idempotency_keys().await? {
        if !state.take_over_idempotency_key(&key).await? {
            settled.skipped += 1;
            continue;
        }
        let kind = key
            .intent
            .as_ref()
            .and_then(|i| i.get("kind"))
            .and_then(|k| k.as_str());
        let settling = match kind {
            Some(PublishIntent::KIND) => settle_publish(app, &key, &mut touched).await,
            Some(IngestIntent::KIND) => settle_ingest(app, &key, &mut touched).await,
            Some(kind) if let Some(module) = crate::idempotent::module_for(app, kind) => {
                settle_state_write(module.as_ref(), &key, kind).await
            }
            // Claimed, but it never got as far as its intent: nothing was committed.
            None => Ok(Outcome::Release),
            Some(_) => {
                tracing::warn!(
                    client = %key.client_id,
                    key = %key.key,
                    "an interrupted request's intent is of an unknown kind; its key stays in progress until an operator looks"
                );
                settled.skipped += 1;
                continue;
            }
        };
        let outcome = match settling {
            Ok(outcome) => outcome,
            Err(e) => {
                // One key that cannot be settled now (the lake unreachable, an unreadable
                // intent) neither stops the others nor the hub; the next pass tries again.
                tracing::warn!(client = %key.client_id, key = %key.key, error = %e, "cannot settle an interrupted request's key yet");
                state.give_up_idempotency_key(&key).await?;
                settled.skipped += 1;
                continue;
            }
        };
        match outcome {
            Outcome::Answer { status, body } => {
                state
                    .complete_idempotency_key(&key.client_id, &key.key, status, &body)
                    .await?;
                settled.answered += 1;
            }
            Outcome::Release => {
                state
                    .release_idempotency_key(&key.client_id, &key.key)
                    .await?;
                settled.released += 1;
            }
        }
    }
    for dataset in &touched {
        // The lake is the truth for versions and counts; the catalog may have missed the
        // commit's bookkeeping.
        if let Err(e) = app.catalog.refresh_stats(dataset).await {
            tracing::warn!(%dataset, error = %e, "cannot bring the catalog's statistics up to the lake's");
        }
    }
    if !touched.is_empty() {
        app.publisher.committed.notify_waiters();
    }
    if settled.answered + settled.released > 0 {
        tracing::info!(
            answered = settled.answered,
            released = settled.released,
            "settled the idempotency keys of interrupted requests"
        );
    }
    Ok(settled)
}

/// Brings every dataset's version and counts in the catalog up to the lake's where they
/// differ: a write whose commit landed and whose bookkeeping did not (an ingest cut after
/// its commit, a module export) leaves the catalog a version behind. Returns how many
/// were repaired. Run at start.
pub async fn repair_catalog(app: &AppState) -> Result<u64, CatalogError> {
    let mut repaired = 0;
    for id in app.catalog.state.dataset_ids().await? {
        let Some(delta) = app.catalog.lake.load(&LakeTable::Data(id.clone())).await? else {
            continue;
        };
        let meta = app.catalog.dataset(&id).await?;
        if meta.current_version != delta.version().map(|v| v as i64) {
            app.catalog.refresh_stats(&id).await?;
            repaired += 1;
        }
    }
    Ok(repaired)
}

enum Outcome {
    Answer { status: u16, body: String },
    Release,
}

/// When the key was claimed: its request's commit, if any, came later.
fn claimed_at(key: &OrphanedKey) -> chrono::DateTime<Utc> {
    parse_timestamp(&key.created_at).unwrap_or_else(|| Utc::now() - chrono::Duration::days(1))
}

fn invalid_intent(key: &OrphanedKey, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Invalid(format!(
        "the intent stored under key {} of {} cannot be read: {e}",
        key.key, key.client_id
    ))
}

/// A publish: its commit names its message id (in the data table when a record was valid,
/// otherwise in the rejects table).
async fn settle_publish(
    app: &AppState,
    key: &OrphanedKey,
    touched: &mut BTreeSet<DatasetId>,
) -> Result<Outcome, CatalogError> {
    let intent: PublishIntent = serde_json::from_value(key.intent.clone().unwrap_or_default())
        .map_err(|e| invalid_intent(key, e))?;
    let dataset: DatasetId = intent.dataset.parse().map_err(|e| invalid_intent(key, e))?;
    let table = if intent.accepted > 0 {
        LakeTable::Data(dataset.clone())
    } else {
        LakeTable::Rejects(dataset.clone())
    };
    let names_message = |commit: &VersionInfo| {
        commit
            .simpul
            .get("messages")
            .and_then(|m| m.as_array())
            .is_some_and(|m| m.iter().any(|id| id.as_str() == Some(&intent.message_id)))
    };
    let Some(commit) = app
        .catalog
        .lake
        .find_commit(&table, claimed_at(key), names_message)
        .await?
    else {
        if intent.accepted > 0 {
            abandon_partial_publish(app, key, &intent, &dataset, names_message).await?;
        }
        return Ok(Outcome::Release);
    };
    let committed_at = timestamp(commit.timestamp.unwrap_or_else(Utc::now));
    let receipt = sign_receipt(
        &app.signer,
        &dataset,
        &intent,
        Some(commit.version),
        &committed_at,
    );
    if !app
        .catalog
        .state
        .message_log_has_publish(&intent.message_id)
        .await?
    {
        app.messagelog
            .record(publish_entry(
                &key.client_id,
                intent.request_bytes,
                &key.key,
                &receipt,
            ))
            .await;
    }
    touched.insert(dataset);
    let published = Published::new(receipt, &intent.reasons);
    Ok(Outcome::Answer {
        status: published.status,
        body: published.body.to_string(),
    })
}

/// A publish whose rejects commit landed and whose data commit did not: the retry applies
/// it afresh under a new message id, so its refused records are listed twice. The first
/// attempt's exchange is logged as abandoned (status 0, no answer came), so that the log
/// accounts for every message a commit names.
async fn abandon_partial_publish(
    app: &AppState,
    key: &OrphanedKey,
    intent: &PublishIntent,
    dataset: &DatasetId,
    names_message: impl Fn(&VersionInfo) -> bool,
) -> Result<(), CatalogError> {
    let rejects = LakeTable::Rejects(dataset.clone());
    let landed = app
        .catalog
        .lake
        .find_commit(&rejects, claimed_at(key), names_message)
        .await?;
    if landed.is_none()
        || app
            .catalog
            .state
            .message_log_has_publish(&intent.message_id)
            .await?
    {
        return Ok(());
    }
    app.messagelog
        .record(abandoned_entry(
            &key.client_id,
            dataset,
            intent,
            &key.key,
            "the hub stopped between the publish's rejects commit and its data commit; the retry applies it afresh",
        ))
        .await;
    Ok(())
}

/// A request that writes only the state store (a SEMAR call, a complaint, a step): its row
/// is stored (with the id from the intent) or not.
async fn settle_state_write(
    module: &dyn crate::modules::registry::Module,
    key: &OrphanedKey,
    kind: &str,
) -> Result<Outcome, CatalogError> {
    let intent = key.intent.clone().unwrap_or_default();
    match crate::idempotent::stored_answer(module, kind, &intent).await? {
        Some((status, body)) => Ok(Outcome::Answer { status, body }),
        None => Ok(Outcome::Release),
    }
}

/// An HTTP upload: its data commit carries the upload's `source`, which names the client
/// and the key. The dataset it created is registered if the crash came before that.
async fn settle_ingest(
    app: &AppState,
    key: &OrphanedKey,
    touched: &mut BTreeSet<DatasetId>,
) -> Result<Outcome, CatalogError> {
    let intent: IngestIntent = serde_json::from_value(key.intent.clone().unwrap_or_default())
        .map_err(|e| invalid_intent(key, e))?;
    let dataset: DatasetId = intent.dataset.parse().map_err(|e| invalid_intent(key, e))?;
    let from_this_upload = |commit: &VersionInfo| {
        commit.simpul.get("source").and_then(|s| s.as_str()) == Some(intent.source.as_str())
            && commit.simpul.get("run_id").is_some()
    };
    let Some(commit) = app
        .catalog
        .lake
        .find_commit(
            &LakeTable::Data(dataset.clone()),
            claimed_at(key),
            from_this_upload,
        )
        .await?
    else {
        return Ok(Outcome::Release);
    };
    let meta = &commit.simpul;
    let schema_label = meta.get("schema").and_then(|s| s.as_str());
    if app.catalog.state.dataset(&dataset).await?.is_none() {
        // `penduduk 1.0.0` was bound as `penduduk@1`.
        let schema_ref = schema_label.and_then(|label| {
            let (name, version) = label.split_once(' ')?;
            Some(format!("{name}@{}", version.split('.').next()?))
        });
        app.catalog
            .state
            .register_dataset(&NewDataset {
                id: dataset.clone(),
                title: intent.title.clone(),
                description: intent.description.clone(),
                owner: intent.owner.clone(),
                classification: intent.classification,
                schema_ref,
                contract: intent.contract,
                tags: Vec::new(),
            })
            .await?;
    }
    let count = |name: &str| meta.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
    let columns = |name: &str| meta.get(name).cloned().unwrap_or(serde_json::json!([]));
    let body = serde_json::json!({
        "dataset": dataset,
        "run_id": meta.get("run_id"),
        "created": intent.creating,
        "version": commit.version,
        "rows_read": count("rows_read"),
        "rows_written": count("rows_written"),
        "rows_rejected": count("rows_rejected"),
        "schema": schema_label,
        "added_columns": columns("added_columns"),
        "discarded_columns": columns("discarded_columns"),
        "rejects": format!("/api/v1/datasets/{dataset}/rejects"),
        // The refused rows are in the rejects table under run_id; the sample the first
        // answer carried is not kept.
        "sample_rejects": [],
    });
    app.catalog
        .state
        .audit(
            &key.client_id,
            "dataset.ingest",
            &dataset.to_string(),
            serde_json::json!({ "recovered": true, "commit": meta }),
        )
        .await?;
    touched.insert(dataset);
    Ok(Outcome::Answer {
        status: if intent.creating { 201 } else { 200 },
        body: body.to_string(),
    })
}
