//! Arrow Flight SQL, for Arrow-native clients (ADBC, JDBC's Flight driver, Polars, DuckDB).
//!
//! The same rules as the other SQL endpoints: the caller's key (a bearer token, or Basic
//! `client-id:key` in the handshake), read-only statements, the caller's masking, the query
//! gate and the query log. Prepared statement handles carry their SQL and bound parameters
//! (the protocol allows a stateless server to hand back a new handle when parameters are
//! bound), so the server keeps no per-statement state to leak; every use re-checks the key
//! and the statement, so a hand-made handle can do no more than a plain query.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::catalog::CatalogProvider;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use futures::{Stream, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use simpul_catalog::{ApiClient, CatalogError, QueryOutcome, Role, SQL_CATALOG};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{key_hash, sql_access};
use crate::query::QueryStopped;
use crate::read::{Controls, PlanError, Read, ReadError, RowLimit};
use crate::server::AppState;

/// A prepared statement, as its handle carries it.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    sql: String,
    /// The bound parameters as an Arrow IPC stream of one row, hex-encoded.
    #[serde(default)]
    params: Option<String>,
}

impl Handle {
    fn encode(&self) -> Result<bytes::Bytes, Status> {
        serde_json::to_vec(self)
            .map(Into::into)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("this prepared statement handle is not Simpul's"))
    }

    fn parameters(&self) -> Result<Option<ParamValues>, Status> {
        let Some(hex) = &self.params else {
            return Ok(None);
        };
        let bytes =
            hex::decode(hex).map_err(|_| Status::invalid_argument("bad parameter bytes"))?;
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        let mut values = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
            if batch.num_rows() != 1 {
                return Err(Status::invalid_argument(format!(
                    "bind one row of parameters, not {}",
                    batch.num_rows()
                )));
            }
            for column in batch.columns() {
                let value = ScalarValue::try_from_array(column, 0)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                values.push(value.into());
            }
        }
        Ok(Some(ParamValues::List(values)))
    }
}

fn status(error: CatalogError) -> Status {
    match error {
        CatalogError::ReadOnly(m) => Status::permission_denied(m),
        CatalogError::SqlSyntax(m) | CatalogError::Invalid(m) | CatalogError::NoSuchVersion(m) => {
            Status::invalid_argument(m)
        }
        CatalogError::NotFound(what) => Status::not_found(format!("dataset {what} does not exist")),
        CatalogError::DataFusion(e) => datafusion_status(&e),
        other => Status::internal(other.to_string()),
    }
}

