//! Compiled online plans: what a `get_online_features` request shape (its feature list or
//! service and `full_feature_names`) needs, resolved once per registry state — views, key
//! columns and their types, one slot per output, on-demand inputs — so that a request only parses
//! its entities, reads and fills values.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use larder_registry::{FeatureView, OnDemandFeatureView, RegistryDoc, RegistryState, ValueType};

use super::{check_collisions, resolve_with_odfvs, FeatureSelection};
use crate::error::{Error, Result};
use crate::online::Projection;
use crate::transform::{self, InputOrigin};

/// A request shape compiled against one registry state.
#[derive(Debug)]
pub struct OnlinePlan {
    /// The views read, each once: the requested ones, then the inputs of on-demand views.
    pub(crate) reads: Vec<PlannedRead>,
    /// The join keys the reads need, with their types and the first view that needs each (for
    /// messages).
    pub(crate) join_keys: Vec<JoinKey>,
    /// The distinct key-column combinations of the reads: views keyed alike share their
    /// serialized keys.
    pub(crate) key_sets: Vec<KeySet>,
    /// Request-data fields of on-demand views: name, type, the on-demand view needing it.
    pub(crate) request_fields: Vec<(String, ValueType, String)>,
    /// The regular output columns, after the key columns, in request order.
    pub(crate) outputs: Vec<FeatureOutput>,
    /// On-demand views, whose outputs follow the regular ones.
    pub(crate) odfvs: Vec<PlannedOdfv>,
}

/// A join key of a plan.
#[derive(Debug)]
pub(crate) struct JoinKey {
    pub name: String,
    pub dtype: ValueType,
    pub needed_by: String,
}

/// The join keys of one or more views, in the order keys serialize them (by name).
#[derive(Debug, PartialEq)]
pub(crate) struct KeySet {
    /// Indices into [`OnlinePlan::join_keys`], sorted by key name.
    pub columns: Vec<usize>,
    /// The serialized key's part that names the keys (see
    /// [`larder_protocol::key::entity_key_header_into`]).
    pub header: Vec<u8>,
}

/// One view a plan reads.
#[derive(Debug)]
pub(crate) struct PlannedRead {
    pub view: FeatureView,
    /// Index into [`OnlinePlan::key_sets`].
    pub key_set: usize,
    /// The features read of each row (outputs and on-demand inputs), in slot order.
    pub projection: Projection,
    /// The ttl in ns, when the view has one and ttls are enforced on it (never for aggregated
    /// views: their windows bound the age of what they aggregate).
    pub ttl_ns: Option<i64>,
    /// Stored as time tiles, combined into windows at read time.
    pub aggregated: bool,
}

/// One regular output column: slot `slot` of read `read`.
#[derive(Debug)]
pub(crate) struct FeatureOutput {
    pub read: usize,
    pub slot: usize,
    pub name: String,
    pub dtype: ValueType,
}

/// Where an on-demand input column comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InputSource {
    /// Index into [`OnlinePlan::request_fields`].
    Request(usize),
    /// Slot `slot` of read `read`.
    Feature { read: usize, slot: usize },
}

/// An on-demand view of a plan.
#[derive(Debug)]
pub(crate) struct PlannedOdfv {
    pub odfv: OnDemandFeatureView,
    /// Input columns: type and source.
    pub inputs: Vec<(ValueType, InputSource)>,
    pub input_schema: SchemaRef,
    /// Requested outputs: feature, type, output name.
    pub outputs: Vec<(String, ValueType, String)>,
}

