//! Property tests of the SQL entity-dataframe path (`larder_server::offline::entity_sql`):
//! whatever text a caller sends, only a read-only query is ever executed (no file appears, no
//! table is created or dropped, no setting changes), and a result is refused once it passes
//! the row limit or the memory pool, instead of being built.

// Fixtures and checks of files, outside the runtime.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use larder_server::offline::entity_sql;
use proptest::prelude::*;

fn context(memory_mb: usize) -> SessionContext {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_mb * 1024 * 1024, 1.0)
        .build_arc()
        .unwrap();
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_information_schema(false), runtime);
    let schema = Arc::new(Schema::new(vec![Field::new("driver_id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
    ctx.register_table("src", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
        .unwrap();
    ctx
}

/// Whether sqlparser (independently of the code under test) reads `sql` as one query.
fn is_single_query(sql: &str) -> bool {
    matches!(
        Parser::parse_sql(&GenericDialect {}, sql).as_deref(),
        Ok([Statement::Query(_)])
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Statements that write, define or change something, with `{p}` a path in the test's folder.
const WRITERS: &[&str] = &[
    "COPY (SELECT 1 AS a) TO '{p}' STORED AS CSV",
    "COPY src TO '{p}' STORED AS PARQUET",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{p}'",
    "CREATE TABLE t AS SELECT 1 AS a",
    "CREATE OR REPLACE TABLE src AS SELECT 9 AS driver_id",
    "CREATE VIEW v AS SELECT 1",
    "INSERT INTO src VALUES (4)",
    "INSERT INTO src SELECT * FROM src",
    "DROP TABLE src",
    "DROP VIEW IF EXISTS src",
    "DELETE FROM src",
    "UPDATE src SET driver_id = 0",
    "SET datafusion.execution.batch_size = 1",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{p}'",
    "PREPARE q AS SELECT 1",
    "SELECT * FROM '{p}'",
    "SELECT 1; COPY (SELECT 1) TO '{p}'",
    "CREATE FUNCTION f() RETURNS INT RETURN 1",
    "CREATE SCHEMA s",
    "CREATE DATABASE d",
];

fn statement() -> impl Strategy<Value = String> {
    let writer = prop::sample::select(WRITERS).prop_map(str::to_string);
    let prefix = prop::sample::select(&["", " ", "\n", "-- c\n", "/* c */ ", "(", "WITH x AS (SELECT 1) "][..]);
    let suffix = prop::sample::select(&["", ";", " ;", "; SELECT 1", ")", " -- tail"][..]);
    let select = prop::sample::select(
        &[
            "SELECT driver_id FROM src",
            "SELECT driver_id, now() AS event_timestamp FROM src WHERE driver_id > 1",
            "VALUES (1), (2)",
            "SELECT value AS driver_id FROM generate_series(1, 10)",
        ][..],
    )
    .prop_map(str::to_string);
    let noise = "[ -~]{0,40}";
    (
        prefix,
        prop_oneof![writer, select, noise.prop_map(String::from)],
        suffix,
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn only_read_only_queries_run(sql in statement()) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let sql = sql.replace("{p}", &target.to_string_lossy());
        let rt = runtime();
        let ctx = context(64);
        let result = rt.block_on(entity_sql::run(&ctx, &sql, 1_000));
        // Nothing was written, and the registered table is as it was.
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{} wrote a file", sql);
        let rows = rt.block_on(entity_sql::run(&ctx, "SELECT count(*) AS n FROM src", 10)).unwrap();
        let n = rows[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        prop_assert_eq!(n, 3, "{} changed the table", sql);
        prop_assert!(rt.block_on(ctx.table("t")).is_err(), "{} created a table", sql);
        match result {
            Ok(_) => prop_assert!(is_single_query(&sql), "{} ran but is not a single query", sql),
            Err(e) => prop_assert!(e.to_string().starts_with(entity_sql::FIELD), "{}: {}", sql, e),
        }
    }

    #[test]
    fn results_stop_at_the_row_limit(n in 1usize..50_000, limit in 1usize..20_000) {
        let rt = runtime();
        let ctx = context(256);
        let sql = format!("SELECT value AS driver_id FROM generate_series(1, {n})");
        match rt.block_on(entity_sql::run(&ctx, &sql, limit)) {
            Ok(batches) => {
                prop_assert!(n <= limit);
                prop_assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), n);
            }
            Err(e) => {
                prop_assert!(n > limit, "{}", e);
                prop_assert!(e.to_string().contains(&format!("more than {limit} rows")), "{}", e);
            }
        }
    }
}

#[test]
fn a_result_larger_than_the_pool_is_refused_while_it_streams() {
    let rt = runtime();
    let ctx = context(8);
    // ~80 MB of strings, far past the 8 MB pool; the row limit is not what stops it.
    let sql = "SELECT value AS driver_id, repeat('x', 40) AS pad FROM generate_series(1, 2000000)";
    let e = rt.block_on(entity_sql::run(&ctx, sql, usize::MAX)).unwrap_err();
    assert!(e.to_string().contains("memory limit"), "{e}");
    // The pool is free again afterwards.
    assert_eq!(ctx.runtime_env().memory_pool.reserved(), 0);
    let ok = rt
        .block_on(entity_sql::run(
            &ctx,
            "SELECT value AS driver_id FROM generate_series(1, 1000)",
            usize::MAX,
        ))
        .unwrap();
    assert_eq!(ok.iter().map(RecordBatch::num_rows).sum::<usize>(), 1000);
}
