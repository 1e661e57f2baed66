//! Fuzz target for every parser a request body or a stored row goes through before it reaches a
//! store: the JSON bodies of `/get-online-features`, `/push`, `/write-to-online-store`,
//! `/materialize` and `/apply`, typed values and times read from JSON cells, entity-key
//! serialization, and the online row codec.
//!
//! The first byte picks the parser; the rest is the input. Besides "never panics", each path
//! checks a property that would catch a wrong parser: values re-encode to the same bytes, parsed
//! times format and parse back to the same instant, decoded rows re-encode to what was decoded.
#![no_main]

use larder_protocol::json::{parse_json, time_from_json, value_from_json};
use larder_protocol::key::serialize_entity_key;
use larder_protocol::requests::{
    ApplyRequest, GetOnlineFeaturesRequest, MaterializeIncrementalRequest, MaterializeRequest, PushRequest,
    WriteToOnlineStoreRequest,
};
use larder_protocol::row::Projection;
use larder_protocol::time::{format_feast, parse_time, to_nanos};
use larder_protocol::{OnlineRow, Value};
use larder_registry::ValueType;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

const TYPES: [ValueType; 16] = [
    ValueType::Bytes,
    ValueType::String,
    ValueType::Int32,
    ValueType::Int64,
    ValueType::Double,
    ValueType::Float,
    ValueType::Bool,
    ValueType::UnixTimestamp,
    ValueType::BytesList,
    ValueType::StringList,
    ValueType::Int32List,
    ValueType::Int64List,
    ValueType::DoubleList,
    ValueType::FloatList,
    ValueType::BoolList,
    ValueType::UnixTimestampList,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 7 {
        0 => {
            if let Ok(req) = parse_json::<GetOnlineFeaturesRequest>(body) {
                for (name, column) in &req.entities {
                    for cell in column {
                        entity_key(name, cell);
                    }
                }
            }
        }
        1 => {
            if let Ok(req) = parse_json::<PushRequest>(body) {
                columns(req.df.values());
            }
        }
        2 => {
            if let Ok(req) = parse_json::<WriteToOnlineStoreRequest>(body) {
                columns(req.df.values());
            }
        }
        3 => {
            if let Ok(req) = parse_json::<MaterializeRequest>(body) {
                time_text(&req.start_ts);
                time_text(&req.end_ts);
            }
            if let Ok(req) = parse_json::<MaterializeIncrementalRequest>(body) {
                time_text(&req.end_ts);
            }
        }
        4 => {
            if let Ok(req) = parse_json::<ApplyRequest>(body) {
                let _ = larder_registry::validate(&req.definitions, &larder_registry::resolve::NoLookup);
                let plan = larder_registry::diff(Some(&req.definitions), &req.definitions);
                assert!(
                    plan.changes.is_empty(),
                    "a document differs from itself: {:?}",
                    plan.changes
                );
            }
        }
        5 => stored_row(body),
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                time_text(text);
            }
        }
    }
});

/// A join-key cell, typed as every key type: an accepted value serializes as a key.
fn entity_key(name: &str, cell: &Json) {
    for ty in TYPES {
        if let Ok(v) = Value::from_json_key(cell, ty) {
            serialize_entity_key(&[(name, &v)]).expect("a typed key value serializes");
            round_trip(&v);
        }
    }
}

/// Feature and timestamp cells of a columnar `df`, read as every type.
fn columns<'a>(df: impl Iterator<Item = &'a Vec<Json>>) {
    for column in df {
        for cell in column.iter().take(64) {
            for ty in TYPES {
                if let Ok(v) = value_from_json(cell, ty) {
                    round_trip(&v);
                    let _ = v.to_json();
                }
            }
            let _ = time_from_json(cell);
        }
    }
}

/// The binary encoding of a value decodes to a value with the same encoding, consuming it all.
fn round_trip(v: &Value) {
    let mut bytes = Vec::new();
    v.encode(&mut bytes);
    let mut input = bytes.as_slice();
    let back = Value::decode(&mut input).expect("an encoded value decodes");
    assert!(input.is_empty(), "decoding left bytes behind");
    let mut again = Vec::new();
    back.encode(&mut again);
    assert_eq!(bytes, again);
}

/// A parsed time formats (Feast's adaptive precision) and parses back to the same instant.
fn time_text(text: &str) {
    if let Ok(t) = parse_time(text) {
        let nanos = to_nanos(t);
        let formatted = format_feast(nanos);
        let back = parse_time(&formatted).expect("a formatted time parses");
        assert_eq!(to_nanos(back), nanos, "{text} -> {formatted}");
    }
}

/// Arbitrary bytes as a stored row: refused or decoded; a decoded row re-encodes, in both
/// formats, to rows that decode to the same thing; projected decoding never panics.
fn stored_row(bytes: &[u8]) {
    if let Ok(row) = OnlineRow::decode(b"k".to_vec(), bytes) {
        let encoded = row.encode_value();
        let again = OnlineRow::decode(b"k".to_vec(), &encoded).expect("an encoded row decodes");
        assert_eq!(again.encode_value(), encoded);
        assert_eq!(OnlineRow::version_of(&encoded).map(|v| v.0), Some(row.event_ts));
        let schema = std::sync::Arc::new(row.schema());
        let positional = row.encode_value_v2(schema.id);
        let lookup = |id: u64| (id == schema.id).then(|| std::sync::Arc::clone(&schema));
        let back = OnlineRow::decode_with(b"k".to_vec(), &positional, &lookup).expect("a format-2 row decodes");
        assert_eq!(back.encode_value(), encoded);
    }
    let projection = Projection::new(["a", "b"], vec!["b".into(), "zz".into()]);
    let mut out = vec![Value::Null; 2];
    let _ = OnlineRow::decode_projected_into(bytes, &projection, &mut out, &|_| None);
}
