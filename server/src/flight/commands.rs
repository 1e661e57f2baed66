//! The JSON commands of Flight descriptors: Larder's training-set request, and every call of
//! Feast 0.67's remote offline store (`{"command_id", "api", ...parameters}`,
//! `feast/infra/offline_stores/remote.py`).

use serde::Deserialize;
use tonic::Status;

use crate::serving::HistoricalParams;
use crate::time::{parse_time, to_nanos};

/// Parameters of Feast's pull APIs.
#[derive(Debug, Clone, Deserialize)]
pub struct PullParams {
    /// The registered source.
    pub data_source_name: String,
    /// Join-key columns (source names).
    #[serde(default)]
    pub join_key_columns: Vec<String>,
    /// Feature columns (source names).
    #[serde(default)]
    pub feature_name_columns: Vec<String>,
    /// The source's timestamp column.
    pub timestamp_field: String,
    /// Its created-timestamp column.
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
    /// Window start (ISO 8601; none: no lower bound).
    #[serde(default)]
    pub start_date: Option<String>,
    /// Window end (ISO 8601; none: no upper bound).
    #[serde(default)]
    pub end_date: Option<String>,
}

impl PullParams {
    /// The window in ns, `(start, end)`, open ends as the widest accepted times.
    pub fn window(&self) -> Result<(i64, i64), Status> {
        let at = |field: &str, v: &Option<String>, default: i64| -> Result<i64, Status> {
            match v.as_deref().filter(|s| !s.is_empty()) {
                None => Ok(default),
                Some(s) => parse_time(s)
                    .map(to_nanos)
                    .map_err(|e| Status::invalid_argument(format!("{field}: {e}"))),
            }
        };
        Ok((
            at("start_date", &self.start_date, i64::MIN)?,
            at("end_date", &self.end_date, i64::MAX)?,
        ))
    }
}

/// A data source as Feast's client describes it (`str(DataSource)`: its proto as JSON).
#[derive(Debug, Clone, Deserialize)]
pub struct SourceParam {
    /// The JSON text.
    pub data_source_proto: String,
}

/// `offline_write_batch`'s parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteParams {
    /// Exactly one view.
    pub feature_view_names: Vec<String>,
}

/// Parameters of `write_logged_features`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogParams {
    /// The feature service whose logs these are (it names the destination).
    pub feature_service_name: String,
}

/// `persist`'s parameters: the retrieval to run (`retrieve_func`, whose own parameters come
/// in the same command) and the registered source its rows are written as.
#[derive(Debug, Clone, Deserialize)]
pub struct PersistParams {
    /// The registered file source to write (Feast's client names it by the saved dataset's
    /// storage: its path).
    pub data_source_name: String,
    /// Whether existing data there may be replaced.
    #[serde(default)]
    pub allow_overwrite: bool,
    /// The retrieval: `get_historical_features`, `pull_latest_from_table_or_query` or
    /// `pull_all_from_table_or_query`.
    pub retrieve_func: String,
}

/// A `persist`: its parameters and the retrieval it writes.
#[derive(Debug, Clone)]
pub struct Persist {
    /// The parameters.
    pub params: PersistParams,
    /// The retrieval (a read command).
    pub retrieval: Command,
}

/// One decoded command.
#[derive(Debug, Clone)]
pub enum Command {
    /// A training set (Larder's request, or Feast's `get_historical_features`).
    Historical(Box<HistoricalParams>),
    /// `pull_latest_from_table_or_query`.
    PullLatest(PullParams),
    /// `pull_all_from_table_or_query`.
    PullAll(PullParams),
    /// `get_table_column_names_and_types_from_data_source`.
    ColumnTypes(SourceParam),
    /// `validate_data_source`.
    Validate(SourceParam),
    /// `offline_write_batch`.
    OfflineWriteBatch(WriteParams),
    /// `write_logged_features`.
    WriteLoggedFeatures(LogParams),
    /// `persist` (a retrieval written as a registered source's data).
    Persist(Box<Persist>),
    /// A Feast call Larder does not answer.
    Unsupported(String),
}

fn params<T: for<'de> Deserialize<'de>>(api: &str, bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("{api}: bad parameters: {e}")))
}

