//! Entity-key encoding: Feast's `serialize_entity_key`, version 3
//! (`sdk/python/feast/infra/key_encoding_utils.py`). The one function every store uses to turn
//! join-key values into bytes.
//!
//! Layout: `u32le N`, then per join key (sorted by name when N > 1) `u32le 2, u32le len, name`,
//! then per value in the same order `u32le type, u32le len, bytes`.

use crate::value::{Value, ValueError};

/// Serializes the join-key values of one entity row (pairs of key name and value).
pub fn serialize_entity_key(keys: &[(&str, &Value)]) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::with_capacity(16 + keys.len() * 24);
    serialize_entity_key_into(keys, &mut out)?;
    Ok(out)
}

/// Like [`serialize_entity_key`], appending to `out`.
pub fn serialize_entity_key_into(keys: &[(&str, &Value)], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if keys.len() > 1 {
        order.sort_by(|a, b| keys[*a].0.cmp(keys[*b].0));
    }
    let names: Vec<&str> = order.iter().map(|&i| keys[i].0).collect();
    entity_key_header_into(&names, out);
    for &i in &order {
        append_key_value(keys[i].1, out)?;
    }
    Ok(())
}

/// The part of an entity key that depends only on its join-key names (already sorted by
/// name when there are several), appended to `out`: a serving plan writes it once per key set
/// and copies it in front of each row's values.
pub fn entity_key_header_into(sorted_names: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(&(sorted_names.len() as u32).to_le_bytes());
    for name in sorted_names {
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
}

/// Appends one join-key value (type, length, bytes) to an entity key, after its header.
pub fn append_key_value(value: &Value, out: &mut Vec<u8>) -> Result<(), ValueError> {
    let (i32_bytes, i64_bytes);
    let (ty, bytes): (u32, &[u8]) = match value {
        Value::Bytes(b) => (1, b),
        Value::String(s) => (2, s.as_bytes()),
        Value::Int32(i) => {
            i32_bytes = i.to_le_bytes();
            (3, &i32_bytes)
        }
        Value::Int64(i) => {
            i64_bytes = i.to_le_bytes();
            (4, &i64_bytes)
        }
        Value::UnixTimestamp(i) => {
            i64_bytes = i.to_le_bytes();
            (8, &i64_bytes)
        }
        other => return Err(ValueError(format!("{other:?} cannot be part of an entity key"))),
    };
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Vectors produced by Feast's own key_encoding_utils (FEAST_REFERENCE.md §5).
    #[test]
    fn single_int64_key_matches_feast() {
        let got = serialize_entity_key(&[("driver_id", &Value::Int64(1001))]).unwrap();
        assert_eq!(
            got,
            hex("01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000")
        );
        assert_eq!(got.len(), 37);
    }

    #[test]
    fn composite_key_is_sorted_by_name_like_feast() {
        let user = Value::String("u1".into());
        let merchant = Value::Int32(7);
        let expected = hex(
            "02000000 02000000 0b000000 6d65726368616e745f6964 02000000 07000000 757365725f6964 \
             03000000 04000000 07000000 02000000 02000000 7531",
        );
        assert_eq!(
            serialize_entity_key(&[("user_id", &user), ("merchant_id", &merchant)]).unwrap(),
            expected
        );
        assert_eq!(
            serialize_entity_key(&[("merchant_id", &merchant), ("user_id", &user)]).unwrap(),
            expected
        );
    }

    #[test]
    fn key_type_changes_the_bytes() {
        let a = serialize_entity_key(&[("id", &Value::Int64(7))]).unwrap();
        let b = serialize_entity_key(&[("id", &Value::Int32(7))]).unwrap();
        let c = serialize_entity_key(&[("id", &Value::String("7".into()))]).unwrap();
        assert_ne!(a, b);
        assert_ne!(b, c);
    }

    #[test]
    fn non_key_types_are_refused() {
        assert!(serialize_entity_key(&[("x", &Value::Double(1.0))]).is_err());
        assert!(serialize_entity_key(&[("x", &Value::Null)]).is_err());
    }
}
