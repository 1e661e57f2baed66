//! Executing a compiled [`OnlinePlan`] for one request: parse the entity rows, serialize their
//! keys once per key set, read every view in one call, and fill the output columns.

use datafusion::arrow::array::RecordBatch;

use super::plan::{InputSource, OnlinePlan, PlannedRead};
use super::{Column, FieldStatus, OnlineRequest, OnlineResponse, OnlineTtl, ReadOptions};
use crate::error::{Error, Result};
use crate::online::{OnlineRow, OnlineStore, ProjectedRows, ViewRead};
use crate::transform::Transforms;
use crate::value::Value;

/// What a read found for one entity row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Found {
    /// No row for the key.
    Missing,
    /// A row older than the view's ttl, with its event time.
    Stale(i64),
    /// A row to serve, with its event time.
    Fresh(i64),
}

/// Answers a `get_online_features` request shaped as `plan` from the online store; on-demand
/// views are computed from their inputs (read in the same call) and the request data.
pub async fn get_online_features(
    plan: &OnlinePlan,
    project: &str,
    online: &dyn OnlineStore,
    transforms: &Transforms,
    req: &OnlineRequest,
    opts: ReadOptions,
) -> Result<OnlineResponse> {
    let n_rows = entity_rows(req, opts.limits.max_entities)?;

    // Join keys, then the request data of on-demand views, parsed before anything is read.
    let mut keys = Vec::with_capacity(plan.join_keys.len());
    for k in &plan.join_keys {
        let Some(raw) = req.entities.get(&k.name) else {
            return Err(Error::invalid(
                format!("entities.{}", k.name),
                format!(
                    "join key `{}` is required by feature view {} but missing from entities",
                    k.name, k.needed_by
                ),
            ));
        };
        let mut vals = Vec::with_capacity(raw.len());
        for (i, j) in raw.iter().enumerate() {
            vals.push(
                Value::from_json_key(j, k.dtype)
                    .map_err(|e| Error::invalid(format!("entities.{}[{i}]", k.name), e.0))?,
            );
        }
        keys.push(vals);
    }
    let mut request_data = Vec::with_capacity(plan.request_fields.len());
    for (name, dtype, odfv) in &plan.request_fields {
        let Some(raw) = req.entities.get(name) else {
            return Err(Error::invalid(
                format!("entities.{name}"),
                format!("request data `{name}` is required by on-demand feature view {odfv} but missing from entities"),
            ));
        };
        let mut vals = Vec::with_capacity(raw.len());
        for (i, j) in raw.iter().enumerate() {
            vals.push(
                larder_protocol::json::value_from_json(j, *dtype)
                    .map_err(|e| Error::invalid(format!("entities.{name}[{i}]"), e))?,
            );
        }
        request_data.push(vals);
    }

    // The key columns, in the request's order.
    let n_outputs = plan.output_count();
    let mut feature_names = Vec::with_capacity(n_outputs + plan.join_keys.len());
    let mut dtypes = Vec::with_capacity(n_outputs + plan.join_keys.len());
    let mut columns = Vec::with_capacity(n_outputs + plan.join_keys.len());
    for name in req.entities.keys() {
        if let Some(k) = plan.join_keys.iter().position(|k| &k.name == name) {
            feature_names.push(name.clone());
            dtypes.push(plan.join_keys[k].dtype);
            columns.push(Column {
                values: keys[k].clone(),
                statuses: vec![FieldStatus::Present; n_rows],
                event_timestamps: vec![0; n_rows],
            });
        }
    }

    let entity_keys = serialize_keys(plan, &keys, n_rows)?;
    let read_started = std::time::Instant::now();
    let mut rows = read(plan, project, online, &entity_keys, opts.now_ns).await?;
    read_histogram(online.kind()).record(read_started.elapsed().as_secs_f64());
    let found: Vec<Vec<Found>> = plan
        .reads
        .iter()
        .zip(&rows)
        .map(|(r, rows)| {
            rows.event_ts
                .iter()
                .map(|ts| match *ts {
                    None => Found::Missing,
                    Some(ts) if is_fresh(r, ts, opts) => Found::Fresh(ts),
                    Some(ts) => Found::Stale(ts),
                })
                .collect()
        })
        .collect();

    // On-demand inputs first (they copy values), then the regular outputs (which take them).
    let mut odfv_inputs = Vec::with_capacity(plan.odfvs.len());
    for o in &plan.odfvs {
        let mut arrays = Vec::with_capacity(o.inputs.len());
        for (dtype, source) in &o.inputs {
            let values: Vec<Value> = match *source {
                InputSource::Request(i) => request_data[i].clone(),
                InputSource::Feature { read, slot } => found[read]
                    .iter()
                    .enumerate()
                    .map(|(row, found)| match found {
                        Found::Fresh(_) => rows[read].values[row * rows[read].width + slot].clone(),
                        _ => Value::Null,
                    })
                    .collect(),
            };
            let array = crate::value::values_to_array(&values, *dtype)?;
            // Widened where Feast's online path widens (see `transform::online_input_type`).
            let want = o.input_schema.field(arrays.len()).data_type();
            arrays.push(if array.data_type() == want {
                array
            } else {
                datafusion::arrow::compute::cast(&array, want).map_err(|e| Error::Internal(e.to_string()))?
            });
        }
        odfv_inputs.push(
            RecordBatch::try_new(std::sync::Arc::clone(&o.input_schema), arrays)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
    }

    for out in &plan.outputs {
        let aggregated = plan.reads[out.read].aggregated;
        let mut col = Column {
            values: Vec::with_capacity(n_rows),
            statuses: Vec::with_capacity(n_rows),
            event_timestamps: Vec::with_capacity(n_rows),
        };
        let block = &mut rows[out.read];
        for (row, found) in found[out.read].iter().enumerate() {
            match *found {
                Found::Fresh(ts) => {
                    let value = std::mem::replace(&mut block.values[row * block.width + out.slot], Value::Null);
                    col.statuses.push(if aggregated && value == Value::Null {
                        FieldStatus::NotFound
                    } else {
                        FieldStatus::Present
                    });
                    col.values.push(value);
                    col.event_timestamps.push(ts);
                }
                Found::Stale(ts) => {
                    col.values.push(Value::Null);
                    col.statuses.push(FieldStatus::OutsideMaxAge);
                    col.event_timestamps.push(ts);
                }
                Found::Missing => {
                    col.values.push(Value::Null);
                    col.statuses.push(FieldStatus::NotFound);
                    col.event_timestamps.push(0);
                }
            }
        }
        feature_names.push(out.name.clone());
        dtypes.push(out.dtype);
        columns.push(col);
    }

    // On-demand views, after the regular features (as Feast orders them).
    for (o, batch) in plan.odfvs.iter().zip(odfv_inputs) {
        let out = transforms.run(&o.odfv, batch).await?;
        for (f, dtype, name) in &o.outputs {
            let array = out
                .column_by_name(f)
                .ok_or_else(|| Error::Internal(format!("on-demand view {}: no output {f}", o.odfv.name)))?;
            let values = crate::value::column_values(array, *dtype)?;
            feature_names.push(name.clone());
            dtypes.push(*dtype);
            // Computed outputs have no event time: Feast answers the epoch for them.
            columns.push(Column {
                values,
                statuses: vec![FieldStatus::Present; n_rows],
                event_timestamps: vec![0; n_rows],
            });
        }
    }
    Ok(OnlineResponse {
        feature_names,
        dtypes,
        columns,
    })
}

/// The handle of `larder_online_read_duration_seconds` for a backend, resolved once.
fn read_histogram(backend: &'static str) -> metrics::Histogram {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static HANDLES: OnceLock<RwLock<HashMap<&'static str, metrics::Histogram>>> = OnceLock::new();
    let handles = HANDLES.get_or_init(RwLock::default);
    if let Some(h) = handles.read().ok().and_then(|m| m.get(backend).cloned()) {
        return h;
    }
    let h = metrics::histogram!("larder_online_read_duration_seconds", "backend" => backend);
    if let Ok(mut m) = handles.write() {
        m.insert(backend, h.clone());
    }
    h
}

/// Checks the entity columns (present, equally long, within the limit) and returns the number
/// of entity rows.
fn entity_rows(req: &OnlineRequest, max_entities: usize) -> Result<usize> {
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
    if n_rows > max_entities {
        return Err(Error::invalid(
            "entities",
            format!("{n_rows} entity rows requested; the limit is {max_entities}"),
        ));
    }
    Ok(n_rows)
}

/// The serialized entity keys of every row, once per key set.
fn serialize_keys(plan: &OnlinePlan, keys: &[Vec<Value>], n_rows: usize) -> Result<Vec<Vec<Vec<u8>>>> {
    let mut out = Vec::with_capacity(plan.key_sets.len());
    for set in &plan.key_sets {
        let columns: Vec<(&str, &[Value])> = set
            .columns
            .iter()
            .map(|&c| (plan.join_keys[c].name.as_str(), keys[c].as_slice()))
            .collect();
        let mut set_keys = Vec::with_capacity(n_rows);
        for row in 0..n_rows {
            let mut key = Vec::with_capacity(set.header.len() + set.columns.len() * 16);
            key.extend_from_slice(&set.header);
            for (name, values) in &columns {
                larder_protocol::key::append_key_value(&values[row], &mut key)
                    .map_err(|e| Error::invalid(format!("entities.{name}"), e.0))?;
            }
            set_keys.push(key);
        }
        out.push(set_keys);
    }
    Ok(out)
}

/// Reads every view of the plan: plain views in one projected read, aggregated views (time
/// tiles) alongside, combined into their windows as of `now_ns`.
async fn read(
    plan: &OnlinePlan,
    project: &str,
    online: &dyn OnlineStore,
    entity_keys: &[Vec<Vec<u8>>],
    now_ns: i64,
) -> Result<Vec<ProjectedRows>> {
    let plain: Vec<ViewRead<'_>> = plan
        .reads
        .iter()
        .filter(|r| !r.aggregated)
        .map(|r| ViewRead {
            view: &r.view.name,
            keys: &entity_keys[r.key_set],
            projection: &r.projection,
        })
        .collect();
    let tiled: Vec<(&str, &[Vec<u8>])> = plan
        .reads
        .iter()
        .filter(|r| r.aggregated)
        .map(|r| (r.view.name.as_str(), entity_keys[r.key_set].as_slice()))
        .collect();
    let (plain_rows, tiled_rows) = match (plain.is_empty(), tiled.is_empty()) {
        (false, true) => (online.read_projected(project, &plain).await?, Vec::new()),
        (true, false) => (Vec::new(), online.read_many(project, &tiled).await?),
        _ => futures::try_join!(
            online.read_projected(project, &plain),
            online.read_many(project, &tiled)
        )?,
    };
    let (mut plain_rows, mut tiled_rows) = (plain_rows.into_iter(), tiled_rows.into_iter());
    let mut out = Vec::with_capacity(plan.reads.len());
    for r in &plan.reads {
        if r.aggregated {
            let rows = tiled_rows.next().unwrap_or_default();
            out.push(windows(r, &entity_keys[r.key_set], rows, now_ns)?);
        } else {
            out.push(
                plain_rows
                    .next()
                    .unwrap_or_else(|| ProjectedRows::new(0, r.projection.len())),
            );
        }
    }
    Ok(out)
}

/// An aggregated view's stored tiles combined into its windows as of `now_ns`: every key gets a
/// row (a key never written aggregates to nulls).
fn windows(r: &PlannedRead, keys: &[Vec<u8>], rows: Vec<Option<OnlineRow>>, now_ns: i64) -> Result<ProjectedRows> {
    let mut out = ProjectedRows::new(keys.len(), r.projection.len());
    for (i, (key, row)) in keys.iter().zip(rows).enumerate() {
        let state = crate::stream::tiles::TileState::from_row(&r.view, row.as_ref())?;
        let aggregated = OnlineRow {
            key: key.clone(),
            event_ts: row.as_ref().map(|r| r.event_ts).unwrap_or(0),
            created_ts: None,
            values: state.aggregate(&r.view, now_ns),
        };
        out.event_ts[i] = Some(aggregated.project_into(&r.projection, out.row_mut(i)));
    }
    Ok(out)
}

/// Whether a row of event time `event_ts` is within its view's ttl.
fn is_fresh(r: &PlannedRead, event_ts: i64, opts: ReadOptions) -> bool {
    if opts.ttl == OnlineTtl::Ignore {
        return true;
    }
    r.ttl_ns.is_none_or(|ttl| opts.now_ns.saturating_sub(event_ts) <= ttl)
}