impl OnlinePlan {
    /// Compiles a request shape against `doc`: the features must exist, be online, number at
    /// most `max_features` and (without full feature names) not collide.
    pub fn compile(
        doc: &RegistryDoc,
        project: &str,
        sel: &FeatureSelection,
        full_feature_names: bool,
        max_features: usize,
    ) -> Result<OnlinePlan> {
        let (views, odfvs) = resolve_with_odfvs(doc, project, sel)?;
        for r in &views {
            if !r.view.online {
                return Err(Error::invalid(
                    "features",
                    format!("feature view {} is not online (online=False)", r.view.name),
                ));
            }
        }
        let n_features: usize = views.iter().map(|v| v.features.len()).sum::<usize>()
            + odfvs.iter().map(|o| o.features.len()).sum::<usize>();
        if n_features > max_features {
            return Err(Error::invalid(
                "features",
                format!("{n_features} features requested; the limit is {max_features}"),
            ));
        }
        check_collisions(&views, &odfvs, full_feature_names)?;

        let mut builder = Builder::default();
        let mut outputs = Vec::with_capacity(n_features);
        for v in &views {
            let read = builder.read(v.view);
            for f in &v.features {
                let slot = builder.slot(read, f);
                let name = if full_feature_names {
                    format!("{}__{f}", v.display)
                } else {
                    f.clone()
                };
                let dtype = v
                    .view
                    .feature(f)
                    .map(|x| x.dtype)
                    .ok_or_else(|| Error::Internal(format!("feature view {}: no feature {f}", v.view.name)))?;
                outputs.push(FeatureOutput {
                    read,
                    slot,
                    name,
                    dtype,
                });
            }
        }
        let mut planned_odfvs = Vec::with_capacity(odfvs.len());
        for o in &odfvs {
            let columns = transform::input_columns(doc, o.odfv)?;
            let mut inputs = Vec::with_capacity(columns.len());
            for c in &columns {
                let source = match &c.origin {
                    InputOrigin::Request => InputSource::Request(builder.request_field(c, &o.odfv.name)),
                    InputOrigin::Feature { view, feature } => {
                        let fv = doc
                            .feature_view(view)
                            .ok_or_else(|| Error::view_not_found(view, project))?;
                        let read = builder.read(fv);
                        InputSource::Feature {
                            read,
                            slot: builder.slot(read, feature),
                        }
                    }
                };
                inputs.push((c.dtype, source));
            }
            let mut outs = Vec::with_capacity(o.features.len());
            for f in &o.features {
                let dtype = o
                    .odfv
                    .feature(f)
                    .map(|x| x.dtype)
                    .ok_or_else(|| Error::Internal(format!("no output {f}")))?;
                let name = if full_feature_names {
                    format!("{}__{f}", o.display)
                } else {
                    f.clone()
                };
                outs.push((f.clone(), dtype, name));
            }
            let online: Vec<transform::InputColumn> = columns
                .iter()
                .map(|c| transform::InputColumn {
                    dtype: transform::online_input_type(c.dtype),
                    ..c.clone()
                })
                .collect();
            planned_odfvs.push(PlannedOdfv {
                odfv: o.odfv.clone(),
                inputs,
                input_schema: transform::input_schema(&online),
                outputs: outs,
            });
        }
        Ok(builder.finish(outputs, planned_odfvs))
    }

    /// How many output columns follow the key columns.
    pub fn output_count(&self) -> usize {
        self.outputs.len() + self.odfvs.iter().map(|o| o.outputs.len()).sum::<usize>()
    }
}

/// Collects the reads, key columns and slots of a plan while it is compiled.
#[derive(Default)]
struct Builder {
    reads: Vec<(FeatureView, Vec<String>)>,
    join_keys: Vec<JoinKey>,
    key_sets: Vec<KeySet>,
    read_key_sets: Vec<usize>,
    request_fields: Vec<(String, ValueType, String)>,
}

impl Builder {
    /// The read of `view`, added on first use.
    fn read(&mut self, view: &FeatureView) -> usize {
        if let Some(i) = self.reads.iter().position(|(v, _)| v.name == view.name) {
            return i;
        }
        let mut set = Vec::with_capacity(view.entity_columns.len());
        for k in &view.entity_columns {
            let i = match self.join_keys.iter().position(|j| j.name == k.name) {
                Some(i) => i,
                None => {
                    self.join_keys.push(JoinKey {
                        name: k.name.clone(),
                        dtype: k.dtype,
                        needed_by: view.name.clone(),
                    });
                    self.join_keys.len() - 1
                }
            };
            set.push(i);
        }
        set.sort_by(|a, b| self.join_keys[*a].name.cmp(&self.join_keys[*b].name));
        let set_index = match self.key_sets.iter().position(|s| s.columns == set) {
            Some(i) => i,
            None => {
                let names: Vec<&str> = set.iter().map(|&i| self.join_keys[i].name.as_str()).collect();
                let mut header = Vec::with_capacity(4 + names.iter().map(|n| n.len() + 8).sum::<usize>());
                larder_protocol::key::entity_key_header_into(&names, &mut header);
                self.key_sets.push(KeySet { columns: set, header });
                self.key_sets.len() - 1
            }
        };
        self.reads.push((view.clone(), Vec::new()));
        self.read_key_sets.push(set_index);
        self.reads.len() - 1
    }

