//! Pre-aggregated time tiles of a stream feature view with aggregations, per entity key.
//!
//! Each key's state is one online-store row: for each tile (of [`FeatureView::tile_seconds`],
//! aligned on the epoch) and each aggregated column, the count, sum, min and max of the events
//! in it, plus, per stream partition, the offset of the last event applied. A read at time `T`
//! combines the tiles inside each aggregation's window (see [`Aggregation`]), so the value is
//! exact for the documented window at any read time, and the state stays bounded: tiles older
//! than the longest window before the newest event are dropped.
//!
//! Replays (a consumer restarted from its last committed offset) apply nothing twice: an event
//! whose offset is at or below the row's recorded offset for its partition is skipped. The
//! offsets live in the same row as the tiles, so they are written atomically together.

use std::collections::BTreeMap;

use larder_registry::{AggregationFunction, FeatureView};

use crate::error::{Error, Result};
use crate::online::OnlineRow;
use crate::value::Value;

const TILES: &str = "__tiles";
const OFFSETS: &str = "__offsets";

/// Running aggregates of one column in one tile.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Cell {
    const EMPTY: Cell = Cell {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn merge(&mut self, o: &Cell) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// The tiles of one entity key.
#[derive(Debug, Clone, PartialEq)]
pub struct TileState {
    /// Aggregated columns, in a fixed order.
    columns: Vec<String>,
    /// Tile start (seconds) -> one cell per column.
    tiles: BTreeMap<i64, Vec<Cell>>,
    /// Partition -> last applied offset.
    offsets: BTreeMap<i32, i64>,
    /// Newest event time seen (ns).
    pub newest_ns: i64,
}

/// The distinct aggregated columns of a view, in first-use order.
pub fn columns_of(view: &FeatureView) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for a in &view.aggregations {
        if !cols.contains(&a.column) {
            cols.push(a.column.clone());
        }
    }
    cols
}

fn list_i64(row: &OnlineRow, name: &str) -> Result<Vec<i64>> {
    match row.get(name) {
        Some(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Int64(x) => Ok(*x),
                other => Err(Error::Internal(format!("tile field {name}: unexpected {other:?}"))),
            })
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(other) => Err(Error::Internal(format!("tile field {name}: unexpected {other:?}"))),
    }
}

fn list_f64(row: &OnlineRow, name: &str) -> Result<Vec<f64>> {
    match row.get(name) {
        Some(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Double(x) => Ok(*x),
                other => Err(Error::Internal(format!("tile field {name}: unexpected {other:?}"))),
            })
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(other) => Err(Error::Internal(format!("tile field {name}: unexpected {other:?}"))),
    }
}

impl TileState {
    /// An empty state for `view`.
    pub fn new(view: &FeatureView) -> Self {
        TileState {
            columns: columns_of(view),
            tiles: BTreeMap::new(),
            offsets: BTreeMap::new(),
            newest_ns: i64::MIN,
        }
    }

    /// Decodes a stored row (or starts empty when there is none).
    pub fn from_row(view: &FeatureView, row: Option<&OnlineRow>) -> Result<Self> {
        let mut state = TileState::new(view);
        let Some(row) = row else { return Ok(state) };
        state.newest_ns = row.event_ts;
        let starts = list_i64(row, TILES)?;
        let mut cells = vec![vec![Cell::EMPTY; state.columns.len()]; starts.len()];
        for (c, name) in state.columns.iter().enumerate() {
            let count = list_i64(row, &format!("__count:{name}"))?;
            let sum = list_f64(row, &format!("__sum:{name}"))?;
            let min = list_f64(row, &format!("__min:{name}"))?;
            let max = list_f64(row, &format!("__max:{name}"))?;
            if count.is_empty() {
                continue; // a column added to the view since: no events counted yet
            }
            if [count.len(), sum.len(), min.len(), max.len()] != [starts.len(); 4] {
                return Err(Error::Internal(format!("tiles of column {name}: lengths differ")));
            }
            for (i, cell) in cells.iter_mut().enumerate() {
                cell[c] = Cell {
                    count: count[i],
                    sum: sum[i],
                    min: if count[i] > 0 { min[i] } else { f64::INFINITY },
                    max: if count[i] > 0 { max[i] } else { f64::NEG_INFINITY },
                };
            }
        }
        state.tiles = starts.into_iter().zip(cells).collect();
        let offsets = list_i64(row, OFFSETS)?;
        for pair in offsets.chunks_exact(2) {
            state.offsets.insert(pair[0] as i32, pair[1]);
        }
        Ok(state)
    }

