//! Property test of the Flight command decoder: any bytes, and any JSON shaped like Feast's
//! commands, decode to a command or a gRPC status (`INVALID_ARGUMENT`) — never a panic.

use larder_server::flight::commands::{parse, Command};
use proptest::prelude::*;

const APIS: &[&str] = &[
    "get_historical_features",
    "pull_latest_from_table_or_query",
    "pull_all_from_table_or_query",
    "get_table_column_names_and_types_from_data_source",
    "validate_data_source",
    "offline_write_batch",
    "persist",
    "write_logged_features",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2024-01-01T00:00:00")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(s) = parse(&bytes) {
            prop_assert_eq!(s.code(), tonic::Code::InvalidArgument);
        }
    }

    #[test]
    fn feast_shaped_commands_decode_or_are_refused(
        api in prop::sample::select(APIS),
        keys in prop::collection::btree_map(
            prop::sample::select(&["data_source_name", "join_key_columns", "feature_name_columns",
                "timestamp_field", "created_timestamp_column", "start_date", "end_date",
                "feature_view_names", "data_source_proto", "feature_refs", "full_feature_names"][..]),
            json_value(), 0..8),
    ) {
        let mut cmd = serde_json::Map::new();
        cmd.insert("command_id".into(), "x".into());
        cmd.insert("api".into(), api.into());
        for (k, v) in keys {
            cmd.insert(k.to_string(), v);
        }
        let bytes = serde_json::to_vec(&cmd).unwrap();
        match parse(&bytes) {
            Ok(Command::PullLatest(p)) | Ok(Command::PullAll(p)) => {
                // The window is computed or refused, never a panic.
                if let Err(s) = p.window() {
                    prop_assert_eq!(s.code(), tonic::Code::InvalidArgument);
                }
            }
            Ok(Command::Unsupported(a)) => prop_assert!(a == "persist" || a == "write_logged_features"),
            Ok(_) => {}
            Err(s) => prop_assert_eq!(s.code(), tonic::Code::InvalidArgument),
        }
    }
}
