//! The catalog: where datasets live and what is known about them.
//!
//! Owns the lake (one Delta table per dataset, plus its `__rejects` table, under `lake_url`),
//! the state store (sqlx: SQLite by default, PostgreSQL by URL) with dataset metadata, API
//! clients and audit records, and the DataFusion session factory that exposes every dataset
//! to SQL as `namespace.name`.
//!
//! Knows nothing about HTTP, connectors or pipelines. Data enters through [`Lake::write`]
//! (one atomic Delta commit) and leaves through [`Catalog::sql_session`] and [`Lake::load`].

mod aggregate;
mod backup;
mod bus;
mod changes;
mod clients;
mod comparisons;
mod dataset_id;
mod error;
mod execute;
mod grants;
mod idempotency;
pub mod instance;
mod lake;
mod logins;
mod mask;
mod messagelog;
mod metadata;
mod opmon;
mod peers;
mod query_log;
mod read_only;
mod runs;
mod s3;
mod saved_queries;
mod scan;
mod schemas;
mod session;
mod signing;
mod state;
mod time_travel;
mod view_grouping;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

pub use aggregate::AggregateRule;
pub use backup::{DumpedTable, STATE_FORMAT, StateDumpHeader};
pub use bus::{BusIdentity, Member, Subsystem, check_part, valid_part};
pub use changes::{CHANGE_TYPE, COMMIT_TIMESTAMP, COMMIT_VERSION, ChangeFeed};
pub use clients::{ApiClient, Role, UserAccount};
pub use dataset_id::{DatasetId, InvalidDatasetId, REJECTS_SUFFIX};
pub use error::CatalogError;
pub use execute::execute;
pub use grants::{
    AccessRequest, Grant, Grantee, Principal, RequestStatus, Right, Rights, may_read,
};
pub use idempotency::{IdempotencyClaim, KEY_LEASE, KeyClaim, OrphanedKey};
pub use lake::{
    AppTransaction, CommitOptions, Lake, LakeTable, StagedFiles, TableStats, TableWriter,
    VersionInfo, WriteMode, object_store_at, percent_decode, version_info,
};
pub use logins::{AttemptKind, Reservation};
pub use mask::MaskKind;
pub use messagelog::{
    Broken, CompletenessReport, GENESIS_HASH, Gap, LoggedMessage, MessageEntry, Seal, Verifier,
    VerifyReport, seal_bytes,
};
pub use metadata::{
    Classification, Contract, DatasetFilter, DatasetMeta, DatasetPatch, Freshness, NewDataset,
    PublishMode, SourceDescription,
};
pub use opmon::{OpmonRecord, Pruned};
pub use peers::{Peer, check_peer};
pub use query_log::{QueryOutcome, QueryRecord};
pub use read_only::{check_read_only, check_read_only_statement};
pub use runs::{LineageEdge, NewRun, PipelineRun, RunOutcome, RunStatus, parse_freshness};
pub use saved_queries::{
    ParamType, QueryDefinition, QueryParam, QueryVersion, SaveOutcome, SavedQuery,
};
pub use scan::{plain_text, plain_text_schema};
pub use schemas::{CompiledCache, Registration, SchemaBinding, SchemaVersion};
pub use session::{
    OPERATIONAL_SCHEMA, PlannedQuery, SQL_CATALOG, SessionSettings, SqlAccess, limit_rows,
};
pub use signing::{
    FeedSeal, PublicKey, Receipt, Signature, Signed, Signer, verify_signature, verify_with,
};
pub use state::{ExtraMigration, StateStore, parse_timestamp, redact_url, timestamp};
pub use webhooks::{AttemptOutcome, Delivery, DeliveryStatus, Webhook};

/// The lake and the state store together: everything the hub knows about its datasets.
#[derive(Debug)]
pub struct Catalog {
    /// Dataset metadata, API clients, audit records, schema versions.
    pub state: StateStore,
    /// The Delta tables.
    pub lake: Lake,
    /// Schemas compiled so far.
    pub schemas: CompiledCache,
}

