//! The hub's Ed25519 signing keys, and the signed documents it hands out: publish receipts
//! and message-log seals.
//!
//! The private half of a key is a PKCS#8 file in the hub's key directory (mode 0600) and
//! never leaves it. The public half is in the state store's `hub_keys`, published at
//! `/api/v1/bus/keys`; a rotated key is retired, never deleted, so everything it signed stays
//! verifiable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::CatalogError;
use crate::state::{StateStore, parse_timestamp, timestamp};

/// A published public key of the hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicKey {
    /// `YYYYMMDD-<8 hex>`: the day it was made and the start of its SHA-256.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced it; it still verifies what it signed.
    pub retired_at: Option<DateTime<Utc>>,
}

/// A detached signature and the key that made it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    /// The signing key.
    pub key_id: String,
    /// The 64-byte Ed25519 signature, hex.
    pub signature: String,
}

/// One private key, loaded.
struct ActiveKey {
    key_id: String,
    pair: Ed25519KeyPair,
}

/// The hub's current signing key.
pub struct Signer {
    dir: PathBuf,
    active: RwLock<Arc<ActiveKey>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("dir", &self.dir)
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl Signer {
    /// Loads the newest active key whose private half is in `dir`, or makes one (on first
    /// start, or when the key directory was lost: the lost key is then retired).
    pub async fn open(dir: &Path, state: &StateStore) -> Result<Self, CatalogError> {
        std::fs::create_dir_all(dir).map_err(|e| key_io(dir, e))?;
        for key in state
            .hub_keys()
            .await?
            .into_iter()
            .filter(|k| k.retired_at.is_none())
        {
            let path = key_path(dir, &key.key_id);
            if !path.exists() {
                continue;
            }
            let pkcs8 = std::fs::read(&path).map_err(|e| key_io(&path, e))?;
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| {
                CatalogError::Config(format!("{} is not an Ed25519 PKCS#8 key", path.display()))
            })?;
            if hex::encode(pair.public_key().as_ref()) != key.public_key {
                return Err(CatalogError::Config(format!(
                    "{} does not match the published public key {}",
                    path.display(),
                    key.key_id
                )));
            }
            let active = ActiveKey {
                key_id: key.key_id,
                pair,
            };
            return Ok(Self {
                dir: dir.to_path_buf(),
                active: RwLock::new(Arc::new(active)),
            });
        }
        // No usable key here: a first start, or a process with its own key directory on a
        // shared state store (a CLI on another machine). Other processes' keys stay active:
        // this process cannot tell a lost key from one another process still signs with.
        let fresh = generate(dir, state).await?;
        Ok(Self {
            dir: dir.to_path_buf(),
            active: RwLock::new(Arc::new(fresh)),
        })
    }

    /// The id of the key that signs now.
    pub fn key_id(&self) -> String {
        self.current().key_id.clone()
    }

    fn current(&self) -> Arc<ActiveKey> {
        match self.active.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Signs `message` with the current key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.sign_as(|_| message.to_vec())
    }

    /// Signs the message `make` builds from the signing key's id, for documents that name
    /// their key inside the signed bytes; a rotation in between cannot mix two keys.
    pub fn sign_as(&self, make: impl FnOnce(&str) -> Vec<u8>) -> Signature {
        let key = self.current();
        let message = make(&key.key_id);
        Signature {
            key_id: key.key_id.clone(),
            signature: hex::encode(key.pair.sign(&message).as_ref()),
        }
    }

    /// Makes a new key, publishes it, and retires every older one. What the old keys signed
    /// stays verifiable through their published public halves.
    pub async fn rotate(&self, state: &StateStore) -> Result<PublicKey, CatalogError> {
        let fresh = generate(&self.dir, state).await?;
        let key_id = fresh.key_id.clone();
        state.retire_hub_keys_except(&key_id).await?;
        match self.active.write() {
            Ok(mut guard) => *guard = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        state
            .hub_keys()
            .await?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| CatalogError::State(format!("key {key_id} vanished")))
    }
}

fn key_path(dir: &Path, key_id: &str) -> PathBuf {
    dir.join(format!("{key_id}.ed25519.pk8"))
}

fn key_io(path: &Path, e: std::io::Error) -> CatalogError {
    CatalogError::Config(format!("hub key store {}: {e}", path.display()))
}

async fn generate(dir: &Path, state: &StateStore) -> Result<ActiveKey, CatalogError> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| CatalogError::Config("the system random source failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| CatalogError::Config("a fresh Ed25519 key did not parse".into()))?;
    let public_key = hex::encode(pair.public_key().as_ref());
    let digest = hex::encode(Sha256::digest(pair.public_key().as_ref()));
    let now = Utc::now();
    let key_id = format!("{}-{}", now.format("%Y%m%d"), &digest[..8]);
    let path = key_path(dir, &key_id);
    write_private(&path, pkcs8.as_ref())?;
    state.insert_hub_key(&key_id, &public_key, now).await?;
    Ok(ActiveKey { key_id, pair })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CatalogError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| key_io(path, e))?;
    file.write_all(bytes).map_err(|e| key_io(path, e))?;
    file.sync_all().map_err(|e| key_io(path, e))
}

/// Whether `signature` (hex) is `public_key`'s (hex) Ed25519 signature of `message`.
pub fn verify_signature(public_key: &str, message: &[u8], signature: &str) -> bool {
    let (Ok(public), Ok(signature)) = (hex::decode(public_key), hex::decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &signature)
        .is_ok()
}

