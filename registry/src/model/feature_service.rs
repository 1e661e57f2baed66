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
}
