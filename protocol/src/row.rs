//! One stored row of a view and its binary layout.
//!
//! Layout: `u8 format (1)`, `i64le event_ts_nanos`, `i64le created_ts_nanos` (`i64::MIN` when
//! absent), `u16le n`, then `n` times `u16le name_len, name, value` (see [`Value::encode`]).
//! The fixed header lets the RocksDB merge operator compare rows without decoding them.

use crate::value::{take, take_arr, Value, ValueError};

const FORMAT: u8 = 1;
/// Length of the fixed header (format byte and the two timestamps).
pub const HEADER_LEN: usize = 17;

/// One entity's latest values for one view.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    /// Serialized entity key (see [`crate::key`]).
    pub key: Vec<u8>,
    /// Event time of the values, ns since the epoch.
    pub event_ts: i64,
    /// Creation time, ns since the epoch, when the source has one.
    pub created_ts: Option<i64>,
    /// Feature name and value pairs.
    pub values: Vec<(String, Value)>,
}

impl OnlineRow {
    /// Encodes everything but the key.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 2 + self.values.len() * 16);
        out.push(FORMAT);
        out.extend_from_slice(&self.event_ts.to_le_bytes());
        out.extend_from_slice(&self.created_ts.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u16).to_le_bytes());
        for (name, v) in &self.values {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            v.encode(&mut out);
        }
        out
    }

    /// Decodes a stored value for `key`.
    pub fn decode(key: Vec<u8>, bytes: &[u8]) -> Result<OnlineRow, ValueError> {
        let mut input = bytes;
        let format = take(&mut input, 1)?[0];
        if format != FORMAT {
            return Err(ValueError(format!("unknown row format {format}")));
        }
        let event_ts = i64::from_le_bytes(take_arr(&mut input)?);
        let created = i64::from_le_bytes(take_arr(&mut input)?);
        let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let len = u16::from_le_bytes(take_arr(&mut input)?) as usize;
            let name = std::str::from_utf8(take(&mut input, len)?)
                .map_err(|e| ValueError(e.to_string()))?
                .to_string();
            values.push((name, Value::decode(&mut input)?));
        }
        Ok(OnlineRow {
            key,
            event_ts,
            created_ts: (created != i64::MIN).then_some(created),
            values,
        })
    }

    /// The `(event_ts, created_ts)` ordering key of an encoded row; `None` when malformed.
    pub fn version_of(bytes: &[u8]) -> Option<(i64, i64)> {
        if bytes.len() < HEADER_LEN || bytes[0] != FORMAT {
            return None;
        }
        let ts = i64::from_le_bytes(bytes[1..9].try_into().ok()?);
        let created = i64::from_le_bytes(bytes[9..17].try_into().ok()?);
        Some((ts, created))
    }

    /// The value of feature `name`, if the row has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Writes the features `projection` wants into `out` (one value per slot; the features the
    /// row lacks are left as they are) and returns the row's event time.
    pub fn project_into(&self, projection: &Projection, out: &mut [Value]) -> i64 {
        for (position, (name, value)) in self.values.iter().enumerate() {
            if let Some(slot) = projection.slot_of(position, name.as_bytes()) {
                out[slot] = value.clone();
            }
        }
        self.event_ts
    }

    /// Decodes only the features `projection` wants from a stored value into `out` (one value
    /// per slot; the features the row lacks are left as they are) and returns the row's event
    /// time: no feature name is copied and the values not wanted are skipped, not built.
    pub fn decode_projected_into(bytes: &[u8], projection: &Projection, out: &mut [Value]) -> Result<i64, ValueError> {
        let mut input = bytes;
        let format = take(&mut input, 1)?[0];
        if format != FORMAT {
            return Err(ValueError(format!("unknown row format {format}")));
        }
        let event_ts = i64::from_le_bytes(take_arr(&mut input)?);
        let _created = take(&mut input, 8)?;
        let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
        if out.len() < projection.len() {
            return Err(ValueError(format!(
                "{} slots for {} features",
                out.len(),
                projection.len()
            )));
        }
        for position in 0..n {
            let len = u16::from_le_bytes(take_arr(&mut input)?) as usize;
            let name = take(&mut input, len)?;
            match projection.slot_of(position, name) {
                Some(slot) => out[slot] = Value::decode(&mut input)?,
                None => Value::skip(&mut input)?,
            }
        }
        Ok(event_ts)
    }
}

/// The features a read wants of one view, in the order of their slots, and how a stored row's
/// features find their slot: rows are written in the view's schema order, so the feature at
/// position `i` of a row is first compared with the schema's `i`-th feature (one comparison per
/// cell); a row written under another schema falls back to a search by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    wanted: Vec<String>,
    /// Per schema position: the feature's name and its slot when wanted.
    by_position: Vec<(String, Option<usize>)>,
}

