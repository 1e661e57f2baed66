//! Larder's definitions as Feast's registry objects: the direction Feast's clients read through
//! the registry server (`registry_type: remote`).
//!
//! The inverse of [`crate::convert`]: converting a document to Feast and back gives the same
//! document (checked by the tests below, also on the registry Feast 0.67 writes for its own
//! template). A view fed by a push or Kafka source carries that source as its `stream_source`
//! and the source's batch source as its `batch_source`, as Feast writes them; an aggregated
//! view (or one fed by Kafka) is a `StreamFeatureView`. On-demand views carry their function's
//! source text (`body_text`) and name but no pickled body: Feast 0.67 rebuilds the function
//! from the source text first (`feast.transformation.udf_rehydrate`). Larder's own SQL
//! on-demand views have no Feast form and are left out ([`has_feast_form`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use larder_registry::{
    DataSource, Entity, FeatureService, FeatureView, FeatureViewProjection, Field, MaterializationInterval,
    OnDemandFeatureView, PostgresRelation, RegistryDoc,
};

use crate::proto::core as fc;
use crate::proto::core::data_source::{Options, SourceType};

/// Feast's `google.protobuf.Timestamp` for a time.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn duration(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn feature_spec(f: &Field) -> fc::FeatureSpecV2 {
    fc::FeatureSpecV2 {
        name: f.name.clone(),
        value_type: i32::try_from(f.dtype.proto_number()).unwrap_or(0),
        description: f.description.clone(),
        tags: f.tags.clone(),
        vector_index: f.vector_index,
        vector_length: f.vector_length.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        vector_search_metric: f.vector_search_metric.clone().unwrap_or_default(),
    }
}

fn feature_specs(fields: &[Field]) -> Vec<fc::FeatureSpecV2> {
    fields.iter().map(feature_spec).collect()
}

/// Whether an on-demand view can be handed to a Feast client (Feast runs pandas and python
/// functions; Larder's SQL views have no Feast form).
pub fn has_feast_form(v: &OnDemandFeatureView) -> bool {
    matches!(v.mode.as_str(), "pandas" | "python")
}

/// The features a view offers: its schema, or its aggregations' outputs.
pub fn view_fields(v: &FeatureView) -> Vec<Field> {
    if v.is_aggregated() {
        v.aggregations
            .iter()
            .map(|a| Field::new(a.output_name(), a.function.output_type()))
            .collect()
    } else {
        v.features.clone()
    }
}

/// Converts one project's definitions, read from `doc`, into Feast's objects.
#[derive(Debug, Clone, Copy)]
pub struct ToFeast<'a> {
    doc: &'a RegistryDoc,
    /// When the definitions were applied (Feast's created and last-updated timestamps).
    applied_at: DateTime<Utc>,
}

impl<'a> ToFeast<'a> {
    /// A converter for `doc`, applied at `applied_at`.
    pub fn new(doc: &'a RegistryDoc, applied_at: DateTime<Utc>) -> Self {
        ToFeast { doc, applied_at }
    }

    fn project(&self) -> String {
        self.doc.project.clone()
    }

    /// Feast's entity.
    pub fn entity(&self, e: &Entity) -> fc::Entity {
        fc::Entity {
            spec: Some(fc::EntitySpecV2 {
                name: e.name.clone(),
                project: self.project(),
                value_type: e.value_type.map_or(0, |t| i32::try_from(t.proto_number()).unwrap_or(0)),
                description: e.description.clone(),
                join_key: e.join_keys.first().cloned().unwrap_or_else(|| e.name.clone()),
                tags: e.tags.clone(),
                owner: e.owner.clone(),
            }),
            meta: Some(fc::EntityMeta {
                created_timestamp: Some(timestamp(self.applied_at)),
                last_updated_timestamp: Some(timestamp(self.applied_at)),
            }),
        }
    }

    /// The source called `name` as Feast writes it (push and Kafka sources with their batch
    /// source inline); `None` when the document has no such source.
    pub fn data_source_named(&self, name: &str) -> Option<fc::DataSource> {
        self.doc.data_source(name).map(|s| self.data_source(s))
    }

