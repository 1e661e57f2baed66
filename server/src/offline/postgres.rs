//! Feast's `PostgreSQLSource` read into DataFusion: the rows of a table or query of the
//! database named by `offline_store: {type: postgres, ...}` (Feast's keys).
//!
//! The relation's columns are typed once from the prepared statement, and cast in PostgreSQL
//! to the few types Arrow gets directly (as Feast's `pg_type_to_feast_value_type` reads them:
//! `numeric` as double precision, `smallint` as integer, `date` as a timestamp, anything else —
//! `json`, `uuid`, `time`... — as its text). The rows are then streamed in batches into an
//! in-memory table of the session, where the point-in-time join and materialization run as on
//! Parquet: same SQL, same semantics. Larder does not write to PostgreSQL sources (Feast's
//! PostgreSQL offline store has no `offline_write_batch` either).

use std::sync::Arc;
use std::time::SystemTime;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use futures::{pin_mut, TryStreamExt};
use larder_registry::PostgresRelation;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

use crate::config::PostgresOnlineConfig;
use crate::error::{Error, Result};

/// Rows per Arrow batch read from PostgreSQL.
const BATCH_ROWS: usize = 65_536;

/// The offline store's PostgreSQL database, where PostgreSQL sources are read.
pub struct PostgresSources {
    config: tokio_postgres::Config,
    target: String,
}

impl std::fmt::Debug for PostgresSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSources").field("target", &self.target).finish()
    }
}

/// How one column is read: the Arrow type, and the SQL cast applied in PostgreSQL first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Text,
    Bytes,
    Timestamp { utc: bool },
    List(Scalar),
}

/// The element of an array column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Text,
}

impl Scalar {
    fn arrow(self) -> DataType {
        match self {
            Scalar::Bool => DataType::Boolean,
            Scalar::Int32 => DataType::Int32,
            Scalar::Int64 => DataType::Int64,
            Scalar::Float32 => DataType::Float32,
            Scalar::Float64 => DataType::Float64,
            Scalar::Text => DataType::Utf8,
        }
    }
}

impl Column {
    /// The reading of a column of PostgreSQL type `ty`, and the cast that gets it there
    /// (`None`: read as it is).
    fn of(ty: &Type) -> (Column, Option<&'static str>) {
        match *ty {
            Type::BOOL => (Column::Bool, None),
            Type::INT2 => (Column::Int32, Some("int4")),
            Type::INT4 => (Column::Int32, None),
            Type::INT8 => (Column::Int64, None),
            Type::FLOAT4 => (Column::Float32, None),
            Type::FLOAT8 => (Column::Float64, None),
            Type::NUMERIC => (Column::Float64, Some("float8")),
            Type::TEXT | Type::VARCHAR => (Column::Text, None),
            Type::BYTEA => (Column::Bytes, None),
            Type::TIMESTAMPTZ => (Column::Timestamp { utc: true }, None),
            Type::TIMESTAMP => (Column::Timestamp { utc: false }, None),
            Type::DATE => (Column::Timestamp { utc: false }, Some("timestamp")),
            Type::BOOL_ARRAY => (Column::List(Scalar::Bool), None),
            Type::INT2_ARRAY => (Column::List(Scalar::Int32), Some("int4[]")),
            Type::INT4_ARRAY => (Column::List(Scalar::Int32), None),
            Type::INT8_ARRAY => (Column::List(Scalar::Int64), None),
            Type::FLOAT4_ARRAY => (Column::List(Scalar::Float32), None),
            Type::FLOAT8_ARRAY => (Column::List(Scalar::Float64), None),
            Type::NUMERIC_ARRAY => (Column::List(Scalar::Float64), Some("float8[]")),
            Type::TEXT_ARRAY => (Column::List(Scalar::Text), None),
            Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => (Column::List(Scalar::Text), Some("text[]")),
            _ => (Column::Text, Some("text")),
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Column::Bool => DataType::Boolean,
            Column::Int32 => DataType::Int32,
            Column::Int64 => DataType::Int64,
            Column::Float32 => DataType::Float32,
            Column::Float64 => DataType::Float64,
            Column::Text => DataType::Utf8,
            Column::Bytes => DataType::Binary,
            Column::Timestamp { utc } => DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into())),
            Column::List(s) => DataType::List(Arc::new(Field::new("item", s.arrow(), true))),
        }
    }

    fn builder(self) -> Box<dyn ArrayBuilder> {
        match self {
            Column::Bool => Box::new(BooleanBuilder::new()),
            Column::Int32 => Box::new(Int32Builder::new()),
            Column::Int64 => Box::new(Int64Builder::new()),
            Column::Float32 => Box::new(Float32Builder::new()),
            Column::Float64 => Box::new(Float64Builder::new()),
            Column::Text => Box::new(StringBuilder::new()),
            Column::Bytes => Box::new(BinaryBuilder::new()),
            Column::Timestamp { utc } => {
                Box::new(TimestampMicrosecondBuilder::new().with_timezone_opt(utc.then(|| "UTC".to_string())))
            }
            Column::List(Scalar::Bool) => Box::new(ListBuilder::new(BooleanBuilder::new())),
            Column::List(Scalar::Int32) => Box::new(ListBuilder::new(Int32Builder::new())),
            Column::List(Scalar::Int64) => Box::new(ListBuilder::new(Int64Builder::new())),
            Column::List(Scalar::Float32) => Box::new(ListBuilder::new(Float32Builder::new())),
            Column::List(Scalar::Float64) => Box::new(ListBuilder::new(Float64Builder::new())),
            Column::List(Scalar::Text) => Box::new(ListBuilder::new(StringBuilder::new())),
        }
    }
}

