//! The point-in-time (as-of) join behind `get_historical_features`, as DataFusion SQL.
//!
//! For each entity row (join keys, timestamp `T`) and each view: the source row with the same
//! keys and the greatest `(event_ts, created_ts)` such that `event_ts <= T`, kept only if
//! `event_ts >= T - ttl` when the view has a ttl; otherwise nulls. Every entity row is kept.
//!
//! It scales as sorts and hash joins, never a cross product: per view, feature rows get a rank
//! in `(event_ts, created_ts)` order within their key; feature and entity rows are unioned and
//! sorted by `(keys, ts, kind)` (feature rows first at equal ts: the bound is inclusive); a
//! running `MAX(rank)` gives each entity row the rank of its as-of match, which is then joined
//! back on `(keys, rank)`. DataFusion sorts spill to disk under its memory limit.

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
pub fn view_sql(v: &ViewJoin, entity_table: &str) -> String {
    let knames: Vec<String> = (0..v.entity_keys.len()).map(|i| format!("__k{i}")).collect();
    let keys_comma = |ks: Vec<String>| ks.into_iter().map(|k| format!("{k}, ")).collect::<String>();
    let partition = if knames.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {}", knames.join(", "))
    };
    let feats: String = (0..v.outputs.len()).map(|i| format!("__f{i}, ")).collect();
    let f_cte = format!(
        "SELECT {k}__ts, {feats}ROW_NUMBER() OVER ({partition} ORDER BY __ts ASC, __created ASC) AS __rank FROM {src}",
        k = keys_comma(knames.clone()),
        src = v.source_table,
    );
    let ekeys: Vec<String> = v
        .entity_keys
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{} AS __k{i}", ident(e)))
        .collect();
    let u_cte = format!(
        "SELECT {fk}__ts, 0 AS __kind, __rank, CAST(NULL AS BIGINT) AS __row FROM f \
         UNION ALL \
         SELECT {ek}{ets} AS __ts, 1 AS __kind, CAST(NULL AS BIGINT) AS __rank, CAST({row} AS BIGINT) AS __row FROM {entity_table}",
        fk = keys_comma(knames.clone()),
        ek = keys_comma(ekeys),
        ets = ident(ENTITY_TS),
        row = ident(ROW_ID),
    );
    let m_cte = format!(
        "SELECT {k}__row, __ts AS __ets, MAX(__rank) OVER ({partition} ORDER BY __ts ASC, __kind ASC \
         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __match FROM u",
        k = keys_comma(knames.clone()),
    );
    let on: Vec<String> = knames
        .iter()
        .map(|k| format!("m.{k} = f.{k}"))
        .chain(std::iter::once("m.__match = f.__rank".to_string()))
        .collect();
    let keep = match v.ttl_seconds {
        Some(ttl) if ttl > 0 => format!(
            "f.__ts >= m.__ets - {}",
            (ttl as i128 * 1_000_000_000).min(i64::MAX as i128)
        ),
        _ => "f.__rank IS NOT NULL".into(),
    };
    let outs: String = v
        .outputs
        .iter()
        .enumerate()
        .map(|(i, out)| format!(", CASE WHEN {keep} THEN f.__f{i} END AS {}", ident(out)))
        .collect();
    format!(
        "WITH f AS ({f_cte}), u AS ({u_cte}), m AS ({m_cte}), e AS (SELECT * FROM m WHERE __row IS NOT NULL) \
         SELECT m.__row AS {row}{outs} FROM e m LEFT JOIN f ON {on}",
        row = ident(ROW_ID),
        on = on.join(" AND "),
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
