//! Property tests (proptest): the Feast v3 entity-key encoding round-trips and is injective, and
//! the point-in-time join agrees with a naive reference implementation written here on random
//! feature tables (duplicate event times, created-time ties, nulls, ttl) and entity rows
//! (duplicates, rows before any data, unknown keys).

// Fixtures and checks of files, outside the runtime.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use futures::TryStreamExt;
use larder_registry::FileSource;
use larder_server::key::serialize_entity_key_into;
use larder_server::offline::parquet::ParquetOfflineStore;
use larder_server::offline::{HistoricalRequest, HistoricalView, OfflineStore};
use larder_server::value::Value;
use proptest::prelude::*;

// ---- entity keys -------------------------------------------------------------------------

/// Decodes Feast's v3 serialization (the spec, written independently of the encoder).
fn decode_key(mut b: &[u8]) -> Vec<(String, (u32, Vec<u8>))> {
    fn u32le(b: &mut &[u8]) -> u32 {
        let v = u32::from_le_bytes(b[..4].try_into().unwrap());
        *b = &b[4..];
        v
    }
    fn bytes(b: &mut &[u8], n: usize) -> Vec<u8> {
        let v = b[..n].to_vec();
        *b = &b[n..];
        v
    }
    let n = u32le(&mut b) as usize;
    let mut names = Vec::new();
    for _ in 0..n {
        assert_eq!(u32le(&mut b), 2, "key names are STRING");
        let len = u32le(&mut b) as usize;
        names.push(String::from_utf8(bytes(&mut b, len)).unwrap());
    }
    let mut out = Vec::new();
    for name in names {
        let ty = u32le(&mut b);
        let len = u32le(&mut b) as usize;
        out.push((name, (ty, bytes(&mut b, len))));
    }
    assert!(b.is_empty(), "no trailing bytes");
    out
}

fn key_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int64),
        any::<i32>().prop_map(Value::Int32),
        "[a-zA-Z0-9 _é-]{0,12}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ]
}

fn expected_bytes(v: &Value) -> (u32, Vec<u8>) {
    match v {
        Value::Int64(i) => (4, i.to_le_bytes().to_vec()),
        Value::Int32(i) => (3, i.to_le_bytes().to_vec()),
        Value::String(s) => (2, s.as_bytes().to_vec()),
        Value::Bytes(b) => (1, b.clone()),
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn entity_keys_round_trip_in_feast_order(keys in proptest::collection::btree_map("[a-z_]{1,8}", key_value(), 1..4)) {
        // Feast sorts join keys by name when there are several (a BTreeMap iterates sorted).
        let mut shuffled: Vec<(&str, &Value)> = keys.iter().map(|(k, v)| (k.as_str(), v)).collect();
        shuffled.reverse();
        let mut out = Vec::new();
        serialize_entity_key_into(&shuffled, &mut out).unwrap();
        let decoded = decode_key(&out);
        let want: Vec<(String, (u32, Vec<u8>))> = if keys.len() == 1 {
            shuffled.iter().map(|(k, v)| (k.to_string(), expected_bytes(v))).collect()
        } else {
            keys.iter().map(|(k, v)| (k.clone(), expected_bytes(v))).collect()
        };
        prop_assert_eq!(decoded, want);
    }

    #[test]
    fn different_keys_encode_differently(a in key_value(), b in key_value()) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        serialize_entity_key_into(&[("k", &a)], &mut x).unwrap();
        serialize_entity_key_into(&[("k", &b)], &mut y).unwrap();
        prop_assert_eq!(x == y, expected_bytes(&a) == expected_bytes(&b));
    }
}

// ---- point-in-time join --------------------------------------------------------------------

/// (key, event hour, created hour, value)
type Row = (i64, i64, Option<i64>, Option<f64>);
const H: i64 = 3_600_000_000; // one hour in microseconds

fn write_source(dir: &std::path::Path, rows: &[Row]) {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", ts.clone(), false),
        Field::new("created", ts, true),
        Field::new("v", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1 * H).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.2.map(|c| c * H)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(dir.join("d.parquet")).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The reference: for each entity row, among rows of the same key with ts <= T (and
/// ts >= T - ttl), the greatest (ts, created); its value, else null. Ties on (ts, created)
/// are excluded from the generated data (Feast leaves their order unspecified).
fn naive(rows: &[Row], entities: &[(i64, i64)], ttl_hours: Option<i64>) -> Vec<Option<f64>> {
    entities
        .iter()
        .map(|(k, t)| {
            rows.iter()
                .filter(|r| r.0 == *k && r.1 <= *t && ttl_hours.is_none_or(|ttl| r.1 >= t - ttl))
                .max_by_key(|r| (r.1, r.2.unwrap_or(i64::MIN)))
                .and_then(|r| r.3)
        })
        .collect()
}

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            0i64..4,
            0i64..12,
            proptest::option::of(0i64..6),
            proptest::option::weighted(0.9, -100.0f64..100.0),
        ),
        0..40,
    )
    .prop_map(|rows| {
        // Make (key, ts, created) unique so that the newest row is well defined.
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|r| seen.insert((r.0, r.1, r.2)))
            .collect::<Vec<_>>()
    })
    .prop_map(|rows| {
        // Within one (key, ts), a null created time ties with nothing else only if it is alone.
        let mut by: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for r in &rows {
            *by.entry((r.0, r.1)).or_default() += 1;
        }
        rows.into_iter()
            .filter(|r| r.2.is_some() || by[&(r.0, r.1)] == 1)
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    #[test]
    fn point_in_time_join_matches_the_naive_reference(
        rows in rows_strategy(),
        entities in proptest::collection::vec((0i64..5, -1i64..14), 1..25),
        ttl in proptest::option::of(1i64..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Parquet needs at least one row to carry the schema; an always-missed key otherwise.
        let rows = if rows.is_empty() { vec![(99, 0, Some(0), Some(1.0))] } else { rows };
        write_source(dir.path(), &rows);
        let source = FileSource {
            name: "src".into(),
            path: "d.parquet".into(),
            timestamp_field: "ts".into(),
            created_timestamp_column: Some("created".into()),
            field_mapping: BTreeMap::new(),
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
            postgres: None,
        };
        let entity_schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]));
        let entity = RecordBatch::try_new(
            Arc::clone(&entity_schema),
            vec![
                Arc::new(Int64Array::from(entities.iter().map(|e| e.0).collect::<Vec<_>>())),
                Arc::new(TimestampMicrosecondArray::from(entities.iter().map(|e| e.1 * H).collect::<Vec<_>>()).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let store = ParquetOfflineStore::new(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let batches: Vec<RecordBatch> = rt.block_on(async {
            let stream = store
                .get_historical_features(HistoricalRequest {
                    entity: vec![entity],
                    views: vec![HistoricalView {
                        view: "v".into(),
                        source: &source,
                        join_keys: vec!["id".into()],
                        features: vec![("v".into(), "v".into())],
                        ttl_seconds: ttl.map(|h| h * 3600),
                        aggregations: vec![],
                    }],
                })
                .await
                .unwrap();
            stream.try_collect().await.unwrap()
        });
        let mut ids = Vec::new();
        let mut got = Vec::new();
        for b in &batches {
            let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
            let v = b.column_by_name("v").unwrap().as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                ids.push(id.value(i));
                got.push((!v.is_null(i)).then(|| v.value(i)));
            }
        }
        prop_assert_eq!(ids, entities.iter().map(|e| e.0).collect::<Vec<_>>(), "every entity row, in order");
        prop_assert_eq!(got, naive(&rows, &entities, ttl));
    }
}