/// Decodes a descriptor's command.
pub fn parse(bytes: &[u8]) -> Result<Command, Status> {
    #[derive(Deserialize)]
    struct Api {
        #[serde(default)]
        api: Option<String>,
    }
    let head: Api = serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("the descriptor's command is not a valid JSON request: {e}")))?;
    Ok(match head.api.as_deref() {
        None | Some("get_historical_features") => {
            Command::Historical(Box::new(params("get_historical_features", bytes)?))
        }
        Some(api @ "pull_latest_from_table_or_query") => Command::PullLatest(params(api, bytes)?),
        Some(api @ "pull_all_from_table_or_query") => Command::PullAll(params(api, bytes)?),
        Some(api @ "get_table_column_names_and_types_from_data_source") => Command::ColumnTypes(params(api, bytes)?),
        Some(api @ "validate_data_source") => Command::Validate(params(api, bytes)?),
        Some(api @ "offline_write_batch") => Command::OfflineWriteBatch(params(api, bytes)?),
        Some(api @ "write_logged_features") => Command::WriteLoggedFeatures(params(api, bytes)?),
        Some(api @ "persist") => {
            let p: PersistParams = params(api, bytes)?;
            let retrieval = match p.retrieve_func.as_str() {
                "get_historical_features" | "pull_latest_from_table_or_query" | "pull_all_from_table_or_query" => {
                    // The retrieval's own parameters, as the retrieval alone would send them.
                    let mut v: serde_json::Value = params(api, bytes)?;
                    if let Some(m) = v.as_object_mut() {
                        for k in ["data_source_name", "allow_overwrite", "timeout", "retrieve_func"] {
                            m.remove(k);
                        }
                        m.insert("api".into(), p.retrieve_func.clone().into());
                    }
                    parse(&serde_json::to_vec(&v).map_err(|e| Status::internal(e.to_string()))?)?
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "persist: retrieve_func `{other}` is not a retrieval (get_historical_features, \
                         pull_latest_from_table_or_query, pull_all_from_table_or_query)"
                    )))
                }
            };
            Command::Persist(Box::new(Persist { params: p, retrieval }))
        }
        Some(other) => Command::Unsupported(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feast_commands_decode() {
        let c = parse(br#"{"command_id": "x", "api": "pull_latest_from_table_or_query", "data_source_name": "s",
            "join_key_columns": ["driver_id"], "feature_name_columns": ["conv_rate"], "timestamp_field": "ts",
            "created_timestamp_column": null, "start_date": "2024-01-01T00:00:00+00:00", "end_date": "2024-01-02T00:00:00"}"#)
        .unwrap();
        let Command::PullLatest(p) = c else { panic!("{c:?}") };
        assert_eq!(
            p.window().unwrap(),
            (1_704_067_200_000_000_000, 1_704_153_600_000_000_000)
        );
        assert!(
            matches!(parse(br#"{"api": "no_such_call"}"#).unwrap(), Command::Unsupported(a) if a == "no_such_call")
        );
        let c = parse(
            br#"{"api": "persist", "data_source_name": "ds", "allow_overwrite": true, "timeout": null,
                 "retrieve_func": "get_historical_features", "feature_refs": ["v:f"], "full_feature_names": false}"#,
        )
        .unwrap();
        let Command::Persist(p) = c else { panic!("{c:?}") };
        assert!(p.params.allow_overwrite && p.params.data_source_name == "ds");
        assert!(matches!(&p.retrieval, Command::Historical(h) if h.features == ["v:f"]));
        assert!(parse(br#"{"api": "persist", "data_source_name": "ds", "retrieve_func": "persist"}"#).is_err());
        assert!(matches!(
            parse(br#"{"features": ["v:f"]}"#).unwrap(),
            Command::Historical(_)
        ));
        assert!(parse(br#"{"api": "offline_write_batch"}"#).is_err());
        assert!(parse(br#"{"api": "write_logged_features"}"#).is_err());
        assert!(matches!(
            parse(br#"{"api": "write_logged_features", "feature_service_name": "s"}"#).unwrap(),
            Command::WriteLoggedFeatures(p) if p.feature_service_name == "s"
        ));
        assert!(parse(b"[1").is_err());
    }
}
