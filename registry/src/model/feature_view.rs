//! Feature views and on-demand feature views.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FeatureViewProjection, ValueType};

/// Feast's `Field`: a name and a type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Column type.
    pub dtype: ValueType,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Field {
    /// A field without description or tags.
    pub fn new(name: impl Into<String>, dtype: ValueType) -> Self {
        Field {
            name: name.into(),
            dtype,
            description: String::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// Feast's `FeatureView`: features of some entities, read from one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    /// View name.
    pub name: String,
    /// Names of the entities (their join keys identify a row).
    #[serde(default)]
    pub entities: Vec<String>,
    /// The features (schema fields that are not join keys). Empty means: inferred from the
    /// source at apply time.
    #[serde(default)]
    pub features: Vec<Field>,
    /// Schema fields that are join keys, when the definition declared them.
    #[serde(default)]
    pub entity_columns: Vec<Field>,
    /// Name of the data source (a file or push source).
    pub source: String,
    /// Maximum age of a feature value, in seconds; `None` or 0 means unlimited.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Whether the view is materialized to and served from the online store.
    #[serde(default = "yes")]
    pub online: bool,
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

fn yes() -> bool {
    true
}

impl FeatureView {
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&Field> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The ttl as a positive number of seconds, or `None` when values never expire.
    pub fn ttl(&self) -> Option<i64> {
        self.ttl_seconds.filter(|t| *t > 0)
    }
}

/// Feast's `OnDemandFeatureView`: features computed at request time from other views and
/// request data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandFeatureView {
    /// View name.
    pub name: String,
    /// Input feature views (possibly projected to some features).
    #[serde(default)]
    pub sources: Vec<FeatureViewProjection>,
    /// Input request sources, by name.
    #[serde(default)]
    pub request_sources: Vec<String>,
    /// Output features.
    pub features: Vec<Field>,
    /// `pandas`, `python` or `sql`.
    pub mode: String,
    /// Name of the Python function (pandas/python modes).
    #[serde(default)]
    pub udf_name: String,
    /// Source text of the transformation (the function for pandas/python, expressions for sql).
    #[serde(default)]
    pub udf_body: String,
    /// Whether outputs are computed on write and stored instead of on read.
    #[serde(default)]
    pub write_to_online_store: bool,
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
