//! Fills in what a definition may leave out, as Feast does at apply time: an entity's value
//! type (from the view's schema or the source column), a view's features (from the source
//! columns) and its entity columns.

use crate::model::{DataSource, Field, FileSource, RegistryDoc, ValueType};
use crate::validate::ValidationError;

/// One column of a batch source, as far as the registry cares.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    /// Column name.
    pub name: String,
    /// Feast type of the column; `None` when it has no Feast equivalent.
    pub value_type: Option<ValueType>,
    /// True for timestamp columns.
    pub is_timestamp: bool,
}

/// Reads the columns of a batch source. The server implements it over Parquet metadata.
pub trait SchemaLookup {
    /// The columns of `source`, or a message saying why they cannot be read.
    fn columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>, String>;
}

/// A lookup that knows no source, for callers without data access: inference is skipped and
/// column checks are left out.
pub struct NoLookup;

impl SchemaLookup for NoLookup {
    fn columns(&self, _source: &FileSource) -> Result<Vec<SourceColumn>, String> {
        Err("no schema lookup".into())
    }
}

/// Returns a copy of `doc` with inferred entity types, features and entity columns filled in.
/// Problems that prevent inference (an unreadable source) are returned as errors.
pub fn resolve(doc: &RegistryDoc, lookup: &dyn SchemaLookup) -> Result<RegistryDoc, Vec<ValidationError>> {
    let mut out = doc.clone();
    let mut errors = Vec::new();
    let mut inferred_types: Vec<(String, ValueType)> = Vec::new();

    // A file source without `timestamp_field` takes its one timestamp column, as Feast infers it
    // (Feast counts every timestamp column, the created one included).
    for s in &mut out.data_sources {
        let DataSource::File(f) = s else { continue };
        if !f.timestamp_field.is_empty() {
            continue;
        }
        let Ok(cols) = lookup.columns(f) else { continue };
        let ts: Vec<&str> = cols
            .iter()
            .filter(|c| c.is_timestamp)
            .map(|c| c.name.as_str())
            .collect();
        match ts.as_slice() {
            [one] => f.timestamp_field = one.to_string(),
            _ => errors.push(ValidationError::new(
                format!("data source {}", f.name),
                format!(
                    "timestamp_field is not given and cannot be inferred: {} has {} timestamp columns ({}); name one",
                    f.location(),
                    ts.len(),
                    ts.join(", ")
                ),
            )),
        }
    }
    let base = out.clone();
    let doc = &base;

    for (i, view) in doc.feature_views.iter().enumerate() {
        let join_keys = doc.join_keys(view);
        let columns = match doc.batch_source(view) {
            Some(src) => match lookup.columns(src) {
                Ok(c) => Some((src, c)),
                Err(e) if e == "no schema lookup" => None,
                Err(e) => {
                    errors.push(ValidationError::new(
                        format!("data source {}", src.name),
                        format!("cannot read {}: {e}", src.location()),
                    ));
                    None
                }
            },
            None => None,
        };
        let target = &mut out.feature_views[i];
        if target.is_aggregated() {
            // The features of an aggregated view are the aggregations' outputs.
            target.features = target
                .aggregations
                .iter()
                .map(|a| Field::new(a.output_name(), a.function.output_type()))
                .collect();
        }
        if let Some((src, cols)) = &columns {
            if target.features.is_empty() {
                for c in cols {
                    let feature = src.field_mapping.get(&c.name).cloned().unwrap_or(c.name.clone());
                    let skip = c.name == src.timestamp_field
                        || Some(&c.name) == src.created_timestamp_column.as_ref()
                        || join_keys.contains(&feature);
                    if let (false, Some(t)) = (skip, c.value_type) {
                        target.features.push(Field::new(feature, t));
                    }
                }
            }
            for key in &join_keys {
                if target.entity_columns.iter().any(|f| &f.name == key) {
                    continue;
                }
                let col = src.column_of(key);
                if let Some(t) = cols.iter().find(|c| c.name == col).and_then(|c| c.value_type) {
                    inferred_types.push((key.clone(), t));
                }
            }
        }
        for f in &target.entity_columns {
            inferred_types.push((f.name.clone(), f.dtype));
        }
    }

    for entity in &mut out.entities {
        if entity.value_type.is_none() {
            let key = entity.join_keys.first().cloned().unwrap_or_default();
            entity.value_type = inferred_types.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
        }
    }

    for view in &mut out.feature_views {
        let declared: Vec<String> = view.entity_columns.iter().map(|f| f.name.clone()).collect();
        for name in &view.entities {
            if let Some(e) = out.entities.iter().find(|e| &e.name == name) {
                for key in &e.join_keys {
                    if let (false, Some(t)) = (declared.contains(key), e.value_type) {
                        view.entity_columns.push(Field::new(key.clone(), t));
                    }
                }
            }
        }
    }

    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
