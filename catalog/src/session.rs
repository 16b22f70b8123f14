//! The DataFusion session factory: every dataset as `namespace.name`, seen through the
//! caller's access (personal columns masked, operational tables for admins only), with time
//! travel and per-query limits.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::config::SessionConfig;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;

use crate::Catalog;
use crate::dataset_id::{DatasetId, REJECTS_SUFFIX};
use crate::error::CatalogError;
use crate::grants::{Principal, Right, may_read};
use crate::lake::LakeTable;
use crate::mask::{ColumnMask, MaskKind, masked_provider};
use crate::query_log::{OPERATIONAL_TABLES, OperationalTable};
use crate::read_only::check_read_only;
use crate::time_travel::{self, TimeTravelTables};
use crate::view_grouping::ViewKeyedGrouping;

/// The SQL catalog name every dataset lives in: `simpul.<namespace>.<name>`.
pub const SQL_CATALOG: &str = "simpul";

/// The schema that holds the operational tables (`simpul.query_log`, `simpul.audit`).
pub const OPERATIONAL_SCHEMA: &str = "simpul";

/// The settings Delta scans take from a session: plain `Utf8` text rather than views.
static SCAN_SESSION: LazyLock<Arc<SessionState>> = LazyLock::new(|| {
    Arc::new(
        SessionStateBuilder::new()
            .with_config(SessionSettings::default().session_config())
            .build(),
    )
});

/// A DataFusion provider for one loaded Delta table version.
pub(crate) async fn delta_provider(
    delta: &deltalake::DeltaTable,
) -> DfResult<Arc<dyn TableProvider>> {
    delta
        .table_provider()
        .with_session(SCAN_SESSION.clone())
        .await
}

/// Limits and settings of one SQL session.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Rows per Arrow batch produced by queries.
    pub batch_size: usize,
    /// Threads a query may use.
    pub target_partitions: usize,
    /// Memory one query may hold; sorts, joins and aggregations spill to disk beyond it.
    /// `None` leaves memory unbounded.
    pub memory_limit_bytes: Option<usize>,
    /// Whether aggregations keyed on one text column group by its string views
    /// ([`crate::view_grouping`]).
    pub view_keyed_grouping: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_limit_bytes: None,
            view_keyed_grouping: true,
        }
    }
}

impl SessionSettings {
    /// DataFusion settings for these limits. Text stays plain `Utf8` (not `Utf8View`), which
    /// every client library and file format reads.
    pub fn session_config(&self) -> SessionConfig {
        let mut config = SessionConfig::new()
            .with_batch_size(self.batch_size)
            .with_target_partitions(self.target_partitions);
        let options = config.options_mut();
        options.execution.parquet.schema_force_view_types = false;
        options.sql_parser.map_string_types_to_utf8view = false;
        // Timestamps are UTC in storage; `timestamptz` casts and now() carry the zone.
        options.execution.time_zone = Some("UTC".into());
        config
    }

    /// A DataFusion context with these settings' optimizer rules, on `config` and `runtime`.
    pub(crate) fn context(
        &self,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
    ) -> SessionContext {
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        let builder = if self.view_keyed_grouping {
            builder.with_physical_optimizer_rule(Arc::new(ViewKeyedGrouping))
        } else {
            builder
        };
        SessionContext::new_with_state(builder.build())
    }

    pub(crate) fn runtime(&self) -> Result<Arc<RuntimeEnv>, CatalogError> {
        let builder = RuntimeEnvBuilder::new();
        let builder = match self.memory_limit_bytes {
            Some(limit) => builder.with_memory_pool(Arc::new(FairSpillPool::new(limit))),
            None => builder,
        };
        Ok(builder.build_arc()?)
    }
}

/// What a SQL caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlAccess {
    /// The API client, as recorded in the query log.
    pub client_id: String,
    /// Whether personal (`x-pii`) columns show unmasked in every dataset.
    pub pii: bool,
    /// Whether the operational tables (`simpul.query_log`, `simpul.audit`) exist for it.
    pub operational: bool,
    /// The subsystem the caller acts for, whose grants and classification defaults decide
    /// which datasets exist for it and which show personal columns. `None` sees every
    /// dataset.
    pub principal: Option<Principal>,
    /// Only datasets classified `public` exist for it (the public portal and public
    /// dashboards, read without a key).
    pub public_only: bool,
}

