//! The JSON bodies of the HTTP API: Feast's feature-server requests (same field names and
//! defaults) and Larder's admin requests. Parse them with [`crate::json::parse_json`].

use std::collections::BTreeMap;

use indexmap::IndexMap;
use larder_registry::RegistryDoc;
use serde::Deserialize;
use utoipa::ToSchema;

/// Feast's `GetOnlineFeaturesRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GetOnlineFeaturesRequest {
    /// Columnar entity rows: join key -> list of values (and request-data fields).
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"driver_id": [1001, 1002]}))]
    pub entities: IndexMap<String, Vec<serde_json::Value>>,
    /// Feature references `view:feature`.
    #[serde(default)]
    #[schema(example = json!(["driver_hourly_stats:conv_rate"]))]
    pub features: Vec<String>,
    /// A feature service; takes precedence over `features`.
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Name outputs `view__feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Accepted for compatibility; Larder has no feature view versions.
    #[serde(default)]
    pub include_feature_view_version_metadata: bool,
}

/// Feast's `PushFeaturesRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushRequest {
    /// Name of the push source.
    pub push_source_name: String,
    /// Columnar rows: column -> values (join keys, features, the event timestamp column).
    #[schema(value_type = Object)]
    pub df: IndexMap<String, Vec<serde_json::Value>>,
    /// `online` (default), `offline` or `online_and_offline`.
    #[serde(default = "default_to")]
    pub to: String,
    /// Accepted for compatibility (the server always uses its cached registry).
    #[serde(default)]
    pub allow_registry_cache: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub transform_on_write: Option<bool>,
}

/// Feast's `WriteToFeatureStoreRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WriteToOnlineStoreRequest {
    /// The view to write.
    pub feature_view_name: String,
    /// Columnar rows.
    #[schema(value_type = Object)]
    pub df: IndexMap<String, Vec<serde_json::Value>>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub allow_registry_cache: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub transform_on_write: Option<bool>,
}

/// Feast's `MaterializeRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MaterializeRequest {
    /// Window start (ISO 8601; naive = UTC).
    pub start_ts: String,
    /// Window end (ISO 8601), inclusive.
    pub end_ts: String,
    /// Views to materialize (default: every online view).
    #[serde(default)]
    pub feature_views: Option<Vec<String>>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub disable_event_timestamp: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub full_feature_names: Option<bool>,
}

/// Feast's `MaterializeIncrementalRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MaterializeIncrementalRequest {
    /// Window end (ISO 8601), inclusive.
    pub end_ts: String,
    /// Views to materialize (default: every online view).
    #[serde(default)]
    pub feature_views: Option<Vec<String>>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub full_feature_names: Option<bool>,
}

/// `POST /apply` and `POST /plan`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplyRequest {
    /// Definitions, in the registry document's shape (what the SDK's exporter writes).
    #[schema(value_type = Object)]
    pub definitions: RegistryDoc,
    /// Feast's default: `true` keeps the objects not mentioned; `false` makes `definitions`
    /// the whole project.
    #[serde(default = "yes")]
    pub partial: bool,
    /// Objects to remove, by kind (`feature_views`, `entities`, ...) and name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub delete: BTreeMap<String, Vec<String>>,
    /// Who applies (recorded in the history; default `http`).
    #[serde(default)]
    pub applied_by: Option<String>,
}

fn default_to() -> String {
    "online".into()
}

fn yes() -> bool {
    true
}
