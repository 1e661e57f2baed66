//! Arrow Flight for bulk Arrow data, over the same [`FeatureStore`] as the HTTP API: Larder's
//! training sets and Feast 0.67's remote offline store (`offline_store: {type: remote}`).
//!
//! The descriptor's command is JSON (see [`commands`]). Reads run in one `DoExchange` (the
//! client writes its table — an entity dataframe, or Feast's `{key: ["mock_key"]}` placeholder
//! — and reads the answer on the same stream, statelessly, as Feast 0.67 clients do):
//! - `get_historical_features` (Larder's `{"features": [...], ...}` or Feast's `feature_refs`);
//! - `pull_latest_from_table_or_query`, `pull_all_from_table_or_query` (a Feast client's
//!   materialization);
//! - `get_table_column_names_and_types_from_data_source` (`{name, type}` in pyarrow's names).
//!
//! Writes and actions run in `DoPut`: `validate_data_source` (`feast apply`),
//! `offline_write_batch` (a push to the offline store), `write_logged_features` and `persist`
//! (a retrieval written as a registered source's data: `create_saved_dataset`). Reads need the
//! `read_offline` role, writes `write` (`persist` both).

pub mod commands;

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::remote_offline;
use crate::{Error, FeatureStore};
use commands::Command;

/// The Flight service.
#[derive(Debug, Clone)]
pub struct LarderFlight {
    store: Arc<FeatureStore>,
}

/// A tonic service serving [`LarderFlight`].
pub fn service(store: Arc<FeatureStore>) -> FlightServiceServer<LarderFlight> {
    FlightServiceServer::new(LarderFlight { store })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// Maps a core error to a gRPC status carrying Feast's error detail.
pub fn status(e: Error) -> Status {
    let detail =
        serde_json::json!({"module": "feast.errors", "class": e.feast_class(), "message": e.to_string()}).to_string();
    match e.status() {
        404 => Status::not_found(detail),
        400..=499 => Status::invalid_argument(detail),
        501 => Status::unimplemented(detail),
        503 => Status::unavailable(detail),
        _ => Status::internal(detail),
    }
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

fn unimplemented<T>(what: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!("{what} is not offered; use DoExchange")))
}

#[tonic::async_trait]
impl FlightService for LarderFlight {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;
    type DoExchangeStream = Stream<FlightData>;

    async fn handshake(
        &self,
        _r: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("Handshake")
    }
    async fn list_flights(&self, _r: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("ListFlights")
    }
    async fn get_flight_info(&self, _r: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        unimplemented("GetFlightInfo")
    }
    async fn poll_flight_info(&self, _r: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        unimplemented("PollFlightInfo")
    }
    async fn get_schema(&self, _r: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        unimplemented("GetSchema")
    }
    async fn do_get(&self, _r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        unimplemented("DoGet")
    }
    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (command, batches) = read_upload(request.into_inner()).await?;
        let done = match command {
            Command::Validate(p) => {
                self.authorize(
                    header.as_deref(),
                    crate::auth::Role::ReadOffline,
                    "validate data sources",
                )?;
                let source = remote_offline::file_source_from_feast_json(&p.data_source_proto).map_err(status)?;
                self.store.validate_source(&source).await.map_err(status)?;
                0
            }
            Command::OfflineWriteBatch(p) => {
                self.authorize(
                    header.as_deref(),
                    crate::auth::Role::Write,
                    "write to the offline store",
                )?;
                let [view] = p.feature_view_names.as_slice() else {
                    return Err(Status::invalid_argument(
                        "offline_write_batch: feature_view_names must name exactly one view",
                    ));
                };
                self.store.offline_write_batch(view, batches).await.map_err(status)?
            }
            Command::WriteLoggedFeatures(p) => {
                self.authorize(header.as_deref(), crate::auth::Role::Write, "write logged features")?;
                self.store
                    .write_logged_features(&p.feature_service_name, batches)
                    .await
                    .map_err(status)?
            }
            Command::Persist(p) => {
                self.authorize(header.as_deref(), crate::auth::Role::Write, "persist datasets")?;
                self.authorize(header.as_deref(), crate::auth::Role::ReadOffline, "read training sets")?;
                let rows: Vec<datafusion::arrow::array::RecordBatch> = self
                    .retrieve(p.retrieval, batches)
                    .await?
                    .try_collect()
                    .await
                    .map_err(|e| status(crate::Error::Offline(e.to_string())))?;
                self.store
                    .persist_dataset(&p.params.data_source_name, rows, p.params.allow_overwrite)
                    .await
                    .map_err(status)?
            }
            Command::Unsupported(api) => return Err(unsupported(&api)),
            _ => {
                return Err(Status::invalid_argument(
                    "reads run in DoExchange (the client writes its table and reads the answer on one stream)",
                ))
            }
        };
        let result = PutResult {
            app_metadata: serde_json::json!({ "rows": done }).to_string().into_bytes().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(
            async move { Ok(result) },
        ))))
    }
    async fn do_action(&self, _r: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        unimplemented("DoAction")
    }
    async fn list_actions(&self, _r: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.authorize(header.as_deref(), crate::auth::Role::ReadOffline, "read training sets")?;
        let (command, batches) = read_upload(request.into_inner()).await?;
        let out = self.retrieve(command, batches).await?;
        let encoded: BoxStream<'static, Result<FlightData, Status>> = FlightDataEncoderBuilder::new()
            .build(out.map_err(|e| FlightError::ExternalError(Box::new(e))))
            .map_err(|e| Status::internal(e.to_string()))
            .boxed();
        Ok(Response::new(Box::pin(encoded)))
    }
}

