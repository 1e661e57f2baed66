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
}
