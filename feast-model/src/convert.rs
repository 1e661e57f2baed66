//! Feast's registry objects as Larder's definitions model.
//!
//! A Feast `Registry` holds every project; [`registry_doc`] takes one project's entities, data
//! sources (the registered ones and those written inline in views), feature views, stream and
//! on-demand feature views and feature services, with the same rules the Python SDK applies to
//! Feast objects (`sdk-python/larder/feast_compat.py`): a view's source is its stream (push,
//! Kafka) source when it has one, else its batch source; a ttl of 0 is no ttl; an on-demand
//! view keeps its function's source text (`body_text`) and name; a label view is a feature
//! view (its conflict policy is not applied, as in the SDK).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use larder_registry::{
    Aggregation, AggregationFunction, DataSource, Entity, FeatureLogging, FeatureService, FeatureView,
    FeatureViewProjection, Field, FileSource, KafkaSource, MaterializationInterval, OnDemandFeatureView,
    PostgresRelation, PushSource, RegistryDoc, RequestSource, ValueType,
};

use crate::proto::core as fc;
use crate::proto::types::value_type::Enum as FeastType;

/// A Feast object Larder cannot represent; names the object and what is missing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{object}: {message}")]
pub struct ConvertError {
    /// The object, e.g. `feature view driver_hourly_stats`.
    pub object: String,
    /// What cannot be converted.
    pub message: String,
}

fn err(object: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError {
        object: object.into(),
        message: message.into(),
    }
}

/// Larder's type for Feast's `ValueType.Enum` number; `None` for `INVALID`/unknown (a type
/// to infer) and for the set and UUID types Larder does not store.
pub fn value_type(number: i32) -> Option<ValueType> {
    Some(match FeastType::try_from(number).ok()? {
        FeastType::Bytes => ValueType::Bytes,
        FeastType::String => ValueType::String,
        FeastType::Int32 => ValueType::Int32,
        FeastType::Int64 => ValueType::Int64,
        FeastType::Double => ValueType::Double,
        FeastType::Float => ValueType::Float,
        FeastType::Bool => ValueType::Bool,
        FeastType::UnixTimestamp => ValueType::UnixTimestamp,
        FeastType::BytesList => ValueType::BytesList,
        FeastType::StringList => ValueType::StringList,
        FeastType::Int32List => ValueType::Int32List,
        FeastType::Int64List => ValueType::Int64List,
        FeastType::DoubleList => ValueType::DoubleList,
        FeastType::FloatList => ValueType::FloatList,
        FeastType::BoolList => ValueType::BoolList,
        FeastType::UnixTimestampList => ValueType::UnixTimestampList,
        FeastType::Map => ValueType::Map,
        FeastType::MapList => ValueType::MapList,
        FeastType::Json => ValueType::Json,
        FeastType::JsonList => ValueType::JsonList,
        FeastType::Struct => ValueType::Struct,
        FeastType::StructList => ValueType::StructList,
        _ => return None,
    })
}

fn field(spec: &fc::FeatureSpecV2, owner: &str) -> Result<Field, ConvertError> {
    let dtype = value_type(spec.value_type).ok_or_else(|| {
        err(
            owner,
            format!(
                "field `{}` has Feast type {} ({}), which Larder does not store",
                spec.name,
                FeastType::try_from(spec.value_type).map_or("unknown", |t| t.as_str_name()),
                spec.value_type
            ),
        )
    })?;
    Ok(Field {
        name: spec.name.clone(),
        dtype,
        description: spec.description.clone(),
        // Feast's own annotation of a Struct field's schema, which its Python API strips.
        tags: spec
            .tags
            .iter()
            .filter(|(k, _)| k.as_str() != "feast:struct_schema")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        vector_index: spec.vector_index,
        vector_length: u32::try_from(spec.vector_length).ok().filter(|n| *n > 0),
        vector_search_metric: Some(spec.vector_search_metric.clone()).filter(|m| !m.is_empty()),
    })
}

fn fields(specs: &[fc::FeatureSpecV2], owner: &str) -> Result<Vec<Field>, ConvertError> {
    specs.iter().map(|f| field(f, owner)).collect()
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.to_string()).filter(|s| !s.is_empty())
}

