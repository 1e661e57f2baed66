//! Feast's file registry (`registry.db`: one serialized `feast.core.Registry`) as a read-only
//! [`RegistryStore`]: Larder serves a Feast deployment's definitions and materialization
//! record as Feast left them, and re-reads the file when Feast changes it (`feast apply`,
//! `feast materialize`). Larder writes nothing into it: an apply, a materialization record or
//! a teardown is refused, naming `larder import-feast`, which copies the definitions into a
//! registry of Larder's own.

#![allow(
    clippy::disallowed_methods,
    reason = "the registry stores are synchronous by contract"
)]

use std::path::{Path, PathBuf};

use larder_registry::{Error, Result};
use prost::Message;

use crate::proto::core::Registry;
use crate::read_only::FeastSource;

/// Whether `bytes` (a registry file's content) is a Feast registry rather than Larder's JSON:
/// it decodes as a `Registry` message and does not start like a JSON document.
pub fn is_feast_registry(bytes: &[u8]) -> bool {
    let json_like = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    !bytes.is_empty() && !json_like && Registry::decode(bytes).is_ok()
}

/// A Feast registry file, read for one project.
#[derive(Debug, Clone)]
pub struct FeastFileRegistry {
    path: PathBuf,
    project: String,
}

impl FeastFileRegistry {
    /// The registry in `path`, for `project`.
    pub fn new(path: impl Into<PathBuf>, project: &str) -> Self {
        FeastFileRegistry {
            path: path.into(),
            project: project.to_string(),
        }
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded registry message; `None` when the file does not exist.
    pub fn read(&self) -> Result<Option<Registry>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        Registry::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: self.path.clone(),
                message: format!("not a Feast registry: {e}"),
            })
    }

    fn refused(&self, what: &str) -> Error {
        Error::Refused(format!(
            "{} is Feast's registry, which Larder only reads: {what} is refused. Change it with `feast apply`, \
             or move to a registry of Larder's own with `larder import-feast {}` (then point `registry:` at it)",
            self.path.display(),
            self.path.display()
        ))
    }
}

impl FeastSource for FeastFileRegistry {
    fn read(&self) -> Result<Option<Registry>> {
        FeastFileRegistry::read(self)
    }

    fn project(&self) -> &str {
        &self.project
    }

    fn token(&self) -> Result<Option<u128>> {
        match std::fs::metadata(&self.path) {
            Ok(m) => {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                Ok(Some(modified ^ (u128::from(m.len()) << 96)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn describe(&self) -> String {
        format!("Feast registry {}", self.path.display())
    }

    fn corrupt(&self, message: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            message,
        }
    }

    fn refused(&self, what: &str) -> Error {
        FeastFileRegistry::refused(self, what)
    }
}

/// Feast's registry file on S3 (`registry: s3://bucket/registry.db`, as Feast's
/// `S3RegistryStore` writes it), read for one project.
#[cfg(feature = "s3")]
#[derive(Debug)]
pub struct FeastS3Registry {
    object: larder_registry::S3RegistryStore,
    project: String,
}

#[cfg(feature = "s3")]
impl FeastS3Registry {
    /// The registry in `object`, for `project`.
    pub fn new(object: larder_registry::S3RegistryStore, project: &str) -> Self {
        FeastS3Registry {
            object,
            project: project.to_string(),
        }
    }
}

#[cfg(feature = "s3")]
impl FeastSource for FeastS3Registry {
    fn read(&self) -> Result<Option<Registry>> {
        let Some(bytes) = self.object.read_raw()? else {
            return Ok(None);
        };
        Registry::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| self.corrupt(format!("not a Feast registry: {e}")))
    }

    fn project(&self) -> &str {
        &self.project
    }

    fn token(&self) -> Result<Option<u128>> {
        larder_registry::RegistryStore::change_token(&self.object)
    }

    fn describe(&self) -> String {
        format!("Feast registry {}", self.object.url())
    }

    fn corrupt(&self, message: String) -> Error {
        Error::Corrupt {
            path: PathBuf::from(self.object.url()),
            message,
        }
    }

    fn refused(&self, what: &str) -> Error {
        Error::Refused(format!(
            "{url} is Feast's registry, which Larder only reads: {what} is refused. Change it with `feast apply`, \
             or move to a registry of Larder's own with `larder import-feast {url}` (then point `registry:` at it)",
            url = self.object.url()
        ))
    }
}
