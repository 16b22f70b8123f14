//! The `peer` source: a dataset on another Simpul hub, read through its change feed.
//!
//! Each page is `GET <base_url>/api/v1/bus/datasets/<dataset>/changes?since_version=N`. The
//! page ends with the peer's seal: the SHA-256 of every line before it and the peer's Ed25519
//! signature over it. A page whose hash or signature does not verify under one of the peer's
//! registered public keys is refused whole, and the read fails: nothing of it lands. The
//! checkpoint is the peer's version, so a run resumes exactly after the last version it
//! committed. Deleted rows are not carried (the feed's deletes are of whole files in an
//! overwrite); inserts and updates are, without the feed's own columns.

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::file::objects_batch;
use crate::raw::{RawBatch, SourceError};
use crate::source::{EventSender, ReadEvent, Source, StreamInfo, event_stream, unknown_stream};

/// The feed's own columns, dropped from the landed rows.
const FEED_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

/// A `peer` pipeline's settings. `base_url` and `public_keys` come from the hub's peer
/// registry, never from the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer member, `INSTANCE/CLASS/MEMBER`.
    pub peer: String,
    /// The peer's base URL.
    pub base_url: String,
    /// The peer's registered Ed25519 public keys, hex.
    pub public_keys: Vec<String>,
    /// The dataset on the peer.
    pub dataset: String,
    /// This hub's API key on the peer.
    pub api_key: String,
    /// Versions per page.
    #[serde(default = "default_max_versions")]
    pub max_versions: u32,
    /// Seconds a page may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_max_versions() -> u32 {
    100
}

fn default_timeout() -> u64 {
    120
}

/// The source.
pub struct Peer {
    config: PeerConfig,
    http: reqwest::Client,
}

impl Peer {
    /// A source for `config`.
    pub fn new(config: PeerConfig) -> Result<Self, SourceError> {
        if config.public_keys.is_empty() {
            return Err(SourceError::Config {
                connector: "peer".into(),
                reason: format!("peer {} has no registered public key", config.peer),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(config.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Config {
                connector: "peer".into(),
                reason: e.to_string(),
            })?;
        Ok(Self { config, http })
    }

    fn url(&self, since: i64) -> String {
        format!(
            "{}/api/v1/bus/datasets/{}/changes?since_version={since}&max_versions={}",
            self.config.base_url.trim_end_matches('/'),
            self.config.dataset,
            self.config.max_versions
        )
    }

    async fn page(&self, since: i64) -> Result<Page, SourceError> {
        let url = self.url(since);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.config.api_key)
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .map_err(|e| SourceError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| SourceError::Connect {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            return Err(SourceError::Http {
                url,
                status: status.as_u16(),
                reason,
            });
        }
        verify_page(&self.config, &body, since).map_err(|reason| SourceError::Api { url, reason })
    }
}

/// One verified page.
#[derive(Debug)]
struct Page {
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    to_version: i64,
    sha256: String,
}

#[derive(Debug, Deserialize)]
struct Seal {
    dataset: String,
    since_version: i64,
    to_version: i64,
    rows: u64,
    sha256: String,
    signature: SealSignature,
}

#[derive(Debug, Deserialize)]
struct SealSignature {
    key_id: String,
    signature: String,
}

/// Checks a page's seal (hash, signature, that it answers this request) and parses its rows.
fn verify_page(config: &PeerConfig, body: &str, since: i64) -> Result<Page, String> {
    let refused = |why: &str| {
        format!(
            "peer {} served a change-feed page that {why}; the page was refused and nothing of it landed",
            config.peer
        )
    };
    let seal_at = body
        .rfind("{\"_seal\"")
        .ok_or_else(|| refused("has no seal (cut short, or not a Simpul hub)"))?;
    let (data, seal_line) = body.split_at(seal_at);
    let seal: serde_json::Value =
        serde_json::from_str(seal_line.trim()).map_err(|_| refused("has an unreadable seal"))?;
    let seal: Seal = serde_json::from_value(seal["_seal"].clone())
        .map_err(|_| refused("has an unreadable seal"))?;
    let sha256 = hex::encode(Sha256::digest(data.as_bytes()));
    if sha256 != seal.sha256 {
        return Err(refused("does not hash to its seal: its rows were changed"));
    }
    let message = format!(
        "simpul-changes-v1\n{}\n{}\n{}\n{}\n{}\n{}",
        seal.dataset,
        seal.since_version,
        seal.to_version,
        seal.rows,
        seal.sha256,
        seal.signature.key_id
    );
    let signature =
        hex::decode(&seal.signature.signature).map_err(|_| refused("has a malformed signature"))?;
    let verified = config.public_keys.iter().any(|key| {
        hex::decode(key).is_ok_and(|public| {
            UnparsedPublicKey::new(&ED25519, public)
                .verify(message.as_bytes(), &signature)
                .is_ok()
        })
    });
    if !verified {
        return Err(refused(&format!(
            "is not signed by any of its registered keys (it names key {})",
            seal.signature.key_id
        )));
    }
    if seal.dataset != config.dataset || seal.since_version != since || seal.to_version < since {
        return Err(refused(
            "answers another request (dataset or versions differ)",
        ));
    }
    let mut rows = Vec::new();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let mut row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|_| refused("holds a line that is not a JSON object"))?;
        if row.get("_change_type").and_then(|v| v.as_str()) == Some("delete") {
            continue;
        }
        for column in FEED_COLUMNS {
            row.remove(column);
        }
        rows.push(row);
    }
    if rows.len() as u64 > seal.rows {
        return Err(refused("holds more rows than its seal counts"));
    }
    Ok(Page {
        rows,
        to_version: seal.to_version,
        sha256,
    })
}

impl Source for Peer {
    fn spec(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "required": ["peer", "dataset", "api_key"],
            "properties": {
                "peer": {"type": "string", "description": "The peer member, INSTANCE/CLASS/MEMBER, registered with `simpul bus peers add`"},
                "dataset": {"type": "string", "description": "The dataset on the peer"},
                "api_key": {"type": "string", "description": "This hub's key on the peer (env:NAME)"},
                "max_versions": {"type": "integer", "minimum": 1, "default": 100},
                "timeout_secs": {"type": "integer", "minimum": 1, "default": 120}
            }
        })
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move { self.page(i64::MAX / 2).await.map(|_| ()) })
    }

    fn discover(&self) -> futures::future::BoxFuture<'_, Result<Vec<StreamInfo>, SourceError>> {
        Box::pin(async move {
            let page = self.page(0).await?;
            let batch =
                objects_batch(&page.rows[..page.rows.len().min(1000)]).map_err(|source| {
                    SourceError::Arrow {
                        path: self.config.dataset.clone(),
                        source,
                    }
                })?;
            Ok(vec![StreamInfo {
                name: "records".into(),
                schema: batch.schema(),
                incremental: true,
            }])
        })
    }

    fn read(
        &self,
        stream: &str,
        state: Option<serde_json::Value>,
    ) -> futures::stream::BoxStream<'_, Result<ReadEvent, SourceError>> {
        if stream != "records" {
            return unknown_stream("peer", stream, "records");
        }
        let since = state
            .as_ref()
            .and_then(|s| s["version"].as_i64())
            .unwrap_or(0);
        event_stream(move |tx| self.pump(since, tx))
    }
}

