//! Feast's objects that Larder's registry keeps as Feast wrote them (saved datasets,
//! validation references, permissions; see [`larder_registry::FeastObject`]): how each kind is
//! named, placed in a project and stored.

use crate::proto::core as fc;
use base64::Engine;
use larder_registry::{FeastObject, FeastObjectKind};
use prost::Message;

/// One kind of kept Feast message.
pub trait Kept: Message + Default + Sized {
    /// Its kind in Larder's registry.
    const KIND: FeastObjectKind;
    /// Feast's exception class when it does not exist.
    const NOT_FOUND: &'static str;
    /// Its name, as Feast's messages say it ("Saved dataset").
    const LABEL: &'static str;
    /// The object's name.
    fn name(&self) -> &str;
    /// Sets the object's project when the client left it empty.
    fn project_mut(&mut self) -> Option<&mut String>;

    /// The object as Larder's registry keeps it.
    fn kept(&self) -> FeastObject {
        FeastObject {
            kind: Self::KIND,
            name: self.name().to_string(),
            proto: base64::engine::general_purpose::STANDARD.encode(self.encode_to_vec()),
        }
    }

    /// The object back from Larder's registry (`None`: not a message of this kind).
    fn from_kept(o: &FeastObject) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&o.proto).ok()?;
        Self::decode(bytes.as_slice()).ok()
    }
}

impl Kept for fc::SavedDataset {
    const KIND: FeastObjectKind = FeastObjectKind::SavedDataset;
    const NOT_FOUND: &'static str = "SavedDatasetNotFound";
    const LABEL: &'static str = "Saved dataset";
    fn name(&self) -> &str {
        self.spec.as_ref().map_or("", |s| s.name.as_str())
    }
    fn project_mut(&mut self) -> Option<&mut String> {
        self.spec.as_mut().map(|s| &mut s.project)
    }
}

impl Kept for fc::ValidationReference {
    const KIND: FeastObjectKind = FeastObjectKind::ValidationReference;
    const NOT_FOUND: &'static str = "ValidationReferenceNotFound";
    const LABEL: &'static str = "Validation reference";
    fn name(&self) -> &str {
        &self.name
    }
    fn project_mut(&mut self) -> Option<&mut String> {
        Some(&mut self.project)
    }
}

impl Kept for fc::Permission {
    const KIND: FeastObjectKind = FeastObjectKind::Permission;
    const NOT_FOUND: &'static str = "PermissionObjectNotFoundException";
    const LABEL: &'static str = "Permission";
    fn name(&self) -> &str {
        self.spec.as_ref().map_or("", |s| s.name.as_str())
    }
    fn project_mut(&mut self) -> Option<&mut String> {
        self.spec.as_mut().map(|s| &mut s.project)
    }
}

/// The kept objects of a Feast registry that belong to `project`.
pub fn kept_objects(registry: &fc::Registry, project: &str) -> Vec<FeastObject> {
    let mut out = Vec::new();
    let in_project = |p: &str| p.is_empty() || p == project;
    for d in &registry.saved_datasets {
        if d.spec.as_ref().is_some_and(|s| in_project(&s.project)) {
            out.push(d.kept());
        }
    }
    for v in &registry.validation_references {
        if in_project(&v.project) {
            out.push(v.kept());
        }
    }
    for p in &registry.permissions {
        if p.spec.as_ref().is_some_and(|s| in_project(&s.project)) {
            out.push(p.kept());
        }
    }
    out
}

/// Puts kept objects back into a Feast registry message.
pub fn put_kept(objects: &[FeastObject], registry: &mut fc::Registry) {
    for o in objects {
        match o.kind {
            FeastObjectKind::SavedDataset => registry.saved_datasets.extend(fc::SavedDataset::from_kept(o)),
            FeastObjectKind::ValidationReference => registry
                .validation_references
                .extend(fc::ValidationReference::from_kept(o)),
            FeastObjectKind::Permission => registry.permissions.extend(fc::Permission::from_kept(o)),
        }
    }
}
