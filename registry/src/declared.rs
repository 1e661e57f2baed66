//! The columns a batch source is declared to have by the definitions that write to it, for a
//! push or Kafka source whose batch source holds no data yet (Feast's streaming repos often
//! start with an empty directory): the batch source's timestamp columns, the Kafka messages'
//! fields from the source's `schema_json` (a Spark DDL schema: `user_id bigint, amount double`),
//! and the join keys and features of the views reading it.

use crate::model::{DataSource, FileSource, RegistryDoc, ValueType};

/// The Feast type of a Spark SQL type name (`bigint`, `array<double>`...), where there is one.
fn spark_type(ty: &str) -> Option<ValueType> {
    let ty = ty.trim().to_ascii_lowercase();
    if let Some(inner) = ty.strip_prefix("array<").and_then(|t| t.strip_suffix('>')) {
        return spark_type(inner)?.list_of();
    }
    Some(match ty.split('(').next().unwrap_or_default().trim() {
        "bigint" | "long" => ValueType::Int64,
        "int" | "integer" | "smallint" | "tinyint" | "short" | "byte" => ValueType::Int32,
        "double" | "decimal" | "numeric" => ValueType::Double,
        "float" | "real" => ValueType::Float,
        "string" | "varchar" | "char" => ValueType::String,
        "boolean" | "bool" => ValueType::Bool,
        "timestamp" | "timestamp_ntz" | "date" => ValueType::UnixTimestamp,
        "binary" => ValueType::Bytes,
        _ => return None,
    })
}

/// The `(name, type)` fields of a Spark DDL schema; fields of types without a Feast
/// equivalent (maps, structs) are left out.
pub fn ddl_fields(ddl: &str) -> Vec<(String, ValueType)> {
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in ddl.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&ddl[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&ddl[start..]);
    for part in parts {
        let part = part.trim();
        let Some((name, ty)) = part.split_once(char::is_whitespace) else {
            continue;
        };
        let name = name.trim_matches('`');
        if let Some(t) = spark_type(ty) {
            fields.push((name.to_string(), t));
        }
    }
    fields
}

/// The columns `source` is declared to have (see the module doc), in order: join keys,
/// features, message fields, then the timestamp columns. `None` when no push or Kafka source
/// writes to it: a plain file source's columns are its files'.
pub fn declared_columns(doc: &RegistryDoc, source: &FileSource) -> Option<Vec<(String, ValueType)>> {
    let writers: Vec<&DataSource> = doc
        .data_sources
        .iter()
        .filter(|s| match s {
            DataSource::Push(p) => p.batch_source == source.name,
            DataSource::Kafka(k) => k.batch_source == source.name,
            _ => false,
        })
        .collect();
    if writers.is_empty() {
        return None;
    }
    let mut out: Vec<(String, ValueType)> = Vec::new();
    let mut add = |name: &str, ty: ValueType| {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), ty));
        }
    };
    let names: Vec<&str> = writers
        .iter()
        .map(|w| w.name())
        .chain(std::iter::once(source.name.as_str()))
        .collect();
    let mut message_fields = Vec::new();
    for w in &writers {
        if let DataSource::Kafka(k) = w {
            for (field, ty) in ddl_fields(&k.schema_json) {
                let mapped = k.field_mapping.get(&field).cloned().unwrap_or(field);
                let name = if mapped == k.timestamp_field {
                    source.timestamp_field.clone()
                } else {
                    mapped
                };
                message_fields.push((name, ty));
            }
        }
    }
    for view in doc.feature_views.iter().filter(|v| names.contains(&v.source.as_str())) {
        for key in &view.entity_columns {
            add(&source.column_of(&key.name), key.dtype);
        }
        for name in &view.entities {
            if let Some(e) = doc.entities.iter().find(|e| &e.name == name) {
                for key in &e.join_keys {
                    let ty = e
                        .value_type
                        .or_else(|| message_fields.iter().find(|(n, _)| n == key).map(|(_, t)| *t));
                    if let Some(ty) = ty {
                        add(&source.column_of(key), ty);
                    }
                }
            }
        }
        if !view.is_aggregated() {
            for f in &view.features {
                add(&source.column_of(&f.name), f.dtype);
            }
        }
        for a in &view.aggregations {
            // The aggregated column's type is the message's; numbers are read as doubles.
            let ty = message_fields
                .iter()
                .find(|(n, _)| n == &a.column)
                .map(|(_, t)| *t)
                .unwrap_or(ValueType::Double);
            add(&a.column, ty);
        }
    }
    for (name, ty) in &message_fields {
        add(name, *ty);
    }
    add(&source.timestamp_field, ValueType::UnixTimestamp);
    if let Some(created) = &source.created_timestamp_column {
        add(created, ValueType::UnixTimestamp);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_ddl_fields_are_typed() {
        assert_eq!(
            ddl_fields("user_id bigint, amount DOUBLE, tags array<string>, m map<string,int>, `ts` timestamp"),
            vec![
                ("user_id".to_string(), ValueType::Int64),
                ("amount".to_string(), ValueType::Double),
                ("tags".to_string(), ValueType::StringList),
                ("ts".to_string(), ValueType::UnixTimestamp),
            ]
        );
        assert!(ddl_fields("").is_empty());
    }
}
