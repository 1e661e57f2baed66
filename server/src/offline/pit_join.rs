//! The point-in-time (as-of) join behind `get_historical_features`, as DataFusion SQL.
//!
//! For each entity row (join keys, timestamp `T`) and each view: the source row with the same
//! keys and the greatest `(event_ts, created_ts)` such that `event_ts <= T`, kept only if
//! `event_ts >= T - ttl` when the view has a ttl; otherwise nulls. Every entity row is kept.
//!
//! It scales as one sort per view, never a cross product: feature rows (values packed in a
//! struct) and entity rows are unioned and sorted by `(keys, ts, kind, created)`, and a running
//! `last_value(.. IGNORE NULLS)` gives each entity row its as-of match. DataFusion sorts spill
//! to disk under its memory limit.

use crate::offline::parquet::ident;

/// Name of the row-id column added to the entity table.
pub const ROW_ID: &str = "__larder_row_id";
/// Name of the entity timestamp column (ns since the epoch, UTC) added to the entity table.
pub const ENTITY_TS: &str = "__larder_entity_ts";

/// One view of the join. Its source table is already projected to `__k0..` (keys, cast to the
/// entity columns' types), `__ts` and `__created` (ns, Int64) and `__f0..` (features).
#[derive(Debug, Clone)]
pub struct ViewJoin {
    /// Table name of the projected source.
    pub source_table: String,
    /// Entity-table column of each join key, in `__k` order.
    pub entity_keys: Vec<String>,
    /// Output name of each feature, in `__f` order.
    pub outputs: Vec<String>,
    /// ttl in seconds (`None`: unlimited).
    pub ttl_seconds: Option<i64>,
}

/// SQL producing `(ROW_ID, outputs...)` for one view over the entity table `entity_table`
/// (which has `ROW_ID` and `ENTITY_TS`).
///
/// Feature rows carry their values as one struct; entity rows carry none. After one sort by
/// `(keys, ts, kind, created)` (feature rows first at equal ts: the bound is inclusive; among
/// them the newest created last), the last non-null struct at or before each entity row is
/// its as-of match. One sort, no join back.
pub fn view_sql(v: &ViewJoin, entity_table: &str) -> String {
    let knames: Vec<String> = (0..v.entity_keys.len()).map(|i| format!("__k{i}")).collect();
    let keys_comma = |ks: Vec<String>| ks.into_iter().map(|k| format!("{k}, ")).collect::<String>();
    let partition = if knames.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {}", knames.join(", "))
    };
    let fields: String = (0..v.outputs.len()).map(|i| format!(", 'f{i}', __f{i}")).collect();
    let ekeys: Vec<String> = v
        .entity_keys
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{} AS __k{i}", ident(e)))
        .collect();
    let u_cte = format!(
        "SELECT {fk}__ts, 0 AS __kind, __created, named_struct('ts', __ts{fields}) AS __p, CAST(NULL AS BIGINT) AS __row \
         FROM {src} \
         UNION ALL \
         SELECT {ek}{ets} AS __ts, 1 AS __kind, CAST(0 AS BIGINT) AS __created, NULL AS __p, CAST({row} AS BIGINT) AS __row \
         FROM {entity_table}",
        fk = keys_comma(knames.clone()),
        src = v.source_table,
        ek = keys_comma(ekeys),
        ets = ident(ENTITY_TS),
        row = ident(ROW_ID),
    );
    let m_cte = format!(
        "SELECT __row, __ts AS __ets, last_value(__p) IGNORE NULLS OVER ({partition} ORDER BY __ts ASC, __kind ASC, \
         __created ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __m FROM u"
    );
    let keep = match v.ttl_seconds {
        Some(ttl) if ttl > 0 => {
            format!(
                "get_field(__m, 'ts') >= __ets - {}",
                (ttl as i128 * 1_000_000_000).min(i64::MAX as i128)
            )
        }
        _ => "__m IS NOT NULL".into(),
    };
    let outs: String = v
        .outputs
        .iter()
        .enumerate()
        .map(|(i, out)| format!(", CASE WHEN {keep} THEN get_field(__m, 'f{i}') END AS {}", ident(out)))
        .collect();
    format!(
        "WITH u AS ({u_cte}), m AS ({m_cte}) SELECT __row AS {row}{outs} FROM m WHERE __row IS NOT NULL",
        row = ident(ROW_ID),
    )
}

/// SQL joining the entity table with every view's result, in entity-row order; the output
/// has the entity columns `entity_columns` followed by each view's outputs.
pub fn final_sql(entity_table: &str, entity_columns: &[String], views: &[(String, Vec<String>)]) -> String {
    let mut select: Vec<String> = entity_columns.iter().map(|c| format!("e.{}", ident(c))).collect();
    let mut joins = String::new();
    for (i, (table, outputs)) in views.iter().enumerate() {
        for o in outputs {
            select.push(format!("v{i}.{}", ident(o)));
        }
        joins.push_str(&format!(
            " LEFT JOIN {table} v{i} ON e.{row} = v{i}.{row}",
            row = ident(ROW_ID)
        ));
    }
    format!(
        "SELECT {} FROM {entity_table} e{joins} ORDER BY e.{}",
        select.join(", "),
        ident(ROW_ID)
    )
}
