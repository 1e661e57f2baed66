//! Validation of a (resolved) registry document: every problem is reported at once, each
//! naming the object it concerns.

use std::collections::{BTreeMap, HashSet};

use crate::model::{AggregationFunction, DataSource, FeatureView, RegistryDoc};
use crate::resolve::{SchemaLookup, SourceColumn};

/// One problem found in the definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The object concerned, e.g. `feature view driver_hourly_stats`.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// A new error about `object`.
    pub fn new(object: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            object: object.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// True when `name` is a valid Feast project name: letters, digits and `_`, not starting with `_`.
pub fn valid_project_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Longest accepted object or field name (Feast's SQL registry stores names as `VARCHAR(255)`).
pub const MAX_NAME_LEN: usize = 255;

/// Checks the name of a registry object (entity, data source, feature view, on-demand view,
/// feature service): 1 to [`MAX_NAME_LEN`] characters, ASCII letters, digits, `_`, `-` and `.`,
/// not starting with a digit, `-` or `.`. `:` and `@` are kept out because they separate a
/// view from a feature (`view:feature`) and a version (`view@v2`) in feature references; control
/// characters and spaces because names become keys and paths in the stores.
pub fn check_object_name(name: &str) -> Result<(), String> {
    check_len(name)?;
    let first = name.chars().next().unwrap_or('_');
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "the name `{}` must start with a letter or `_`",
            printable(name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "the name `{}` holds `{}`: names may hold only ASCII letters, digits, `_`, `-` and `.`",
            printable(name),
            c.escape_default()
        ));
    }
    Ok(())
}

/// Checks a field (feature, join key, request field) name: 1 to [`MAX_NAME_LEN`] characters,
/// no control characters and no `:` (which would make `view:feature` references ambiguous).
pub fn check_field_name(name: &str) -> Result<(), String> {
    check_len(name)?;
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == ':') {
        return Err(format!(
            "the name `{}` holds `{}`, which a field name may not hold",
            printable(name),
            c.escape_default()
        ));
    }
    Ok(())
}

fn check_len(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "the name `{}...` is {} characters long; the limit is {MAX_NAME_LEN}",
            printable(&name.chars().take(32).collect::<String>()),
            name.chars().count()
        ));
    }
    Ok(())
}

/// A name as it may be shown in a message (control characters escaped, cut at 64).
fn printable(name: &str) -> String {
    name.chars().take(64).flat_map(char::escape_default).collect()
}

/// Every object and field name of `doc` (see [`check_object_name`], [`check_field_name`]).
fn check_names(doc: &RegistryDoc, errors: &mut Vec<ValidationError>) {
    let mut object = |kind: &str, name: &str| {
        if let Err(m) = check_object_name(name) {
            errors.push(ValidationError::new(format!("{kind} {}", printable(name)), m));
        }
    };
    for e in &doc.entities {
        object("entity", &e.name);
    }
    for s in &doc.data_sources {
        object(s.kind(), s.name());
    }
    for v in &doc.feature_views {
        object("feature view", &v.name);
    }
    for v in &doc.on_demand_feature_views {
        object("on-demand feature view", &v.name);
    }
    for s in &doc.feature_services {
        object("feature service", &s.name);
    }
    let mut field = |owner: String, name: &str| {
        if let Err(m) = check_field_name(name) {
            errors.push(ValidationError::new(owner, m));
        }
    };
    for e in &doc.entities {
        for k in &e.join_keys {
            field(format!("entity {}", printable(&e.name)), k);
        }
    }
    for v in &doc.feature_views {
        for f in v.features.iter().chain(&v.entity_columns) {
            field(format!("feature view {}", printable(&v.name)), &f.name);
        }
    }
    for v in &doc.on_demand_feature_views {
        for f in &v.features {
            field(format!("on-demand feature view {}", printable(&v.name)), &f.name);
        }
    }
    for s in &doc.data_sources {
        if let DataSource::Request(r) = s {
            for f in &r.schema {
                field(format!("request source {}", printable(&r.name)), &f.name);
            }
        }
    }
}

fn duplicates<'a>(kind: &str, names: impl Iterator<Item = &'a str>, errors: &mut Vec<ValidationError>) {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            errors.push(ValidationError::new(
                format!("{kind} {n}"),
                format!("the name `{n}` is defined more than once"),
            ));
        }
    }
}

