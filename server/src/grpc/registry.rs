//! Feast's registry server (`feast.registry.RegistryServer`, what `feast serve_registry`
//! offers), backed by Larder's versioned registry, so that a Feast client configured with
//! `registry: {registry_type: remote, path: <host>:<flight port>}` keeps no registry of its own.
//!
//! - **Reads** (`Get*`, `List*`, `Proto`) answer from the registry state being served, as
//!   Feast's objects ([`larder_feast_model::to_feast`]); objects of another project do not
//!   exist (Feast's not-found errors, with the JSON detail Feast's client turns back into its
//!   exceptions).
//! - **Writes** (`Apply*`, `Delete*`) are staged on the registry version they were made on and
//!   recorded as one new Larder registry version at `Commit` (or at a write sent with
//!   `commit: true`), through the same validation as `larder apply`; Larder's history and
//!   plan/diff show them as any other apply. A commit made on a version that another apply
//!   replaced in between is refused (`ABORTED`) and nothing is recorded.
//! - `ApplyMaterialization` records the interval at once (Feast's clients materialize
//!   themselves, then report it); `DeleteProject` (what `feast teardown` sends) is Larder's
//!   teardown: the project's online data and registry are deleted.
//! - Feast's objects Larder keeps without acting on them — saved datasets, validation
//!   references, permissions (not enforced) — are stored as Feast's protobuf and given back as
//!   applied (staged and committed like every write); the dataset jobs of Feast's newer API are
//!   refused by name (`UNIMPLEMENTED`). `UpdateInfra` is accepted and ignored (Larder manages
//!   its stores itself) and `GetInfra` answers an empty infra.
//!
//! Roles: reads need a token that may read or write features (as `GET /registry`), writes and
//! teardown `admin`, `ApplyMaterialization` `write`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use larder_feast_model::convert::{entity, infer_entity_types, registry_doc};
use larder_feast_model::proto::core as fc;
use larder_feast_model::proto::registry as r;
use larder_feast_model::to_feast::{has_feast_form, ToFeast};
use larder_registry::{FeatureView, MaterializationInterval, RegistryDoc, RegistryState};
use tonic::{Request, Response, Status};

use super::{authorize, Unary};
use crate::auth::Role;
use crate::FeatureStore;
use larder_feast_model::kept::Kept;

/// Who Larder's history names for an apply made through the registry server.
const APPLIED_BY: &str = "feast client (registry server)";
const READ: &[Role] = &[Role::ReadOnline, Role::ReadOffline, Role::Write];

/// Feast's error detail: the JSON its client maps back to `feast.errors.<class>`.
fn detail(class: &str, message: &str) -> String {
    serde_json::json!({"module": "feast.errors", "class": class, "message": message}).to_string()
}

fn not_found(class: &str, message: String) -> Status {
    Status::not_found(detail(class, &message))
}

fn unstored(what: &str) -> Status {
    Status::unimplemented(detail(
        "FeastError",
        &format!("Larder's registry server does not offer Feast {what}; nothing was changed"),
    ))
}

/// Changes made through the server and not yet committed.
#[derive(Debug)]
struct Pending {
    /// The registry version they were made on (`None`: an empty registry).
    base: Option<u64>,
    doc: RegistryDoc,
    /// The views applied since the last commit. Feast's client deletes a view it finds in the
    /// registry under another kind than in its repo after applying the new one (a label view,
    /// which Larder lists as a feature view, comes back as a label view): Larder has one object
    /// per name, so such a delete must not remove what was just applied.
    applied_views: std::collections::BTreeSet<String>,
}

/// What one read sees: the state served for the asked project (`None` when nothing is
/// applied, or for another project).
struct Snapshot {
    state: Option<Arc<RegistryState>>,
}

impl Snapshot {
    fn feast(&self) -> Option<(ToFeast<'_>, &RegistryState)> {
        self.state.as_deref().map(|s| (ToFeast::new(&s.doc, s.applied_at), s))
    }

    fn intervals<'a>(state: &'a RegistryState, view: &str) -> &'a [MaterializationInterval] {
        state.materializations.get(view).map_or(&[][..], Vec::as_slice)
    }
}

/// Whether `tags` hold every `wanted` tag (Feast's list filter).
fn tagged(tags: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| tags.get(k) == Some(v))
}

/// The `RegistryServer` service (a tonic service, added to the Flight server).
#[derive(Debug, Clone)]
pub struct RegistryServer {
    store: Arc<FeatureStore>,
    pending: Arc<tokio::sync::Mutex<Option<Pending>>>,
}

