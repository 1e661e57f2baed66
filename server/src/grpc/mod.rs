//! Feast's gRPC serving API (`feast.serving.ServingService`: `GetFeastServingInfo`,
//! `GetOnlineFeatures`), so Feast's Java and Go clients and any gRPC user read online features.
//! It is served beside Arrow Flight, on the Flight port, and answers from the same resolution
//! code as `POST /get-online-features`: request data travel in `request_context` (or in
//! `entities`, as over HTTP), values as `feast.types.Value`, statuses as `FieldStatus`.

pub mod messages;
pub mod registry;

pub use registry::RegistryServer;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use futures::future::BoxFuture;
use indexmap::IndexMap;
use serde_json::Value as Json;
use tonic::{Request, Response, Status};

use crate::auth::Role;
use crate::serving::{FeatureSelection, FieldStatus, OnlineRequest, OnlineResponse};
use crate::value::Value;
use crate::FeatureStore;
use messages as m;

/// The gRPC path of each method.
const INFO: &str = "/feast.serving.ServingService/GetFeastServingInfo";
const ONLINE: &str = "/feast.serving.ServingService/GetOnlineFeatures";

/// A request value as the JSON the shared request code reads (bytes as base64, as over HTTP).
fn to_json(v: &m::Value) -> Json {
    use m::Val;
    let b64 = |b: &[u8]| Json::String(base64::engine::general_purpose::STANDARD.encode(b));
    match &v.val {
        None | Some(Val::NullVal(_)) => Json::Null,
        Some(Val::BytesVal(b)) => b64(b),
        Some(Val::StringVal(s)) | Some(Val::JsonVal(s)) => Json::String(s.clone()),
        Some(Val::Int32Val(i)) => Json::from(*i),
        Some(Val::Int64Val(i)) | Some(Val::UnixTimestampVal(i)) => Json::from(*i),
        Some(Val::DoubleVal(f)) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Some(Val::FloatVal(f)) => serde_json::Number::from_f64(*f as f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Some(Val::BoolVal(b)) => Json::Bool(*b),
        Some(Val::BytesListVal(l)) => Json::Array(l.val.iter().map(|b| b64(b)).collect()),
        Some(Val::StringListVal(l)) => Json::from(l.val.clone()),
        Some(Val::Int32ListVal(l)) => Json::from(l.val.clone()),
        Some(Val::Int64ListVal(l)) | Some(Val::UnixTimestampListVal(l)) => Json::from(l.val.clone()),
        Some(Val::DoubleListVal(l)) => Json::from(l.val.clone()),
        Some(Val::FloatListVal(l)) => Json::Array(l.val.iter().map(|f| Json::from(*f as f64)).collect()),
        Some(Val::BoolListVal(l)) => Json::from(l.val.clone()),
        Some(Val::MapVal(mv)) | Some(Val::StructVal(mv)) => {
            Json::Object(mv.val.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// A stored value as `feast.types.Value`.
fn to_proto(v: &Value) -> m::Value {
    use m::Val;
    let val = match v {
        Value::Null => None,
        Value::Bytes(b) => Some(Val::BytesVal(b.clone())),
        Value::String(s) => Some(Val::StringVal(s.clone())),
        Value::Int32(i) => Some(Val::Int32Val(*i)),
        Value::Int64(i) => Some(Val::Int64Val(*i)),
        Value::Double(f) => Some(Val::DoubleVal(*f)),
        Value::Float(f) => Some(Val::FloatVal(*f)),
        Value::Bool(b) => Some(Val::BoolVal(*b)),
        Value::UnixTimestamp(s) => Some(Val::UnixTimestampVal(*s)),
        Value::Json(t) => Some(Val::JsonVal(t.clone())),
        Value::Map(entries) => Some(Val::MapVal(m::Map {
            val: entries.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
        })),
        Value::List(items) => Some(list_to_proto(items)),
    };
    m::Value { val }
}

/// A list as the typed list of its first non-null element's kind (Feast's lists are typed;
/// nulls inside a list have no proto form and are left out, as Feast's own conversion does).
fn list_to_proto(items: &[Value]) -> m::Val {
    use m::Val;
    macro_rules! collect {
        ($variant:ident, $list:ident, $pat:ident) => {
            Val::$variant(m::$list {
                val: items
                    .iter()
                    .filter_map(|i| match i {
                        Value::$pat(x) => Some(x.clone()),
                        _ => None,
                    })
                    .collect(),
            })
        };
    }
    match items.iter().find(|i| !matches!(i, Value::Null)) {
        Some(Value::Bytes(_)) => collect!(BytesListVal, BytesList, Bytes),
        Some(Value::Int32(_)) => collect!(Int32ListVal, Int32List, Int32),
        Some(Value::Int64(_)) => collect!(Int64ListVal, Int64List, Int64),
        Some(Value::Double(_)) => collect!(DoubleListVal, DoubleList, Double),
        Some(Value::Float(_)) => collect!(FloatListVal, FloatList, Float),
        Some(Value::Bool(_)) => collect!(BoolListVal, BoolList, Bool),
        Some(Value::UnixTimestamp(_)) => collect!(UnixTimestampListVal, Int64List, UnixTimestamp),
        _ => collect!(StringListVal, StringList, String),
    }
}

fn timestamp(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// The shared request of a gRPC one: entities then request context, as columns of JSON.
pub fn online_request(req: m::GetOnlineFeaturesRequest) -> Result<OnlineRequest, Status> {
    let features = if req.feature_service.is_empty() {
        FeatureSelection::Refs(req.features.map(|f| f.val).unwrap_or_default())
    } else {
        FeatureSelection::Service(req.feature_service)
    };
    // Map order is not the wire order: sort by name for a stable column order.
    let sorted = |m: HashMap<String, m::RepeatedValue>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let mut entities: IndexMap<String, Vec<Json>> = IndexMap::new();
    for (k, v) in sorted(req.entities).into_iter().chain(sorted(req.request_context)) {
        if entities.contains_key(&k) {
            return Err(Status::invalid_argument(format!(
                "`{k}` is given both in entities and in request_context"
            )));
        }
        entities.insert(k, v.val.iter().map(to_json).collect());
    }
    Ok(OnlineRequest {
        features,
        entities,
        full_feature_names: req.full_feature_names,
    })
}

/// The gRPC answer of a shared response.
pub fn online_response(r: OnlineResponse) -> m::GetOnlineFeaturesResponse {
    let status = |s: FieldStatus| match s {
        FieldStatus::Present => m::FieldStatus::Present as i32,
        FieldStatus::NotFound => m::FieldStatus::NotFound as i32,
        FieldStatus::OutsideMaxAge => m::FieldStatus::OutsideMaxAge as i32,
    };
    m::GetOnlineFeaturesResponse {
        metadata: Some(m::GetOnlineFeaturesResponseMetadata {
            feature_names: Some(m::FeatureList { val: r.feature_names }),
        }),
        results: r
            .columns
            .into_iter()
            .map(|c| m::FeatureVector {
                values: c.values.iter().map(to_proto).collect(),
                statuses: c.statuses.into_iter().map(status).collect(),
                event_timestamps: c.event_timestamps.into_iter().map(timestamp).collect(),
            })
            .collect(),
        status: true,
    }
}

/// Refuses a call without a token granting one of `roles` (when authentication is on).
pub(crate) fn authorize(
    store: &FeatureStore,
    metadata: &tonic::metadata::MetadataMap,
    roles: &[Role],
    what: &str,
) -> Result<(), Status> {
    let Some(auth) = store.authenticator() else {
        return Ok(());
    };
    let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
    match auth.check(header, store.project(), roles) {
        Ok(_) => Ok(()),
        Err(crate::auth::Denied::Unauthenticated) => Err(Status::unauthenticated("a valid bearer token is required")),
        Err(crate::auth::Denied::Forbidden(name)) => {
            Err(Status::permission_denied(format!("the token `{name}` may not {what}")))
        }
    }
}

/// The `ServingService` server (a tonic service, added to the Flight server).
#[derive(Debug, Clone)]
pub struct ServingServer {
    store: Arc<FeatureStore>,
}

impl ServingServer {
    /// A server answering from `store`.
    pub fn new(store: Arc<FeatureStore>) -> Self {
        ServingServer { store }
    }

    async fn get_online_features(
        self,
        req: Request<m::GetOnlineFeaturesRequest>,
    ) -> Result<Response<m::GetOnlineFeaturesResponse>, Status> {
        authorize(&self.store, req.metadata(), &[Role::ReadOnline], "read online features")?;
        let request_id = req
            .metadata()
            .get(crate::api::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| format!("grpc-{:016x}", fastrand::u64(..)));
        let request = online_request(req.into_inner())?;
        let response = self
            .store
            .get_online_features(&request)
            .await
            .map_err(crate::flight::status)?;
        self.store.log_served(&request, &response, &request_id).await;
        Ok(Response::new(online_response(response)))
    }
}

impl tonic::server::NamedService for ServingServer {
    const NAME: &'static str = "feast.serving.ServingService";
}

/// A unary gRPC method as tonic's `UnaryService`.
pub(crate) struct Unary<F>(pub(crate) F);

impl<Req, Res, F, Fut> tonic::server::UnaryService<Req> for Unary<F>
where
    F: Fn(Request<Req>) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<Response<Res>, Status>> + Send + 'static,
{
    type Response = Res;
    type Future = BoxFuture<'static, Result<Response<Res>, Status>>;
    fn call(&mut self, request: Request<Req>) -> Self::Future {
        Box::pin((self.0)(request))
    }
}

impl<B> tower::Service<http::Request<B>> for ServingServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        match req.uri().path() {
            ONLINE => Box::pin(async move {
                let svc = Unary(move |r| this.clone().get_online_features(r));
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(svc, req).await)
            }),
            INFO => Box::pin(async move {
                let svc = Unary(|_r: Request<m::GetFeastServingInfoRequest>| async {
                    Ok(Response::new(m::GetFeastServingInfoResponse {
                        version: format!("larder {}", env!("CARGO_PKG_VERSION")),
                    }))
                });
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(svc, req).await)
            }),
            other => {
                let status = Status::unimplemented(format!("{other} is not offered"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> m::Value {
        m::Value {
            val: Some(m::Val::Int64Val(i)),
        }
    }

    #[test]
    fn requests_become_the_shared_request() {
        let mut req = m::GetOnlineFeaturesRequest {
            features: Some(m::FeatureList {
                val: vec!["v:f".into()],
            }),
            ..Default::default()
        };
        req.entities.insert(
            "driver_id".into(),
            m::RepeatedValue {
                val: vec![int(1), int(2)],
            },
        );
        req.request_context.insert(
            "x".into(),
            m::RepeatedValue {
                val: vec![m::Value { val: None }, int(3)],
            },
        );
        let r = online_request(req.clone()).unwrap();
        assert_eq!(r.entities["driver_id"], vec![Json::from(1), Json::from(2)]);
        assert_eq!(r.entities["x"], vec![Json::Null, Json::from(3)]);
        assert!(matches!(r.features, FeatureSelection::Refs(ref f) if f == &["v:f".to_string()]));
        req.request_context
            .insert("driver_id".into(), m::RepeatedValue::default());
        assert_eq!(online_request(req).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn values_become_feast_values() {
        assert_eq!(to_proto(&Value::Null), m::Value { val: None });
        assert_eq!(
            to_proto(&Value::List(vec![Value::Float(1.5), Value::Null])).val,
            Some(m::Val::FloatListVal(m::FloatList { val: vec![1.5] }))
        );
        let map = to_proto(&Value::Map(vec![("k".into(), Value::String("v".into()))]));
        let Some(m::Val::MapVal(inner)) = map.val else {
            panic!("{map:?}")
        };
        assert_eq!(inner.val["k"].val, Some(m::Val::StringVal("v".into())));
        assert_eq!(
            timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
    }
}
