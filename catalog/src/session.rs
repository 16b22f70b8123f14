use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::config::SessionConfig;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::Catalog;
use crate::dataset_id::{DatasetId, REJECTS_SUFFIX};
use crate::error::CatalogError;
use crate::lake::LakeTable;

/// The SQL catalog name every dataset lives in: `simpul.<namespace>.<name>`.
pub const SQL_CATALOG: &str = "simpul";

/// The settings Delta scans take from a session: plain `Utf8` text rather than views.
static SCAN_SESSION: LazyLock<Arc<SessionState>> = LazyLock::new(|| {
    Arc::new(
        SessionStateBuilder::new()
            .with_config(SessionSettings::default().session_config())
            .build(),
    )
});

/// A DataFusion provider for one loaded Delta table version.
async fn delta_provider(delta: &deltalake::DeltaTable) -> DfResult<Arc<dyn TableProvider>> {
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
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
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
        config
    }
}

impl Catalog {
    /// A DataFusion session that sees every registered dataset as `namespace.name` (and its
    /// rejects as `namespace.name__rejects`). Tables are opened lazily at their newest version
    /// when a query names them, so commits are visible to the next query.
    pub async fn sql_session(
        self: &Arc<Self>,
        settings: &SessionSettings,
    ) -> Result<SessionContext, CatalogError> {
        let mut namespaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for id in self.state.dataset_ids().await? {
            let tables = namespaces.entry(id.namespace().to_string()).or_default();
            tables.insert(id.name().to_string());
            tables.insert(id.rejects_name());
        }
        let config = settings
            .session_config()
            .with_default_catalog_and_schema(SQL_CATALOG, "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        let runtime = Arc::new(RuntimeEnv::default());
        self.lake.register_object_store(&runtime)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let schemas = namespaces
            .into_iter()
            .map(|(namespace, tables)| {
                let schema = NamespaceSchema {
                    catalog: Arc::clone(self),
                    namespace: namespace.clone(),
                    tables,
                };
                (namespace, Arc::new(schema) as Arc<dyn SchemaProvider>)
            })
            .collect();
        ctx.register_catalog(SQL_CATALOG, Arc::new(LakeCatalog { schemas }));
        Ok(ctx)
    }

    /// Plans a read-only query. Anything but a single SELECT-like statement is refused before
    /// planning, and DataFusion's own guards are on as a second line.
    pub async fn plan_read_query(
        self: &Arc<Self>,
        sql: &str,
        settings: &SessionSettings,
    ) -> Result<DataFrame, CatalogError> {
        check_read_only(sql)?;
        let ctx = self.sql_session(settings).await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        Ok(ctx.sql_with_options(sql, options).await?)
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
        Ok((delta_provider(&delta).await?, resolved))
    }
}

/// Refuses SQL that is not exactly one read-only statement, naming what was found.
pub fn check_read_only(sql: &str) -> Result<(), CatalogError> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| CatalogError::SqlSyntax(e.strip_backtrace()))?;
    match statements.len() {
        0 => Err(CatalogError::SqlSyntax("the query is empty".into())),
        1 => statements.front().map_or(Ok(()), check_statement),
        n => Err(CatalogError::SqlSyntax(format!(
            "send one statement at a time; found {n}"
        ))),
    }
}

fn check_statement(statement: &DfStatement) -> Result<(), CatalogError> {
    let allowed = match statement {
        DfStatement::Statement(inner) => matches!(
            inner.as_ref(),
            SqlStatement::Query(_)
                | SqlStatement::ShowTables { .. }
                | SqlStatement::ShowColumns { .. }
                | SqlStatement::ShowVariable { .. }
                | SqlStatement::ShowFunctions { .. }
                | SqlStatement::ExplainTable { .. }
        ),
        DfStatement::Explain(explain) => return check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            false
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(CatalogError::ReadOnly(format!(
            "{} is not allowed: SQL access is read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE). \
             Data enters the hub through ingest, pipelines or the bus.",
            statement_kind(&statement.to_string())
        )))
    }
}

/// The statement's leading keywords (`CREATE TABLE`, `INSERT INTO`, `SET`), for messages.
fn statement_kind(sql: &str) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let kind = match words.first().map(String::as_str) {
        Some("CREATE" | "DROP" | "ALTER" | "INSERT" | "DELETE") => {
            words.iter().take(3).cloned().collect::<Vec<_>>()
        }
        _ => words.iter().take(1).cloned().collect(),
    };
    let kind = kind
        .into_iter()
        .filter(|w| {
            !matches!(
                w.as_str(),
                "OR" | "REPLACE" | "IF" | "TEMPORARY" | "TEMP" | "UNBOUNDED"
            )
        })
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    if kind.is_empty() {
        "This statement".into()
    } else {
        kind
    }
}

#[derive(Debug)]
struct LakeCatalog {
    schemas: BTreeMap<String, Arc<dyn SchemaProvider>>,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas.get(name).cloned()
    }
}

struct NamespaceSchema {
    catalog: Arc<Catalog>,
    namespace: String,
    tables: BTreeSet<String>,
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
        match delta {
            Some(delta) => Ok(Some(delta_provider(&delta).await?)),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check_read_only(sql) {
            Err(CatalogError::ReadOnly(message)) => message,
            other => panic!("{sql}: expected a read-only refusal, got {other:?}"),
        }
    }

    #[test]
    fn allows_queries_explain_show_and_describe() {
        for sql in [
            "select 1",
            "with t as (select 1 as x) select * from t",
            "explain select 1",
            "show tables",
            "describe stats.x",
        ] {
            assert!(check_read_only(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn refuses_every_kind_of_write_and_names_it() {
        assert!(refused("create table t (a int)").starts_with("CREATE TABLE"));
        assert!(refused("insert into stats.x values (1)").starts_with("INSERT INTO"));
        assert!(refused("update stats.x set a = 1").starts_with("UPDATE"));
        assert!(refused("delete from stats.x").starts_with("DELETE FROM"));
        assert!(refused("drop table stats.x").starts_with("DROP TABLE"));
        assert!(refused("copy (select 1) to '/tmp/x.csv'").starts_with("COPY"));
        assert!(
            refused("create external table t stored as csv location '/etc/passwd'")
                .starts_with("CREATE EXTERNAL")
        );
        assert!(refused("set datafusion.execution.batch_size = 1").starts_with("SET"));
        assert!(
            refused("explain analyze insert into stats.x values (1)").starts_with("INSERT INTO")
        );
    }

    #[test]
    fn refuses_several_statements_and_bad_syntax() {
        assert!(matches!(
            check_read_only("select 1; drop table x"),
            Err(CatalogError::SqlSyntax(_))
        ));
        assert!(matches!(
            check_read_only("selec 1"),
            Err(CatalogError::SqlSyntax(_))
        ));
        assert!(matches!(
            check_read_only("  "),
            Err(CatalogError::SqlSyntax(_))
        ));
    }
}
