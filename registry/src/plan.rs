//! The plan: what `apply` would create, update and delete, object by object.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::RegistryDoc;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New object.
    Create,
    /// Existing object with a different definition.
    Update,
    /// Object that is no longer defined.
    Delete,
}

/// One change of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Create, update or delete.
    pub kind: ChangeKind,
    /// `entity`, `data source`, `feature view`, `on-demand feature view` or `feature service`.
    pub object_type: &'static str,
    /// Object name.
    pub name: String,
    /// For updates: one line per changed attribute, `attr: old -> new`.
    pub details: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.kind {
            ChangeKind::Create => "Created",
            ChangeKind::Update => "Updated",
            ChangeKind::Delete => "Deleted",
        };
        write!(f, "{verb} {} {}", self.object_type, self.name)?;
        for d in &self.details {
            write!(f, "\n    {d}")?;
        }
        Ok(())
    }
}

/// The differences between the registered definitions and new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Changes, grouped by object type, sorted by name.
    pub changes: Vec<Change>,
    /// The version the plan was made against (`None` before the first apply); set by the
    /// stores under their lock, so a precondition can check that nothing was applied since the
    /// caller read its base.
    #[serde(skip)]
    pub base_version: Option<u64>,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// One line per change (details indented), as printed by `larder plan`.
    pub fn lines(&self) -> Vec<String> {
        self.changes.iter().map(|c| c.to_string()).collect()
    }

    /// Names of the feature views this plan deletes.
    pub fn deleted_views(&self) -> Vec<String> {
        self.changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Delete && c.object_type == "feature view")
            .map(|c| c.name.clone())
            .collect()
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changes.is_empty() {
            return write!(f, "No changes to the registry.");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

fn by_name<T: Serialize>(items: &[T], name: impl Fn(&T) -> &str) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|i| (name(i).to_string(), serde_json::to_value(i).unwrap_or(Value::Null)))
        .collect()
}

fn short(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 120 {
                format!(
                    "{}...",
                    &s[..s.char_indices().nth(117).map(|(i, _)| i).unwrap_or(s.len())]
                )
            } else {
                s
            }
        }
    }
}

fn compare(
    object_type: &'static str,
    old: BTreeMap<String, Value>,
    new: BTreeMap<String, Value>,
    out: &mut Vec<Change>,
) {
    for (name, n) in &new {
        match old.get(name) {
            None => out.push(Change {
                kind: ChangeKind::Create,
                object_type,
                name: name.clone(),
                details: vec![],
            }),
            Some(o) if o != n => {
                let (Value::Object(om), Value::Object(nm)) = (o, n) else {
                    continue;
                };
                let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
                keys.sort();
                keys.dedup();
                let details = keys
                    .into_iter()
                    .filter(|k| om.get(*k) != nm.get(*k))
                    .map(|k| format!("{k}: {} -> {}", short(om.get(k)), short(nm.get(k))))
                    .collect();
                out.push(Change {
                    kind: ChangeKind::Update,
                    object_type,
                    name: name.clone(),
                    details,
                });
            }
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(Change {
            kind: ChangeKind::Delete,
            object_type,
            name: name.clone(),
            details: vec![],
        });
    }
}

/// The plan that turns `old` (the registered definitions, if any) into `new`.
pub fn diff(old: Option<&RegistryDoc>, new: &RegistryDoc) -> Plan {
    let empty = RegistryDoc::default();
    let old = old.unwrap_or(&empty);
    let mut changes = Vec::new();
    compare(
        "entity",
        by_name(&old.entities, |e| &e.name),
        by_name(&new.entities, |e| &e.name),
        &mut changes,
    );
    compare(
        "data source",
        by_name(&old.data_sources, |s| s.name()),
        by_name(&new.data_sources, |s| s.name()),
        &mut changes,
    );
    compare(
        "feature view",
        by_name(&old.feature_views, |v| &v.name),
        by_name(&new.feature_views, |v| &v.name),
        &mut changes,
    );
    compare(
        "on-demand feature view",
        by_name(&old.on_demand_feature_views, |v| &v.name),
        by_name(&new.on_demand_feature_views, |v| &v.name),
        &mut changes,
    );
    compare(
        "feature service",
        by_name(&old.feature_services, |s| &s.name),
        by_name(&new.feature_services, |s| &s.name),
        &mut changes,
    );
    for kind in [
        crate::model::FeastObjectKind::Permission,
        crate::model::FeastObjectKind::SavedDataset,
        crate::model::FeastObjectKind::ValidationReference,
    ] {
        let of = |doc: &RegistryDoc| {
            let objects: Vec<&crate::model::FeastObject> =
                doc.feast_objects.iter().filter(|o| o.kind == kind).collect();
            by_name(&objects, |o| &o.name)
        };
        compare(kind.label(), of(old), of(new), &mut changes);
    }
    Plan {
        changes,
        base_version: None,
    }
}