impl Projection {
    /// The projection of a view whose features are `schema` (in order) onto `wanted`.
    pub fn new<'a>(schema: impl IntoIterator<Item = &'a str>, wanted: Vec<String>) -> Projection {
        let by_position = schema
            .into_iter()
            .map(|name| (name.to_string(), wanted.iter().position(|w| w == name)))
            .collect();
        Projection { wanted, by_position }
    }

    /// How many features are wanted.
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether no feature is wanted.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The wanted features, in slot order.
    pub fn names(&self) -> &[String] {
        &self.wanted
    }

    /// The slot of the feature `name` stored at `position` of a row, if it is wanted.
    pub fn slot_of(&self, position: usize, name: &[u8]) -> Option<usize> {
        if let Some((expected, slot)) = self.by_position.get(position) {
            if expected.as_bytes() == name {
                return *slot;
            }
        }
        self.wanted.iter().position(|w| w.as_bytes() == name)
    }
}

/// The rows of one view's read reduced to a [`Projection`], in one block: row `r`'s values are
/// `values[r * width .. (r + 1) * width]` (null where the row lacks the feature).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedRows {
    /// Values per row (the projection's length).
    pub width: usize,
    /// Per row: the event time of its stored values (ns), `None` when the key has no row.
    pub event_ts: Vec<Option<i64>>,
    /// The values, row by row.
    pub values: Vec<Value>,
}

impl ProjectedRows {
    /// `rows` rows of `width` values, none found yet.
    pub fn new(rows: usize, width: usize) -> ProjectedRows {
        ProjectedRows {
            width,
            event_ts: vec![None; rows],
            values: vec![Value::Null; rows * width],
        }
    }

    /// The values of row `row`, to fill.
    pub fn row_mut(&mut self, row: usize) -> &mut [Value] {
        &mut self.values[row * self.width..(row + 1) * self.width]
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.event_ts.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.event_ts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_expose_their_version() {
        let row = OnlineRow {
            key: b"k".to_vec(),
            event_ts: 1_700_000_000_000_000_000,
            created_ts: None,
            values: vec![("a".into(), Value::Float(0.5)), ("b".into(), Value::Null)],
        };
        let bytes = row.encode_value();
        assert_eq!(OnlineRow::decode(b"k".to_vec(), &bytes).unwrap(), row);
        assert_eq!(OnlineRow::version_of(&bytes), Some((row.event_ts, i64::MIN)));
        assert!(OnlineRow::decode(vec![], &bytes[..bytes.len() - 1]).is_err());
        assert_eq!(OnlineRow::version_of(&bytes[..5]), None);
    }

    fn sample() -> OnlineRow {
        OnlineRow {
            key: b"k".to_vec(),
            event_ts: 7,
            created_ts: Some(3),
            values: vec![
                ("a".into(), Value::String("x".into())),
                ("b".into(), Value::List(vec![Value::Int64(1), Value::Null])),
                ("c".into(), Value::Double(0.25)),
                ("d".into(), Value::Map(vec![("k".into(), Value::Bool(true))])),
            ],
        }
    }

    #[test]
    fn a_projection_decodes_the_wanted_features_in_its_order() {
        let row = sample();
        let bytes = row.encode_value();
        let p = Projection::new(
            ["a", "b", "c", "d"],
            vec!["c".into(), "a".into(), "zz".into(), "d".into()],
        );
        let mut got = vec![Value::Null; 4];
        assert_eq!(OnlineRow::decode_projected_into(&bytes, &p, &mut got), Ok(7));
        let expected = vec![
            Value::Double(0.25),
            Value::String("x".into()),
            Value::Null,
            Value::Map(vec![("k".into(), Value::Bool(true))]),
        ];
        assert_eq!(got, expected);
        let mut projected = vec![Value::Null; 4];
        assert_eq!(row.project_into(&p, &mut projected), 7);
        assert_eq!(projected, expected);
        // Truncated rows and too few slots are errors, not panics.
        for cut in 0..bytes.len() {
            assert!(
                OnlineRow::decode_projected_into(&bytes[..cut], &p, &mut got).is_err(),
                "cut at {cut}"
            );
        }
        assert!(OnlineRow::decode_projected_into(&bytes, &p, &mut got[..3]).is_err());
    }

    #[test]
    fn rows_written_under_another_schema_are_found_by_name() {
        // The view's schema gained a feature in front and lost `b` since the row was written.
        let bytes = sample().encode_value();
        let p = Projection::new(["new", "a", "c", "d"], vec!["new".into(), "c".into(), "b".into()]);
        let mut got = vec![Value::Null; 3];
        OnlineRow::decode_projected_into(&bytes, &p, &mut got).unwrap();
        assert_eq!(
            got,
            vec![
                Value::Null,
                Value::Double(0.25),
                Value::List(vec![Value::Int64(1), Value::Null])
            ]
        );
    }
}
