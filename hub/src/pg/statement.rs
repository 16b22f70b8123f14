//! Simple and extended queries: each statement is checked read-only, admitted by the query
//! gate, planned in a session made for the caller, streamed, and recorded in the query log.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::Execute;
use pgwire::types::format::FormatOptions;
use simpul_catalog::{CatalogError, QueryOutcome, check_read_only_statement};

use super::show::ServerVariables;
use super::startup::PgSession;
use crate::auth::sql_access;
use crate::query::QueryStopped;
use crate::read::{Controls, PlanFailure, Planned, Read, ReadError, RowLimit};
use crate::server::AppState;

/// The session the statement hooks (`SET`, `SHOW`, `BEGIN`, …) see; they read no tables.
static HOOK_CONTEXT: LazyLock<SessionContext> = LazyLock::new(SessionContext::new);

/// Client metadata key that `SET statement_timeout` writes.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// A parsed statement of the extended protocol.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    statement: Statement,
    /// The plan made at Parse: its parameter and result types answer Describe. Execute plans
    /// again, so a statement prepared long ago still reads the newest data.
    plan: LogicalPlan,
    parameter_types: Vec<Type>,
    /// Whether a statement hook (`SET`, `BEGIN`, …) answers it rather than the engine.
    hooked: bool,
}

/// An error a PostgreSQL client shows as it would a server's.
fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A statement that could not be planned: refused when it would write, failed otherwise.
impl PlanFailure for PgWireError {
    fn outcome(&self) -> QueryOutcome {
        match self {
            PgWireError::UserError(info) if info.code == "25006" => QueryOutcome::Refused,
            _ => QueryOutcome::Failed,
        }
    }
}

/// The SQLSTATE for a catalog error.
fn catalog_error(error: CatalogError) -> PgWireError {
    match error {
        CatalogError::ReadOnly(m) => pg_error("25006", m),
        CatalogError::SqlSyntax(m) => pg_error("42601", m),
        CatalogError::NotFound(what) => pg_error("42P01", format!("dataset {what} does not exist")),
        CatalogError::NoSuchVersion(m) | CatalogError::Invalid(m) => pg_error("22023", m),
        CatalogError::DataFusion(e) => datafusion_error(&e),
        other => pg_error("XX000", other.to_string()),
    }
}

fn datafusion_error(error: &DataFusionError) -> PgWireError {
    if let Some(stopped) = QueryStopped::behind(error) {
        return pg_error("57014", stopped.message.clone());
    }
    let root = error.find_root();
    let message = root.to_string();
    let code = match root {
        DataFusionError::Plan(m) if m.contains("not found") || m.contains("No table named") => {
            if m.contains("table") || m.contains("No table named") {
                "42P01"
            } else {
                "42703"
            }
        }
        DataFusionError::SchemaError(..) => "42703",
        DataFusionError::SQL(..) => "42601",
        DataFusionError::Plan(_) | DataFusionError::NotImplemented(_) => "42000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => "22000",
        _ => "XX000",
    };
    pg_error(code, message)
}

fn session<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<PgSession>> {
    client
        .session_extensions()
        .get::<PgSession>()
        .ok_or_else(|| pg_error("28000", "the connection is not authenticated"))
}

/// The statement-level parser, shared by both protocols.
pub(super) struct Parser {
    app: AppState,
    sql: PostgresCompatibilityParser,
    hooks: Vec<Arc<dyn QueryHook>>,
}

impl Parser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        self.sql
            .parse(sql)
            .map_err(|e| pg_error("42601", format!("syntax error: {e}")))
    }

    /// A session for one statement, for `client`, with the PostgreSQL catalog installed.
    async fn context(
        &self,
        client: &PgSession,
        statement: &Statement,
    ) -> PgWireResult<SessionContext> {
        let access = sql_access(&client.client);
        let ctx = self
            .app
            .catalog
            .session_for_statement(
                &self.app.session_settings(),
                &access,
                &DfStatement::Statement(Box::new(statement.clone())),
            )
            .await
            .map_err(catalog_error)?;
        client
            .pg_catalog
            .install(&ctx)
            .map_err(|e| pg_error("XX000", format!("cannot set up pg_catalog: {e}")))?;
        ctx.register_udf(version_udf());
        Ok(ctx)
    }

    /// Plans a statement the caller has already checked read-only.
    async fn plan(
        &self,
        client: &PgSession,
        statement: &Statement,
    ) -> PgWireResult<(SessionContext, simpul_catalog::PlannedQuery)> {
        let ctx = self.context(client, statement).await?;
        let planned = self
            .app
            .catalog
            .plan_statement(&ctx, DfStatement::Statement(Box::new(statement.clone())))
            .await
            .map_err(catalog_error)?;
        Ok((ctx, planned))
    }
}

