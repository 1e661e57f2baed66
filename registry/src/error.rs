//! Errors of the registry crate.

use std::path::PathBuf;

use crate::validate::ValidationError;

/// Result alias for the registry crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, checking or writing the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The definitions are inconsistent; every problem found is listed.
    #[error("invalid definitions:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ValidationError>),
    /// The registry file (or a history file) could not be read or written.
    #[error("registry file {path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A registry file exists but does not hold a registry document.
    #[error("registry file {path} is corrupt: {message}")]
    Corrupt {
        /// File that failed to parse.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// The registry database could not be reached or refused a statement.
    #[error("registry database {target}: {message}")]
    Database {
        /// Where the database is (host, port and name; never the password).
        target: String,
        /// What failed.
        message: String,
    },
    /// The registry's object store (S3) could not be reached or refused a request.
    #[error("registry {target}: {message}")]
    Remote {
        /// Where the registry is (`s3://bucket/key`).
        target: String,
        /// What failed.
        message: String,
    },
    /// The apply was refused by its caller's precondition (checked under the registry's lock,
    /// against the plan that would be recorded); nothing was recorded.
    #[error("{0}")]
    Refused(String),
    /// The registry changed between reading a base and applying on top of it (another apply
    /// came first); re-read and retry.
    #[error("the registry changed since version {expected:?} was read (it is at {found:?} now)")]
    Stale {
        /// The version the caller built on.
        expected: Option<u64>,
        /// The version found under the lock.
        found: Option<u64>,
    },
    /// A version that is not in the history was asked for.
    #[error("registry version {0} does not exist")]
    NoSuchVersion(u64),
}
