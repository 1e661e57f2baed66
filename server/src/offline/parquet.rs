//! The Parquet offline store, on DataFusion.

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{col, lit, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use larder_registry::{FileSource, SourceColumn};

use super::{OfflineStore, PullRequest, CREATED_TS_COLUMN, EVENT_TS_COLUMN};
use crate::error::{Error, Result};
use crate::value::value_type_of;

/// Reads Parquet files (a file or a directory of them) with DataFusion. Relative source paths
/// resolve against `base_dir` (the repo).
#[derive(Debug, Clone)]
pub struct ParquetOfflineStore {
    base_dir: PathBuf,
}

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A timestamp literal in the column's own type, so that comparisons need no coercion.
fn ts_literal(dt: &DataType, ns: i64) -> Result<ScalarValue> {
    let DataType::Timestamp(unit, tz) = dt else {
        return Err(Error::Offline(format!(
            "expected a timestamp column, found {dt}"
        )));
    };
    let tz = tz.clone();
    Ok(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(ns.div_euclid(1_000_000_000)), tz),
        TimeUnit::Millisecond => {
            ScalarValue::TimestampMillisecond(Some(ns.div_euclid(1_000_000)), tz)
        }
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(ns.div_euclid(1_000)), tz),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(ns), tz),
    })
}

impl ParquetOfflineStore {
    /// A store resolving relative paths against `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        ParquetOfflineStore {
            base_dir: base_dir.into(),
        }
    }

    fn path_of(&self, source: &FileSource) -> String {
        let p = std::path::Path::new(&source.path);
        if p.is_absolute() || source.path.contains("://") {
            source.path.clone()
        } else {
            self.base_dir.join(p).to_string_lossy().into_owned()
        }
    }

    async fn context_with(&self, source: &FileSource) -> Result<SessionContext> {
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
        let path = self.path_of(source);
        if !path.contains("://") && !std::path::Path::new(&path).exists() {
            return Err(Error::Offline(format!(
                "source {}: {path} does not exist",
                source.name
            )));
        }
        ctx.register_parquet("src", &path, ParquetReadOptions::default())
            .await
            .map_err(|e| Error::Offline(format!("source {} ({path}): {e}", source.name)))?;
        Ok(ctx)
    }
}

/// Source column name for an output name, through the source's field mapping.
fn source_column(source: &FileSource, name: &str) -> String {
    source
        .field_mapping
        .iter()
        .find(|(_, to)| to.as_str() == name)
        .map(|(from, _)| from.clone())
        .unwrap_or_else(|| name.to_string())
}

