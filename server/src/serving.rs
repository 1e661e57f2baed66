//! Online feature retrieval: Feast's `get_online_features`, independent of HTTP.

use datafusion::arrow::array::RecordBatch;
use indexmap::IndexMap;
use larder_registry::{FeatureView, OnDemandFeatureView, RegistryDoc, ValueType};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::key::serialize_entity_key_into;
use crate::online::{OnlineRow, OnlineStore};
use crate::transform::{self, Transforms};
use crate::value::Value;

/// Feast's `FieldStatus` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStatus {
    /// A value was found (possibly a stored null, as Feast reports it).
    Present,
    /// No row for the entity.
    NotFound,
    /// A row exists but is older than the view's ttl; the value is withheld.
    OutsideMaxAge,
}

impl FieldStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Present => "PRESENT",
            FieldStatus::NotFound => "NOT_FOUND",
            FieldStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// Which features to read.
#[derive(Debug, Clone)]
pub enum FeatureSelection {
    /// `view:feature` references.
    Refs(Vec<String>),
    /// A feature service's name.
    Service(String),
}

/// Parameters of a `get_historical_features` request, as the HTTP Arrow endpoint (schema
/// metadata) and Arrow Flight (descriptor command) receive them. Feast 0.67's remote offline
/// store command (`api`, `feature_refs`, ...) parses too.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoricalParams {
    /// Feast's `api` field; only `get_historical_features` is served.
    #[serde(default)]
    pub api: Option<String>,
    /// Feature references (Feast's remote client calls them `feature_refs`).
    #[serde(default, alias = "feature_refs")]
    pub features: Vec<String>,
    /// A feature service, taking precedence over `features`.
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Name outputs `view__feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// The entity dataframe as SQL over the registered sources, instead of uploaded rows.
    #[serde(default)]
    pub entity_df_sql: Option<String>,
}

impl HistoricalParams {
    /// Which features to join.
    pub fn selection(&self) -> FeatureSelection {
        match self.feature_service.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => FeatureSelection::Service(s.to_string()),
            None => FeatureSelection::Refs(self.features.clone()),
        }
    }

    /// The SQL entity dataframe, if one was given.
    pub fn sql(&self) -> Option<&str> {
        self.entity_df_sql.as_deref().filter(|s| !s.trim().is_empty())
    }
}

/// A `get_online_features` request, as parsed from Feast's JSON.
#[derive(Debug, Clone)]
pub struct OnlineRequest {
    /// Features to read.
    pub features: FeatureSelection,
    /// Columnar entity rows: join key (or request field) -> values, in request order.
    pub entities: IndexMap<String, Vec<Json>>,
    /// Name outputs `view__feature`.
    pub full_feature_names: bool,
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// One value per entity row.
    pub values: Vec<Value>,
    /// One status per entity row.
    pub statuses: Vec<FieldStatus>,
    /// Event time per entity row, ns since the epoch (0 for keys and missing rows).
    pub event_timestamps: Vec<i64>,
}

/// A `get_online_features` answer in Feast's column-major layout.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResponse {
    /// Output names, join keys first.
    pub feature_names: Vec<String>,
    /// `columns[i]` belongs to `feature_names[i]`.
    pub columns: Vec<Column>,
}

/// Limits applied to one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most entity rows per request.
    pub max_entities: usize,
    /// Most features per request.
    pub max_features: usize,
}

/// How one online read is served.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Request limits.
    pub limits: RequestLimits,
    /// Whether ttls are enforced.
    pub ttl: OnlineTtl,
    /// The time the read happens at, ns since the epoch.
    pub now_ns: i64,
}

/// Whether online reads enforce a view's ttl (`online_ttl` in `feature_store.yaml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineTtl {
    /// A value older than its view's ttl is answered `OUTSIDE_MAX_AGE` with a null (as Feast's
    /// Go server does); the default.
    #[default]
    Enforce,
    /// Every stored value is served with its timestamp whatever its age, as Feast's Python
    /// feature server does (for teams migrating from it).
    Ignore,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_entities: 10_000,
            max_features: 1_000,
        }
    }
}

