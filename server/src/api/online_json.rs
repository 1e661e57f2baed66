//! The `get_online_features` JSON body, written straight into one pre-sized buffer: numbers with
//! serde_json's own formatter (so the bytes are serde_json's), each distinct event time
//! formatted once per entity row, statuses and the key columns' epoch as static text.

use serde_json::ser::{CompactFormatter, Formatter};

use crate::serving::{Column, OnlineResponse};
use crate::time::write_feast;
use crate::value::Value;

/// What the key columns and computed outputs answer as event time (Feast's epoch).
const EPOCH: &[u8] = b"\"1970-01-01T00:00:00Z\"";

/// The response body, byte for byte what serializing Feast's response shape with serde_json
/// gives.
pub fn response_body(r: &OnlineResponse) -> Vec<u8> {
    let cells: usize = r.columns.iter().map(|c| c.values.len()).sum();
    let mut out = Vec::with_capacity(64 + r.feature_names.len() * 48 + cells * 40);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    for (i, name) in r.feature_names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, name);
    }
    out.extend_from_slice(b"]},\"results\":[");
    let rows = r.columns.first().map_or(0, |c| c.values.len());
    let mut times = TimeMemo::new(rows);
    for (i, col) in r.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_column(&mut out, col, &mut times);
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_column(out: &mut Vec<u8>, col: &Column, times: &mut TimeMemo) {
    out.extend_from_slice(b"{\"values\":[");
    for (i, v) in col.values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, v);
    }
    out.extend_from_slice(b"],\"statuses\":[");
    for (i, s) in col.statuses.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(s.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"event_timestamps\":[");
    for (row, &ts) in col.event_timestamps.iter().enumerate() {
        if row > 0 {
            out.push(b',');
        }
        times.write(out, row, ts);
    }
    out.extend_from_slice(b"]}");
}

/// One value as Feast's server prints it.
fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        // Writing into a Vec cannot fail.
        Value::Int32(i) => {
            let _ = CompactFormatter.write_i32(out, *i);
        }
        Value::Int64(i) | Value::UnixTimestamp(i) => {
            let _ = CompactFormatter.write_i64(out, *i);
        }
        Value::Double(f) if f.is_finite() => {
            let _ = CompactFormatter.write_f64(out, *f);
        }
        // As Feast's server prints it: the float32 widened to a double
        // (0.9350247979164124, not 0.9350248), so clients get the same number from both.
        Value::Float(f) if f.is_finite() => {
            let _ = CompactFormatter.write_f64(out, *f as f64);
        }
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_str(out, s),
        Value::List(l) => {
            out.push(b'[');
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        // Bytes (base64), maps, JSON documents and non-finite floats: their JSON form.
        other => {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &other.to_json());
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// The text of the event time last written for each entity row: the columns of one view share
/// their rows' times, so each is formatted once.
struct TimeMemo {
    last: Vec<(i64, u8, [u8; 32])>,
}

impl TimeMemo {
    fn new(rows: usize) -> TimeMemo {
        TimeMemo {
            last: vec![(0, 0, [0; 32]); rows],
        }
    }

    fn write(&mut self, out: &mut Vec<u8>, row: usize, ts: i64) {
        if ts == 0 {
            out.extend_from_slice(EPOCH);
            return;
        }
        let Some(slot) = self.last.get_mut(row) else {
            out.push(b'"');
            write_feast(ts, out);
            out.push(b'"');
            return;
        };
        if slot.1 == 0 || slot.0 != ts {
            let start = out.len();
            out.push(b'"');
            write_feast(ts, out);
            out.push(b'"');
            let text = &out[start..];
            slot.0 = ts;
            slot.1 = text.len() as u8;
            slot.2[..text.len()].copy_from_slice(text);
        } else {
            out.extend_from_slice(&slot.2[..slot.1 as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::ser::{SerializeMap, Serializer};
    use serde::Serialize;

    use super::*;
    use crate::serving::FieldStatus;
    use crate::time::format_feast;

    /// The response as serde_json writes it from Feast's shape: the independent expectation.
    fn with_serde(r: &OnlineResponse) -> Vec<u8> {
        struct V<'a>(&'a Value);
        impl Serialize for V<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    Value::Float(f) if f.is_finite() => s.serialize_f64(*f as f64),
                    Value::List(l) => s.collect_seq(l.iter().map(V)),
                    other => other.to_json().serialize(s),
                }
            }
        }
        struct C<'a>(&'a Column);
        impl Serialize for C<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("values", &self.0.values.iter().map(V).collect::<Vec<_>>())?;
                m.serialize_entry(
                    "statuses",
                    &self.0.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                )?;
                m.serialize_entry(
                    "event_timestamps",
                    &self
                        .0
                        .event_timestamps
                        .iter()
                        .map(|t| format_feast(*t))
                        .collect::<Vec<_>>(),
                )?;
                m.end()
            }
        }
        // The top-level keys in Feast's order (serde_json's own maps would sort them).
        let mut out = b"{\"metadata\":".to_vec();
        serde_json::to_writer(&mut out, &serde_json::json!({"feature_names": r.feature_names})).unwrap();
        out.extend_from_slice(b",\"results\":[");
        for (i, c) in r.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &C(c)).unwrap();
        }
        out.extend_from_slice(b"]}");
        out
    }

    #[test]
    fn the_writer_matches_serde_json_byte_for_byte() {
        let values = vec![
            Value::Null,
            Value::Int32(-7),
            Value::Int64(i64::MIN),
            Value::UnixTimestamp(1_700_000_000),
            Value::Double(0.1),
            Value::Double(1e21),
            Value::Double(-0.0),
            Value::Double(f64::NAN),
            Value::Float(0.935_024_8),
            Value::Float(f32::INFINITY),
            Value::Bool(true),
            Value::Bool(false),
            Value::String("é \"quoted\" \\ \n \u{1}".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::List(vec![Value::Float(1.5), Value::Null, Value::Double(f64::NEG_INFINITY)]),
            Value::Map(vec![("k".into(), Value::Int64(1)), ("n".into(), Value::Null)]),
            Value::Json("{\"a\": 1}".into()),
        ];
        let n = values.len();
        let times: Vec<i64> = (0..n as i64)
            .map(|i| match i % 4 {
                0 => 0,
                1 => 1_618_225_182_000_000_000 + i,
                2 => 1_618_225_182_500_000_000,
                _ => -1_000_000_001,
            })
            .collect();
        let r = OnlineResponse {
            feature_names: vec!["driver_id".into(), "a \"b\"".into()],
            dtypes: vec![larder_registry::ValueType::Double; 3],
            columns: vec![
                Column {
                    values: values.clone(),
                    statuses: vec![FieldStatus::Present; n],
                    event_timestamps: vec![0; n],
                },
                Column {
                    values,
                    statuses: (0..n)
                        .map(|i| [FieldStatus::Present, FieldStatus::NotFound, FieldStatus::OutsideMaxAge][i % 3])
                        .collect(),
                    event_timestamps: times.clone(),
                },
                Column {
                    values: vec![Value::Null; n],
                    statuses: vec![FieldStatus::NotFound; n],
                    // Same rows, other times: the memo must not answer the previous column's.
                    event_timestamps: times.iter().map(|t| t + 1_000).collect(),
                },
            ],
        };
        let got = response_body(&r);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(with_serde(&r)).unwrap()
        );
    }
}