    /// Encodes the state as an online row for `key`; `written_ns` orders rewrites of a row
    /// whose newest event did not change.
    pub fn to_row(&self, key: Vec<u8>, written_ns: i64) -> OnlineRow {
        let ints = |v: Vec<i64>| Value::List(v.into_iter().map(Value::Int64).collect());
        let dbls = |v: Vec<f64>| Value::List(v.into_iter().map(Value::Double).collect());
        let mut values = vec![(TILES.to_string(), ints(self.tiles.keys().copied().collect()))];
        for (c, name) in self.columns.iter().enumerate() {
            let cells: Vec<&Cell> = self.tiles.values().map(|cells| &cells[c]).collect();
            let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
            values.push((format!("__count:{name}"), ints(cells.iter().map(|x| x.count).collect())));
            values.push((format!("__sum:{name}"), dbls(cells.iter().map(|x| x.sum).collect())));
            values.push((
                format!("__min:{name}"),
                dbls(cells.iter().map(|x| finite(x.min)).collect()),
            ));
            values.push((
                format!("__max:{name}"),
                dbls(cells.iter().map(|x| finite(x.max)).collect()),
            ));
        }
        values.push((
            OFFSETS.to_string(),
            ints(self.offsets.iter().flat_map(|(p, o)| [i64::from(*p), *o]).collect()),
        ));
        OnlineRow {
            key,
            event_ts: self.newest_ns.max(0),
            created_ts: Some(written_ns),
            values,
        }
    }

    /// Whether the event at `(partition, offset)` was applied already.
    pub fn applied(&self, partition: i32, offset: i64) -> bool {
        self.offsets.get(&partition).is_some_and(|o| offset <= *o)
    }

    /// Adds one event: its time (ns), the value of each aggregated column (in
    /// [`columns_of`] order; `None` for null), and where it came from (`None` for events
    /// without an offset, e.g. pushed ones).
    pub fn add(&mut self, view: &FeatureView, event_ns: i64, values: &[Option<f64>], origin: Option<(i32, i64)>) {
        let tile = view.tile_seconds();
        let start = event_ns.div_euclid(1_000_000_000).div_euclid(tile) * tile;
        let cells = self
            .tiles
            .entry(start)
            .or_insert_with(|| vec![Cell::EMPTY; self.columns.len()]);
        for (cell, v) in cells.iter_mut().zip(values) {
            if let Some(x) = v {
                cell.add(*x);
            }
        }
        self.newest_ns = self.newest_ns.max(event_ns);
        if let Some((p, o)) = origin {
            let last = self.offsets.entry(p).or_insert(o);
            *last = (*last).max(o);
        }
    }

    /// Drops tiles that no window of a read at or after the newest event can reach.
    pub fn prune(&mut self, view: &FeatureView) {
        if self.newest_ns == i64::MIN {
            return;
        }
        let tile = view.tile_seconds();
        let newest = self.newest_ns.div_euclid(1_000_000_000);
        let oldest_needed = view
            .aggregations
            .iter()
            .map(|a| a.window_start(newest))
            .min()
            .unwrap_or(newest)
            .div_euclid(tile)
            * tile;
        self.tiles = self.tiles.split_off(&oldest_needed);
    }

