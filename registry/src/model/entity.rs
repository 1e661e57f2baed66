//! Entities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ValueType;

/// An entity: the thing features describe, identified by its join key(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// Entity name.
    pub name: String,
    /// Join key column names (Feast allows exactly one).
    pub join_keys: Vec<String>,
    /// Type of the join key; `None` when the definition omitted it (inferred at apply).
    #[serde(default)]
    pub value_type: Option<ValueType>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner (an e-mail, usually).
    #[serde(default)]
    pub owner: String,
}