/// `version()` as PostgreSQL clients expect it: they parse the leading `PostgreSQL N.M`.
fn version_udf() -> datafusion::logical_expr::ScalarUDF {
    let text = format!(
        "PostgreSQL 16.6 (Simpul {}, Apache DataFusion {}) on x86_64-pc-linux-gnu",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// The parameter types of a plan, in `$1, $2, …` order: the client's declared types first,
/// then what DataFusion inferred (from comparisons or casts).
fn parameter_types(
    plan: &LogicalPlan,
    declared: &[Option<Type>],
) -> PgWireResult<(Vec<Type>, Vec<Option<DataType>>)> {
    let inferred = plan
        .get_parameter_types()
        .map_err(|e| datafusion_error(&e))?;
    let mut casts = std::collections::HashMap::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Limit(limit) = node {
            for bound in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let Expr::Placeholder(p) = bound.as_ref() {
                    casts.insert(p.id.clone(), DataType::Int64);
                }
            }
        }
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                if let Expr::Cast(cast) = e
                    && let Expr::Placeholder(p) = cast.expr.as_ref()
                {
                    casts.insert(p.id.clone(), cast.field.data_type().clone());
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut ids: Vec<(usize, String)> = inferred
        .keys()
        .filter_map(|id| {
            id.trim_start_matches('$')
                .parse()
                .ok()
                .map(|n| (n, id.clone()))
        })
        .collect();
    ids.sort();
    let count = ids.last().map_or(0, |(n, _)| *n).max(declared.len());
    let mut wire = Vec::with_capacity(count);
    let mut arrow = Vec::with_capacity(count);
    for n in 1..=count {
        let id = format!("${n}");
        let data_type = inferred
            .get(&id)
            .cloned()
            .flatten()
            .or_else(|| casts.get(&id).cloned());
        let declared = declared
            .get(n - 1)
            .cloned()
            .flatten()
            .filter(|t| *t != Type::UNKNOWN);
        let pg = match (&declared, &data_type) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => into_pg_type(d)?,
            (None, None) => Type::UNKNOWN,
        };
        wire.push(pg);
        arrow.push(data_type);
    }
    Ok((wire, arrow))
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.len() > 1 {
            return Err(pg_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        for hook in &self.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &HOOK_CONTEXT, client)
                .await
            {
                return Ok(Some(Prepared {
                    statement,
                    plan: plan?,
                    parameter_types: Vec::new(),
                    hooked: true,
                }));
            }
        }
        let session = session(client)?;
        let refuse = |outcome, error: &PgWireError| {
            let read = Read {
                client_id: session.client.id.clone(),
                protocol: "pgwire",
                text: statement.to_string(),
                rows: RowLimit::Configured,
            };
            self.app
                .reads
                .record_unrun(&read, outcome, error.to_string());
        };
        if let Err(e) = check_read_only_statement(&statement) {
            let error = catalog_error(e);
            refuse(QueryOutcome::Refused, &error);
            return Err(error);
        }
        let planned = match self.plan(&session, &statement).await {
            Ok((_, planned)) => planned,
            Err(e) => {
                refuse(QueryOutcome::Failed, &e);
                return Err(e);
            }
        };
        let plan = planned.frame.logical_plan().clone();
        let (parameter_types, _) = parameter_types(&plan, types)?;
        Ok(Some(Prepared {
            statement,
            plan,
            parameter_types,
            hooked: false,
        }))
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(prepared.parameter_types.clone())
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        if prepared.hooked && prepared.plan.schema().fields().is_empty() {
            return Ok(Vec::new());
        }
        arrow_schema_to_pg_fields(
            prepared.plan.schema().as_arrow(),
            format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

/// Answers both query protocols.
pub(super) struct SqlHandler {
    parser: Arc<Parser>,
    departures: super::Departures,
}

impl SqlHandler {
    pub(super) fn new(app: AppState, departures: super::Departures) -> Self {
        Self {
            departures,
            parser: Arc::new(Parser {
                app,
                sql: PostgresCompatibilityParser::new(),
                hooks: vec![
                    Arc::new(ServerVariables),
                    Arc::new(SetShowHook),
                    Arc::new(TransactionStatementHook),
                ],
            }),
        }
    }

    fn app(&self) -> &AppState {
        &self.parser.app
    }

    /// Runs one read-only statement and streams its rows.
    async fn run<C>(
        &self,
        client: &C,
        statement: &Statement,
        params: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Send + Sync,
    {
        let session = session(client)?;
        let app = self.app();
        let timeout = statement_timeout(client, app.config.query.timeout_secs);
        let cancel_request = session.cancel.start_query().await;
        let departure = self.departures.signal(client.socket_addr());
        let cancel: crate::query::CancelSignal = Box::pin(async move {
            tokio::select! {
                Ok(()) = cancel_request => "canceling statement due to user request".to_string(),
                () = departure => "the client went away".to_string(),
            }
        });
        let read = Read {
            client_id: session.client.id.clone(),
            protocol: "pgwire",
            text: statement.to_string(),
            rows: RowLimit::Configured,
        };
        let controls = Controls {
            timeout: Some(timeout),
            cancel: Some(cancel),
            exact_limit: false,
        };
        let plan = async {
            check_read_only_statement(statement).map_err(catalog_error)?;
            let (_ctx, planned) = self.parser.plan(&session, statement).await?;
            let mut frame = planned.frame;
            if let Some(params) = params {
                frame = frame
                    .with_param_values(params)
                    .map_err(|e| datafusion_error(&e))?;
            }
            Ok::<_, PgWireError>(Planned::of(frame, planned.tables))
        };
        let reading = app
            .reads
            .read_with(read, controls, plan)
            .await
            .map_err(|e| match e {
                ReadError::Busy(busy) => pg_error("53000", busy.message),
                ReadError::TimedOut(_) => {
                    pg_error("57014", "canceling statement due to statement timeout")
                }
                ReadError::Cancelled(reason) => pg_error("57014", reason),
                ReadError::Plan(e) => e,
                ReadError::Execute(e) => catalog_error(e),
            })?;
        let (stream, row_limit) = (reading.stream, reading.row_limit);
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(
            stream.schema().as_ref(),
            format,
            Some(options),
        )?);
        Ok(Response::Query(QueryResponse::new(
            fields.clone(),
            rows(stream, fields, row_limit),
        )))
    }
}

/// The client's `statement_timeout`, capped by the hub's.
fn statement_timeout<C: ClientInfo + ?Sized>(client: &C, limit_secs: u64) -> Duration {
    let limit = Duration::from_secs(limit_secs);
    client
        .metadata()
        .get(STATEMENT_TIMEOUT_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis)
        .filter(|t| !t.is_zero())
        .map_or(limit, |t| t.min(limit))
}

type RowIter = Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync>;

/// Encodes batches as data rows. A result longer than the row limit ends in an error rather
/// than stopping short without a word.
fn rows(
    batches: datafusion::execution::SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
    row_limit: u64,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send {
    batches
        .scan((0u64, false), move |(seen, done), batch| {
            if *done {
                return futures::future::ready(None);
            }
            let rows: RowIter = match batch {
                Ok(batch) => {
                    let room = row_limit.saturating_sub(*seen);
                    *seen += batch.num_rows() as u64;
                    if *seen > row_limit {
                        *done = true;
                        let kept = batch.slice(0, room as usize);
                        let over = pg_error(
                            "54000",
                            format!(
                                "the result has more than {row_limit} rows (query.row_limit); \
                                 add a LIMIT, filter or aggregate"
                            ),
                        );
                        Box::new(
                            encode_recordbatch(fields.clone(), kept)
                                .chain(std::iter::once(Err(over))),
                        )
                    } else {
                        Box::new(encode_recordbatch(fields.clone(), batch))
                    }
                }
                Err(e) => {
                    *done = true;
                    Box::new(std::iter::once(Err(datafusion_error(&e))))
                }
            };
            futures::future::ready(Some(stream::iter(rows)))
        })
        .flatten()
}

#[async_trait]
impl SimpleQueryHandler for SqlHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.parse(query)?;
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            for hook in &self.parser.hooks {
                if let Some(response) = hook
                    .handle_simple_query(&statement, &HOOK_CONTEXT, client)
                    .await
                {
                    responses.push(response?);
                    continue 'statements;
                }
            }
            responses.push(
                self.run(&*client, &statement, None, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for SqlHandler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// Streams the rows of an Execute that asks for all of them. pgwire's own Execute
    /// collects every row of the portal before sending the first, which a large result
    /// cannot afford; executions with a row count (portal suspension) keep its behaviour.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0 && !portal.statement.statement.hooked =>
            {
                portal
            }
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(*portal.state().lock().await, PortalExecutionState::Initial) {
            return self._on_execute(client, message).await;
        }
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let response = ExtendedQueryHandler::do_query(self, client, portal.as_ref(), 0).await?;
        let Response::Query(mut results) = response else {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Err(pg_error("XX000", "a query returned no rows description"));
        };
        let mut sent = 0;
        while let Some(row) = results.data_rows().next().await {
            client.feed(PgWireBackendMessage::DataRow(row?)).await?;
            sent += 1;
        }
        let tag = Tag::new(results.command_tag()).with_rows(sent);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        if prepared.hooked {
            for hook in &self.parser.hooks {
                if let Some(response) = hook
                    .handle_extended_query(
                        &prepared.statement,
                        &prepared.plan,
                        &ParamValues::List(Vec::new()),
                        &HOOK_CONTEXT,
                        client,
                    )
                    .await
                {
                    return response;
                }
            }
        }
        let (_, arrow) = parameter_types(&prepared.plan, &[])?;
        let wire: Vec<Option<&Type>> = prepared.parameter_types.iter().map(Some).collect();
        let arrow: Vec<Option<&DataType>> = arrow.iter().map(Option::as_ref).collect();
        let params = deserialize_parameters_with_server_types(portal, &arrow, &wire)?;
        self.run(
            &*client,
            &prepared.statement,
            Some(params),
            &portal.result_column_format,
        )
        .await
    }
}