impl RegistryServer {
    /// A server over `store`'s registry.
    pub fn new(store: Arc<FeatureStore>) -> Self {
        RegistryServer {
            store,
            pending: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    fn served(&self) -> &str {
        self.store.project()
    }

    /// Refuses changes to another project than the one served.
    fn check_project(&self, project: &str) -> Result<(), Status> {
        if project == self.served() {
            return Ok(());
        }
        Err(Status::failed_precondition(detail(
            "FeastError",
            &format!(
                "this Larder server serves project `{}`, not `{project}`: set `project: {}` in the \
                 client's feature_store.yaml or start a server for `{project}`",
                self.served(),
                self.served()
            ),
        )))
    }

    /// The committed state (`None` when nothing is applied).
    async fn current(&self) -> Result<Option<Arc<RegistryState>>, Status> {
        match self.store.state().await {
            Ok(s) => Ok(Some(s)),
            Err(e) => match self.store.on_registry(|r| r.load()).await {
                Ok(None) => Ok(None),
                _ => Err(crate::flight::status(e)),
            },
        }
    }

    async fn snapshot<T>(&self, req: &Request<T>, project: &str) -> Result<Snapshot, Status> {
        authorize(&self.store, req.metadata(), READ, "read the registry")?;
        let state = if project == self.served() {
            self.current().await?
        } else {
            None
        };
        Ok(Snapshot { state })
    }

    /// Applies `change` to the pending changes (started from the committed state), then
    /// commits when asked. A change that fails leaves the pending changes as they were.
    async fn stage(
        &self,
        project: &str,
        commit: bool,
        change: impl FnOnce(&mut Pending) -> Result<(), Status>,
    ) -> Result<(), Status> {
        self.check_project(project)?;
        let mut pending = self.pending.lock().await;
        let mut next = match pending.take() {
            Some(p) => p,
            None => {
                let state = self.current().await?;
                Pending {
                    base: state.as_ref().map(|s| s.version),
                    doc: state.map(|s| s.doc.clone()).unwrap_or_else(|| RegistryDoc {
                        project: project.to_string(),
                        ..RegistryDoc::default()
                    }),
                    applied_views: Default::default(),
                }
            }
        };
        let mut draft = Pending {
            base: next.base,
            doc: next.doc.clone(),
            applied_views: next.applied_views.clone(),
        };
        let changed = change(&mut draft);
        if changed.is_ok() {
            next = draft;
        }
        *pending = Some(next);
        changed?;
        if commit {
            self.commit_locked(&mut pending).await?;
        }
        Ok(())
    }

    /// Records the pending changes as one registry version.
    async fn commit_locked(&self, pending: &mut Option<Pending>) -> Result<(), Status> {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        let mut doc = p.doc;
        infer_entity_types(&mut doc);
        match self.store.apply_on_base(doc, APPLIED_BY, p.base).await {
            Ok(_) => Ok(()),
            Err(crate::Error::Registry(larder_registry::Error::Stale { expected, found })) => {
                Err(Status::aborted(detail(
                    "FeastError",
                    &format!(
                        "the registry changed while these changes were staged (made on version {expected:?}, \
                         now {found:?}); nothing was recorded: apply again"
                    ),
                )))
            }
            Err(e) => Err(crate::flight::status(e)),
        }
    }

    /// Stages the removal of the object of `kind` called `name`; Feast's not-found error
    /// (`class`, the message naming the `label`) when there is none.
    async fn delete_object(
        &self,
        kind: &'static str,
        class: &'static str,
        label: &str,
        name: String,
        project: String,
        commit: bool,
    ) -> Result<Response<()>, Status> {
        let message = format!("{label} {name} does not exist in project {project}");
        self.stage(&project, commit, move |p| {
            if p.doc.remove(kind, &name) {
                Ok(())
            } else {
                Err(not_found(class, message))
            }
        })
        .await?;
        Ok(Response::new(()))
    }

    fn writer<T>(&self, req: &Request<T>, role: Role, what: &str) -> Result<(), Status> {
        authorize(&self.store, req.metadata(), &[role], what)
    }
}

/// Larder's objects for Feast ones of `project`: the objects of a one-object Feast registry.
fn converted(registry: fc::Registry, project: &str) -> Result<RegistryDoc, Status> {
    registry_doc(&registry, project).map_err(|e| Status::invalid_argument(detail("FeastError", &e.to_string())))
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, Status> {
    v.ok_or_else(|| Status::invalid_argument(detail("FeastError", &format!("the request has no {what}"))))
}

fn time(t: Option<prost_types::Timestamp>, what: &str) -> Result<DateTime<Utc>, Status> {
    let t = required(t, what)?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        .ok_or_else(|| Status::invalid_argument(detail("FeastError", &format!("{what} is out of range"))))
}

/// Sets the project of a Feast object sent without one (Feast's client always sends it).
fn in_project(project: &str, p: &mut String) {
    if p.is_empty() {
        *p = project.to_string();
    }
}

impl RegistryServer {
    // Entities --------------------------------------------------------------------------------

    async fn apply_entity(self, req: Request<r::ApplyEntityRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        let spec = required(req.entity.and_then(|e| e.spec), "entity")?;
        let e = entity(&spec);
        self.stage(&req.project, req.commit, move |p| {
            p.doc.upsert(RegistryDoc {
                entities: vec![e],
                ..RegistryDoc::default()
            });
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn get_entity(self, req: Request<r::GetEntityRequest>) -> Result<Response<fc::Entity>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetEntityRequest { name, project, .. } = req.into_inner();
        snap.feast()
            .and_then(|(f, s)| s.doc.entity(&name).map(|e| f.entity(e)))
            .map(Response::new)
            .ok_or_else(|| {
                not_found(
                    "EntityNotFoundException",
                    format!("Entity {name} does not exist in project {project}"),
                )
            })
    }

    async fn list_entities(
        self,
        req: Request<r::ListEntitiesRequest>,
    ) -> Result<Response<r::ListEntitiesResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let tags = req.into_inner().tags;
        let entities = snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .entities
                .iter()
                .filter(|e| tagged(&e.tags, &tags))
                .map(|e| f.entity(e))
                .collect()
        });
        Ok(Response::new(r::ListEntitiesResponse {
            entities,
            ..Default::default()
        }))
    }

    async fn delete_entity(self, req: Request<r::DeleteEntityRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let r::DeleteEntityRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_object("entities", "EntityNotFoundException", "Entity", name, project, commit)
            .await
    }

    // Data sources ----------------------------------------------------------------------------

    async fn apply_data_source(self, req: Request<r::ApplyDataSourceRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        let mut source = required(req.data_source, "data_source")?;
        in_project(&req.project, &mut source.project);
        let project = source.project.clone();
        let objects = converted(
            fc::Registry {
                data_sources: vec![source],
                ..Default::default()
            },
            &project,
        )?;
        self.stage(&req.project, req.commit, move |p| {
            p.doc.upsert(objects);
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn get_data_source(self, req: Request<r::GetDataSourceRequest>) -> Result<Response<fc::DataSource>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetDataSourceRequest { name, project, .. } = req.into_inner();
        snap.feast()
            .and_then(|(f, _)| f.data_source_named(&name))
            .map(Response::new)
            .ok_or_else(|| {
                not_found(
                    "DataSourceObjectNotFoundException",
                    format!("Data source {name} does not exist in project {project}"),
                )
            })
    }

    async fn list_data_sources(
        self,
        req: Request<r::ListDataSourcesRequest>,
    ) -> Result<Response<r::ListDataSourcesResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let tags = req.into_inner().tags;
        let data_sources = snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .data_sources
                .iter()
                .map(|d| f.data_source(d))
                .filter(|d| tagged(&d.tags, &tags))
                .collect()
        });
        Ok(Response::new(r::ListDataSourcesResponse {
            data_sources,
            ..Default::default()
        }))
    }

    async fn delete_data_source(self, req: Request<r::DeleteDataSourceRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let r::DeleteDataSourceRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_object(
            "data_sources",
            "DataSourceObjectNotFoundException",
            "Data source",
            name,
            project,
            commit,
        )
        .await
    }

    // Feature views of every kind -------------------------------------------------------------

    async fn apply_feature_view(self, req: Request<r::ApplyFeatureViewRequest>) -> Result<Response<()>, Status> {
        use r::apply_feature_view_request::BaseFeatureView as B;
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        let project = req.project.clone();
        let mut registry = fc::Registry::default();
        let name = match required(req.base_feature_view, "feature view")? {
            B::FeatureView(mut v) => {
                let spec = required(v.spec.as_mut(), "feature view spec")?;
                in_project(&project, &mut spec.project);
                let name = spec.name.clone();
                registry.feature_views.push(v);
                name
            }
            B::StreamFeatureView(mut v) => {
                let spec = required(v.spec.as_mut(), "stream feature view spec")?;
                in_project(&project, &mut spec.project);
                let name = spec.name.clone();
                registry.stream_feature_views.push(v);
                name
            }
            B::OnDemandFeatureView(mut v) => {
                let spec = required(v.spec.as_mut(), "on-demand feature view spec")?;
                in_project(&project, &mut spec.project);
                let name = spec.name.clone();
                registry.on_demand_feature_views.push(v);
                name
            }
            B::LabelView(mut v) => {
                let spec = required(v.spec.as_mut(), "label view spec")?;
                in_project(&project, &mut spec.project);
                let name = spec.name.clone();
                registry.label_views.push(v);
                name
            }
        };
        let objects = converted(registry, &project)?;
        self.stage(&project, req.commit, move |p| {
            // A name moves between kinds (a feature view becoming on-demand, or back).
            p.doc.remove("feature_views", &name);
            p.doc.remove("on_demand_feature_views", &name);
            p.doc.upsert(objects);
            p.applied_views.insert(name);
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn delete_feature_view(self, req: Request<r::DeleteFeatureViewRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let r::DeleteFeatureViewRequest {
            name, project, commit, ..
        } = req.into_inner();
        let message = format!("Feature view {name} does not exist in project {project}");
        self.stage(&project, commit, move |p| {
            if p.applied_views.contains(&name) {
                // Applied again in this change under another kind (see `Pending`): kept.
                return Ok(());
            }
            let removed = p.doc.remove("feature_views", &name) | p.doc.remove("on_demand_feature_views", &name);
            if removed {
                Ok(())
            } else {
                Err(not_found("FeatureViewNotFoundException", message))
            }
        })
        .await?;
        Ok(Response::new(()))
    }

    fn view_not_found(name: &str, project: &str) -> Status {
        not_found(
            "FeatureViewNotFoundException",
            format!("Feature view {name} does not exist in project {project}"),
        )
    }

    /// The plain (not stream) views of a snapshot passing `keep`.
    fn batch_views(snap: &Snapshot, keep: impl Fn(&FeatureView) -> bool) -> Vec<fc::FeatureView> {
        snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .feature_views
                .iter()
                .filter(|v| !f.is_stream_view(v) && keep(v))
                .map(|v| f.feature_view(v, Snapshot::intervals(s, &v.name)))
                .collect()
        })
    }

    fn stream_views(snap: &Snapshot, keep: impl Fn(&FeatureView) -> bool) -> Vec<fc::StreamFeatureView> {
        snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .feature_views
                .iter()
                .filter(|v| f.is_stream_view(v) && keep(v))
                .map(|v| f.stream_feature_view(v, Snapshot::intervals(s, &v.name)))
                .collect()
        })
    }