    /// The slot of `feature` in read `read`, added on first use.
    fn slot(&mut self, read: usize, feature: &str) -> usize {
        let wanted = &mut self.reads[read].1;
        match wanted.iter().position(|f| f == feature) {
            Some(i) => i,
            None => {
                wanted.push(feature.to_string());
                wanted.len() - 1
            }
        }
    }

    fn request_field(&mut self, c: &transform::InputColumn, odfv: &str) -> usize {
        match self.request_fields.iter().position(|(n, _, _)| *n == c.name) {
            Some(i) => i,
            None => {
                self.request_fields.push((c.name.clone(), c.dtype, odfv.to_string()));
                self.request_fields.len() - 1
            }
        }
    }

    fn finish(self, outputs: Vec<FeatureOutput>, odfvs: Vec<PlannedOdfv>) -> OnlinePlan {
        let reads = self
            .reads
            .into_iter()
            .zip(self.read_key_sets)
            .map(|((view, wanted), key_set)| {
                let aggregated = view.is_aggregated();
                let projection = Projection::new(view.features.iter().map(|f| f.name.as_str()), wanted);
                PlannedRead {
                    ttl_ns: if aggregated {
                        None
                    } else {
                        view.ttl().map(|s| s.saturating_mul(1_000_000_000))
                    },
                    aggregated,
                    key_set,
                    projection,
                    view,
                }
            })
            .collect();
        OnlinePlan {
            reads,
            join_keys: self.join_keys,
            key_sets: self.key_sets,
            request_fields: self.request_fields,
            outputs,
            odfvs,
        }
    }
}

/// The compiled plans of the registry state being served, by request shape. A new registry
/// state empties it; it holds at most [`PlanCache::CAPACITY`] shapes (when full it starts
/// over: clients use a handful of shapes, and a client sending ever new ones only pays the
/// compilation every request paid before plans were cached).
#[derive(Debug, Default)]
pub struct PlanCache {
    inner: RwLock<Generation>,
}

#[derive(Debug, Default)]
struct Generation {
    /// The state the plans were compiled against (held, so that its address is not reused).
    state: Option<Arc<RegistryState>>,
    plans: HashMap<u64, Vec<(PlanKey, Arc<OnlinePlan>)>>,
    len: usize,
}

/// A request shape, as cached.
#[derive(Debug, PartialEq, Eq)]
struct PlanKey {
    selection: SelectionKey,
    full_feature_names: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum SelectionKey {
    Refs(Vec<String>),
    Service(String),
}

impl PlanKey {
    fn of(sel: &FeatureSelection, full_feature_names: bool) -> PlanKey {
        PlanKey {
            selection: match sel {
                FeatureSelection::Refs(r) => SelectionKey::Refs(r.clone()),
                FeatureSelection::Service(s) => SelectionKey::Service(s.clone()),
            },
            full_feature_names,
        }
    }

    fn matches(&self, sel: &FeatureSelection, full_feature_names: bool) -> bool {
        self.full_feature_names == full_feature_names
            && match (&self.selection, sel) {
                (SelectionKey::Refs(a), FeatureSelection::Refs(b)) => a == b,
                (SelectionKey::Service(a), FeatureSelection::Service(b)) => a == b,
                _ => false,
            }
    }
}

/// The hash of a request shape, computed from the request without copying it.
fn shape_hash(sel: &FeatureSelection, full_feature_names: bool) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    full_feature_names.hash(&mut h);
    match sel {
        FeatureSelection::Refs(r) => {
            0u8.hash(&mut h);
            r.hash(&mut h);
        }
        FeatureSelection::Service(s) => {
            1u8.hash(&mut h);
            s.hash(&mut h);
        }
    }
    h.finish()
}

impl PlanCache {
    /// Most request shapes kept per registry state.
    pub const CAPACITY: usize = 1024;