fn seconds(d: &Option<prost_types::Duration>) -> Option<i64> {
    d.as_ref().map(|d| d.seconds)
}

/// Larder's data source for a Feast one, and the batch source it is backed by (pushed and
/// Kafka sources carry theirs inline).
fn data_source(s: &fc::DataSource) -> Result<(DataSource, Option<&fc::DataSource>), ConvertError> {
    use fc::data_source::Options;
    let object = format!("data source {}", s.name);
    let batch = s.batch_source.as_deref();
    let batch_name = || {
        batch
            .map(|b| b.name.clone())
            .ok_or_else(|| err(&object, "has no batch_source"))
    };
    // Feast leaves the (empty) options of a push source unset: its type says what it is.
    let push = s.r#type == fc::data_source::SourceType::PushSource as i32;
    let options = match &s.options {
        None if push => Some(Options::PushOptions(fc::data_source::PushOptions {})),
        other => other.clone(),
    };
    let batch_source = |path: String, postgres| {
        DataSource::File(FileSource {
            name: s.name.clone(),
            path,
            timestamp_field: s.timestamp_field.clone(),
            created_timestamp_column: non_empty(&s.created_timestamp_column),
            field_mapping: s.field_mapping.clone(),
            description: s.description.clone(),
            tags: s.tags.clone(),
            owner: s.owner.clone(),
            postgres,
        })
    };
    let source = match &options {
        Some(Options::FileOptions(f)) => batch_source(f.uri.clone(), None),
        Some(Options::CustomOptions(c)) if s.data_source_class_type.ends_with(".PostgreSQLSource") => {
            batch_source(String::new(), Some(postgres_relation(&c.configuration, &object)?))
        }
        Some(Options::PushOptions(_)) => DataSource::Push(PushSource {
            name: s.name.clone(),
            batch_source: batch_name()?,
            description: s.description.clone(),
            tags: s.tags.clone(),
            owner: s.owner.clone(),
        }),
        Some(Options::RequestDataOptions(r)) => DataSource::Request(RequestSource {
            name: s.name.clone(),
            schema: fields(&r.schema, &object)?,
            description: s.description.clone(),
            tags: s.tags.clone(),
            owner: s.owner.clone(),
        }),
        Some(Options::KafkaOptions(k)) => {
            let (message_format, schema_json) = match k.message_format.as_ref().and_then(|f| f.format.as_ref()) {
                Some(fc::stream_format::Format::JsonFormat(j)) => ("json".to_string(), j.schema_json.clone()),
                Some(fc::stream_format::Format::AvroFormat(_)) => ("AvroFormat".to_string(), String::new()),
                Some(fc::stream_format::Format::ProtoFormat(_)) => ("ProtoFormat".to_string(), String::new()),
                None => ("json".to_string(), String::new()),
            };
            DataSource::Kafka(KafkaSource {
                name: s.name.clone(),
                bootstrap_servers: k.kafka_bootstrap_servers.clone(),
                topic: k.topic.clone(),
                timestamp_field: s.timestamp_field.clone(),
                created_timestamp_column: non_empty(&s.created_timestamp_column),
                field_mapping: s.field_mapping.clone(),
                batch_source: batch_name()?,
                message_format,
                schema_json,
                watermark_delay_seconds: seconds(&k.watermark_delay_threshold),
                description: s.description.clone(),
                tags: s.tags.clone(),
                owner: s.owner.clone(),
            })
        }
        Some(other) => {
            let kind = format!("{other:?}");
            let kind = kind.split('(').next().unwrap_or("unknown");
            return Err(err(
                object,
                format!("{kind} sources are not supported (Larder reads Parquet files: FileSource)"),
            ));
        }
        None => return Err(err(object, "has no options (an unknown source type)")),
    };
    Ok((source, batch))
}