    fn on_demand_views(
        snap: &Snapshot,
        keep: impl Fn(&larder_registry::OnDemandFeatureView) -> bool,
    ) -> Vec<fc::OnDemandFeatureView> {
        snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .on_demand_feature_views
                .iter()
                .filter(|v| has_feast_form(v) && keep(v))
                .map(|v| f.on_demand_feature_view(v))
                .collect()
        })
    }

    async fn get_feature_view(
        self,
        req: Request<r::GetFeatureViewRequest>,
    ) -> Result<Response<fc::FeatureView>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetFeatureViewRequest { name, project, .. } = req.into_inner();
        Self::batch_views(&snap, |v| v.name == name)
            .pop()
            .map(Response::new)
            .ok_or_else(|| Self::view_not_found(&name, &project))
    }

    async fn list_feature_views(
        self,
        req: Request<r::ListFeatureViewsRequest>,
    ) -> Result<Response<r::ListFeatureViewsResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let tags = req.into_inner().tags;
        Ok(Response::new(r::ListFeatureViewsResponse {
            feature_views: Self::batch_views(&snap, |v| tagged(&v.tags, &tags)),
            ..Default::default()
        }))
    }

    async fn get_stream_feature_view(
        self,
        req: Request<r::GetStreamFeatureViewRequest>,
    ) -> Result<Response<fc::StreamFeatureView>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetStreamFeatureViewRequest { name, project, .. } = req.into_inner();
        Self::stream_views(&snap, |v| v.name == name)
            .pop()
            .map(Response::new)
            .ok_or_else(|| Self::view_not_found(&name, &project))
    }

    async fn list_stream_feature_views(
        self,
        req: Request<r::ListStreamFeatureViewsRequest>,
    ) -> Result<Response<r::ListStreamFeatureViewsResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let tags = req.into_inner().tags;
        Ok(Response::new(r::ListStreamFeatureViewsResponse {
            stream_feature_views: Self::stream_views(&snap, |v| tagged(&v.tags, &tags)),
            ..Default::default()
        }))
    }

    async fn get_on_demand_feature_view(
        self,
        req: Request<r::GetOnDemandFeatureViewRequest>,
    ) -> Result<Response<fc::OnDemandFeatureView>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetOnDemandFeatureViewRequest { name, project, .. } = req.into_inner();
        Self::on_demand_views(&snap, |v| v.name == name)
            .pop()
            .map(Response::new)
            .ok_or_else(|| {
                not_found(
                    "OnDemandFeatureViewNotFoundException",
                    format!("On demand feature view {name} does not exist in project {project}"),
                )
            })
    }

    async fn list_on_demand_feature_views(
        self,
        req: Request<r::ListOnDemandFeatureViewsRequest>,
    ) -> Result<Response<r::ListOnDemandFeatureViewsResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let tags = req.into_inner().tags;
        Ok(Response::new(r::ListOnDemandFeatureViewsResponse {
            on_demand_feature_views: Self::on_demand_views(&snap, |v| tagged(&v.tags, &tags)),
            ..Default::default()
        }))
    }

    /// Every view passing `keep`, of every kind.
    fn any_views(snap: &Snapshot, keep: impl Fn(&str, &BTreeMap<String, String>) -> bool) -> Vec<r::AnyFeatureView> {
        use r::any_feature_view::AnyFeatureView as A;
        let any = |v| r::AnyFeatureView {
            any_feature_view: Some(v),
        };
        let mut out: Vec<r::AnyFeatureView> = Self::batch_views(snap, |v| keep(&v.name, &v.tags))
            .into_iter()
            .map(|v| any(A::FeatureView(v)))
            .collect();
        out.extend(
            Self::stream_views(snap, |v| keep(&v.name, &v.tags))
                .into_iter()
                .map(|v| any(A::StreamFeatureView(v))),
        );
        out.extend(
            Self::on_demand_views(snap, |v| keep(&v.name, &v.tags))
                .into_iter()
                .map(|v| any(A::OnDemandFeatureView(v))),
        );
        out
    }

    async fn get_any_feature_view(
        self,
        req: Request<r::GetAnyFeatureViewRequest>,
    ) -> Result<Response<r::GetAnyFeatureViewResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetAnyFeatureViewRequest { name, project, .. } = req.into_inner();
        let found = Self::any_views(&snap, |n, _| n == name).pop();
        found
            .map(|v| {
                Response::new(r::GetAnyFeatureViewResponse {
                    any_feature_view: Some(v),
                })
            })
            .ok_or_else(|| Self::view_not_found(&name, &project))
    }

    async fn list_all_feature_views(
        self,
        req: Request<r::ListAllFeatureViewsRequest>,
    ) -> Result<Response<r::ListAllFeatureViewsResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let q = req.into_inner();
        // Feast's filters: by tags, and by the entity, feature, data source or service a view
        // has or is used by.
        let doc = snap.state.as_deref().map(|s| &s.doc);
        let keep = |name: &str, tags: &BTreeMap<String, String>| -> bool {
            let Some(doc) = doc else {
                return false;
            };
            let fv = doc.feature_view(name);
            let odfv = doc.on_demand_feature_view(name);
            let entity_ok = q.entity.is_empty() || fv.is_some_and(|v| v.entities.contains(&q.entity));
            let feature_ok = q.feature.is_empty()
                || fv.is_some_and(|v| {
                    larder_feast_model::to_feast::view_fields(v)
                        .iter()
                        .any(|f| f.name == q.feature)
                })
                || odfv.is_some_and(|v| v.features.iter().any(|f| f.name == q.feature));
            let source_ok = q.data_source.is_empty()
                || fv.is_some_and(|v| {
                    v.source == q.data_source || doc.batch_source(v).is_some_and(|b| b.name == q.data_source)
                })
                || odfv.is_some_and(|v| v.request_sources.contains(&q.data_source));
            let service_ok = q.feature_service.is_empty()
                || doc
                    .feature_service(&q.feature_service)
                    .is_some_and(|s| s.features.iter().any(|p| p.view == name));
            tagged(tags, &q.tags) && entity_ok && feature_ok && source_ok && service_ok
        };
        Ok(Response::new(r::ListAllFeatureViewsResponse {
            feature_views: Self::any_views(&snap, keep),
            ..Default::default()
        }))
    }

    async fn get_label_view(self, req: Request<r::GetLabelViewRequest>) -> Result<Response<fc::LabelView>, Status> {
        let _ = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetLabelViewRequest { name, project, .. } = req.into_inner();
        // Larder registers a label view as a feature view (its conflict policy is not applied).
        Err(not_found(
            "FeastObjectNotFoundException",
            format!(
                "Label view {name} does not exist in project {project} (Larder serves label views as feature views)"
            ),
        ))
    }

    async fn list_label_views(
        self,
        req: Request<r::ListLabelViewsRequest>,
    ) -> Result<Response<r::ListLabelViewsResponse>, Status> {
        let _ = self.snapshot(&req, &req.get_ref().project).await?;
        Ok(Response::new(r::ListLabelViewsResponse::default()))
    }

    // Feature services ------------------------------------------------------------------------

    async fn apply_feature_service(self, req: Request<r::ApplyFeatureServiceRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        let mut service = required(req.feature_service, "feature_service")?;
        if let Some(spec) = service.spec.as_mut() {
            in_project(&req.project, &mut spec.project);
        }
        let objects = converted(
            fc::Registry {
                feature_services: vec![service],
                ..Default::default()
            },
            &req.project,
        )?;
        self.stage(&req.project, req.commit, move |p| {
            p.doc.upsert(objects);
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn get_feature_service(
        self,
        req: Request<r::GetFeatureServiceRequest>,
    ) -> Result<Response<fc::FeatureService>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let r::GetFeatureServiceRequest { name, project, .. } = req.into_inner();
        snap.feast()
            .and_then(|(f, s)| s.doc.feature_service(&name).map(|x| f.feature_service(x)))
            .map(Response::new)
            .ok_or_else(|| {
                not_found(
                    "FeatureServiceNotFoundException",
                    format!("Feature service {name} does not exist in project {project}"),
                )
            })
    }

    async fn list_feature_services(
        self,
        req: Request<r::ListFeatureServicesRequest>,
    ) -> Result<Response<r::ListFeatureServicesResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let q = req.into_inner();
        let feature_services = snap.feast().map_or_else(Vec::new, |(f, s)| {
            s.doc
                .feature_services
                .iter()
                .filter(|x| tagged(&x.tags, &q.tags))
                .filter(|x| q.feature_view.is_empty() || x.features.iter().any(|p| p.view == q.feature_view))
                .map(|x| f.feature_service(x))
                .collect()
        });
        Ok(Response::new(r::ListFeatureServicesResponse {
            feature_services,
            ..Default::default()
        }))
    }

    async fn delete_feature_service(
        self,
        req: Request<r::DeleteFeatureServiceRequest>,
    ) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let r::DeleteFeatureServiceRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_object(
            "feature_services",
            "FeatureServiceNotFoundException",
            "Feature service",
            name,
            project,
            commit,
        )
        .await
    }

    // Materialization, projects, the registry as a whole ----------------------------------------

    async fn apply_materialization(self, req: Request<r::ApplyMaterializationRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Write, "record materializations")?;
        let req = req.into_inner();
        self.check_project(&req.project)?;
        let name = required(req.feature_view.and_then(|v| v.spec), "feature_view")?.name;
        let interval = MaterializationInterval {
            start: time(req.start_date, "start_date")?,
            end: time(req.end_date, "end_date")?,
            finished_at: Utc::now(),
        };
        let state = self.current().await?;
        if state.is_none_or(|s| s.doc.feature_view(&name).is_none()) {
            return Err(Self::view_not_found(&name, &req.project));
        }
        self.store
            .on_registry(move |r| r.record_materialization(&name, interval))
            .await
            .map_err(crate::flight::status)?;
        self.store.refresh().await.map_err(crate::flight::status)?;
        Ok(Response::new(()))
    }

    async fn apply_project(self, req: Request<r::ApplyProjectRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        let name = required(req.project.and_then(|p| p.spec), "project")?.name;
        // The project exists once something is applied to it; nothing to stage.
        self.stage(&name, req.commit, |_| Ok(())).await?;
        Ok(Response::new(()))
    }

    async fn get_project(self, req: Request<r::GetProjectRequest>) -> Result<Response<fc::Project>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().name).await?;
        let name = req.into_inner().name;
        snap.feast()
            .map(|(f, _)| Response::new(f.project_object()))
            .ok_or_else(|| {
                not_found(
                    "ProjectObjectNotFoundException",
                    format!("Project {name} does not exist"),
                )
            })
    }

    async fn list_projects(
        self,
        req: Request<r::ListProjectsRequest>,
    ) -> Result<Response<r::ListProjectsResponse>, Status> {
        let served = self.served().to_string();
        let snap = self.snapshot(&req, &served).await?;
        Ok(Response::new(r::ListProjectsResponse {
            projects: snap.feast().map(|(f, _)| f.project_object()).into_iter().collect(),
            ..Default::default()
        }))
    }

    async fn delete_project(self, req: Request<r::DeleteProjectRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "tear the project down")?;
        let name = req.into_inner().name;
        self.check_project(&name)?;
        let mut pending = self.pending.lock().await;
        *pending = None;
        self.store.teardown().await.map_err(crate::flight::status)?;
        Ok(Response::new(()))
    }

    async fn list_project_metadata(
        self,
        req: Request<r::ListProjectMetadataRequest>,
    ) -> Result<Response<r::ListProjectMetadataResponse>, Status> {
        let snap = self.snapshot(&req, &req.get_ref().project).await?;
        let project_metadata = snap.feast().map(|(f, _)| f.project_metadata()).into_iter().collect();
        Ok(Response::new(r::ListProjectMetadataResponse { project_metadata }))
    }

    async fn get_infra(self, req: Request<r::GetInfraRequest>) -> Result<Response<fc::Infra>, Status> {
        let _ = self.snapshot(&req, &req.get_ref().project).await?;
        Ok(Response::new(fc::Infra::default()))
    }

    async fn update_infra(self, req: Request<r::UpdateInfraRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        self.check_project(&req.get_ref().project)?;
        Ok(Response::new(()))
    }

    async fn proto(self, req: Request<()>) -> Result<Response<fc::Registry>, Status> {
        let served = self.served().to_string();
        let snap = self.snapshot(&req, &served).await?;
        Ok(Response::new(
            snap.feast()
                .map(|(f, s)| f.registry(&s.materializations))
                .unwrap_or_default(),
        ))
    }

    async fn refresh(self, req: Request<r::RefreshRequest>) -> Result<Response<()>, Status> {
        let served = self.served().to_string();
        let _ = self.snapshot(&req, &served).await?;
        Ok(Response::new(()))
    }

    async fn commit(self, req: Request<()>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let mut pending = self.pending.lock().await;
        self.commit_locked(&mut pending).await?;
        Ok(Response::new(()))
    }

    // Kept Feast objects: saved datasets, validation references, permissions -----------------

    async fn apply_kept<T: Kept + Send + 'static>(
        &self,
        object: Option<T>,
        project: String,
        commit: bool,
    ) -> Result<Response<()>, Status> {
        let mut object = required(object, T::LABEL)?;
        if object.name().is_empty() {
            return Err(Status::invalid_argument(detail(
                "FeastError",
                &format!("{} has no name", T::LABEL),
            )));
        }
        if let Some(p) = object.project_mut() {
            in_project(&project, p);
        }
        let kept = object.kept();
        self.stage(&project, commit, move |p| {
            p.doc.put_feast_object(kept);
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn get_kept<T: Kept, R>(&self, req: &Request<R>, name: &str, project: &str) -> Result<Response<T>, Status> {
        let snap = self.snapshot(req, project).await?;
        snap.state
            .as_deref()
            .and_then(|s| s.doc.feast_object(T::KIND, name))
            .and_then(T::from_kept)
            .map(Response::new)
            .ok_or_else(|| {
                not_found(
                    T::NOT_FOUND,
                    format!("{} {name} does not exist in project {project}", T::LABEL),
                )
            })
    }

    async fn list_kept<T: Kept, R>(&self, req: &Request<R>, project: &str) -> Result<Vec<T>, Status> {
        let snap = self.snapshot(req, project).await?;
        Ok(snap.state.as_deref().map_or_else(Vec::new, |s| {
            s.doc
                .feast_objects
                .iter()
                .filter(|o| o.kind == T::KIND)
                .filter_map(T::from_kept)
                .collect()
        }))
    }

    async fn delete_kept<T: Kept>(&self, name: String, project: String, commit: bool) -> Result<Response<()>, Status> {
        let message = format!("{} {name} does not exist in project {project}", T::LABEL);
        self.stage(&project, commit, move |p| {
            if p.doc.remove_feast_object(T::KIND, &name) {
                Ok(())
            } else {
                Err(not_found(T::NOT_FOUND, message))
            }
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn apply_saved_dataset(self, req: Request<r::ApplySavedDatasetRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Write, "save a dataset")?;
        let req = req.into_inner();
        self.apply_kept(req.saved_dataset, req.project, req.commit).await
    }

    async fn get_saved_dataset(
        self,
        req: Request<r::GetSavedDatasetRequest>,
    ) -> Result<Response<fc::SavedDataset>, Status> {
        let (name, project) = (req.get_ref().name.clone(), req.get_ref().project.clone());
        self.get_kept(&req, &name, &project).await
    }

    async fn list_saved_datasets(
        self,
        req: Request<r::ListSavedDatasetsRequest>,
    ) -> Result<Response<r::ListSavedDatasetsResponse>, Status> {
        let project = req.get_ref().project.clone();
        let tags = req.get_ref().tags.clone();
        let saved_datasets = self
            .list_kept::<fc::SavedDataset, _>(&req, &project)
            .await?
            .into_iter()
            .filter(|d| tagged(&d.spec.as_ref().map(|s| s.tags.clone()).unwrap_or_default(), &tags))
            .collect();
        Ok(Response::new(r::ListSavedDatasetsResponse {
            saved_datasets,
            ..Default::default()
        }))
    }

    async fn delete_saved_dataset(self, req: Request<r::DeleteSavedDatasetRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Write, "delete a saved dataset")?;
        let r::DeleteSavedDatasetRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_kept::<fc::SavedDataset>(name, project, commit).await
    }

    async fn apply_validation_reference(
        self,
        req: Request<r::ApplyValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Write, "save a validation reference")?;
        let req = req.into_inner();
        self.apply_kept(req.validation_reference, req.project, req.commit).await
    }

    async fn get_validation_reference(
        self,
        req: Request<r::GetValidationReferenceRequest>,
    ) -> Result<Response<fc::ValidationReference>, Status> {
        let (name, project) = (req.get_ref().name.clone(), req.get_ref().project.clone());
        self.get_kept(&req, &name, &project).await
    }

    async fn list_validation_references(
        self,
        req: Request<r::ListValidationReferencesRequest>,
    ) -> Result<Response<r::ListValidationReferencesResponse>, Status> {
        let project = req.get_ref().project.clone();
        let validation_references = self.list_kept(&req, &project).await?;
        Ok(Response::new(r::ListValidationReferencesResponse {
            validation_references,
            ..Default::default()
        }))
    }

    async fn delete_validation_reference(
        self,
        req: Request<r::DeleteValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Write, "delete a validation reference")?;
        let r::DeleteValidationReferenceRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_kept::<fc::ValidationReference>(name, project, commit).await
    }

    async fn apply_permission(self, req: Request<r::ApplyPermissionRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let req = req.into_inner();
        self.apply_kept(req.permission, req.project, req.commit).await
    }

    async fn get_permission(self, req: Request<r::GetPermissionRequest>) -> Result<Response<fc::Permission>, Status> {
        let (name, project) = (req.get_ref().name.clone(), req.get_ref().project.clone());
        self.get_kept(&req, &name, &project).await
    }

    async fn list_permissions(
        self,
        req: Request<r::ListPermissionsRequest>,
    ) -> Result<Response<r::ListPermissionsResponse>, Status> {
        let project = req.get_ref().project.clone();
        let tags = req.get_ref().tags.clone();
        let permissions = self
            .list_kept::<fc::Permission, _>(&req, &project)
            .await?
            .into_iter()
            .filter(|p| tagged(&p.spec.as_ref().map(|s| s.tags.clone()).unwrap_or_default(), &tags))
            .collect();
        Ok(Response::new(r::ListPermissionsResponse {
            permissions,
            ..Default::default()
        }))
    }

    async fn delete_permission(self, req: Request<r::DeletePermissionRequest>) -> Result<Response<()>, Status> {
        self.writer(&req, Role::Admin, "change the registry")?;
        let r::DeletePermissionRequest {
            name, project, commit, ..
        } = req.into_inner();
        self.delete_kept::<fc::Permission>(name, project, commit).await
    }
}

/// The gRPC path prefix of the service.
const PREFIX: &str = "/feast.registry.RegistryServer/";

impl tonic::server::NamedService for RegistryServer {
    const NAME: &'static str = "feast.registry.RegistryServer";
}

/// Answers one unary call with `$method` (request and response types inferred from it).
macro_rules! unary {
    ($this:expr, $req:expr, $($method:tt)+) => {{
        let this = $this;
        let req = $req;
        Box::pin(async move {
            let svc = Unary(move |r| this.clone().$($method)+(r));
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(svc, req).await)
        })
    }};
}