    /// Feast's data source.
    pub fn data_source(&self, s: &DataSource) -> fc::DataSource {
        let base = |name: &str, description: &str, tags: &BTreeMap<String, String>, owner: &str| fc::DataSource {
            name: name.to_string(),
            project: self.project(),
            description: description.to_string(),
            tags: tags.clone(),
            owner: owner.to_string(),
            ..Default::default()
        };
        let inline = |name: &str| self.data_source_named(name).map(Box::new);
        match s {
            DataSource::File(f) if f.postgres.is_some() => {
                let pg = f.postgres.as_ref().cloned().unwrap_or_else(|| PostgresRelation {
                    table: String::new(),
                    query: String::new(),
                });
                let configuration = serde_json::json!({"name": f.name, "query": pg.query, "table": pg.table});
                fc::DataSource {
                    r#type: SourceType::CustomSource as i32,
                    timestamp_field: f.timestamp_field.clone(),
                    created_timestamp_column: f.created_timestamp_column.clone().unwrap_or_default(),
                    field_mapping: f.field_mapping.clone(),
                    data_source_class_type:
                        "feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source.PostgreSQLSource"
                            .into(),
                    options: Some(Options::CustomOptions(fc::data_source::CustomSourceOptions {
                        configuration: configuration.to_string().into_bytes(),
                    })),
                    ..base(&f.name, &f.description, &f.tags, &f.owner)
                }
            }
            DataSource::File(f) => fc::DataSource {
                r#type: SourceType::BatchFile as i32,
                timestamp_field: f.timestamp_field.clone(),
                created_timestamp_column: f.created_timestamp_column.clone().unwrap_or_default(),
                field_mapping: f.field_mapping.clone(),
                data_source_class_type: "feast.infra.offline_stores.file_source.FileSource".into(),
                options: Some(Options::FileOptions(fc::data_source::FileOptions {
                    file_format: Some(fc::FileFormat {
                        format: Some(fc::file_format::Format::ParquetFormat(Default::default())),
                    }),
                    uri: f.path.clone(),
                    ..Default::default()
                })),
                ..base(&f.name, &f.description, &f.tags, &f.owner)
            },
            DataSource::Push(p) => fc::DataSource {
                r#type: SourceType::PushSource as i32,
                data_source_class_type: "feast.data_source.PushSource".into(),
                batch_source: inline(&p.batch_source),
                options: Some(Options::PushOptions(fc::data_source::PushOptions {})),
                ..base(&p.name, &p.description, &p.tags, &p.owner)
            },
            DataSource::Request(r) => fc::DataSource {
                r#type: SourceType::RequestSource as i32,
                data_source_class_type: "feast.data_source.RequestSource".into(),
                options: Some(Options::RequestDataOptions(fc::data_source::RequestDataOptions {
                    schema: feature_specs(&r.schema),
                    ..Default::default()
                })),
                ..base(&r.name, &r.description, &r.tags, &r.owner)
            },
            DataSource::Kafka(k) => {
                let format = match k.message_format.as_str() {
                    "AvroFormat" => fc::stream_format::Format::AvroFormat(Default::default()),
                    "ProtoFormat" => fc::stream_format::Format::ProtoFormat(Default::default()),
                    _ => fc::stream_format::Format::JsonFormat(fc::stream_format::JsonFormat {
                        schema_json: k.schema_json.clone(),
                    }),
                };
                fc::DataSource {
                    r#type: SourceType::StreamKafka as i32,
                    timestamp_field: k.timestamp_field.clone(),
                    created_timestamp_column: k.created_timestamp_column.clone().unwrap_or_default(),
                    field_mapping: k.field_mapping.clone(),
                    data_source_class_type: "feast.data_source.KafkaSource".into(),
                    batch_source: inline(&k.batch_source),
                    options: Some(Options::KafkaOptions(fc::data_source::KafkaOptions {
                        kafka_bootstrap_servers: k.bootstrap_servers.clone(),
                        topic: k.topic.clone(),
                        message_format: Some(fc::StreamFormat { format: Some(format) }),
                        watermark_delay_threshold: k.watermark_delay_seconds.map(duration),
                    })),
                    ..base(&k.name, &k.description, &k.tags, &k.owner)
                }
            }
        }
    }

    /// A view's `(batch_source, stream_source)` as Feast holds them.
    fn view_sources(&self, v: &FeatureView) -> (Option<fc::DataSource>, Option<fc::DataSource>) {
        match self.doc.data_source(&v.source) {
            Some(DataSource::Push(p)) => (self.data_source_named(&p.batch_source), self.data_source_named(&p.name)),
            Some(DataSource::Kafka(k)) => (self.data_source_named(&k.batch_source), self.data_source_named(&k.name)),
            Some(other) => (Some(self.data_source(other)), None),
            None => (None, None),
        }
    }

