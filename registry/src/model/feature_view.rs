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
    /// Feast's `vector_index`: the field is an embedding to search (kept in the registry;
    /// vector search itself is not offered yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vector_index: bool,
    /// Feast's `vector_length` (0: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_length: Option<u32>,
    /// Feast's `vector_search_metric` (`COSINE`, `L2`, `INNER_PRODUCT`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_search_metric: Option<String>,
}

impl Field {
    /// A field without description or tags.
    pub fn new(name: impl Into<String>, dtype: ValueType) -> Self {
        Field {
            name: name.into(),
            dtype,
            description: String::new(),
            tags: BTreeMap::new(),
            vector_index: false,
            vector_length: None,
            vector_search_metric: None,
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
    /// Windowed aggregations of a stream feature view (its features are their outputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<Aggregation>,
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

    /// Whether the view's features are windowed aggregations.
    pub fn is_aggregated(&self) -> bool {
        !self.aggregations.is_empty()
    }

    /// The tile length (seconds) of an aggregated view: the greatest common divisor of every
    /// aggregation's slide interval, so that every window edge falls on a tile edge.
    pub fn tile_seconds(&self) -> i64 {
        self.aggregations
            .iter()
            .map(Aggregation::slide_seconds)
            .fold(0, gcd)
            .max(1)
    }

    /// The longest window of an aggregated view, in seconds.
    pub fn max_window_seconds(&self) -> i64 {
        self.aggregations
            .iter()
            .map(|a| a.time_window_seconds)
            .max()
            .unwrap_or(0)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// An aggregate function of [`Aggregation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregationFunction {
    /// Sum of the values (DOUBLE).
    Sum,
    /// Number of events with a non-null value (INT64).
    Count,
    /// Mean of the values (DOUBLE).
    Mean,
    /// Smallest value (DOUBLE).
    Min,
    /// Largest value (DOUBLE).
    Max,
}

impl AggregationFunction {
    /// The function's name as written in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregationFunction::Sum => "sum",
            AggregationFunction::Count => "count",
            AggregationFunction::Mean => "mean",
            AggregationFunction::Min => "min",
            AggregationFunction::Max => "max",
        }
    }

    /// The type of the function's output.
    pub fn output_type(self) -> ValueType {
        match self {
            AggregationFunction::Count => ValueType::Int64,
            _ => ValueType::Double,
        }
    }
}

/// Feast's `Aggregation`: a function of one column over a sliding time window.
///
/// **Window semantics** (the same online and offline): with window `W` and slide `S` (`S`
/// divides `W`; `S` defaults to `W`, a tumbling window), the value at time `T` aggregates the
/// events whose event time `t` satisfies `window_start(T) <= t <= T`, where
/// `window_start(T) = floor(T / S) * S - W + S`: the current, partial slide interval plus the
/// `W / S - 1` complete ones before it. Edges are in UTC seconds since the epoch. An empty
/// window gives `count = 0` and null for the other functions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// The aggregated column (a feature column of the source's events).
    pub column: String,
    /// The function.
    pub function: AggregationFunction,
    /// Window length in seconds.
    pub time_window_seconds: i64,
    /// Slide interval in seconds; `None` means the window length.
    #[serde(default)]
    pub slide_interval_seconds: Option<i64>,
    /// Output feature name; default `<function>_<column>_<window>` (window as `30s`, `10m`,
    /// `1h`, `7d`: the largest unit that divides it).
    #[serde(default)]
    pub name: Option<String>,
}

impl Aggregation {
    /// The slide interval in seconds.
    pub fn slide_seconds(&self) -> i64 {
        self.slide_interval_seconds
            .filter(|s| *s > 0)
            .unwrap_or(self.time_window_seconds)
    }

    /// The output feature's name.
    pub fn output_name(&self) -> String {
        if let Some(n) = self.name.as_ref().filter(|n| !n.is_empty()) {
            return n.clone();
        }
        let w = self.time_window_seconds;
        let window = if w > 0 && w % 86_400 == 0 {
            format!("{}d", w / 86_400)
        } else if w > 0 && w % 3_600 == 0 {
            format!("{}h", w / 3_600)
        } else if w > 0 && w % 60 == 0 {
            format!("{}m", w / 60)
        } else {
            format!("{w}s")
        };
        format!("{}_{}_{window}", self.function.as_str(), self.column)
    }

    /// The first second of the window of time `t` (seconds since the epoch).
    pub fn window_start(&self, t: i64) -> i64 {
        let s = self.slide_seconds().max(1);
        t.div_euclid(s) * s - self.time_window_seconds + s
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

impl OnDemandFeatureView {
    /// The output feature `name`, if the view has it.
    pub fn feature(&self, name: &str) -> Option<&Field> {
        self.features.iter().find(|f| f.name == name)
    }
}
