//! The operations of Feast's remote offline store (`offline_store: {type: remote}`) on Larder's
//! core, transport-free: Arrow Flight ([`crate::flight`]) decodes Feast's commands and calls
//! these.
//!
//! - pulling a source's rows (`pull_latest_from_table_or_query`, `pull_all_...`), what a Feast
//!   client's materialization reads;
//! - a source's columns and their types, in pyarrow's spelling (what Feast's client maps to
//!   value types);
//! - checking that a source can be read (`validate_data_source`, run by `feast apply`);
//! - appending rows to a view's batch source (`offline_write_batch`, a push to the offline store).

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use larder_registry::{DataSource, FileSource};

use crate::error::{Error, Result};
use crate::offline::{PullRequest, CREATED_TS_COLUMN, EVENT_TS_COLUMN};
use crate::FeatureStore;

/// What to pull from a source, with Feast's names (source columns, no field mapping).
#[derive(Debug, Clone)]
pub struct SourcePull {
    /// The source (by its registered name, or as the client described it).
    pub source: FileSource,
    /// Join-key columns.
    pub join_keys: Vec<String>,
    /// Feature columns.
    pub features: Vec<String>,
    /// Window start, ns (inclusive).
    pub start_ns: i64,
    /// Window end, ns (inclusive).
    pub end_ns: i64,
    /// Newest row per key only.
    pub latest_only: bool,
}

/// pyarrow's name of an Arrow type (`int64`, `double`, `timestamp[ns, tz=UTC]`,
/// `list<item: float>`, `struct<a: string>`...), as Feast's `pa_to_feast_value_type` reads it.
/// Dictionary-encoded columns are named by their values' type.
pub fn pyarrow_type_name(dt: &DataType) -> String {
    match dt {
        DataType::Null => "null".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "halffloat".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::Utf8View => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary | DataType::BinaryView => "binary".into(),
        DataType::LargeBinary => "large_binary".into(),
        DataType::Date32 => "date32[day]".into(),
        DataType::Date64 => "date64[ms]".into(),
        DataType::Timestamp(unit, tz) => {
            let u = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{u}, tz={tz}]"),
                None => format!("timestamp[{u}]"),
            }
        }
        DataType::List(f) | DataType::LargeList(f) => format!("list<item: {}>", pyarrow_type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => format!("fixed_size_list<item: {}>[{n}]", pyarrow_type_name(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), pyarrow_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                pyarrow_type_name(kv[0].data_type()),
                pyarrow_type_name(kv[1].data_type())
            ),
            other => format!("map<{}>", pyarrow_type_name(other)),
        },
        DataType::Dictionary(_, values) => pyarrow_type_name(values),
        other => other.to_string().to_lowercase(),
    }
}

/// A file source from Feast's JSON form of a `DataSourceProto` (`str(data_source)` in Feast's
/// client): `{"type": "BATCH_FILE", "name", "timestampField", "createdTimestampColumn",
/// "fieldMapping", "fileOptions": {"uri"}}`. Other source types are refused, named.
pub fn file_source_from_feast_json(text: &str) -> Result<FileSource> {
    let field = "data_source_proto";
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(field, format!("not Feast's JSON of a data source: {e}")))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let kind = s("type");
    if !(kind.is_empty() || kind == "BATCH_FILE" || kind == "PUSH_SOURCE") {
        return Err(Error::NotImplemented(format!(
            "data source {} of type {kind}: Larder's offline store reads file sources (Parquet) only",
            s("name")
        )));
    }
    let uri = v
        .pointer("/fileOptions/uri")
        .or_else(|| v.pointer("/batchSource/fileOptions/uri"))
        .and_then(|x| x.as_str())
        .ok_or_else(|| Error::invalid(field, format!("data source {} has no fileOptions.uri", s("name"))))?;
    let field_mapping = v
        .get("fieldMapping")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| x.as_str().map(|x| (k.clone(), x.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(FileSource {
        name: s("name"),
        path: uri.to_string(),
        timestamp_field: s("timestampField"),
        created_timestamp_column: Some(s("createdTimestampColumn")).filter(|c| !c.is_empty()),
        field_mapping,
        description: s("description"),
        tags: Default::default(),
        owner: s("owner"),
        postgres: None,
    })
}

/// The file source registered at `path` (Feast's client names a saved dataset's storage by its
/// path where a source name is expected).
fn source_at<'a>(doc: &'a larder_registry::RegistryDoc, path: &str) -> Option<&'a DataSource> {
    doc.data_sources
        .iter()
        .find(|s| matches!(s, DataSource::File(f) if f.postgres.is_none() && f.path == path))
}

