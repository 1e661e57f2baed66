//! Entity dataframes given as SQL: one read-only `SELECT` over the registered batch sources,
//! bounded in rows and in memory before its result is used.
//!
//! The statement is parsed and planned by DataFusion, then refused unless it is a single query
//! whose plan holds no DDL, DML (`INSERT`, `COPY ... TO`), `SET` or other statement
//! ([`SQLOptions`] with everything but reads disallowed). The session it runs in knows only the
//! sources registered for it and DataFusion's built-in table functions (`generate_series`,
//! `range`): URL tables (`SELECT * FROM '/path'`) are off, so no file outside the sources can be
//! read. Rows are counted and their memory reserved from the offline store's pool while they
//! stream in, so an oversized result is refused as soon as it passes a limit, not after it has
//! been built.

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;

use crate::error::{Error, Result};

/// The request field that errors of this module name.
pub const FIELD: &str = "entity_df_sql";

/// Default for [`max_rows`] when `LARDER_ENTITY_DF_MAX_ROWS` is not set.
pub const DEFAULT_MAX_ROWS: usize = 20_000_000;

/// Most rows an SQL entity dataframe may return (`LARDER_ENTITY_DF_MAX_ROWS`, default
/// [`DEFAULT_MAX_ROWS`]).
pub fn max_rows() -> usize {
    std::env::var("LARDER_ENTITY_DF_MAX_ROWS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_ROWS)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(FIELD, message)
}

/// Parses `sql` and plans it, refusing anything but one read-only query.
pub async fn plan_read_only(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::Generic)
        .map_err(|e| invalid(e.to_string()))?;
    match &statement {
        DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)) => {}
        _ => {
            return Err(invalid(
                "only a single read-only query (SELECT / WITH ... SELECT / VALUES) is accepted",
            ))
        }
    }
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(plan)
}

/// Runs a read-only entity query in `ctx`, collecting at most `max_rows` rows and reserving
/// their memory from the session's pool; either limit exceeded is a 422 naming
/// [`FIELD`], returned as soon as it is passed.
pub async fn run(ctx: &SessionContext, sql: &str, max_rows: usize) -> Result<Vec<RecordBatch>> {
    let plan = plan_read_only(ctx, sql).await?;
    let df = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    let task: std::sync::Arc<TaskContext> = std::sync::Arc::new(df.task_ctx());
    let reservation = MemoryConsumer::new("entity_df_sql").register(task.memory_pool());
    let mut stream = df.execute_stream().await.map_err(|e| invalid(e.to_string()))?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| invalid(e.to_string()))?;
        rows += batch.num_rows();
        if rows > max_rows {
            return Err(invalid(format!(
                "the query returns more than {max_rows} rows (the limit, LARDER_ENTITY_DF_MAX_ROWS)"
            )));
        }
        if reservation.try_grow(batch.get_array_memory_size()).is_err() {
            return Err(invalid(format!(
                "the query's result ({rows} rows so far) does not fit in the offline memory limit \
                 (LARDER_OFFLINE_MEMORY_MB)"
            )));
        }
        batches.push(batch);
    }
    if rows == 0 {
        return Err(invalid("the query returned no rows"));
    }
    Ok(batches)
}