impl Peer {
    async fn pump(&self, mut since: i64, tx: EventSender) -> Result<(), SourceError> {
        let mut line = 0u64;
        loop {
            let page = self.page(since).await?;
            if !page.rows.is_empty() {
                let batch = objects_batch(&page.rows).map_err(|source| SourceError::Arrow {
                    path: self.config.dataset.clone(),
                    source,
                })?;
                let source: std::sync::Arc<str> =
                    format!("{}/{}", self.config.peer, self.config.dataset).into();
                let positions = (0..batch.num_rows() as u64)
                    .map(|i| simpul_schemas::SourcePosition {
                        source: source.clone(),
                        line: line + i + 1,
                    })
                    .collect();
                line += batch.num_rows() as u64;
                let raw = RawBatch {
                    batch,
                    positions,
                    malformed: Vec::new(),
                };
                if tx.send(Ok(ReadEvent::Batch(raw))).await.is_err() {
                    return Ok(());
                }
            }
            let moved = page.to_version > since;
            since = page.to_version;
            let checkpoint = serde_json::json!({
                "version": since,
                "peer": self.config.peer,
                "sha256": page.sha256,
            });
            if tx
                .send(Ok(ReadEvent::Checkpoint(checkpoint)))
                .await
                .is_err()
                || !moved
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PeerConfig {
        PeerConfig {
            peer: "ID-JABAR/GOV/HUB-A".into(),
            base_url: "http://127.0.0.1:1".into(),
            public_keys: vec!["00".repeat(32)],
            dataset: "a.b".into(),
            api_key: "k".into(),
            max_versions: 10,
            timeout_secs: 1,
        }
    }

    #[test]
    fn a_page_without_a_valid_seal_is_refused() {
        let no_seal = verify_page(&config(), "{\"a\":1}\n", 0).unwrap_err();
        assert!(no_seal.contains("has no seal"), "{no_seal}");
        let body = format!(
            "{{\"a\":1}}\n{{\"_seal\":{{\"dataset\":\"a.b\",\"since_version\":0,\"to_version\":1,\"rows\":1,\"sha256\":\"{}\",\"signature\":{{\"key_id\":\"k\",\"signature\":\"{}\"}}}}}}\n",
            hex::encode(Sha256::digest(b"{\"a\":2}\n")),
            "00".repeat(64)
        );
        let tampered = verify_page(&config(), &body, 0).unwrap_err();
        assert!(tampered.contains("does not hash"), "{tampered}");
        let body = body.replace(
            &hex::encode(Sha256::digest(b"{\"a\":2}\n")),
            &hex::encode(Sha256::digest(b"{\"a\":1}\n")),
        );
        let unsigned = verify_page(&config(), &body, 0).unwrap_err();
        assert!(
            unsigned.contains("not signed by any of its registered keys"),
            "{unsigned}"
        );
    }
}
