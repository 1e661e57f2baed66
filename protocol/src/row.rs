//! One stored row of a view and its binary layouts.
//!
//! Both start with the same fixed header: `u8 format`, `i64le event_ts_nanos`,
//! `i64le created_ts_nanos` (`i64::MIN` when absent), so that newest-wins merges compare rows
//! of either format without decoding them.
//!
//! - Format 1: header, `u16le n`, then `n` times `u16le name_len, name, value` (see
//!   [`Value::encode`]): every row carries its feature names.
//! - Format 2: header, `u64le schema id`, `u16le n`, then `n` values, by position in the row's
//!   [`RowSchema`] (its feature names in order), which the store keeps once per schema. A read
//!   whose view still has that schema takes each value by position; a row written under an
//!   earlier schema is read through its schema's names.

use std::sync::Arc;

use crate::value::{take, take_arr, Value, ValueError};

/// The format that names every feature in every row.
pub const FORMAT_V1: u8 = 1;
/// The positional format (see the module doc).
pub const FORMAT_V2: u8 = 2;
const FORMAT: u8 = FORMAT_V1;
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

    /// Encodes everything but the key in format 2, for a row whose feature names are, in order,
    /// those of the schema `schema_id` (see [`OnlineRow::schema`]).
    pub fn encode_value_v2(&self, schema_id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 10 + self.values.len() * 9);
        out.push(FORMAT_V2);
        out.extend_from_slice(&self.event_ts.to_le_bytes());
        out.extend_from_slice(&self.created_ts.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&schema_id.to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u16).to_le_bytes());
        for (_, v) in &self.values {
            v.encode(&mut out);
        }
        out
    }

    /// The schema of the row: its feature names, in order.
    pub fn schema(&self) -> RowSchema {
        RowSchema::new(self.values.iter().map(|(n, _)| n.clone()).collect())
    }

    /// Whether the row's feature names are, in order, `schema`'s.
    pub fn has_schema(&self, schema: &RowSchema) -> bool {
        self.values.len() == schema.names.len() && self.values.iter().zip(&schema.names).all(|((n, _), s)| n == s)
    }

    /// The schema id of a format-2 row; `None` for a format-1 or malformed one.
    pub fn schema_id_of(bytes: &[u8]) -> Option<u64> {
        if bytes.first() != Some(&FORMAT_V2) {
            return None;
        }
        Some(u64::from_le_bytes(
            bytes.get(HEADER_LEN..HEADER_LEN + 8)?.try_into().ok()?,
        ))
    }

    /// Decodes a stored value of format 1 for `key` (a format-2 row needs its schema: see
    /// [`OnlineRow::decode_with`]).
    pub fn decode(key: Vec<u8>, bytes: &[u8]) -> Result<OnlineRow, ValueError> {
        Self::decode_with(key, bytes, &|_| None)
    }

    /// Decodes a stored value of either format for `key`; `schemas` finds the schema of a
    /// format-2 row by its id.
    pub fn decode_with(key: Vec<u8>, bytes: &[u8], schemas: SchemaLookup<'_>) -> Result<OnlineRow, ValueError> {
        let mut input = bytes;
        let format = take(&mut input, 1)?[0];
        if format == FORMAT_V2 {
            let event_ts = i64::from_le_bytes(take_arr(&mut input)?);
            let created = i64::from_le_bytes(take_arr(&mut input)?);
            let id = u64::from_le_bytes(take_arr(&mut input)?);
            let schema = schemas(id).ok_or_else(|| unknown_schema(id))?;
            let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
            if n != schema.names.len() {
                return Err(ValueError(format!(
                    "a row of schema {id:016x} has {n} values for {} names",
                    schema.names.len()
                )));
            }
            let mut values = Vec::with_capacity(n);
            for name in &schema.names {
                values.push((name.clone(), Value::decode(&mut input)?));
            }
            return Ok(OnlineRow {
                key,
                event_ts,
                created_ts: (created != i64::MIN).then_some(created),
                values,
            });
        }
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
        if bytes.len() < HEADER_LEN || !(bytes[0] == FORMAT_V1 || bytes[0] == FORMAT_V2) {
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
    /// time: no feature name is copied and the values not wanted are skipped, not built. A
    /// format-2 row of the projection's own schema takes each value by position; one of another
    /// schema (found with `schemas`) by name.
    pub fn decode_projected_into(
        bytes: &[u8],
        projection: &Projection,
        out: &mut [Value],
        schemas: SchemaLookup<'_>,
    ) -> Result<i64, ValueError> {
        let mut input = bytes;
        let format = take(&mut input, 1)?[0];
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return Err(ValueError(format!("unknown row format {format}")));
        }
        let event_ts = i64::from_le_bytes(take_arr(&mut input)?);
        let _created = take(&mut input, 8)?;
        if out.len() < projection.len() {
            return Err(ValueError(format!(
                "{} slots for {} features",
                out.len(),
                projection.len()
            )));
        }
        if format == FORMAT_V2 {
            let id = u64::from_le_bytes(take_arr(&mut input)?);
            let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
            if id == projection.schema_id {
                for position in 0..n {
                    match projection.by_position.get(position).and_then(|(_, slot)| *slot) {
                        Some(slot) => out[slot] = Value::decode(&mut input)?,
                        None => Value::skip(&mut input)?,
                    }
                }
            } else {
                let schema = schemas(id).ok_or_else(|| unknown_schema(id))?;
                for position in 0..n {
                    let slot = schema
                        .names
                        .get(position)
                        .and_then(|name| projection.wanted.iter().position(|w| w == name));
                    match slot {
                        Some(slot) => out[slot] = Value::decode(&mut input)?,
                        None => Value::skip(&mut input)?,
                    }
                }
            }
            return Ok(event_ts);
        }
        let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
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

/// Finds a [`RowSchema`] by its id (the store's dictionary of the schemas it has written).
pub type SchemaLookup<'a> = &'a dyn Fn(u64) -> Option<Arc<RowSchema>>;

fn unknown_schema(id: u64) -> ValueError {
    ValueError(format!(
        "a row refers to schema {id:016x}, which the store does not have"
    ))
}

/// The feature names of format-2 rows, in order, and their id: a 64-bit FNV-1a hash of the
/// names (each followed by a zero byte), stable across builds and platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSchema {
    /// The id rows refer to.
    pub id: u64,
    /// Feature names, in row order.
    pub names: Vec<String>,
}

impl RowSchema {
    /// The schema of these names (in this order).
    pub fn new(names: Vec<String>) -> RowSchema {
        RowSchema {
            id: Self::id_of(names.iter().map(String::as_str)),
            names,
        }
    }

    /// The id of a schema of these names (in this order).
    pub fn id_of<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for name in names {
            for &b in name.as_bytes().iter().chain(&[0u8]) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The schema's dictionary entry: `u16le n`, then `n` times `u16le len, name`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.names.iter().map(|n| n.len() + 2).sum::<usize>());
        out.extend_from_slice(&(self.names.len() as u16).to_le_bytes());
        for n in &self.names {
            out.extend_from_slice(&(n.len() as u16).to_le_bytes());
            out.extend_from_slice(n.as_bytes());
        }
        out
    }

    /// Reads a dictionary entry; its names must hash to `id`.
    pub fn decode(id: u64, bytes: &[u8]) -> Result<RowSchema, ValueError> {
        let mut input = bytes;
        let n = u16::from_le_bytes(take_arr(&mut input)?) as usize;
        let mut names = Vec::with_capacity(n.min(input.len()));
        for _ in 0..n {
            let len = u16::from_le_bytes(take_arr(&mut input)?) as usize;
            let name = std::str::from_utf8(take(&mut input, len)?).map_err(|e| ValueError(e.to_string()))?;
            names.push(name.to_string());
        }
        let schema = RowSchema::new(names);
        if schema.id != id {
            return Err(ValueError(format!(
                "the dictionary entry of schema {id:016x} does not hash to it"
            )));
        }
        Ok(schema)
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
    /// The id of the view's schema (format-2 rows written under it are read by position).
    schema_id: u64,
}

impl Projection {
    /// The projection of a view whose features are `schema` (in order) onto `wanted`.
    pub fn new<'a>(schema: impl IntoIterator<Item = &'a str>, wanted: Vec<String>) -> Projection {
        let by_position: Vec<(String, Option<usize>)> = schema
            .into_iter()
            .map(|name| (name.to_string(), wanted.iter().position(|w| w == name)))
            .collect();
        let schema_id = RowSchema::id_of(by_position.iter().map(|(n, _)| n.as_str()));
        Projection {
            wanted,
            by_position,
            schema_id,
        }
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
        assert_eq!(OnlineRow::decode_projected_into(&bytes, &p, &mut got, &|_| None), Ok(7));
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
                OnlineRow::decode_projected_into(&bytes[..cut], &p, &mut got, &|_| None).is_err(),
                "cut at {cut}"
            );
        }
        assert!(OnlineRow::decode_projected_into(&bytes, &p, &mut got[..3], &|_| None).is_err());
    }

    #[test]
    fn rows_written_under_another_schema_are_found_by_name() {
        // The view's schema gained a feature in front and lost `b` since the row was written.
        let bytes = sample().encode_value();
        let p = Projection::new(["new", "a", "c", "d"], vec!["new".into(), "c".into(), "b".into()]);
        let mut got = vec![Value::Null; 3];
        OnlineRow::decode_projected_into(&bytes, &p, &mut got, &|_| None).unwrap();
        assert_eq!(
            got,
            vec![
                Value::Null,
                Value::Double(0.25),
                Value::List(vec![Value::Int64(1), Value::Null])
            ]
        );
    }

    /// A format-1 row as the previous release wrote it (bytes fixed here, not produced by this
    /// code): `conv_rate` float 0.5, `trips` int64 7, event 1 s, no created time.
    const V1_ROW: &str = "01 00ca9a3b00000000 0000000000000080 0200 \
        0900 636f6e765f72617465 06 0000003f \
        0500 7472697073 04 0700000000000000";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rows_of_the_previous_release_still_read() {
        let bytes = hex(V1_ROW);
        let row = OnlineRow::decode(b"k".to_vec(), &bytes).unwrap();
        assert_eq!(row.event_ts, 1_000_000_000);
        assert_eq!(row.created_ts, None);
        assert_eq!(
            row.values,
            vec![
                ("conv_rate".into(), Value::Float(0.5)),
                ("trips".into(), Value::Int64(7))
            ]
        );
        let p = Projection::new(["conv_rate", "trips"], vec!["trips".into()]);
        let mut out = vec![Value::Null];
        assert_eq!(
            OnlineRow::decode_projected_into(&bytes, &p, &mut out, &|_| None),
            Ok(1_000_000_000)
        );
        assert_eq!(out, vec![Value::Int64(7)]);
        assert_eq!(OnlineRow::version_of(&bytes), Some((1_000_000_000, i64::MIN)));
    }

    #[test]
    fn positional_rows_read_by_position_or_through_their_schema() {
        let row = sample();
        let schema = Arc::new(row.schema());
        assert!(row.has_schema(&schema));
        let bytes = row.encode_value_v2(schema.id);
        assert_eq!(OnlineRow::schema_id_of(&bytes), Some(schema.id));
        assert_eq!(OnlineRow::version_of(&bytes), Some((7, 3)));
        let lookup = |id: u64| (id == schema.id).then(|| Arc::clone(&schema));
        assert_eq!(OnlineRow::decode_with(b"k".to_vec(), &bytes, &lookup).unwrap(), row);
        // Without its schema a positional row is an error, not a guess.
        assert!(OnlineRow::decode(b"k".to_vec(), &bytes).is_err());
        // The view's schema is the row's: by position, no lookup needed.
        let same = Projection::new(["a", "b", "c", "d"], vec!["c".into(), "a".into()]);
        let mut out = vec![Value::Null; 2];
        OnlineRow::decode_projected_into(&bytes, &same, &mut out, &|_| None).unwrap();
        assert_eq!(out, vec![Value::Double(0.25), Value::String("x".into())]);
        // The view's schema changed since: through the row's schema, by name.
        let changed = Projection::new(["new", "c", "a"], vec!["new".into(), "a".into(), "c".into()]);
        let mut out = vec![Value::Null; 3];
        assert!(OnlineRow::decode_projected_into(&bytes, &changed, &mut out, &|_| None).is_err());
        OnlineRow::decode_projected_into(&bytes, &changed, &mut out, &lookup).unwrap();
        assert_eq!(out, vec![Value::Null, Value::String("x".into()), Value::Double(0.25)]);
        // Truncations are errors.
        for cut in 0..bytes.len() {
            assert!(
                OnlineRow::decode_with(vec![], &bytes[..cut], &lookup).is_err(),
                "cut at {cut}"
            );
            assert!(
                OnlineRow::decode_projected_into(&bytes[..cut], &same, &mut out, &lookup).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn schema_entries_round_trip_and_ids_are_stable() {
        let schema = RowSchema::new(vec!["conv_rate".into(), "trips".into()]);
        assert_eq!(RowSchema::decode(schema.id, &schema.encode()).unwrap(), schema);
        assert!(RowSchema::decode(schema.id ^ 1, &schema.encode()).is_err());
        // FNV-1a 64 of "a\0": computed by hand from the algorithm's constants.
        assert_eq!(RowSchema::id_of(["a"]), 0x089b_e207_b544_f1e4);
        assert_ne!(RowSchema::id_of(["ab", "c"]), RowSchema::id_of(["a", "bc"]));
        assert_ne!(RowSchema::id_of(["a", "b"]), RowSchema::id_of(["b", "a"]));
    }
}