/// A requested view with the features asked of it.
pub(crate) struct ViewRequest<'a> {
    /// The view.
    pub view: &'a FeatureView,
    /// Name used in full feature names (the alias, if a service gave one).
    pub display: String,
    /// Requested features, in request order.
    pub features: Vec<String>,
}

/// Refuses two views contributing the same feature name unless names are qualified.
pub(crate) fn check_collisions(
    views: &[ViewRequest<'_>],
    odfvs: &[OdfvRequest<'_>],
    full_feature_names: bool,
) -> Result<()> {
    if full_feature_names {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    let names = views
        .iter()
        .flat_map(|v| v.features.iter())
        .chain(odfvs.iter().flat_map(|o| o.features.iter()));
    for f in names {
        if !seen.insert(f.as_str()) {
            return Err(Error::invalid(
                "full_feature_names",
                format!("feature name `{f}` is requested from more than one view; set full_feature_names to true"),
            ));
        }
    }
    Ok(())
}

/// Output name of a feature.
pub(crate) fn output_name(view: &ViewRequest<'_>, feature: &str, full_feature_names: bool) -> String {
    if full_feature_names {
        format!("{}__{feature}", view.display)
    } else {
        feature.to_string()
    }
}

/// Requested outputs of one on-demand view.
#[derive(Debug, Clone)]
pub(crate) struct OdfvRequest<'a> {
    /// The view.
    pub odfv: &'a OnDemandFeatureView,
    /// Name used in full feature names.
    pub display: String,
    /// Requested outputs, in request order.
    pub features: Vec<String>,
}

/// Resolves feature references or a service into views and on-demand views with their
/// features, each in request order.
pub(crate) fn resolve_with_odfvs<'a>(
    doc: &'a RegistryDoc,
    project: &str,
    sel: &FeatureSelection,
) -> Result<(Vec<ViewRequest<'a>>, Vec<OdfvRequest<'a>>)> {
    let mut out: Vec<ViewRequest<'a>> = Vec::new();
    let mut odfvs: Vec<OdfvRequest<'a>> = Vec::new();
    let push_odfv =
        |odfv: &'a OnDemandFeatureView, display: &str, feature: &str, odfvs: &mut Vec<OdfvRequest<'a>>| match odfvs
            .iter_mut()
            .find(|r| r.display == display && r.odfv.name == odfv.name)
        {
            Some(r) => {
                if !r.features.iter().any(|f| f == feature) {
                    r.features.push(feature.to_string());
                }
            }
            None => odfvs.push(OdfvRequest {
                odfv,
                display: display.to_string(),
                features: vec![feature.to_string()],
            }),
        };
    let odfv_feature_missing = |feature: &str, view: &str| Error::NotFound {
        class: "FeastObjectNotFoundException",
        message: format!("Feature {feature} does not exist in on demand feature view {view} in project {project}"),
    };
    let push = |view: &'a FeatureView, display: &str, feature: &str, out: &mut Vec<ViewRequest<'a>>| match out
        .iter_mut()
        .find(|r| r.display == display && r.view.name == view.name)
    {
        Some(r) => {
            if !r.features.iter().any(|f| f == feature) {
                r.features.push(feature.to_string());
            }
        }
        None => out.push(ViewRequest {
            view,
            display: display.to_string(),
            features: vec![feature.to_string()],
        }),
    };
    match sel {
        FeatureSelection::Refs(refs) => {
            if refs.is_empty() {
                return Err(Error::invalid("features", "no features specified for retrieval"));
            }
            for (i, r) in refs.iter().enumerate() {
                let Some((view_name, feature)) = r.split_once(':') else {
                    return Err(Error::invalid(
                        format!("features[{i}]"),
                        format!("`{r}` is not a feature reference of the form `view:feature`"),
                    ));
                };
                let view_name = view_name.split_once("@v").map(|(v, _)| v).unwrap_or(view_name);
                let view = match doc.feature_view(view_name) {
                    Some(v) => v,
                    None => match doc.on_demand_feature_view(view_name) {
                        Some(o) => {
                            if !o.features.iter().any(|f| f.name == feature) {
                                return Err(odfv_feature_missing(feature, view_name));
                            }
                            push_odfv(o, view_name, feature, &mut odfvs);
                            continue;
                        }
                        None => return Err(Error::view_not_found(view_name, project)),
                    },
                };
                if view.feature(feature).is_none() {
                    return Err(Error::NotFound {
                        class: "FeastObjectNotFoundException",
                        message: format!(
                            "Feature {feature} does not exist in feature view {view_name} in project {project}"
                        ),
                    });
                }
                push(view, view_name, feature, &mut out);
            }
        }
        FeatureSelection::Service(name) => {
            let service = doc
                .feature_service(name)
                .ok_or_else(|| Error::service_not_found(name, project))?;
            for p in &service.features {
                let display = p.alias.as_deref().unwrap_or(&p.view);
                let view = match doc.feature_view(&p.view) {
                    Some(v) => v,
                    None => match doc.on_demand_feature_view(&p.view) {
                        Some(o) => {
                            let names: Vec<&str> = if p.features.is_empty() {
                                o.features.iter().map(|f| f.name.as_str()).collect()
                            } else {
                                p.features.iter().map(String::as_str).collect()
                            };
                            for f in names {
                                if !o.features.iter().any(|x| x.name == f) {
                                    return Err(odfv_feature_missing(f, &p.view));
                                }
                                push_odfv(o, display, f, &mut odfvs);
                            }
                            continue;
                        }
                        None => return Err(Error::view_not_found(&p.view, project)),
                    },
                };
                if p.features.is_empty() {
                    for f in &view.features {
                        push(view, display, &f.name, &mut out);
                    }
                } else {
                    for f in &p.features {
                        push(view, display, f, &mut out);
                    }
                }
            }
        }
    }
    Ok((out, odfvs))
}

/// Answers a `get_online_features` request from the online store; on-demand views are
/// computed from their inputs (read in the same round trip) and the request data.
pub async fn get_online_features(
    doc: &RegistryDoc,
    project: &str,
    online: &dyn OnlineStore,
    transforms: &Transforms,
    req: &OnlineRequest,
    opts: ReadOptions,
) -> Result<OnlineResponse> {
    let ReadOptions {
        limits,
        ttl: ttl_policy,
        now_ns,
    } = opts;
    let (views, odfvs) = resolve_with_odfvs(doc, project, &req.features)?;
    for r in &views {
        if !r.view.online {
            return Err(Error::invalid(
                "features",
                format!("feature view {} is not online (online=False)", r.view.name),
            ));
        }
    }
    let n_features: usize =
        views.iter().map(|v| v.features.len()).sum::<usize>() + odfvs.iter().map(|o| o.features.len()).sum::<usize>();
    if n_features > limits.max_features {
        return Err(Error::invalid(
            "features",
            format!("{n_features} features requested; the limit is {}", limits.max_features),
        ));
    }
    check_collisions(&views, &odfvs, req.full_feature_names)?;

    // The views to read: the requested ones and the inputs of on-demand views.
    let mut inputs_of = Vec::with_capacity(odfvs.len());
    for o in &odfvs {
        inputs_of.push(transform::input_columns(doc, o.odfv)?);
    }
    let mut read_views: Vec<&FeatureView> = views.iter().map(|v| v.view).collect();
    for cols in &inputs_of {
        for c in cols {
            if let transform::InputOrigin::Feature { view, .. } = &c.origin {
                if !read_views.iter().any(|v| &v.name == view) {
                    let fv = doc
                        .feature_view(view)
                        .ok_or_else(|| Error::view_not_found(view, project))?;
                    read_views.push(fv);
                }
            }
        }
    }

    // Entity rows.
    if req.entities.is_empty() {
        return Err(Error::invalid("entities", "no entities given"));
    }
    let mut n_rows: Option<usize> = None;
    for (k, vals) in &req.entities {
        if vals.is_empty() {
            return Err(Error::invalid(format!("entities.{k}"), "empty list of values"));
        }
        match n_rows {
            None => n_rows = Some(vals.len()),
            Some(n) if n != vals.len() => {
                return Err(Error::invalid(
                    format!("entities.{k}"),
                    format!("has {} values but other entity columns have {n}", vals.len()),
                ))
            }
            _ => {}
        }
    }
    let n_rows = n_rows.unwrap_or(0);
    if n_rows > limits.max_entities {
        return Err(Error::invalid(
            "entities",
            format!("{n_rows} entity rows requested; the limit is {}", limits.max_entities),
        ));
    }

    // Parse every join key column needed, once.
    let mut parsed: IndexMap<String, Vec<Value>> = IndexMap::new();
    for v in &read_views {
        for key_field in &v.entity_columns {
            let k = &key_field.name;
            if parsed.contains_key(k) {
                continue;
            }
            let Some(raw) = req.entities.get(k) else {
                return Err(Error::invalid(
                    format!("entities.{k}"),
                    format!(
                        "join key `{k}` is required by feature view {} but missing from entities",
                        v.name
                    ),
                ));
            };
            let ty: ValueType = key_field.dtype;
            let mut vals = Vec::with_capacity(raw.len());
            for (i, j) in raw.iter().enumerate() {
                vals.push(Value::from_json_key(j, ty).map_err(|e| Error::invalid(format!("entities.{k}[{i}]"), e.0))?);
            }
            parsed.insert(k.clone(), vals);
        }
    }
    // Request data of on-demand views, parsed before anything is read.
    let mut request_data: IndexMap<String, Vec<Value>> = IndexMap::new();
    for (o, cols) in odfvs.iter().zip(&inputs_of) {
        for c in cols.iter().filter(|c| c.origin == transform::InputOrigin::Request) {
            if request_data.contains_key(&c.name) {
                continue;
            }
            let Some(raw) = req.entities.get(&c.name) else {
                return Err(Error::invalid(
                    format!("entities.{}", c.name),
                    format!(
                        "request data `{}` is required by on-demand feature view {} but missing from entities",
                        c.name, o.odfv.name
                    ),
                ));
            };
            let mut vals = Vec::with_capacity(raw.len());
            for (i, j) in raw.iter().enumerate() {
                vals.push(
                    larder_protocol::json::value_from_json(j, c.dtype)
                        .map_err(|e| Error::invalid(format!("entities.{}[{i}]", c.name), e))?,
                );
            }
            request_data.insert(c.name.clone(), vals);
        }
    }

    let mut feature_names = Vec::new();
    let mut columns = Vec::new();
    for (k, _) in &req.entities {
        if let Some(vals) = parsed.get(k) {
            feature_names.push(k.clone());
            columns.push(Column {
                values: vals.clone(),
                statuses: vec![FieldStatus::Present; n_rows],
                event_timestamps: vec![0; n_rows],
            });
        }
    }

    let mut view_keys = Vec::with_capacity(read_views.len());
    for v in &read_views {
        let key_names: Vec<&str> = v.entity_columns.iter().map(|f| f.name.as_str()).collect();
        let mut keys = Vec::with_capacity(n_rows);
        for row in 0..n_rows {
            let pairs: Vec<(&str, &Value)> = key_names.iter().map(|k| (*k, &parsed[*k][row])).collect();
            let mut key = Vec::with_capacity(48);
            serialize_entity_key_into(&pairs, &mut key)?;
            keys.push(key);
        }
        view_keys.push(keys);
    }
    let requests: Vec<(&str, &[Vec<u8>])> = read_views
        .iter()
        .zip(&view_keys)
        .map(|(v, k)| (v.name.as_str(), k.as_slice()))
        .collect();
    let read_started = std::time::Instant::now();
    let mut all_rows = online.read_many(project, &requests).await?;
    metrics::histogram!("larder_online_read_duration_seconds", "backend" => online.kind())
        .record(read_started.elapsed().as_secs_f64());
    // Aggregated stream views store time tiles: combine them into the windows as of now.
    for ((v, rows), keys) in read_views.iter().zip(all_rows.iter_mut()).zip(&view_keys) {
        if v.is_aggregated() {
            for (key, row) in keys.iter().zip(rows.iter_mut()) {
                let state = crate::stream::tiles::TileState::from_row(v, row.as_ref())?;
                let values = state.aggregate(v, now_ns);
                *row = Some(OnlineRow {
                    key: key.clone(),
                    event_ts: row.as_ref().map(|r| r.event_ts).unwrap_or(0),
                    created_ts: None,
                    values,
                });
            }
        }
    }
    let rows_of = |name: &str| -> &[Option<OnlineRow>] {
        read_views
            .iter()
            .position(|v| v.name == name)
            .map(|i| all_rows[i].as_slice())
            .unwrap_or(&[])
    };
    let fresh = |v: &FeatureView, r: &OnlineRow| {
        if v.is_aggregated() || ttl_policy == OnlineTtl::Ignore {
            return true; // the windows bound the age of what is aggregated
        }
        let ttl_ns = v.ttl().map(|s| s.saturating_mul(1_000_000_000));
        ttl_ns.is_none_or(|ttl| now_ns.saturating_sub(r.event_ts) <= ttl)
    };
    for v in &views {
        let rows = rows_of(&v.view.name);
        for f in &v.features {
            let mut col = Column {
                values: Vec::with_capacity(n_rows),
                statuses: Vec::with_capacity(n_rows),
                event_timestamps: Vec::with_capacity(n_rows),
            };
            for row in rows {
                match row {
                    None => {
                        col.values.push(Value::Null);
                        col.statuses.push(FieldStatus::NotFound);
                        col.event_timestamps.push(0);
                    }
                    Some(r) => {
                        col.event_timestamps.push(r.event_ts);
                        if fresh(v.view, r) {
                            let value = r.get(f).cloned().unwrap_or(Value::Null);
                            col.statuses.push(if v.view.is_aggregated() && value == Value::Null {
                                FieldStatus::NotFound
                            } else {
                                FieldStatus::Present
                            });
                            col.values.push(value);
                        } else {
                            col.values.push(Value::Null);
                            col.statuses.push(FieldStatus::OutsideMaxAge);
                        }
                    }
                }
            }
            feature_names.push(if req.full_feature_names {
                format!("{}__{f}", v.display)
            } else {
                f.clone()
            });
            columns.push(col);
        }
    }

    // On-demand views, after the regular features (as Feast orders them).
    for (o, cols) in odfvs.iter().zip(&inputs_of) {
        let mut arrays = Vec::with_capacity(cols.len());
        for c in cols {
            let values: Vec<Value> = match &c.origin {
                transform::InputOrigin::Request => request_data[&c.name].clone(),
                transform::InputOrigin::Feature { view, feature } => {
                    let fv = doc
                        .feature_view(view)
                        .ok_or_else(|| Error::view_not_found(view, project))?;
                    rows_of(view)
                        .iter()
                        .map(|r| match r {
                            Some(r) if fresh(fv, r) => r.get(feature).cloned().unwrap_or(Value::Null),
                            _ => Value::Null,
                        })
                        .collect()
                }
            };
            arrays.push(crate::value::values_to_array(&values, c.dtype)?);
        }
        let batch =
            RecordBatch::try_new(transform::input_schema(cols), arrays).map_err(|e| Error::Internal(e.to_string()))?;
        let out = transforms.run(o.odfv, batch).await?;
        for f in &o.features {
            let dtype = o
                .odfv
                .features
                .iter()
                .find(|x| &x.name == f)
                .map(|x| x.dtype)
                .ok_or_else(|| Error::Internal(format!("no output {f}")))?;
            let array = out
                .column_by_name(f)
                .ok_or_else(|| Error::Internal(format!("on-demand view {}: no output {f}", o.odfv.name)))?;
            let values = crate::value::column_values(array, dtype)?;
            feature_names.push(if req.full_feature_names {
                format!("{}__{f}", o.display)
            } else {
                f.clone()
            });
            // Computed outputs have no event time: Feast answers the epoch for them.
            columns.push(Column {
                values,
                statuses: vec![FieldStatus::Present; n_rows],
                event_timestamps: vec![0; n_rows],
            });
        }
    }
    Ok(OnlineResponse { feature_names, columns })
}
