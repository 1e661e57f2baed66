//! Feast's gRPC serving messages (`feast.serving.ServingService`, `feast.types.Value`), written
//! as prost messages with Feast 0.67's field numbers (read from its compiled descriptors), for
//! the subset Larder serves: `GetFeastServingInfo` and `GetOnlineFeatures`.

#![allow(missing_docs)]

use std::collections::HashMap;

/// `feast.types.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(
        oneof = "Val",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 32, 34"
    )]
    pub val: Option<Val>,
}

/// The value's oneof (`feast.types.Value.val`).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Val {
    #[prost(bytes, tag = "1")]
    BytesVal(Vec<u8>),
    #[prost(string, tag = "2")]
    StringVal(String),
    #[prost(int32, tag = "3")]
    Int32Val(i32),
    #[prost(int64, tag = "4")]
    Int64Val(i64),
    #[prost(double, tag = "5")]
    DoubleVal(f64),
    #[prost(float, tag = "6")]
    FloatVal(f32),
    #[prost(bool, tag = "7")]
    BoolVal(bool),
    #[prost(int64, tag = "8")]
    UnixTimestampVal(i64),
    #[prost(message, tag = "11")]
    BytesListVal(BytesList),
    #[prost(message, tag = "12")]
    StringListVal(StringList),
    #[prost(message, tag = "13")]
    Int32ListVal(Int32List),
    #[prost(message, tag = "14")]
    Int64ListVal(Int64List),
    #[prost(message, tag = "15")]
    DoubleListVal(DoubleList),
    #[prost(message, tag = "16")]
    FloatListVal(FloatList),
    #[prost(message, tag = "17")]
    BoolListVal(BoolList),
    #[prost(message, tag = "18")]
    UnixTimestampListVal(Int64List),
    #[prost(enumeration = "Null", tag = "19")]
    NullVal(i32),
    #[prost(message, tag = "20")]
    MapVal(Map),
    #[prost(string, tag = "32")]
    JsonVal(String),
    #[prost(message, tag = "34")]
    StructVal(Map),
}

/// `feast.types.Null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Null {
    Null = 0,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub val: Vec<Vec<u8>>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringList {
    #[prost(string, repeated, tag = "1")]
    pub val: Vec<String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int32List {
    #[prost(int32, repeated, tag = "1")]
    pub val: Vec<i32>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub val: Vec<i64>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct DoubleList {
    #[prost(double, repeated, tag = "1")]
    pub val: Vec<f64>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    #[prost(float, repeated, tag = "1")]
    pub val: Vec<f32>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolList {
    #[prost(bool, repeated, tag = "1")]
    pub val: Vec<bool>,
}
/// `feast.types.Map` (also a struct's value).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Map {
    #[prost(map = "string, message", tag = "1")]
    pub val: HashMap<String, Value>,
}
/// `feast.types.RepeatedValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepeatedValue {
    #[prost(message, repeated, tag = "1")]
    pub val: Vec<Value>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFeastServingInfoRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFeastServingInfoResponse {
    #[prost(string, tag = "1")]
    pub version: String,
}

/// `feast.serving.FeatureList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureList {
    #[prost(string, repeated, tag = "1")]
    pub val: Vec<String>,
}

/// `feast.serving.GetOnlineFeaturesRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetOnlineFeaturesRequest {
    #[prost(string, tag = "1")]
    pub feature_service: String,
    #[prost(message, optional, tag = "2")]
    pub features: Option<FeatureList>,
    #[prost(map = "string, message", tag = "3")]
    pub entities: HashMap<String, RepeatedValue>,
    #[prost(bool, tag = "4")]
    pub full_feature_names: bool,
    #[prost(map = "string, message", tag = "5")]
    pub request_context: HashMap<String, RepeatedValue>,
}

/// `feast.serving.GetOnlineFeaturesResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetOnlineFeaturesResponse {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<GetOnlineFeaturesResponseMetadata>,
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<FeatureVector>,
    #[prost(bool, tag = "3")]
    pub status: bool,
}

/// `feast.serving.GetOnlineFeaturesResponse.FeatureVector`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureVector {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
    #[prost(enumeration = "FieldStatus", repeated, tag = "2")]
    pub statuses: Vec<i32>,
    #[prost(message, repeated, tag = "3")]
    pub event_timestamps: Vec<prost_types::Timestamp>,
}

/// `feast.serving.GetOnlineFeaturesResponseMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetOnlineFeaturesResponseMetadata {
    #[prost(message, optional, tag = "1")]
    pub feature_names: Option<FeatureList>,
}

/// `feast.serving.FieldStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FieldStatus {
    Invalid = 0,
    Present = 1,
    NullValue = 2,
    NotFound = 3,
    OutsideMaxAge = 4,
}
