//! Validation and inference errors, each naming the object and the problem.

use std::collections::BTreeMap;

use larder_registry::*;

struct Columns(Vec<SourceColumn>);

impl SchemaLookup for Columns {
    fn columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>, String> {
        if source.path == "missing.parquet" {
            return Err("No such file or directory".into());
        }
        Ok(self.0.clone())
    }
}

fn col(name: &str, t: ValueType) -> SourceColumn {
    SourceColumn {
        name: name.into(),
        value_type: Some(t),
        is_timestamp: false,
    }
}

fn ts(name: &str) -> SourceColumn {
    SourceColumn {
        name: name.into(),
        value_type: Some(ValueType::UnixTimestamp),
        is_timestamp: true,
    }
}

fn lookup() -> Columns {
    Columns(vec![
        col("driver_id", ValueType::Int64),
        ts("event_timestamp"),
        ts("created"),
        col("conv_rate", ValueType::Float),
        col("name", ValueType::String),
    ])
}

fn base() -> RegistryDoc {
    RegistryDoc {
        project: "p".into(),
        entities: vec![Entity {
            name: "driver".into(),
            join_keys: vec!["driver_id".into()],
            value_type: None,
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
        }],
        data_sources: vec![DataSource::File(FileSource {
            name: "src".into(),
            path: "d.parquet".into(),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_column: Some("created".into()),
            field_mapping: BTreeMap::new(),
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
            postgres: None,
        })],
        feature_views: vec![FeatureView {
            aggregations: vec![],
            name: "stats".into(),
            entities: vec!["driver".into()],
            features: vec![Field::new("conv_rate", ValueType::Float)],
            entity_columns: vec![],
            source: "src".into(),
            ttl_seconds: Some(3600),
            online: true,
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
        }],
        on_demand_feature_views: vec![],
        feature_services: vec![FeatureService {
            name: "svc".into(),
            features: vec![FeatureViewProjection {
                view: "stats".into(),
                features: vec!["conv_rate".into()],
                alias: None,
            }],
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
            logging: None,
        }],
        feast_objects: Vec::new(),
    }
}

fn errors(doc: &RegistryDoc) -> Vec<String> {
    match resolve(doc, &lookup()) {
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
        Ok(r) => validate(&r, &lookup()).iter().map(|e| e.to_string()).collect(),
    }
}

fn assert_one(doc: &RegistryDoc, needle: &str) {
    let e = errors(doc);
    assert!(
        e.iter().any(|m| m.contains(needle)),
        "expected an error containing {needle:?}, got {e:?}"
    );
}

#[test]
fn a_valid_doc_passes_and_infers_the_entity_type() {
    let doc = base();
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
    let r = resolve(&doc, &lookup()).unwrap();
    assert_eq!(r.entities[0].value_type, Some(ValueType::Int64));
    assert_eq!(
        r.feature_views[0].entity_columns,
        vec![Field::new("driver_id", ValueType::Int64)]
    );
}

#[test]
fn features_are_inferred_from_the_source_when_not_declared() {
    let mut doc = base();
    doc.feature_views[0].features.clear();
    let r = resolve(&doc, &lookup()).unwrap();
    let names: Vec<&str> = r.feature_views[0].features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["conv_rate", "name"]);
}

#[test]
fn unknown_entity_is_named() {
    let mut doc = base();
    doc.feature_views[0].entities.push("rider".into());
    assert_one(&doc, "feature view stats: entity `rider` does not exist");
}

#[test]
fn field_type_the_source_does_not_have() {
    let mut doc = base();
    doc.feature_views[0].features[0].dtype = ValueType::String;
    assert_one(
        &doc,
        "feature `conv_rate` is declared STRING but the source column is FLOAT",
    );
}

#[test]
fn feature_missing_from_the_source() {
    let mut doc = base();
    doc.feature_views[0]
        .features
        .push(Field::new("acc_rate", ValueType::Float));
    assert_one(&doc, "feature `acc_rate` is not a column of source src");
}

#[test]
fn join_key_missing_from_the_source() {
    let mut doc = base();
    doc.entities[0].join_keys = vec!["rider_id".into()];
    doc.entities[0].value_type = Some(ValueType::Int64);
    assert_one(&doc, "join key `rider_id` is not a column of source src");
}

#[test]
fn duplicate_names() {
    let mut doc = base();
    doc.feature_views.push(doc.feature_views[0].clone());
    assert_one(&doc, "feature view stats: the name `stats` is defined more than once");
    let mut doc = base();
    doc.entities.push(doc.entities[0].clone());
    assert_one(&doc, "entity driver: the name `driver` is defined more than once");
}

#[test]
fn unknown_source_and_request_source_as_view_source() {
    let mut doc = base();
    doc.feature_views[0].source = "nope".into();
    assert_one(&doc, "source `nope` does not exist");
    let mut doc = base();
    doc.data_sources.push(DataSource::Request(RequestSource {
        name: "req".into(),
        schema: vec![Field::new("x", ValueType::Int64)],
        description: String::new(),
        tags: BTreeMap::new(),
        owner: String::new(),
    }));
    doc.feature_views[0].source = "req".into();
    assert_one(&doc, "is a request source");
}

#[test]
fn timestamp_columns_are_checked() {
    let mut doc = base();
    if let DataSource::File(f) = &mut doc.data_sources[0] {
        f.timestamp_field = "ts".into();
        f.created_timestamp_column = Some("conv_rate".into());
    }
    assert_one(&doc, "timestamp_field `ts` is not a column");
    assert_one(&doc, "created_timestamp_column `conv_rate` is not a timestamp column");
}

