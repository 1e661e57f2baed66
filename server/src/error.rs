//! The server's error type, grouped by cause, with its HTTP status (as Feast's
//! `http_status_code()`) and Feast's error detail.

use std::path::PathBuf;

/// Result alias for Larder's core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Larder's core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A named object does not exist (404). `class` is Feast's exception class.
    #[error("{message}")]
    NotFound {
        /// Feast's exception class name, e.g. `FeatureViewNotFoundException`.
        class: &'static str,
        /// Human-readable message, naming the object.
        message: String,
    },
    /// A request is malformed or inconsistent (422); `field` locates the problem.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// Location of the bad input, e.g. `entities.driver_id[2]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// `feature_store.yaml` is unreadable or invalid.
    #[error("{file}: {message}")]
    Config {
        /// The configuration file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// Registry problem (invalid definitions, unreadable file...).
    #[error(transparent)]
    Registry(#[from] larder_registry::Error),
    /// A backend is unavailable (503); retrying later may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The feature exists in Feast but not (yet) in Larder (501).
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// Reading the offline data failed.
    #[error("offline store: {0}")]
    Offline(String),
    /// A bug or an unexpected internal failure (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 404 for a feature view.
    pub fn view_not_found(name: &str, project: &str) -> Self {
        Error::NotFound {
            class: "FeatureViewNotFoundException",
            message: format!("Feature view {name} does not exist in project {project}"),
        }
    }

    /// A 404 for a feature service.
    pub fn service_not_found(name: &str, project: &str) -> Self {
        Error::NotFound {
            class: "FeatureServiceNotFoundException",
            message: format!("Feature service {name} does not exist in project {project}"),
        }
    }

    /// A 501 for a backend this binary was built without (its cargo feature was off).
    pub fn not_built(feature: &str, what: &str) -> Self {
        Error::NotImplemented(format!(
            "{what} needs the `{feature}` feature, which this larder was built without \
             (build with `cargo build --features {feature}`)"
        ))
    }

    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::InvalidRequest { .. } => 422,
            Error::Registry(larder_registry::Error::Database { .. } | larder_registry::Error::Remote { .. })
            | Error::Unavailable(_) => 503,
            Error::Registry(larder_registry::Error::Invalid(_)) => 422,
            Error::Registry(larder_registry::Error::Refused(_) | larder_registry::Error::Stale { .. }) => 409,
            Error::Registry(larder_registry::Error::NoSuchVersion(_)) => 404,
            Error::Config { .. } | Error::Registry(_) => 500,
            Error::NotImplemented(_) => 501,
            Error::Offline(_) | Error::Internal(_) => 500,
        }
    }

    /// Feast's exception class for the error detail.
    pub fn feast_class(&self) -> &'static str {
        match self {
            Error::NotFound { class, .. } => class,
            Error::InvalidRequest { .. } => "ValueError",
            _ => "FeastError",
        }
    }
}

impl From<crate::value::ValueError> for Error {
    fn from(e: crate::value::ValueError) -> Self {
        Error::Internal(e.0)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Internal(format!("arrow: {e}"))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Offline(e.to_string())
    }
}