    /// The value of every aggregation of `view` at time `t_ns`, as `(output name, value)`:
    /// the tiles from the aggregation's window start up to the tile holding `t_ns`.
    pub fn aggregate(&self, view: &FeatureView, t_ns: i64) -> Vec<(String, Value)> {
        let t = t_ns.div_euclid(1_000_000_000);
        view.aggregations
            .iter()
            .map(|a| {
                let c = self.columns.iter().position(|x| x == &a.column).unwrap_or(0);
                let mut total = Cell::EMPTY;
                for (_, cells) in self.tiles.range(a.window_start(t)..=t) {
                    if let Some(cell) = cells.get(c) {
                        total.merge(cell);
                    }
                }
                let value = match (a.function, total.count) {
                    (AggregationFunction::Count, n) => Value::Int64(n),
                    (_, 0) => Value::Null,
                    (AggregationFunction::Sum, _) => Value::Double(total.sum),
                    (AggregationFunction::Mean, n) => Value::Double(total.sum / n as f64),
                    (AggregationFunction::Min, _) => Value::Double(total.min),
                    (AggregationFunction::Max, _) => Value::Double(total.max),
                };
                (a.output_name(), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use larder_registry::{Aggregation, Field, ValueType};

    use super::*;

    fn view() -> FeatureView {
        let agg = |f, w, s| Aggregation {
            column: "amount".into(),
            function: f,
            time_window_seconds: w,
            slide_interval_seconds: s,
            name: None,
        };
        FeatureView {
            name: "tx".into(),
            entities: vec!["user".into()],
            features: vec![Field::new("sum_amount_10m", ValueType::Double)],
            entity_columns: vec![],
            source: "k".into(),
            ttl_seconds: None,
            aggregations: vec![
                agg(AggregationFunction::Sum, 600, Some(60)),
                agg(AggregationFunction::Count, 600, Some(60)),
                agg(AggregationFunction::Max, 3600, Some(300)),
                agg(AggregationFunction::Mean, 3600, Some(300)),
            ],
            online: true,
            description: String::new(),
            tags: Default::default(),
            owner: String::new(),
        }
    }

    const S: i64 = 1_000_000_000;

    /// The aggregate by brute force over the events, with the documented window.
    fn naive(v: &FeatureView, events: &[(i64, f64)], t_ns: i64) -> Vec<(String, Value)> {
        v.aggregations
            .iter()
            .map(|a| {
                let lo = a.window_start(t_ns.div_euclid(S)) * S;
                let xs: Vec<f64> = events
                    .iter()
                    .filter(|(ts, _)| *ts >= lo && *ts <= t_ns)
                    .map(|e| e.1)
                    .collect();
                let value = match a.function {
                    AggregationFunction::Count => Value::Int64(xs.len() as i64),
                    _ if xs.is_empty() => Value::Null,
                    AggregationFunction::Sum => Value::Double(xs.iter().sum()),
                    AggregationFunction::Mean => Value::Double(xs.iter().sum::<f64>() / xs.len() as f64),
                    AggregationFunction::Min => Value::Double(xs.iter().cloned().fold(f64::INFINITY, f64::min)),
                    AggregationFunction::Max => Value::Double(xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
                };
                (a.output_name(), value)
            })
            .collect()
    }

    #[test]
    fn tiles_give_the_naive_window_aggregate_and_survive_a_round_trip() {
        let v = view();
        let mut state = TileState::new(&v);
        let base = 1_700_000_000 * S;
        // Whole-number amounts keep floating-point sums exact in any order.
        let events: Vec<(i64, f64)> = (0..200).map(|i| (base + i * 37 * S, (i % 13) as f64)).collect();
        for (i, (ts, x)) in events.iter().enumerate() {
            state.add(&v, *ts, &[Some(*x)], Some((0, i as i64)));
        }
        let last = events.last().unwrap().0;
        // Read at `t` with the events that happened by `t` (the online store at time `t`).
        for t in [
            last,
            last + 59 * S,
            last + 61 * S,
            base + 3000 * S,
            base + 3600 * S,
            last + 900 * S,
        ] {
            let known: Vec<(i64, f64)> = events.iter().copied().filter(|(ts, _)| *ts <= t).collect();
            let mut at_t = TileState::new(&v);
            for (i, (ts, x)) in known.iter().enumerate() {
                at_t.add(&v, *ts, &[Some(*x)], Some((0, i as i64)));
            }
            assert_eq!(at_t.aggregate(&v, t), naive(&v, &known, t), "at {t}");
        }
        let row = state.to_row(b"k".to_vec(), 1);
        let back = TileState::from_row(&v, Some(&row)).unwrap();
        assert_eq!(back.aggregate(&v, last), state.aggregate(&v, last));
        assert!(back.applied(0, 199) && !back.applied(0, 200) && !back.applied(1, 0));
        // Pruning keeps every tile a read at or after the newest event needs.
        let mut pruned = back.clone();
        pruned.prune(&v);
        assert!(pruned.tiles.len() < back.tiles.len());
        for t in [last, last + 120 * S, last + 3599 * S] {
            assert_eq!(pruned.aggregate(&v, t), state.aggregate(&v, t));
        }
    }

    #[test]
    fn an_empty_window_counts_zero_and_nulls_the_rest() {
        let v = view();
        let state = TileState::from_row(&v, None).unwrap();
        let got = state.aggregate(&v, 1_700_000_000 * S);
        assert_eq!(got[1], ("count_amount_10m".into(), Value::Int64(0)));
        assert_eq!(got[0].1, Value::Null);
    }
}