/// The table or query of a Feast `PostgreSQLSource` (its `PostgreSQLOptions`, JSON in the custom
/// options: `{"name", "query", "table"}`).
fn postgres_relation(configuration: &[u8], object: &str) -> Result<PostgresRelation, ConvertError> {
    let options: serde_json::Value = serde_json::from_slice(configuration)
        .map_err(|e| err(object, format!("PostgreSQLSource options are not JSON: {e}")))?;
    let text = |key: &str| {
        options
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let relation = PostgresRelation {
        table: text("table"),
        query: text("query"),
    };
    if relation.table.is_empty() && relation.query.is_empty() {
        return Err(err(object, "PostgreSQLSource has neither a table nor a query"));
    }
    Ok(relation)
}

fn aggregation(a: &fc::Aggregation, owner: &str) -> Result<Aggregation, ConvertError> {
    let function = match a.function.to_ascii_lowercase().as_str() {
        "sum" => AggregationFunction::Sum,
        "count" => AggregationFunction::Count,
        "mean" | "avg" => AggregationFunction::Mean,
        "min" => AggregationFunction::Min,
        "max" => AggregationFunction::Max,
        other => return Err(err(owner, format!("aggregation function `{other}` is not supported"))),
    };
    Ok(Aggregation {
        column: a.column.clone(),
        function,
        time_window_seconds: seconds(&a.time_window).unwrap_or(0),
        slide_interval_seconds: seconds(&a.slide_interval).filter(|s| *s > 0),
        name: non_empty(&a.name),
    })
}

fn projection(p: &fc::FeatureViewProjection) -> FeatureViewProjection {
    FeatureViewProjection {
        view: p.feature_view_name.clone(),
        features: p.feature_columns.iter().map(|f| f.name.clone()).collect(),
        alias: non_empty(&p.feature_view_name_alias),
    }
}

/// A service's logging to files (Feast's `FileLoggingDestination`); logging to a warehouse
/// (BigQuery, Redshift...) has no Larder form and is left out.
fn logging(c: &fc::LoggingConfig) -> Option<FeatureLogging> {
    match &c.destination {
        Some(fc::logging_config::Destination::FileDestination(f)) => Some(FeatureLogging {
            sample_rate: f64::from(c.sample_rate),
            path: f.path.clone(),
            partition_by: f.partition_by.clone(),
        }),
        _ => None,
    }
}

/// Collects the data sources of one project: the registered ones, then those met inline.
#[derive(Default)]
struct Sources(BTreeMap<String, DataSource>);

impl Sources {
    fn add(&mut self, s: &fc::DataSource) -> Result<String, ConvertError> {
        if !self.0.contains_key(&s.name) {
            let (source, batch) = data_source(s)?;
            self.0.insert(s.name.clone(), source);
            if let Some(b) = batch {
                self.add(b)?;
            }
        }
        Ok(s.name.clone())
    }
}

struct ViewParts<'a> {
    name: &'a str,
    entities: &'a [String],
    features: &'a [fc::FeatureSpecV2],
    entity_columns: &'a [fc::FeatureSpecV2],
    batch_source: Option<&'a fc::DataSource>,
    stream_source: Option<&'a fc::DataSource>,
    ttl: &'a Option<prost_types::Duration>,
    online: bool,
    aggregations: &'a [fc::Aggregation],
    description: &'a str,
    tags: &'a BTreeMap<String, String>,
    owner: &'a str,
}

fn feature_view(v: ViewParts<'_>, sources: &mut Sources) -> Result<FeatureView, ConvertError> {
    let object = format!("feature view {}", v.name);
    let source = match (v.stream_source, v.batch_source) {
        (Some(s), _) | (None, Some(s)) => sources.add(s)?,
        (None, None) => return Err(err(&object, "has no source")),
    };
    if let (Some(_), Some(b)) = (v.stream_source, v.batch_source) {
        sources.add(b)?;
    }
    let aggregations = v
        .aggregations
        .iter()
        .map(|a| aggregation(a, &object))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FeatureView {
        name: v.name.to_string(),
        entities: v.entities.to_vec(),
        // An aggregated view's features are its aggregations' outputs.
        features: if aggregations.is_empty() {
            fields(v.features, &object)?
        } else {
            Vec::new()
        },
        entity_columns: fields(v.entity_columns, &object)?,
        source,
        ttl_seconds: seconds(v.ttl),
        aggregations,
        online: v.online,
        description: v.description.to_string(),
        tags: v.tags.clone(),
        owner: v.owner.to_string(),
    })
}

