//! Online feature retrieval: Feast's `get_online_features`, independent of HTTP.

mod online;
mod plan;
mod resolve;

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::value::Value;

pub use online::get_online_features;
pub use plan::{OnlinePlan, PlanCache};
pub(crate) use resolve::{check_collisions, output_name, resolve_with_odfvs};

/// Feast's `FieldStatus` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStatus {
    /// A value was found (possibly a stored null, as Feast reports it).
    Present,
    /// No row for the entity.
    NotFound,
    /// A row exists but is older than the view's ttl; the value is withheld.
    OutsideMaxAge,
}

impl FieldStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Present => "PRESENT",
            FieldStatus::NotFound => "NOT_FOUND",
            FieldStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// Which features to read.
#[derive(Debug, Clone)]
pub enum FeatureSelection {
    /// `view:feature` references.
    Refs(Vec<String>),
    /// A feature service's name.
    Service(String),
}

/// Parameters of a `get_historical_features` request, as the HTTP Arrow endpoint (schema
/// metadata) and Arrow Flight (descriptor command) receive them. Feast 0.67's remote offline
/// store command (`api`, `feature_refs`, ...) parses too.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoricalParams {
    /// Feast's `api` field; only `get_historical_features` is served.
    #[serde(default)]
    pub api: Option<String>,
    /// Feature references (Feast's remote client calls them `feature_refs`).
    #[serde(default, alias = "feature_refs")]
    pub features: Vec<String>,
    /// A feature service, taking precedence over `features`.
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Name outputs `view__feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// The entity dataframe as SQL over the registered sources, instead of uploaded rows.
    #[serde(default)]
    pub entity_df_sql: Option<String>,
}

impl HistoricalParams {
    /// Which features to join.
    pub fn selection(&self) -> FeatureSelection {
        match self.feature_service.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => FeatureSelection::Service(s.to_string()),
            None => FeatureSelection::Refs(self.features.clone()),
        }
    }

    /// The SQL entity dataframe, if one was given.
    pub fn sql(&self) -> Option<&str> {
        self.entity_df_sql.as_deref().filter(|s| !s.trim().is_empty())
    }
}

/// A `get_online_features` request, as parsed from Feast's JSON.
#[derive(Debug, Clone)]
pub struct OnlineRequest {
    /// Features to read.
    pub features: FeatureSelection,
    /// Columnar entity rows: join key (or request field) -> values, in request order.
    pub entities: IndexMap<String, Vec<Json>>,
    /// Name outputs `view__feature`.
    pub full_feature_names: bool,
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// One value per entity row.
    pub values: Vec<Value>,
    /// One status per entity row.
    pub statuses: Vec<FieldStatus>,
    /// Event time per entity row, ns since the epoch (0 for keys and missing rows).
    pub event_timestamps: Vec<i64>,
}

/// A `get_online_features` answer in Feast's column-major layout.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResponse {
    /// Output names, join keys first.
    pub feature_names: Vec<String>,
    /// The Feast type of each output (for typed encodings: gRPC, Arrow).
    pub dtypes: Vec<larder_registry::ValueType>,
    /// `columns[i]` belongs to `feature_names[i]`.
    pub columns: Vec<Column>,
}

/// Limits applied to one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most entity rows per request.
    pub max_entities: usize,
    /// Most features per request.
    pub max_features: usize,
}

/// How one online read is served.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Request limits.
    pub limits: RequestLimits,
    /// Whether ttls are enforced.
    pub ttl: OnlineTtl,
    /// The time the read happens at, ns since the epoch.
    pub now_ns: i64,
}

/// Whether online reads enforce a view's ttl (`online_ttl` in `feature_store.yaml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineTtl {
    /// A value older than its view's ttl is answered `OUTSIDE_MAX_AGE` with a null (as Feast's
    /// Go server does); the default.
    #[default]
    Enforce,
    /// Every stored value is served with its timestamp whatever its age, as Feast's Python
    /// feature server does (for teams migrating from it).
    Ignore,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_entities: 10_000,
            max_features: 1_000,
        }
    }
}
