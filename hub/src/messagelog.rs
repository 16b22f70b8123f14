//! The message log's writer: one task that chains every bus exchange after the previous one,
//! stores each gathered batch with its signed seal in one transaction, and tells the waiting
//! callers once their records are stored.

use std::sync::Arc;
use std::time::Duration;

use simpul_catalog::{
    LoggedMessage, MessageEntry, Seal, Signer, StateStore, seal_bytes, timestamp,
};
use tokio::sync::{mpsc, oneshot};

/// Records gathered into one transaction at most.
const BATCH: usize = 1_000;
/// Records waiting for the writer at most; past this, callers wait for room.
const QUEUE: usize = 20_000;

struct Pending {
    entry: MessageEntry,
    stored: oneshot::Sender<()>,
}

/// A handle to the message log's writer.
#[derive(Clone)]
pub struct MessageLog(mpsc::Sender<Pending>);

impl MessageLog {
    /// Starts the writer on the current runtime, chaining on the stored log's last record.
    pub async fn start(
        state: StateStore,
        signer: Arc<Signer>,
    ) -> Result<Self, simpul_catalog::CatalogError> {
        let (mut seq, mut prev_hash) = state.message_log_tail().await?;
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut wait = Duration::from_millis(100);
                loop {
                    let (records, seal) = chain(&batch, seq, &prev_hash, &signer);
                    match state.append_message_log(&records, &seal).await {
                        Ok(()) => {
                            seq = seal.last_seq;
                            prev_hash = seal.hash;
                            break;
                        }
                        Err(e) => {
                            // Another writer (a CLI run on the same state store) may have
                            // extended the chain: chain on its tail and try again. The
                            // batch is never dropped.
                            tracing::warn!(error = %e, records = records.len(), "cannot store message log records; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(10));
                            if let Ok((tail_seq, tail_hash)) = state.message_log_tail().await {
                                seq = tail_seq;
                                prev_hash = tail_hash;
                            }
                        }
                    }
                }
                for pending in batch.drain(..) {
                    let _ = pending.stored.send(());
                }
            }
        });
        Ok(Self(tx))
    }

    /// Logs `entries` and waits until they are stored and sealed.
    pub async fn record_all(&self, entries: Vec<MessageEntry>) {
        let mut waits = Vec::with_capacity(entries.len());
        for entry in entries {
            let (stored, wait) = oneshot::channel();
            if self.0.send(Pending { entry, stored }).await.is_err() {
                return;
            }
            waits.push(wait);
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// Logs one exchange and waits until it is stored.
    pub async fn record(&self, entry: MessageEntry) {
        self.record_all(vec![entry]).await;
    }
}

/// Chains `batch` after record `seq` (hash `prev_hash`) and seals it.
fn chain(
    batch: &[Pending],
    seq: i64,
    prev_hash: &str,
    signer: &Signer,
) -> (Vec<LoggedMessage>, Seal) {
    let mut last = prev_hash.to_string();
    let records: Vec<LoggedMessage> = batch
        .iter()
        .zip(seq + 1..)
        .map(|(p, n)| {
            let record = LoggedMessage::chain(n, &p.entry, &last);
            last = record.hash.clone();
            record
        })
        .collect();
    let first_seq = seq + 1;
    let last_seq = seq + records.len() as i64;
    let seal = Seal {
        first_seq,
        last_seq,
        hash: last.clone(),
        signature: signer.sign(&seal_bytes(first_seq, last_seq, &last)),
        sealed_at: timestamp(chrono::Utc::now()),
    };
    (records, seal)
}