fn on_demand_view(
    spec: &fc::OnDemandFeatureViewSpec,
    sources: &mut Sources,
) -> Result<OnDemandFeatureView, ConvertError> {
    use fc::on_demand_source::Source;
    let object = format!("on-demand feature view {}", spec.name);
    let mut projections = Vec::new();
    let mut request_sources = Vec::new();
    for (key, s) in &spec.sources {
        match &s.source {
            Some(Source::FeatureViewProjection(p)) => projections.push(projection(p)),
            Some(Source::FeatureView(fv)) => {
                let fv_spec = fv
                    .spec
                    .as_ref()
                    .ok_or_else(|| err(&object, format!("source {key} has no spec")))?;
                projections.push(FeatureViewProjection {
                    view: fv_spec.name.clone(),
                    features: fv_spec.features.iter().map(|f| f.name.clone()).collect(),
                    alias: None,
                });
            }
            Some(Source::RequestDataSource(r)) => request_sources.push(sources.add(r)?),
            None => return Err(err(&object, format!("source {key} is empty"))),
        }
    }
    let udf = match spec
        .feature_transformation
        .as_ref()
        .and_then(|t| t.transformation.as_ref())
    {
        Some(fc::feature_transformation_v2::Transformation::UserDefinedFunction(u)) => {
            (u.name.clone(), u.body_text.clone())
        }
        Some(fc::feature_transformation_v2::Transformation::SubstraitTransformation(_)) => {
            return Err(err(object, "substrait (ibis) transformations are not supported"))
        }
        #[allow(deprecated)] // the field older Feast releases wrote
        None => match &spec.user_defined_function {
            Some(u) => (u.name.clone(), u.body_text.clone()),
            None => return Err(err(object, "has no transformation")),
        },
    };
    if udf.1.is_empty() {
        return Err(err(
            object,
            "its transformation has no source text (body_text); Larder cannot run a pickled function",
        ));
    }
    Ok(OnDemandFeatureView {
        name: spec.name.clone(),
        sources: projections,
        request_sources,
        features: fields(&spec.features, &object)?,
        mode: if spec.mode == "python" { "python" } else { "pandas" }.to_string(),
        udf_name: udf.0,
        udf_body: udf.1,
        write_to_online_store: spec.write_to_online_store,
        description: spec.description.clone(),
        tags: spec.tags.clone(),
        owner: spec.owner.clone(),
    })
}

/// Larder's entity for a Feast one (untyped when Feast's is: see [`infer_entity_types`]).
pub fn entity(spec: &fc::EntitySpecV2) -> Entity {
    Entity {
        name: spec.name.clone(),
        join_keys: vec![if spec.join_key.is_empty() {
            spec.name.clone()
        } else {
            spec.join_key.clone()
        }],
        value_type: value_type(spec.value_type),
        description: spec.description.clone(),
        tags: spec.tags.clone(),
        owner: spec.owner.clone(),
    }
}