impl SqlAccess {
    /// Everything, unmasked: the local CLI and admins.
    pub fn full(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            pii: true,
            operational: true,
            principal: None,
            public_only: false,
        }
    }

    /// Anyone, without a key: public datasets only, personal columns masked.
    pub fn public(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            pii: false,
            operational: false,
            principal: None,
            public_only: true,
        }
    }

    /// What `principal` may read under the access policy ([`crate::may_read`]): personal
    /// columns masked unless it holds `pii` on the dataset, no operational tables.
    pub fn member(client_id: &str, principal: Principal) -> Self {
        Self {
            client_id: client_id.to_string(),
            pii: false,
            operational: false,
            principal: Some(principal),
            public_only: false,
        }
    }
}

/// A planned read-only query and what it reads.
#[derive(Debug)]
pub struct PlannedQuery {
    /// The plan, ready to run.
    pub frame: DataFrame,
    /// The tables it reads, `namespace.name` (`stats.x@v3` for time travel).
    pub tables: Vec<String>,
}

/// The masks of one table: column name and how it is masked.
pub(crate) type Masks = Vec<(String, ColumnMask)>;

/// What one caller's session is made of: every dataset with its schema binding, and the
/// masks the caller needs by table.
pub(crate) struct CallerView {
    pub(crate) datasets: Vec<(DatasetId, Option<String>)>,
    pub(crate) masks: HashMap<String, Masks>,
}

impl CallerView {
    pub(crate) fn sees(&self, dataset: &DatasetId) -> bool {
        self.datasets.iter().any(|(id, _)| id == dataset)
    }
}

impl Catalog {
    /// A DataFusion session that sees every registered dataset as `namespace.name` (and its
    /// rejects as `namespace.name__rejects`), through `access`. Tables are opened lazily at
    /// their newest version when a query names them, so commits are visible to the next
    /// query.
    pub async fn sql_session(
        self: &Arc<Self>,
        settings: &SessionSettings,
        access: &SqlAccess,
    ) -> Result<SessionContext, CatalogError> {
        let view = self.view(access).await?;
        self.sql_session_with(settings, access, &view, TimeTravelTables::default())
    }

    fn sql_session_with(
        self: &Arc<Self>,
        settings: &SessionSettings,
        access: &SqlAccess,
        view: &CallerView,
        time_travel: TimeTravelTables,
    ) -> Result<SessionContext, CatalogError> {
        let masks = &view.masks;
        let mut namespaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, _) in &view.datasets {
            let tables = namespaces.entry(id.namespace().to_string()).or_default();
            tables.insert(id.name().to_string());
            tables.insert(id.rejects_name());
        }
        let config = settings
            .session_config()
            .with_default_catalog_and_schema(SQL_CATALOG, "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        let runtime = settings.runtime()?;
        self.lake.register_object_store(&runtime)?;
        let ctx = settings.context(config, runtime);
        let mut schemas: BTreeMap<String, Arc<dyn SchemaProvider>> = namespaces
            .into_iter()
            .map(|(namespace, tables)| {
                let schema = NamespaceSchema {
                    catalog: Arc::clone(self),
                    masks: masks
                        .iter()
                        .filter_map(|(id, masks)| {
                            id.strip_prefix(&format!("{namespace}."))
                                .map(|name| (name.to_string(), masks.clone()))
                        })
                        .collect(),
                    namespace: namespace.clone(),
                    tables,
                };
                (namespace, Arc::new(schema) as Arc<dyn SchemaProvider>)
            })
            .collect();
        if access.operational {
            schemas.insert(
                OPERATIONAL_SCHEMA.to_string(),
                Arc::new(OperationalSchema {
                    catalog: Arc::clone(self),
                }),
            );
        }
        ctx.register_catalog(
            SQL_CATALOG,
            Arc::new(LakeCatalog {
                schemas: std::sync::RwLock::new(schemas),
            }),
        );
        time_travel::register(&ctx, time_travel);
        Ok(ctx)
    }

    /// The datasets `access` may read and the masks it needs, with one read of the datasets
    /// and one of the caller's grants.
    pub(crate) async fn view(&self, access: &SqlAccess) -> Result<CallerView, CatalogError> {
        let all = self.state.dataset_access_refs().await?;
        let rights = match &access.principal {
            Some(principal) => Some((principal, self.state.rights_of(principal).await?)),
            None => None,
        };
        let mut datasets = Vec::new();
        let mut unmasked = HashSet::new();
        for dataset in all {
            if access.public_only && dataset.classification != crate::Classification::Public {
                continue;
            }
            if let Some((principal, rights)) = &rights {
                if !may_read(
                    principal,
                    rights,
                    &dataset.id,
                    dataset.classification,
                    &dataset.owner,
                ) {
                    continue;
                }
                if rights.has(&dataset.id, Right::Pii) {
                    unmasked.insert(dataset.id.clone());
                }
            }
            datasets.push((dataset.id, dataset.schema_ref));
        }
        let masks = self.masks(&datasets, access, &unmasked).await?;
        Ok(CallerView { datasets, masks })
    }

