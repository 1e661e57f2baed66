//! Data sources: Parquet files, push sources, Kafka topics and request sources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Field;

/// A data source, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DataSource {
    /// A Parquet file (or directory of files).
    File(FileSource),
    /// A source fed by `POST /push`, backed by a batch source for offline data.
    Push(PushSource),
    /// Values that arrive with each request (inputs of on-demand views).
    Request(RequestSource),
    /// A Kafka topic of JSON events, consumed by Larder's stream workers, backed by a batch
    /// source for offline data.
    Kafka(KafkaSource),
}

impl DataSource {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            DataSource::File(s) => &s.name,
            DataSource::Push(s) => &s.name,
            DataSource::Request(s) => &s.name,
            DataSource::Kafka(s) => &s.name,
        }
    }

    /// A word for messages: "file source", "push source", "request source".
    pub fn kind(&self) -> &'static str {
        match self {
            DataSource::File(f) if f.postgres.is_some() => "postgres source",
            DataSource::File(_) => "file source",
            DataSource::Push(_) => "push source",
            DataSource::Request(_) => "request source",
            DataSource::Kafka(_) => "kafka source",
        }
    }
}

/// Feast's `FileSource`: Parquet data with an event timestamp column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Source name.
    pub name: String,
    /// Path of the Parquet file or directory; relative paths resolve against the repo.
    pub path: String,
    /// Event timestamp column.
    pub timestamp_field: String,
    /// Column with the row's creation time, used to break event-timestamp ties.
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
    /// Source column name -> feature name.
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: String,
    /// Feast's `PostgreSQLSource`: the rows are a table or query of the PostgreSQL database
    /// named by `offline_store: {type: postgres}`, not Parquet files (`path` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresRelation>,
}

impl FileSource {
    /// The source column holding `feature` (the field mapping is column -> feature name).
    pub fn column_of(&self, feature: &str) -> String {
        self.field_mapping
            .iter()
            .find(|(_, to)| to.as_str() == feature)
            .map(|(from, _)| from.clone())
            .unwrap_or_else(|| feature.to_string())
    }

    /// Where the rows are, for messages: the Parquet path or the PostgreSQL relation.
    pub fn location(&self) -> String {
        match &self.postgres {
            Some(pg) => format!("PostgreSQL {}", pg.from_clause()),
            None => self.path.clone(),
        }
    }
}

/// The relation of a PostgreSQL source: a table, or else a query (Feast's `PostgreSQLOptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRelation {
    /// Table name (may be schema-qualified); used when not empty.
    #[serde(default)]
    pub table: String,
    /// SQL query whose result rows are the source's rows.
    #[serde(default)]
    pub query: String,
}

impl PostgresRelation {
    /// The relation as it goes after `FROM` (as Feast's `get_table_query_string`): the table,
    /// or the query in parentheses.
    pub fn from_clause(&self) -> String {
        if self.table.is_empty() {
            format!("({})", self.query)
        } else {
            self.table.clone()
        }
    }
}

/// Feast's `PushSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSource {
    /// Source name (the `push_source_name` of `/push`).
    pub name: String,
    /// Name of the file source that holds this source's offline data.
    pub batch_source: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: String,
}

/// Feast's `RequestSource`: typed fields that arrive with the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSource {
    /// Source name.
    pub name: String,
    /// The request fields.
    pub schema: Vec<Field>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: String,
}

/// Feast's `KafkaSource` with a JSON message format: every message is one JSON object holding
/// the join keys, the event timestamp and the feature columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    /// Source name.
    pub name: String,
    /// `host:port[,host:port...]` of the brokers.
    pub bootstrap_servers: String,
    /// The topic to consume.
    pub topic: String,
    /// Event timestamp field of each message (ISO-8601 string or epoch seconds).
    pub timestamp_field: String,
    /// Field with the event's creation time, used to break event-timestamp ties.
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
    /// Message field name -> feature name.
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
    /// Name of the file source that receives the stream's offline copy.
    pub batch_source: String,
    /// Message format; only `json` is supported.
    #[serde(default = "json_format")]
    pub message_format: String,
    /// Feast's `JsonFormat(schema_json=...)`: a Spark DDL schema of the messages, kept as given.
    #[serde(default)]
    pub schema_json: String,
    /// How late (seconds of event time) an event may arrive and still be counted in an
    /// aggregation tile; older events go to the dead-letter destination.
    #[serde(default)]
    pub watermark_delay_seconds: Option<i64>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: String,
}

fn json_format() -> String {
    "json".into()
}