/// The definitions of `project` in a Feast registry. Objects of other projects are left out;
/// saved datasets, validation references, permissions and infra are not part of Larder's
/// model and are ignored.
pub fn registry_doc(registry: &fc::Registry, project: &str) -> Result<RegistryDoc, ConvertError> {
    let mut doc = RegistryDoc {
        project: project.to_string(),
        ..RegistryDoc::default()
    };
    doc.feast_objects = crate::kept::kept_objects(registry, project);
    let mut sources = Sources::default();
    for s in registry.data_sources.iter().filter(|s| s.project == project) {
        sources.add(s)?;
    }
    for e in &registry.entities {
        if let Some(spec) = e.spec.as_ref().filter(|s| s.project == project) {
            doc.entities.push(entity(spec));
        }
    }
    for v in &registry.feature_views {
        let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
            continue;
        };
        let parts = ViewParts {
            name: &s.name,
            entities: &s.entities,
            features: &s.features,
            entity_columns: &s.entity_columns,
            batch_source: s.batch_source.as_ref(),
            stream_source: s.stream_source.as_ref(),
            ttl: &s.ttl,
            online: s.online,
            aggregations: &[],
            description: &s.description,
            tags: &s.tags,
            owner: &s.owner,
        };
        doc.feature_views.push(feature_view(parts, &mut sources)?);
    }
    for v in &registry.stream_feature_views {
        let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
            continue;
        };
        let parts = ViewParts {
            name: &s.name,
            entities: &s.entities,
            features: &s.features,
            entity_columns: &s.entity_columns,
            batch_source: s.batch_source.as_ref(),
            stream_source: s.stream_source.as_ref(),
            ttl: &s.ttl,
            online: s.online,
            aggregations: &s.aggregations,
            description: &s.description,
            tags: &s.tags,
            owner: &s.owner,
        };
        doc.feature_views.push(feature_view(parts, &mut sources)?);
    }
    for v in &registry.label_views {
        let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
            continue;
        };
        let parts = ViewParts {
            name: &s.name,
            entities: &s.entities,
            features: &s.features,
            // Feast types a label view's entity columns before the entities' value types are
            // known; Larder infers them from the source (as the SDK does for LabelView).
            entity_columns: &[],
            batch_source: None,
            stream_source: s.source.as_ref(),
            ttl: &s.ttl,
            online: s.online,
            aggregations: &[],
            description: &s.description,
            tags: &s.tags,
            owner: &s.owner,
        };
        doc.feature_views.push(feature_view(parts, &mut sources)?);
    }
    for v in &registry.on_demand_feature_views {
        if let Some(s) = v.spec.as_ref().filter(|s| s.project == project) {
            doc.on_demand_feature_views.push(on_demand_view(s, &mut sources)?);
        }
    }
    for f in &registry.feature_services {
        if let Some(s) = f.spec.as_ref().filter(|s| s.project == project) {
            doc.feature_services.push(FeatureService {
                name: s.name.clone(),
                features: s.features.iter().map(projection).collect(),
                description: s.description.clone(),
                tags: s.tags.clone(),
                owner: s.owner.clone(),
                logging: s.logging_config.as_ref().and_then(logging),
            });
        }
    }
    doc.data_sources = sources.0.into_values().collect();
    infer_entity_types(&mut doc);
    doc.normalize();
    Ok(doc)
}