impl Catalog {
    /// Opens the lake at `lake_url` and the state store at `state_url`.
    pub async fn open(
        lake_url: &str,
        storage_options: HashMap<String, String>,
        state_url: &str,
    ) -> Result<Arc<Self>, CatalogError> {
        Self::open_with(lake_url, storage_options, state_url, &[]).await
    }

    /// [`Catalog::open`] with the state-store migrations of the hub's modules.
    pub async fn open_with(
        lake_url: &str,
        storage_options: HashMap<String, String>,
        state_url: &str,
        migrations: &[ExtraMigration],
    ) -> Result<Arc<Self>, CatalogError> {
        let lake = Lake::new(lake_url, storage_options)?;
        let state = StateStore::connect_with(state_url, migrations).await?;
        Ok(Arc::new(Self {
            state,
            lake,
            schemas: CompiledCache::default(),
        }))
    }

    /// Resolves `penduduk` (the newest registered major) or `penduduk@1` to a binding of a
    /// registered schema.
    pub async fn resolve_binding(&self, text: &str) -> Result<SchemaBinding, CatalogError> {
        let not_registered = |what: &str| {
            CatalogError::Invalid(format!(
                "schema {what} is not registered; see GET /api/v1/schemas"
            ))
        };
        if text.contains('@') {
            let binding = SchemaBinding::parse(text)?;
            return match self
                .state
                .latest_version_in_major(&binding.name, binding.major)
                .await?
            {
                Some(_) => Ok(binding),
                None => Err(not_registered(&binding.to_string())),
            };
        }
        let latest = self
            .state
            .latest_schema_version(text)
            .await?
            .ok_or_else(|| not_registered(&format!("'{text}'")))?;
        let major = simpul_schemas::parse_version(&latest.version)
            .map_err(|e| CatalogError::Invalid(e.0))?
            .0;
        Ok(SchemaBinding {
            name: text.to_string(),
            major,
        })
    }

    /// A dataset's catalog entry, or `NotFound`.
    pub async fn dataset(&self, id: &DatasetId) -> Result<DatasetMeta, CatalogError> {
        self.state
            .dataset(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(id.to_string()))
    }

    /// Compacts a dataset's small files ([`Lake::compact`]), writing the columns its schema
    /// marks `x-pii` without statistics, as ingest and publishes write them.
    pub async fn compact(&self, id: &DatasetId) -> Result<Option<i64>, CatalogError> {
        let meta = self.dataset(id).await?;
        let personal: Vec<String> = match &meta.schema_ref {
            Some(schema_ref) => {
                let binding = SchemaBinding::parse(schema_ref)?;
                let compiled = self.schemas.resolve(&self.state, &binding).await?;
                compiled.pii_columns().map(String::from).collect()
            }
            None => Vec::new(),
        };
        let personal: Vec<&str> = personal.iter().map(String::as_str).collect();
        self.lake
            .compact(&LakeTable::Data(id.clone()), &personal)
            .await
    }

    /// Records in the catalog the statistics of a version just committed (`data`), with the
    /// rejected count given; no table is loaded again.
    pub async fn record_stats(
        &self,
        id: &DatasetId,
        data: &deltalake::DeltaTable,
        rejected: i64,
    ) -> Result<TableStats, CatalogError> {
        let stats = Lake::stats(data)?;
        self.state.record_commit(id, &stats, rejected).await?;
        Ok(stats)
    }

    /// Brings a dataset's row count, size, version and rejected count in the catalog up to
    /// date with the lake, which is the source of truth for all of them.
    pub async fn refresh_stats(&self, id: &DatasetId) -> Result<TableStats, CatalogError> {
        let delta = self
            .lake
            .load_existing(&LakeTable::Data(id.clone()))
            .await?;
        let stats = Lake::stats(&delta)?;
        let rejected = match self.lake.load(&LakeTable::Rejects(id.clone())).await? {
            Some(rejects) => Lake::stats(&rejects)?.row_count,
            None => 0,
        };
        self.state.record_commit(id, &stats, rejected).await?;
        Ok(stats)
    }
}
