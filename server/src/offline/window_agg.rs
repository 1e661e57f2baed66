//! Windowed aggregations of stream feature views in training sets, as DataFusion SQL.
//!
//! The window of an entity row at time `T` is [`Aggregation::window_start`]`(T)..=T`, the
//! definition the online tiles use (see `stream::tiles`), so a training row at `T` holds the
//! value the online store served at `T`. Per view: the entity rows are hash-joined with the
//! source's events on the join keys, restricted to `earliest window start <= event_ts <= T`,
//! and grouped by entity row; each aggregation keeps only the events of its own window.

use larder_registry::{Aggregation, AggregationFunction};

use crate::offline::asof::{ENTITY_TS, ROW_ID};
use crate::offline::parquet::ident;

/// One aggregated view of a historical request. Its source table is projected to `__k0..`
/// (keys), `__ts` (ns) and `__f0..` (the aggregated column of each aggregation).
#[derive(Debug, Clone)]
pub struct WindowJoin {
    /// Table name of the projected source.
    pub source_table: String,
    /// Entity-table column of each join key, in `__k` order.
    pub entity_keys: Vec<String>,
    /// `(aggregation, output column name)`, in `__f` order.
    pub aggregations: Vec<(Aggregation, String)>,
}

/// `floor(x / d)` for BIGINT `x` and positive `d`, in SQL (integer division truncates).
fn floor_div(x: &str, d: i64) -> String {
    format!("(CASE WHEN {x} >= 0 THEN {x} / {d} ELSE ({x} - {d} + 1) / {d} END)")
}

/// The window start (ns) of `agg` for the entity timestamp column `ets` (ns), in SQL.
pub fn window_start_sql(agg: &Aggregation, ets: &str) -> String {
    let s = agg.slide_seconds().max(1);
    let secs = floor_div(ets, 1_000_000_000);
    format!(
        "(({} * {s} - {w} + {s}) * 1000000000)",
        floor_div(&secs, s),
        w = agg.time_window_seconds
    )
}

/// SQL producing `(ROW_ID, outputs...)` for one aggregated view over the entity table.
pub fn window_sql(v: &WindowJoin, entity_table: &str) -> String {
    let ets = ident(ENTITY_TS);
    let row = ident(ROW_ID);
    let mut e_cols: Vec<String> = vec![format!("{row} AS __row"), format!("{ets} AS __ets")];
    for (i, k) in v.entity_keys.iter().enumerate() {
        e_cols.push(format!("{} AS __k{i}", ident(k)));
    }
    let starts: Vec<String> = v.aggregations.iter().map(|(a, _)| window_start_sql(a, &ets)).collect();
    for (j, ws) in starts.iter().enumerate() {
        e_cols.push(format!("{ws} AS __ws{j}"));
    }
    let lowest = if starts.len() == 1 {
        "e.__ws0".to_string()
    } else {
        format!(
            "least({})",
            (0..starts.len())
                .map(|j| format!("e.__ws{j}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut on: Vec<String> = (0..v.entity_keys.len())
        .map(|i| format!("e.__k{i} = f.__k{i}"))
        .collect();
    on.push("f.__ts <= e.__ets".into());
    on.push(format!("f.__ts >= {lowest}"));
    let outs: String = v
        .aggregations
        .iter()
        .enumerate()
        .map(|(j, (a, out))| {
            let val = format!("CASE WHEN f.__ts >= e.__ws{j} THEN CAST(f.__f{j} AS DOUBLE) END");
            let expr = match a.function {
                AggregationFunction::Sum => format!("SUM({val})"),
                AggregationFunction::Count => format!("COUNT({val})"),
                AggregationFunction::Mean => format!("AVG({val})"),
                AggregationFunction::Min => format!("MIN({val})"),
                AggregationFunction::Max => format!("MAX({val})"),
            };
            format!(", {expr} AS {}", ident(out))
        })
        .collect();
    format!(
        "WITH e AS (SELECT {} FROM {entity_table}) \
         SELECT e.__row AS {row}{outs} FROM e LEFT JOIN {src} f ON {} GROUP BY e.__row",
        e_cols.join(", "),
        on.join(" AND "),
        src = v.source_table,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(w: i64, s: Option<i64>) -> Aggregation {
        Aggregation {
            column: "amount".into(),
            function: AggregationFunction::Sum,
            time_window_seconds: w,
            slide_interval_seconds: s,
            name: None,
        }
    }

    #[test]
    fn window_start_matches_the_registry_definition() {
        // The SQL is checked by the stream tests against the online tiles; here, the integer
        // arithmetic: floor division for times before 1970 too.
        assert_eq!(
            floor_div("x", 7),
            "(CASE WHEN x >= 0 THEN x / 7 ELSE (x - 7 + 1) / 7 END)"
        );
        let a = agg(600, Some(60));
        assert_eq!(a.window_start(1_000), 960 - 600 + 60);
        assert_eq!(a.window_start(-1), -60 - 600 + 60);
        assert_eq!(agg(3600, None).window_start(7_199), 3600);
        assert_eq!(a.output_name(), "sum_amount_10m");
    }
}