    /// The masks `access` needs, by table (`namespace.name` and `namespace.name__rejects`):
    /// the personal columns of each dataset's schema, and the raw record and the reasons of
    /// its rejects (`ColumnMask::rejects`), except in the datasets `unmasked` holds `pii`
    /// grants on.
    async fn masks(
        &self,
        datasets: &[(DatasetId, Option<String>)],
        access: &SqlAccess,
        unmasked: &HashSet<DatasetId>,
    ) -> Result<HashMap<String, Masks>, CatalogError> {
        let mut masks = HashMap::new();
        if access.pii {
            return Ok(masks);
        }
        for (id, schema_ref) in datasets {
            let Some(schema_ref) = schema_ref else {
                continue;
            };
            if unmasked.contains(id) {
                continue;
            }
            let binding = crate::SchemaBinding::parse(schema_ref)?;
            let compiled = self.schemas.resolve(&self.state, &binding).await?;
            let personal: Masks = compiled
                .pii_columns()
                .map(|column| {
                    let kind = MaskKind::for_column(column);
                    (column.to_string(), ColumnMask::Value(kind))
                })
                .collect();
            if personal.is_empty() {
                continue;
            }
            let plain = compiled
                .properties
                .iter()
                .filter(|p| !p.pii)
                .map(|p| p.name.clone())
                .collect();
            masks.insert(
                format!("{}{REJECTS_SUFFIX}", id),
                ColumnMask::rejects(plain),
            );
            masks.insert(id.to_string(), personal);
        }
        Ok(masks)
    }

    /// Plans a read-only query. Anything but a single SELECT-like statement is refused before
    /// planning, and DataFusion's own guards are on as a second line.
    pub async fn plan_read_query(
        self: &Arc<Self>,
        sql: &str,
        settings: &SessionSettings,
        access: &SqlAccess,
    ) -> Result<PlannedQuery, CatalogError> {
        let statement = check_read_only(sql)?;
        let ctx = self
            .session_for_statement(settings, access, &statement)
            .await?;
        self.plan_statement(&ctx, statement).await
    }

    /// A session for one checked statement, with the table versions its time-travel
    /// functions name already loaded. Callers may add to the session (the PostgreSQL
    /// catalog) before planning.
    pub async fn session_for_statement(
        self: &Arc<Self>,
        settings: &SessionSettings,
        access: &SqlAccess,
        statement: &DfStatement,
    ) -> Result<SessionContext, CatalogError> {
        let wanted = time_travel::references(statement)?;
        let view = self.view(access).await?;
        let mut loaded = TimeTravelTables::default();
        for reference in wanted {
            let provider = self.time_travel_provider(&reference, &view).await?;
            loaded.insert(reference, provider);
        }
        self.sql_session_with(settings, access, &view, loaded)
    }

    async fn time_travel_provider(
        &self,
        reference: &time_travel::Reference,
        view: &CallerView,
    ) -> Result<Arc<dyn TableProvider>, CatalogError> {
        let table = reference.lake_table()?;
        if !view.sees(table.dataset()) {
            return Err(CatalogError::NotFound(table.dataset().to_string()));
        }
        let masks = &view.masks;
        let delta = match &reference.point {
            time_travel::Point::Version(v) => self.lake.load_version(&table, *v).await?,
            time_travel::Point::At(at) => self.lake.load_as_of(&table, *at).await?,
        };
        let provider = crate::scan::table_provider(&delta).await?;
        Ok(match masks.get(&reference.table) {
            Some(personal) => masked_provider(&reference.table, provider, personal)?,
            None => provider,
        })
    }

    /// Plans a checked statement in `ctx` with writes, DDL and session statements refused.
    pub async fn plan_statement(
        &self,
        ctx: &SessionContext,
        statement: DfStatement,
    ) -> Result<PlannedQuery, CatalogError> {
        let state = ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        let tables = tables_read(&plan);
        Ok(PlannedQuery {
            frame: crate::scan::plain_text(DataFrame::new(state, plan))?,
            tables,
        })
    }