/// Answers a call with a fixed error status.
fn refuse(status: Status) -> BoxFuture<'static, Result<http::Response<tonic::body::Body>, Infallible>> {
    Box::pin(async move { Ok(status.into_http()) })
}

impl<B> tower::Service<http::Request<B>> for RegistryServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        let method = req.uri().path().strip_prefix(PREFIX).unwrap_or("").to_string();
        match method.as_str() {
            "ApplyEntity" => unary!(this, req, apply_entity),
            "GetEntity" => unary!(this, req, get_entity),
            "ListEntities" => unary!(this, req, list_entities),
            "DeleteEntity" => unary!(this, req, delete_entity),
            "ApplyDataSource" => unary!(this, req, apply_data_source),
            "GetDataSource" => unary!(this, req, get_data_source),
            "ListDataSources" => unary!(this, req, list_data_sources),
            "DeleteDataSource" => unary!(this, req, delete_data_source),
            "ApplyFeatureView" => unary!(this, req, apply_feature_view),
            "DeleteFeatureView" => unary!(this, req, delete_feature_view),
            "GetFeatureView" => unary!(this, req, get_feature_view),
            "ListFeatureViews" => unary!(this, req, list_feature_views),
            "GetStreamFeatureView" => unary!(this, req, get_stream_feature_view),
            "ListStreamFeatureViews" => unary!(this, req, list_stream_feature_views),
            "GetOnDemandFeatureView" => unary!(this, req, get_on_demand_feature_view),
            "ListOnDemandFeatureViews" => unary!(this, req, list_on_demand_feature_views),
            "GetAnyFeatureView" => unary!(this, req, get_any_feature_view),
            "ListAllFeatureViews" => unary!(this, req, list_all_feature_views),
            "GetLabelView" => unary!(this, req, get_label_view),
            "ListLabelViews" => unary!(this, req, list_label_views),
            "ApplyFeatureService" => unary!(this, req, apply_feature_service),
            "GetFeatureService" => unary!(this, req, get_feature_service),
            "ListFeatureServices" => unary!(this, req, list_feature_services),
            "DeleteFeatureService" => unary!(this, req, delete_feature_service),
            "ApplyMaterialization" => unary!(this, req, apply_materialization),
            "ApplyProject" => unary!(this, req, apply_project),
            "GetProject" => unary!(this, req, get_project),
            "ListProjects" => unary!(this, req, list_projects),
            "DeleteProject" => unary!(this, req, delete_project),
            "ListProjectMetadata" => unary!(this, req, list_project_metadata),
            "GetInfra" => unary!(this, req, get_infra),
            "UpdateInfra" => unary!(this, req, update_infra),
            "Proto" => unary!(this, req, proto),
            "Refresh" => unary!(this, req, refresh),
            "Commit" => unary!(this, req, commit),
            "ApplySavedDataset" => unary!(this, req, apply_saved_dataset),
            "GetSavedDataset" => unary!(this, req, get_saved_dataset),
            "ListSavedDatasets" => unary!(this, req, list_saved_datasets),
            "DeleteSavedDataset" => unary!(this, req, delete_saved_dataset),
            "ApplyValidationReference" => unary!(this, req, apply_validation_reference),
            "GetValidationReference" => unary!(this, req, get_validation_reference),
            "ListValidationReferences" => unary!(this, req, list_validation_references),
            "DeleteValidationReference" => unary!(this, req, delete_validation_reference),
            "ApplyPermission" => unary!(this, req, apply_permission),
            "GetPermission" => unary!(this, req, get_permission),
            "ListPermissions" => unary!(this, req, list_permissions),
            "DeletePermission" => unary!(this, req, delete_permission),
            "CreateDatasetFromRetrieval" | "GetDatasetData" | "GetDatasetJobStatus" | "ListDatasetJobs" => {
                refuse(unstored("dataset jobs"))
            }
            other => refuse(Status::unimplemented(format!(
                "{PREFIX}{other} is not offered by Larder's registry server"
            ))),
        }
    }
}
