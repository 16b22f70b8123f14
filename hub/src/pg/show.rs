//! `SHOW` of the server variables whose honest answer differs from the library default:
//! every transaction is read-only, and the server version is Simpul's.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;

/// The PostgreSQL version Simpul answers as: the catalog queries it serves are those of 16.
const SERVER_VERSION_NUM: &str = "160006";

fn value(name: &str) -> Option<String> {
    Some(match name {
        "transaction_read_only" | "default_transaction_read_only" => "on".into(),
        "server_version" => format!("16.6 (Simpul {})", env!("CARGO_PKG_VERSION")),
        "server_version_num" => SERVER_VERSION_NUM.into(),
        "standard_conforming_strings" => "on".into(),
        "server_encoding" | "client_encoding" => "UTF8".into(),
        _ => return None,
    })
}

fn answer(statement: &Statement) -> Option<(String, String)> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let [name] = variable.as_slice() else {
        return None;
    };
    let name = name.value.to_ascii_lowercase();
    value(&name).map(|v| (name, v))
}

fn respond(name: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter([Ok(row)]),
    )))
}

/// Answers `SHOW` of the variables above; others go to the library's hook.
#[derive(Debug)]
pub(super) struct ServerVariables;

#[async_trait]
impl QueryHook for ServerVariables {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement).map(|(name, value)| respond(&name, &value))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let (name, _) = answer(statement)?;
        let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            name,
            arrow::datatypes::DataType::Utf8,
            false,
        )]);
        Some(
            datafusion::common::DFSchema::try_from(schema)
                .map(|schema| {
                    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                        produce_one_row: true,
                        schema: Arc::new(schema),
                    })
                })
                .map_err(|e| pgwire::error::PgWireError::ApiError(Box::new(e))),
        )
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement).map(|(name, value)| respond(&name, &value))
    }
}
