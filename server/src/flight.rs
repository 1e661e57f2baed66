//! Arrow Flight for bulk Arrow data, over the same [`FeatureStore`] as the HTTP API.
//!
//! `DoExchange` runs `get_historical_features`: the descriptor's command is JSON, the client
//! writes the entity table and reads the training set back on the same stream (stateless, as
//! Feast 0.67's remote offline store does). Accepted commands:
//! - Larder's: `{"features": [...], "feature_service": null, "full_feature_names": false}`;
//! - Feast's: `{"api": "get_historical_features", "feature_refs": [...], "full_feature_names": ...}`.

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

use crate::serving::HistoricalParams;
use crate::{Error, FeatureStore};

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
    async fn do_put(&self, _r: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented("DoPut")
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
        if let Some(auth) = self.store.authenticator() {
            let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
            match auth.check(header, self.store.project(), &[crate::auth::Role::ReadOffline]) {
                Ok(_) => {}
                Err(crate::auth::Denied::Unauthenticated) => {
                    return Err(Status::unauthenticated("a valid bearer token is required"))
                }
                Err(crate::auth::Denied::Forbidden(name)) => {
                    return Err(Status::permission_denied(format!(
                        "the token `{name}` may not read training sets"
                    )))
                }
            }
        }
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty exchange"))?;
        let descriptor = first
            .flight_descriptor
            .clone()
            .ok_or_else(|| Status::invalid_argument("the first message needs a descriptor"))?;
        let cmd: HistoricalParams = serde_json::from_slice(&descriptor.cmd).map_err(|e| {
            Status::invalid_argument(format!("the descriptor's command is not a valid JSON request: {e}"))
        })?;
        if let Some(api) = cmd.api.as_deref().filter(|a| *a != "get_historical_features") {
            return Err(Status::unimplemented(format!("api `{api}` is not offered over Flight")));
        }
        // pyarrow sends the descriptor alone first, then the schema and batches: messages
        // without an IPC header carry nothing to decode.
        let rest = input.map_err(|s| FlightError::Tonic(Box::new(s)));
        let data = futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("bad entity table: {e}")))?;
        let batches = match cmd.sql() {
            Some(sql) => self.store.entity_df_from_sql(sql).await.map_err(status)?,
            None => drop_pandas_index(batches)?,
        };
        let out = self
            .store
            .get_historical_features(batches, &cmd.selection(), cmd.full_feature_names)
            .await
            .map_err(status)?;
        let encoded: BoxStream<'static, Result<FlightData, Status>> = FlightDataEncoderBuilder::new()
            .build(out.map_err(|e| FlightError::ExternalError(Box::new(e))))
            .map_err(|e| Status::internal(e.to_string()))
            .boxed();
        Ok(Response::new(Box::pin(encoded)))
    }
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