/// Checks `doc` for consistency; with a [`SchemaLookup`] that can read sources it also checks
/// the columns and their types. Returns every problem found (empty when valid).
pub fn validate(doc: &RegistryDoc, lookup: &dyn SchemaLookup) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if !valid_project_name(&doc.project) {
        errors.push(ValidationError::new(
            format!("project {}", doc.project),
            "a project name may hold only letters, digits and `_`, and may not start with `_`",
        ));
    }
    check_names(doc, &mut errors);
    duplicates("entity", doc.entities.iter().map(|e| e.name.as_str()), &mut errors);
    duplicates("data source", doc.data_sources.iter().map(|s| s.name()), &mut errors);
    duplicates(
        "feature view",
        doc.feature_views
            .iter()
            .map(|v| v.name.as_str())
            .chain(doc.on_demand_feature_views.iter().map(|v| v.name.as_str())),
        &mut errors,
    );
    duplicates(
        "feature service",
        doc.feature_services.iter().map(|s| s.name.as_str()),
        &mut errors,
    );

    for e in &doc.entities {
        let obj = format!("entity {}", e.name);
        if e.join_keys.len() != 1 {
            errors.push(ValidationError::new(
                &obj,
                format!("an entity needs exactly one join key, found {}", e.join_keys.len()),
            ));
        }
        if e.value_type.is_none() {
            errors.push(ValidationError::new(
                &obj,
                format!(
                    "value_type is not given and cannot be inferred: no feature view declares a field `{}` \
                     and no source has such a column",
                    e.join_keys.first().map(String::as_str).unwrap_or("")
                ),
            ));
        }
        if let Some(t) = e.value_type {
            if !t.is_valid_key() {
                errors.push(ValidationError::new(
                    &obj,
                    format!("value_type {t} cannot be a join key (use INT32, INT64, STRING, BYTES or UNIX_TIMESTAMP)"),
                ));
            }
        }
    }

    for s in &doc.data_sources {
        let obj = format!("{} {}", s.kind(), s.name());
        match s {
            DataSource::Push(p) => match doc.data_source(&p.batch_source) {
                Some(DataSource::File(_)) => {}
                Some(other) => errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "batch_source `{}` is a {}, not a file source",
                        p.batch_source,
                        other.kind()
                    ),
                )),
                None => errors.push(ValidationError::new(
                    &obj,
                    format!("batch_source `{}` does not exist", p.batch_source),
                )),
            },
            DataSource::Kafka(k) => {
                match doc.data_source(&k.batch_source) {
                    Some(DataSource::File(f)) if f.postgres.is_some() => errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "batch_source `{}` is a PostgreSQL source; Larder writes a stream's offline copy to a \
                             Parquet FileSource only",
                            k.batch_source
                        ),
                    )),
                    Some(DataSource::File(_)) => {}
                    Some(other) => errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "batch_source `{}` is a {}, not a file source",
                            k.batch_source,
                            other.kind()
                        ),
                    )),
                    None => errors.push(ValidationError::new(
                        &obj,
                        format!("batch_source `{}` does not exist", k.batch_source),
                    )),
                }
                if k.bootstrap_servers.trim().is_empty() {
                    errors.push(ValidationError::new(&obj, "bootstrap_servers is required"));
                }
                if k.topic.trim().is_empty() {
                    errors.push(ValidationError::new(&obj, "topic is required"));
                }
                if k.message_format != "json" {
                    errors.push(ValidationError::new(
                        &obj,
                        format!("message_format `{}` is not supported (only json)", k.message_format),
                    ));
                }
            }
            DataSource::Request(r) if r.schema.is_empty() => errors.push(ValidationError::new(
                &obj,
                "a request source needs at least one field in its schema",
            )),
            DataSource::File(f) if f.timestamp_field.is_empty() => {
                errors.push(ValidationError::new(&obj, "timestamp_field is required"))
            }
            _ => {}
        }
    }

    let mut columns_cache: BTreeMap<String, Option<Vec<SourceColumn>>> = BTreeMap::new();
    for v in &doc.feature_views {
        let obj = format!("feature view {}", v.name);
        for e in &v.entities {
            if doc.entity(e).is_none() {
                errors.push(ValidationError::new(&obj, format!("entity `{e}` does not exist")));
            }
        }
        if v.ttl_seconds.is_some_and(|t| t < 0) {
            errors.push(ValidationError::new(&obj, "ttl may not be negative"));
        }
        if v.features.is_empty() {
            errors.push(ValidationError::new(&obj, "the view has no features"));
        }
        validate_aggregations(doc, v, &obj, &mut errors);
        duplicates(
            &format!("feature in view {}:", v.name),
            v.features.iter().map(|f| f.name.as_str()),
            &mut errors,
        );
        let join_keys = doc.join_keys(v);
        for f in &v.features {
            if join_keys.contains(&f.name) {
                errors.push(ValidationError::new(
                    &obj,
                    format!("`{}` is a join key and cannot also be a feature", f.name),
                ));
            }
        }
        for f in &v.entity_columns {
            let entity_type = doc
                .entities
                .iter()
                .find(|e| e.join_keys.contains(&f.name))
                .and_then(|e| e.value_type);
            if let Some(t) = entity_type {
                if t != f.dtype {
                    errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "field `{}` is declared {} but its entity's value_type is {t}",
                            f.name, f.dtype
                        ),
                    ));
                }
            }
        }
        let src = match doc.data_source(&v.source) {
            None => {
                errors.push(ValidationError::new(
                    &obj,
                    format!("source `{}` does not exist", v.source),
                ));
                continue;
            }
            Some(DataSource::Request(_)) => {
                errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "source `{}` is a request source; a feature view needs a file or push source",
                        v.source
                    ),
                ));
                continue;
            }
            Some(_) => match doc.batch_source(v) {
                Some(s) => s,
                None => continue,
            },
        };
        let cols = columns_cache
            .entry(src.name.clone())
            .or_insert_with(|| lookup.columns(src).ok());
        let Some(cols) = cols else { continue };
        let column = |name: &str| -> Option<&SourceColumn> {
            let col = src.column_of(name);
            cols.iter().find(|c| c.name == col)
        };
        let src_obj = format!("data source {}", src.name);
        match cols.iter().find(|c| c.name == src.timestamp_field) {
            None => errors.push(ValidationError::new(
                &src_obj,
                format!(
                    "timestamp_field `{}` is not a column of {}",
                    src.timestamp_field,
                    src.location()
                ),
            )),
            Some(c) if !c.is_timestamp => errors.push(ValidationError::new(
                &src_obj,
                format!("timestamp_field `{}` is not a timestamp column", src.timestamp_field),
            )),
            _ => {}
        }
        if let Some(created) = &src.created_timestamp_column {
            match cols.iter().find(|c| &c.name == created) {
                None => errors.push(ValidationError::new(
                    &src_obj,
                    format!(
                        "created_timestamp_column `{created}` is not a column of {}",
                        src.location()
                    ),
                )),
                Some(c) if !c.is_timestamp => errors.push(ValidationError::new(
                    &src_obj,
                    format!("created_timestamp_column `{created}` is not a timestamp column"),
                )),
                _ => {}
            }
        }
        for key in &join_keys {
            match column(key) {
                None => errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "join key `{key}` is not a column of source {} ({})",
                        src.name,
                        src.location()
                    ),
                )),
                Some(c) => {
                    let declared = v.entity_columns.iter().find(|f| &f.name == key).map(|f| f.dtype);
                    if let (Some(d), Some(t)) = (declared, c.value_type) {
                        if !t.compatible_with(d) {
                            errors.push(ValidationError::new(
                                &obj,
                                format!("join key `{key}` is {d} but the source column is {t}"),
                            ));
                        }
                    }
                }
            }
        }
        for a in &v.aggregations {
            match column(&a.column).and_then(|c| c.value_type) {
                None => errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "aggregated column `{}` is not a readable column of source {} ({})",
                        a.column,
                        src.name,
                        src.location()
                    ),
                )),
                Some(t) if !t.is_numeric() && a.function != AggregationFunction::Count => {
                    errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "`{}` of column `{}` needs a numeric column, not {t}",
                            a.function.as_str(),
                            a.column
                        ),
                    ))
                }
                _ => {}
            }
        }
        for f in v.features.iter().filter(|_| !v.is_aggregated()) {
            match column(&f.name) {
                None => errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "feature `{}` is not a column of source {} ({})",
                        f.name,
                        src.name,
                        src.location()
                    ),
                )),
                Some(c) => match c.value_type {
                    Some(t) if t.compatible_with(f.dtype) => {}
                    Some(t) => errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "feature `{}` is declared {} but the source column is {t}",
                            f.name, f.dtype
                        ),
                    )),
                    None => errors.push(ValidationError::new(
                        &obj,
                        format!(
                            "feature `{}` is declared {} but the source column has a type Larder cannot read",
                            f.name, f.dtype
                        ),
                    )),
                },
            }
        }
    }

    for v in &doc.on_demand_feature_views {
        let obj = format!("on-demand feature view {}", v.name);
        if !matches!(v.mode.as_str(), "pandas" | "python" | "sql") {
            errors.push(ValidationError::new(
                &obj,
                format!("mode `{}` is not one of pandas, python, sql", v.mode),
            ));
        }
        if v.features.is_empty() {
            errors.push(ValidationError::new(&obj, "the view has no output features (schema)"));
        }
        for p in &v.sources {
            match doc.feature_view(&p.view) {
                None => errors.push(ValidationError::new(
                    &obj,
                    format!("source feature view `{}` does not exist", p.view),
                )),
                Some(src) => {
                    for f in &p.features {
                        if src.feature(f).is_none() {
                            errors.push(ValidationError::new(
                                &obj,
                                format!("feature `{f}` is not in feature view {}", p.view),
                            ));
                        }
                    }
                }
            }
        }
        for r in &v.request_sources {
            if !matches!(doc.data_source(r), Some(DataSource::Request(_))) {
                errors.push(ValidationError::new(
                    &obj,
                    format!("request source `{r}` does not exist"),
                ));
            }
        }
    }

    for s in &doc.feature_services {
        let obj = format!("feature service {}", s.name);
        if s.features.is_empty() {
            errors.push(ValidationError::new(&obj, "the service lists no features"));
        }
        if let Some(l) = &s.logging {
            if !(0.0..=1.0).contains(&l.sample_rate) {
                errors.push(ValidationError::new(
                    &obj,
                    format!(
                        "logging_config.sample_rate is {}; it must be between 0 and 1",
                        l.sample_rate
                    ),
                ));
            }
            if l.path.trim().is_empty() {
                errors.push(ValidationError::new(
                    &obj,
                    "logging_config: the destination has no path",
                ));
            }
        }
        for p in &s.features {
            let names: Option<Vec<&str>> = doc
                .feature_view(&p.view)
                .map(|v| v.features.iter().map(|f| f.name.as_str()).collect())
                .or_else(|| {
                    doc.on_demand_feature_view(&p.view)
                        .map(|v| v.features.iter().map(|f| f.name.as_str()).collect())
                });
            match names {
                None => errors.push(ValidationError::new(
                    &obj,
                    format!("feature view `{}` does not exist", p.view),
                )),
                Some(names) => {
                    for f in &p.features {
                        if !names.contains(&f.as_str()) {
                            errors.push(ValidationError::new(
                                &obj,
                                format!("feature `{f}` is not in view {}", p.view),
                            ));
                        }
                    }
                }
            }
        }
    }
    errors
}

/// Checks the aggregations of a stream feature view: windows, slides, output names, source.
fn validate_aggregations(doc: &RegistryDoc, v: &FeatureView, obj: &str, errors: &mut Vec<ValidationError>) {
    if v.aggregations.is_empty() {
        return;
    }
    if doc.kafka_source(v).is_none() {
        errors.push(ValidationError::new(
            obj,
            format!("aggregations need a Kafka source; `{}` is not one", v.source),
        ));
    }
    for a in &v.aggregations {
        let what = format!("aggregation {}", a.output_name());
        if a.time_window_seconds <= 0 {
            errors.push(ValidationError::new(
                obj,
                format!("{what}: time_window must be positive"),
            ));
            continue;
        }
        let slide = a.slide_seconds();
        if slide <= 0 || a.time_window_seconds % slide != 0 {
            errors.push(ValidationError::new(
                obj,
                format!(
                    "{what}: slide_interval ({slide} s) must be positive and divide time_window ({} s)",
                    a.time_window_seconds
                ),
            ));
        }
    }
    duplicates(
        &format!("aggregation output in view {}:", v.name),
        v.aggregations
            .iter()
            .map(|a| a.output_name())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
        errors,
    );
}
