//! Feast objects Larder keeps without acting on them — saved datasets, validation references
//! and permissions — as Feast's own protobuf bytes, so that Feast's clients get back what they
//! applied (through the registry server) and Larder's history records them.

use serde::{Deserialize, Serialize};

/// What a [`FeastObject`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeastObjectKind {
    /// `feast.core.SavedDataset` (made by clients: `create_saved_dataset`).
    SavedDataset,
    /// `feast.core.ValidationReference` (made by clients).
    ValidationReference,
    /// `feast.core.Permission` (defined in repos; not enforced by Larder).
    Permission,
}

impl FeastObjectKind {
    /// A word for messages and plans.
    pub fn label(self) -> &'static str {
        match self {
            FeastObjectKind::SavedDataset => "saved dataset",
            FeastObjectKind::ValidationReference => "validation reference",
            FeastObjectKind::Permission => "permission",
        }
    }

    /// Whether clients make objects of this kind at run time rather than repos defining them:
    /// an apply of a repo's definitions keeps them.
    pub fn made_by_clients(self) -> bool {
        !matches!(self, FeastObjectKind::Permission)
    }
}

/// One Feast object kept as Feast's protobuf (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastObject {
    /// Its kind.
    pub kind: FeastObjectKind,
    /// Its name (unique per kind).
    pub name: String,
    /// Feast's serialized message, base64 (standard alphabet).
    pub proto: String,
}