fn datafusion_status(error: &datafusion::error::DataFusionError) -> Status {
    use datafusion::error::DataFusionError as E;
    if let Some(stopped) = QueryStopped::behind(error) {
        return match stopped.outcome {
            QueryOutcome::TimedOut => Status::deadline_exceeded(stopped.message.clone()),
            _ => Status::cancelled(stopped.message.clone()),
        };
    }
    let root = error.find_root();
    match root {
        E::ResourcesExhausted(m) => {
            Status::resource_exhausted(format!("the query needs more memory than allowed: {m}"))
        }
        E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) => {
            Status::invalid_argument(root.to_string())
        }
        _ => Status::internal(root.to_string()),
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// The Flight SQL service.
#[derive(Clone)]
pub struct SimpulFlight {
    app: AppState,
    info: Arc<SqlInfoData>,
}

impl SimpulFlight {
    fn new(app: AppState) -> Result<Self, String> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Simpul");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        let info = info.build().map_err(|e| e.to_string())?;
        Ok(Self {
            app,
            info: Arc::new(info),
        })
    }

    /// The client behind a call's bearer key; SQL needs role analyst or admin.
    async fn caller<T>(&self, request: &Request<T>) -> Result<ApiClient, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated("send your API key as 'authorization: Bearer <key>'")
            })?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be 'Bearer <key>'")
            })?;
        self.client_by_key(key.trim()).await
    }

    async fn client_by_key(&self, key: &str) -> Result<ApiClient, Status> {
        let client = self
            .app
            .catalog
            .state
            .active_client_by_key_hash(&key_hash(key))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| {
                Status::unauthenticated("this API key is unknown or has been revoked")
            })?;
        if client.role == Role::Producer {
            return Err(Status::permission_denied(format!(
                "client {} has role producer; SQL needs a key with role analyst or admin",
                client.id
            )));
        }
        Ok(client)
    }

    /// Plans `sql` for `client` and returns its result schema and parameter schema.
    async fn describe(&self, client: &ApiClient, sql: &str) -> Result<(SchemaRef, Schema), Status> {
        let planned = self
            .app
            .catalog
            .plan_read_query(sql, &self.app.session_settings(), &sql_access(client))
            .await
            .map_err(status)?;
        let plan = planned.frame.logical_plan();
        let result = Arc::new(plan.schema().as_arrow().clone());
        let mut params: Vec<(usize, DataType)> = plan
            .get_parameter_types()
            .map_err(|e| datafusion_status(&e))?
            .into_iter()
            .filter_map(|(id, t)| {
                let n = id.trim_start_matches('$').parse().ok()?;
                Some((n, t.unwrap_or(DataType::Null)))
            })
            .collect();
        params.sort_by_key(|(n, _)| *n);
        let params = Schema::new(
            params
                .into_iter()
                .map(|(n, t)| Field::new(format!("${n}"), t, true))
                .collect::<Vec<_>>(),
        );
        Ok((result, params))
    }

    /// Runs `sql` for `client` and streams it as Flight data.
    async fn run(
        &self,
        client: &ApiClient,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<Response<DoGetStream>, Status> {
        let app = &self.app;
        let read = Read {
            client_id: client.id.clone(),
            protocol: "flight",
            text: sql.to_string(),
            rows: RowLimit::Configured,
        };
        let controls = Controls {
            exact_limit: true,
            ..Controls::default()
        };
        let reading = app
            .reads
            .read_with(read, controls, async {
                let mut planned = app.reads.plan_sql(sql, None, &sql_access(client)).await?;
                if let Some(params) = params {
                    planned.frame = planned.frame.with_param_values(params)?;
                }
                Ok::<_, PlanError>(planned)
            })
            .await
            .map_err(|e| match e {
                ReadError::Busy(busy) => Status::unavailable(busy.message),
                ReadError::TimedOut(secs) => Status::deadline_exceeded(format!(
                    "the query did not finish planning within {secs} s (query.timeout_secs)"
                )),
                ReadError::Cancelled(reason) => Status::cancelled(reason),
                ReadError::Plan(PlanError::Catalog(e)) | ReadError::Execute(e) => status(e),
                ReadError::Plan(PlanError::Api(e)) if e.status().is_client_error() => {
                    Status::invalid_argument(e.detail())
                }
                ReadError::Plan(PlanError::Api(e)) => Status::internal(e.detail()),
            })?;
        let stream = reading.stream;
        let schema = stream.schema();
        let batches = stream.map_err(|e| FlightError::Tonic(Box::new(datafusion_status(&e))));
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(data)))
    }

    fn info(
        schema: &Schema,
        ticket: bytes::Bytes,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket { ticket });
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// The flight info of a metadata listing: the caller is checked, the command is the ticket.
    async fn listing(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        Self::info(schema, command.encode_to_vec().into(), request.into_inner())
    }

    fn batch_stream(schema: SchemaRef, batch: Result<RecordBatch, FlightError>) -> DoGetStream {
        Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(futures::stream::once(async { batch }))
                .map_err(Status::from),
        )
    }

    /// The `simpul` catalog as the caller sees it.
    async fn catalog(&self, client: &ApiClient) -> Result<Arc<dyn CatalogProvider>, Status> {
        self.app
            .catalog
            .sql_session(&self.app.session_settings(), &sql_access(client))
            .await
            .map_err(status)?
            .catalog(SQL_CATALOG)
            .ok_or_else(|| Status::internal("the simpul catalog is missing"))
    }

    /// Every table the caller sees, as (schema, table, Arrow schema). Tables are opened only
    /// when their Arrow schemas are asked for; otherwise the schema is empty.
    async fn tables(
        &self,
        client: &ApiClient,
        with_schemas: bool,
    ) -> Result<Vec<(String, String, SchemaRef)>, Status> {
        let catalog = self.catalog(client).await?;
        let mut tables = Vec::new();
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table in schema.table_names() {
                let table_schema = if with_schemas {
                    match schema
                        .table(&table)
                        .await
                        .map_err(|e| datafusion_status(&e))?
                    {
                        Some(provider) => simpul_catalog::plain_text_schema(&provider.schema()),
                        None => continue,
                    }
                } else {
                    Arc::new(Schema::empty())
                };
                tables.push((schema_name.clone(), table, table_schema));
            }
        }
        Ok(tables)
    }
}