    /// The plan of a request shape against `state`, compiled on first use.
    pub fn get_or_compile(
        &self,
        state: &Arc<RegistryState>,
        project: &str,
        sel: &FeatureSelection,
        full_feature_names: bool,
        max_features: usize,
    ) -> Result<Arc<OnlinePlan>> {
        let hash = shape_hash(sel, full_feature_names);
        if let Ok(g) = self.inner.read() {
            if g.state.as_ref().is_some_and(|s| Arc::ptr_eq(s, state)) {
                if let Some(plan) = g
                    .plans
                    .get(&hash)
                    .and_then(|b| b.iter().find(|(k, _)| k.matches(sel, full_feature_names)))
                {
                    return Ok(Arc::clone(&plan.1));
                }
            }
        }
        let plan = Arc::new(OnlinePlan::compile(
            &state.doc,
            project,
            sel,
            full_feature_names,
            max_features,
        )?);
        if let Ok(mut g) = self.inner.write() {
            if !g.state.as_ref().is_some_and(|s| Arc::ptr_eq(s, state)) {
                *g = Generation {
                    state: Some(Arc::clone(state)),
                    ..Generation::default()
                };
            }
            if g.len >= Self::CAPACITY {
                g.plans.clear();
                g.len = 0;
            }
            let bucket = g.plans.entry(hash).or_default();
            if !bucket.iter().any(|(k, _)| k.matches(sel, full_feature_names)) {
                bucket.push((PlanKey::of(sel, full_feature_names), Arc::clone(&plan)));
                g.len += 1;
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: u64) -> Arc<RegistryState> {
        let doc: RegistryDoc =
            serde_json::from_str(include_str!("../../tests/fixtures/driver_demo_registry.json")).unwrap();
        Arc::new(RegistryState {
            version,
            applied_at: chrono::Utc::now(),
            doc,
            materializations: Default::default(),
        })
    }

    fn refs(r: &[&str]) -> FeatureSelection {
        FeatureSelection::Refs(r.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_shape_compiles_once_per_registry_state() {
        let cache = PlanCache::default();
        let (s1, s2) = (state(1), state(2));
        let sel = refs(&["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"]);
        let a = cache.get_or_compile(&s1, "driver_demo", &sel, false, 100).unwrap();
        let b = cache.get_or_compile(&s1, "driver_demo", &sel, false, 100).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same state, same shape: the cached plan");
        let named = cache.get_or_compile(&s1, "driver_demo", &sel, true, 100).unwrap();
        assert!(!Arc::ptr_eq(&a, &named));
        assert_eq!(named.outputs[0].name, "driver_hourly_stats__conv_rate");
        assert_eq!(a.outputs[0].name, "conv_rate");
        let other_order = refs(&["driver_hourly_stats:acc_rate", "driver_hourly_stats:conv_rate"]);
        let c = cache
            .get_or_compile(&s1, "driver_demo", &other_order, false, 100)
            .unwrap();
        assert_eq!(c.outputs[0].name, "acc_rate");
        let d = cache.get_or_compile(&s2, "driver_demo", &sel, false, 100).unwrap();
        assert!(!Arc::ptr_eq(&a, &d), "a new registry state compiles anew");
    }

    #[test]
    fn views_share_reads_and_keys_and_errors_are_not_cached() {
        let cache = PlanCache::default();
        let s = state(1);
        // One view asked twice (directly and through an on-demand view's input) is read once,
        // its slots the requested feature, then the on-demand view's other inputs.
        let sel = refs(&[
            "driver_hourly_stats:acc_rate",
            "transformed_conv_rate:conv_rate_plus_val",
        ]);
        let plan = cache.get_or_compile(&s, "driver_demo", &sel, false, 100).unwrap();
        assert_eq!(plan.reads.len(), 1);
        assert_eq!(plan.key_sets.len(), 1);
        assert_eq!(
            plan.reads[0].projection.names(),
            ["acc_rate", "conv_rate", "avg_daily_trips"]
        );
        assert_eq!(plan.request_fields.len(), 1);
        assert_eq!(plan.output_count(), 2);
        // Two views of different entities: two reads, two key sets.
        let two = refs(&["driver_hourly_stats:acc_rate", "customer_profile:tier"]);
        let plan = cache.get_or_compile(&s, "driver_demo", &two, false, 100).unwrap();
        assert_eq!((plan.reads.len(), plan.key_sets.len()), (2, 2));
        let bad = refs(&["driver_hourly_stats:nope"]);
        for _ in 0..2 {
            let err = cache.get_or_compile(&s, "driver_demo", &bad, false, 100).unwrap_err();
            assert_eq!(err.status(), 404, "{err}");
        }
        let err = PlanCache::default()
            .get_or_compile(&s, "driver_demo", &sel, false, 1)
            .unwrap_err();
        assert_eq!(err.status(), 422, "{err}");
    }
}