#[test]
fn unreadable_source_is_reported() {
    let mut doc = base();
    if let DataSource::File(f) = &mut doc.data_sources[0] {
        f.path = "missing.parquet".into();
    }
    assert_one(&doc, "cannot read missing.parquet");
}

#[test]
fn entity_type_cannot_be_inferred_without_a_source() {
    let mut doc = base();
    doc.feature_views.clear();
    doc.feature_services.clear();
    assert_one(&doc, "value_type is not given and cannot be inferred");
}

#[test]
fn declared_entity_type_must_match_the_schema() {
    let mut doc = base();
    doc.entities[0].value_type = Some(ValueType::String);
    doc.feature_views[0].entity_columns = vec![Field::new("driver_id", ValueType::Int64)];
    assert_one(
        &doc,
        "field `driver_id` is declared INT64 but its entity's value_type is STRING",
    );
}

#[test]
fn feature_service_references_are_checked() {
    let mut doc = base();
    doc.feature_services[0].features.push(FeatureViewProjection {
        view: "gone".into(),
        features: vec![],
        alias: None,
    });
    doc.feature_services[0].features[0].features.push("nope".into());
    assert_one(&doc, "feature service svc: feature view `gone` does not exist");
    assert_one(&doc, "feature service svc: feature `nope` is not in view stats");
}

#[test]
fn bad_project_name_and_negative_ttl() {
    let mut doc = base();
    doc.project = "my-project".into();
    doc.feature_views[0].ttl_seconds = Some(-1);
    assert_one(&doc, "project my-project");
    assert_one(&doc, "ttl may not be negative");
}

#[test]
fn plan_lists_creates_updates_and_deletes() {
    let old = base();
    let mut new = base();
    new.feature_views[0].ttl_seconds = Some(7200);
    new.feature_services.clear();
    new.entities.push(Entity {
        name: "rider".into(),
        ..old.entities[0].clone()
    });
    let plan = diff(Some(&old), &new);
    let lines = plan.lines();
    assert!(lines.contains(&"Created entity rider".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"Updated feature view stats\n    ttl_seconds: 3600 -> 7200".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"Deleted feature service svc".to_string()), "{lines:?}");
    assert!(diff(Some(&old), &old).is_empty());
}

#[test]
fn unusable_names_are_refused_for_every_object_kind() {
    let long = "v".repeat(10_000);
    for bad in ["", "a:b", "a\0b", "a@v2", "9lives", "has space", long.as_str()] {
        let mut doc = base();
        doc.feature_views[0].name = bad.into();
        doc.feature_services[0].features[0].view = bad.into();
        let e = errors(&doc);
        assert!(
            e.iter().any(|m| m.starts_with("feature view ") && m.contains("name")),
            "{bad:?}: {e:?}"
        );

        let mut doc = base();
        doc.entities[0].name = bad.into();
        doc.feature_views[0].entities = vec![bad.into()];
        assert!(errors(&doc).iter().any(|m| m.starts_with("entity ")), "{bad:?}");

        let mut doc = base();
        doc.feature_services[0].name = bad.into();
        assert!(
            errors(&doc).iter().any(|m| m.starts_with("feature service ")),
            "{bad:?}"
        );
    }
    let mut doc = base();
    doc.feature_views[0].name = "driver-stats.v1_x".into();
    doc.feature_services[0].features[0].view = "driver-stats.v1_x".into();
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

#[test]
fn unusable_field_names_are_refused() {
    for bad in ["", "conv:rate", "conv\nrate"] {
        let mut doc = base();
        doc.feature_views[0].features[0].name = bad.into();
        assert!(
            errors(&doc).iter().any(|m| m.starts_with("feature view stats")),
            "{bad:?}: {:?}",
            errors(&doc)
        );
    }
    assert!(larder_registry::validate::check_field_name("7d_avg").is_ok());
}

#[test]
fn the_timestamp_field_is_inferred_from_the_one_timestamp_column() {
    let mut doc = base();
    if let DataSource::File(f) = &mut doc.data_sources[0] {
        f.timestamp_field = String::new();
        f.created_timestamp_column = None;
    }
    let one = Columns(vec![
        col("driver_id", ValueType::Int64),
        ts("event_timestamp"),
        col("conv_rate", ValueType::Float),
    ]);
    let r = resolve(&doc, &one).unwrap();
    match &r.data_sources[0] {
        DataSource::File(f) => assert_eq!(f.timestamp_field, "event_timestamp"),
        other => panic!("{other:?}"),
    }
    // Two timestamp columns (Feast counts the created one too): the user must name it.
    assert_one(&doc, "timestamp_field is not given and cannot be inferred");
}

#[test]
fn a_logging_config_needs_a_rate_between_0_and_1_and_a_path() {
    let mut doc = base();
    doc.feature_services[0].logging = Some(larder_registry::FeatureLogging {
        sample_rate: 1.5,
        path: "logs".into(),
        partition_by: vec![],
    });
    assert_one(&doc, "feature service svc: logging_config.sample_rate is 1.5");
    doc.feature_services[0].logging = Some(larder_registry::FeatureLogging {
        sample_rate: 0.5,
        path: " ".into(),
        partition_by: vec![],
    });
    assert_one(&doc, "feature service svc: logging_config: the destination has no path");
    if let Some(l) = doc.feature_services[0].logging.as_mut() {
        l.path = "logs".into();
    }
    assert!(errors(&doc).is_empty());
}