#[tonic::async_trait]
impl FlightSqlService for SimpulFlight {
    type FlightService = SimpulFlight;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let key = if let Some(basic) = header.strip_prefix("Basic ") {
            let decoded = decode_basic(basic).ok_or_else(|| {
                Status::invalid_argument("the Basic credentials are not base64 'user:key'")
            })?;
            let (user, key) = decoded
                .split_once(':')
                .ok_or_else(|| Status::invalid_argument("Basic credentials are 'client-id:key'"))?;
            let client = self.client_by_key(key).await?;
            if client.id != user {
                return Err(Status::unauthenticated(format!(
                    "this key belongs to client {}; use that user name",
                    client.id
                )));
            }
            key.to_string()
        } else {
            self.caller(&request).await?;
            header
                .trim_start_matches("Bearer ")
                .trim_start_matches("bearer ")
                .to_string()
        };
        let token = MetadataValue::try_from(format!("Bearer {key}"))
            .map_err(|_| Status::invalid_argument("the key is not valid header text"))?;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: key.into_bytes().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(response)])));
        response.metadata_mut().insert("authorization", token);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.caller(&request).await?;
        let (schema, _) = self.describe(&client, &query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info(
            &schema,
            ticket.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.caller(&request).await?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        self.run(&client, &sql, None).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let client = self.caller(&request).await?;
        let (schema, params) = self.describe(&client, &query.query).await?;
        let options = IpcWriteOptions::default();
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let IpcMessage(parameter_schema) = SchemaAsIpc::new(&params, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Handle {
                sql: query.query,
                params: None,
            }
            .encode()?,
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.caller(&request).await?;
        let mut handle = Handle::decode(&query.prepared_statement_handle)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        let Some(first) = batches.first() else {
            return Err(Status::invalid_argument("no parameters were sent"));
        };
        let mut bytes = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut bytes, &first.schema())
                .map_err(|e| Status::internal(e.to_string()))?;
            for batch in &batches {
                writer
                    .write(batch)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
            }
            writer
                .finish()
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        handle.params = Some(hex::encode(bytes));
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode()?),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.caller(&request).await?;
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let (schema, _) = self.describe(&client, &handle.sql).await?;
        Self::info(
            &schema,
            query.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.caller(&request).await?;
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let params = handle.parameters()?;
        self.run(&client, &handle.sql, params).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles hold their own state: there is nothing to free.
        self.caller(&request).await.map(drop)
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::permission_denied(
            "SQL access is read-only; data enters the hub through ingest, pipelines or the bus",
        ))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::permission_denied(
            "SQL access is read-only; data enters the hub through ingest, pipelines or the bus",
        ))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing(request, &schema, query.as_any()).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append(SQL_CATALOG);
        let schema = builder.schema();
        Ok(Response::new(Self::batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(request, &schema, query.as_any()).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.caller(&request).await?;
        let mut builder = query.into_builder();
        for name in self.catalog(&client).await?.schema_names() {
            builder.append(SQL_CATALOG, name);
        }
        let schema = builder.schema();
        Ok(Response::new(Self::batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(request, &schema, query.as_any()).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.caller(&request).await?;
        let tables = self.tables(&client, query.include_schema).await?;
        let mut builder = query.into_builder();
        for (schema_name, table, table_schema) in tables {
            builder
                .append(SQL_CATALOG, schema_name, table, "TABLE", &table_schema)
                .map_err(Status::from)?;
        }
        let schema = builder.schema();
        Ok(Response::new(Self::batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing(request, &schema, query.as_any()).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        let schema = builder.schema();
        Ok(Response::new(Self::batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder(&self.info).schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let builder = query.into_builder(&self.info);
        let schema = builder.schema();
        Ok(Response::new(Self::batch_stream(schema, builder.build())))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "Simpul does not serve {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Decodes standard base64 (the Basic scheme's), without padding checks beyond the alphabet.
fn decode_basic(text: &str) -> Option<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.trim().bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8(out).ok()
}

/// Serves Flight SQL until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let service = SimpulFlight::new(app)?;
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|e| format!("the Flight SQL server stopped: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_credentials() {
        assert_eq!(
            decode_basic("YWRtaW46c2ltcHVsX2FiYw==").as_deref(),
            Some("admin:simpul_abc")
        );
        assert_eq!(
            decode_basic(
                "YmFwcGVkYS1hbmFsaXRpazpzaW1wdWxfRlNuVVRucVlGeTlLRDBEUDRqRzFVT3dWblRXY1BDYzdneTNxY3RKRg=="
            )
            .as_deref(),
            Some("bappeda-analitik:simpul_FSnUTnqYFy9KD0DP4jG1UOwVnTWcPCc7gy3qctJF")
        );
        assert_eq!(decode_basic("not base64!"), None);
    }
}