impl LarderFlight {
    /// Runs a read command (a training set, a pull, a source's column types) over the uploaded
    /// entity rows.
    async fn retrieve(
        &self,
        command: Command,
        batches: Vec<datafusion::arrow::array::RecordBatch>,
    ) -> Result<datafusion::execution::SendableRecordBatchStream, Status> {
        Ok(match command {
            Command::Historical(cmd) => {
                let batches = match cmd.sql() {
                    Some(sql) => self.store.entity_df_from_sql(sql).await.map_err(status)?,
                    None => drop_pandas_index(batches)?,
                };
                self.store
                    .get_historical_features(batches, &cmd.selection(), cmd.full_feature_names)
                    .await
                    .map_err(status)?
            }
            Command::PullLatest(p) => self.pull(p, true).await?,
            Command::PullAll(p) => self.pull(p, false).await?,
            Command::ColumnTypes(p) => {
                let source = remote_offline::file_source_from_feast_json(&p.data_source_proto).map_err(status)?;
                let table = self.store.source_column_types(&source).await.map_err(status)?;
                let schema = table.schema();
                Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::once(async move { Ok(table) }),
                ))
            }
            Command::Unsupported(api) => return Err(unsupported(&api)),
            Command::Validate(_)
            | Command::OfflineWriteBatch(_)
            | Command::WriteLoggedFeatures(_)
            | Command::Persist(_) => {
                return Err(Status::invalid_argument("writes, persist and validation run in DoPut"))
            }
        })
    }

    /// Refuses a call without a token granting `role` (when authentication is on).
    fn authorize(&self, header: Option<&str>, role: crate::auth::Role, what: &str) -> Result<(), Status> {
        let Some(auth) = self.store.authenticator() else {
            return Ok(());
        };
        match auth.check(header, self.store.project(), &[role]) {
            Ok(_) => Ok(()),
            Err(crate::auth::Denied::Unauthenticated) => {
                Err(Status::unauthenticated("a valid bearer token is required"))
            }
            Err(crate::auth::Denied::Forbidden(name)) => {
                Err(Status::permission_denied(format!("the token `{name}` may not {what}")))
            }
        }
    }

    /// Feast's pull APIs: a registered source's rows in a window.
    async fn pull(
        &self,
        p: commands::PullParams,
        latest_only: bool,
    ) -> Result<datafusion::execution::SendableRecordBatchStream, Status> {
        let (start_ns, end_ns) = p.window()?;
        let mut source = self.store.file_source(&p.data_source_name).await.map_err(status)?;
        source.timestamp_field = p.timestamp_field.clone();
        source.created_timestamp_column = p.created_timestamp_column.clone().filter(|c| !c.is_empty());
        self.store
            .pull_source(remote_offline::SourcePull {
                source,
                join_keys: p.join_key_columns,
                features: p.feature_name_columns,
                start_ns,
                end_ns,
                latest_only,
            })
            .await
            .map_err(status)
    }
}

/// A Feast call Larder does not answer, named.
fn unsupported(api: &str) -> Status {
    Status::unimplemented(format!(
        "Feast's remote offline store call `{api}` is not offered by Larder (offered: get_historical_features, \
         pull_latest_from_table_or_query, pull_all_from_table_or_query, \
         get_table_column_names_and_types_from_data_source, validate_data_source, offline_write_batch, \
         write_logged_features, persist)"
    ))
}

/// Reads an upload (DoPut or DoExchange): the command of the first message's descriptor and
/// every record batch that follows. Feast's placeholder table (one `key` column) counts as none.
async fn read_upload(mut input: Streaming<FlightData>) -> Result<(Command, Vec<RecordBatch>), Status> {
    let first = input
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty stream"))?;
    let descriptor = first
        .flight_descriptor
        .clone()
        .ok_or_else(|| Status::invalid_argument("the first message needs a descriptor"))?;
    let command = commands::parse(&descriptor.cmd)?;
    // pyarrow sends the descriptor alone first, then the schema and batches: messages without
    // an IPC header carry nothing to decode.
    let rest = input.map_err(|s| FlightError::Tonic(Box::new(s)));
    let data = futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
    let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("bad uploaded table: {e}")))?;
    let placeholder = batches.first().is_some_and(|b| {
        let s = b.schema();
        s.fields().len() == 1 && s.field(0).name() == "key"
    });
    Ok((command, if placeholder { Vec::new() } else { batches }))
}

/// Removes the `__index_level_0__` column pandas adds when a client sends a DataFrame with its
/// index (Feast's client does).
fn drop_pandas_index(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, Status> {
    batches
        .into_iter()
        .map(|b| match b.schema().index_of("__index_level_0__") {
            Ok(i) => {
                let keep: Vec<usize> = (0..b.num_columns()).filter(|c| *c != i).collect();
                b.project(&keep).map_err(|e| Status::internal(e.to_string()))
            }
            Err(_) => Ok(b),
        })
        .collect()
}