impl FeatureStore {
    /// The registered file source `name`, or the one registered at that path (a push source's
    /// batch source for a push source).
    pub async fn file_source(&self, name: &str) -> Result<FileSource> {
        let state = self.state().await?;
        let found = match state.doc.data_source(name).or_else(|| source_at(&state.doc, name)) {
            Some(DataSource::File(f)) => Some(f.clone()),
            Some(DataSource::Push(p)) => match state.doc.data_source(&p.batch_source) {
                Some(DataSource::File(f)) => Some(f.clone()),
                _ => None,
            },
            Some(DataSource::Kafka(k)) => match state.doc.data_source(&k.batch_source) {
                Some(DataSource::File(f)) => Some(f.clone()),
                _ => None,
            },
            _ => None,
        };
        found.ok_or_else(|| Error::NotFound {
            class: "DataSourceObjectNotFoundException",
            message: format!("Data source {name} does not exist in project {}", self.project()),
        })
    }

    /// Rows of a source in a window, with its own column names: join keys, features, the
    /// timestamp field and the created-timestamp column (Feast's pull APIs).
    pub async fn pull_source(&self, pull: SourcePull) -> Result<SendableRecordBatchStream> {
        let mut source = pull.source;
        // Feast names source columns: no field mapping applies.
        source.field_mapping.clear();
        let ts_name = source.timestamp_field.clone();
        let created_name = source.created_timestamp_column.clone();
        let stream = self
            .offline()
            .pull_latest(PullRequest {
                source: &source,
                join_keys: pull.join_keys,
                features: pull.features,
                start_ns: pull.start_ns,
                end_ns: pull.end_ns,
                latest_only: pull.latest_only,
            })
            .await?;
        let rename = move |name: &str| -> String {
            match name {
                EVENT_TS_COLUMN => ts_name.clone(),
                CREATED_TS_COLUMN => created_name.clone().unwrap_or_else(|| name.to_string()),
                other => other.to_string(),
            }
        };
        let in_schema = stream.schema();
        let schema: SchemaRef = Arc::new(Schema::new(
            in_schema
                .fields()
                .iter()
                .map(|f| Field::new(rename(f.name()), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let out = Arc::clone(&schema);
        let renamed = stream.map(move |b| {
            let b = b?;
            Ok(RecordBatch::try_new(Arc::clone(&out), b.columns().to_vec())?)
        });
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, renamed),
        ))
    }

    /// A source's columns and pyarrow type names (Feast's
    /// `get_table_column_names_and_types_from_data_source`), as a table `{name, type}`.
    pub async fn source_column_types(&self, source: &FileSource) -> Result<RecordBatch> {
        let schema = self.offline().source_schema(source).await?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| pyarrow_type_name(f.data_type()))
            .collect();
        let out = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
        ]));
        Ok(RecordBatch::try_new(
            out,
            vec![
                Arc::new(StringArray::from(names)) as ArrayRef,
                Arc::new(StringArray::from(types)) as ArrayRef,
            ],
        )?)
    }

    /// Checks that a source can be read and has its timestamp column (`validate_data_source`).
    pub async fn validate_source(&self, source: &FileSource) -> Result<()> {
        let schema = self.offline().source_schema(source).await?;
        if !source.timestamp_field.is_empty() && schema.field_with_name(&source.timestamp_field).is_err() {
            return Err(Error::invalid(
                "data_source_proto",
                format!(
                    "data source {}: {} has no timestamp column `{}`",
                    source.name, source.path, source.timestamp_field
                ),
            ));
        }
        Ok(())
    }

    /// Feast's `write_logged_features`: the logs of `service` (a table of Feast's log schema,
    /// built by the client) written as one Parquet file in the directory of the service's
    /// `FileLoggingDestination` (relative paths from the repo, as Feast resolves them), written
    /// atomically. The destination comes from the registry, never from the caller.
    pub async fn write_logged_features(&self, service: &str, batches: Vec<RecordBatch>) -> Result<usize> {
        let state = self.state().await?;
        let fs = state
            .doc
            .feature_service(service)
            .ok_or_else(|| Error::service_not_found(service, self.project()))?;
        let logging = fs.logging.as_ref().ok_or_else(|| {
            Error::invalid(
                "feature_service_name",
                format!("feature service {service} has no logging_config with a FileLoggingDestination"),
            )
        })?;
        if !logging.partition_by.is_empty() {
            return Err(Error::NotImplemented(format!(
                "feature service {service}: logging partitioned by {} (partition_by) is not written by Larder yet",
                logging.partition_by.join(", ")
            )));
        }
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        let table = datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
            .map_err(|e| Error::invalid("table", format!("the logs' batches do not share one schema: {e}")))?;
        let dir = self.config().resolve_path(&logging.path);
        let rows = table.num_rows();
        crate::offline::write_log_file(dir, table).await?;
        Ok(rows)
    }

    /// Feast's `persist` (what `create_saved_dataset` sends through the remote offline store):
    /// a retrieval's rows written as the data of the registered file source `name` — its path,
    /// never a caller's —, one Parquet file replaced atomically. The source must be one no
    /// feature view reads (a saved dataset's storage), so that a persist never replaces feature
    /// data; existing data is kept unless `allow_overwrite`. Returns the rows written.
    pub async fn persist_dataset(&self, name: &str, batches: Vec<RecordBatch>, allow_overwrite: bool) -> Result<usize> {
        let state = self.state().await?;
        let Some(DataSource::File(source)) = state.doc.data_source(name).or_else(|| source_at(&state.doc, name)) else {
            return Err(Error::NotFound {
                class: "DataSourceObjectNotFoundException",
                message: format!(
                    "Data source {name} does not exist in project {}: persist writes a registered FileSource \
                     (one whose path is the saved dataset's storage path)",
                    self.project()
                ),
            });
        };
        if let Some(view) = state
            .doc
            .feature_views
            .iter()
            .find(|v| state.doc.batch_source(v).is_some_and(|b| b.name == source.name))
        {
            return Err(Error::invalid(
                "data_source_name",
                format!(
                    "source {name} holds the data of feature view {}; a saved dataset needs a source of its own",
                    view.name
                ),
            ));
        }
        if source.postgres.is_some() || source.path.contains("://") && !source.path.starts_with("file://") {
            return Err(Error::NotImplemented(format!(
                "persist into source {name} ({}): Larder writes saved datasets to local Parquet files",
                source.location()
            )));
        }
        let path = self
            .config()
            .resolve_path(source.path.strip_prefix("file://").unwrap_or(&source.path));
        if path.extension().is_none_or(|e| e != "parquet") {
            return Err(Error::NotImplemented(format!(
                "persist into source {name}: its path {} is not a .parquet file (Larder writes one file)",
                source.path
            )));
        }
        if !allow_overwrite && tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Error::invalid(
                "allow_overwrite",
                format!(
                    "{} already exists (Feast's SavedDatasetLocationAlreadyExists); pass allow_overwrite",
                    source.path
                ),
            ));
        }
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let Some(first) = batches.first() else {
            return Err(Error::invalid(
                "retrieve_func",
                "the retrieval has no rows: nothing to persist",
            ));
        };
        let table = datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let rows = table.num_rows();
        crate::offline::write_dataset_file(path, table).await?;
        Ok(rows)
    }

    /// Appends rows to a feature view's batch source (Feast's `offline_write_batch`): columns
    /// by name, cast to the source's types; a source column the rows lack is null, a column the
    /// source does not have is refused, naming it. Returns the rows appended.
    pub async fn offline_write_batch(&self, view: &str, batches: Vec<RecordBatch>) -> Result<usize> {
        let state = self.state().await?;
        let fv = state
            .doc
            .feature_view(view)
            .ok_or_else(|| Error::view_not_found(view, self.project()))?;
        let source = state
            .doc
            .batch_source(fv)
            .ok_or_else(|| Error::invalid("feature_view_names", format!("feature view {view} has no batch source")))?
            .clone();
        let target = self.offline().source_schema(&source).await?;
        let mut total = 0;
        for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
            if let Some(extra) = b
                .schema()
                .fields()
                .iter()
                .find(|f| target.field_with_name(f.name()).is_err() && f.name() != "__index_level_0__")
            {
                return Err(Error::invalid(
                    format!("table.{}", extra.name()),
                    format!(
                        "`{}` is not a column of the batch source {} of {view}",
                        extra.name(),
                        source.name
                    ),
                ));
            }
            let mut columns = Vec::with_capacity(target.fields().len());
            for f in target.fields() {
                columns.push(match b.column_by_name(f.name()) {
                    Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
                    Some(c) => cast(c, f.data_type()).map_err(|e| {
                        Error::invalid(
                            format!("table.{}", f.name()),
                            format!("cannot store as {}: {e}", f.data_type()),
                        )
                    })?,
                    None => new_null_array(f.data_type(), b.num_rows()),
                });
            }
            let batch = RecordBatch::try_new(Arc::clone(&target), columns)
                .map_err(|e| Error::invalid("table", e.to_string()))?;
            total += self.offline().append(&source, batch).await?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyarrow_names_are_what_feast_maps() {
        use datafusion::arrow::datatypes::Fields;
        assert_eq!(pyarrow_type_name(&DataType::Float32), "float");
        assert_eq!(
            pyarrow_type_name(&DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))),
            "timestamp[ns, tz=UTC]"
        );
        assert_eq!(
            pyarrow_type_name(&DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))),
            "list<item: double>"
        );
        let s = DataType::Struct(Fields::from(vec![Field::new("name", DataType::Utf8, true)]));
        assert_eq!(pyarrow_type_name(&s), "struct<name: string>");
        assert_eq!(
            pyarrow_type_name(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            )),
            "string"
        );
    }

    #[test]
    fn feast_json_of_a_file_source() {
        let f = file_source_from_feast_json(
            r#"{"type": "BATCH_FILE", "timestampField": "event_timestamp", "createdTimestampColumn": "created",
                "fileOptions": {"uri": "data/driver_stats.parquet"}, "name": "driver_hourly_stats_source"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                f.name.as_str(),
                f.path.as_str(),
                f.timestamp_field.as_str(),
                f.created_timestamp_column.as_deref()
            ),
            (
                "driver_hourly_stats_source",
                "data/driver_stats.parquet",
                "event_timestamp",
                Some("created")
            )
        );
        assert!(file_source_from_feast_json(r#"{"type": "BATCH_BIGQUERY", "name": "b"}"#).is_err());
        assert!(file_source_from_feast_json("not json").is_err());
    }
}
