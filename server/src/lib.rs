//! Larder: a Feast-compatible feature store server.
//!
//! The library core is [`FeatureStore`]: every front end (the `larder` CLI, the HTTP API, later
//! Arrow Flight and the Python SDK) calls the same methods. Backends sit behind one trait per
//! seam: [`online::OnlineStore`] (RocksDB) and [`offline::OfflineStore`] (Parquet on
//! DataFusion).

// Tests write fixtures with std::fs freely; the library itself may not block (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod exporter;
pub mod feature_log;
pub mod flight;
pub mod grpc;
pub mod handoff;
mod import_feast;
pub mod ingest;
pub mod init;
pub mod inspect;
pub mod jobs;
pub mod materialize;
pub mod metrics;
pub mod offline;
pub mod online;
pub mod remote_offline;
pub mod serving;
mod store;
pub mod stream;
pub mod tls;
pub mod transform;
pub mod value;

pub use error::{Error, Result};
/// Feast's entity-key serialization and times, from the wire-format crate.
pub use larder_protocol::{key, time};
pub use store::{ApplyOutcome, FeatureStore, MaterializeOutcome};
