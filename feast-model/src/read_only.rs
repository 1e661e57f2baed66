//! One read-only [`RegistryStore`] over any place Feast keeps its registry ([`FeastSource`]):
//! the file (`registry.db`) and the SQL registry. Larder serves what Feast wrote as one version
//! and refuses every write (apply, materialization record, teardown), saying what to do instead.

use chrono::{DateTime, Utc};
use larder_registry::{
    Applied, Error, MaterializationInterval, Plan, RegistryDoc, RegistryState, RegistryStore, Result, VersionInfo,
};

use crate::convert::{materializations, registry_doc};
use crate::proto::core::Registry;

/// Where Feast keeps a registry, read for one project.
pub trait FeastSource: Send + Sync + std::fmt::Debug {
    /// The project's objects as one Feast `Registry`; `None` when there are none yet.
    fn read(&self) -> Result<Option<Registry>>;
    /// The project Larder serves.
    fn project(&self) -> &str;
    /// A token that changes whenever Feast changes the registry.
    fn token(&self) -> Result<Option<u128>>;
    /// For the history: where the registry is.
    fn describe(&self) -> String;
    /// A registry that does not convert (it names the object).
    fn corrupt(&self, message: String) -> Error;
    /// Why a write is refused, and what to do instead.
    fn refused(&self, what: &str) -> Error;
}

/// When a Feast registry was last changed (the epoch when it does not say).
fn updated_at(registry: &Registry) -> DateTime<Utc> {
    registry
        .last_updated
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn state_of<S: FeastSource + ?Sized>(source: &S, registry: &Registry) -> Result<RegistryState> {
    Ok(RegistryState {
        version: 1,
        applied_at: updated_at(registry),
        doc: registry_doc(registry, source.project()).map_err(|e| source.corrupt(e.to_string()))?,
        materializations: materializations(registry, source.project()),
    })
}

fn info(registry: &Registry, describe: String) -> VersionInfo {
    VersionInfo {
        version: 1,
        applied_at: updated_at(registry),
        applied_by: "feast".into(),
        changes: vec![describe],
    }
}

/// A [`FeastSource`] as a read-only registry store.
#[derive(Debug)]
pub struct ReadOnly<S>(pub S);

impl<S: FeastSource> RegistryStore for ReadOnly<S> {
    fn load(&self) -> Result<Option<RegistryState>> {
        self.0.read()?.map(|r| state_of(&self.0, &r)).transpose()
    }

    fn apply(&self, _: RegistryDoc, _: &str, _: &(dyn Fn(&Plan) -> Result<()> + Sync)) -> Result<Applied> {
        Err(self.0.refused("an apply"))
    }

    fn record_materialization(&self, _: &str, _: MaterializationInterval) -> Result<()> {
        Err(self.0.refused("recording a materialization"))
    }

    fn history(&self) -> Result<Vec<VersionInfo>> {
        Ok(self
            .0
            .read()?
            .map(|r| info(&r, self.0.describe()))
            .into_iter()
            .collect())
    }

    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)> {
        let registry = self
            .0
            .read()?
            .filter(|_| version == 1)
            .ok_or(Error::NoSuchVersion(version))?;
        Ok((info(&registry, self.0.describe()), state_of(&self.0, &registry)?.doc))
    }

    fn change_token(&self) -> Result<Option<u128>> {
        self.0.token()
    }

    fn delete(&self) -> Result<()> {
        Err(self.0.refused("a teardown"))
    }
}