/// Feast stores an entity declared without `value_type` untyped, and types its join keys in
/// each view's `entity_columns` instead; Larder encodes keys by the entity's type, so it is
/// taken from there (and a view without entity columns, such as a label view, gets them from
/// its entities). Feast's `__dummy` entity, which it registers for entity-less views, is
/// dropped when no view uses it.
pub fn infer_entity_types(doc: &mut RegistryDoc) {
    let mut key_types: BTreeMap<String, ValueType> = BTreeMap::new();
    for v in &doc.feature_views {
        for c in &v.entity_columns {
            key_types.entry(c.name.clone()).or_insert(c.dtype);
        }
    }
    for e in &mut doc.entities {
        if e.value_type.is_none() && e.join_keys.len() == 1 {
            e.value_type = key_types.get(&e.join_keys[0]).copied();
        }
    }
    let entities = doc.entities.clone();
    for v in &mut doc.feature_views {
        if !v.entity_columns.is_empty() {
            continue;
        }
        v.entity_columns = v
            .entities
            .iter()
            .filter_map(|name| entities.iter().find(|e| &e.name == name))
            .filter_map(|e| Some(Field::new(e.join_keys.first()?.clone(), e.value_type?)))
            .collect();
    }
    let dummy_used = doc
        .feature_views
        .iter()
        .any(|v| v.entities.iter().any(|e| e == "__dummy"));
    if !dummy_used {
        doc.entities.retain(|e| e.name != "__dummy");
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t.as_ref()?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// The materialized intervals Feast recorded per feature view of `project`.
pub fn materializations(registry: &fc::Registry, project: &str) -> BTreeMap<String, Vec<MaterializationInterval>> {
    let views = registry
        .feature_views
        .iter()
        .filter_map(|v| Some((v.spec.as_ref().map(|s| (&s.name, &s.project))?, v.meta.as_ref()?)));
    let stream_views = registry
        .stream_feature_views
        .iter()
        .filter_map(|v| Some((v.spec.as_ref().map(|s| (&s.name, &s.project))?, v.meta.as_ref()?)));
    let mut out = BTreeMap::new();
    for ((name, _), meta) in views.chain(stream_views).filter(|((_, p), _)| *p == project) {
        let intervals: Vec<MaterializationInterval> = meta
            .materialization_intervals
            .iter()
            .filter_map(|i| {
                let (start, end) = (time(&i.start_time)?, time(&i.end_time)?);
                Some(MaterializationInterval {
                    start,
                    end,
                    finished_at: time(&meta.last_updated_timestamp).unwrap_or(end),
                })
            })
            .collect();
        if !intervals.is_empty() {
            out.insert(name.clone(), intervals);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, t: FeastType) -> fc::FeatureSpecV2 {
        fc::FeatureSpecV2 {
            name: name.into(),
            value_type: t as i32,
            ..Default::default()
        }
    }

    fn file(name: &str) -> fc::DataSource {
        fc::DataSource {
            name: name.into(),
            project: "p".into(),
            timestamp_field: "ts".into(),
            r#type: fc::data_source::SourceType::BatchFile as i32,
            options: Some(fc::data_source::Options::FileOptions(fc::data_source::FileOptions {
                uri: "data/x.parquet".into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// A registry as Feast writes it for a push-fed view of an untyped entity.
    fn registry() -> fc::Registry {
        let push = fc::DataSource {
            name: "push".into(),
            project: "p".into(),
            r#type: fc::data_source::SourceType::PushSource as i32,
            batch_source: Some(Box::new(file("batch"))),
            ..Default::default()
        };
        let mut struct_field = spec("profile", FeastType::Struct);
        struct_field.tags.insert("feast:struct_schema".into(), "{}".into());
        struct_field.tags.insert("team".into(), "a".into());
        let entity = |name: &str, key: &str| fc::Entity {
            spec: Some(fc::EntitySpecV2 {
                name: name.into(),
                project: "p".into(),
                join_key: key.into(),
                ..Default::default()
            }),
            meta: None,
        };
        fc::Registry {
            entities: vec![entity("driver", "driver_id"), entity("__dummy", "__dummy_id")],
            data_sources: vec![push.clone()],
            feature_views: vec![fc::FeatureView {
                spec: Some(fc::FeatureViewSpec {
                    name: "stats".into(),
                    project: "p".into(),
                    entities: vec!["driver".into()],
                    features: vec![spec("rate", FeastType::Float), struct_field],
                    entity_columns: vec![spec("driver_id", FeastType::Int64)],
                    ttl: Some(prost_types::Duration {
                        seconds: 3600,
                        nanos: 0,
                    }),
                    batch_source: Some(file("batch")),
                    stream_source: Some(push),
                    online: true,
                    ..Default::default()
                }),
                meta: Some(fc::FeatureViewMeta {
                    materialization_intervals: vec![fc::MaterializationInterval {
                        start_time: Some(prost_types::Timestamp { seconds: 100, nanos: 0 }),
                        end_time: Some(prost_types::Timestamp { seconds: 200, nanos: 0 }),
                    }],
                    ..Default::default()
                }),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_feast_registry_becomes_larder_definitions() {
        let doc = registry_doc(&registry(), "p").unwrap();
        // The dummy entity nobody uses is dropped; the untyped entity takes its key's type.
        assert_eq!(doc.entities.len(), 1);
        assert_eq!(doc.entities[0].value_type, Some(ValueType::Int64));
        // A push source (options unset, as Feast writes it) and its inline batch source.
        let names: Vec<&str> = doc.data_sources.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["batch", "push"]);
        assert!(matches!(doc.data_source("push"), Some(DataSource::Push(p)) if p.batch_source == "batch"));
        let v = &doc.feature_views[0];
        assert_eq!((v.source.as_str(), v.ttl_seconds), ("push", Some(3600)));
        let profile = v.feature("profile").unwrap();
        assert_eq!(profile.dtype, ValueType::Struct);
        assert_eq!(profile.tags.keys().collect::<Vec<_>>(), ["team"]);
        let m = materializations(&registry(), "p");
        assert_eq!(m["stats"][0].end.timestamp(), 200);
    }

    #[test]
    fn other_projects_are_left_out_and_unsupported_sources_named() {
        assert!(registry_doc(&registry(), "q").unwrap().feature_views.is_empty());
        let mut r = registry();
        r.data_sources.push(fc::DataSource {
            name: "bq".into(),
            project: "p".into(),
            options: Some(fc::data_source::Options::BigqueryOptions(Default::default())),
            ..Default::default()
        });
        let e = registry_doc(&r, "p").unwrap_err();
        assert!(
            e.to_string().contains("data source bq") && e.to_string().contains("BigqueryOptions"),
            "{e}"
        );
    }
}
