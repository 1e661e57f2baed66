//! Fuzz target for the Feast protobuf decoders Larder runs on files and rows it did not write:
//! a Feast registry (`registry.db`, or the objects of Feast's SQL registry) decoded and
//! converted to Larder's definitions, and Feast's serialized values (its SQLite and Redis
//! online layouts).
//!
//! Besides "never panics": a registry that converts converts the same way twice (the
//! conversion is a function of the bytes), the way back (Larder's definitions as Feast's
//! objects, what the registry server hands Feast's clients) never panics either, and a value that decodes re-encodes to a message
//! that decodes to the same value. The seed is the registry Feast 0.67 writes for the
//! `feast init` template.
#![no_main]

use larder_feast_model::proto::core::Registry;
use larder_feast_model::proto::types::Value as FeastValue;
use larder_feast_model::to_feast::ToFeast;
use larder_feast_model::value::{from_feast, to_feast};
use larder_feast_model::{is_feast_registry, registry_doc};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let _ = is_feast_registry(data);
    if let Ok(registry) = Registry::decode(data) {
        for project in ["demo", ""] {
            let first = registry_doc(&registry, project);
            assert_eq!(first, registry_doc(&registry, project));
            if let Ok(doc) = first {
                let back = ToFeast::new(&doc, chrono::DateTime::UNIX_EPOCH).registry(&Default::default());
                let _ = registry_doc(&back, project);
            }
        }
        let _ = larder_feast_model::convert::materializations(&registry, "demo");
    }
    if let Ok(v) = FeastValue::decode(data) {
        if let Ok(value) = from_feast(&v) {
            let bytes = to_feast(&value).encode_to_vec();
            let again = from_feast(&FeastValue::decode(bytes.as_slice()).expect("re-encoded")).expect("decodes");
            // Compared as encoded bytes, so that a NaN equals itself. An empty list has no
            // element type: it comes back as null (documented in to_feast).
            if !matches!(&value, larder_protocol::Value::List(l) if l.is_empty()) {
                assert_eq!(to_feast(&again).encode_to_vec(), bytes);
            }
        }
    }
});