/// Microseconds since the epoch of a PostgreSQL timestamp (before 1970 too).
fn micros(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Appends the value of column `i` of `row` to `builder` (built by [`Column::builder`]).
fn append(builder: &mut dyn ArrayBuilder, column: Column, row: &Row, i: usize) -> std::result::Result<(), String> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> std::result::Result<T, String> {
        row.try_get(i).map_err(|e| e.to_string())
    }
    fn down<T: 'static>(b: &mut dyn ArrayBuilder) -> std::result::Result<&mut T, String> {
        b.as_any_mut()
            .downcast_mut::<T>()
            .ok_or_else(|| "column builder of another type".to_string())
    }
    macro_rules! list {
        ($elem:ty, $builder:ty) => {{
            let v: Option<Vec<Option<$elem>>> = get(row, i)?;
            let b = down::<ListBuilder<$builder>>(builder)?;
            match v {
                Some(items) => {
                    for x in items {
                        b.values().append_option(x);
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }};
    }
    match column {
        Column::Bool => down::<BooleanBuilder>(builder)?.append_option(get::<Option<bool>>(row, i)?),
        Column::Int32 => down::<Int32Builder>(builder)?.append_option(get::<Option<i32>>(row, i)?),
        Column::Int64 => down::<Int64Builder>(builder)?.append_option(get::<Option<i64>>(row, i)?),
        Column::Float32 => down::<Float32Builder>(builder)?.append_option(get::<Option<f32>>(row, i)?),
        Column::Float64 => down::<Float64Builder>(builder)?.append_option(get::<Option<f64>>(row, i)?),
        Column::Text => down::<StringBuilder>(builder)?.append_option(get::<Option<&str>>(row, i)?),
        Column::Bytes => down::<BinaryBuilder>(builder)?.append_option(get::<Option<&[u8]>>(row, i)?),
        Column::Timestamp { .. } => {
            down::<TimestampMicrosecondBuilder>(builder)?.append_option(get::<Option<SystemTime>>(row, i)?.map(micros))
        }
        Column::List(Scalar::Bool) => list!(bool, BooleanBuilder),
        Column::List(Scalar::Int32) => list!(i32, Int32Builder),
        Column::List(Scalar::Int64) => list!(i64, Int64Builder),
        Column::List(Scalar::Float32) => list!(f32, Float32Builder),
        Column::List(Scalar::Float64) => list!(f64, Float64Builder),
        Column::List(Scalar::Text) => list!(String, StringBuilder),
    }
    Ok(())
}

/// Quotes an SQL identifier for PostgreSQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A relation's columns: their names, readings and the query that selects them cast.
struct Plan {
    names: Vec<String>,
    columns: Vec<Column>,
    select: String,
}

impl Plan {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.names
                .iter()
                .zip(&self.columns)
                .map(|(n, c)| Field::new(n, c.arrow(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

impl PostgresSources {
    /// The database of `config` (connections are made per read).
    pub fn new(config: &PostgresOnlineConfig) -> std::result::Result<Self, String> {
        let mut pg = crate::online::postgres::connection_config(config, "offline_store")?;
        // As Feast connects: unqualified table names resolve in `db_schema`.
        if let Some(schema) = config.db_schema.as_deref().filter(|s| !s.is_empty()) {
            pg.options(format!("-c search_path={schema}"));
        }
        Ok(PostgresSources {
            config: pg,
            target: format!("{}:{}/{}", config.host, config.port, config.database),
        })
    }

    async fn connect(&self) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| Error::Unavailable(format!("offline store postgresql://{}: {e}", self.target)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL offline store connection closed.");
            }
        });
        Ok(client)
    }

    /// Types the relation's columns (the statement is prepared, not run).
    async fn plan(&self, client: &Client, source: &str, relation: &PostgresRelation) -> Result<Plan> {
        let from = relation.from_clause();
        let bad = |e: tokio_postgres::Error| {
            let detail = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Error::Offline(format!("source {source}: PostgreSQL cannot read {from}: {detail}"))
        };
        let statement = client
            .prepare(&format!("SELECT * FROM {from} AS larder_source LIMIT 0"))
            .await
            .map_err(bad)?;
        let mut names = Vec::new();
        let mut columns = Vec::new();
        let mut select = Vec::new();
        for c in statement.columns() {
            let (column, cast) = Column::of(c.type_());
            let q = ident(c.name());
            select.push(match cast {
                Some(t) => format!("{q}::{t} AS {q}"),
                None => q,
            });
            names.push(c.name().to_string());
            columns.push(column);
        }
        Ok(Plan {
            names,
            columns,
            select: format!("SELECT {} FROM {from} AS larder_source", select.join(", ")),
        })
    }

    /// The Arrow schema the source's rows are read with.
    pub async fn schema(&self, source: &str, relation: &PostgresRelation) -> Result<SchemaRef> {
        let client = self.connect().await?;
        Ok(self.plan(&client, source, relation).await?.schema())
    }

    /// Every row of the relation, as an in-memory table.
    pub async fn read(&self, source: &str, relation: &PostgresRelation) -> Result<MemTable> {
        let client = self.connect().await?;
        let plan = self.plan(&client, source, relation).await?;
        let schema = plan.schema();
        let failed = |e: String| Error::Offline(format!("source {source}: reading {}: {e}", relation.from_clause()));
        let rows = client
            .query_raw(plan.select.as_str(), std::iter::empty::<i32>())
            .await
            .map_err(|e| failed(e.to_string()))?;
        pin_mut!(rows);
        let new_builders = || plan.columns.iter().map(|c| c.builder()).collect::<Vec<_>>();
        let mut builders = new_builders();
        let mut batches = Vec::new();
        let mut n = 0;
        let finish = |builders: &mut Vec<Box<dyn ArrayBuilder>>| -> Result<RecordBatch> {
            let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
            RecordBatch::try_new(Arc::clone(&schema), arrays).map_err(|e| failed(e.to_string()))
        };
        while let Some(row) = rows.try_next().await.map_err(|e| failed(e.to_string()))? {
            for (i, (b, c)) in builders.iter_mut().zip(&plan.columns).enumerate() {
                append(b.as_mut(), *c, &row, i).map_err(|e| failed(format!("column {}: {e}", plan.names[i])))?;
            }
            n += 1;
            if n == BATCH_ROWS {
                batches.push(finish(&mut builders)?);
                builders = new_builders();
                n = 0;
            }
        }
        if n > 0 || batches.is_empty() {
            batches.push(finish(&mut builders)?);
        }
        MemTable::try_new(Arc::clone(&schema), vec![batches]).map_err(|e| failed(e.to_string()))
    }
}
