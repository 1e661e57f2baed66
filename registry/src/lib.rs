//! Larder's registry: the Feast-compatible definitions model, its validation, the plan (diff)
//! between two versions, and crash-safe, versioned persistence.
//!
//! The crate has no I/O beyond the registry files themselves: anything that needs a data
//! source (column types, for validation and inference) goes through [`SchemaLookup`], which the
//! server implements over Parquet.

// The registry stores are synchronous by contract (the server runs them on its blocking pool),
// so blocking file calls are what this crate is for.
#![allow(clippy::disallowed_methods)]

pub mod declared;
pub mod error;
pub mod model;
pub mod plan;
#[cfg(feature = "postgres")]
pub mod postgres_store;
pub mod resolve;
#[cfg(feature = "s3")]
pub mod s3_store;
#[cfg(feature = "sqlite")]
pub mod sqlite_store;
pub mod store;
pub mod validate;

pub use error::{Error, Result};
pub use model::*;
pub use plan::{diff, Change, ChangeKind, Plan};
#[cfg(feature = "postgres")]
pub use postgres_store::PostgresRegistryStore;
pub use resolve::{resolve, SchemaLookup, SourceColumn};
#[cfg(feature = "s3")]
pub use s3_store::S3RegistryStore;
#[cfg(feature = "sqlite")]
pub use sqlite_store::SqliteRegistryStore;
pub use store::{Applied, FileRegistryStore, MaterializationInterval, RegistryState, RegistryStore, VersionInfo};
pub use validate::{validate, ValidationError};
