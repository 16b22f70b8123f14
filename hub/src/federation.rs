//! Federation with other hubs: the peer registry's rules, and the message-log record of
//! every pull a `peer` pipeline makes (successful or refused).

use std::sync::Arc;

use simpul_catalog::{MessageEntry, PipelineRun, RunStatus};
use simpul_pipelines::{PipelineDefinition, RunObserver};

use crate::messagelog::MessageLog;

/// Logs each run of a `peer` pipeline as a `federation` exchange: the peer, its dataset, the
/// peer version reached, and the error when the pull was refused.
pub fn observer(log: MessageLog) -> RunObserver {
    Arc::new(move |definition: PipelineDefinition, run: PipelineRun| {
        let log = log.clone();
        Box::pin(async move {
            if definition.source.connector != "peer" {
                return;
            }
            let setting = |key: &str| {
                definition
                    .source
                    .config
                    .get(key)
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
            };
            let succeeded = run.status == RunStatus::Succeeded;
            let version = run.checkpoint.as_ref().and_then(|c| c["version"].as_i64());
            log.record(MessageEntry {
                message_id: run.id.clone(),
                at: chrono::Utc::now(),
                service: "federation".into(),
                client_id: None,
                peer: setting("peer"),
                dataset: setting("dataset"),
                version,
                request_bytes: 0,
                response_bytes: u64::try_from(run.bytes_read).unwrap_or(0),
                status: if succeeded { 200 } else { 502 },
                payload_sha256: run
                    .checkpoint
                    .as_ref()
                    .and_then(|c| c["sha256"].as_str().map(str::to_string)),
                detail: serde_json::json!({
                    "pipeline": definition.name,
                    "run": run.run_number,
                    "local_dataset": definition.target.dataset,
                    "rows": run.rows_committed,
                    "error": run.error,
                }),
            })
            .await;
        })
    })
}