    /// A table provider for a table at `version` (newest when `None`), for the records API
    /// and time travel, with the version it resolved to.
    pub async fn provider_at(
        &self,
        table: &LakeTable,
        version: Option<i64>,
    ) -> Result<(Arc<dyn TableProvider>, i64), CatalogError> {
        let delta = match version {
            Some(v) => self.lake.load_version(table, v).await?,
            None => self.lake.load_existing(table).await?,
        };
        let resolved = delta.version().map_or(0, |v| v as i64);
        Ok((crate::scan::table_provider(&delta).await?, resolved))
    }

    /// `provider` of `table` as `access` may see it: masked when the caller lacks the PII
    /// grant and the table holds personal columns. A table the caller may not read does
    /// not exist for it.
    pub async fn provider_for(
        &self,
        table: &LakeTable,
        provider: Arc<dyn TableProvider>,
        access: &SqlAccess,
    ) -> Result<Arc<dyn TableProvider>, CatalogError> {
        let view = self.view(access).await?;
        if !view.sees(table.dataset()) {
            return Err(CatalogError::NotFound(table.dataset().to_string()));
        }
        let name = table.qualified_name();
        Ok(match view.masks.get(&name) {
            Some(personal) => masked_provider(&name, provider, personal)?,
            None => provider,
        })
    }
}

/// `frame` cut to at most `rows` rows. EXPLAIN answers are left whole: DataFusion plans
/// them only as the root of a plan.
pub fn limit_rows(frame: DataFrame, rows: u64) -> DfResult<DataFrame> {
    if matches!(
        frame.logical_plan(),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_)
    ) {
        return Ok(frame);
    }
    frame.limit(0, Some(usize::try_from(rows).unwrap_or(usize::MAX)))
}

/// The tables a plan scans, without the catalog prefix and without the PostgreSQL and
/// information schemas.
fn tables_read(plan: &LogicalPlan) -> Vec<String> {
    let mut tables = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan.table_name.to_string();
            let name = name
                .strip_prefix(&format!("{SQL_CATALOG}."))
                .unwrap_or(&name)
                .to_string();
            if !name.starts_with("pg_catalog.") && !name.starts_with("information_schema.") {
                tables.insert(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables.into_iter().collect()
}

/// The `simpul` catalog. Schemas are added only by the hub itself (the PostgreSQL
/// catalog); statements that would create one are refused before planning.
#[derive(Debug)]
struct LakeCatalog {
    schemas: std::sync::RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas.read().ok()?.get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let mut schemas = self
            .schemas
            .write()
            .map_err(|_| DataFusionError::Internal("the schema list is poisoned".into()))?;
        Ok(schemas.insert(name.to_string(), schema))
    }
}

struct NamespaceSchema {
    catalog: Arc<Catalog>,
    namespace: String,
    tables: BTreeSet<String>,
    masks: HashMap<String, Masks>,
}

impl std::fmt::Debug for NamespaceSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceSchema")
            .field("namespace", &self.namespace)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl NamespaceSchema {
    fn lake_table(&self, name: &str) -> Option<LakeTable> {
        if !self.tables.contains(name) {
            return None;
        }
        let (dataset, rejects) = match name.strip_suffix(REJECTS_SUFFIX) {
            Some(base) => (base, true),
            None => (name, false),
        };
        let id: DatasetId = format!("{}.{dataset}", self.namespace).parse().ok()?;
        Some(if rejects {
            LakeTable::Rejects(id)
        } else {
            LakeTable::Data(id)
        })
    }
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.lake_table(name) else {
            return Ok(None);
        };
        let delta = self
            .catalog
            .lake
            .load(&table)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some(delta) = delta else {
            return Ok(None);
        };
        let provider = crate::scan::table_provider(&delta).await?;
        Ok(Some(match self.masks.get(name) {
            Some(personal) => {
                masked_provider(&format!("{}.{name}", self.namespace), provider, personal)?
            }
            None => provider,
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains(name)
    }
}

/// `simpul.query_log` and `simpul.audit`, for admins.
struct OperationalSchema {
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for OperationalSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationalSchema").finish_non_exhaustive()
    }
}

#[async_trait]
impl SchemaProvider for OperationalSchema {
    fn table_names(&self) -> Vec<String> {
        OPERATIONAL_TABLES.iter().map(ToString::to_string).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(OperationalTable::named(&self.catalog.state, name)
            .map(|table| Arc::new(table) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        OPERATIONAL_TABLES.contains(&name)
    }
}