#[async_trait]
impl OfflineStore for ParquetOfflineStore {
    async fn pull_latest(&self, req: PullRequest<'_>) -> Result<SendableRecordBatchStream> {
        let source = req.source;
        let ctx = self.context_with(source).await?;
        let table = ctx.table("src").await?;
        let schema = table.schema().clone();
        let ts_field = schema
            .field_with_unqualified_name(&source.timestamp_field)
            .map_err(|_| {
                Error::Offline(format!(
                    "source {}: no column `{}`",
                    source.name, source.timestamp_field
                ))
            })?;
        let ts_type = ts_field.data_type().clone();
        let filtered = table.filter(
            col(ident(&source.timestamp_field))
                .gt_eq(lit(ts_literal(&ts_type, req.start_ns)?))
                .and(
                    col(ident(&source.timestamp_field))
                        .lt_eq(lit(ts_literal(&ts_type, req.end_ns)?)),
                ),
        )?;
        ctx.register_table("filtered", filtered.into_view())?;

        let mut select: Vec<String> = Vec::new();
        for name in req.join_keys.iter().chain(req.features.iter()) {
            select.push(format!(
                "{} AS {}",
                ident(&source_column(source, name)),
                ident(name)
            ));
        }
        select.push(format!(
            "{} AS {}",
            ident(&source.timestamp_field),
            ident(EVENT_TS_COLUMN)
        ));
        let mut order = format!("{} DESC", ident(&source.timestamp_field));
        if let Some(created) = &source.created_timestamp_column {
            select.push(format!(
                "{} AS {}",
                ident(created),
                ident(CREATED_TS_COLUMN)
            ));
            order.push_str(&format!(", {} DESC NULLS LAST", ident(created)));
        }
        let partition = if req.join_keys.is_empty() {
            String::new()
        } else {
            format!(
                "PARTITION BY {}",
                req.join_keys
                    .iter()
                    .map(|k| ident(&source_column(source, k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let outputs: Vec<String> = req
            .join_keys
            .iter()
            .chain(req.features.iter())
            .map(|n| ident(n))
            .chain(std::iter::once(ident(EVENT_TS_COLUMN)))
            .chain(
                source
                    .created_timestamp_column
                    .iter()
                    .map(|_| ident(CREATED_TS_COLUMN)),
            )
            .collect();
        let sql = format!(
            "SELECT {outputs} FROM (SELECT {select}, ROW_NUMBER() OVER ({partition} ORDER BY {order}) AS __rn FROM filtered) \
             WHERE __rn = 1",
            outputs = outputs.join(", "),
            select = select.join(", "),
        );
        let df = ctx.sql(&sql).await?;
        Ok(df.execute_stream().await?)
    }

    async fn source_columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>> {
        let ctx = self.context_with(source).await?;
        let table = ctx.table("src").await?;
        Ok(table
            .schema()
            .fields()
            .iter()
            .map(|f| SourceColumn {
                name: f.name().clone(),
                value_type: value_type_of(f.data_type()),
                is_timestamp: matches!(f.data_type(), DataType::Timestamp(_, _)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
    use datafusion::parquet::arrow::ArrowWriter;
    use futures::TryStreamExt;
    use larder_registry::ValueType as V;

    use super::*;

    const H: i64 = 3_600_000_000; // one hour in µs

    /// Rows: (key, event hour, created hour or None, value).
    fn write(path: &std::path::Path, rows: &[(i64, i64, Option<i64>, f64)], tz: Option<&str>) {
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", ts_type.clone(), false),
            Field::new("created", ts_type, true),
            Field::new("v", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mk_ts = |v: Vec<Option<i64>>| {
            let a = TimestampMicrosecondArray::from(v);
            match tz {
                Some(t) => a.with_timezone(t),
                None => a,
            }
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(mk_ts(rows.iter().map(|r| Some(r.1 * H)).collect())),
                Arc::new(mk_ts(rows.iter().map(|r| r.2.map(|c| c * H)).collect())),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| Some(format!("s{}", r.3)))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn source(created: bool, mapping: &[(&str, &str)]) -> FileSource {
        FileSource {
            name: "src".into(),
            path: "d.parquet".into(),
            timestamp_field: "ts".into(),
            created_timestamp_column: created.then(|| "created".to_string()),
            field_mapping: mapping
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>(),
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
        }
    }

    async fn latest(
        dir: &std::path::Path,
        src: &FileSource,
        feature: &str,
        start_h: i64,
        end_h: i64,
    ) -> Vec<(i64, f64)> {
        let store = ParquetOfflineStore::new(dir);
        let req = PullRequest {
            source: src,
            join_keys: vec!["id".into()],
            features: vec![feature.into()],
            start_ns: start_h * H * 1000,
            end_ns: end_h * H * 1000,
        };
        let batches: Vec<RecordBatch> = store
            .pull_latest(req)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut out = Vec::new();
        for b in batches {
            let ids = b.column(0).as_primitive::<Int64Type>();
            let vs = b.column(1).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                out.push((
                    ids.value(i),
                    if vs.is_null(i) { f64::NAN } else { vs.value(i) },
                ));
            }
        }
        out.sort_by_key(|r| r.0);
        out
    }

    #[tokio::test]
    async fn newest_row_per_key_with_created_tie_break_and_inclusive_window() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("d.parquet"),
            &[
                (1, 10, Some(10), 1.0),
                (1, 20, Some(21), 2.0), // tie on event time: created 22 wins
                (1, 20, Some(22), 3.0),
                (1, 20, Some(20), 4.0),
                (1, 26, Some(26), 5.0), // after the window
                (2, 5, Some(5), 6.0),   // exactly at start: inside
                (2, 30, Some(30), 7.0), // after the window
                (3, 25, Some(25), 8.0), // exactly at end: inside
                (4, 4, Some(4), 9.0),   // before the window: key absent
            ],
            Some("UTC"),
        );
        let got = latest(dir.path(), &source(true, &[]), "v", 5, 25).await;
        assert_eq!(got, vec![(1, 3.0), (2, 6.0), (3, 8.0)]);
    }

    #[tokio::test]
    async fn naive_timestamps_are_utc_and_field_mapping_renames() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("d.parquet"),
            &[(1, 10, None, 1.0), (1, 11, None, 2.0), (2, 3, None, 3.0)],
            None,
        );
        let got = latest(
            dir.path(),
            &source(false, &[("v", "value")]),
            "value",
            0,
            10,
        )
        .await;
        assert_eq!(got, vec![(1, 1.0), (2, 3.0)]);
    }

    #[tokio::test]
    async fn source_columns_have_feast_types() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("d.parquet"),
            &[(1, 1, None, 1.0)],
            Some("UTC"),
        );
        let cols = ParquetOfflineStore::new(dir.path())
            .source_columns(&source(true, &[]))
            .await
            .unwrap();
        let types: Vec<(String, Option<V>, bool)> = cols
            .into_iter()
            .map(|c| (c.name, c.value_type, c.is_timestamp))
            .collect();
        assert_eq!(
            types,
            vec![
                ("id".into(), Some(V::Int64), false),
                ("ts".into(), Some(V::UnixTimestamp), true),
                ("created".into(), Some(V::UnixTimestamp), true),
                ("v".into(), Some(V::Double), false),
                ("s".into(), Some(V::String), false),
            ]
        );
        let missing = ParquetOfflineStore::new(dir.path().join("nope"))
            .source_columns(&source(true, &[]))
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }
}
