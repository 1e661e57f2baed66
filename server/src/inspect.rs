//! The registry's objects as Feast's CLI shows them (`feast entities list`, `feast feature-views
//! describe NAME`, ...): a table of names with a summary column per kind, or one object in full
//! as YAML (Larder's definition model, the shape `larder registry dump` prints as JSON).

use larder_registry::{DataSource, RegistryDoc};

use crate::error::{Error, Result};

/// A kind of registry object, as the CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Entities.
    Entities,
    /// Feature views (batch and stream).
    FeatureViews,
    /// On-demand feature views.
    OnDemandFeatureViews,
    /// Feature services.
    FeatureServices,
    /// Data sources.
    DataSources,
}

impl ObjectKind {
    /// Feast's name of one object of the kind, for messages.
    fn singular(self) -> &'static str {
        match self {
            ObjectKind::Entities => "Entity",
            ObjectKind::FeatureViews => "Feature view",
            ObjectKind::OnDemandFeatureViews => "On demand feature view",
            ObjectKind::FeatureServices => "Feature service",
            ObjectKind::DataSources => "Data source",
        }
    }
}

/// A table: column headers and rows, one per object, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// One row per object.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table as text, columns padded to their widest cell (as Feast's `tabulate` prints it).
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}", w = *w))
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(self.headers.clone())];
        out.extend(self.rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
        out.join("\n")
    }
}

fn source_class(s: &DataSource) -> &'static str {
    match s {
        DataSource::File(_) => "FileSource",
        DataSource::Push(_) => "PushSource",
        DataSource::Request(_) => "RequestSource",
        DataSource::Kafka(_) => "KafkaSource",
    }
}

/// The objects of a kind, as a table.
pub fn list(doc: &RegistryDoc, kind: ObjectKind) -> Table {
    let (headers, mut rows): (Vec<&'static str>, Vec<Vec<String>>) = match kind {
        ObjectKind::Entities => (
            vec!["NAME", "DESCRIPTION", "TYPE"],
            doc.entities
                .iter()
                .map(|e| {
                    vec![
                        e.name.clone(),
                        e.description.clone(),
                        e.value_type.map(|t| t.to_string()).unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        ObjectKind::FeatureViews => (
            vec!["NAME", "ENTITIES", "TYPE"],
            doc.feature_views
                .iter()
                .map(|v| {
                    let stream = v.is_aggregated() || matches!(doc.data_source(&v.source), Some(DataSource::Kafka(_)));
                    vec![
                        v.name.clone(),
                        v.entities.join(", "),
                        if stream { "StreamFeatureView" } else { "FeatureView" }.to_string(),
                    ]
                })
                .collect(),
        ),
        ObjectKind::OnDemandFeatureViews => (
            vec!["NAME", "MODE"],
            doc.on_demand_feature_views
                .iter()
                .map(|o| vec![o.name.clone(), o.mode.clone()])
                .collect(),
        ),
        ObjectKind::FeatureServices => (
            vec!["NAME", "FEATURES"],
            doc.feature_services
                .iter()
                .map(|s| {
                    let features: Vec<String> = s
                        .features
                        .iter()
                        .map(|p| {
                            let view = p.alias.as_deref().unwrap_or(&p.view);
                            if p.features.is_empty() {
                                format!("{view}:*")
                            } else {
                                p.features
                                    .iter()
                                    .map(|f| format!("{view}:{f}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        })
                        .collect();
                    vec![s.name.clone(), features.join(", ")]
                })
                .collect(),
        ),
        ObjectKind::DataSources => (
            vec!["NAME", "CLASS"],
            doc.data_sources
                .iter()
                .map(|s| vec![s.name().to_string(), source_class(s).to_string()])
                .collect(),
        ),
    };
    rows.sort();
    Table { headers, rows }
}

/// One object in full, as YAML; a 404 naming it when the registry has no such object.
pub fn describe(doc: &RegistryDoc, kind: ObjectKind, name: &str) -> Result<String> {
    let yaml = |v: std::result::Result<String, serde_yaml_ng::Error>| v.map_err(|e| Error::Internal(e.to_string()));
    let found = match kind {
        ObjectKind::Entities => doc.entity(name).map(|x| yaml(serde_yaml_ng::to_string(x))),
        ObjectKind::FeatureViews => doc.feature_view(name).map(|x| yaml(serde_yaml_ng::to_string(x))),
        ObjectKind::OnDemandFeatureViews => doc
            .on_demand_feature_view(name)
            .map(|x| yaml(serde_yaml_ng::to_string(x))),
        ObjectKind::FeatureServices => doc.feature_service(name).map(|x| yaml(serde_yaml_ng::to_string(x))),
        ObjectKind::DataSources => doc.data_source(name).map(|x| yaml(serde_yaml_ng::to_string(x))),
    };
    found.unwrap_or_else(|| {
        Err(Error::NotFound {
            class: "FeastObjectNotFoundException",
            message: format!("{} {name} does not exist in project {}", kind.singular(), doc.project),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> RegistryDoc {
        serde_json::from_str(include_str!("../tests/fixtures/driver_demo_registry.json")).unwrap()
    }

    #[test]
    fn lists_name_every_object_of_a_kind() {
        let d = doc();
        let views = list(&d, ObjectKind::FeatureViews);
        assert_eq!(views.headers, ["NAME", "ENTITIES", "TYPE"]);
        let names: Vec<&str> = views.rows.iter().map(|r| r[0].as_str()).collect();
        let mut expected: Vec<&str> = d.feature_views.iter().map(|v| v.name.as_str()).collect();
        expected.sort();
        assert_eq!(names, expected);
        let text = views.render();
        assert!(text.lines().next().unwrap().starts_with("NAME"), "{text}");
        let row = text.lines().find(|l| l.starts_with("driver_hourly_stats ")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["driver_hourly_stats", "driver", "FeatureView"]
        );
        let sources = list(&d, ObjectKind::DataSources);
        assert!(sources
            .rows
            .contains(&vec!["driver_stats_push".to_string(), "PushSource".to_string()]));
        let services = list(&d, ObjectKind::FeatureServices);
        assert!(
            services.rows[0][1].contains("driver_hourly_stats:*"),
            "{:?}",
            services.rows
        );
    }

    #[test]
    fn describe_prints_the_object_or_names_what_is_missing() {
        let d = doc();
        let text = describe(&d, ObjectKind::FeatureViews, "driver_hourly_stats").unwrap();
        let back: larder_registry::FeatureView = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(&back, d.feature_view("driver_hourly_stats").unwrap());
        let err = describe(&d, ObjectKind::Entities, "nobody").unwrap_err();
        assert_eq!(err.status(), 404);
        assert!(err.to_string().contains("Entity nobody does not exist"), "{err}");
    }
}
