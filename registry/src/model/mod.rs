//! The definitions model: what a feature repo declares, as the Python exporter emits it.
//!
//! Field names follow Feast's Python API (`join_keys`, `timestamp_field`,
//! `created_timestamp_column`, `ttl`...). Every object carries `name`, `description`, `tags` and
//! `owner` like Feast's. The document is plain JSON so that other tools can produce it.

mod entity;
mod feast_object;
mod feature_service;
mod feature_view;
mod source;
mod value_type;

pub use entity::Entity;
pub use feast_object::{FeastObject, FeastObjectKind};
pub use feature_service::{FeatureLogging, FeatureService, FeatureViewProjection};
pub use feature_view::{Aggregation, AggregationFunction, FeatureView, Field, OnDemandFeatureView};
pub use source::{DataSource, FileSource, KafkaSource, PostgresRelation, PushSource, RequestSource};
pub use value_type::ValueType;

use serde::{Deserialize, Serialize};

/// A whole project's definitions: what `larder apply` registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryDoc {
    /// Project name (from `feature_store.yaml`).
    pub project: String,
    /// Entities.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Data sources (file, push and request sources).
    #[serde(default)]
    pub data_sources: Vec<DataSource>,
    /// Batch feature views.
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    /// On-demand feature views.
    #[serde(default)]
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    /// Feature services.
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
    /// Feast objects kept as Feast wrote them (saved datasets, validation references,
    /// permissions), by kind and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feast_objects: Vec<FeastObject>,
}

impl RegistryDoc {
    /// Sorts every list by name so that two documents compare and print stably.
    pub fn normalize(&mut self) {
        self.entities.sort_by(|a, b| a.name.cmp(&b.name));
        self.data_sources.sort_by(|a, b| a.name().cmp(b.name()));
        self.feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.on_demand_feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_services.sort_by(|a, b| a.name.cmp(&b.name));
        self.feast_objects
            .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    }

    /// The kept Feast object of `kind` called `name`.
    pub fn feast_object(&self, kind: FeastObjectKind, name: &str) -> Option<&FeastObject> {
        self.feast_objects.iter().find(|o| o.kind == kind && o.name == name)
    }

    /// Adds or replaces a kept Feast object.
    pub fn put_feast_object(&mut self, object: FeastObject) {
        self.feast_objects
            .retain(|o| !(o.kind == object.kind && o.name == object.name));
        self.feast_objects.push(object);
    }

    /// Removes a kept Feast object; whether there was one.
    pub fn remove_feast_object(&mut self, kind: FeastObjectKind, name: &str) -> bool {
        let before = self.feast_objects.len();
        self.feast_objects.retain(|o| !(o.kind == kind && o.name == name));
        before != self.feast_objects.len()
    }

    /// Keeps the client-made Feast objects of `old` (saved datasets, validation references)
    /// that this document, built from a repo's definitions, does not hold.
    pub fn keep_client_objects(&mut self, old: &RegistryDoc) {
        for o in old.feast_objects.iter().filter(|o| o.kind.made_by_clients()) {
            if self.feast_object(o.kind, &o.name).is_none() {
                self.feast_objects.push(o.clone());
            }
        }
    }

    /// The entity called `name`.
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    /// The data source called `name`.
    pub fn data_source(&self, name: &str) -> Option<&DataSource> {
        self.data_sources.iter().find(|s| s.name() == name)
    }

    /// The feature view called `name`.
    pub fn feature_view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    /// The on-demand feature view called `name`.
    pub fn on_demand_feature_view(&self, name: &str) -> Option<&OnDemandFeatureView> {
        self.on_demand_feature_views.iter().find(|v| v.name == name)
    }

    /// The feature service called `name`.
    pub fn feature_service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// The file source a feature view reads in batch: its own source, or the batch source of
    /// its push or Kafka source.
    pub fn batch_source(&self, view: &FeatureView) -> Option<&FileSource> {
        let batch = match self.data_source(&view.source)? {
            DataSource::File(f) => return Some(f),
            DataSource::Push(p) => &p.batch_source,
            DataSource::Kafka(k) => &k.batch_source,
            DataSource::Request(_) => return None,
        };
        match self.data_source(batch)? {
            DataSource::File(f) => Some(f),
            _ => None,
        }
    }

    /// The Kafka source of a stream feature view, if its source is one.
    pub fn kafka_source(&self, view: &FeatureView) -> Option<&KafkaSource> {
        match self.data_source(&view.source)? {
            DataSource::Kafka(k) => Some(k),
            _ => None,
        }
    }

    /// Feast's partial `apply(objects)`: every object of `other` replaces the one of the same
    /// kind and name here, or is added; everything else is kept.
    pub fn upsert(&mut self, other: RegistryDoc) {
        fn merge<T>(into: &mut Vec<T>, from: Vec<T>, name: impl Fn(&T) -> &str) {
            for item in from {
                match into.iter().position(|x| name(x) == name(&item)) {
                    Some(i) => into[i] = item,
                    None => into.push(item),
                }
            }
        }
        merge(&mut self.entities, other.entities, |e| &e.name);
        merge(&mut self.data_sources, other.data_sources, |s| s.name());
        merge(&mut self.feature_views, other.feature_views, |v| &v.name);
        merge(&mut self.on_demand_feature_views, other.on_demand_feature_views, |v| {
            &v.name
        });
        merge(&mut self.feature_services, other.feature_services, |s| &s.name);
    }

    /// Removes the object of `kind` (`entities`, `data_sources`, `feature_views`,
    /// `on_demand_feature_views`, `feature_services`) called `name`; false when there is none.
    pub fn remove(&mut self, kind: &str, name: &str) -> bool {
        fn drop<T>(list: &mut Vec<T>, name: &str, key: impl Fn(&T) -> &str) -> bool {
            let before = list.len();
            list.retain(|x| key(x) != name);
            list.len() != before
        }
        match kind {
            "entities" => drop(&mut self.entities, name, |e| &e.name),
            "data_sources" => drop(&mut self.data_sources, name, |s| s.name()),
            "feature_views" => drop(&mut self.feature_views, name, |v| &v.name),
            "on_demand_feature_views" => drop(&mut self.on_demand_feature_views, name, |v| &v.name),
            "feature_services" => drop(&mut self.feature_services, name, |s| &s.name),
            _ => false,
        }
    }

    /// The join keys of a feature view, in the order of its entities.
    pub fn join_keys(&self, view: &FeatureView) -> Vec<String> {
        view.entities
            .iter()
            .filter_map(|e| self.entity(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }
}
