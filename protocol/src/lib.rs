//! Larder's wire formats, kept apart from the server so that they can be fuzzed alone:
//!
//! - [`value`]: the typed feature value (Feast's `ValueProto`), its binary encoding in the
//!   online store and Feast's JSON encoding;
//! - [`key`]: Feast's entity-key serialization (v3);
//! - [`row`]: one stored online row and its binary layout;
//! - [`time`]: parsing and formatting of times as Feast's APIs write them;
//! - [`json`]: request-body parsing that names the offending field, and typed values from JSON;
//! - [`requests`]: the bodies of the HTTP API (Feast's feature-server requests and Larder's).

pub mod json;
pub mod key;
pub mod requests;
pub mod row;
pub mod time;
pub mod value;

pub use row::OnlineRow;
pub use value::{Value, ValueError};
