//! `larder import-feast`: a Feast registry file's definitions and materialization record copied
//! into the repo's own Larder registry, as one validated apply (a new version with its plan),
//! so a team that ran Feast moves over without re-applying by hand, and
//! `materialize-incremental` continues where Feast's last run ended.

use std::path::Path;

use larder_feast_model::{convert, FeastFileRegistry};
use larder_registry::RegistryStore;

use crate::error::{Error, Result};
use crate::store::ApplyOutcome;
use crate::FeatureStore;

impl FeatureStore {
    /// Imports the project's objects from the Feast registry file `feast_registry`.
    pub async fn import_feast(&self, feast_registry: &Path) -> Result<ApplyOutcome> {
        let same_file = std::fs::canonicalize(feast_registry)
            .ok()
            .zip(std::fs::canonicalize(&self.config().registry.path).ok())
            .is_some_and(|(a, b)| a == b);
        if same_file && self.config().registry.url.is_none() {
            return Err(Error::invalid(
                "registry",
                format!(
                    "feature_store.yaml's registry is {} itself: point `registry:` at a new file for Larder's \
                     registry (e.g. data/larder_registry.json), then import",
                    feast_registry.display()
                ),
            ));
        }
        let source = FeastFileRegistry::new(feast_registry, self.project());
        let project = self.project().to_string();
        let (doc, intervals) = self
            .on_registry(move |_| {
                let registry = source.read()?.ok_or_else(|| larder_registry::Error::Io {
                    path: source.path().to_path_buf(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
                let doc = convert::registry_doc(&registry, &project).map_err(|e| larder_registry::Error::Corrupt {
                    path: source.path().to_path_buf(),
                    message: e.to_string(),
                })?;
                Ok((doc, convert::materializations(&registry, &project)))
            })
            .await?;
        if doc.entities.is_empty() && doc.feature_views.is_empty() && doc.on_demand_feature_views.is_empty() {
            return Err(Error::invalid(
                "project",
                format!(
                    "{} has no objects of project `{}` (the project of feature_store.yaml)",
                    feast_registry.display(),
                    self.project()
                ),
            ));
        }
        let outcome = self.apply(doc, "import-feast").await?;
        for (view, list) in intervals {
            for interval in list {
                let view = view.clone();
                self.on_registry(move |r: &dyn RegistryStore| r.record_materialization(&view, interval))
                    .await?;
            }
        }
        Ok(outcome)
    }
}
