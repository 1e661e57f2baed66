//! Decoding a stream view's messages: one pass over each JSON message, keeping only the fields
//! the view and its offline copy use (the others are skipped unparsed), into the online row,
//! the aggregated values and the offline row of the event.
//!
//! The typing is `/push`'s (the same functions): a bad event gets the reason `/push` would
//! give for its field (`user_id: expected an integer for a INT64 key, got "seven"`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;
use larder_protocol::json::{time_from_json, value_from_json};
use larder_registry::ValueType;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use super::StreamView;
use crate::key::serialize_entity_key_into;
use crate::online::OnlineRow;
use crate::value::Value;

/// Where each column the view needs sits in a decoded message.
pub(super) struct Layout<'a> {
    sv: &'a StreamView<'a>,
    /// Column name (after the source's field mapping) -> index.
    index: HashMap<&'a str, usize, foldhash::fast::RandomState>,
    /// Number of columns.
    width: usize,
    ts: usize,
    /// The created-time columns, in the order they are looked for.
    created: Vec<(usize, &'a str)>,
    keys: Vec<(usize, &'a str, ValueType)>,
    features: Vec<(usize, &'a str, ValueType)>,
    aggregated: Vec<(usize, &'a str)>,
    /// The batch source's columns (the offline copy), in its schema's order.
    offline: Vec<(usize, &'a str)>,
}

/// One decoded, validated event.
pub(super) struct Decoded {
    /// The online row.
    pub row: OnlineRow,
    /// The aggregated columns' values (aggregated views), in [`super::tiles::columns_of`]'s order.
    pub agg_values: Vec<Option<f64>>,
    /// The batch source's columns as the message gave them (`None`: not in the message).
    pub offline: Vec<Option<Json>>,
}

impl<'a> Layout<'a> {
    /// The layout of `sv`'s messages; `schema` is the batch source's, `aggregated` the
    /// aggregated columns.
    pub fn new(sv: &'a StreamView<'a>, schema: &'a SchemaRef, aggregated: &'a [String]) -> Self {
        let mut index: HashMap<&'a str, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut add = |name: &'a str| {
            let next = index.len();
            *index.entry(name).or_insert(next)
        };
        let ts = add(sv.batch.timestamp_field.as_str());
        let created = sv
            .batch
            .created_timestamp_column
            .as_deref()
            .into_iter()
            .chain(["created"])
            .map(|c| (add(c), c))
            .collect();
        let keys = sv
            .view
            .entity_columns
            .iter()
            .map(|k| (add(k.name.as_str()), k.name.as_str(), k.dtype))
            .collect();
        let features = sv
            .view
            .features
            .iter()
            .map(|f| (add(f.name.as_str()), f.name.as_str(), f.dtype))
            .collect();
        let aggregated = aggregated.iter().map(|c| (add(c.as_str()), c.as_str())).collect();
        let offline = schema
            .fields()
            .iter()
            .map(|f| (add(f.name().as_str()), f.name().as_str()))
            .collect();
        let width = index.len();
        Layout {
            sv,
            index,
            width,
            ts,
            created,
            keys,
            features,
            aggregated,
            offline,
        }
    }

    /// The column a message field goes to: the source's field mapping applies, and the
    /// stream's timestamp field becomes the batch source's.
    fn column_of(&self, field: &str) -> Option<usize> {
        let source = self.sv.source;
        let mapped = source.field_mapping.get(field).map_or(field, String::as_str);
        let name = if mapped == source.timestamp_field {
            self.sv.batch.timestamp_field.as_str()
        } else {
            mapped
        };
        self.index.get(name).copied()
    }

    /// Decodes one message into `row` (cleared first; one slot per column), or says why it
    /// cannot be read.
    fn parse(&self, payload: &[u8], row: &mut Vec<Option<Json>>) -> Result<(), String> {
        row.clear();
        row.resize(self.width, None);
        let mut de = serde_json::Deserializer::from_slice(payload);
        let read = MessageSeed { layout: self, row }
            .deserialize(&mut de)
            .and_then(|()| de.end());
        read.map_err(|e| match e.classify() {
            serde_json::error::Category::Data => "the message is not a JSON object".to_string(),
            _ => format!("unparseable JSON: {e}"),
        })
    }

    /// Decodes and validates one message; `row` is scratch space reused across messages.
    pub fn decode(&self, payload: &[u8], row: &mut Vec<Option<Json>>) -> Result<Decoded, String> {
        self.parse(payload, row)?;
        let view = self.sv.view;
        let ts_name = self.sv.batch.timestamp_field.as_str();
        let Some(ts) = &row[self.ts] else {
            return Err(format!(
                "the timestamp field `{}` is missing",
                self.sv.source.timestamp_field
            ));
        };
        if let Some((_, name, _)) = self.keys.iter().find(|(i, ..)| row[*i].is_none()) {
            return Err(format!(
                "{name}: join key `{name}` of feature view {} is missing",
                view.name
            ));
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, name, ty) in &self.keys {
            let json = row[*i].as_ref().unwrap_or(&Json::Null);
            let v = Value::from_json_key(json, *ty).map_err(|e| format!("{name}: {}", e.0))?;
            keys.push((*name, v));
        }
        let pairs: Vec<(&str, &Value)> = keys.iter().map(|(k, v)| (*k, v)).collect();
        let mut key = Vec::with_capacity(48);
        serialize_entity_key_into(&pairs, &mut key).map_err(|e| e.0)?;
        let event_ts = time_from_json(ts).map_err(|e| format!("{ts_name}: {e}"))?;
        let created_ts = match self.created.iter().find(|(i, _)| row[*i].is_some()) {
            Some((i, name)) => match &row[*i] {
                Some(v) if !v.is_null() => Some(time_from_json(v).map_err(|e| format!("{name}: {e}"))?),
                _ => None,
            },
            None => None,
        };
        let mut values = Vec::with_capacity(self.features.len());
        for (i, name, ty) in &self.features {
            let v = match &row[*i] {
                Some(json) => value_from_json(json, *ty).map_err(|e| format!("{name}: {e}"))?,
                None => Value::Null,
            };
            values.push(((*name).to_string(), v));
        }
        let mut agg_values = Vec::with_capacity(self.aggregated.len());
        for (i, name) in &self.aggregated {
            agg_values.push(match &row[*i] {
                None | Some(Json::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .ok_or_else(|| format!("{name}: expected a number, got {v}"))?,
                ),
            });
        }
        let offline = self.offline.iter().map(|(i, _)| row[*i].take()).collect();
        Ok(Decoded {
            row: OnlineRow {
                key,
                event_ts,
                created_ts,
                values,
            },
            agg_values,
            offline,
        })
    }

    /// The offline rows of `events` as the column map `/push` takes: the batch source's
    /// columns that at least one event has (null where an event lacks it).
    pub fn offline_columns<'e>(
        &self,
        events: impl Iterator<Item = &'e [Option<Json>]> + Clone,
    ) -> IndexMap<String, Vec<Json>> {
        let mut out = IndexMap::new();
        for (c, (_, name)) in self.offline.iter().enumerate() {
            if events.clone().any(|e| e[c].is_some()) {
                let col = events.clone().map(|e| e[c].clone().unwrap_or(Json::Null)).collect();
                out.insert((*name).to_string(), col);
            }
        }
        out
    }
}

/// A message field name, borrowed from the payload when it has no escapes.
struct FieldName<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads one message object into its layout's slots.
struct MessageSeed<'l, 'r> {
    layout: &'l Layout<'l>,
    row: &'r mut Vec<Option<Json>>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(FieldName(name)) = map.next_key()? {
            match self.layout.column_of(&name) {
                Some(i) => self.row[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};
    use larder_registry::{FeatureView, Field, FileSource, KafkaSource, RegistryDoc};
    use serde_json::json;

    use super::*;

    fn parts() -> (RegistryDoc, FeatureView, KafkaSource, FileSource) {
        let kafka: KafkaSource = serde_json::from_value(json!({
            "name": "k", "bootstrap_servers": "b:9092", "topic": "t", "timestamp_field": "ts",
            "batch_source": "f", "field_mapping": {"amt": "amount"}
        }))
        .unwrap();
        let file: FileSource = serde_json::from_value(json!({
            "name": "f", "path": "data/f", "timestamp_field": "event_timestamp"
        }))
        .unwrap();
        let view = FeatureView {
            name: "v".into(),
            entities: vec!["user".into()],
            features: vec![
                Field::new("amount", ValueType::Double),
                Field::new("merchant", ValueType::String),
            ],
            entity_columns: vec![Field::new("user_id", ValueType::Int64)],
            source: "k".into(),
            ttl_seconds: None,
            aggregations: vec![],
            online: true,
            description: String::new(),
            tags: Default::default(),
            owner: String::new(),
        };
        (RegistryDoc::default(), view, kafka, file)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            ArrowField::new("user_id", DataType::Int64, true),
            ArrowField::new("amount", DataType::Float64, true),
            ArrowField::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]))
    }

    /// Runs `f` with the test view's layout (and its registry and view, for `/push`'s rows).
    fn with_layout(f: impl FnOnce(&RegistryDoc, &FeatureView, &Layout<'_>)) {
        let (doc, view, kafka, file) = parts();
        let sv = StreamView {
            doc: &doc,
            view: &view,
            source: &kafka,
            batch: &file,
        };
        let schema = schema();
        let layout = Layout::new(&sv, &schema, &[]);
        f(&doc, &view, &layout);
    }

    /// The row `/push` makes of the same message (its one-row column map), for comparison.
    fn pushed(doc: &RegistryDoc, view: &FeatureView, message: &Json) -> OnlineRow {
        let mut df = IndexMap::new();
        for (k, v) in message.as_object().unwrap() {
            let k = match k.as_str() {
                "amt" => "amount",
                "ts" => "event_timestamp",
                other => other,
            };
            df.insert(k.to_string(), vec![v.clone()]);
        }
        crate::ingest::rows_from_columns(doc, view, &df).unwrap().pop().unwrap()
    }

    #[test]
    fn a_message_decodes_as_push_types_it_with_mapped_fields_and_unknown_ones_skipped() {
        with_layout(|doc, view, layout| {
            let mut scratch = Vec::new();
            for message in [
                json!({"user_id": 7, "amt": 12.5, "merchant": "m\u{e9}", "ts": "2026-01-02T03:04:05.123456Z",
                       "extra": {"nested": [1, 2, {"x": null}]}}),
                json!({"user_id": -3, "ts": 1767225600, "merchant": null}),
                json!({"ts": 1767225600.5, "user_id": 9, "amt": 1e300, "merchant": "with \"escapes\" \\"}),
            ] {
                let d = layout.decode(message.to_string().as_bytes(), &mut scratch).unwrap();
                assert_eq!(d.row, pushed(doc, view, &message), "{message}");
                // The offline row: the batch source's columns the message has.
                let obj = message.as_object().unwrap();
                assert_eq!(d.offline[0].as_ref(), obj.get("user_id"));
                assert_eq!(d.offline[1].as_ref(), obj.get("amt"));
                assert_eq!(d.offline[2].as_ref(), obj.get("ts"));
            }
        });
    }

    #[test]
    fn bad_messages_get_the_reason_of_their_field() {
        with_layout(|_, _, layout| {
            let mut scratch = Vec::new();
            let reason = |m: &str| layout.decode(m.as_bytes(), &mut Vec::new()).err().unwrap_or_default();
            assert!(reason("this is not json").starts_with("unparseable JSON"));
            assert!(reason(r#"{"user_id": 1, "ts": 1} trailing"#).starts_with("unparseable JSON"));
            assert_eq!(reason("[1, 2]"), "the message is not a JSON object");
            assert_eq!(reason("null"), "the message is not a JSON object");
            assert_eq!(reason(r#"{"user_id": 1}"#), "the timestamp field `ts` is missing");
            assert!(reason(r#"{"ts": 1}"#).starts_with("user_id: join key `user_id`"));
            assert!(reason(r#"{"user_id": "seven", "ts": 1}"#).starts_with("user_id: "));
            assert!(reason(r#"{"user_id": 1, "ts": "yesterday"}"#).starts_with("event_timestamp: "));
            assert!(reason(r#"{"user_id": 1, "ts": 1, "amt": "lots"}"#).starts_with("amount: "));
            // The scratch row is reused: a good message after bad ones still decodes whole.
            let d = layout
                .decode(br#"{"user_id": 1, "ts": 1, "amt": 2.0}"#, &mut scratch)
                .unwrap();
            assert_eq!(d.row.values[0].1, Value::Double(2.0));
            assert_eq!(d.row.values[1].1, Value::Null);
        });
    }

    #[test]
    fn offline_columns_keep_the_columns_some_event_has() {
        with_layout(|_, _, layout| {
            let rows = [
                vec![Some(json!(1)), None, Some(json!(5))],
                vec![Some(json!(2)), Some(json!(0.5)), Some(json!(6))],
            ];
            let cols = layout.offline_columns(rows.iter().map(Vec::as_slice));
            assert_eq!(
                cols.keys().collect::<Vec<_>>(),
                ["user_id", "amount", "event_timestamp"]
            );
            assert_eq!(cols["amount"], [Json::Null, json!(0.5)]);
            let none = [vec![Some(json!(1)), None, Some(json!(5))]];
            assert!(!layout
                .offline_columns(none.iter().map(Vec::as_slice))
                .contains_key("amount"));
        });
    }
}
