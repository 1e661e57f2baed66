//! Feature services.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A view (batch or on-demand), optionally narrowed to some of its features and aliased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewProjection {
    /// Name of the view.
    pub view: String,
    /// Selected features; empty means all of the view's features.
    #[serde(default)]
    pub features: Vec<String>,
    /// Name to use instead of the view's in full feature names.
    #[serde(default)]
    pub alias: Option<String>,
}

/// Feast's `FeatureService`: a named list of features, typically one per model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    /// Service name.
    pub name: String,
    /// The projections, in order.
    pub features: Vec<FeatureViewProjection>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: String,
    /// Feast's `logging_config`: where the features it serves are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<FeatureLogging>,
}

/// Feast's `LoggingConfig` with a `FileLoggingDestination`: the share of requests logged and
/// the directory of the Parquet log files (relative to the repo, as in Feast).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureLogging {
    /// Share of requests logged, from 0 to 1 (Feast's default: 1).
    #[serde(default = "all")]
    pub sample_rate: f64,
    /// Directory of the log files.
    pub path: String,
    /// Feast's `partition_by` columns (directories per value, in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

fn all() -> f64 {
    1.0
}