    /// Whether Feast holds `v` as a stream feature view (aggregated, or fed by Kafka).
    pub fn is_stream_view(&self, v: &FeatureView) -> bool {
        v.is_aggregated() || matches!(self.doc.data_source(&v.source), Some(DataSource::Kafka(_)))
    }

    fn view_meta(&self, intervals: &[MaterializationInterval]) -> fc::FeatureViewMeta {
        let last = intervals.iter().map(|i| i.finished_at).max();
        fc::FeatureViewMeta {
            created_timestamp: Some(timestamp(self.applied_at)),
            last_updated_timestamp: Some(timestamp(last.map_or(self.applied_at, |l| l.max(self.applied_at)))),
            materialization_intervals: intervals
                .iter()
                .map(|i| fc::MaterializationInterval {
                    start_time: Some(timestamp(i.start)),
                    end_time: Some(timestamp(i.end)),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Feast's feature view (for a view that is not a stream view).
    pub fn feature_view(&self, v: &FeatureView, intervals: &[MaterializationInterval]) -> fc::FeatureView {
        let (batch_source, stream_source) = self.view_sources(v);
        fc::FeatureView {
            spec: Some(fc::FeatureViewSpec {
                name: v.name.clone(),
                project: self.project(),
                entities: v.entities.clone(),
                features: feature_specs(&v.features),
                entity_columns: feature_specs(&v.entity_columns),
                ttl: Some(duration(v.ttl_seconds.unwrap_or(0))),
                batch_source,
                stream_source,
                online: v.online,
                description: v.description.clone(),
                tags: v.tags.clone(),
                owner: v.owner.clone(),
                ..Default::default()
            }),
            meta: Some(self.view_meta(intervals)),
        }
    }

    /// Feast's stream feature view.
    pub fn stream_feature_view(&self, v: &FeatureView, intervals: &[MaterializationInterval]) -> fc::StreamFeatureView {
        let (batch_source, stream_source) = self.view_sources(v);
        let timestamp_field = match self.doc.data_source(&v.source) {
            Some(DataSource::Kafka(k)) => k.timestamp_field.clone(),
            _ => String::new(),
        };
        fc::StreamFeatureView {
            spec: Some(fc::StreamFeatureViewSpec {
                name: v.name.clone(),
                project: self.project(),
                entities: v.entities.clone(),
                features: feature_specs(&view_fields(v)),
                entity_columns: feature_specs(&v.entity_columns),
                ttl: Some(duration(v.ttl_seconds.unwrap_or(0))),
                batch_source,
                stream_source,
                online: v.online,
                mode: "spark".into(),
                timestamp_field,
                aggregations: v
                    .aggregations
                    .iter()
                    .map(|a| fc::Aggregation {
                        column: a.column.clone(),
                        function: a.function.as_str().to_string(),
                        time_window: Some(duration(a.time_window_seconds)),
                        slide_interval: a.slide_interval_seconds.map(duration),
                        name: a.name.clone().unwrap_or_default(),
                    })
                    .collect(),
                description: v.description.clone(),
                tags: v.tags.clone(),
                owner: v.owner.clone(),
                ..Default::default()
            }),
            meta: Some(self.view_meta(intervals)),
        }
    }

    /// The features a projection selects, typed from the view they come from (all of the
    /// view's features when the projection names none).
    fn projection(&self, p: &FeatureViewProjection) -> fc::FeatureViewProjection {
        let offered: Vec<Field> = if let Some(v) = self.doc.feature_view(&p.view) {
            view_fields(v)
        } else if let Some(o) = self.doc.on_demand_feature_view(&p.view) {
            o.features.clone()
        } else {
            Vec::new()
        };
        let columns: Vec<Field> = if p.features.is_empty() {
            offered
        } else {
            p.features
                .iter()
                .filter_map(|name| offered.iter().find(|f| &f.name == name).cloned())
                .collect()
        };
        fc::FeatureViewProjection {
            feature_view_name: p.view.clone(),
            feature_view_name_alias: p.alias.clone().unwrap_or_default(),
            feature_columns: feature_specs(&columns),
            ..Default::default()
        }
    }

    /// Feast's on-demand feature view (see [`has_feast_form`]).
    pub fn on_demand_feature_view(&self, v: &OnDemandFeatureView) -> fc::OnDemandFeatureView {
        use fc::on_demand_source::Source;
        let mut sources = BTreeMap::new();
        for p in &v.sources {
            let key = p.alias.clone().unwrap_or_else(|| p.view.clone());
            sources.insert(
                key,
                fc::OnDemandSource {
                    source: Some(Source::FeatureViewProjection(self.projection(p))),
                },
            );
        }
        for name in &v.request_sources {
            if let Some(s) = self.data_source_named(name) {
                sources.insert(
                    name.clone(),
                    fc::OnDemandSource {
                        source: Some(Source::RequestDataSource(s)),
                    },
                );
            }
        }
        let udf = fc::UserDefinedFunctionV2 {
            name: v.udf_name.clone(),
            body: Vec::new(),
            body_text: v.udf_body.clone(),
            mode: v.mode.clone(),
        };
        fc::OnDemandFeatureView {
            spec: Some(fc::OnDemandFeatureViewSpec {
                name: v.name.clone(),
                project: self.project(),
                features: feature_specs(&v.features),
                sources,
                feature_transformation: Some(fc::FeatureTransformationV2 {
                    transformation: Some(fc::feature_transformation_v2::Transformation::UserDefinedFunction(udf)),
                }),
                mode: v.mode.clone(),
                write_to_online_store: v.write_to_online_store,
                description: v.description.clone(),
                tags: v.tags.clone(),
                owner: v.owner.clone(),
                ..Default::default()
            }),
            meta: Some(fc::OnDemandFeatureViewMeta {
                created_timestamp: Some(timestamp(self.applied_at)),
                last_updated_timestamp: Some(timestamp(self.applied_at)),
                ..Default::default()
            }),
        }
    }

    /// Feast's feature service.
    pub fn feature_service(&self, s: &FeatureService) -> fc::FeatureService {
        fc::FeatureService {
            spec: Some(fc::FeatureServiceSpec {
                name: s.name.clone(),
                project: self.project(),
                features: s.features.iter().map(|p| self.projection(p)).collect(),
                description: s.description.clone(),
                tags: s.tags.clone(),
                owner: s.owner.clone(),
                logging_config: s.logging.as_ref().map(|l| fc::LoggingConfig {
                    sample_rate: l.sample_rate as f32,
                    destination: Some(fc::logging_config::Destination::FileDestination(
                        fc::logging_config::FileDestination {
                            path: l.path.clone(),
                            partition_by: l.partition_by.clone(),
                            ..Default::default()
                        },
                    )),
                }),
                ..Default::default()
            }),
            meta: Some(fc::FeatureServiceMeta {
                created_timestamp: Some(timestamp(self.applied_at)),
                last_updated_timestamp: Some(timestamp(self.applied_at)),
            }),
        }
    }

    /// Feast's project object.
    pub fn project_object(&self) -> fc::Project {
        fc::Project {
            spec: Some(fc::ProjectSpec {
                name: self.project(),
                ..Default::default()
            }),
            meta: Some(fc::ProjectMeta {
                created_timestamp: Some(timestamp(self.applied_at)),
                last_updated_timestamp: Some(timestamp(self.applied_at)),
            }),
        }
    }

    /// Feast's project metadata (its `project_uuid` is stable: [`project_uuid`]).
    pub fn project_metadata(&self) -> fc::ProjectMetadata {
        fc::ProjectMetadata {
            project: self.project(),
            project_uuid: project_uuid(&self.doc.project),
        }
    }

    /// The whole project as a Feast registry, with the materialized intervals per view.
    pub fn registry(&self, materializations: &BTreeMap<String, Vec<MaterializationInterval>>) -> fc::Registry {
        let intervals = |name: &str| materializations.get(name).map_or(&[][..], Vec::as_slice);
        let (stream, batch): (Vec<&FeatureView>, Vec<&FeatureView>) =
            self.doc.feature_views.iter().partition(|v| self.is_stream_view(v));
        let mut registry = fc::Registry {
            entities: self.doc.entities.iter().map(|e| self.entity(e)).collect(),
            data_sources: self.doc.data_sources.iter().map(|s| self.data_source(s)).collect(),
            feature_views: batch
                .into_iter()
                .map(|v| self.feature_view(v, intervals(&v.name)))
                .collect(),
            stream_feature_views: stream
                .into_iter()
                .map(|v| self.stream_feature_view(v, intervals(&v.name)))
                .collect(),
            on_demand_feature_views: self
                .doc
                .on_demand_feature_views
                .iter()
                .filter(|v| has_feast_form(v))
                .map(|v| self.on_demand_feature_view(v))
                .collect(),
            feature_services: self
                .doc
                .feature_services
                .iter()
                .map(|s| self.feature_service(s))
                .collect(),
            projects: vec![self.project_object()],
            registry_schema_version: "1".into(),
            last_updated: Some(timestamp(self.applied_at)),
            ..Default::default()
        };
        crate::kept::put_kept(&self.doc.feast_objects, &mut registry);
        registry
    }
}

/// A stable UUID-shaped identifier of a project (Feast's `project_uuid`), derived from its
/// name so that every server and restart gives the same one.
pub fn project_uuid(project: &str) -> String {
    // FNV-1a, 128 bits: stable across builds and platforms (std's hasher is not).
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in project.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{materializations, registry_doc};
    use larder_registry::{
        Aggregation, AggregationFunction, FileSource, KafkaSource, PushSource, RequestSource, ValueType,
    };
    use prost::Message;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    fn file(name: &str) -> DataSource {
        DataSource::File(FileSource {
            name: name.into(),
            path: format!("data/{name}.parquet"),
            timestamp_field: "ts".into(),
            created_timestamp_column: Some("created".into()),
            field_mapping: BTreeMap::from([("a".into(), "b".into())]),
            description: "d".into(),
            tags: BTreeMap::from([("t".into(), "1".into())]),
            owner: "o".into(),
            postgres: None,
        })
    }

    /// A document with every kind of object Larder and Feast share.
    fn doc() -> RegistryDoc {
        let mut vector = Field::new("embedding", ValueType::FloatList);
        vector.vector_index = true;
        vector.vector_length = Some(3);
        vector.vector_search_metric = Some("COSINE".into());
        let key = Field::new("driver_id", ValueType::Int64);
        let view = |name: &str, source: &str| FeatureView {
            name: name.into(),
            entities: vec!["driver".into()],
            features: vec![Field::new("rate", ValueType::Float), Field::new("m", ValueType::Map)],
            entity_columns: vec![key.clone()],
            source: source.into(),
            ttl_seconds: Some(3600),
            aggregations: Vec::new(),
            online: true,
            description: "v".into(),
            tags: BTreeMap::new(),
            owner: String::new(),
        };
        let mut windows = view("windows", "events");
        windows.features = Vec::new();
        windows.aggregations = vec![Aggregation {
            column: "amount".into(),
            function: AggregationFunction::Sum,
            time_window_seconds: 3600,
            slide_interval_seconds: Some(300),
            name: None,
        }];
        let mut vectors = view("docs", "batch");
        vectors.features = vec![vector];
        let mut doc = RegistryDoc {
            project: "p".into(),
            entities: vec![Entity {
                name: "driver".into(),
                join_keys: vec!["driver_id".into()],
                value_type: Some(ValueType::Int64),
                description: "e".into(),
                tags: BTreeMap::from([("x".into(), "y".into())]),
                owner: "me".into(),
            }],
            data_sources: vec![
                file("batch"),
                DataSource::Push(PushSource {
                    name: "push".into(),
                    batch_source: "batch".into(),
                    description: String::new(),
                    tags: BTreeMap::new(),
                    owner: String::new(),
                }),
                DataSource::Request(RequestSource {
                    name: "req".into(),
                    schema: vec![Field::new("val", ValueType::Int64)],
                    description: String::new(),
                    tags: BTreeMap::new(),
                    owner: String::new(),
                }),
                DataSource::Kafka(KafkaSource {
                    name: "events".into(),
                    bootstrap_servers: "127.0.0.1:9092".into(),
                    topic: "t".into(),
                    timestamp_field: "ts".into(),
                    created_timestamp_column: None,
                    field_mapping: BTreeMap::new(),
                    batch_source: "batch".into(),
                    message_format: "json".into(),
                    schema_json: "amount double".into(),
                    watermark_delay_seconds: Some(60),
                    description: String::new(),
                    tags: BTreeMap::new(),
                    owner: String::new(),
                }),
            ],
            feature_views: vec![view("stats", "push"), view("plain", "batch"), windows, vectors],
            on_demand_feature_views: vec![OnDemandFeatureView {
                name: "plus".into(),
                sources: vec![FeatureViewProjection {
                    view: "stats".into(),
                    features: vec!["rate".into()],
                    alias: None,
                }],
                request_sources: vec!["req".into()],
                features: vec![Field::new("rate_plus", ValueType::Double)],
                mode: "pandas".into(),
                udf_name: "plus".into(),
                udf_body: "def plus(df):\n    return df\n".into(),
                write_to_online_store: false,
                description: String::new(),
                tags: BTreeMap::new(),
                owner: String::new(),
            }],
            feature_services: vec![FeatureService {
                name: "svc".into(),
                features: vec![
                    FeatureViewProjection {
                        view: "stats".into(),
                        features: vec!["rate".into()],
                        alias: Some("s".into()),
                    },
                    FeatureViewProjection {
                        view: "windows".into(),
                        features: vec!["sum_amount_1h".into()],
                        alias: None,
                    },
                ],
                description: "fs".into(),
                tags: BTreeMap::new(),
                owner: String::new(),
                logging: Some(larder_registry::FeatureLogging {
                    sample_rate: 0.5,
                    path: "logs".into(),
                    partition_by: vec!["__log_date".into()],
                }),
            }],
            feast_objects: {
                use crate::kept::Kept;
                vec![
                    fc::SavedDataset {
                        spec: Some(fc::SavedDatasetSpec {
                            name: "ds".into(),
                            project: "p".into(),
                            features: vec!["stats:rate".into()],
                            join_keys: vec!["driver_id".into()],
                            ..Default::default()
                        }),
                        meta: None,
                    }
                    .kept(),
                    fc::Permission {
                        spec: Some(fc::PermissionSpec {
                            name: "readers".into(),
                            project: "p".into(),
                            name_patterns: vec![".*".into()],
                            ..Default::default()
                        }),
                        meta: None,
                    }
                    .kept(),
                ]
            },
        };
        doc.normalize();
        doc
    }

    #[test]
    fn larder_definitions_survive_the_round_trip_through_feast() {
        let doc = doc();
        let intervals = BTreeMap::from([(
            "stats".to_string(),
            vec![MaterializationInterval {
                start: at(100),
                end: at(200),
                finished_at: at(300),
            }],
        )]);
        let registry = ToFeast::new(&doc, at(50)).registry(&intervals);
        // Through the wire format, as a client would send it back.
        let registry = fc::Registry::decode(registry.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            registry.stream_feature_views.len(),
            1,
            "the aggregated view is a stream view"
        );
        assert_eq!(registry_doc(&registry, "p").unwrap(), doc);
        let m = materializations(&registry, "p");
        assert_eq!((m["stats"][0].start, m["stats"][0].end), (at(100), at(200)));
    }

    #[test]
    fn a_registry_feast_wrote_survives_the_round_trip() {
        let bytes = include_bytes!("../../fuzz/seeds/feast_registry/template_registry.db");
        let feast = fc::Registry::decode(bytes.as_slice()).unwrap();
        let project = feast.projects[0].spec.as_ref().unwrap().name.clone();
        let doc = registry_doc(&feast, &project).unwrap();
        assert!(!doc.on_demand_feature_views.is_empty() && !doc.feature_services.is_empty());
        let back = ToFeast::new(&doc, at(0)).registry(&BTreeMap::new());
        assert_eq!(registry_doc(&back, &project).unwrap(), doc);
        // Every projection keeps Feast's typed columns.
        let svc = &back.feature_services[0].spec.as_ref().unwrap().features[0];
        assert!(!svc.feature_columns.is_empty() && svc.feature_columns.iter().all(|c| c.value_type != 0));
    }

    #[test]
    fn sql_views_have_no_feast_form_and_uuids_are_stable() {
        let mut doc = doc();
        doc.on_demand_feature_views[0].mode = "sql".into();
        let r = ToFeast::new(&doc, at(0)).registry(&BTreeMap::new());
        assert!(r.on_demand_feature_views.is_empty());
        assert_eq!(project_uuid("p"), project_uuid("p"));
        assert_ne!(project_uuid("p"), project_uuid("q"));
        assert_eq!(project_uuid("p").len(), 36);
    }
}