/// Whether `signature` verifies `message` under the key it names, among `keys`.
pub fn verify_with(keys: &[PublicKey], message: &[u8], signature: &Signature) -> bool {
    keys.iter()
        .find(|k| k.key_id == signature.key_id)
        .is_some_and(|k| verify_signature(&k.public_key, message, &signature.signature))
}

/// A document the hub signs, which names its signing key inside the signed bytes.
pub trait Signed {
    /// The exact bytes the signature covers; any change to a field changes them.
    fn signed_bytes(&self) -> Vec<u8>;
    /// The document's signature.
    fn signature(&self) -> &Signature;
    /// Where the signature goes.
    fn signature_mut(&mut self) -> &mut Signature;

    /// Signs the document with `signer`'s current key.
    fn sign(&mut self, signer: &Signer)
    where
        Self: Sized,
    {
        let signature = signer.sign_as(|key_id| {
            self.signature_mut().key_id = key_id.to_string();
            self.signed_bytes()
        });
        *self.signature_mut() = signature;
    }

    /// Whether the signature verifies under the published `keys`.
    fn verify(&self, keys: &[PublicKey]) -> bool {
        verify_with(keys, &self.signed_bytes(), self.signature())
    }
}

/// What the hub signs when it accepts a publish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    /// The exchange's id, also in the message log.
    pub message_id: String,
    /// The dataset published to.
    pub dataset: String,
    /// The Delta version the rows landed in; `None` when every row was refused.
    pub version: Option<i64>,
    /// Rows committed.
    pub accepted: u64,
    /// Rows refused, kept with reasons in the rejects table.
    pub rejected: u64,
    /// Where the refused rows are.
    pub rejects: String,
    /// SHA-256 of the request body, hex.
    pub payload_sha256: String,
    /// When the commit was acknowledged.
    pub committed_at: String,
    /// The hub's signature over [`Signed::signed_bytes`].
    pub signature: Signature,
}

impl Signed for Receipt {
    /// A fixed header, then one field per line in a fixed order, the signing key's id last.
    fn signed_bytes(&self) -> Vec<u8> {
        let version = self
            .version
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "simpul-receipt-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.message_id,
            self.dataset,
            version,
            self.accepted,
            self.rejected,
            self.rejects,
            self.payload_sha256,
            self.committed_at,
            self.signature.key_id,
        )
        .into_bytes()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn signature_mut(&mut self) -> &mut Signature {
        &mut self.signature
    }
}

/// The hub's signature at the end of a change-feed read: which rows it served, and the
/// SHA-256 of every byte before it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedSeal {
    /// The dataset read.
    pub dataset: String,
    /// The read's `since_version`.
    pub since_version: i64,
    /// The last version it covers: resume from here.
    pub to_version: i64,
    /// Rows served.
    pub rows: u64,
    /// SHA-256 of the body before the seal's line, hex.
    pub sha256: String,
    /// The hub's signature over [`Signed::signed_bytes`].
    pub signature: Signature,
}

impl Signed for FeedSeal {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "simpul-changes-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.dataset,
            self.since_version,
            self.to_version,
            self.rows,
            self.sha256,
            self.signature.key_id
        )
        .into_bytes()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn signature_mut(&mut self) -> &mut Signature {
        &mut self.signature
    }
}

impl StateStore {
    /// Every published key, newest first.
    pub async fn hub_keys(&self) -> Result<Vec<PublicKey>, CatalogError> {
        let rows = sqlx::query(
            "SELECT key_id, public_key, created_at, retired_at FROM hub_keys ORDER BY created_at DESC, key_id DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let created: String = row.try_get("created_at")?;
                let retired: Option<String> = row.try_get("retired_at")?;
                Ok(PublicKey {
                    key_id: row.try_get("key_id")?,
                    algorithm: "Ed25519".into(),
                    public_key: row.try_get("public_key")?,
                    created_at: parse_timestamp(&created).unwrap_or_default(),
                    retired_at: retired.as_deref().and_then(parse_timestamp),
                })
            })
            .collect()
    }

    async fn insert_hub_key(
        &self,
        key_id: &str,
        public_key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        sqlx::query("INSERT INTO hub_keys (key_id, public_key, created_at) VALUES ($1, $2, $3)")
            .bind(key_id)
            .bind(public_key)
            .bind(timestamp(at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn retire_hub_keys_except(&self, key_id: &str) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE hub_keys SET retired_at = $2 WHERE key_id <> $1 AND retired_at IS NULL",
        )
        .bind(key_id)
        .bind(timestamp(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_verifies_until_a_field_changes() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = PublicKey {
            key_id: "k1".into(),
            algorithm: "Ed25519".into(),
            public_key: hex::encode(pair.public_key().as_ref()),
            created_at: Utc::now(),
            retired_at: None,
        };
        let mut receipt = Receipt {
            message_id: "m".into(),
            dataset: "a.b".into(),
            version: Some(3),
            accepted: 2,
            rejected: 1,
            rejects: "/r".into(),
            payload_sha256: "00".into(),
            committed_at: "2026-12-01T00:00:00.000000Z".into(),
            signature: Signature {
                key_id: "k1".into(),
                signature: String::new(),
            },
        };
        receipt.signature.signature = hex::encode(pair.sign(&receipt.signed_bytes()).as_ref());
        assert!(receipt.verify(std::slice::from_ref(&key)));
        let mut tampered = receipt.clone();
        tampered.accepted = 3;
        assert!(!tampered.verify(std::slice::from_ref(&key)));
        let mut unknown = receipt.clone();
        unknown.signature.key_id = "k2".into();
        assert!(!unknown.verify(&[key]));
    }
}
