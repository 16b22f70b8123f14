//! `pg_catalog` for one connection.
//!
//! Clients read an object's OID in one query and use it in the next (psql's `\d` finds a
//! table's OID, then asks `pg_attribute` for it). `pg_catalog` hands OIDs out as it meets
//! objects, so each connection keeps one `pg_catalog` across its queries, pointed at the
//! newest query's session. A connection runs one query at a time, so the pointer never
//! changes under a running query.

use std::sync::{Arc, LazyLock, RwLock};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::CatalogProviderList;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    self as pg, PgCatalogSchemaProvider, PgCatalogStaticTables, array_bounds_udf, format_type,
    has_privilege_udf, pg_get_expr_udf, quote_ident_udf,
};
use simpul_catalog::SQL_CATALOG;

/// The static `pg_catalog` tables (types, functions, operators), decoded once per process.
static STATIC_TABLES: LazyLock<Result<Arc<PgCatalogStaticTables>, String>> = LazyLock::new(|| {
    PgCatalogStaticTables::try_new()
        .map(Arc::new)
        .map_err(|e| format!("cannot load the pg_catalog tables: {e}"))
});

/// The catalogs of the connection's current query.
#[derive(Debug, Clone)]
struct CurrentCatalogs(Arc<RwLock<Option<Arc<dyn CatalogProviderList>>>>);

impl CurrentCatalogs {
    fn get(&self) -> Result<Arc<dyn CatalogProviderList>, DataFusionError> {
        self.0
            .read()
            .ok()
            .and_then(|current| current.clone())
            .ok_or_else(|| DataFusionError::Internal("pg_catalog has no session".into()))
    }
}

#[async_trait]
impl CatalogInfo for CurrentCatalogs {
    async fn catalog_names(&self) -> Result<Vec<String>, DataFusionError> {
        CatalogInfo::catalog_names(&self.get()?).await
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        CatalogInfo::schema_names(&self.get()?, catalog).await
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> Result<Option<Vec<String>>, DataFusionError> {
        CatalogInfo::table_names(&self.get()?, catalog, schema).await
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, DataFusionError> {
        CatalogInfo::table_schema(&self.get()?, catalog, schema, table).await
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>, DataFusionError> {
        CatalogInfo::table_type(&self.get()?, catalog, schema, table).await
    }
}

/// One connection's `pg_catalog`.
#[derive(Debug)]
pub(super) struct ConnectionCatalog {
    current: CurrentCatalogs,
    schema: Arc<PgCatalogSchemaProvider<CurrentCatalogs, EmptyContextProvider>>,
}

impl ConnectionCatalog {
    /// A `pg_catalog` with no OIDs handed out yet.
    pub(super) fn new() -> Result<Self, String> {
        let tables = STATIC_TABLES.as_ref().map_err(Clone::clone)?.clone();
        let current = CurrentCatalogs(Arc::new(RwLock::new(None)));
        let schema =
            PgCatalogSchemaProvider::try_new(current.clone(), tables, EmptyContextProvider)
                .map_err(|e| format!("cannot set up pg_catalog: {e}"))?;
        Ok(Self {
            current,
            schema: Arc::new(schema),
        })
    }

    /// Installs `pg_catalog` and the PostgreSQL functions clients call into `ctx`, which
    /// becomes the session `pg_catalog` describes.
    pub(super) fn install(&self, ctx: &SessionContext) -> Result<(), DataFusionError> {
        if let Ok(mut current) = self.current.0.write() {
            *current = Some(ctx.state().catalog_list().clone());
        }
        ctx.catalog(SQL_CATALOG)
            .ok_or_else(|| DataFusionError::Internal("the simpul catalog is missing".into()))?
            .register_schema("pg_catalog", self.schema.clone())?;
        ctx.register_udf(pg::create_current_database_udf(SQL_CATALOG));
        ctx.register_udf(pg::create_current_schema_udf());
        ctx.register_udf(pg::create_current_schemas_udf());
        ctx.register_udf(pg::create_pg_get_userbyid_udf());
        for privilege in [
            "has_table_privilege",
            "has_schema_privilege",
            "has_database_privilege",
            "has_any_column_privilege",
        ] {
            ctx.register_udf(has_privilege_udf::create_has_privilege_udf(privilege));
        }
        ctx.register_udf(pg::create_pg_table_is_visible());
        ctx.register_udf(format_type::create_format_type_udf());
        ctx.register_udf(pg::create_session_user_udf());
        if let Ok(tables) = STATIC_TABLES.as_ref() {
            ctx.register_udtf("pg_get_keywords", tables.pg_get_keywords.clone());
        }
        ctx.register_udf(pg_get_expr_udf::create_pg_get_expr_udf());
        ctx.register_udf(pg::create_pg_get_partkeydef_udf());
        ctx.register_udf(pg::create_pg_relation_is_publishable_udf());
        ctx.register_udf(pg::create_pg_get_statisticsobjdef_columns_udf());
        ctx.register_udf(pg::create_pg_encoding_to_char_udf());
        ctx.register_udf(pg::create_pg_backend_pid_udf());
        ctx.register_udf(pg::create_pg_relation_size_udf());
        ctx.register_udf(pg::create_pg_total_relation_size_udf());
        ctx.register_udf(pg::create_pg_stat_get_numscans());
        ctx.register_udf(pg::create_pg_get_constraintdef());
        ctx.register_udf(pg::create_pg_get_partition_ancestors_udf());
        ctx.register_udf(quote_ident_udf::create_quote_ident_udf());
        ctx.register_udf(quote_ident_udf::create_parse_ident_udf());
        ctx.register_udf(array_bounds_udf::create_array_upper_udf());
        ctx.register_udf(array_bounds_udf::create_array_lower_udf());
        {
            let state = ctx.state_ref();
            let existing = state.read().clone();
            *state.write() = SessionStateBuilder::new_from_existing(existing)
                .with_type_planner(Arc::new(PgOidTypePlanner))
                .build();
        }
        CoerceIntArgsToBigInt::widen(ctx);
        Ok(())
    }
}
